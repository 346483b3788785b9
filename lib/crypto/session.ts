/**
 * Transport encryption for peer datagrams after a Noise handshake, in the style of WireGuard:
 * each packet carries its own counter, so packets may be lost or reordered, and a sliding
 * window (RFC 6479 style) rejects replays.
 *
 * Wire format of a sealed packet ({@linkcode SESSION_OVERHEAD} = 24 bytes of overhead):
 *
 * ```text
 * counter: 8 bytes, unsigned big-endian, 0 for the first packet of each direction
 * ciphertext || tag: ChaCha20-Poly1305(key = this direction's key,
 *                                      nonce = 4 zero bytes || counter as 8 bytes little-endian,
 *                                      ad = optional associated data, plaintext)
 * ```
 *
 * The counter is authenticated implicitly: changing it changes the nonce, so the tag fails.
 *
 * @example
 * ```ts
 * import { Session } from "./session.ts";
 *
 * const k1 = crypto.getRandomValues(new Uint8Array(32));
 * const k2 = crypto.getRandomValues(new Uint8Array(32));
 * const alice = new Session({ sendKey: k1, receiveKey: k2 });
 * const bob = new Session({ sendKey: k2, receiveKey: k1 });
 * const packet = alice.seal(new TextEncoder().encode("hello"));
 * bob.open(packet); // the plaintext bytes
 * bob.open(packet); // null: a replay, counted in bob.stats.replay
 * ```
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { type HandshakeState, noiseNonce, TAG_LEN } from "./noise.ts";

/** Length of the counter header, in bytes. */
export const COUNTER_LEN = 8;
/** Bytes a sealed packet adds to its plaintext: the counter and the authentication tag. */
export const SESSION_OVERHEAD: number = COUNTER_LEN + TAG_LEN;
/**
 * How far behind the highest accepted counter a packet may be and still be accepted: a packet
 * with counter `c` is accepted if `highest - c < REPLAY_WINDOW` and `c` was not seen before.
 */
export const REPLAY_WINDOW = 2048;

const WORD_BITS = 32;
// One spare word so that the ring never aliases a word still inside the window (RFC 6479).
const WINDOW_WORDS = REPLAY_WINDOW / WORD_BITS + 1;

/**
 * Counts of packets {@linkcode Session.open} dropped, by reason.
 *
 * @example
 * ```ts
 * import type { SessionStats } from "./session.ts";
 *
 * const total = (s: SessionStats): number => s.badMac + s.replay + s.tooOld + s.malformed;
 * ```
 */
export interface SessionStats {
  /** The tag did not verify: tampered, forged, wrong key or wrong associated data. */
  badMac: number;
  /** The counter was already accepted. */
  replay: number;
  /** The counter is {@linkcode REPLAY_WINDOW} or more behind the highest accepted one. */
  tooOld: number;
  /** Shorter than {@linkcode SESSION_OVERHEAD}, not bytes, or a counter above 2^53 - 1. */
  malformed: number;
}

/**
 * The two directional keys of a session; one side's `sendKey` is the other's `receiveKey`.
 * The `HandshakeResult` of `./noise.ts` has this shape.
 *
 * @example
 * ```ts
 * import type { SessionKeys } from "./session.ts";
 *
 * const keys: SessionKeys = { sendKey: new Uint8Array(32), receiveKey: new Uint8Array(32) };
 * ```
 */
export interface SessionKeys {
  /** 32-byte key for packets this side seals. */
  sendKey: Uint8Array;
  /** 32-byte key for packets this side opens. */
  receiveKey: Uint8Array;
}

/**
 * One side of an encrypted peer session: {@linkcode Session.seal} for outgoing datagrams and
 * {@linkcode Session.open} for incoming ones. `open` never throws; it returns null and counts
 * the reason in {@linkcode Session.stats}.
 *
 * @example
 * ```ts
 * import { Session } from "./session.ts";
 *
 * const key = new Uint8Array(32);
 * const loopback = new Session({ sendKey: key, receiveKey: key });
 * const ad = new TextEncoder().encode("chat");
 * loopback.open(loopback.seal(new Uint8Array([1]), ad), ad); // Uint8Array [1]
 * ```
 */
export class Session {
  readonly #sendKey: Uint8Array;
  readonly #receiveKey: Uint8Array;
  #sendCounter = 0;
  // Highest accepted counter, -1 before the first packet.
  #highest = -1;
  readonly #bitmap = new Uint32Array(WINDOW_WORDS);
  readonly #stats: SessionStats = { badMac: 0, replay: 0, tooOld: 0, malformed: 0 };

  /**
   * Creates a session from its two keys (copied).
   *
   * @throws {RangeError} if a key is not 32 bytes long.
   */
  constructor(keys: SessionKeys) {
    for (
      const [what, key] of [["sendKey", keys.sendKey], ["receiveKey", keys.receiveKey]] as const
    ) {
      if (key.length !== 32) {
        throw new RangeError(`Cannot create session: ${what} is ${key.length} bytes, not 32`);
      }
    }
    this.#sendKey = keys.sendKey.slice();
    this.#receiveKey = keys.receiveKey.slice();
  }

  /** Drop counters so far, by reason (a live view; do not modify). */
  get stats(): Readonly<SessionStats> {
    return this.#stats;
  }

