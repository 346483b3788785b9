/**
 * A real coturn (`turnserver`) for the tests: started on loopback (or a lab host) on a free port,
 * with the TURN REST secret scheme (`use-auth-secret`), no TLS, no CLI, no config file, its relay
 * ports in a range of their own; ready once it answers a STUN Binding. Stopped with its log.
 * @module
 */
import { pumpLines } from "./lines.ts";
import { installed } from "./tools.ts";
import { Collector } from "./wait.ts";
import {
  decodeTurnMessage,
  encodeTurnMessage,
  isTurnMessage,
  newTransactionId,
} from "../../lib/protocol/turn.ts";

/** A running turnserver. */
export interface Coturn {
  host: string;
  port: number;
  /** `turn:HOST:PORT`. */
  uri: string;
  secret: string;
  /** Stops it (SIGTERM, then SIGKILL) and removes its files; returns its log. */
  stop(): Promise<string>;
}

/** Options of {@linkcode startCoturn}. */
export interface CoturnOptions {
  /** Address to listen and relay on; default 127.0.0.1. */
  host?: string;
  secret?: string;
  /** Run it with this prefix (e.g. `ip netns exec NS`). */
  prefix?: string[];
  /** Its port; default a free one on `host` (which must then be an address of this machine). */
  port?: number;
  /**
   * Once it says it runs, also check that it answers a STUN Binding from this process; default
   * true (false where `host` cannot be reached from here, as inside a lab namespace).
   */
  checkBinding?: boolean;
  /** Relay port range; default a random block of 200 above 40000. */
  minPort?: number;
}

function freeUdpPort(hostname: string): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

/** Starts turnserver and waits until it answers a Binding request (10 s at most). */
export async function startCoturn(options: CoturnOptions = {}): Promise<Coturn> {
  const host = options.host ?? "127.0.0.1";
  const secret = options.secret ?? crypto.randomUUID();
  if (!options.prefix && !installed("turnserver")) {
    throw new Error(
      "turnserver is not installed (Debian: apt install coturn; .ci/run installs it)",
    );
  }
  const port = options.port ?? freeUdpPort(host);
  const min = options.minPort ?? 40000 + 200 * Math.floor(Math.random() * 100);
  const dir = await Deno.makeTempDir({ prefix: "p2p-coturn-" });
  const args = [
    "-n",
    "--no-cli",
    "--listening-ip",
    host,
    "--listening-port",
    String(port),
    "--relay-ip",
    host,
    "--min-port",
    String(min),
    "--max-port",
    String(min + 199),
    "--use-auth-secret",
    "--static-auth-secret",
    secret,
    "--realm",
    "p2p",
    "--no-tls",
    "--no-dtls",
    "--no-tcp",
    "--no-tcp-relay",
    "--allow-loopback-peers",
    "--no-multicast-peers",
    "--no-rfc5780",
    "--log-file",
    "stdout",
    "--pidfile",
    `${dir}/turn.pid`,
    "--userdb",
    `${dir}/turn.db`,
  ];
  const cmd = [...(options.prefix ?? []), "turnserver", ...args];
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = new Collector<string>();
  const pumped = Promise.all([
    pumpLines(child.stdout, log.push),
    pumpLines(child.stderr, log.push),
  ]);
  const readLog = async () => {
    await pumped;
    return log.items.join("\n");
  };
  const stop = async (): Promise<string> => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 3000);
    await child.status;
    clearTimeout(timer);
    const log = await readLog();
    await Deno.remove(dir, { recursive: true });
    return log;
  };
  try {
    // Its last line at start-up: the listener opened before the relay threads.
    await log.waitFor((l) => l.includes("Total General servers"), 10_000, "turnserver start");
    if (options.checkBinding ?? true) await waitForBinding(host, port, child.status);
  } catch (err) {
    const log = await stop();
    throw new Error(`turnserver did not start: ${(err as Error).message}\n${log.slice(-2000)}`);
  }
  const uriHost = host.includes(":") ? `[${host}]` : host;
  return { host, port, uri: `turn:${uriHost}:${port}`, secret, stop };
}

async function waitForBinding(
  host: string,
  port: number,
  exited: Promise<Deno.CommandStatus>,
): Promise<void> {
  let gone = false;
  exited.then(() => gone = true);
  const socket = Deno.listenDatagram({ transport: "udp", hostname: host, port: 0 });
  try {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !gone) {
      const id = newTransactionId();
      await socket.send(
        encodeTurnMessage({ method: "binding", cls: "request", transactionId: id, attributes: {} }),
        { transport: "udp", hostname: host, port },
      );
      const answer = await Promise.race([
        socket.receive().then(([b]) => b),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
      ]);
      if (answer && isTurnMessage(answer) && decodeTurnMessage(answer).cls === "success") return;
    }
    throw new Error(gone ? "it exited" : "no answer to a Binding request within 10 s");
  } finally {
    socket.close();
  }
}
