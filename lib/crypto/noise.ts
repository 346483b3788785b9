/**
 * The Noise XX handshake (`Noise_XX_25519_ChaChaPoly_SHA256`, Noise spec revision 34) used to
 * authenticate two peers and agree on transport keys:
 *
 * ```text
 * XX:
 *   -> e
 *   <- e, ee, s, es
 *   -> s, se
 * ```
 *
 * Both parties learn each other's long-term X25519 key; the prologue (see {@linkcode prologueFor})
 * binds both usernames into the transcript, so a relay that swaps names or keys makes the
 * handshake fail. Every failure of {@linkcode HandshakeState.writeMessage} and
 * {@linkcode HandshakeState.readMessage} is reported as a {@linkcode NoiseError}.
 *
 * @example
 * ```ts
 * import { generateKeyPair, HandshakeState, prologueFor } from "./noise.ts";
 *
 * const prologue = prologueFor("alice", "bob");
 * const alice = new HandshakeState({ role: "initiator", staticKeyPair: generateKeyPair(), prologue });
 * const bob = new HandshakeState({ role: "responder", staticKeyPair: generateKeyPair(), prologue });
 * bob.readMessage(alice.writeMessage());
 * alice.readMessage(bob.writeMessage());
 * bob.readMessage(alice.writeMessage());
 * const a = alice.split();
 * const b = bob.split();
 * // a.sendKey equals b.receiveKey, a.handshakeHash equals b.handshakeHash
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { concatBytes, hexToBytes } from "@noble/hashes/utils.js";

/** The full Noise protocol name; its bytes initialise the handshake hash. */
export const PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256";
/** Length in bytes of X25519 public keys, secret keys and shared secrets. */
export const DH_LEN = 32;
/** Length in bytes of the ChaCha20-Poly1305 authentication tag. */
export const TAG_LEN = 16;
/** The largest Noise message, in bytes (Noise spec, section 3). */
export const MAX_MESSAGE_LEN = 65535;

const HASH_LEN = 32;
const EMPTY = new Uint8Array(0);

/**
 * The single error class thrown by this module for any handshake failure: wrong message length,
 * bad MAC, invalid (low-order) remote key, a call out of turn, or an exhausted nonce.
 *
 * @example
 * ```ts
 * import { generateKeyPair, HandshakeState, NoiseError } from "./noise.ts";
 *
 * const hs = new HandshakeState({ role: "responder", staticKeyPair: generateKeyPair() });
 * try {
 *   hs.readMessage(new Uint8Array(3));
 * } catch (e) {
 *   if (!(e instanceof NoiseError)) throw e;
 * }
 * ```
 */
