/**
 * The Noise XX handshake between two peers, as a state machine without I/O: it takes the
 * handshake frames that arrive and the time from an injected clock, and says what to send, when
 * to repeat it, and which session it established. {@linkcode Link} carries the bytes; keeping the
 * rules here lets them be tested frame by frame, without sockets or timers.
 *
 * The rules (docs/PROTOCOL.md §2.3):
 * - The peer whose name sorts first (JavaScript string order) initiates, on every introduction
 *   once a path exists; the other only responds. No simultaneous-open races.
 * - An unanswered HS1 (or an unconfirmed HS3, or an HS2 without its HS3) is repeated every second,
 *   up to 10 times; then the handshake is abandoned and a new introduction asked for.
 * - A repeated HS1 is answered by repeating our HS2, without a new key exchange; a repeated HS3 by
 *   repeating the confirmation (an empty DATA packet, which the link seals).
 * - HS2 and HS3 carry the sender's *instance id* (4 bytes, random per process, encrypted). A new
 *   instance means the other side restarted: its receive state is gone (`restarted`).
 * - The static key the handshake proves must be the one the coordinator introduced, and the user's
 *   trust store must accept it (`verifyKey`); otherwise the handshake is abandoned, and the
 *   initiator sends no HS3, so the peer learns nothing about us either.
 * - **No key exchange for strangers.** Every handshake frame ends in `mac1`, keyed to the token of
 *   the introduction (the latest or the one before, which may still be in flight), checked before
 *   any Noise work: a frame without a valid one is dropped and counted (`badMacs`), and so is a
 *   copy of an HS1 already answered before the one in progress (`replays`). A fresh HS1 then goes
 *   through the link's {@linkcode CookieGate} (a budget of key exchanges; under load, a cookie
 *   first). An initiator that gets a COOKIE for its HS1 repeats it with `mac2` keyed to that
 *   cookie (`handshake_macs.ts`).
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "../crypto/noise.ts";
 * import { decodeFrame } from "../protocol/frame.ts";
 * import { Handshake, type HandshakeFrame } from "./handshake.ts";
 *
 * const [a, b] = [generateKeyPair(), generateKeyPair()];
 * const trustAll = () => true;
 * const alice = new Handshake({ me: "alice", peer: "bob", staticKeyPair: a, instanceId: 1, verifyKey: trustAll });
 * const bob = new Handshake({ me: "bob", peer: "alice", staticKeyPair: b, instanceId: 2, verifyKey: trustAll });
 * const token = crypto.getRandomValues(new Uint8Array(16)); // the introduction's
 * alice.introduce(b.publicKey, token);
 * bob.introduce(a.publicKey, token);
 * const frame = (bytes: Uint8Array) => decodeFrame(bytes) as HandshakeFrame;
 * const hs2 = bob.receive(frame(alice.begin()!)).send!;
 * const hs3 = alice.receive(frame(hs2)).send!; // and alice's session, with bob's instance id 2
 * bob.receive(frame(hs3)); // bob's session, alice's instance id 1, and a confirmation to send
 * ```
 * @module
 */
import { constantTimeEqual, equalBytes } from "../bytes.ts";
import { type Clock, realClock } from "../clock.ts";
import { HandshakeState, type KeyPair, NoiseError, prologueFor } from "../crypto/noise.ts";
import { type Session, sessionFromHandshake } from "../crypto/session.ts";
import {
  encodeFrame,
  type Frame,
  frameHeader,
  FrameType,
  HANDSHAKE_MAC_LENGTH,
  handshakeSigned,
  type HandshakeType,
} from "../protocol/frame.ts";
import { CookieGate } from "./cookie_gate.ts";
import { cookieReplyMac, handshakeMac1, handshakeMac2, validMac1 } from "./handshake_macs.ts";

/** How often an unanswered handshake message is repeated. */
export const HANDSHAKE_RETRY_MS = 1000;
/** How many times it is sent before the handshake is abandoned. */
export const HANDSHAKE_ATTEMPTS = 10;

/** Options for {@linkcode Handshake}. */
export interface HandshakeOptions {
  me: string;
  peer: string;
  staticKeyPair: KeyPair;
  /** Random per process; lets the other side detect that we restarted. */
  instanceId: number;
  /** The trust decision on the key the handshake proved (it matched the introduced one). */
  verifyKey: (key: Uint8Array) => boolean;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
}

