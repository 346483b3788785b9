/**
 * The coordinator (`p2p serve`): the sockets around {@linkcode Registry}. One UDP socket speaks
 * the seed's text protocol (logins, logouts, heartbeats, presence broadcasts); one TCP listener
 * hands out the online list and, by that fetch, admits the logins from its IP address.
 *
 * Built to hold a large community on a small box and to shrug off abuse (docs/PROTOCOL.md §3):
 * presence changes go out in batches ({@linkcode PresenceFanout}) sent a slice at a time, so the
 * server keeps answering while it tells ten thousand users about a storm of logins; every input is
 * limited per address ({@linkcode Limits}); nothing is sent to an address that has not proved it
 * receives there, except one answer no larger than the request (`whoami` included: its `You`
 * goes only to a request padded to at least its length).
 *
 * Presence is versioned for clients that speak our extensions, so that one that lost a datagram
 * can tell and fetch the list again: their list ends with the presence version it holds (unless a
 * seed-only client shares the address, as it would not expect the extra line), each batched
 * datagram says which versions it covers, and `Alive` says up to which version every datagram for
 * them has been handed to the socket.
 *
 * @example
 * ```ts
 * const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0 });
 * console.log(coordinator.udpPort, coordinator.tcpPort);
 * await coordinator.close();
 * ```
 * @module
 */
import { type FanoutBatch, PresenceFanout } from "./coordinator/fanout.ts";
import {
  addressKey,
  ConnectionCounter,
  type Limits,
  LogThrottle,
  RateLimiter,
  resolveLimits,
} from "./coordinator/limits.ts";
import { encodeBase64url } from "./protocol/base64url.ts";
import { type Endpoint, formatEndpoint } from "./protocol/endpoint.ts";
import { decodeFrame, encodeFrame, FrameError, isFrame } from "./protocol/frame.ts";
import {
  type ClientMessage,
  decodeText,
  encodeListVersion,
  encodeServerMessage,
  MAX_BATCH_DATAGRAM,
  parseClientMessage,
  SeedProtocolError,
  type ServerMessage,
} from "./protocol/seed.ts";
import { Registry, type User } from "./coordinator/registry.ts";
import { RelayPolicy } from "./coordinator/relay.ts";
import { UdpSocket } from "./net/udp.ts";
import { MAX_WHOAMI } from "./protocol/whoami.ts";

/** Options for {@linkcode Coordinator.start}. */
export interface CoordinatorOptions {
  /** Address to listen on; default `0.0.0.0`. */
  host?: string;
  /** UDP port; default 7000. 0 picks a free one. */
  port?: number;
  /** TCP port of the list service; default the same number as the UDP port (any, if that is 0). */
  tcpPort?: number;
  /** Drop users silent this long; default 45 s. */
  peerTimeoutMs?: number;
  /** Forget logins whose list fetch did not come within this long; default 10 s. */
  pendingTimeoutMs?: number;
  /**
   * A second UDP port that only answers `whoami`, so a client can tell whether its NAT maps
   * one socket to the same public port for every destination (`p2p nat`). Default: `port + 1`
   * (any free port if `port` is 0); a taken port is logged and skipped.
   */
  altPort?: number;
  /** Where log lines go; default: stderr with a timestamp. */
  log?: (line: string) => void;
  /** Relay budget per introduced pair. */
  relay?: { bytesPerSecond?: number; burstBytes?: number };
  /** Limits on users, rates, connections and sizes; unset ones take their defaults. */
  limits?: Partial<Limits>;
  /**
   * Longest pause between two presence flushes; default 250 ms. The pause after a flush is in
   * proportion to what the flush sent (20 µs per datagram), so a small community hears of a
   * change at once, and a large one gets its changes batched without the flushes taking more
   * than about a third of the server's time; it ends early once two datagrams' worth of changes
   * wait (a login storm).
   */
  batchMs?: number;
}

