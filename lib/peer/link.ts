/**
 * Everything between us and one other peer: the path (direct endpoint or relay, chosen by
 * {@linkcode PathFinder}), the Noise XX handshake and the encrypted {@linkcode Session}, and the
 * {@linkcode ReliableChannel} that turns chat messages into acknowledged, ordered segments.
 * Sockets stay outside: the peer passes in frames and gives two ways out (to an endpoint, or via
 * the coordinator's relay). One timer per link drives every state machine inside it.
 *
 * Handshake rules (docs/PROTOCOL.md §2.3):
 * - The peer whose name sorts first (JavaScript string order) initiates, on every introduction
 *   once a path exists; the other only responds. No simultaneous-open races.
 * - HS2 and HS3 carry the sender's *instance id* (random per process, encrypted). A new instance
 *   means the other side restarted: its receive state is gone, so the messages we had in flight
 *   are re-sent on a fresh reliable stream instead of being given up.
 * - The responder confirms HS3 with an empty DATA packet; the initiator repeats HS3 until any
 *   DATA from the responder decrypts.
 * - The static key the handshake proves must be the one the coordinator introduced, and the user's
 *   trust store must accept it (`verifyKey`); otherwise the handshake is abandoned.
 *
 * @example
 * ```ts
 * const link = new Link({ me: "alice", peer: "bob", ...callbacks });
 * link.introduce({ candidates, key, token });
 * link.send({ group: false, id: 1, text: "hi" });
 * ```
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual, equalBytes } from "../bytes.ts";
import { HandshakeState, type KeyPair, NoiseError, prologueFor } from "../crypto/noise.ts";
import { type Session, SESSION_OVERHEAD, sessionFromHandshake } from "../crypto/session.ts";
import {
  type ChatMessage,
  ChatMessageError,
  decodeChatMessage,
  encodeChatMessage,
} from "../protocol/chat_message.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import type { NatKind } from "../protocol/whoami.ts";
import {
  encodeFrame,
  type Frame,
  frameHeader,
  FrameType,
  PROBE_MAC_LENGTH,
} from "../protocol/frame.ts";
import { DEFAULT_MAX_SEGMENT_SIZE, ReliableChannel } from "./reliable.ts";
import {
  BIRTHDAY_SOCKETS,
  type Candidate,
  type Path,
  PathFinder,
  type PathFinderOptions,
} from "./traversal.ts";

/** What the coordinator's introduction tells us about the other peer. */
export interface Introduction {
  candidates: Candidate[];
  /** Its X25519 public key, as the coordinator knows it. */
  key: Uint8Array;
  /** Shared secret for authenticating probes between the two of us. */
  token: Uint8Array;
  /** Its NAT kind, when it reported one: with ours, decides on a birthday search. */
  nat?: NatKind;
}

/** Options for {@linkcode Link}. */
export interface LinkOptions {
  me: string;
  peer: string;
  staticKeyPair: KeyPair;
  /** Random per process; lets the other side detect that we restarted. */
  instanceId: number;
  now: () => number;
  /**
   * Sends a frame straight to an endpoint, from the main socket (0) or an extra one, with a TTL
   * when priming NAT mappings.
   */
  sendTo: (frame: Uint8Array, to: Endpoint, ttl?: number, socket?: number) => void;
  /** Opens `count` extra sockets for a birthday search; resolves with their ids. */
  openSockets: (count: number) => Promise<number[]>;
  /** Closes extra sockets no longer needed. */
  closeSockets: (ids: number[]) => void;
  /** Our NAT kind, once known. */
  localNat: () => NatKind | undefined;
  /** Sends a frame through the coordinator's relay. */
  sendViaRelay: (frame: Uint8Array) => void;
  /** Asks the coordinator to introduce us (again). */
  requestIntroduction: () => void;
  /** The trust decision on the key the handshake proved: true to go on. */
  verifyKey: (key: Uint8Array) => boolean;
  onMessage: (msg: ChatMessage, path: Path) => void;
  onDelivered: (id: number) => void;
  onUndelivered: (id: number, reason: string) => void;
  onPath: (path: Path) => void;
  /**
   * Messages are reported undelivered when the peer stays unreachable this long: no session
   * within it, or (inside the reliable channel) nothing new acknowledged for it; default 30 s.
   */
  giveUpAfterMs?: number;
  /** Timings of the path finder (tests shorten them). */
  pathOptions?: Partial<PathFinderOptions>;
}

