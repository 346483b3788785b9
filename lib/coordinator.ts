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
import { type Endpoint, formatEndpoint } from "./protocol/endpoint.ts";
import { isFrame } from "./protocol/frame.ts";
import {
  decodeText,
  encodeList,
  encodeServerMessage,
  parseClientMessage,
  SeedProtocolError,
  type ServerMessage,
} from "./protocol/seed.ts";
import { Registry, type User } from "./registry.ts";
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
  /** Where log lines go; default: stderr with a timestamp. */
  log?: (line: string) => void;
}

const encoder = new TextEncoder();

/** A running coordinator. */
export class Coordinator {
  readonly registry: Registry;
  readonly #udp: UdpSocket;
  readonly #tcp: net.Server;
  readonly #log: (line: string) => void;
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #connections = new Set<net.Socket>();
  /** Counters, for tests and the log. */
  readonly stats = { datagrams: 0, malformed: 0, frames: 0, listFetches: 0 };

  private constructor(
    udp: UdpSocket,
    tcp: net.Server,
    registry: Registry,
    log: (line: string) => void,
    sweepMs: number,
  ) {
    this.#udp = udp;
    this.#tcp = tcp;
    this.registry = registry;
    this.#log = log;
    udp.onMessage((data, from) => this.#onDatagram(data, from));
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
    const sweepMs = Math.max(50, Math.min(1000, peerTimeoutMs / 4));
    return new Coordinator(udp, tcp, registry, log, sweepMs);
  }

  /** The UDP port logins go to. */
  get udpPort(): number {
    return this.#udp.local.port;
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
    if (isFrame(data)) {
      // Peer frames are for peers; the relay (when added) handles them. Never answered, so a
      // spoofed source cannot use us to reflect traffic.
      this.stats.frames++;
      return;
    }
    try {
      this.#handle(parseClientMessage(decodeText(data)), from);
    } catch (err) {
      this.stats.malformed++;
      if (err instanceof SeedProtocolError) {
        this.#log(`dropped datagram from ${formatEndpoint(from)}: ${err.message}`);
        this.#send({ type: "error", reason: err.message }, from);
      } else {
        // A bug of ours must not take the server down for everyone else.
        this.#log(`internal error on datagram from ${formatEndpoint(from)}: ${err}`);
      }
    }
  }

  #handle(msg: ReturnType<typeof parseClientMessage>, from: Endpoint): void {
    switch (msg.type) {
      case "login": {
        const result = this.registry.login(msg.username, msg.endpoint, from);
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
        const user = this.registry.heartbeat(msg.username, from);
        this.#send(
          user ? { type: "alive", endpoint: from } : { type: "expired", username: msg.username },
          from,
        );
        return;
      }
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
      this.#announceLeave(user);
    }
    for (const user of abandoned) {
      this.#log(`forgot login ${user.name} from ${formatEndpoint(user.observed)}: no list fetch`);
    }
  }
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
