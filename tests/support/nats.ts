/**
 * A `nats-server` (Debian's, 2.9) for a test: on loopback, a free port, token authentication,
 * stopped (and restartable on the same port) by the test. Its output is kept for failures.
 * @module
 */
import { sleep } from "./wait.ts";

/** A running nats-server of a test. */
export class TestNats {
  readonly port: number;
  readonly token: string;
  #child: Deno.ChildProcess | undefined;

  private constructor(port: number, token: string) {
    this.port = port;
    this.token = token;
  }

  /** `nats://127.0.0.1:PORT`. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts a server with `--auth TOKEN` on a free loopback port, ready for clients. */
  static async start(token = crypto.randomUUID()): Promise<TestNats> {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const nats = new TestNats(port, token);
    await nats.restart();
    return nats;
  }

  /** (Re)starts the server on its port; resolves once it accepts connections. */
  async restart(): Promise<void> {
    this.#child = new Deno.Command("nats-server", {
      args: ["-a", "127.0.0.1", "-p", String(this.port), "--auth", this.token],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`nats-server did not start: ${err}`);
        await sleep(20);
      }
    }
  }

  /** Stops the server (SIGKILL: as abrupt as a crash); safe to call twice. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined) return;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  }
}