/** How often a handshake message is repeated while unanswered, and how many times. */
const HANDSHAKE_RETRY_MS = 1000;
const HANDSHAKE_ATTEMPTS = 10;
/** Largest datagram we send: safe on every path, tunnels and PPPoE included. */
export const MAX_DATAGRAM = 1200;
/** Introductions requested at most this often. */
const INTRO_INTERVAL_MS = 2000;

interface Queued {
  msg: ChatMessage;
  since: number;
}

/** Counters of dropped and handled input, for diagnostics and tests. */
export interface LinkStats {
  badProbes: number;
  badHandshakes: number;
  keyMismatches: number;
  undecryptable: number;
  badMessages: number;
}

/** One peer's path, session and reliable channel. */
export class Link {
  readonly peer: string;
  readonly stats: LinkStats = {
    badProbes: 0,
    badHandshakes: 0,
    keyMismatches: 0,
    undecryptable: 0,
    badMessages: 0,
  };
  readonly #o: LinkOptions;
  readonly #initiator: boolean;
  readonly #pathFinder: PathFinder;
  readonly #giveUpAfterMs: number;
  #intro: Introduction | undefined;
  #channel: ReliableChannel;
  /** Messages handed to the channel and not yet settled, by channel id. */
  #inChannel = new Map<number, ChatMessage>();
  /** Messages waiting for a session. */
  #queue: Queued[] = [];
  #session: Session | undefined;
  #previousSession: Session | undefined;
  #remoteInstance: number | undefined;
  #hs: HandshakeState | undefined;
  /** The last handshake message we sent and what it answered, for repeats. */
  #hsSent: { frame: Uint8Array; answers?: Uint8Array; attempts: number; at: number } | undefined;
  #confirmed = false;
  #wantHandshake = false;
  #lastIntroRequest = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: LinkOptions) {
    this.#o = options;
    this.peer = options.peer;
    this.#initiator = options.me < options.peer;
    this.#giveUpAfterMs = options.giveUpAfterMs ?? 30_000;
    this.#pathFinder = new PathFinder({
      ...options.pathOptions,
      now: options.now,
      relayAvailable: true,
      sendProbe: (to, txid, opts) =>
        this.#sendProbe(FrameType.PROBE, to, txid, opts.socket, opts.ttl),
      sendProbeAck: (to, txid, socket) => this.#sendProbe(FrameType.PROBE_ACK, to, txid, socket),
      releaseSockets: (ids) => options.closeSockets(ids),
      onPath: (path) => this.#onPath(path),
      onNeedIntroduction: () => this.requestIntroduction(),
    });
    this.#channel = this.#newChannel();
  }

  /** The path in use. */
  get path(): Path {
    return this.#pathFinder.path;
  }

  /** Whether messages are waiting to be sent or confirmed. */
  get hasPending(): boolean {
    return this.#queue.length > 0 || this.#inChannel.size > 0;
  }

  /** Whether an encrypted session is up. */
  get secured(): boolean {
    return this.#session !== undefined;
  }

  /** Starts (or restarts) probing with fresh candidates; the initiator handshakes again. */
  introduce(intro: Introduction): void {
    if (this.#closed) return;
    this.#intro = intro;
    if (this.#initiator) this.#wantHandshake = true;
    this.#pathFinder.start(intro.candidates);
    this.#maybeBirthday(intro.nat);
    if (this.#wantHandshake && this.path.kind !== "none") this.#startHandshake();
    this.#schedule();
  }

  /**
   * One symmetric ("hard") side and one easy side: start a birthday search alongside the normal
   * one. The hard side opens {@linkcode BIRTHDAY_SOCKETS} extra sockets; the easy side sprays
   * probes at random ports. Two hard sides cannot meet this way: they stay on the relay.
   */
  #maybeBirthday(peerNat: NatKind | undefined): void {
    const local = this.#o.localNat();
    if (!peerNat || !local || local === peerNat || this.#pathFinder.birthday) return;
    if (this.path.kind === "direct") return;
    if (local === "easy") {
      this.#pathFinder.startBirthday({ role: "spray" });
      this.#schedule();
      return;
    }
    this.#o.openSockets(BIRTHDAY_SOCKETS).then((sockets) => {
      if (this.#closed || this.path.kind === "direct" || this.#pathFinder.birthday) {
        this.#o.closeSockets(sockets);
        return;
      }
      this.#pathFinder.startBirthday({ role: "sockets", sockets });
      this.#schedule();
    }, () => {
      // No sockets to spare (descriptor limit): go on without a birthday search.
    });
  }

  /** Queues a chat message; `onDelivered`/`onUndelivered` report its fate by `msg.id`. */
  send(msg: ChatMessage): void {
    if (this.#closed) return;
    this.#queue.push({ msg, since: this.#o.now() });
    if (!this.#intro) this.requestIntroduction();
    this.#flush();
    this.#schedule();
  }

  /** Asks the coordinator for an introduction, at most once every 2 s. */
  requestIntroduction(): void {
    const now = this.#o.now();
    if (now - this.#lastIntroRequest < INTRO_INTERVAL_MS) return;
    this.#lastIntroRequest = now;
    this.#o.requestIntroduction();
  }

  /** Handles a frame from this peer, received directly from `from` or through the relay. */
  receive(frame: Frame, from: Endpoint | "relay", socket = 0): void {
    if (this.#closed) return;
    switch (frame.type) {
      case "probe":
      case "probe-ack":
        if (from === "relay" || !this.#probeMacValid(frame)) {
          this.stats.badProbes++;
          break;
        }
        if (frame.type === "probe") this.#pathFinder.onProbe(from, frame.txid, socket);
        else this.#pathFinder.onProbeAck(from, frame.txid, socket);
        break;
      case "hs1":
        this.#onHs1(frame.payload, frame.raw);
        break;
      case "hs2":
        this.#onHs2(frame.payload);
        break;
      case "hs3":
        this.#onHs3(frame.payload, frame.raw);
        break;
      case "data":
        this.#onData(frame.payload, frame.header, from, socket);
        break;
    }
    this.#schedule();
  }

  /** Stops everything; messages not yet delivered are reported undelivered with `reason`. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#pathFinder.stop();
    for (const { msg } of this.#queue.splice(0)) this.#o.onUndelivered(msg.id, reason);
    for (const msg of this.#inChannel.values()) this.#o.onUndelivered(msg.id, reason);
    this.#inChannel.clear();
  }

  // --- path --------------------------------------------------------------------------------

  #onPath(path: Path): void {
    this.#o.onPath(path);
    if (path.kind === "none") return;
    if (this.#wantHandshake && !this.#hs) this.#startHandshake();
    else this.#resendHandshake(); // a handshake stuck on a dead path goes out on the new one
    this.#flush();
  }

  #transmit(frame: Uint8Array): boolean {
    const path = this.path;
    if (path.kind === "direct") {
      this.#o.sendTo(frame, path.endpoint, undefined, path.socket);
      this.#pathFinder.onTrafficSent(); // an unanswered send is how a broken path shows up
    } else if (path.kind === "relay") this.#o.sendViaRelay(frame);
    else return false;
    return true;
  }

  /** HMAC of a probe's header (type and sender) and txid, with the introduction's token. */
  #probeMac(token: Uint8Array, type: number, sender: string, txid: number): Uint8Array {
    const header = frameHeader(type, sender);
    const msg = new Uint8Array(header.length + 4);
    msg.set(header);
    new DataView(msg.buffer).setUint32(header.length, txid);
    return hmac(sha256, token, msg).subarray(0, PROBE_MAC_LENGTH);
  }

  #sendProbe(type: number, to: Endpoint, txid: number, socket: number, ttl?: number): void {
    if (!this.#intro) return;
    const mac = this.#probeMac(this.#intro.token, type, this.#o.me, txid);
    const frame = encodeFrame({
      type: type === FrameType.PROBE ? "probe" : "probe-ack",
      from: this.#o.me,
      txid,
      mac,
    });
    this.#o.sendTo(frame, to, ttl, socket);
  }

  #probeMacValid(frame: Extract<Frame, { type: "probe" | "probe-ack" }>): boolean {
    if (!this.#intro) return false;
    const type = frame.type === "probe" ? FrameType.PROBE : FrameType.PROBE_ACK;
    const expected = this.#probeMac(this.#intro.token, type, this.#o.peer, frame.txid);
    return constantTimeEqual(expected, frame.mac);
  }

  // --- handshake ---------------------------------------------------------------------------

  #prologue(): Uint8Array {
    return this.#initiator
      ? prologueFor(this.#o.me, this.#o.peer)
      : prologueFor(this.#o.peer, this.#o.me);
  }

  #instancePayload(): Uint8Array {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, this.#o.instanceId);
    return out;
  }

  #startHandshake(): void {
    this.#wantHandshake = false;
    this.#hs = new HandshakeState({
      role: "initiator",
      staticKeyPair: this.#o.staticKeyPair,
      prologue: this.#prologue(),
    });
    const frame = encodeFrame({ type: "hs1", from: this.#o.me, payload: this.#hs.writeMessage() });
    this.#hsSent = { frame, attempts: 1, at: this.#o.now() };
    this.#transmit(frame);
  }

  #resendHandshake(): void {
    const sent = this.#hsSent;
    if (!sent || (this.#hs === undefined && this.#confirmed)) return;
    sent.attempts++;
    sent.at = this.#o.now();
    this.#transmit(sent.frame);
  }

  /** Checks the proven static key against the introduction and the user's trust. */
  #acceptKey(key: Uint8Array): boolean {
    const introduced = this.#intro?.key;
    if (!introduced || !equalBytes(introduced, key)) {
      this.stats.keyMismatches++;
      return false;
    }
    return this.#o.verifyKey(key);
  }

  #onHs1(payload: Uint8Array, raw: Uint8Array): void {
    if (this.#initiator) return; // by the name rule, we start handshakes; the peer only answers
    if (this.#hsSent?.answers && equalBytes(this.#hsSent.answers, raw)) {
      this.#transmit(this.#hsSent.frame); // our HS2 was lost: repeat it
      return;
    }
    const hs = new HandshakeState({
      role: "responder",
      staticKeyPair: this.#o.staticKeyPair,
      prologue: this.#prologue(),
    });
    try {
      hs.readMessage(payload);
      const frame = encodeFrame({
        type: "hs2",
        from: this.#o.me,
        payload: hs.writeMessage(this.#instancePayload()),
      });
      this.#hs = hs;
      this.#hsSent = { frame, answers: raw, attempts: 1, at: this.#o.now() };
      this.#transmit(frame);
    } catch (err) {
      if (!(err instanceof NoiseError)) throw err;
      this.stats.badHandshakes++;
    }
  }

  /**
   * Reads HS2 or HS3 and the instance id it carries; a bad message is counted and leaves the
   * handshake as it was (undefined is returned).
   */
  #readInstance(hs: HandshakeState, payload: Uint8Array): number | undefined {
    try {
      return readInstance(hs.readMessage(payload));
    } catch (err) {
      if (!(err instanceof NoiseError)) throw err;
      this.stats.badHandshakes++;
      return undefined;
    }
  }

  #onHs2(payload: Uint8Array): void {
    const hs = this.#hs;
    if (!this.#initiator || !hs || hs.status !== "read") return;
    const instance = this.#readInstance(hs, payload);
    if (instance === undefined) return;
    if (!this.#acceptKey(hs.remoteStaticKey!)) {
      this.#hs = undefined; // refused: no HS3, so the peer learns nothing about us either
      this.#hsSent = undefined;
      return;
    }
    const frame = encodeFrame({
      type: "hs3",
      from: this.#o.me,
      payload: hs.writeMessage(this.#instancePayload()),
    });
    this.#hs = undefined;
    this.#hsSent = { frame, attempts: 1, at: this.#o.now() };
    this.#confirmed = false;
    this.#transmit(frame);
    this.#install(sessionFromHandshake(hs), instance);
  }

  #onHs3(payload: Uint8Array, raw: Uint8Array): void {
    const hs = this.#hs;
    if (this.#initiator) return;
    if (!hs || hs.status !== "read") {
      if (this.#session && this.#hsSent?.answers && equalBytes(this.#hsSent.answers, raw)) {
        this.#sendConfirm(); // our confirmation was lost: repeat it
      }
      return;
    }
    const instance = this.#readInstance(hs, payload);
    if (instance === undefined) return;
    this.#hs = undefined;
    if (!this.#acceptKey(hs.remoteStaticKey!)) {
      this.#hsSent = undefined;
      return;
    }
    this.#hsSent = { frame: new Uint8Array(), answers: raw, attempts: HANDSHAKE_ATTEMPTS, at: 0 };
    this.#install(sessionFromHandshake(hs), instance);
    this.#sendConfirm();
  }

  #sendConfirm(): void {
    this.#sendData(new Uint8Array());
  }

  #install(session: Session, instance: number): void {
    this.#previousSession = this.#session;
    this.#session = session;
    if (this.#remoteInstance !== undefined && this.#remoteInstance !== instance) {
      // The peer restarted: what it had of our stream is gone. Re-send what it never confirmed,
      // in order, on a fresh channel (a fresh stream id).
      const unsettled = [...this.#inChannel.values()];
      this.#inChannel.clear();
      this.#channel = this.#newChannel();
      const now = this.#o.now();
      this.#queue.unshift(...unsettled.map((msg) => ({ msg, since: now })));
    }
    this.#remoteInstance = instance;
    this.#flush();
  }

  // --- data --------------------------------------------------------------------------------

  #newChannel(): ReliableChannel {
    const nameBytes = (name: string) => 2 + new TextEncoder().encode(name).length;
    const channel: ReliableChannel = new ReliableChannel({
      now: this.#o.now,
      giveUpAfterMs: this.#giveUpAfterMs,
      // Whole datagrams, relay wrapper included, stay within 1200 bytes whatever the names.
      maxSegmentSize: Math.min(
        DEFAULT_MAX_SEGMENT_SIZE,
        MAX_DATAGRAM - SESSION_OVERHEAD - nameBytes(this.#o.me) - nameBytes(this.#o.peer),
      ),
      send: (segment) => {
        if (channel === this.#channel) this.#sendData(segment);
      },
      onMessage: (data) => {
        if (channel !== this.#channel) return;
        try {
          this.#o.onMessage(decodeChatMessage(data), this.path);
        } catch (err) {
          if (!(err instanceof ChatMessageError)) throw err;
          this.stats.badMessages++;
        }
      },
      onDelivered: (cid) => this.#settle(channel, cid, undefined),
      onUndelivered: (cid, reason) => this.#settle(channel, cid, reason),
    });
    return channel;
  }

  #settle(channel: ReliableChannel, cid: number, undeliveredReason: string | undefined): void {
    if (channel !== this.#channel) return; // a replaced channel's messages were re-queued
    const msg = this.#inChannel.get(cid);
    if (!msg) return;
    this.#inChannel.delete(cid);
    if (undeliveredReason === undefined) this.#o.onDelivered(msg.id);
    else this.#o.onUndelivered(msg.id, undeliveredReason);
  }

  #sendData(plaintext: Uint8Array): void {
    if (!this.#session) return;
    const header = frameHeader(FrameType.DATA, this.#o.me);
    const sealed = this.#session.seal(plaintext, header);
    this.#transmit(encodeFrame({ type: "data", from: this.#o.me, payload: sealed }));
  }

  #onData(
    payload: Uint8Array,
    header: Uint8Array,
    from: Endpoint | "relay",
    socket: number,
  ): void {
    const plaintext = this.#session?.open(payload, header) ??
      this.#previousSession?.open(payload, header);
    if (!plaintext) {
      this.stats.undecryptable++;
      // No session that can read it: we restarted or missed a handshake. A new introduction
      // makes the initiator handshake again.
      if (!this.#session) this.requestIntroduction();
      return;
    }
    this.#confirmed = true;
    // The initiator's HS3 is confirmed: stop repeating it.
    if (this.#initiator && !this.#hs) this.#hsSent = undefined;
    if (from !== "relay") this.#pathFinder.onAuthenticatedTraffic(from, socket);
    if (plaintext.length > 0) this.#channel.receive(plaintext);
  }

  #flush(): void {
    if (!this.#session || this.path.kind === "none") return;
    for (const { msg } of this.#queue.splice(0)) {
      const cid = this.#channel.send(encodeChatMessage(msg));
      this.#inChannel.set(cid, msg);
    }
  }

  // --- timers ------------------------------------------------------------------------------

  #poll(): void {
    if (this.#closed) return;
    const now = this.#o.now();
    this.#pathFinder.poll();
    this.#channel.poll();
    const sent = this.#hsSent;
    if (sent && sent.frame.length > 0 && now - sent.at >= HANDSHAKE_RETRY_MS) {
      const waiting = this.#hs !== undefined || (this.#initiator && !this.#confirmed);
      if (!waiting) {
        this.#hsSent = this.#initiator ? undefined : sent;
      } else if (sent.attempts >= HANDSHAKE_ATTEMPTS) {
        // The peer does not answer: start over from an introduction.
        this.#hs = undefined;
        this.#hsSent = undefined;
        if (this.#initiator) this.#wantHandshake = true;
        this.requestIntroduction();
      } else {
        this.#resendHandshake();
      }
    }
    // Messages wait and no introduction came (the request or the answer was lost): ask again.
    if (this.#queue.length > 0 && !this.#intro) this.requestIntroduction();
    while (this.#queue.length > 0 && now - this.#queue[0].since >= this.#giveUpAfterMs) {
      const { msg } = this.#queue.shift()!;
      this.#o.onUndelivered(
        msg.id,
        `no connection to ${this.peer} within ${Math.round(this.#giveUpAfterMs / 1000)} s`,
      );
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    const deadlines = [this.#pathFinder.nextDeadline(), this.#channel.nextDeadline()];
    const sent = this.#hsSent;
    if (sent && sent.frame.length > 0) deadlines.push(sent.at + HANDSHAKE_RETRY_MS);
    if (this.#queue.length > 0) deadlines.push(this.#queue[0].since + this.#giveUpAfterMs);
    if (this.#queue.length > 0 && !this.#intro) {
      deadlines.push(this.#lastIntroRequest + INTRO_INTERVAL_MS);
    }
    const next = Math.min(...deadlines.filter((d): d is number => d !== undefined));
    clearTimeout(this.#timer);
    if (next === Infinity) return;
    this.#timer = setTimeout(() => this.#poll(), Math.max(0, next - this.#o.now()));
  }
}

function readInstance(payload: Uint8Array): number {
  if (payload.length !== 4) throw new NoiseError("handshake payload is not a 4-byte instance id");
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}
