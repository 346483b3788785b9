/**
 * Proof of possession of a static X25519 key, answered to a fresh challenge: how a client shows
 * the coordinator that it holds the private half of the key registered for its name (to take
 * over a stale session, to fetch its mailbox), without signatures and without revealing anything
 * reusable.
 *
 * Both ends compute the same Diffie–Hellman value: the client from its private key and the
 * coordinator's public key, the coordinator from its private key and the client's public key.
 * The proof is a MAC under a key derived from it, over the coordinator's nonce, the name and a
 * binding (what else the proof must be tied to, such as the login's secret). Only the holders of
 * one of the two private keys can make it; a nonce used once cannot be answered again, so a
 * captured proof cannot be replayed (the verifier keeps nonces single-use); and the purpose
 * separates proofs for different jobs, so a login proof never opens a mailbox.
 *
 * ```text
 * shared = X25519(own private, other public)
 * key    = HKDF-SHA256(ikm = shared, salt = "p2p key proof v1", info = purpose), 32 bytes
 * proof  = HMAC-SHA256(key, nonce ‖ 0x00 ‖ UTF-8(name) ‖ 0x00 ‖ UTF-8(binding))[0..16]
 * ```
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./noise.ts";
 * import { keyProof, verifyKeyProof } from "./key_proof.ts";
 *
 * const client = generateKeyPair();
 * const server = generateKeyPair();
 * const nonce = crypto.getRandomValues(new Uint8Array(16));
 * const proof = keyProof({
 *   privateKey: client.secretKey, publicKey: server.publicKey,
 *   purpose: "login", nonce, name: "alice", binding: "secret",
 * });
 * verifyKeyProof({
 *   privateKey: server.secretKey, publicKey: client.publicKey,
 *   purpose: "login", nonce, name: "alice", binding: "secret", proof,
 * }); // true
 * ```
 * @module
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes } from "@noble/hashes/utils.js";
import { constantTimeEqual } from "../bytes.ts";
import { dh } from "./noise.ts";

/** Length of a proof, in bytes (22 characters in base64url). */
export const KEY_PROOF_LENGTH = 16;

/** What a proof is for: a proof made for one purpose never passes for another. */
export type KeyProofPurpose = "login" | "mailbox";

/** Options for {@linkcode keyProof}. */
export interface KeyProofOptions {
  /** Our X25519 private key (32 bytes). */
  privateKey: Uint8Array;
  /** The other side's X25519 public key (32 bytes). */
  publicKey: Uint8Array;
  purpose: KeyProofPurpose;
  /** The verifier's fresh challenge. */
  nonce: Uint8Array;
  /** The name the proof is made for. */
  name: string;
  /** Anything else the proof must be tied to; default empty. */
  binding?: string;
}

/** Thrown by {@linkcode keyProof} when a key is not a usable X25519 key. */
export class KeyProofError extends Error {
  override name = "KeyProofError";
}

const SALT = new TextEncoder().encode("p2p key proof v1");
const encoder = new TextEncoder();
const ZERO = new Uint8Array(1);

/** The 16-byte proof for `options` (see the module comment for the construction). */
export function keyProof(options: KeyProofOptions): Uint8Array {
  let shared: Uint8Array;
  try {
    if (options.privateKey.length !== 32) throw new RangeError("the private key is not 32 bytes");
    shared = dh(
      { secretKey: options.privateKey, publicKey: new Uint8Array(32) },
      options.publicKey,
    );
  } catch (err) {
    // Wrong lengths and low-order points (an all-zero shared secret) are refused.
    throw new KeyProofError(`Cannot make a key proof: ${(err as Error).message}`);
  }
  const key = hkdf(sha256, shared, SALT, encoder.encode(options.purpose), 32);
  const message = concatBytes(
    options.nonce,
    ZERO,
    encoder.encode(options.name),
    ZERO,
    encoder.encode(options.binding ?? ""),
  );
  return hmac(sha256, key, message).subarray(0, KEY_PROOF_LENGTH);
}

/**
 * Whether `proof` is the proof for `options`, computed from our side's private key. `false` (never
 * a throw) for a proof of the wrong length or a public key that is not a usable X25519 key, since
 * both come from the network.
 */
export function verifyKeyProof(options: KeyProofOptions & { proof: Uint8Array }): boolean {
  if (options.proof.length !== KEY_PROOF_LENGTH) return false;
  let expected: Uint8Array;
  try {
    expected = keyProof(options);
  } catch (err) {
    if (err instanceof KeyProofError) return false;
    throw err;
  }
  return constantTimeEqual(expected, options.proof);
}
