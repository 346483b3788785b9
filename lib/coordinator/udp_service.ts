/**
 * The coordinator's UDP service: every datagram that reaches its sockets, checked against the
 * limits, then a client message (`login`, `logout`, `heartbeat`, `connect`, `whoami`, `nat`,
 * `candidates`; and `contact`/`listed`, which `contact_service.ts` handles) to answer, a STUN
 * Binding request (`lib/protocol/stun.ts`), or a peer frame for the relay; and the other side of
 * heartbeats, the expiry of users gone silent. What it may answer follows docs/PROTOCOL.md §3.4:
 * nothing goes to an address that has not proved it receives there, except one answer no larger
 * than the request (`whoami` included: its `You` goes only to a request padded to at least its
 * length; `Challenge`, to a login for a registered name held by another session, likewise), and
 * the bare STUN answer (32 or 44 bytes, to a request of at least 20).
 *
 * Handling is synchronous and keeps nothing that points into a datagram: the socket lends its
 * receive buffer.
 *
 * @example
 * ```ts
 * const service = new UdpService({
 *   ...{ registry, relay, limits, log, stats, budget, outbox, challenges },
 *   send: (bytes, to) => udp.send(bytes, to),
 *   tcpPort: 7000,
 * });
 * udp.onMessage((data, from) => service.onDatagram(data, from));
 * ```
 * @module
 */
import { type Clock, realClock } from "../clock.ts";
import { type Endpoint, formatEndpoint } from "../protocol/endpoint.ts";
import { decodeFrame, encodeFrame, FrameError, isFrame } from "../protocol/frame.ts";
import {
  type ClientMessage,
  decodeText,
  encodeServerMessage,
  parseClientMessage,
  SeedProtocolError,
  type ServerMessage,
} from "../protocol/seed.ts";
import { answerBinding, isStun } from "../protocol/stun.ts";
import { MAX_WHOAMI } from "../protocol/whoami.ts";
import type { AddressBudget } from "./address_budget.ts";
import { passableCandidates } from "./candidate_policy.ts";
import type { ContactService } from "./contact_service.ts";
import type { LoginChallenges, ProofRefusal } from "./login_challenges.ts";
import { Introductions } from "./introductions.ts";
import { addressKey, type Limits } from "./limits.ts";
import type { PresenceOutbox } from "./presence_outbox.ts";
import type { Registry, RejectWhy, User } from "./registry.ts";
import type { RelayPolicy } from "./relay.ts";
import { describe, type ServerLog } from "./server_log.ts";
import { type CoordinatorStats, countBy } from "./stats.ts";

/** Options for {@linkcode UdpService}. */
export interface UdpServiceOptions {
  registry: Registry;
  relay: RelayPolicy;
  limits: Readonly<Limits>;
  log: ServerLog;
  stats: CoordinatorStats;
  budget: AddressBudget;
  outbox: PresenceOutbox;
  /** Nonces for, and checks of, the proof of key a takeover needs. */
  challenges: LoginChallenges;
  /** Sends a datagram from the main socket (counted in `stats`). */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** The list service's port, sent in `Accept`. */
  tcpPort: number;
  /** Time for introductions (wants lapse, knock budgets refill); default {@linkcode realClock}. */
  clock?: Clock;
  /**
   * A login that is online at once, without a list fetch (a takeover, a move, a repeat): what
   * the list service's admission would have told it (the mailbox).
   */
  onOnlineAtOnce?: (user: User) => void;
  /**
   * Contacts: their messages, and (contacts mode) which pairs `connect` may introduce. None:
   * everyone mode, and contact messages are ignored.
   */
  contacts?: ContactService;
  /** Sent to each side after its `Introduce` (TURN credentials); see `introductions.ts`. */
  alsoIntroduce?: (to: User) => ServerMessage | undefined;
}

const encoder = new TextEncoder();
/** What SOFTWARE says in our STUN answers (those with room for it). */
const STUN_SOFTWARE = "p2p coordinator";