export class NoiseError extends Error {
  /** Creates a NoiseError; `options.cause` keeps the underlying library error if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NoiseError";
  }
}

/**
 * An X25519 key pair (32-byte raw keys).
 *
 * @example
 * ```ts
 * import { generateKeyPair, type KeyPair } from "./noise.ts";
 *
 * const kp: KeyPair = generateKeyPair();
 * console.log(kp.publicKey.length); // 32
 * ```
 */
export interface KeyPair {
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** The 32-byte secret key. */
  readonly secretKey: Uint8Array;
}

/**
 * Generates a fresh random X25519 key pair.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./noise.ts";
 *
 * const { publicKey, secretKey } = generateKeyPair();
 * ```
 */
export function generateKeyPair(): KeyPair {
  return keyPairFromSecretKey(crypto.getRandomValues(new Uint8Array(DH_LEN)));
}

/**
 * Derives the key pair of a 32-byte X25519 secret key.
 *
 * @throws {NoiseError} if the secret key is not 32 bytes long.
 *
 * @example
 * ```ts
 * import { keyPairFromSecretKey } from "./noise.ts";
 *
 * const kp = keyPairFromSecretKey(new Uint8Array(32).fill(7));
 * ```
 */
export function keyPairFromSecretKey(secretKey: Uint8Array): KeyPair {
  if (secretKey.length !== DH_LEN) {
    throw new NoiseError(
      `Cannot use secret key: length ${secretKey.length} is not the ${DH_LEN}-byte X25519 length`,
    );
  }
  const secret = secretKey.slice();
  const spki = createPublicKey(privateKeyObject(secret)).export({ format: "der", type: "spki" });
  return { publicKey: new Uint8Array(spki.subarray(spki.length - DH_LEN)), secretKey: secret };
}

// X25519 through node:crypto (OpenSSL): about 8x @noble's speed here (0.18 ms against 1.3 ms a
// DH), which is most of a first handshake's time on the way of a first message. The keys travel
// as raw 32-byte strings, wrapped in their fixed DER headers (RFC 8410) for OpenSSL.
const PKCS8_X25519 = hexToBytes("302e020100300506032b656e04220420");
const SPKI_X25519 = hexToBytes("302a300506032b656e032100");

/** A raw 32-byte X25519 key as OpenSSL takes it: behind its fixed DER header. */
function der(header: Uint8Array, key: Uint8Array): Buffer {
  if (key.length !== DH_LEN) throw new RangeError(`an X25519 key of ${key.length} bytes`);
  const bytes = new Uint8Array(header.length + DH_LEN);
  bytes.set(header);
  bytes.set(key, header.length);
  return Buffer.from(bytes);
}

function privateKeyObject(secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: der(PKCS8_X25519, secret), format: "der", type: "pkcs8" });
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: der(SPKI_X25519, publicKey), format: "der", type: "spki" });
}

/**
 * Builds the prologue that binds both usernames into the handshake: the UTF-8 bytes of
 * `"p2p/1\n" + initiator + "\n" + responder`. Both sides must pass the same names in the same
 * order (initiator first), otherwise the second handshake message fails to decrypt.
 *
 * @throws {RangeError} if a name contains a newline, which would make the encoding ambiguous.
 *
 * @example
 * ```ts
 * import { prologueFor } from "./noise.ts";
 *
 * new TextDecoder().decode(prologueFor("alice", "bob")); // "p2p/1\nalice\nbob"
 * ```
 */
export function prologueFor(initiator: string, responder: string): Uint8Array {
  for (const name of [initiator, responder]) {
    if (name.includes("\n")) {
      throw new RangeError(
        `Cannot build prologue: name ${JSON.stringify(name)} contains a newline, the separator`,
      );
    }
  }
  return new TextEncoder().encode(`p2p/1\n${initiator}\n${responder}`);
}

/**
 * The 12-byte ChaChaPoly nonce that Noise derives from a counter: 4 zero bytes followed by the
 * counter as a 64-bit little-endian integer.
 *
 * @example
 * ```ts
 * import { noiseNonce } from "./noise.ts";
 *
 * noiseNonce(1); // Uint8Array [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
 * ```
 */
export function noiseNonce(counter: number): Uint8Array {
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  view.setUint32(4, counter >>> 0, true);
  view.setUint32(8, Math.floor(counter / 0x1_0000_0000), true);
  return nonce;
}

/** X25519 of our key pair and a remote public key; a {@linkcode NoiseError} for a low-order key. */
export function dh(keyPair: KeyPair, remotePublicKey: Uint8Array): Uint8Array {
  try {
    // OpenSSL refuses an all-zero result (a low-order remote key), as RFC 7748 section 6.1 allows.
    const shared = diffieHellman({
      privateKey: privateKeyObject(keyPair.secretKey),
      publicKey: publicKeyObject(remotePublicKey),
    });
    return new Uint8Array(shared.buffer, shared.byteOffset, shared.byteLength);
  } catch (cause) {
    throw new NoiseError("Cannot complete DH: the remote public key is invalid (low order)", {
      cause,
    });
  }
}

/** HKDF from the Noise spec with two outputs; equal to RFC 5869 HKDF with an empty info. */
function hkdf2(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdf(sha256, inputKeyMaterial, chainingKey, EMPTY, 2 * HASH_LEN);
  return [out.slice(0, HASH_LEN), out.slice(HASH_LEN)];
}

