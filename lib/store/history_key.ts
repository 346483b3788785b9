/**
 * The history's secrets: where its key comes from, and how a row is sealed with it.
 *
 * The key is 32 random bytes kept beside the identity (`history_key.json`, mode 0600, in the
 * user's config folder), or, when the user sets a passphrase, scrypt of the passphrase with a
 * salt kept in the database. From it come subkeys (HKDF-SHA256): one seals the text and the
 * peer's name of each row with ChaCha20-Poly1305 (`node:crypto`, native: about half the time of
 * XChaCha20-Poly1305 in JavaScript, which counts on a chat message's round trip), a random 12-byte
 * nonce per seal and the row's identity as associated data, so a sealed value moved to another row
 * does not open; one opens the values of histories written before (format 1, XChaCha20-Poly1305
 * with a 24-byte nonce, `@noble/ciphers`); one makes the peer's tag, an HMAC of the name that lets
 * the database find a conversation without holding the name. A sealed value starts with its
 * format byte. Separate from the store because it is the only part that handles keys.
 *
 * @example
 * ```ts
 * const keys = historyKeys(crypto.getRandomValues(new Uint8Array(32)));
 * const sealed = sealValue(keys, new TextEncoder().encode("hi"), new Uint8Array([1]));
 * openValue(keys, sealed, new Uint8Array([1])); // the bytes of "hi"
 * ```
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { scrypt } from "@noble/hashes/scrypt.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { decodeBase64url, encodeBase64url } from "../protocol/base64url.ts";
import { readPrivateJson, writePrivateJson } from "../crypto/private_json.ts";

/** Thrown when the history cannot be opened or written: its message says which file and why. */
export class HistoryError extends Error {
  override name = "HistoryError";
}

/** The subkeys of a history key. */
export interface HistoryKeys {
  /** Seals text, names and reasons (ChaCha20-Poly1305, format 2). */
  readonly seal: Uint8Array;
  /** Opens values sealed by earlier versions (XChaCha20-Poly1305, format 1). */
  readonly sealV1: Uint8Array;
  /** Makes peer tags (HMAC-SHA256). */
  readonly tag: Uint8Array;
}

/** scrypt cost of a passphrase: about 0.2 s and 32 MiB here, a second on a Raspberry Pi. */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;

const KEY_FILE_VERSION = 1;
/** Format 1: `1 ‖ nonce (24) ‖ ciphertext ‖ tag`, XChaCha20-Poly1305 (`@noble/ciphers`). */
const FORMAT_XCHACHA = 1;
/** Format 2: `2 ‖ nonce (12) ‖ ciphertext ‖ tag`, ChaCha20-Poly1305 (`node:crypto`). */
const FORMAT_CHACHA = 2;
const XNONCE = 24;
const NONCE = 12;
const TAG = 16;
const encoder = new TextEncoder();

/** The subkeys of a 32-byte history key. */
export function historyKeys(key: Uint8Array): HistoryKeys {
  return {
    // Not the format 1 key: ChaCha20 keystream under a key would reveal XChaCha20 subkeys of it.
    seal: hkdf(sha256, key, undefined, encoder.encode("p2p history seal v2"), 32),
    sealV1: hkdf(sha256, key, undefined, encoder.encode("p2p history seal v1"), 32),
    tag: hkdf(sha256, key, undefined, encoder.encode("p2p history peer tag v1"), 32),
  };
}

/**
 * The history key scrypt derives from `passphrase` and `salt`.
 *
 * @example
 * ```ts
 * const key = passphraseKey("correct horse", crypto.getRandomValues(new Uint8Array(16)));
 * ```
 */
export function passphraseKey(
  passphrase: string,
  salt: Uint8Array,
  params: { N: number; r: number; p: number } = SCRYPT_PARAMS,
): Uint8Array {
  return scrypt(encoder.encode(passphrase.normalize("NFC")), salt, { ...params, dkLen: 32 });
}