/**
 * Shorter forms of each `Reject` reason, for a login too short to be answered with the whole
 * reason (the answer is never longer than the request); the last of each (at most 13 bytes with
 * `Reject,`) fits the shortest login (17 bytes).
 */
const SHORT_REJECT: Record<RejectWhy, string[]> = {
  "in-use": ["name in use", "in use"],
  lookalike: ["looks like a name in use", "in use"],
  owned: ["belongs to another key", "other key"],
  full: ["full"],
  "names-per-address": ["too many names from your address", "too many names", "limit"],
  "new-names-per-address-per-day": ["too many new names today", "too many names", "limit"],
};

/** What a login whose proof of key is refused is told, and the log says. */
const PROOF_REFUSED: Record<ProofRefusal, string> = {
  "forged-nonce": "proof of key refused: not a challenge of ours for this login",
  expired: "proof of key refused: the challenge expired",
  replayed: "proof of key refused: the challenge was answered already",
  "bad-proof": "proof of key refused: it was not made with the key's private half",
  busy: "proof of key refused: too many takeovers at once; try again",
};

/** Answers datagrams. */
export class UdpService {
  readonly #registry: Registry;
  readonly #relay: RelayPolicy;
  readonly #limits: Readonly<Limits>;
  readonly #log: ServerLog;
  readonly #stats: CoordinatorStats;
  readonly #budget: AddressBudget;
  readonly #outbox: PresenceOutbox;
  readonly #challenges: LoginChallenges;
  readonly #sendBytes: (bytes: Uint8Array, to: Endpoint) => void;
  readonly #tcpPort: number;
  readonly #onOnlineAtOnce: ((user: User) => void) | undefined;
  readonly #contacts: ContactService | undefined;
  /** `connect`: who wants to talk to whom, knocks and introductions. */
  readonly introductions: Introductions;

  constructor(options: UdpServiceOptions) {
    this.#registry = options.registry;
    this.#relay = options.relay;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#stats = options.stats;
    this.#budget = options.budget;
    this.#outbox = options.outbox;
    this.#challenges = options.challenges;
    this.#sendBytes = options.send;
    this.#tcpPort = options.tcpPort;
    this.#onOnlineAtOnce = options.onOnlineAtOnce;
    this.#contacts = options.contacts;
    const clock = options.clock ?? realClock;
    this.introductions = new Introductions({
      registry: options.registry,
      relay: options.relay,
      now: () => clock.now(),
      send: (msg, to) => this.#send(msg, to),
      mayMeet: (a, b) => options.contacts?.mayMeet(a, b) ?? true,
      alsoSend: options.alsoIntroduce,
    });
  }