/** A cookie is used for new HS1s this long after it arrived (the responder's secret rotates). */
export const COOKIE_LIFETIME_MS = 120_000;
/** HS1s answered (by their `mac1`) remembered, so that an old copy gets no key exchange. */
const ANSWERED_KEPT = 8;

/** A handshake frame, as `decodeFrame` returns it. */
export type HandshakeFrame = Extract<Frame, { type: HandshakeType }>;
/** A COOKIE frame, as `decodeFrame` returns it. */
export type CookieFrame = Extract<Frame, { type: "cookie" }>;

/** A session the handshake established. */
export interface Established {
  session: Session;
  /** The peer's instance id. */
  instance: number;
  /** The instance differs from the one of the previous session: the peer restarted. */
  restarted: boolean;
}

/**
 * What to do after a handshake frame, in this order: transmit `send`, install `established`,
 * then confirm (an empty DATA packet on the new session) if `confirm`. `cookieReply` goes back
 * to where the HS1 came from (not on the path): that address must prove it receives there.
 */
export interface HandshakeStep {
  send?: Uint8Array;
  established?: Established;
  confirm?: boolean;
  cookieReply?: Uint8Array;
}

/** What to do when the retry timer fires. */
export interface HandshakeRetry {
  /** A handshake message to repeat. */
  send?: Uint8Array;
  /** The peer never answered: ask the coordinator to introduce us again. */
  needIntroduction?: boolean;
}

/** Counters of refused handshake input. */
export interface HandshakeStats {
  /** Handshake messages that did not decrypt or carried no 4-byte instance id. */
  badHandshakes: number;
  /** Proven keys other than the introduced one. */
  keyMismatches: number;
  /** Handshake and COOKIE frames without a valid MAC (or before any introduction): no work. */
  badMacs: number;
  /** Copies of HS1s answered before the one in progress: no key exchange. */
  replays: number;
  /** Cookie replies sent (under load). */
  cookiesSent: number;
  /** Fresh HS1s dropped under load. */
  handshakesLimited: number;
}

/** Our handshake with one peer, across introductions. */
export class Handshake {
  /** Whether we initiate (our name sorts first). */
  readonly initiator: boolean;
  readonly #counts = { badHandshakes: 0, keyMismatches: 0, badMacs: 0, replays: 0 };
  readonly #o: HandshakeOptions;
  readonly #clock: Clock;
  readonly #gate: CookieGate;
  #introducedKey: Uint8Array | undefined;
  /** Tokens of the latest introduction and the one before: the keys of `mac1`. */
  #tokens: Uint8Array[] = [];
  /** The last cookie a responder gave us, and when. */
  #cookie: { value: Uint8Array; at: number } | undefined;
  /** `mac1`s of the HS1s we ran a key exchange for, newest last. */
  #answered: Uint8Array[] = [];
  /** The Noise state while a handshake is under way. */
  #hs: HandshakeState | undefined;
  /**
   * The message we repeat until answered: for an HS2, with the `signed` part of the HS1 it
   * answers; for an HS1, with its Noise message, re-sealed when a cookie comes.
   */
  #pending:
    | { frame: Uint8Array; answers?: Uint8Array; hs1?: Uint8Array; attempts: number; at: number }
    | undefined;
  /** The responder's last accepted HS3: a copy of it means our confirmation was lost. */
  #confirmedHs3: Uint8Array | undefined;
  /** The initiator handshakes again as soon as a path exists. */
  #wanted = false;
  #remoteInstance: number | undefined;

  constructor(options: HandshakeOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    this.#gate = new CookieGate(this.#clock);
    this.initiator = options.me < options.peer;
  }