  /**
   * Encrypts `plaintext` into a packet of `plaintext.length + SESSION_OVERHEAD` bytes, bound to
   * the optional associated data `ad` (which is not sent; the receiver must pass the same).
   * `plaintext` may come in parts, sealed as their concatenation; `options.prefix` is put in front
   * of the packet, unsealed (a frame header): one buffer per datagram instead of a copy per layer.
   *
   * @throws {RangeError} if 2^53 - 1 packets were already sealed with this session.
   */
  seal(
    plaintext: Uint8Array | readonly Uint8Array[],
    ad?: Uint8Array,
    options: { prefix?: Uint8Array } = {},
  ): Uint8Array {
    if (this.#sendCounter >= Number.MAX_SAFE_INTEGER) {
      throw new RangeError("Cannot seal: the send counter is exhausted; make a new handshake");
    }
    const parts = plaintext instanceof Uint8Array ? [plaintext] : plaintext;
    let length = 0;
    for (const part of parts) length += part.length;
    const at = options.prefix?.length ?? 0;
    const counter = this.#sendCounter++;
    const packet = new Uint8Array(at + SESSION_OVERHEAD + length);
    if (options.prefix) packet.set(options.prefix);
    const view = new DataView(packet.buffer, at, COUNTER_LEN);
    view.setUint32(0, Math.floor(counter / 0x1_0000_0000));
    view.setUint32(4, counter >>> 0);
    // node:crypto's ChaCha20-Poly1305 (OpenSSL) runs ~2.5x @noble's speed on 1,200-byte
    // packets here: what file transfers are bound by (docs/FILES.md). Same construction.
    const cipher = createCipheriv("chacha20-poly1305", this.#sendKey, noiseNonce(counter), {
      authTagLength: TAG_LEN,
    });
    if (ad) cipher.setAAD(ad, { plaintextLength: length });
    let out = at + COUNTER_LEN;
    for (const part of parts) {
      packet.set(cipher.update(part), out); // a stream cipher: parts seal as one plaintext
      out += part.length;
    }
    cipher.final();
    packet.set(cipher.getAuthTag(), out);
    return packet;
  }

  /**
   * Authenticates and decrypts a packet made by the peer's {@linkcode Session.seal}, with the
   * same associated data. Returns null, and counts the reason, if the packet is malformed,
   * replayed, too old for the window, or fails authentication. Never throws.
   */
  open(packet: Uint8Array, ad?: Uint8Array): Uint8Array | null {
    if (!(packet instanceof Uint8Array) || packet.length < SESSION_OVERHEAD) {
      this.#stats.malformed++;
      return null;
    }
    const view = new DataView(packet.buffer, packet.byteOffset, COUNTER_LEN);
    const high = view.getUint32(0);
    // This side never seals past 2^53 - 1, so larger counters can only be forgeries.
    if (high > 0x1f_ffff) {
      this.#stats.malformed++;
      return null;
    }
    const counter = high * 0x1_0000_0000 + view.getUint32(4);
    if (this.#highest - counter >= REPLAY_WINDOW) {
      this.#stats.tooOld++;
      return null;
    }
    if (counter <= this.#highest && this.#isSeen(counter)) {
      this.#stats.replay++;
      return null;
    }
    let plaintext: Uint8Array;
    try {
      const sealed = packet.subarray(COUNTER_LEN);
      const length = sealed.length - TAG_LEN;
      const decipher = createDecipheriv(
        "chacha20-poly1305",
        this.#receiveKey,
        noiseNonce(counter),
        { authTagLength: TAG_LEN },
      );
      if (ad) decipher.setAAD(ad, { plaintextLength: length });
      decipher.setAuthTag(sealed.subarray(length));
      const out = decipher.update(sealed.subarray(0, length));
      decipher.final(); // throws when the tag does not match
      plaintext = new Uint8Array(out.buffer, out.byteOffset, out.length);
    } catch {
      this.#stats.badMac++;
      return null;
    }
    // Only authenticated packets may move the window, or forgeries could push it forward.
    this.#markSeen(counter);
    return plaintext;
  }

  #isSeen(counter: number): boolean {
    const word = this.#bitmap[Math.floor(counter / WORD_BITS) % WINDOW_WORDS];
    return (word & (1 << (counter % WORD_BITS))) !== 0;
  }

  #markSeen(counter: number): void {
    const index = Math.floor(counter / WORD_BITS);
    if (counter > this.#highest) {
      const current = Math.floor(this.#highest / WORD_BITS);
      const advance = Math.min(index - current, WINDOW_WORDS);
      for (let i = 1; i <= advance; i++) this.#bitmap[(current + i) % WINDOW_WORDS] = 0;
      this.#highest = counter;
    }
    this.#bitmap[index % WINDOW_WORDS] |= 1 << (counter % WORD_BITS);
  }
}

/**
 * Builds this party's {@linkcode Session} from a finished handshake (calls its `split()`).
 *
 * @throws {NoiseError} (from `./noise.ts`) if the handshake is not finished.
 *
 * @example
 * ```ts
 * import { generateKeyPair, HandshakeState } from "./noise.ts";
 * import { sessionFromHandshake } from "./session.ts";
 *
 * const i = new HandshakeState({ role: "initiator", staticKeyPair: generateKeyPair() });
 * const r = new HandshakeState({ role: "responder", staticKeyPair: generateKeyPair() });
 * r.readMessage(i.writeMessage());
 * i.readMessage(r.writeMessage());
 * r.readMessage(i.writeMessage());
 * const alice = sessionFromHandshake(i);
 * const bob = sessionFromHandshake(r);
 * bob.open(alice.seal(new Uint8Array([42]))); // Uint8Array [42]
 * ```
 */
export function sessionFromHandshake(handshake: HandshakeState): Session {
  const { sendKey, receiveKey } = handshake.split();
  return new Session({ sendKey, receiveKey });
}