  /** Handles a datagram that reached the main port. Never throws. */
  onDatagram(data: Uint8Array, from: Endpoint): void {
    this.#stats.datagrams++;
    try {
      if (data.length > this.#limits.maxDatagramBytes) {
        this.#log.limited(
          "max-datagram",
          `${data.length}-byte datagram from ${formatEndpoint(from)} is over ` +
            `${this.#limits.maxDatagramBytes} bytes; dropped`,
        );
        return;
      }
      // STUN before frames: its first byte (0x00 or 0x01) is below 0x20 too.
      if (isStun(data)) return this.#stun(data, from);
      const frame = isFrame(data);
      // Frames from an online user's own endpoint are the relay's to budget, per pair.
      const relaying = frame && this.#registry.at(from)?.state === "online";
      if (!relaying && !this.#budget.allowDatagram(from.host)) return;
      if (frame) this.#onFrame(data, from);
      else {
        const text = decodeText(data, this.#limits.maxLineBytes);
        this.#handle(parseClientMessage(text), from, data);
      }
    } catch (err) {
      this.#stats.malformed++;
      if (err instanceof SeedProtocolError) {
        this.#log.throttled(
          "malformed datagram",
          `dropped datagram from ${formatEndpoint(from)}: ${err.message}`,
        );
        const error = (reason: string): ServerMessage => ({ type: "error", reason });
        this.#answer([error(err.message), error("malformed")], from, data.length);
      } else if (err instanceof FrameError) {
        // Frames are never answered, so a spoofed source cannot use us to reflect traffic.
      } else {
        // A bug of ours must not take the server down for everyone else.
        this.#log.throttled(
          "internal error",
          `internal error on datagram from ${formatEndpoint(from)}: ${err}`,
        );
      }
    }
  }

  /**
   * Handles a datagram that reached the alternate port, which exists for NAT mapping tests
   * (`p2p nat`): it answers `whoami` through `reply`, and nothing else, malformed or not.
   */
  onWhoamiPort(data: Uint8Array, from: Endpoint, reply: (bytes: Uint8Array) => void): void {
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(decodeText(data, MAX_WHOAMI));
    } catch {
      return;
    }
    if (msg.type === "whoami") this.#whoami(from, data, reply);
  }

  /**
   * Drops the users gone silent (they stopped heartbeating) and the logins never confirmed by a
   * list fetch; everyone else hears of the former.
   */
  expire(): void {
    const { expired, abandoned } = this.#registry.expire();
    for (const user of expired) {
      this.#log.line(`expired ${describe(user)}`);
      this.#left(user);
    }
    this.#outbox.schedule();
    for (const user of abandoned) {
      this.#log.throttled(
        "abandoned login",
        `forgot login ${user.name} from ${formatEndpoint(user.observed)}: no list fetch`,
      );
    }
  }

  #send(msg: ServerMessage, to: Endpoint): void {
    this.#sendBytes(encoder.encode(encodeServerMessage(msg)), to);
  }

  /**
   * Answers with the first of `candidates` no longer than the request, or not at all: a forged
   * source address must not get more bytes than the forger spent.
   */
  #answer(candidates: ServerMessage[], to: Endpoint, requestLength: number): void {
    for (const m of candidates) {
      const bytes = encoder.encode(encodeServerMessage(m));
      if (bytes.length <= requestLength) {
        this.#sendBytes(bytes, to);
        return;
      }
    }
  }

  /**
   * Answers `whoami` with `You,<endpoint>` only when that is no longer than the request (clients
   * pad it), so that not even this answer amplifies; it is charged to the logins budget.
   */
  #whoami(from: Endpoint, request: Uint8Array, send: (bytes: Uint8Array) => void): void {
    const answer = encoder.encode(encodeServerMessage({ type: "you", endpoint: from }));
    if (answer.length <= request.length && this.#budget.allowRequest(from.host, "whoami")) {
      send(answer);
    }
  }

  /**
   * Answers a STUN Binding request (docs/PROTOCOL.md §4): with the answer `answerBinding` allows
   * (never longer than the request, but for the bare 32- or 44-byte one), charged to the logins
   * budget like `whoami`; everything else STUN is dropped unanswered.
   */
  #stun(data: Uint8Array, from: Endpoint): void {
    const answer = answerBinding(data, from, { software: STUN_SOFTWARE });
    if (answer === undefined || !this.#budget.allowRequest(from.host, "STUN request")) {
      this.#stats.stunIgnored++;
      return;
    }
    this.#stats.stunAnswered++;
    this.#sendBytes(answer, from);
  }

  /** Relays a frame between two introduced users; drops everything else unanswered. */
  #onFrame(data: Uint8Array, from: Endpoint): void {
    this.#stats.frames++;
    const frame = decodeFrame(data);
    const sender = this.#registry.at(from);
    if (frame.type !== "relay" || sender?.state !== "online") return;
    const target = this.#registry.get(frame.to);
    const address = addressKey(from.host);
    const verdict = target?.state === "online"
      ? this.#relay.allow(sender.name, frame.to, frame.inner.length, address)
      : "not-introduced";
    if (verdict !== "ok") {
      this.#stats.relayDropped++;
      if (verdict === "user-over-budget") {
        this.#log.limited("relay-per-user", `${sender.name} relayed over its budget; dropped`);
      } else if (verdict === "address-over-budget") {
        this.#log.limited("relay-per-address", `${address} relayed over its budget; dropped`);
      }
      return;
    }
    this.#stats.relayed++;
    this.#sendBytes(
      encodeFrame({ type: "relayed", from: sender.name, inner: frame.inner }),
      target!.observed,
    );
  }

  #handle(msg: ClientMessage, from: Endpoint, request: Uint8Array): void {
    switch (msg.type) {
      case "login":
        return this.#login(msg, from, request);
      case "logout": {
        const result = this.#registry.logout(msg.username, from, msg.secret);
        if (result.kind === "removed") {
          this.#log.line(`logout ${describe(result.user)}`);
          this.#left(result.user);
          this.#outbox.schedule();
        } else if (result.kind === "forged") {
          this.#log.throttled(
            "forged logout",
            `ignored forged logout for ${msg.username} from ${formatEndpoint(from)} ` +
              (result.why === "secret"
                ? "(without the secret it logged in with)"
                : `(owned by ${formatEndpoint(result.owner.observed)})`),
          );
        }
        return;
      }
      case "heartbeat":
        return this.#heartbeat(msg, from, request);
      case "connect": {
        if (!this.#budget.allowRequest(from.host, "connect")) return;
        const requester = this.#registry.heardFrom(msg.username, from);
        if (requester) this.introductions.connect(requester, msg.target);
        else this.#send({ type: "expired", username: msg.username }, from);
        return;
      }
      case "whoami":
        this.#whoami(from, request, (bytes) => this.#sendBytes(bytes, from));
        return;
      case "nat": {
        // Unanswered: only the name's owner, from its own endpoint, can set it.
        const user = this.#registry.heardFrom(msg.username, from);
        if (user) user.nat = msg.nat;
        return;
      }
      case "candidates":
        return this.#candidates(msg, from);
      case "contact":
      case "listed":
        // Unanswered, whatever becomes of it (docs/PROTOCOL.md §1.5).
        return this.#contacts?.handle(msg, from);
    }
  }

  /**
   * Keeps the endpoints an owner announced (with its secret, from its own endpoint), those the
   * policy lets through (`candidate_policy.ts`). Unanswered, like `nat`.
   */
  #candidates(msg: Extract<ClientMessage, { type: "candidates" }>, from: Endpoint): void {
    const user = this.#registry.heardFrom(msg.username, from);
    if (user?.secret === undefined || user.secret !== msg.secret) {
      this.#log.throttled(
        "forged candidates",
        `ignored candidates for ${msg.username} from ${formatEndpoint(from)}: not its online ` +
          `owner with its secret`,
      );
      return;
    }
    user.candidates = passableCandidates(msg.candidates, user.observed);
  }

  #login(
    msg: Extract<ClientMessage, { type: "login" }>,
    from: Endpoint,
    request: Uint8Array,
  ): void {
    if (!this.#budget.allowRequest(from.host, "login")) return;
    const ext = msg.ext && { key: msg.ext.key, secret: msg.ext.secret };
    let result = this.#registry.login(msg.username, msg.endpoint, from, ext);
    if (result.kind === "challenge") {
      const holder = formatEndpoint(result.holder.observed);
      if (!this.#proved(msg, from, request)) return;
      result = this.#registry.login(msg.username, msg.endpoint, from, { ...ext!, proven: true });
      if (result.kind !== "rejected") {
        this.#stats.takeovers++;
        this.#log.line(
          `${msg.username} proved its key from ${formatEndpoint(from)}: took over from ${holder}`,
        );
      }
    }
    if (result.kind === "challenge") return; // cannot be: the login proved its key
    if (result.kind === "rejected") {
      countBy(this.#stats.refusals, result.why);
      this.#log.throttled(
        "rejected login",
        `rejected login ${msg.username} from ${formatEndpoint(from)}: ${result.reason}`,
      );
      if (result.why === "full") {
        this.#log.limited("max-users", `${this.#limits.maxUsers} users online; refused a login`);
      } else if (result.why !== "in-use" && result.why !== "lookalike" && result.why !== "owned") {
        this.#log.limited(result.why, `${from.host}: ${result.reason}; refused ${msg.username}`);
      }
      const reject = (reason: string): ServerMessage => ({ type: "reject", reason });
      this.#answer([result.reason, ...SHORT_REJECT[result.why]].map(reject), from, request.length);
      return;
    }
    if (result.kind === "pending" && result.evicted) {
      this.#log.limited(
        "max-pending",
        `${this.#limits.maxPending} logins waiting for their list fetch; forgot ` +
          `${result.evicted.name} from ${formatEndpoint(result.evicted.observed)}`,
      );
    }
    if (result.kind === "rebound") this.#moved(result.user, result.previous);
    if (result.kind !== "pending" && result.displaced) {
      this.#send({ type: "replaced", username: msg.username }, result.displaced);
    }
    this.#send({ type: "accept", tcpPort: this.#tcpPort }, from);
    if (result.kind !== "pending") this.#onOnlineAtOnce?.(result.user);
  }

  /**
   * Whether a login for a name its key owns, held by another session, proved the key. Without a
   * proof it is sent a `Challenge` (no larger than the login, like every answer to an unproven
   * address); with one that fails, `Reject` with the reason, and the log says so.
   */
  #proved(
    msg: Extract<ClientMessage, { type: "login" }>,
    from: Endpoint,
    request: Uint8Array,
  ): boolean {
    const { key, secret, proof } = msg.ext!;
    const login = { name: msg.username, key, secret, observed: from };
    if (proof === undefined) {
      const nonce = this.#challenges.issue(login);
      const serverKey = this.#challenges.serverKey;
      this.#stats.challenges++;
      this.#answer([{ type: "challenge", serverKey, nonce }], from, request.length);
      return false;
    }
    const verdict = this.#challenges.verify({ ...login, ...proof });
    if (verdict === "ok") return true;
    const reason = PROOF_REFUSED[verdict];
    this.#stats.proofsRefused++;
    countBy(this.#stats.refusals, verdict);
    this.#log.throttled(
      "refused proof",
      `refused login ${msg.username} from ${formatEndpoint(from)}: ${reason}`,
    );
    const reject = (r: string): ServerMessage => ({ type: "reject", reason: r });
    this.#answer([reason, "proof refused", "in use"].map(reject), from, request.length);
    return false;
  }

  #heartbeat(
    msg: Extract<ClientMessage, { type: "heartbeat" }>,
    from: Endpoint,
    request: Uint8Array,
  ): void {
    const result = this.#registry.heartbeat(msg.username, from, msg.secret);
    if (result.kind === "replaced") {
      this.#answer([{ type: "replaced", username: msg.username }], from, request.length);
      return;
    }
    if (result.kind === "forged") {
      // Unanswered: an `Expired` would send the owner to log in again.
      this.#log.throttled(
        "forged heartbeat",
        `ignored heartbeat for ${msg.username} from ${formatEndpoint(from)} without the secret ` +
          `it logged in with`,
      );
      return;
    }
    const beat = result.kind === "alive" ? result : undefined;
    if (beat?.previous) this.#moved(beat.user, beat.previous);
    const answer: ServerMessage = !beat
      ? { type: "expired", username: msg.username }
      // Only a member sent versioned batches can use the version (a seed-only client that logs
      // in again with a key stays unbatched until it is admitted again).
      : beat.user.state === "online" && this.#outbox.isBatched(beat.user)
      ? { type: "alive", endpoint: from, version: this.#outbox.handedTo(beat.user) }
      : { type: "alive", endpoint: from };
    // `Alive` can be longer than the heartbeat: only a proven address gets it regardless.
    if (beat?.user.state === "online") this.#send(answer, from);
    else this.#answer([answer], from, request.length);
  }

  /** A user's endpoint changed (its NAT's mapping did): everyone else learns the new one. */
  #moved(user: User, previous: Endpoint): void {
    this.#log.line(
      `moved ${user.name} from ${formatEndpoint(previous)} to ${formatEndpoint(user.observed)}`,
    );
    this.#outbox.moved(user);
    this.#outbox.schedule();
  }

  /** A user logged out or expired; the caller schedules the flush. */
  #left(user: User): void {
    this.#relay.forget(user.name);
    this.introductions.forget(user.name);
    this.#outbox.leave(user);
  }
}