/**
 * Noise CipherState: a ChaCha20-Poly1305 key (or none) and a 64-bit nonce counter. Without a key
 * it passes plaintext through unchanged, as the spec requires for the first handshake message.
 * Counters are limited to 2^53 - 1, far more than any session sends.
 *
 * @example
 * ```ts
 * import { CipherState } from "./noise.ts";
 *
 * const key = new Uint8Array(32);
 * const ct = new CipherState(key).encryptWithAd(new Uint8Array(0), new Uint8Array([1, 2]));
 * new CipherState(key).decryptWithAd(new Uint8Array(0), ct); // Uint8Array [1, 2]
 * ```
 */
export class CipherState {
  #key: Uint8Array | null;
  #nonce = 0;

  /** Creates a CipherState with the given 32-byte key, or with no key. */
  constructor(key?: Uint8Array) {
    if (key !== undefined && key.length !== 32) {
      throw new NoiseError(`Cannot use cipher key: length ${key.length} is not 32 bytes`);
    }
    this.#key = key === undefined ? null : key.slice();
  }

  /** Whether a key is set (Noise `HasKey()`). */
  hasKey(): boolean {
    return this.#key !== null;
  }

  /** The nonce the next encryption or decryption will use. */
  get nonce(): number {
    return this.#nonce;
  }

  /**
   * Encrypts `plaintext` with associated data `ad` and increments the nonce; returns the
   * plaintext unchanged (copied) when no key is set.
   *
   * @throws {NoiseError} if the nonce is exhausted.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#key === null) return plaintext.slice();
    const nonce = this.#takeNonce();
    return chacha20poly1305(this.#key, nonce, ad).encrypt(plaintext);
  }

  /**
   * Decrypts and authenticates `ciphertext` with associated data `ad`; returns it unchanged
   * (copied) when no key is set. The nonce only advances on success.
   *
   * @throws {NoiseError} on a bad MAC, a ciphertext shorter than the tag, or an exhausted nonce.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#key === null) return ciphertext.slice();
    if (ciphertext.length < TAG_LEN) {
      throw new NoiseError(
        `Cannot decrypt: length ${ciphertext.length} is shorter than the ${TAG_LEN}-byte tag`,
      );
    }
    if (this.#nonce >= Number.MAX_SAFE_INTEGER) {
      throw new NoiseError("Cannot decrypt: the nonce is exhausted");
    }
    let plaintext: Uint8Array;
    try {
      plaintext = chacha20poly1305(this.#key, noiseNonce(this.#nonce), ad).decrypt(ciphertext);
    } catch (cause) {
      throw new NoiseError("Cannot decrypt: the authentication tag does not match", { cause });
    }
    this.#nonce++;
    return plaintext;
  }

  /** Returns an independent copy of this state. */
  clone(): CipherState {
    const copy = new CipherState(this.#key ?? undefined);
    copy.#nonce = this.#nonce;
    return copy;
  }

  #takeNonce(): Uint8Array {
    if (this.#nonce >= Number.MAX_SAFE_INTEGER) {
      throw new NoiseError("Cannot encrypt: the nonce is exhausted");
    }
    return noiseNonce(this.#nonce++);
  }
}

/**
 * Noise SymmetricState: the chaining key, the handshake hash and the current CipherState.
 *
 * @example
 * ```ts
 * import { PROTOCOL_NAME, SymmetricState } from "./noise.ts";
 *
 * const ss = new SymmetricState(PROTOCOL_NAME);
 * ss.mixHash(new TextEncoder().encode("prologue"));
 * console.log(ss.handshakeHash.length); // 32
 * ```
 */
export class SymmetricState {
  #cipher = new CipherState();
  #chainingKey: Uint8Array;
  #hash: Uint8Array;

