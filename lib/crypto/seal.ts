/**
 * Sealing: a one-way message to a recipient's static X25519 key, as the single message of the
 * Noise `X` pattern (`Noise_X_25519_ChaChaPoly_SHA256`, Noise spec revision 34 §7.4):
 *
 * ```text
 * X:
 *   <- s
 *   ...
 *   -> e, es, s, ss
 * ```
 *
 * The sender's static key travels encrypted inside the message and is authenticated by the `ss`
 * DH, so the recipient learns who sealed it and nobody else learns anything but the length. The
 * mailbox (docs/PROTOCOL.md §5) carries sealed messages: the coordinator holding them sees only
 * whom they are for. It is its own room because it is one-way (no reply, no session) where
 * `noise.ts` is the interactive XX handshake; it reuses that module's `SymmetricState`.
 *
 * A sealed message is `e (32) ‖ encrypted s (48) ‖ encrypted payload (payload + 16)`: 96 bytes
 * more than the payload. Without a one-time prekey there is no forward secrecy for the recipient
 * (a stolen static key opens past sealed messages), as for any Noise `X` message; docs/SECURITY.md
 * says so.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./noise.ts";
 * import { openSealed, seal, sealPrologue } from "./seal.ts";
 *
 * const alice = generateKeyPair();
 * const bob = generateKeyPair();
 * const prologue = sealPrologue("bob");
 * const sealed = seal({ sender: alice, recipientKey: bob.publicKey, prologue,
 *   payload: new TextEncoder().encode("hi") });
 * const { senderKey, payload } = openSealed({ recipient: bob, sealed, prologue });
 * // senderKey equals alice.publicKey; payload is "hi"
 * ```
 *
 * @module
 */
import { concatBytes } from "@noble/hashes/utils.js";
import {
  dh,
  DH_LEN,
  generateKeyPair,
  type KeyPair,
  MAX_MESSAGE_LEN,
  NoiseError,
  SymmetricState,
  TAG_LEN,
} from "./noise.ts";

/** The Noise protocol name of a sealed message; its bytes initialise the hash. */
export const SEAL_PROTOCOL_NAME = "Noise_X_25519_ChaChaPoly_SHA256";
/** Bytes a sealed message adds to its payload: e, the encrypted s, and the payload's tag. */
export const SEAL_OVERHEAD = DH_LEN + (DH_LEN + TAG_LEN) + TAG_LEN;
/** The largest payload that can be sealed (a Noise message is at most 65,535 bytes). */
export const MAX_SEALED_PAYLOAD = MAX_MESSAGE_LEN - SEAL_OVERHEAD;

/**
 * The prologue of a message sealed for `recipient`: `"p2p/mail/1\n" + recipient` in UTF-8. It
 * binds the recipient's name into the message, so that one sealed for bob does not open as a
 * message to another name of the same key.
 *
 * @example
 * ```ts
 * new TextDecoder().decode(sealPrologue("bob")); // "p2p/mail/1\nbob"
 * ```
 */
export function sealPrologue(recipient: string): Uint8Array {
  return new TextEncoder().encode(`p2p/mail/1\n${recipient}`);
}

/** Options for {@linkcode seal}. */
export interface SealOptions {
  /** The sender's static key pair; its public key travels encrypted inside. */
  sender: KeyPair;
  /** The recipient's 32-byte static public key. */
  recipientKey: Uint8Array;
  /** What to seal, at most {@linkcode MAX_SEALED_PAYLOAD} bytes. */
  payload: Uint8Array;
  /** Bytes both sides must agree on: use {@linkcode sealPrologue}. Default empty. */
  prologue?: Uint8Array;
  /** A fixed ephemeral key pair, for test vectors only; default a fresh random one. */
  ephemeral?: KeyPair;
}