/**
 * Reads the history key file at `path`, creating it (32 random bytes, mode 0600) when `create`
 * and it does not exist; `null` when it does not exist and `create` is false.
 *
 * @throws {HistoryError} if the file is readable by others, corrupt, or cannot be written.
 */
export async function loadKeyFile(path: string, create: boolean): Promise<Uint8Array | null> {
  const errors = {
    loose: (mode: string) =>
      new HistoryError(
        `Cannot use history key ${path}: its permissions ${mode} let other users read your ` +
          `history; run "chmod 600 ${path}" if you trust it has not leaked`,
      ),
    corrupt: (why: string) =>
      new HistoryError(
        `Cannot use history key ${path}: ${why}; restore it from a backup (without it the ` +
          `history cannot be read)`,
      ),
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    const record = await readPrivateJson(path, KEY_FILE_VERSION, errors);
    if (record) {
      const key = typeof record.key === "string" ? decodeBase64url(record.key) : null;
      if (!key || key.length !== 32) throw errors.corrupt("the key is not 32 bytes of base64url");
      return key;
    }
    if (!create) return null;
    const key = crypto.getRandomValues(new Uint8Array(32));
    const value = { version: KEY_FILE_VERSION, key: encodeBase64url(key) };
    try {
      // Never replaces a file: a concurrent creator's key wins, and is read on the next turn.
      if (await writePrivateJson(path, value, { replace: false })) return key;
    } catch (error) {
      throw new HistoryError(`Cannot create history key ${path}: ${error}`, { cause: error });
    }
  }
  throw new HistoryError(`Cannot create history key ${path}: it vanished meanwhile`);
}

/**
 * `2 ‖ nonce ‖ ciphertext ‖ tag` of `plaintext`, bound to `aad`. The nonce is 96 random bits:
 * NIST SP 800-38D allows 2^32 seals per key with random 96-bit nonces (a collision chance under
 * 2^-32): a million messages a day for ten years; a personal history seals one or two values per
 * message.
 */
export function sealValue(keys: HistoryKeys, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + NONCE + plaintext.length + TAG);
  out[0] = FORMAT_CHACHA;
  const nonce = crypto.getRandomValues(out.subarray(1, 1 + NONCE));
  const cipher = createCipheriv("chacha20-poly1305", keys.seal, nonce, { authTagLength: TAG });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  out.set(head, 1 + NONCE);
  out.set(tail, 1 + NONCE + head.length);
  out.set(cipher.getAuthTag(), 1 + NONCE + plaintext.length);
  return out;
}

/**
 * The plaintext of {@linkcode sealValue}'s output (or of format 1, written by earlier versions),
 * or `null` if it was not sealed so.
 */
export function openValue(
  keys: HistoryKeys,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  try {
    if (sealed[0] === FORMAT_CHACHA && sealed.length >= 1 + NONCE + TAG) {
      const end = sealed.length - TAG;
      const decipher = createDecipheriv(
        "chacha20-poly1305",
        keys.seal,
        sealed.subarray(1, 1 + NONCE),
        { authTagLength: TAG },
      );
      decipher.setAAD(aad, { plaintextLength: end - 1 - NONCE });
      decipher.setAuthTag(sealed.subarray(end));
      const head = decipher.update(sealed.subarray(1 + NONCE, end));
      const tail = decipher.final(); // throws if the tag does not match
      const out = new Uint8Array(head.length + tail.length);
      out.set(head);
      out.set(tail, head.length);
      return out;
    }
    if (sealed[0] === FORMAT_XCHACHA && sealed.length >= 1 + XNONCE + TAG) {
      return xchacha20poly1305(keys.sealV1, sealed.subarray(1, 1 + XNONCE), aad)
        .decrypt(sealed.subarray(1 + XNONCE));
    }
    return null;
  } catch {
    return null;
  }
}

/** The 16-byte tag standing for `peer`'s name in the database. */
export function peerTag(keys: HistoryKeys, peer: string): Uint8Array {
  return hmac(sha256, keys.tag, encoder.encode(peer)).subarray(0, 16);
}
