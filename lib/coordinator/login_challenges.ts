/**
 * Proof of key for a takeover (docs/PROTOCOL.md §1.3, _Names owned by keys_): the coordinator's
 * `Challenge` nonces and the check of the proof a login brings back. Kept apart from the registry
 * because it is the one room that does cryptography: the registry only learns "proven" or not.
 *
 * A nonce is **stateless**, as WireGuard's cookies are: 4 bytes of issue time (seconds), 4 random
 * bytes (two challenges to one login differ), and 8 bytes of HMAC-SHA256, under a key drawn at
 * start, over those and everything the login that asked for it said and came from (name, key,
 * secret, observed endpoint). So issuing one stores nothing:
 * forged logins cannot fill a table of nonces, nor push a real client's nonce out of one. A nonce
 * is good for {@linkcode LoginChallengesOptions.ttlMs} (30 s) and once: a valid proof records its
 * nonce as used until it expires, so a captured proof cannot be played again, and only proofs made
 * with the owner's private key (which an attacker does not have) can fill that record.
 *
 * The proof itself is `keyProof` (`lib/crypto/key_proof.ts`): a MAC keyed with
 * X25519(client's private key, coordinator's public key) over the nonce, the name and the login's
 * secret, which the coordinator checks with its private key and the client's public key.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "../crypto/noise.ts";
 *
 * const challenges = new LoginChallenges({ keyPair: generateKeyPair(), now: () => Date.now() });
 * const login = { name: "alice", key: "<43 base64url>", secret: "<22 base64url>",
 *   observed: { host: "192.0.2.1", port: 4000 } };
 * const nonce = challenges.issue(login); // sent as `Challenge,<serverKey>,<nonce>`
 * challenges.verify({ ...login, nonce, mac: "<the client's proof>" }); // "ok" or why not
 * ```
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { equalBytes } from "../bytes.ts";
import type { KeyPair } from "../crypto/noise.ts";
import { type KeyProofPurpose, verifyKeyProof } from "../crypto/key_proof.ts";
import { decodeBase64url, encodeBase64url } from "../protocol/base64url.ts";
import { type Endpoint, formatEndpoint } from "../protocol/endpoint.ts";

/** The purpose a login's key proof is made for (its HKDF label): no other proof passes for it. */
export const LOGIN_PROOF_PURPOSE: KeyProofPurpose = "login";

/** What the login that asks for, or answers, a challenge said and where it came from. */
export interface ChallengedLogin {
  name: string;
  /** The login's public key, base64url. */
  key: string;
  /** The login's secret, base64url: the proof is bound to it (the session it will own). */
  secret: string;
  /** Where the login came from: a nonce is good only from there. */
  observed: Endpoint;
}

/**
 * Why a proof is refused: the nonce is not one of ours for this login (`forged-nonce`: made up,
 * or issued to another name, key, secret or endpoint), is older than the time to live
 * (`expired`), was used already (`replayed`), the MAC is wrong (`bad-proof`: not made with the
 * key's private half), or too many proofs are in flight (`busy`).
 */
export type ProofRefusal = "forged-nonce" | "expired" | "replayed" | "bad-proof" | "busy";

/** Options for {@linkcode LoginChallenges}. */
export interface LoginChallengesOptions {
  /** The coordinator's static X25519 key pair. */
  keyPair: KeyPair;
  /** Clock in milliseconds. */
  now: () => number;
  /** How long a nonce may be answered; default 30 s. */
  ttlMs?: number;
  /** Most used nonces remembered at once; beyond, proofs are refused (`busy`). Default 65,536. */
  maxUsed?: number;
}

const NONCE_BYTES = 16;
/** Issue time and random bytes: what the MAC covers besides the login. */
const HEAD_BYTES = 8;
const encoder = new TextEncoder();