/** Datagrams sent per slice of a presence flush, before other work gets a turn. */
const SLICE = 1_000;
/** The outbox goes on once no more than this many datagrams are still queued. */
const LOW_WATER = 200;
/** Pause after a presence flush per datagram it sent, in ms (about twice a send's cost). */
const PAUSE_PER_DATAGRAM_MS = 0.02;
/**
 * A flush starts at once, pause or not, when this many bytes of batched lines wait: two full
 * datagrams. Waiting longer would save at most one partly filled datagram per client, and only
 * delay the rest.
 */
const EARLY_FLUSH_BYTES = 2 * MAX_BATCH_DATAGRAM;
const encoder = new TextEncoder();
const END = encoder.encode("end");
/** Where list-service input is read to be thrown away (all connections share it). */
const SCRATCH = new Uint8Array(4096);

/** A running coordinator. */
export class Coordinator {
  readonly registry: Registry;
  readonly relay: RelayPolicy;
  readonly limits: Readonly<Limits>;
  readonly #udp: Deno.DatagramConn;
  readonly #alt: UdpSocket | undefined;
  readonly #tcp: Deno.TcpListener;
  readonly #udpPort: number;
  readonly #tcpPort: number;
  readonly #log: (line: string) => void;
  readonly #throttled: LogThrottle;
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #batchMs: number;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** No presence flush before this time (ms): the pause after the last flush. */
  #quietUntil = 0;
  /** Datagrams the current flush has sent so far. */
  #flushSent = 0;
  /** The presence version of the current (or last) flush: the `to` of its datagrams. */
  #flushVersion = 0;
  /** The version of the last flush whose datagrams have all been handed to the socket. */
  #handedVersion = 0;
  /** Open list-service connections, and how to close each. */
  readonly #connections = new Map<Deno.Conn, () => void>();
  readonly #tcpCount: ConnectionCounter;
  readonly #datagramRate: RateLimiter;
  readonly #loginRate: RateLimiter;
  readonly #fanout = new PresenceFanout<User>();
  /**
   * Presence datagrams still to send. They go out in rounds: round r sends every batch's datagram
   * r to each of its members, so no member's socket (or home router) gets a burst — which
   * seed-only clients, one message per datagram, would overflow. `#cursor` is where we are.
   */
  #outbox: FanoutBatch<User>[] = [];
  #cursor = { round: 0, batch: 0, member: 0 };
  /** Datagrams handed to the socket and not yet out. */
  #inFlight = 0;
  #receiving: Promise<void> = Promise.resolve();
  #accepting: Promise<void> = Promise.resolve();
  /** The outbox waits for the socket's queue to run low (see {@linkcode #drain}). */
  #drainWaiting = false;
  #closing: Promise<void> | undefined;
  /** Counters, for tests, the benchmark and the log. */
  readonly stats = {
    /** Datagrams received. */
    datagrams: 0,
    malformed: 0,
    frames: 0,
    relayed: 0,
    relayDropped: 0,
    listFetches: 0,
    /** Datagrams sent, all kinds. */
    sent: 0,
    sentBytes: 0,
    /** Of those, presence datagrams (batched `Presence`, or the seed's `login`/`logout`). */
    presenceSent: 0,
    /** Datagrams, logins and connections refused by a limit. */
    limited: 0,
  };