  /** Counters of refused input. */
  get stats(): HandshakeStats {
    return { ...this.#counts, ...this.#gate.stats };
  }

  /**
   * A (new) introduction with the peer's key and the pair's token: the initiator will handshake
   * (again).
   */
  introduce(key: Uint8Array, token: Uint8Array): void {
    this.#introducedKey = key;
    if (!this.#tokens[0] || !equalBytes(this.#tokens[0], token)) {
      this.#tokens = [token, ...this.#tokens.slice(0, 1)];
    }
    if (this.initiator) this.#wanted = true;
  }

  /** The introduction found a path at once: the initiator's HS1, if it is to handshake. */
  begin(): Uint8Array | undefined {
    return this.#wanted ? this.#start() : undefined;
  }

  /**
   * A new path: the initiator's HS1 if it is to handshake, else the message still unanswered
   * (stuck on the dead path), if any.
   */
  onPath(): Uint8Array | undefined {
    return this.#wanted && !this.#hs ? this.#start() : this.#repeat();
  }

  /**
   * Handles a handshake frame from the peer, received directly from `source` (an address and
   * local socket, as a string: what a cookie is bound to) or, when undefined, through the relay.
   */
  receive(frame: HandshakeFrame, source?: string): HandshakeStep {
    const token = validMac1(this.#tokens, frame.signed, frame.mac1);
    if (!token) {
      this.#counts.badMacs++;
      return {};
    }
    switch (frame.type) {
      case "hs1":
        return this.#onHs1(frame, token, source);
      case "hs2":
        return this.#onHs2(frame.payload);
      case "hs3":
        return this.#onHs3(frame.payload, frame.raw);
    }
  }

  /**
   * Handles a COOKIE from the responder: when it answers our HS1 in progress, that HS1 is
   * repeated (at its next retry) with `mac2` keyed to the cookie, and so are new ones for
   * {@linkcode COOKIE_LIFETIME_MS}. Anything else is dropped and counted.
   */
  onCookie(frame: CookieFrame): void {
    const pending = this.#pending;
    const hs1 = pending?.hs1;
    // The mac1 of our HS1 in progress: 32 bytes from its end (mac1, then mac2).
    const mac1 = hs1 && pending.frame.slice(-2 * HANDSHAKE_MAC_LENGTH, -HANDSHAKE_MAC_LENGTH);
    const header = frameHeader(FrameType.COOKIE, frame.from);
    const valid = mac1 !== undefined &&
      this.#tokens.some((t) =>
        constantTimeEqual(cookieReplyMac(t, header, frame.cookie, mac1), frame.mac)
      );
    if (!valid || !this.initiator) {
      this.#counts.badMacs++;
      return;
    }
    this.#cookie = { value: frame.cookie, at: this.#clock.now() };
    pending!.frame = this.#seal("hs1", hs1!);
  }

  /** A DATA packet from the peer decrypted: the initiator's HS3 arrived, stop repeating it. */
  onData(): void {
    if (this.initiator && !this.#hs) this.#pending = undefined;
  }

  /** When {@linkcode Handshake.poll} has something to do; undefined when nothing waits. */
  nextDeadline(): number | undefined {
    return this.#pending && this.#pending.at + HANDSHAKE_RETRY_MS;
  }

  /** Repeats the unanswered message once a second, and gives up after the last attempt. */
  poll(): HandshakeRetry {
    const pending = this.#pending;
    if (!pending || this.#clock.now() - pending.at < HANDSHAKE_RETRY_MS) return {};
    if (pending.attempts < HANDSHAKE_ATTEMPTS) return { send: this.#repeat() };
    // The peer does not answer: start over from an introduction.
    this.#hs = undefined;
    this.#pending = undefined;
    if (this.initiator) this.#wanted = true;
    return { needIntroduction: true };
  }

  #start(): Uint8Array {
    this.#wanted = false;
    this.#hs = new HandshakeState({
      role: "initiator",
      staticKeyPair: this.#o.staticKeyPair,
      prologue: prologueFor(this.#o.me, this.#o.peer),
    });
    const hs1 = this.#hs.writeMessage();
    const frame = this.#seal("hs1", hs1);
    this.#pending = { frame, hs1, attempts: 1, at: this.#clock.now() };
    return frame;
  }

  /** Encodes a handshake frame with its MACs: `mac1` with `token`, `mac2` for an HS1. */
  #seal(type: HandshakeType, payload: Uint8Array, token = this.#tokens[0]): Uint8Array {
    const from = this.#o.me;
    const signed = handshakeSigned(type, from, payload);
    const mac1 = handshakeMac1(token, signed);
    if (type !== "hs1") return encodeFrame({ type, from, payload, mac1 });
    const cookie = this.#cookie;
    const fresh = cookie && this.#clock.now() - cookie.at < COOKIE_LIFETIME_MS;
    const mac2 = handshakeMac2(fresh ? cookie.value : undefined, signed, mac1);
    return encodeFrame({ type, from, payload, mac1, mac2 });
  }

  #repeat(): Uint8Array | undefined {
    const pending = this.#pending;
    if (!pending) return undefined;
    pending.attempts++;
    pending.at = this.#clock.now();
    return pending.frame;
  }

