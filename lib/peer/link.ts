/**
 * Everything between us and one other peer: the path (direct endpoint or relay, chosen by
 * {@linkcode PathFinder}), the encrypted {@linkcode Session} its {@linkcode Handshake}
 * establishes, and the {@linkcode ReliableChannel} that turns chat messages into acknowledged,
 * ordered segments, with the messages still waiting for a session. Sockets stay outside: the peer
 * passes in frames and gives a {@linkcode LinkTransport} (to an endpoint, or via the coordinator's
 * relay). One timer per link, from the injected clock, drives every state machine inside it.
 *
 * The handshake's rules are in `handshake.ts`. What the link adds: it handshakes once a path
 * exists, and when the peer restarted (a new instance id) the messages it had not confirmed are
 * re-sent on a fresh reliable stream instead of being given up.
 *
 * @example
 * ```ts
 * const link = new Link({ me: "alice", peer: "bob", staticKeyPair, instanceId, verifyKey,
 *   transport, events });
 * link.introduce({ candidates, key, token });
 * link.send({ group: false, id: 1, text: "hi" });
 * ```
 * @module
 */
import { setImmediate } from "node:timers";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual, equalBytes } from "../bytes.ts";
import { type Clock, realClock, type TimerId } from "../clock.ts";
import type { KeyPair } from "../crypto/noise.ts";
import { type Session, SESSION_OVERHEAD } from "../crypto/session.ts";
import {
  type ChatMessage,
  ChatMessageError,
  decodeChatMessage,
  encodeChatMessage,
} from "../protocol/chat_message.ts";
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import type { NatKind } from "../protocol/whoami.ts";
import {
  decodePathMtuFrame,
  encodePathMtuFrame,
  PATH_MTU_CHANNEL,
  PathMtuFrameError,
} from "../protocol/path_mtu_frame.ts";
import { BASE_DATAGRAM, PathMtuSearch, type PathMtuStats } from "./path_mtu.ts";
import {
  encodeFrame,
  type Frame,
  frameHeader,
  FrameType,
  PROBE_MAC_LENGTH,
  turnCandidateSigned,
} from "../protocol/frame.ts";
import type { ServerMessage } from "../protocol/seed.ts";
import { decodeKey } from "../crypto/identity.ts";
import { decodeBase64url } from "../protocol/base64url.ts";
import {
  type Established,
  Handshake,
  type HandshakeStats,
  type HandshakeStep,
} from "./handshake.ts";
import {
  DEFAULT_MAX_SEGMENT_SIZE,
  ReliableChannel,
  type ReliableStats,
  type SendState,
} from "./reliable.ts";
import {
  BIRTHDAY_SOCKETS,
  type Candidate,
  type Path,
  PathFinder,
  type PathFinderOptions,
  type StartOptions,
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

/** How a link reaches the network and the coordinator. */
export interface LinkTransport {
  /**
   * Sends a frame straight to an endpoint, from the main socket (0) or an extra one, with a TTL
   * when priming NAT mappings.
   */
  sendTo(frame: Uint8Array, to: Endpoint, ttl?: number, socket?: number): void;
  /** Sends a frame through the coordinator's relay. */
  sendViaRelay(frame: Uint8Array): void;
  /** Opens `count` extra sockets for a birthday search; resolves with their ids. */
  openSockets(count: number): Promise<number[]>;
  /** Closes extra sockets no longer needed. */
  closeSockets(ids: number[]): void;
  /** Our NAT kind, once known. */
  localNat(): NatKind | undefined;
  /** Whether our router maps our socket now (we announce a `mapped` candidate); default no. */
  mapped?(): boolean;
  /** Asks the coordinator to introduce us (again). */
  requestIntroduction(): void;
}

/** What a link reports. */
export interface LinkEvents {
  onMessage(msg: ChatMessage, path: Path): void;
  onDelivered(id: number): void;
  onUndelivered(id: number, reason: string): void;
  onPath(path: Path): void;
  /** A frame of the file channel (`lib/protocol/file_frame.ts`), whole and in order. */
  onFileFrame?(data: Uint8Array): void;
  /**
   * A file frame `sendFile` returned `id` for reached the peer (`reason` undefined) or was given
   * up (the channel was reset, the peer restarted or went silent).
   */
  onFileSettled?(id: number, reason: string | undefined): void;
  /**
   * A session is up (the first, or a new one after a handshake): file frames may go. `reset`:
   * what was in flight on the file channel was given up (the peer restarted and the channel was
   * replaced, or the datagram size dropped below segments in flight): resume from the peer's.
   */
  onSecured?(reset: boolean): void;
}

/** Options for {@linkcode Link}. */
export interface LinkOptions {
  me: string;
  peer: string;
  staticKeyPair: KeyPair;
  /** Random per process; lets the other side detect that we restarted. */
  instanceId: number;
  /** The trust decision on the key the handshake proved: true to go on. */
  verifyKey: (key: Uint8Array) => boolean;
  transport: LinkTransport;
  events: LinkEvents;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
  /**
   * Messages are reported undelivered when the peer stays unreachable this long: no session
   * within it, or (inside the reliable channel) nothing new acknowledged for it; default 30 s.
   */
  giveUpAfterMs?: number;
  /**
   * Timings of the path finder (tests shorten them), and its probe `quota`: a client gives all
   * its links the same one (`links.ts`), or each would have a budget of its own.
   */
  pathOptions?: Partial<PathFinderOptions>;
}

/** Largest datagram we send: safe on every path, tunnels and PPPoE included. */
export const MAX_DATAGRAM = 1200;
/**
 * First byte of a DATA plaintext that belongs to the file channel: the chat channel's segments
 * start with 0x01 or 0x02 (`lib/protocol/segment.ts`), so one byte tells the two streams apart
 * and chat frames stay exactly as before.
 */
export const FILE_CHANNEL = 0x46;
/**
 * The file channel's receive window in segments: larger than chat's, so that one stream can fill
 * a fast path (the sender's delay-based controller, `lib/files/ledbat.ts`, keeps it polite).
 */
const FILE_RECEIVE_WINDOW = 1024;
/** The {@linkcode FILE_CHANNEL} byte, sealed in front of each file segment. */
const FILE_TAG = Uint8Array.of(FILE_CHANNEL);
/**
 * The file channel acknowledges every 16th in-order segment, and a chunk's last one at once (its
 * END flag): a 64 KiB file chunk is ~61 segments in 1,200-byte datagrams (an ACK every 16th), 5
 * in 16 KiB ones (one ACK per chunk). Against every 4th: ~5-7 % less CPU per MB in the median of
 * noisy A/B runs, measured with 16 KiB chunks at 1,200 bytes (docs/FILES.md).
 */
const FILE_ACK_EVERY = 16;
/**
 * Chat goes first: while a chat message is on its way (handed to the chat channel, not yet
 * confirmed), the file channel sends no new data, for at most this long per message (a lost chat
 * segment waits for a retransmission timeout, ≥ 200 ms, and files must not stall that long). The
 * chat frame then does not queue behind file data sent after it, and the sender's event loop is
 * not busy sealing file data when the chat's ACK comes back (docs/FILES.md, _Chat first_).
 */
const CHAT_HOLD_MS = 100;
/**
 * File segments handled per turn of the event loop. A received file segment is decrypted at once
 * but handled (reassembly, ACKs, the chunk's disk write and hashing) in a later turn, in slices:
 * a chat frame read meanwhile, behind a burst of file data, is handled first. The later turn is
 * `setImmediate`'s, right after the datagrams waiting in the socket were read: a 0 ms timer waits
 * for the timer's tick (1-2 ms here), which halved a fast transfer's throughput.
 */
const FILE_SLICE = 64;
/** Introductions requested at most this often. */
const INTRO_INTERVAL_MS = 2000;

interface Queued {
  msg: ChatMessage;
  since: number;
}

/** Counters of dropped and handled input, for diagnostics and tests: the handshake's, and these. */
export interface LinkStats extends HandshakeStats {
  /** Probes and acks without a valid MAC (or through the relay). */
  badProbes: number;
  /** DATA that no session could open. */
  undecryptable: number;
  /** Decrypted messages that did not decode. */
  badMessages: number;
  /** Received file segments dropped: a receive window's worth waited to be handled already. */
  fileSegmentsDropped: number;
}

/**
 * The {@linkcode Introduction} an `introduce` message from the coordinator makes, or undefined
 * when its key or token is malformed. The claimed (LAN) endpoint is a candidate only when it
 * differs from the observed (public) one; the announced ones (`v6`, `mapped`) follow, but for
 * IPv6 ones when `ipv6` is false (our socket cannot reach them).
 *
 * @example
 * ```ts
 * const intro = introductionFrom(msg); // msg: an IntroduceMessage from the coordinator
 * if (intro) link.introduce(intro);
 * ```
 */
export function introductionFrom(
  msg: Extract<ServerMessage, { type: "introduce" }>,
  options: { ipv6?: boolean } = {},
): Introduction | undefined {
  const key = decodeKey(msg.key);
  const token = decodeBase64url(msg.token);
  if (!key || !token) return undefined;
  const candidates: Candidate[] = [];
  if (!sameEndpoint(msg.claimed, msg.observed)) {
    candidates.push({ kind: "lan", endpoint: msg.claimed });
  }
  candidates.push({ kind: "public", endpoint: msg.observed });
  for (const { kind, endpoint } of msg.candidates ?? []) {
    // An IPv6 endpoint is no use to a socket that cannot send there.
    if (options.ipv6 === false && endpoint.host.includes(":")) continue;
    candidates.push({ kind, endpoint });
  }
  return { candidates, key, token, nat: msg.nat };
}

/**
 * Whether `b` is the direct path `a` was, perhaps under another candidate kind: the same endpoint
 * and socket, and both through TURN or neither.
 */
function sameRoute(a: Path, b: Path): boolean {
  return a.kind === "direct" && b.kind === "direct" && a.socket === b.socket &&
    sameEndpoint(a.endpoint, b.endpoint) && (a.via === "turn") === (b.via === "turn");
}

/** One peer's path, session and reliable channel. */
export class Link {
  readonly peer: string;
  readonly #o: LinkOptions & { clock: Clock; giveUpAfterMs: number };
  readonly #counts = { badProbes: 0, undecryptable: 0, badMessages: 0, fileSegmentsDropped: 0 };
  readonly #pathFinder: PathFinder;
  readonly #handshake: Handshake;
  #intro: Introduction | undefined;
  #channel: ReliableChannel;
  /** The file channel: file frames, a stream apart so that chat never waits behind them. */
  #files: ReliableChannel;
  /** How large the file channel's datagrams may be on the direct path (`path_mtu.ts`). */
  readonly #mtu: PathMtuSearch;
  /** The path last reported: a new one (not a relabel of it) resets {@linkcode #mtu}. */
  #lastPath: Path = { kind: "none" };
  /** The header of our DATA frames (see {@linkcode #dataFrameHeader}). */
  #dataHeader: Uint8Array | undefined;
  /** Messages handed to the channel and not yet settled, by channel id. */
  #inChannel = new Map<number, ChatMessage>();
  /** When the chat channel last went from idle to busy: file data waits from then. */
  #chatSince: number | undefined;
  /** Received file segments (decrypted) not yet handled, in order; see FILE_SLICE. */
  #fileIn: Uint8Array[] = [];
  /** Messages waiting for a session. */
  #queue: Queued[] = [];
  #session: Session | undefined;
  /** The session before the last handshake: its packets still in flight are read. */
  #previousSession: Session | undefined;
  #lastIntroRequest = -Infinity;
  #timer: TimerId | undefined;
  /** When {@linkcode #timer} fires. */
  #timerAt = Infinity;
  #closed = false;

  constructor(options: LinkOptions) {
    const clock = options.clock ?? realClock;
    this.#o = { ...options, clock, giveUpAfterMs: options.giveUpAfterMs ?? 30_000 };
    this.peer = options.peer;
    this.#handshake = new Handshake({ ...options, clock });
    this.#pathFinder = new PathFinder({
      ...options.pathOptions,
      now: () => clock.now(),
      relayAvailable: true,
      sendProbe: (to, txid, opts) =>
        this.#sendProbe(FrameType.PROBE, to, txid, opts.socket, opts.ttl),
      sendProbeAck: (to, txid, socket) => this.#sendProbe(FrameType.PROBE_ACK, to, txid, socket),
      releaseSockets: (ids) => options.transport.closeSockets(ids),
      onPath: (path) => this.#onPath(path),
      onNeedIntroduction: () => this.requestIntroduction(),
    });
    this.#mtu = new PathMtuSearch({
      now: () => clock.now(),
      sendProbe: (id, size) => this.#sendMtuProbe(id, size),
      onSize: (size) => this.#onFileDatagram(size),
    });
    this.#channel = this.#newChannel();
    this.#files = this.#newFileChannel();
  }

  /** The path in use. */
  get path(): Path {
    return this.#pathFinder.path;
  }

  /** Counters of what this link dropped. */
  get stats(): LinkStats {
    const { badProbes, undecryptable, badMessages, fileSegmentsDropped } = this.#counts;
    return {
      badProbes,
      ...this.#handshake.stats,
      undecryptable,
      badMessages,
      fileSegmentsDropped,
    };
  }

  /** Whether messages or file frames are waiting to be sent or confirmed. */
  get hasPending(): boolean {
    return this.#queue.length > 0 || this.#inChannel.size > 0 ||
      this.#files.sendState.pendingMessages > 0;
  }

  /** Whether an encrypted session is up. */
  get secured(): boolean {
    return this.#session !== undefined;
  }

  /**
   * Starts (or restarts) probing with fresh candidates; the initiator handshakes again.
   * `options.primed` (early priming, `traversal.ts`) counts only for a new consent: an
   * introduction with a token this link has not had, for which both sides sent `connect`.
   */
  introduce(intro: Introduction, options: StartOptions = {}): void {
    if (this.#closed) return;
    const newConsent = !this.#intro || !equalBytes(this.#intro.token, intro.token);
    this.#intro = intro;
    this.#handshake.introduce(intro.key, intro.token);
    this.#pathFinder.start(intro.candidates, newConsent ? options : {});
    this.#maybeBirthday(intro);
    if (this.path.kind !== "none") this.#transmitHandshake(this.#handshake.begin());
    this.#schedule();
  }

  /**
   * One symmetric ("hard") side and one easy side: start a birthday search alongside the normal
   * one. The hard side opens {@linkcode BIRTHDAY_SOCKETS} extra sockets; the easy side sprays
   * probes at random ports. Two hard sides cannot meet this way: they stay on the relay. Nor is
   * there a search when a router maps the hard side's socket (a `mapped` candidate, ours or the
   * peer's): the easy side reaches the mapped endpoint at its first probes.
   */
  #maybeBirthday(intro: Introduction): void {
    const peerNat = intro.nat;
    const local = this.#o.transport.localNat();
    if (!peerNat || !local || local === peerNat || this.#pathFinder.birthday) return;
    if (this.#o.transport.mapped?.() || intro.candidates.some((c) => c.kind === "mapped")) return;
    if (this.path.kind === "direct") return;
    if (local === "easy") {
      // The spray waits for the hard side's proof that it holds its public address.
      this.#pathFinder.startBirthday({ role: "spray" });
      this.#schedule();
      return;
    }
    // We are the hard side: a probe through the relay proves our address to the sprayer (the
    // coordinator relays only from our own observed endpoint).
    this.#sendProbe(FrameType.PROBE, "relay", this.#randomTxid(), 0);
    this.#o.transport.openSockets(BIRTHDAY_SOCKETS).then((sockets) => {
      if (this.#closed || this.path.kind === "direct" || this.#pathFinder.birthday) {
        this.#o.transport.closeSockets(sockets);
        return;
      }
      this.#pathFinder.startBirthday({ role: "sockets", sockets });
      this.#schedule();
    }, () => {
      // No sockets to spare (descriptor limit): go on without a birthday search.
    });
  }

  /**
   * Sends a file frame on the file channel; returns its id for `onFileSettled`. Only once
   * {@linkcode Link.secured}: before that it would only wait in the channel's retransmissions.
   * Throws `RangeError` for a frame over 1 MiB.
   */
  sendFile(frame: Uint8Array): number {
    if (this.#mtuPath()) {
      this.#mtu.start();
      this.#schedule();
    }
    return this.#files.send(frame);
  }

  /** The path-MTU search's datagram size and counters (`path_mtu.ts`), for the bench. */
  get pathMtu(): { size: number; stats: PathMtuStats } {
    return { size: this.#mtu.size, stats: this.#mtu.stats };
  }

  /** The file channel's counters and sending state, for diagnostics and the bench. */
  get fileChannel(): { stats: ReliableStats; send: SendState } {
    return { stats: this.#files.stats, send: this.#files.sendState };
  }

  /** File frames handed to the file channel and not yet settled. */
  get fileBacklog(): number {
    return this.#files.sendState.pendingMessages;
  }

  /** Queues a chat message; `onDelivered`/`onUndelivered` report its fate by `msg.id`. */
  send(msg: ChatMessage): void {
    if (this.#closed) return;
    this.#queue.push({ msg, since: this.#o.clock.now() });
    if (!this.#intro) this.requestIntroduction();
    this.#flush();
    this.#schedule();
  }

  /** Asks the coordinator for an introduction, at most once every 2 s. */
  requestIntroduction(): void {
    const now = this.#o.clock.now();
    if (now - this.#lastIntroRequest < INTRO_INTERVAL_MS) return;
    this.#lastIntroRequest = now;
    this.#o.transport.requestIntroduction();
  }

  /** Handles a frame from this peer, received directly from `from` or through the relay. */
  receive(frame: Frame, from: Endpoint | "relay", socket = 0): void {
    if (this.#closed) return;
    switch (frame.type) {
      case "probe":
      case "probe-ack":
        if (!this.#probeMacValid(frame) || (from === "relay" && frame.type === "probe-ack")) {
          this.#counts.badProbes++;
          break;
        }
        // Through the relay a probe is only the proof a birthday spray waits for.
        if (from === "relay") this.#pathFinder.onRelayedProbe();
        else if (frame.type === "probe") this.#pathFinder.onProbe(from, frame.txid, socket);
        else this.#pathFinder.onProbeAck(from, frame.txid, socket);
        break;
      case "hs1":
      case "hs2":
      case "hs3": {
        // A cookie is bound to the address and our socket the HS1 came from.
        const source = from === "relay" ? undefined : `${socket}/${formatEndpoint(from)}`;
        const step = this.#handshake.receive(frame, source);
        if (step.cookieReply && from !== "relay") {
          this.#o.transport.sendTo(step.cookieReply, from, undefined, socket);
        }
        this.#onHandshake(step);
        break;
      }
      case "cookie":
        // Only an answer to an HS1 we sent directly; the relay needs none.
        if (from !== "relay") this.#handshake.onCookie(frame);
        break;
      case "data":
        this.#onData(frame.payload, frame.header, from, socket);
        break;
      case "turn-candidate":
        // The peer's relayed address on its TURN server: a path worth probing, if it is theirs.
        if (!this.#intro || !constantTimeEqual(this.#candidateMac(frame.signed), frame.mac)) {
          this.#counts.badProbes++;
          break;
        }
        this.#pathFinder.addTurnCandidate(frame.endpoint);
        break;
    }
    this.#schedule();
  }

  /**
   * Tells the peer our relayed address on our TURN server (through the coordinator's relay,
   * authenticated with the introduction's token), so that it probes it: a `turn` candidate.
   * Nothing without an introduction.
   */
  offerTurn(relayed: Endpoint): void {
    if (this.#closed || !this.#intro) return;
    const signed = turnCandidateSigned(this.#o.me, relayed);
    const frame = encodeFrame({
      type: "turn-candidate",
      from: this.#o.me,
      endpoint: relayed,
      mac: this.#candidateMac(signed),
    });
    this.#o.transport.sendViaRelay(frame);
  }

  #candidateMac(signed: Uint8Array): Uint8Array {
    return hmac(sha256, this.#intro!.token, signed).subarray(0, PROBE_MAC_LENGTH);
  }

  /** Stops everything; messages not yet delivered are reported undelivered with `reason`. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#o.clock.clearTimeout(this.#timer);
    this.#fileIn = [];
    this.#pathFinder.stop();
    this.#files.close();
    for (const { msg } of this.#queue.splice(0)) this.#o.events.onUndelivered(msg.id, reason);
    for (const msg of this.#inChannel.values()) this.#o.events.onUndelivered(msg.id, reason);
    this.#inChannel.clear();
  }

  // --- path --------------------------------------------------------------------------------

  #onPath(path: Path): void {
    // What the old path carried says nothing about a new one. A relabel (traversal found that the
    // endpoint it knew as prflx is the peer's public one) is the same path: a reset would drop a
    // transfer's datagrams to the base size for nothing.
    if (!sameRoute(this.#lastPath, path)) this.#mtu.reset();
    this.#lastPath = path;
    if (path.kind !== "none") {
      // The initiator's first HS1, or a handshake stuck on a dead path going out on the new one;
      // before the report, whose event line costs a first message 0.5-1 ms.
      this.#transmitHandshake(this.#handshake.onPath());
      this.#flush();
    }
    this.#o.events.onPath(path);
  }

  #transmit(frame: Uint8Array): boolean {
    const path = this.path;
    if (path.kind === "direct") {
      this.#o.transport.sendTo(frame, path.endpoint, undefined, path.socket);
      this.#pathFinder.onTrafficSent(); // an unanswered send is how a broken path shows up
    } else if (path.kind === "relay") this.#o.transport.sendViaRelay(frame);
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

  #sendProbe(
    type: number,
    to: Endpoint | "relay",
    txid: number,
    socket: number,
    ttl?: number,
  ): void {
    if (!this.#intro) return;
    const mac = this.#probeMac(this.#intro.token, type, this.#o.me, txid);
    const frame = encodeFrame({
      type: type === FrameType.PROBE ? "probe" : "probe-ack",
      from: this.#o.me,
      txid,
      mac,
    });
    if (to === "relay") this.#o.transport.sendViaRelay(frame);
    else this.#o.transport.sendTo(frame, to, ttl, socket);
  }

  #randomTxid(): number {
    return crypto.getRandomValues(new Uint32Array(1))[0];
  }

  #probeMacValid(frame: Extract<Frame, { type: "probe" | "probe-ack" }>): boolean {
    if (!this.#intro) return false;
    const type = frame.type === "probe" ? FrameType.PROBE : FrameType.PROBE_ACK;
    const expected = this.#probeMac(this.#intro.token, type, this.#o.peer, frame.txid);
    return constantTimeEqual(expected, frame.mac);
  }

  // --- handshake ---------------------------------------------------------------------------

  #transmitHandshake(frame: Uint8Array | undefined): void {
    if (frame) this.#transmit(frame);
  }

  #onHandshake(step: HandshakeStep): void {
    this.#transmitHandshake(step.send);
    if (step.established) this.#install(step.established);
    if (step.confirm) this.#sendData(new Uint8Array()); // the responder confirms HS3
  }

  #install({ session, restarted }: Established): void {
    this.#previousSession = this.#session;
    this.#session = session;
    if (restarted) {
      // The peer restarted: what it had of our stream is gone. Re-send what it never confirmed,
      // in order, on a fresh channel (a fresh stream id).
      const unsettled = [...this.#inChannel.values()];
      this.#inChannel.clear();
      this.#chatSince = undefined;
      this.#channel = this.#newChannel();
      const now = this.#o.clock.now();
      this.#queue.unshift(...unsettled.map((msg) => ({ msg, since: now })));
      // File frames are not re-sent: the transfer resumes from what the peer has (re-offer).
      const files = this.#files;
      this.#files = this.#newFileChannel();
      this.#fileIn = []; // the old stream's: the new channel would only answer them with RESETs
      files.close();
    }
    this.#flush();
    this.#o.events.onSecured?.(restarted);
  }

  // --- data --------------------------------------------------------------------------------

  #newChannel(): ReliableChannel {
    const nameBytes = (name: string) => 2 + new TextEncoder().encode(name).length;
    const channel: ReliableChannel = new ReliableChannel({
      now: () => this.#o.clock.now(),
      giveUpAfterMs: this.#o.giveUpAfterMs,
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
          this.#o.events.onMessage(decodeChatMessage(data), this.path);
        } catch (err) {
          if (!(err instanceof ChatMessageError)) throw err;
          this.#counts.badMessages++;
        }
      },
      onDelivered: (cid) => this.#settle(channel, cid, undefined),
      onUndelivered: (cid, reason) => this.#settle(channel, cid, reason),
    });
    return channel;
  }

  /**
   * The file channel's largest segment for datagrams of `datagram` bytes: at the base size, one
   * byte less than chat's (the FILE_CHANNEL tag); above it (a direct path only), what is left of
   * the datagram after the DATA frame's header, the seal and the tag.
   */
  #fileSegmentSize(datagram: number): number {
    if (datagram <= BASE_DATAGRAM) {
      const nameBytes = (name: string) => 2 + new TextEncoder().encode(name).length;
      return Math.min(
        DEFAULT_MAX_SEGMENT_SIZE,
        MAX_DATAGRAM - SESSION_OVERHEAD - nameBytes(this.#o.me) - nameBytes(this.#o.peer),
      ) - 1;
    }
    return datagram - this.#dataOverhead() - 1;
  }

  /**
   * The file channel's datagrams may now be `size` bytes. When that is smaller than a segment in
   * flight (a black hole, a new path: the relay and TURN carry 1,200 bytes), the channel gives
   * its stream up at once (`ReliableChannel.resize` says why the segments cannot be cut anew), and
   * the transfers resume from what the peer verified, as when the peer restarted (`onSecured`
   * with `reset`): within a few round trips, not after `giveUpAfterMs` of resending datagrams the
   * path no longer carries. Our receiving side of the channel is kept: the peer's stream goes on.
   */
  #onFileDatagram(size: number): void {
    if (this.#files.resize(this.#fileSegmentSize(size)) && this.#session) {
      this.#o.events.onSecured?.(true);
    }
  }

  /** Bytes a DATA frame of ours adds to its plaintext: its header and the seal. */
  #dataOverhead(): number {
    return this.#dataFrameHeader().length + SESSION_OVERHEAD;
  }

  /** The header of our DATA frames, made once: every datagram starts with it. */
  #dataFrameHeader(): Uint8Array {
    return this.#dataHeader ??= frameHeader(FrameType.DATA, this.#o.me);
  }

  /** Whether the path is one whose datagram size is worth probing: direct, not through TURN. */
  #mtuPath(): boolean {
    const path = this.path;
    return path.kind === "direct" && path.via !== "turn";
  }

  /** Sends a path-MTU probe that makes a DATA datagram of `size` bytes. */
  #sendMtuProbe(id: number, size: number): void {
    if (!this.#mtuPath()) return; // unanswered, the search stops at the base
    this.#sendData(encodePathMtuFrame({ type: "probe", id, length: size - this.#dataOverhead() }));
  }

  /** A path-MTU frame from the peer: answer a probe, confirm a size. */
  #onMtuFrame(plaintext: Uint8Array): void {
    try {
      const frame = decodePathMtuFrame(plaintext);
      if (frame.type === "probe") {
        this.#sendData(encodePathMtuFrame({ type: "ack", id: frame.id, length: frame.length }));
      } else this.#mtu.onAck(frame.id);
    } catch (err) {
      if (!(err instanceof PathMtuFrameError)) throw err;
      this.#counts.badMessages++;
    }
  }

  #newFileChannel(): ReliableChannel {
    const channel: ReliableChannel = new ReliableChannel({
      now: () => this.#o.clock.now(),
      giveUpAfterMs: this.#o.giveUpAfterMs,
      receiveWindow: FILE_RECEIVE_WINDOW,
      ackEvery: FILE_ACK_EVERY,
      holdNew: () => this.#chatHoldsFiles(),
      maxSegmentSize: this.#fileSegmentSize(this.#mtu.size),
      send: (segment) => {
        if (channel === this.#files) this.#sendData([FILE_TAG, segment]);
      },
      onMessage: (data) => {
        if (channel === this.#files) this.#o.events.onFileFrame?.(data);
      },
      onDelivered: (id) => this.#o.events.onFileSettled?.(id, undefined),
      onUndelivered: (id, reason) => this.#o.events.onFileSettled?.(id, reason),
    });
    return channel;
  }

  #settle(channel: ReliableChannel, cid: number, undeliveredReason: string | undefined): void {
    if (channel !== this.#channel) return; // a replaced channel's messages were re-queued
    const msg = this.#inChannel.get(cid);
    if (!msg) return;
    this.#inChannel.delete(cid);
    if (undeliveredReason === undefined) this.#o.events.onDelivered(msg.id);
    else this.#o.events.onUndelivered(msg.id, undeliveredReason);
    // After the event: the file data that waited must not delay the report of the chat.
    if (this.#inChannel.size === 0) this.#releaseFiles();
  }

  /** Whether a chat message on its way holds new file data back (see CHAT_HOLD_MS). */
  #chatHoldsFiles(): boolean {
    return this.#chatSince !== undefined && this.#o.clock.now() - this.#chatSince < CHAT_HOLD_MS;
  }

  /** The chat channel has nothing on its way any more: file data goes on. */
  #releaseFiles(): void {
    if (this.#chatSince === undefined) return;
    this.#chatSince = undefined;
    this.#files.poll();
  }

  /** Seals a DATA frame (given in parts, sealed as one) and sends it, when a session is up. */
  #sendData(plaintext: Uint8Array | Uint8Array[]): void {
    if (!this.#session) return;
    // The frame is the header, then the sealed packet: sealed into one buffer, header first.
    const header = this.#dataFrameHeader();
    this.#transmit(this.#session.seal(plaintext, header, { prefix: header }));
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
      this.#counts.undecryptable++;
      // No session that can read it: we restarted or missed a handshake. A new introduction
      // makes the initiator handshake again.
      if (!this.#session) this.requestIntroduction();
      return;
    }
    this.#handshake.onData();
    if (from !== "relay") this.#pathFinder.onAuthenticatedTraffic(from, socket);
    if (plaintext.length === 0) return;
    if (plaintext[0] === FILE_CHANNEL) this.#queueFileSegment(plaintext.subarray(1));
    else if (plaintext[0] === PATH_MTU_CHANNEL) this.#onMtuFrame(plaintext);
    else this.#channel.receive(plaintext);
  }

  #queueFileSegment(segment: Uint8Array): void {
    // An honest peer has no more new segments in flight than our receive window; a peer that
    // sends faster than the slices are handled would grow this queue without bound. Dropped
    // beyond it: the sender resends what we did not acknowledge.
    if (this.#fileIn.length >= FILE_RECEIVE_WINDOW) {
      this.#counts.fileSegmentsDropped++;
      return;
    }
    this.#fileIn.push(segment);
    if (this.#fileIn.length === 1) setImmediate(() => this.#handleFileSegments());
  }

  /** Hands up to FILE_SLICE queued file segments to the file channel; the rest in a later turn. */
  #handleFileSegments(): void {
    if (this.#closed) return;
    const slice = this.#fileIn.splice(0, FILE_SLICE);
    const files = this.#files;
    for (const segment of slice) files.receive(segment);
    if (this.#fileIn.length > 0) setImmediate(() => this.#handleFileSegments());
    this.#schedule();
  }

  #flush(): void {
    if (!this.#session || this.path.kind === "none") return;
    for (const { msg } of this.#queue.splice(0)) {
      this.#chatSince ??= this.#o.clock.now();
      const cid = this.#channel.send(encodeChatMessage(msg));
      this.#inChannel.set(cid, msg);
    }
  }

  // --- timers ------------------------------------------------------------------------------

  #poll(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#closed) return;
    const now = this.#o.clock.now();
    this.#pathFinder.poll();
    this.#channel.poll();
    this.#files.poll();
    // A timeout or heavy loss may mean that the large datagrams no longer get through.
    this.#mtu.observe(this.#files, this.#files.stats);
    this.#mtu.poll();
    const retry = this.#handshake.poll();
    this.#transmitHandshake(retry.send);
    if (retry.needIntroduction) this.requestIntroduction();
    // Messages wait and no introduction came (the request or the answer was lost): ask again.
    if (this.#queue.length > 0 && !this.#intro) this.requestIntroduction();
    const giveUp = this.#o.giveUpAfterMs;
    while (this.#queue.length > 0 && now - this.#queue[0].since >= giveUp) {
      const { msg } = this.#queue.shift()!;
      this.#o.events.onUndelivered(
        msg.id,
        `no connection to ${this.peer} within ${Math.round(giveUp / 1000)} s`,
      );
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    const deadlines = [
      this.#pathFinder.nextDeadline(),
      this.#channel.nextDeadline(),
      this.#files.nextDeadline(),
      this.#handshake.nextDeadline(),
      this.#mtu.nextDeadline(),
    ];
    if (this.#queue.length > 0) deadlines.push(this.#queue[0].since + this.#o.giveUpAfterMs);
    // The end of a chat hold lets file data go again.
    if (this.#chatHoldsFiles()) deadlines.push(this.#chatSince! + CHAT_HOLD_MS);
    if (this.#queue.length > 0 && !this.#intro) {
      deadlines.push(this.#lastIntroRequest + INTRO_INTERVAL_MS);
    }
    const next = Math.min(...deadlines.filter((d): d is number => d !== undefined));
    // A timer due no later stays: it polls, and the poll schedules again. Re-arming on every
    // frame cost a tenth of a transfer's CPU.
    if (next >= this.#timerAt) return;
    const clock = this.#o.clock;
    clock.clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = clock.setTimeout(() => this.#poll(), Math.max(0, next - clock.now()));
  }
}
