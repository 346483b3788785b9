/**
 * The coordinator (`p2p serve`): the sockets around {@linkcode Registry}. One UDP socket speaks
 * the seed's text protocol (logins, logouts, heartbeats, presence broadcasts); one TCP listener
 * hands out the online list and, by that fetch, admits the logins from its IP address.
 *
 * @example
 * ```ts
 * const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0 });
 * console.log(coordinator.udpPort, coordinator.tcpPort);
 * await coordinator.close();
 * ```
 * @module
 */
import net from "node:net";
import { encodeBase64url } from "./protocol/base64url.ts";
import { type Endpoint, formatEndpoint } from "./protocol/endpoint.ts";
import { decodeFrame, encodeFrame, FrameError, isFrame } from "./protocol/frame.ts";
import {
  decodeText,
  encodeList,
  encodeServerMessage,
  parseClientMessage,
  SeedProtocolError,
  type ServerMessage,
} from "./protocol/seed.ts";
import { Registry, type User } from "./registry.ts";
import { RelayPolicy } from "./relay.ts";
import { UdpSocket } from "./net/udp.ts";

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
}

const encoder = new TextEncoder();

/** A running coordinator. */
export class Coordinator {
  readonly registry: Registry;
  readonly relay: RelayPolicy;
  readonly #udp: UdpSocket;
  readonly #alt: UdpSocket | undefined;
  readonly #tcp: net.Server;
  readonly #log: (line: string) => void;
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #connections = new Set<net.Socket>();
  /** Counters, for tests and the log. */
  readonly stats = {
    datagrams: 0,
    malformed: 0,
    frames: 0,
    relayed: 0,
    relayDropped: 0,
    listFetches: 0,
  };

