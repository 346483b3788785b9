/**
 * A third-party client written from the seed's text alone (shared/seed, section 3), on raw
 * sockets: it deliberately uses none of lib/, so it checks the coordinator against the seed
 * rather than against our own codec.
 * @module
 */
import dgram from "node:dgram";
import net from "node:net";

/** A raw UDP client that queues what it receives. */
export class SeedClient {
  readonly received: string[] = [];
  readonly #socket: dgram.Socket;
  readonly #server: { host: string; port: number };
  #waiters: (() => void)[] = [];

  private constructor(socket: dgram.Socket, server: { host: string; port: number }) {
    this.#socket = socket;
    this.#server = server;
    socket.on("message", (msg: Uint8Array) => {
      this.received.push(new TextDecoder().decode(msg));
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static async open(server: { host: string; port: number }): Promise<SeedClient> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    return new SeedClient(socket, server);
  }

  /** `127.0.0.1:port` of this client: its localIPEndPoint. */
  get endpoint(): string {
    return `127.0.0.1:${this.#socket.address().port}`;
  }

  send(text: string | Uint8Array): void {
    const data = typeof text === "string" ? new TextEncoder().encode(text) : text;
    this.#socket.send(data, this.#server.port, this.#server.host);
  }

  /** Waits for (and removes) the first received datagram matching `pred`. */
  async next(pred: (text: string) => boolean, timeoutMs = 3000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.received.findIndex(pred);
      if (i >= 0) return this.received.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out; received so far: ${JSON.stringify(this.received)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Waits `ms` and says whether anything matching `pred` arrived meanwhile. */
  async nothing(pred: (text: string) => boolean, ms = 300): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return !this.received.some(pred);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

/** Connects to the list port and reads until the server closes (or the list ends). */
export function fetchListRaw(port: number, host = "127.0.0.1", send?: Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect({ host, port }, () => {
      if (send) socket.write(send);
    });
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error(`list fetch timed out, got "${text}"`));
    });
    socket.on("data", (d: Uint8Array) => text += new TextDecoder().decode(d));
    socket.on("error", () => {}); // a reset after the list is fine
    socket.on("close", () => resolve(text));
  });
}

/** Logs in with the whole seed flow; returns the list text. */
export async function seedLogin(client: SeedClient, name: string): Promise<string> {
  client.send(`login,${name},${client.endpoint}`);
  const accept = await client.next((t) => t.startsWith("Accept,") || t.startsWith("Reject,"));
  if (!accept.startsWith("Accept,")) throw new Error(`login refused: ${accept}`);
  return await fetchListRaw(Number(accept.split(",")[1]));
}
