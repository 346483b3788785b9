/**
 * What tests use to play a client (or an attacker) against a real coordinator: a raw UDP socket on
 * a loopback address of its own (each address is a "source address" of its own), recording what
 * arrives, and a coordinator started for one test.
 */
import dgram from "node:dgram";
import { Coordinator, type CoordinatorOptions } from "../../lib/coordinator.ts";
import { sleep } from "./wait.ts";

/** Runs `fn` with a coordinator on loopback (any free ports) whose log lines are collected. */
export async function withCoordinator(
  options: CoordinatorOptions,
  fn: (c: Coordinator, log: string[]) => Promise<void>,
): Promise<void> {
  const log: string[] = [];
  const c = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    log: (l) => log.push(l),
    ...options,
  });
  try {
    await fn(c, log);
  } finally {
    await c.close();
  }
}

/** A raw UDP socket that sends to the coordinator at 127.0.0.1 and keeps what it receives. */
export class RawUdp {
  readonly received: Uint8Array[] = [];
  readonly #socket: dgram.Socket;
  readonly #server: number;

  private constructor(socket: dgram.Socket, server: number) {
    this.#socket = socket;
    this.#server = server;
    socket.on("message", (msg: Uint8Array) => this.received.push(new Uint8Array(msg)));
  }

  /**
   * Binds to `host` (any loopback address), sending to the coordinator's UDP port. `port` binds a
   * given port (default any); `shared` lets another shared socket bind the same port, to play a
   * forger of this one's source endpoint (both must say so). Not by default: with sharing on, the
   * kernel may give two sockets that bind port 0 the same ephemeral port.
   */
  static async open(
    host: string,
    serverPort: number,
    options: { port?: number; shared?: boolean } = {},
  ): Promise<RawUdp> {
    const socket = dgram.createSocket({ type: "udp4", reuseAddr: options.shared ?? false });
    await new Promise<void>((resolve) => socket.bind(options.port ?? 0, host, () => resolve()));
    return new RawUdp(socket, serverPort);
  }

  get host(): string {
    return this.#socket.address().address;
  }

  get port(): number {
    return this.#socket.address().port;
  }

  get endpoint(): string {
    return `${this.host}:${this.port}`;
  }

  /** What arrived, as text. */
  get texts(): string[] {
    return this.received.map((d) => new TextDecoder().decode(d));
  }

  send(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.#socket.send(bytes, this.#server, "127.0.0.1");
  }

  /** Waits until `pred` holds for what was received, or fails after `ms`. */
  async until(pred: (texts: string[]) => boolean, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.texts)) {
      if (Date.now() > deadline) {
        throw new Error(`timed out; got ${JSON.stringify(this.texts.slice(-5))}`);
      }
      await sleep(5);
    }
  }

  /** Waits until `count` datagrams matching `pred` have arrived; fails after `ms`. */
  untilCount(pred: (text: string) => boolean, count = 1, ms = 5000): Promise<void> {
    return this.until((texts) => texts.filter(pred).length >= count, ms);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