  private constructor(
    sockets: { udp: UdpSocket; alt: UdpSocket | undefined; tcp: net.Server },
    registry: Registry,
    relay: RelayPolicy,
    log: (line: string) => void,
    sweepMs: number,
  ) {
    const { udp, alt, tcp } = sockets;
    this.#udp = udp;
    this.#alt = alt;
    this.#tcp = tcp;
    this.registry = registry;
    this.relay = relay;
    this.#log = (line) => log(printable(line));
    udp.onMessage((data, from) => this.#onDatagram(data, from));
    alt?.onMessage((data, from) => {
      // The alternate port exists for NAT mapping tests and answers nothing else.
      if (new TextDecoder().decode(data).trim() === "whoami") {
        alt.send(encoder.encode(encodeServerMessage({ type: "you", endpoint: from })), from);
      }
    });
    tcp.on("connection", (socket: net.Socket) => this.#onConnection(socket));
    this.#sweep = setInterval(() => this.#expire(), sweepMs);
  }

  /** Binds the sockets and starts serving. Rejects if a port is taken. */
  static async start(options: CoordinatorOptions = {}): Promise<Coordinator> {
    const host = options.host ?? "0.0.0.0";
    const peerTimeoutMs = options.peerTimeoutMs ?? 45_000;
    const udp = await UdpSocket.bind({ host, port: options.port ?? 7000 });
    let tcp: net.Server;
    try {
      tcp = await listenTcp(host, options.tcpPort ?? udp.local.port);
    } catch (err) {
      await udp.close();
      throw err;
    }
    const registry = new Registry({
      now: () => Date.now(),
      peerTimeoutMs,
      pendingTimeoutMs: options.pendingTimeoutMs,
    });
    const log = options.log ?? ((line) => console.error(`${new Date().toISOString()} ${line}`));
    const altPort = options.altPort ?? (udp.local.port === 0 ? 0 : udp.local.port + 1);
    let alt: UdpSocket | undefined;
    try {
      alt = await UdpSocket.bind({ host, port: options.port === 0 ? 0 : altPort });
    } catch (err) {
      log(`no alternate UDP port ${altPort} for NAT tests: ${(err as Error).message}`);
    }
    const relay = new RelayPolicy({ now: () => Date.now(), ...options.relay });
    const sweepMs = Math.max(50, Math.min(1000, peerTimeoutMs / 4));
    return new Coordinator({ udp, alt, tcp }, registry, relay, log, sweepMs);
  }

  /** The UDP port logins go to. */
  get udpPort(): number {
    return this.#udp.local.port;
  }

  /** The alternate UDP port that answers `whoami` (undefined if it could not be bound). */
  get altPort(): number | undefined {
    return this.#alt?.local.port;
  }

  /** The TCP port of the list service (sent in `Accept`). */
  get tcpPort(): number {
    return (this.#tcp.address() as net.AddressInfo).port;
  }

  /** Stops serving and closes every socket. */
  async close(): Promise<void> {
    clearInterval(this.#sweep);
    for (const socket of this.#connections) socket.destroy();
    await new Promise<void>((resolve) => this.#tcp.close(() => resolve()));
    await this.#udp.close();
    await this.#alt?.close();
  }

  #send(msg: ServerMessage, to: Endpoint): void {
    this.#udp.send(encoder.encode(encodeServerMessage(msg)), to);
  }

  #broadcast(msg: ServerMessage, except: string): void {
    for (const user of this.registry.online()) {
      if (user.name !== except) this.#send(msg, user.observed);
    }
  }

  #onDatagram(data: Uint8Array, from: Endpoint): void {
    this.stats.datagrams++;
    try {
      if (isFrame(data)) this.#onFrame(data, from);
      else this.#handle(parseClientMessage(decodeText(data)), from);
    } catch (err) {
      this.stats.malformed++;
      if (err instanceof SeedProtocolError) {
        this.#log(`dropped datagram from ${formatEndpoint(from)}: ${err.message}`);
        this.#sendError(err.message, from, data.length);
      } else if (err instanceof FrameError) {
        // Frames are never answered, so a spoofed source cannot use us to reflect traffic.
      } else {
        // A bug of ours must not take the server down for everyone else.
        this.#log(`internal error on datagram from ${formatEndpoint(from)}: ${err}`);
      }
    }
  }

  /**
   * Answers `Error` only with a reply no longer than the request, so that a forged source
   * address cannot make us send its victim more bytes than the forger spent.
   */
  #sendError(reason: string, to: Endpoint, requestLength: number): void {
    for (const text of [`Error,${reason}`, "Error,malformed"]) {
      const bytes = encoder.encode(encodeServerMessage({ type: "error", reason: text.slice(6) }));
      if (bytes.length <= requestLength) {
        this.#udp.send(bytes, to);
        return;
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
    this.#udp.send(
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
      }, to.observed);
    }
  }

  #moved(user: User, previous: Endpoint): void {
    this.#log(
      `moved ${user.name} from ${formatEndpoint(previous)} to ${formatEndpoint(user.observed)}`,
    );
    if (user.state === "online") {
      this.#broadcast({ type: "login", username: user.name, endpoint: user.observed }, user.name);
    }
  }

  #handle(msg: ReturnType<typeof parseClientMessage>, from: Endpoint): void {
    switch (msg.type) {
      case "login": {
        const result = this.registry.login(msg.username, msg.endpoint, from, msg.ext);
        if (result.kind === "rebound") this.#moved(result.user, result.previous);
        if (result.kind === "rejected") {
          this.#log(
            `rejected login ${msg.username} from ${formatEndpoint(from)}: ${result.reason}`,
          );
          this.#send({ type: "reject", reason: result.reason }, from);
        } else {
          this.#send({ type: "accept", tcpPort: this.tcpPort }, from);
        }
        return;
      }
      case "logout": {
        const result = this.registry.logout(msg.username, from);
        if (result.kind === "removed") {
          this.#log(`logout ${describe(result.user)}`);
          this.relay.forget(result.user.name);
          if (result.user.state === "online") this.#announceLeave(result.user);
        } else if (result.kind === "forged") {
          this.#log(
            `ignored forged logout for ${msg.username} from ${formatEndpoint(from)} ` +
              `(owned by ${formatEndpoint(result.owner.observed)})`,
          );
        }
        return;
      }
      case "heartbeat": {
        const beat = this.registry.heartbeat(msg.username, from, msg.secret);
        if (beat?.previous) this.#moved(beat.user, beat.previous);
        this.#send(
          beat ? { type: "alive", endpoint: from } : { type: "expired", username: msg.username },
          from,
        );
        return;
      }
      case "connect": {
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
        this.#send({ type: "you", endpoint: from }, from);
        return;
    }
  }

  #announceLeave(user: User): void {
    this.#broadcast({ type: "logout", username: user.name, endpoint: user.observed }, user.name);
  }

  #onConnection(socket: net.Socket): void {
    this.#connections.add(socket);
    socket.on("error", () => {}); // a reset by the client is its business, not ours
    socket.on("close", () => this.#connections.delete(socket));
    socket.on("data", () => {}); // the list service takes no input: whatever comes is ignored
    // Idle or slow readers are not kept: the list is small and written at once.
    socket.setTimeout(5_000, () => socket.destroy());
    this.stats.listFetches++;
    const ip = (socket.remoteAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "");
    for (const user of this.registry.admitFrom(ip)) {
      this.#log(`login ${describe(user)}`);
      this.#broadcast({ type: "login", username: user.name, endpoint: user.observed }, user.name);
    }
    const list = this.registry.online().map((u) => ({ username: u.name, endpoint: u.observed }));
    socket.end(encodeList(list));
  }

  #expire(): void {
    const { expired, abandoned } = this.registry.expire();
    for (const user of expired) {
      this.#log(`expired ${describe(user)}`);
      this.relay.forget(user.name);
      this.#announceLeave(user);
    }
    for (const user of abandoned) {
      this.#log(`forgot login ${user.name} from ${formatEndpoint(user.observed)}: no list fetch`);
    }
  }
}

/** Escapes control characters so that no input can forge or garble log lines. */
function printable(line: string): string {
  // deno-lint-ignore no-control-regex
  return line.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function describe(user: User): string {
  return `${user.name} ${formatEndpoint(user.observed)} (claimed ${formatEndpoint(user.claimed)})`;
}

function listenTcp(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