/** Issues `Challenge` nonces and checks the proofs that answer them. */
export class LoginChallenges {
  readonly #keyPair: KeyPair;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #maxUsed: number;
  /** The key of the nonces' MACs: drawn at start, so a restart voids the nonces given out. */
  readonly #macKey = crypto.getRandomValues(new Uint8Array(32));
  /** Nonces a valid proof used, with when they expire (clock ms), oldest first. */
  readonly #used = new Map<string, number>();
  /** `Challenge`'s `<serverKey>`. */
  readonly serverKey: string;

  constructor(options: LoginChallengesOptions) {
    this.#keyPair = options.keyPair;
    this.#now = options.now;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#maxUsed = options.maxUsed ?? 65_536;
    this.serverKey = encodeBase64url(options.keyPair.publicKey);
  }

  /** Used nonces remembered now. */
  get usedCount(): number {
    return this.#used.size;
  }

  /** A fresh nonce (base64url, 22 characters) for this login, good for the time to live. */
  issue(login: ChallengedLogin): string {
    const nonce = new Uint8Array(NONCE_BYTES);
    new DataView(nonce.buffer).setUint32(0, this.#seconds(this.#now()));
    crypto.getRandomValues(nonce.subarray(4, HEAD_BYTES));
    nonce.set(this.#mac(nonce.subarray(0, HEAD_BYTES), login), HEAD_BYTES);
    return encodeBase64url(nonce);
  }

  /**
   * Checks a login's answer to a challenge: `"ok"` (and the nonce is used up), or why not.
   * Costs one HMAC for a nonce that is not ours, an X25519 only for one that is.
   */
  verify(login: ChallengedLogin & { nonce: string; mac: string }): "ok" | ProofRefusal {
    const nonce = decodeBase64url(login.nonce);
    const mac = decodeBase64url(login.mac);
    const publicKey = decodeBase64url(login.key);
    if (nonce?.length !== NONCE_BYTES || mac === null || publicKey === null) return "forged-nonce";
    const head = nonce.subarray(0, HEAD_BYTES);
    if (!equalBytes(this.#mac(head, login), nonce.subarray(HEAD_BYTES))) return "forged-nonce";
    const now = this.#now();
    const age = (this.#seconds(now) - new DataView(nonce.buffer).getUint32(0) + 2 ** 32) % 2 ** 32;
    if (age * 1000 > this.#ttlMs) return "expired";
    if (this.#used.has(login.nonce)) return "replayed";
    this.sweep();
    if (this.#used.size >= this.#maxUsed) return "busy";
    const proven = verifyKeyProof({
      privateKey: this.#keyPair.secretKey,
      publicKey,
      purpose: LOGIN_PROOF_PURPOSE,
      nonce,
      name: login.name,
      binding: login.secret,
      proof: mac,
    });
    if (!proven) return "bad-proof";
    // Until it expires (it was issued at most `ttlMs` ago, to the second).
    this.#used.set(login.nonce, now + this.#ttlMs + 1000);
    return "ok";
  }

  /** Forgets used nonces that have expired (they fail as `expired` from now on). */
  sweep(): void {
    const now = this.#now();
    for (const [nonce, until] of this.#used) {
      if (until > now) break; // oldest first, all with the same lifetime
      this.#used.delete(nonce);
    }
  }

  #seconds(ms: number): number {
    return Math.floor(ms / 1000) % 2 ** 32;
  }

  /** The 8 bytes a nonce that starts with `head` (time, random) ends with, for this login. */
  #mac(head: Uint8Array, login: ChallengedLogin): Uint8Array {
    const text = `${login.name}\n${login.key}\n${login.secret}\n${formatEndpoint(login.observed)}`;
    const data = new Uint8Array(HEAD_BYTES + text.length * 3);
    data.set(head);
    const { written } = encoder.encodeInto(text, data.subarray(HEAD_BYTES));
    return hmac(sha256, this.#macKey, data.subarray(0, HEAD_BYTES + written)).subarray(
      0,
      NONCE_BYTES - HEAD_BYTES,
    );
  }
}