  private constructor(
    sockets: { udp: Deno.DatagramConn; alt: UdpSocket | undefined; tcp: Deno.TcpListener },
    options: {
      registry: Registry;
      relay: RelayPolicy;
      limits: Limits;
      log: (line: string) => void;
      sweepMs: number;
      batchMs: number;
    },
  ) {
    const { udp, alt, tcp } = sockets;
    const now = () => Date.now();
    this.#udp = udp;
    this.#alt = alt;
    this.#tcp = tcp;
    this.#udpPort = (udp.addr as Deno.NetAddr).port;
    this.#tcpPort = (tcp.addr as Deno.NetAddr).port;
    this.registry = options.registry;
    this.relay = options.relay;
    this.limits = Object.freeze(options.limits);
    const log = options.log;
    this.#log = (line) => log(printable(line));
    this.#throttled = new LogThrottle({ now, log: this.#log });
    const { limits } = options;
    this.#tcpCount = new ConnectionCounter({ perKey: limits.tcpPerAddress, total: limits.maxTcp });
    const maxKeys = limits.maxAddresses;
    this.#datagramRate = new RateLimiter({ now, perSecond: limits.datagramsPerSecond, maxKeys });
    this.#loginRate = new RateLimiter({ now, perSecond: limits.loginsPerSecond, maxKeys });
    alt?.onMessage((data, from) => {
      // The alternate port exists for NAT mapping tests and answers nothing else.
      let msg: ClientMessage;
      try {
        msg = parseClientMessage(decodeText(data, MAX_WHOAMI));
      } catch {
        return; // unanswered, malformed or not: this port answers nothing but whoami
      }
      if (msg.type === "whoami") this.#whoami(from, data, (bytes) => alt.send(bytes, from));
    });
    this.#batchMs = options.batchMs;
    this.#sweep = setInterval(() => this.#expire(), options.sweepMs);
    this.#receiving = this.#receive();
    this.#accepting = this.#accept();
  }

  /** Binds the sockets and starts serving. Rejects if a port is taken or a limit is invalid. */
  static async start(options: CoordinatorOptions = {}): Promise<Coordinator> {
    const host = options.host ?? "0.0.0.0";
    const peerTimeoutMs = options.peerTimeoutMs ?? 45_000;
    const limits = resolveLimits(options.limits);
    const udp = bindUdp(host, options.port ?? 7000);
    const udpPort = (udp.addr as Deno.NetAddr).port;
    let tcp: Deno.TcpListener;
    try {
      tcp = Deno.listen({ transport: "tcp", hostname: host, port: options.tcpPort ?? udpPort });
    } catch (err) {
      udp.close();
      throw err;
    }
    const registry = new Registry({
      now: () => Date.now(),
      peerTimeoutMs,
      pendingTimeoutMs: options.pendingTimeoutMs,
      maxUsers: limits.maxUsers,
      maxPending: limits.maxPending,
    });
    const log = options.log ?? ((line) => console.error(`${new Date().toISOString()} ${line}`));
    const altPort = options.altPort ?? (udpPort === 0 ? 0 : udpPort + 1);
    let alt: UdpSocket | undefined;
    try {
      alt = await UdpSocket.bind({ host, port: options.port === 0 ? 0 : altPort });
    } catch (err) {
      log(`no alternate UDP port ${altPort} for NAT tests: ${(err as Error).message}`);
    }
    const relay = new RelayPolicy({ now: () => Date.now(), ...options.relay });
    const sweepMs = Math.max(50, Math.min(1000, peerTimeoutMs / 4));
    return new Coordinator({ udp, alt, tcp }, {
      registry,
      relay,
      limits,
      log,
      sweepMs,
      batchMs: options.batchMs ?? 250,
    });
  }

  /** The UDP port logins go to. */
  get udpPort(): number {
    return this.#udpPort;
  }

  /** The alternate UDP port that answers `whoami` (undefined if it could not be bound). */
  get altPort(): number | undefined {
    return this.#alt?.local.port;
  }

  /** The TCP port of the list service (sent in `Accept`). */
  get tcpPort(): number {
    return this.#tcpPort;
  }