  /** An HS1 whose mac1 is valid under `token`: we answer under the same token. */
  #onHs1(
    frame: Extract<HandshakeFrame, { type: "hs1" }>,
    token: Uint8Array,
    source?: string,
  ): HandshakeStep {
    if (this.initiator) return {}; // by the name rule, we start handshakes; the peer only answers
    // Our HS2 was lost: repeat it (the HS1 may have gained a mac2 since).
    if (this.#pending?.answers && equalBytes(this.#pending.answers, frame.signed)) {
      return { send: this.#pending.frame };
    }
    if (this.#answered.some((m) => equalBytes(m, frame.mac1))) {
      this.#counts.replays++;
      return {};
    }
    const admission = this.#gate.admit(source, frame.signed, frame.mac1, frame.mac2);
    if (admission.kind === "drop") return {};
    if (admission.kind === "cookie") {
      const from = this.#o.me;
      const mac = cookieReplyMac(
        token,
        frameHeader(FrameType.COOKIE, from),
        admission.cookie,
        frame.mac1,
      );
      return { cookieReply: encodeFrame({ type: "cookie", from, cookie: admission.cookie, mac }) };
    }
    this.#answered = [...this.#answered.slice(1 - ANSWERED_KEPT), frame.mac1];
    const hs = new HandshakeState({
      role: "responder",
      staticKeyPair: this.#o.staticKeyPair,
      prologue: prologueFor(this.#o.peer, this.#o.me),
    });
    try {
      hs.readMessage(frame.payload);
      const hs2 = this.#seal("hs2", hs.writeMessage(this.#instancePayload()), token);
      this.#hs = hs;
      this.#pending = { frame: hs2, answers: frame.signed, attempts: 1, at: this.#clock.now() };
      this.#confirmedHs3 = undefined;
      return { send: hs2 };
    } catch (err) {
      if (!(err instanceof NoiseError)) throw err;
      this.#counts.badHandshakes++;
      return {};
    }
  }

  #onHs2(payload: Uint8Array): HandshakeStep {
    const hs = this.#hs;
    if (!this.initiator || !hs || hs.status !== "read") return {};
    const instance = this.#readInstance(hs, payload);
    if (instance === undefined) return {};
    if (!this.#acceptKey(hs.remoteStaticKey!)) {
      this.#hs = undefined; // refused: no HS3, so the peer learns nothing about us either
      this.#pending = undefined;
      return {};
    }
    const frame = this.#seal("hs3", hs.writeMessage(this.#instancePayload()));
    this.#hs = undefined;
    this.#pending = { frame, attempts: 1, at: this.#clock.now() };
    return { send: frame, established: this.#established(hs, instance) };
  }

  #onHs3(payload: Uint8Array, raw: Uint8Array): HandshakeStep {
    const hs = this.#hs;
    if (this.initiator) return {};
    if (!hs || hs.status !== "read") {
      // Our confirmation was lost: repeat it.
      return this.#confirmedHs3 && equalBytes(this.#confirmedHs3, raw) ? { confirm: true } : {};
    }
    const instance = this.#readInstance(hs, payload);
    if (instance === undefined) return {};
    this.#hs = undefined;
    this.#pending = undefined;
    if (!this.#acceptKey(hs.remoteStaticKey!)) return {};
    this.#confirmedHs3 = raw;
    return { established: this.#established(hs, instance), confirm: true };
  }

  #established(hs: HandshakeState, instance: number): Established {
    const restarted = this.#remoteInstance !== undefined && this.#remoteInstance !== instance;
    this.#remoteInstance = instance;
    return { session: sessionFromHandshake(hs), instance, restarted };
  }

  /** Checks the proven static key against the introduction and the user's trust. */
  #acceptKey(key: Uint8Array): boolean {
    if (!this.#introducedKey || !equalBytes(this.#introducedKey, key)) {
      this.#counts.keyMismatches++;
      return false;
    }
    return this.#o.verifyKey(key);
  }

  #instancePayload(): Uint8Array {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, this.#o.instanceId);
    return out;
  }

  /**
   * Reads HS2 or HS3 and the instance id it carries; a bad message is counted and undefined
   * returned. One that does not decrypt leaves the handshake as it was (the real one may follow);
   * one without a 4-byte instance id has used up the Noise state, and the handshake can only
   * time out.
   */
  #readInstance(hs: HandshakeState, payload: Uint8Array): number | undefined {
    try {
      const plain = hs.readMessage(payload);
      if (plain.length !== 4) {
        throw new NoiseError("handshake payload is not a 4-byte instance id");
      }
      return new DataView(plain.buffer, plain.byteOffset, 4).getUint32(0);
    } catch (err) {
      if (!(err instanceof NoiseError)) throw err;
      this.#counts.badHandshakes++;
      return undefined;
    }
  }
}