  /** Noise `InitializeSymmetric(protocol_name)`. */
  constructor(protocolName: string) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASH_LEN) {
      this.#hash = new Uint8Array(HASH_LEN);
      this.#hash.set(name);
    } else {
      this.#hash = sha256(name);
    }
    this.#chainingKey = this.#hash;
  }

  /** The current handshake hash `h` (a copy). */
  get handshakeHash(): Uint8Array {
    return this.#hash.slice();
  }

  /** Whether the current CipherState has a key. */
  hasKey(): boolean {
    return this.#cipher.hasKey();
  }

  /** Noise `MixKey(input_key_material)`. */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [chainingKey, key] = hkdf2(this.#chainingKey, inputKeyMaterial);
    this.#chainingKey = chainingKey;
    this.#cipher = new CipherState(key);
  }

  /** Noise `MixHash(data)`. */
  mixHash(data: Uint8Array): void {
    const input = new Uint8Array(this.#hash.length + data.length);
    input.set(this.#hash);
    input.set(data, this.#hash.length);
    this.#hash = sha256(input);
  }

  /** Noise `EncryptAndHash(plaintext)`. @throws {NoiseError} if the nonce is exhausted. */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cipher.encryptWithAd(this.#hash, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** Noise `DecryptAndHash(ciphertext)`. @throws {NoiseError} on a bad MAC. */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cipher.decryptWithAd(this.#hash, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Noise `Split()`: the initiator-to-responder key, then the responder-to-initiator key. */
  split(): [Uint8Array, Uint8Array] {
    return hkdf2(this.#chainingKey, EMPTY);
  }

  /** Returns an independent copy of this state. */
  clone(): SymmetricState {
    const copy = new SymmetricState("");
    copy.#cipher = this.#cipher.clone();
    copy.#chainingKey = this.#chainingKey;
    copy.#hash = this.#hash;
    return copy;
  }
}

/** Which side of the handshake this party is: the initiator sends the first message. */
export type Role = "initiator" | "responder";

/**
 * Options for {@linkcode HandshakeState}.
 *
 * @example
 * ```ts
 * import { generateKeyPair, type HandshakeOptions, prologueFor } from "./noise.ts";
 *
 * const options: HandshakeOptions = {
 *   role: "initiator",
 *   staticKeyPair: generateKeyPair(),
 *   prologue: prologueFor("alice", "bob"),
 * };
 * ```
 */
export interface HandshakeOptions {
  /** This party's role. */
  role: Role;
  /** This party's long-term X25519 key pair. */
  staticKeyPair: KeyPair;
  /** Bytes both parties must agree on; default empty. Use {@linkcode prologueFor}. */
  prologue?: Uint8Array;
  /** A fixed ephemeral key pair, for test vectors only; default a fresh random one. */
  ephemeralKeyPair?: KeyPair;
}

/**
 * What a finished handshake yields. Both parties compute the same `handshakeHash`; one party's
 * `sendKey` is the other's `receiveKey`.
 *
 * @example
 * ```ts
 * import type { HandshakeResult } from "./noise.ts";
 *
 * function describe(r: HandshakeResult): string {
 *   return `${r.remoteStaticKey.length}-byte peer key`;
 * }
 * ```
 */
export interface HandshakeResult {
  /** Key for messages this party sends. */
  sendKey: Uint8Array;
  /** Key for messages this party receives. */
  receiveKey: Uint8Array;
  /** The peer's long-term X25519 public key, authenticated by the handshake. */
  remoteStaticKey: Uint8Array;
  /** The final handshake hash, a unique identifier of this session (channel binding). */
  handshakeHash: Uint8Array;
}

/** What the handshake expects next from this party. */
export type HandshakeStatus = "write" | "read" | "done";

type Token = "e" | "s" | "ee" | "es" | "se";
const PATTERN: readonly (readonly Token[])[] = [["e"], ["e", "ee", "s", "es"], ["s", "se"]];

/**
 * Noise HandshakeState for the XX pattern. Messages alternate, initiator first; call
 * {@linkcode HandshakeState.writeMessage} or {@linkcode HandshakeState.readMessage} as
 * {@linkcode HandshakeState.status} says, then {@linkcode HandshakeState.split}.
 *
 * A failed `readMessage` leaves the state unchanged, so a forged or corrupted datagram does not
 * abort the handshake: the caller may keep waiting for the genuine message.
 *
 * @example
 * ```ts
 * import { generateKeyPair, HandshakeState } from "./noise.ts";
 *
 * const i = new HandshakeState({ role: "initiator", staticKeyPair: generateKeyPair() });
 * const r = new HandshakeState({ role: "responder", staticKeyPair: generateKeyPair() });
 * r.readMessage(i.writeMessage(new TextEncoder().encode("hi")));
 * i.readMessage(r.writeMessage());
 * r.readMessage(i.writeMessage());
 * console.log(i.status, r.status); // "done" "done"
 * ```
 */
export class HandshakeState {
  readonly #role: Role;
  readonly #static: KeyPair;
  #ephemeral: KeyPair | null;
  #symmetric: SymmetricState;
  #remoteEphemeral: Uint8Array | null = null;
  #remoteStatic: Uint8Array | null = null;
  #index = 0;

  /**
   * Noise `Initialize()` for XX with the given options.
   *
   * @throws {NoiseError} if a key has the wrong length.
   */
  constructor(options: HandshakeOptions) {
    checkKeyPair("static", options.staticKeyPair);
    if (options.ephemeralKeyPair) checkKeyPair("ephemeral", options.ephemeralKeyPair);
    this.#role = options.role;
    this.#static = options.staticKeyPair;
    this.#ephemeral = options.ephemeralKeyPair ?? null;
    this.#symmetric = new SymmetricState(PROTOCOL_NAME);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
  }

  /** This party's role. */
  get role(): Role {
    return this.#role;
  }

  /** Whether this party must write or read the next message, or the handshake is done. */
  get status(): HandshakeStatus {
    if (this.#index >= PATTERN.length) return "done";
    const initiatorSends = this.#index % 2 === 0;
    return initiatorSends === (this.#role === "initiator") ? "write" : "read";
  }

  /**
   * The peer's static public key once received (after message 2 for the initiator, message 3
   * for the responder), else null. The initiator can check it against its known peers before
   * writing message 3, which reveals its own static key.
   */
  get remoteStaticKey(): Uint8Array | null {
    return this.#remoteStatic?.slice() ?? null;
  }

  /** The current handshake hash (a copy). */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.handshakeHash;
  }

  /**
   * Noise `WriteMessage(payload)`: returns the next handshake message carrying `payload`
   * (encrypted in messages 2 and 3, in the clear in message 1).
   *
   * @throws {NoiseError} if it is not this party's turn to write, the message would exceed
   * {@linkcode MAX_MESSAGE_LEN}, or the peer's ephemeral key is invalid.
   */
  writeMessage(payload: Uint8Array = EMPTY): Uint8Array {
    if (this.status !== "write") {
      throw new NoiseError(`Cannot write handshake message: the ${this.#role} must ${this.status}`);
    }
    const tokens = PATTERN[this.#index];
    const size = this.#messageLength(tokens, payload.length);
    if (size > MAX_MESSAGE_LEN) {
      throw new NoiseError(
        `Cannot write handshake message: length ${size} exceeds ${MAX_MESSAGE_LEN} bytes`,
      );
    }
    const ss = this.#symmetric.clone();
    const parts: Uint8Array[] = [];
    let ephemeral = this.#ephemeral;
    for (const token of tokens) {
      if (token === "e") {
        ephemeral ??= generateKeyPair();
        parts.push(ephemeral.publicKey.slice());
        ss.mixHash(ephemeral.publicKey);
      } else if (token === "s") {
        parts.push(ss.encryptAndHash(this.#static.publicKey));
      } else {
        ss.mixKey(this.#dh(token, ephemeral, this.#remoteEphemeral, this.#remoteStatic));
      }
    }
    parts.push(ss.encryptAndHash(payload));
    this.#ephemeral = ephemeral;
    this.#symmetric = ss;
    this.#index++;
    return concatBytes(...parts);
  }

  /**
   * Noise `ReadMessage(message)`: processes the peer's next handshake message and returns its
   * payload. On failure the state is left unchanged.
   *
   * @throws {NoiseError} if it is not this party's turn to read, the message has a wrong
   * length, its MAC does not verify (tampering, or a different prologue), or a key is invalid.
   */
  readMessage(message: Uint8Array): Uint8Array {
    if (this.status !== "read") {
      throw new NoiseError(`Cannot read handshake message: the ${this.#role} must ${this.status}`);
    }
    const tokens = PATTERN[this.#index];
    const minimum = this.#messageLength(tokens, 0);
    if (message.length < minimum || message.length > MAX_MESSAGE_LEN) {
      throw new NoiseError(
        `Cannot read handshake message ${this.#index + 1}: length ${message.length} is outside ` +
          `${minimum}..${MAX_MESSAGE_LEN} bytes`,
      );
    }
    const ss = this.#symmetric.clone();
    let remoteEphemeral = this.#remoteEphemeral;
    let remoteStatic = this.#remoteStatic;
    let offset = 0;
    for (const token of tokens) {
      if (token === "e") {
        remoteEphemeral = message.slice(offset, offset + DH_LEN);
        offset += DH_LEN;
        ss.mixHash(remoteEphemeral);
      } else if (token === "s") {
        const length = DH_LEN + (ss.hasKey() ? TAG_LEN : 0);
        remoteStatic = ss.decryptAndHash(message.subarray(offset, offset + length));
        offset += length;
      } else {
        ss.mixKey(this.#dh(token, this.#ephemeral, remoteEphemeral, remoteStatic));
      }
    }
    const payload = ss.decryptAndHash(message.subarray(offset));
    this.#symmetric = ss;
    this.#remoteEphemeral = remoteEphemeral;
    this.#remoteStatic = remoteStatic;
    this.#index++;
    return payload;
  }

  /**
   * Noise `Split()` after the third message: the transport keys for each direction, the peer's
   * static key and the handshake hash.
   *
   * @throws {NoiseError} if the handshake is not finished.
   */
  split(): HandshakeResult {
    if (this.status !== "done" || this.#remoteStatic === null) {
      throw new NoiseError(`Cannot split: the handshake is not finished (${this.status} next)`);
    }
    const [initiatorToResponder, responderToInitiator] = this.#symmetric.split();
    const initiator = this.#role === "initiator";
    return {
      sendKey: initiator ? initiatorToResponder : responderToInitiator,
      receiveKey: initiator ? responderToInitiator : initiatorToResponder,
      remoteStaticKey: this.#remoteStatic.slice(),
      handshakeHash: this.#symmetric.handshakeHash,
    };
  }

  /** Length of a message with the given tokens and payload size, at the current key state. */
  #messageLength(tokens: readonly Token[], payloadLength: number): number {
    let keyed = this.#symmetric.hasKey();
    let length = 0;
    for (const token of tokens) {
      if (token === "e") length += DH_LEN;
      else if (token === "s") length += DH_LEN + (keyed ? TAG_LEN : 0);
      else keyed = true;
    }
    return length + payloadLength + (keyed ? TAG_LEN : 0);
  }

  #dh(
    token: "ee" | "es" | "se",
    ephemeral: KeyPair | null,
    remoteEphemeral: Uint8Array | null,
    remoteStatic: Uint8Array | null,
  ): Uint8Array {
    // "es" is DH(initiator's e, responder's s); "se" is DH(initiator's s, responder's e).
    const initiator = this.#role === "initiator";
    const local = token === "ee" || (token === "es") === initiator ? ephemeral : this.#static;
    const remote = token === "ee" || (token === "se") === initiator
      ? remoteEphemeral
      : remoteStatic;
    if (local === null || remote === null) {
      throw new NoiseError(`Cannot compute ${token}: a key is missing`);
    }
    return dh(local, remote);
  }
}

function checkKeyPair(what: string, keyPair: KeyPair): void {
  if (keyPair.publicKey.length !== DH_LEN || keyPair.secretKey.length !== DH_LEN) {
    throw new NoiseError(`Cannot start handshake: the ${what} key pair is not 32-byte X25519`);
  }
}