/**
 * Seals `payload` for the holder of `recipientKey` (Noise `X`, initiator side).
 *
 * @throws {NoiseError} if a key has the wrong length or is invalid, or the payload is too long.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./noise.ts";
 *
 * const sealed = seal({ sender: generateKeyPair(), recipientKey: generateKeyPair().publicKey,
 *   payload: new Uint8Array(10) });
 * console.log(sealed.length); // 106
 * ```
 */
export function seal(options: SealOptions): Uint8Array {
  const { sender, recipientKey, payload } = options;
  checkKey("recipient's public", recipientKey);
  checkKey("sender's secret", sender.secretKey);
  if (payload.length > MAX_SEALED_PAYLOAD) {
    throw new NoiseError(
      `Cannot seal: the payload is ${payload.length} bytes, more than ${MAX_SEALED_PAYLOAD}`,
    );
  }
  const ephemeral = options.ephemeral ?? generateKeyPair();
  const ss = start(options.prologue, recipientKey);
  ss.mixHash(ephemeral.publicKey);
  ss.mixKey(dh(ephemeral, recipientKey));
  const encryptedStatic = ss.encryptAndHash(sender.publicKey);
  ss.mixKey(dh(sender, recipientKey));
  return concatBytes(ephemeral.publicKey, encryptedStatic, ss.encryptAndHash(payload));
}

/** Options for {@linkcode openSealed}. */
export interface OpenOptions {
  /** The recipient's static key pair. */
  recipient: KeyPair;
  /** The sealed message. */
  sealed: Uint8Array;
  /** The prologue the sender used. Default empty. */
  prologue?: Uint8Array;
}

/** What {@linkcode openSealed} recovers. */
export interface Opened {
  /** The sender's static public key, authenticated by the `ss` DH. */
  senderKey: Uint8Array;
  /** The payload. */
  payload: Uint8Array;
}

/**
 * Opens a message sealed for `recipient` (Noise `X`, responder side).
 *
 * @throws {NoiseError} if it is too short or too long, was sealed for another key or with
 * another prologue, or was tampered with.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./noise.ts";
 *
 * const bob = generateKeyPair();
 * const sealed = seal({ sender: generateKeyPair(), recipientKey: bob.publicKey,
 *   payload: new Uint8Array([1]) });
 * openSealed({ recipient: bob, sealed }).payload; // Uint8Array [1]
 * ```
 */
export function openSealed(options: OpenOptions): Opened {
  const { recipient, sealed } = options;
  checkKey("recipient's secret", recipient.secretKey);
  if (sealed.length < SEAL_OVERHEAD || sealed.length > MAX_MESSAGE_LEN) {
    throw new NoiseError(
      `Cannot open sealed message: length ${sealed.length} is outside ` +
        `${SEAL_OVERHEAD}..${MAX_MESSAGE_LEN} bytes`,
    );
  }
  const ss = start(options.prologue, recipient.publicKey);
  const ephemeralKey = sealed.subarray(0, DH_LEN);
  ss.mixHash(ephemeralKey);
  ss.mixKey(dh(recipient, ephemeralKey));
  const senderKey = ss.decryptAndHash(sealed.subarray(DH_LEN, 2 * DH_LEN + TAG_LEN));
  ss.mixKey(dh(recipient, senderKey));
  return { senderKey, payload: ss.decryptAndHash(sealed.subarray(2 * DH_LEN + TAG_LEN)) };
}

/** Noise `Initialize()` for X: the prologue, then the recipient's pre-message `s`. */
function start(prologue: Uint8Array | undefined, recipientKey: Uint8Array): SymmetricState {
  const ss = new SymmetricState(SEAL_PROTOCOL_NAME);
  ss.mixHash(prologue ?? new Uint8Array(0));
  ss.mixHash(recipientKey);
  return ss;
}

function checkKey(what: string, key: Uint8Array): void {
  if (key.length !== DH_LEN) {
    throw new NoiseError(`Cannot seal or open: the ${what} key is ${key.length} bytes, not 32`);
  }
}