  /** Presence datagrams waiting to be sent (0 once every client has been told everything). */
  get backlog(): number {
    let n = this.#fanout.pending > 0 ? 1 : 0;
    const { round, batch, member } = this.#cursor;
    this.#outbox.forEach((b, i) => {
      const done = Math.min(b.datagrams.length, round + (i < batch ? 1 : 0));
      n += b.members.length * (b.datagrams.length - done) - (i === batch ? member : 0);
    });
    return n;
  }

  /**
   * Says goodbye (`Bye,<reason>`) to every online user, so that clients know at once to look for
   * the coordinator again, then closes every socket. Calling it again waits for the first call.
   */
  close(reason = "the server is shutting down"): Promise<void> {
    this.#closing ??= this.#shutdown(reason);
    return this.#closing;
  }

  async #shutdown(reason: string): Promise<void> {
    clearInterval(this.#sweep);
    clearTimeout(this.#flushTimer);
    this.#outbox = [];
    this.#tcp.close();
    for (const close of [...this.#connections.values()]) close();
    const bye = encoder.encode(encodeServerMessage({ type: "bye", reason }));
    const online = this.registry.online();
    const sent = new Promise<void>((resolve) => {
      if (online.length === 0) return resolve();
      const timer = setTimeout(resolve, 2000); // never hang on sends that cannot complete
      // Deno's sockets send concurrently and drop what is unsent at close: wait for every one.
      let left = online.length;
      const done = () => {
        if (--left > 0) return;
        clearTimeout(timer);
        resolve();
      };
      for (const user of online) this.#sendBytes(bye, user.observed, done);
    });
    if (online.length > 0) this.#log(`said goodbye to ${online.length} user(s): ${reason}`);
    this.#throttled.flush();
    await sent;
    await this.#accepting;
    this.#udp.close();
    await this.#receiving;
    await this.#alt?.close();
  }

  /** Receives datagrams until the socket closes, one at a time into one buffer. */
  async #receive(): Promise<void> {
    // Handling is synchronous and keeps nothing that points into the buffer, so one will do.
    const buffer = new Uint8Array(65_536);
    while (this.#closing === undefined) {
      let data: Uint8Array;
      let addr: Deno.Addr;
      try {
        [data, addr] = await this.#udp.receive(buffer);
      } catch (err) {
        if (this.#closing !== undefined || err instanceof Deno.errors.BadResource) return;
        this.#throttled.line("udp error", `UDP receive: ${(err as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 10)); // no busy loop on a bad socket
        continue;
      }
      const { hostname, port } = addr as Deno.NetAddr;
      this.#onDatagram(data, { host: normalizeHost(hostname), port });
    }
  }

  /**
   * Sends a datagram; `done`, if given, is called once it is out (or failed). Every send is
   * counted until it is out: sends queue without limit and what is still queued at close is
   * dropped, so the outbox waits for the queue to run low ({@linkcode #drain}).
   */
  #sendBytes(bytes: Uint8Array, to: Endpoint, done?: () => void): void {
    this.stats.sent++;
    this.stats.sentBytes += bytes.length;
    this.#inFlight++;
    const sending = this.#udp.send(bytes, { transport: "udp", hostname: to.host, port: to.port });
    // Shared handlers, not closures per send: millions of sends must not each leave garbage.
    if (done) sending.then(this.#sent, this.#sendFailed).then(done);
    else sending.then(this.#sent, this.#sendFailed);
  }

  readonly #sent = (): void => {
    this.#inFlight--;
    if (this.#drainWaiting && this.#inFlight <= LOW_WATER && !this.#closing) {
      this.#drainWaiting = false;
      this.#drain();
    }
  };

  /** A send that failed (no route, full buffer) is UDP being lossy: note it, go on. */
  readonly #sendFailed = (err: Error): void => {
    this.#throttled.line("udp error", `UDP send failed: ${err.message}`);
    this.#sent();
  };

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
    if (answer.length <= request.length && this.#allow(from, "whoami")) send(answer);
  }

  /** Writes a line about a limit that was hit (throttled: input decides how often). */
  #limited(limit: string, detail: string): void {
    this.stats.limited++;
    this.#throttled.line(`limit ${limit}`, `limit ${limit} reached: ${detail}`);
  }

  /** Spends one of the address's logins (the costly requests); logs when none is left. */
  #allow(from: Endpoint, what: string): boolean {
    if (this.#loginRate.allow(addressKey(from.host))) return true;
    this.#limited(
      "logins-per-address",
      `${from.host} sent more than ${this.limits.loginsPerSecond} logins/s; ignored its ${what}`,
    );
    return false;
  }

  #onDatagram(data: Uint8Array, from: Endpoint): void {
    this.stats.datagrams++;
    try {
      if (data.length > this.limits.maxDatagramBytes) {
        this.#limited(
          "max-datagram",
          `${data.length}-byte datagram from ${formatEndpoint(from)} is over ` +
            `${this.limits.maxDatagramBytes} bytes; dropped`,
        );
        return;
      }
      const frame = isFrame(data);
      // Frames from an online user's own endpoint are the relay's to budget, per pair.
      const relaying = frame && this.registry.at(from)?.state === "online";
      if (!relaying && !this.#datagramRate.allow(addressKey(from.host))) {
        this.#limited(
          "datagrams-per-address",
          `${from.host} sent more than ${this.limits.datagramsPerSecond} datagrams/s; dropped`,
        );
        return;
      }
      if (frame) this.#onFrame(data, from);
      else this.#handle(parseClientMessage(decodeText(data, this.limits.maxLineBytes)), from, data);
    } catch (err) {
      this.stats.malformed++;
      if (err instanceof SeedProtocolError) {
        this.#throttled.line(
          "malformed datagram",
          `dropped datagram from ${formatEndpoint(from)}: ${err.message}`,
        );
        const error = (reason: string): ServerMessage => ({ type: "error", reason });
        this.#answer([error(err.message), error("malformed")], from, data.length);
      } else if (err instanceof FrameError) {
        // Frames are never answered, so a spoofed source cannot use us to reflect traffic.
      } else {
        // A bug of ours must not take the server down for everyone else.
        this.#throttled.line(
          "internal error",
          `internal error on datagram from ${formatEndpoint(from)}: ${err}`,
        );
      }
    }
  }

  /** Relays a frame between two introduced users; drops everything else unanswered. */
  #onFrame(data: Uint8Array, from: Endpoint): void {
    this.stats.frames++;
    const frame = decodeFrame(data);
    const sender = this.registry.at(from);
    if (frame.type !== "relay" || sender?.state !== "online") return;
    const target = this.registry.get(frame.to);
    const verdict = target?.state === "online"
      ? this.relay.allow(sender.name, frame.to, frame.inner.length)
      : "not-introduced";
    if (verdict !== "ok") {
      this.stats.relayDropped++;
      return;
    }
    this.stats.relayed++;
    this.#sendBytes(
      encodeFrame({ type: "relayed", from: sender.name, inner: frame.inner }),
      target!.observed,
    );
  }

  #introduce(requester: User, targetName: string): void {
    const target = this.registry.get(targetName);
    const reason = !target || target.state !== "online"
      ? `${targetName} is not online`
      : !target.key
      ? `${targetName} uses a client without direct messaging`
      : targetName === requester.name
      ? "cannot connect to yourself"
      : undefined;
    if (reason || !target?.key || !requester.key) {
      this.#send(
        { type: "unavailable", username: targetName, reason: reason ?? "log in with a key first" },
        requester.observed,
      );
      return;
    }
    const token = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
    this.relay.introduce(requester.name, target.name);
    for (const [to, about] of [[requester, target], [target, requester]]) {
      this.#send({
        type: "introduce",
        username: about.name,
        observed: about.observed,
        claimed: about.claimed,
        key: about.key!,
        token,
        ...(about.nat ? { nat: about.nat } : {}),
      }, to.observed);
    }
  }

  #handle(msg: ClientMessage, from: Endpoint, request: Uint8Array): void {
    switch (msg.type) {
      case "login": {
        if (!this.#allow(from, "login")) return;
        const result = this.registry.login(msg.username, msg.endpoint, from, msg.ext);
        if (result.kind === "rejected") {
          this.#throttled.line(
            "rejected login",
            `rejected login ${msg.username} from ${formatEndpoint(from)}: ${result.reason}`,
          );
          if (result.reason.endsWith("full")) {
            this.#limited("max-users", `${this.limits.maxUsers} users online; refused a login`);
          }
          const reject = (reason: string): ServerMessage => ({ type: "reject", reason });
          const short = result.reason.endsWith("full") ? ["full"] : ["name in use", "in use"];
          this.#answer([result.reason, ...short].map(reject), from, request.length);
          return;
        }
        if (result.kind === "pending" && result.evicted) {
          this.#limited(
            "max-pending",
            `${this.limits.maxPending} logins waiting for their list fetch; forgot ` +
              `${result.evicted.name} from ${formatEndpoint(result.evicted.observed)}`,
          );
        }
        if (result.kind === "rebound") this.#moved(result.user, result.previous);
        this.#send({ type: "accept", tcpPort: this.tcpPort }, from);
        return;
      }
      case "logout": {
        const result = this.registry.logout(msg.username, from);
        if (result.kind === "removed") {
          this.#log(`logout ${describe(result.user)}`);
          this.#left(result.user);
          this.#scheduleFlush();
        } else if (result.kind === "forged") {
          this.#throttled.line(
            "forged logout",
            `ignored forged logout for ${msg.username} from ${formatEndpoint(from)} ` +
              `(owned by ${formatEndpoint(result.owner.observed)})`,
          );
        }
        return;
      }
      case "heartbeat": {
        const beat = this.registry.heartbeat(msg.username, from, msg.secret);
        if (beat?.previous) this.#moved(beat.user, beat.previous);
        const answer: ServerMessage = !beat
          ? { type: "expired", username: msg.username }
          // Only a member sent versioned batches can use the version (a seed-only client that
          // logs in again with a key stays unbatched until it is admitted again).
          : beat.user.state === "online" && this.#fanout.isBatched(beat.user)
          ? { type: "alive", endpoint: from, version: this.#handedTo(beat.user) }
          : { type: "alive", endpoint: from };
        // `Alive` can be longer than the heartbeat: only a proven address gets it regardless.
        if (beat?.user.state === "online") this.#send(answer, from);
        else this.#answer([answer], from, request.length);
        return;
      }
      case "connect": {
        if (!this.#allow(from, "connect")) return;
        const requester = this.registry.get(msg.username);
        if (
          requester?.state !== "online" ||
          formatEndpoint(requester.observed) !== formatEndpoint(from)
        ) {
          this.#send({ type: "expired", username: msg.username }, from);
          return;
        }
        requester.lastSeen = Date.now();
        this.#introduce(requester, msg.target);
        return;
      }
      case "whoami":
        this.#whoami(from, request, (bytes) => this.#sendBytes(bytes, from));
        return;
      case "nat": {
        // Unanswered: only the name's owner, from its own endpoint, can set it.
        const user = this.registry.get(msg.username);
        if (user?.state === "online" && formatEndpoint(user.observed) === formatEndpoint(from)) {
          user.nat = msg.nat;
          user.lastSeen = Date.now();
        }
        return;
      }
    }
  }

  /**
   * The version `Alive` tells an online extension user: every presence datagram for it up to
   * this version has been handed to the socket (its list had the changes up to its own version).
   */
  #handedTo(user: User): number {
    return Math.max(this.#handedVersion, user.listVersion ?? 0);
  }

  /** A user's endpoint changed (its NAT's mapping did): everyone else learns the new one. */
  #moved(user: User, previous: Endpoint): void {
    this.#log(
      `moved ${user.name} from ${formatEndpoint(previous)} to ${formatEndpoint(user.observed)}`,
    );
    if (user.state === "online") this.#announce("login", user);
    this.#scheduleFlush();
  }

  /** A user logged out or expired; the caller schedules the flush. */
  #left(user: User): void {
    this.relay.forget(user.name);
    this.#fanout.remove(user);
    if (user.state === "online") this.#announce("logout", user);
  }

  /** Records a presence change; {@linkcode #scheduleFlush} sends it. */
  #announce(type: "login" | "logout", user: User): void {
    const username = user.name;
    const endpoint = user.observed;
    this.#fanout.record(username, {
      seed: encodeServerMessage({ type, username, endpoint }),
      batched: encodeServerMessage(
        type === "login" ? { type: "online", username, endpoint } : { type: "offline", username },
      ),
    });
  }

  /**
   * Flushes presence changes after the pause that follows the previous flush: a change after a
   * quiet spell goes out at once (before the handler that made it even answers its client, as
   * the seed's broadcast did), changes that pile up meanwhile share the next flush's datagrams.
   * Once two datagrams' worth wait ({@linkcode EARLY_FLUSH_BYTES}), the pause is cut short.
   */
  #scheduleFlush(): void {
    if (this.#outbox.length > 0 || this.#closing || this.#fanout.pending === 0) return;
    const full = this.#fanout.pendingBytes >= EARLY_FLUSH_BYTES;
    if (this.#flushTimer !== undefined) {
      if (!full) return;
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    const wait = full ? 0 : this.#quietUntil - Date.now();
    if (wait <= 0) this.#flush();
    else this.#flushTimer = setTimeout(() => this.#flush(), wait);
  }

  /** Hands the presence changes recorded so far to the outbox and starts sending them. */
  #flush(): void {
    this.#flushTimer = undefined;
    this.#flushSent = 0;
    this.#flushVersion = this.#fanout.version;
    this.#outbox = this.#fanout.take();
    this.#cursor = { round: 0, batch: 0, member: 0 };
    this.#drain();
  }

  /**
   * Sends a slice of the outbox, then lets other work run until the socket's queue has run low,
   * so that neither the event loop nor memory is swamped; once the outbox is empty, changes
   * recorded meanwhile get their flush after a pause.
   */
  #drain(): void {
    let budget = SLICE;
    const cursor = this.#cursor;
    while (this.#outbox.length > 0 && budget > 0) {
      const { members, datagrams } = this.#outbox[cursor.batch];
      if (cursor.round < datagrams.length) {
        const datagram = datagrams[cursor.round];
        while (cursor.member < members.length && budget > 0) {
          const user = members[cursor.member++];
          // Someone who left meanwhile (or whose name was taken over) is not told.
          if (this.registry.get(user.name) !== user) continue;
          this.#sendBytes(datagram, user.observed);
          budget--;
          this.stats.presenceSent++;
          this.#flushSent++;
        }
        if (cursor.member < members.length) break; // out of budget mid-batch
      }
      cursor.member = 0;
      if (++cursor.batch === this.#outbox.length) {
        cursor.batch = 0;
        cursor.round++;
        this.#outbox = this.#outbox.filter((b) => b.datagrams.length > cursor.round);
      }
    }
    if (this.#outbox.length > 0) {
      this.#drainWaiting = true; // #sendBytes calls us again when the queue is low
      return;
    }
    this.#handedVersion = this.#flushVersion;
    const pause = Math.min(this.#batchMs, this.#flushSent * PAUSE_PER_DATAGRAM_MS);
    this.#quietUntil = Date.now() + pause;
    this.#scheduleFlush();
  }

  /** Accepts list-service connections until the listener closes. */
  async #accept(): Promise<void> {
    while (this.#closing === undefined) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#tcp.accept();
      } catch (err) {
        if (this.#closing !== undefined || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, say: note it, let things settle, go on.
        this.#throttled.line("tcp error", `TCP accept: ${(err as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      this.#onConnection(conn);
    }
  }

  /**
   * Serves one list fetch: admits the pending logins from the connection's address, writes the
   * list (ending with its presence version, `\nversion,<V>`, unless a seed-only user has that
   * address) and closes our side. Input is read and thrown away, up to a line's worth; past that it
   * is no longer read (TCP's flow control stops the sender). A connection is closed when the
   * client closes its side, or when idle too long, and lives four idle times at most.
   */
  #onConnection(conn: Deno.TcpConn): void {
    const ip = normalizeHost((conn.remoteAddr as Deno.NetAddr).hostname);
    const key = addressKey(ip);
    const verdict = this.#tcpCount.open(key);
    if (verdict !== "ok") {
      if (verdict === "total") {
        this.#limited(
          "max-tcp",
          `${this.limits.maxTcp} TCP connections open; closed one from ${ip}`,
        );
      } else {
        this.#limited(
          "tcp-per-address",
          `${ip} has ${this.limits.tcpPerAddress} TCP connections open; closed another`,
        );
      }
      closeQuietly(conn);
      return;
    }
    const idleMs = this.limits.tcpIdleMs;
    let idle: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        this.#limited("tcp-idle", `connection from ${ip} idle for ${idleMs} ms; closed`);
        close();
      }, idleMs);
    };
    const deadline = setTimeout(() => {
      this.#limited("tcp-idle", `connection from ${ip} open for ${4 * idleMs} ms; closed`);
      close();
    }, 4 * idleMs);
    const close = () => {
      if (!this.#connections.delete(conn)) return;
      clearTimeout(idle);
      clearTimeout(deadline);
      this.#tcpCount.close(key);
      closeQuietly(conn);
    };
    this.#connections.set(conn, close);
    touch();
    if (!this.#allow({ host: ip, port: 0 }, "list fetch")) {
      close();
      return;
    }
    this.stats.listFetches++;
    const { admitted, refused } = this.registry.admitFrom(ip);
    for (const user of admitted) {
      this.#log(`login ${describe(user)}`);
      this.#announce("login", user);
    }
    // Joined after their own login was recorded: their list has it, and everything before it.
    for (const user of admitted) this.#fanout.add(user, { batched: user.key !== undefined });
    this.#scheduleFlush();
    for (const user of refused) {
      this.#limited("max-users", `${this.limits.maxUsers} users online; refused ${user.name}`);
    }
    const version = this.#fanout.version;
    for (const user of admitted) user.listVersion = version;
    // A seed-only client reads everything up to the close as the list, so where one has this
    // address (the connection may be its fetch: nothing tells whose it is), no version.
    const tail = this.registry.hasSeedOnlyAt(ip)
      ? END
      : encoder.encode("end" + encodeListVersion(version));
    const parts = [...this.registry.listParts(), tail];
    const writing = (async () => {
      for (const part of parts) {
        for (let at = 0; at < part.length; touch()) at += await conn.write(part.subarray(at));
      }
      await conn.closeWrite();
    })();
    const reading = (async (): Promise<boolean> => {
      let input = 0;
      for (let n = await conn.read(SCRATCH); n !== null; n = await conn.read(SCRATCH)) {
        touch();
        input += n;
        if (input > this.limits.maxLineBytes) {
          this.#limited(
            "max-line",
            `${ip} sent more than ${this.limits.maxLineBytes} bytes to the list service; ` +
              `no longer reading them`,
          );
          return false; // the timers will close it
        }
      }
      return true; // the client closed its side
    })();
    // A reset or a close from our side ends both; either way the connection is done.
    Promise.all([writing, reading]).then(([, ended]) => ended && close(), close);
  }

  #expire(): void {
    const { expired, abandoned } = this.registry.expire();
    for (const user of expired) {
      this.#log(`expired ${describe(user)}`);
      this.#left(user);
    }
    this.#scheduleFlush();
    for (const user of abandoned) {
      this.#throttled.line(
        "abandoned login",
        `forgot login ${user.name} from ${formatEndpoint(user.observed)}: no list fetch`,
      );
    }
    this.#datagramRate.sweep();
    this.#loginRate.sweep();
    this.#throttled.flush();
  }
}

/** Escapes control characters so that no input can forge or garble log lines. */
function printable(line: string): string {
  return line.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Strips the IPv4-mapped prefix dual-stack sockets put on IPv4 peers. */
function normalizeHost(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

function describe(user: User): string {
  return `${user.name} ${formatEndpoint(user.observed)} (claimed ${formatEndpoint(user.claimed)})`;
}

/**
 * Binds the main UDP socket. Deno's own datagram API, not `node:dgram`: it sends in half the
 * time, and receives into one reused buffer where `node:dgram` allocates one per datagram (which
 * under load costs more memory than the users). It needs `--unstable-net`, which deno.json sets.
 */
function bindUdp(host: string, port: number): Deno.DatagramConn {
  if (typeof Deno.listenDatagram !== "function") {
    throw new Error("Cannot listen on UDP: p2p serve needs Deno's --unstable-net (see deno.json)");
  }
  return Deno.listenDatagram({ transport: "udp", hostname: host, port });
}

/** Closes a connection that may already be closed. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
