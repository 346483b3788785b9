/**
 * Load benchmark for the coordinator: many simulated clients, each with its own UDP socket on
 * its own loopback address (127.x.y.z), against a coordinator in a separate process, over real
 * sockets. For each community size it measures a login storm, a steady state with heartbeats,
 * churn, and a graceful shutdown, and prints one table (docs/LOAD.md has the results).
 *
 * ```sh
 * scripts/deno task bench:load                      # N = 1,000, 5,000 and 10,000
 * scripts/deno task bench:load --users 2000 --rate 3000 --seed-share 1
 * ```
 *
 * Each run first brings all but `--storm` users online at `--ramp-rate`, then logs the last
 * `--storm` in as a storm, and measures that.
 *
 * Options: `--users N[,N…]`, `--storm` (logins in the storm, default 2000), `--ramp-rate`
 * (logins per second before it, default 500), `--rate` (storm logins offered per second, default
 * 2500), `--inflight` (logins in progress at once, default 500), `--steady` (seconds of
 * heartbeats, default 12), `--heartbeat` (seconds between a client's heartbeats, default 10),
 * `--churn` (share of users that leave and as many that join, default 0.05), `--churn-rate`
 * (events per second, default 500), `--seed-share` (share of clients that log in as seed-only
 * clients, default 0), `--batch-ms` (coordinator's longest presence pause), `--v8-flags` (for the
 * coordinator's process, e.g. `--max-semi-space-size=2`), `--json FILE` (results as JSON).
 *
 * Each simulated client parses every list entry and presence line it receives and keeps its view
 * of who is online as a bitset; one client in 8 also checks every endpoint byte by byte (it must be
 * the one that client really has). "Converged" means every online client's view equals the truth.
 * Loops are bounded by count and time.
 *
 * The coordinator runs as `bench_load.ts --role coordinator` (the same {@linkcode Coordinator}
 * that `p2p serve` runs, logging to a file) so that its counters can be read; its RSS and CPU
 * come from /proc/PID.
 * @module
 */
import net from "node:net";
import v8 from "node:v8";
import { parseArgs } from "node:util";
import { Coordinator } from "../lib/coordinator.ts";
import { encodeBase64url } from "../lib/protocol/base64url.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const [L, U, COMMA, SEMICOLON, NL] = [..."lu,;\n"].map((c) => c.charCodeAt(0));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The coordinator process.

async function serveRole(args: { batchMs?: number; logFile: string }): Promise<void> {
  const file = await Deno.open(args.logFile, { write: true, create: true, truncate: true });
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    batchMs: args.batchMs,
    // As `p2p serve` logs to stderr: one synchronous write per line.
    log: (line) => file.writeSync(encoder.encode(`${new Date().toISOString()} ${line}\n`)),
  });
  console.log(JSON.stringify({ udp: coordinator.udpPort, tcp: coordinator.tcpPort }));
  // How late a 20 ms timer fires: how long the coordinator's event loop was busy at a stretch.
  let lag = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    lag = Math.max(lag, now - last - 20);
    last = now;
  }, 20);
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  // Counters on request: one line on stdin, one JSON line back.
  (async () => {
    let buffered = "";
    for await (const chunk of Deno.stdin.readable) {
      buffered += decoder.decode(chunk);
      while (buffered.includes("\n")) {
        buffered = buffered.slice(buffered.indexOf("\n") + 1);
        const s = coordinator.stats;
        console.log(JSON.stringify({
          ...s,
          online: coordinator.registry.onlineCount,
          pending: coordinator.registry.pendingCount,
          backlog: coordinator.backlog,
          maxLoopLagMs: Math.round(lag),
          memory: Deno.memoryUsage(),
          spaces: Object.fromEntries(
            v8.getHeapSpaceStatistics().filter((sp) => sp.space_size > 1e6)
              .map((sp) => [sp.space_name, Math.round(sp.space_size / 2 ** 20)]),
          ),
        }));
        lag = 0;
      }
    }
  })();
  await stop.promise;
  clearInterval(probe);
  await coordinator.close();
  file.close();
  Deno.exit(0);
}

interface CoordinatorStats {
  datagrams: number;
  sent: number;
  presenceSent: number;
  limited: number;
  malformed: number;
  listFetches: number;
  online: number;
  pending: number;
  backlog: number;
  /** Longest stretch the event loop was busy since the last request, in ms. */
  maxLoopLagMs: number;
  memory: { rss: number; heapTotal: number; heapUsed: number; external: number };
  spaces: Record<string, number>;
}

/** The coordinator child process, seen from the load generator. */
class CoordinatorProcess {
  readonly child: Deno.ChildProcess;
  readonly udp: number;
  readonly tcp: number;
  readonly #lines: AsyncIterator<string>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;

  private constructor(
    child: Deno.ChildProcess,
    lines: AsyncIterator<string>,
    ports: { udp: number; tcp: number },
  ) {
    this.child = child;
    this.#lines = lines;
    this.udp = ports.udp;
    this.tcp = ports.tcp;
    this.#writer = child.stdin.getWriter();
  }

  static async start(
    batchMs: number | undefined,
    v8Flags: string | undefined,
    logFile: string,
  ): Promise<CoordinatorProcess> {
    const args = ["run", "-A", ...(v8Flags ? [`--v8-flags=${v8Flags}`] : [])];
    args.push(new URL(import.meta.url).pathname, "--role", "coordinator");
    args.push("--log", logFile);
    if (batchMs !== undefined) args.push("--batch-ms", String(batchMs));
    const child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = readLines(child.stdout);
    const first = await lines.next();
    if (first.done) throw new Error("The coordinator process exited before it was ready");
    return new CoordinatorProcess(child, lines, JSON.parse(first.value));
  }

  async stats(): Promise<CoordinatorStats> {
    await this.#writer.write(encoder.encode("stats\n"));
    const line = await this.#lines.next();
    if (line.done) throw new Error("The coordinator process closed its output");
    return JSON.parse(line.value);
  }

  /** VmRSS and VmHWM (peak) in MiB, and CPU seconds used so far. */
  usage(): { rss: number; peak: number; cpu: number } {
    const status = Deno.readTextFileSync(`/proc/${this.child.pid}/status`);
    const kib = (field: string) =>
      Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1] ?? 0);
    const stat = Deno.readTextFileSync(`/proc/${this.child.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second).
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100;
    return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024, cpu };
  }

  /** SIGTERM, then the exit code and how long the exit took (ms); SIGKILL after 10 s. */
  async terminate(): Promise<{ code: number; ms: number }> {
    const t = performance.now();
    await this.#writer.close().catch(() => {});
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    const status = await this.child.status;
    clearTimeout(timer);
    return { code: status.code, ms: performance.now() - t };
  }
}

/**
 * Datagrams the kernel dropped for want of receive-buffer room so far: at the coordinator's
 * socket (its UDP port) and at everyone else's (the simulated clients, mostly).
 */
function udpDrops(coordinatorPort: number): { coordinator: number; others: number } {
  const drops = { coordinator: 0, others: 0 };
  for (const line of Deno.readTextFileSync("/proc/net/udp").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1].split(":")[1], 16);
    drops[port === coordinatorPort ? "coordinator" : "others"] += Number(f.at(-1));
  }
  return drops;
}

/** CPU seconds this process has used. */
function selfCpu(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Simulated clients.

/** A set of client indices as a bitset, with its size. */
class Bits {
  readonly words: Uint32Array;
  count = 0;
  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }
  has(i: number): boolean {
    return (this.words[i >>> 5] & (1 << (i & 31))) !== 0;
  }
  set(i: number): void {
    if (!this.has(i)) {
      this.words[i >>> 5] |= 1 << (i & 31);
      this.count++;
    }
  }
  clear(i: number): void {
    if (this.has(i)) {
      this.words[i >>> 5] &= ~(1 << (i & 31));
      this.count--;
    }
  }
  equals(other: Bits): boolean {
    if (this.count !== other.count) return false;
    for (let k = 0; k < this.words.length; k++) if (this.words[k] !== other.words[k]) return false;
    return true;
  }
  reset(): void {
    this.words.fill(0);
    this.count = 0;
  }
}

/** Its own loopback address for client `i`: 127.1.0.1, 127.1.0.2, … (never .0 or .255). */
function addressOf(i: number): string {
  const n = Math.floor(i / 254);
  return `127.${1 + (n >> 8)}.${n & 255}.${1 + (i % 254)}`;
}

interface Totals {
  accepts: number;
  rejects: number;
  alive: number;
  byes: number;
  expired: number;
  presenceLines: number;
  presenceDatagrams: number;
  badEndpoints: number;
  badLines: number;
  listFailures: number;
  retries: number;
}

class Client {
  readonly index: number;
  readonly name: string;
  readonly host: string;
  readonly conn: Deno.DatagramConn;
  readonly port: number;
  readonly endpoint: string;
  /** `endpoint` as bytes, to check entries without making strings. */
  readonly endpointBytes: Uint8Array;
  readonly view: Bits;
  readonly seedOnly: boolean;
  /** Checks every endpoint it is told byte by byte (one client in 8: the checks are costly). */
  readonly checker: boolean;
  readonly secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
  readonly key = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
  state: "idle" | "logging-in" | "online" | "out" = "idle";
  /** Presence datagrams that arrived while the list was being fetched: applied after it. */
  early: Uint8Array[] | undefined;
  loginSent = 0;
  listed = 0;
  #accept: ((port: number | undefined) => void) | undefined;

  constructor(index: number, capacity: number, seedOnly: boolean) {
    this.index = index;
    this.name = `u${index}`;
    this.host = addressOf(index);
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: this.host, port: 0 });
    this.port = (this.conn.addr as Deno.NetAddr).port;
    this.endpoint = `${this.host}:${this.port}`;
    this.endpointBytes = encoder.encode(this.endpoint);
    this.view = new Bits(capacity);
    this.seedOnly = seedOnly;
    this.checker = index % 8 === 0;
  }

  waitAccept(): Promise<number | undefined> {
    return new Promise((resolve) => this.#accept = resolve);
  }

  onAccept(port: number | undefined): void {
    const resolve = this.#accept;
    this.#accept = undefined;
    resolve?.(port);
  }
}

/** The load generator: clients, the truth, and what they saw. */
class Load {
  readonly clients: Client[] = [];
  readonly truth: Bits;
  readonly totals: Totals = {
    accepts: 0,
    rejects: 0,
    alive: 0,
    byes: 0,
    expired: 0,
    presenceLines: 0,
    presenceDatagrams: 0,
    badEndpoints: 0,
    badLines: 0,
    listFailures: 0,
    retries: 0,
  };
  readonly server: { udp: Deno.NetAddr; tcp: number };
  readonly latencies: number[] = [];
  /** Where login time goes: waiting for Accept, the TCP handshake, the list's transfer. */
  readonly phases = { accept: [] as number[], connect: [] as number[], transfer: [] as number[] };
  #closed = false;
  #receivers: Promise<void>[] = [];

  constructor(capacity: number, udpPort: number, tcpPort: number) {
    this.truth = new Bits(capacity);
    this.server = {
      udp: { transport: "udp", hostname: "127.0.0.1", port: udpPort },
      tcp: tcpPort,
    };
  }

  addClients(count: number, capacity: number, seedShare: number): void {
    for (let k = 0; k < count; k++) {
      const i = this.clients.length;
      // Seed-only clients spread evenly: every 1/seedShare-th client.
      const seedOnly = seedShare > 0 &&
        Math.floor(i * seedShare) !== Math.floor((i + 1) * seedShare);
      const client = new Client(i, capacity, seedOnly || seedShare >= 1);
      this.clients.push(client);
      this.#receivers.push(this.#receive(client));
    }
  }

  send(client: Client, text: string): void {
    client.conn.send(encoder.encode(text), this.server.udp).catch(() => {});
  }

  async #receive(client: Client): Promise<void> {
    const buf = new Uint8Array(2048);
    while (!this.#closed) {
      let data: Uint8Array;
      try {
        [data] = await client.conn.receive(buf);
      } catch {
        return; // closed
      }
      this.#handle(client, data);
    }
  }

  #handle(client: Client, data: Uint8Array): void {
    const t = this.totals;
    if (data[0] === L) {
      // Presence: login/logout lines, parsed as bytes (there are millions of them).
      t.presenceDatagrams++;
      if (client.state !== "online" && client.state !== "logging-in") return;
      if (client.early) client.early.push(data.slice());
      else this.#applyLines(client, data);
      return;
    }
    const text = decoder.decode(data);
    if (text.startsWith("Accept,")) {
      t.accepts++;
      client.onAccept(Number(text.slice(7)));
    } else if (text.startsWith("Reject,")) {
      t.rejects++;
      client.onAccept(undefined);
    } else if (text.startsWith("Alive,")) {
      t.alive++;
    } else if (text.startsWith("Bye,")) {
      t.byes++;
    } else if (text.startsWith("Expired,")) {
      t.expired++;
    } else {
      t.badLines++;
    }
  }

  /** Applies `login,uN,EP` / `logout,uN,EP` lines separated by newlines. */
  #applyLines(client: Client, data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      const login = data[i + 3] === 0x69; // "logi" vs "logo"
      i += login ? 6 : 7;
      const end = this.#entry(client, data, i, NL, login);
      if (end < 0) {
        this.totals.badLines++;
        return;
      }
      this.totals.presenceLines++;
      i = end + 1;
    }
  }

  /**
   * Checks `uN,EP` at `data[i]`, ended by `stop` (or the end of `data`), against client N's real
   * endpoint, and records N in the view (or removes it). Returns where it ended, or -1.
   */
  #entry(client: Client, data: Uint8Array, i: number, stop: number, add: boolean): number {
    if (data[i] !== U) return -1;
    let index = 0;
    for (i++; data[i] >= 0x30 && data[i] <= 0x39; i++) index = index * 10 + data[i] - 0x30;
    const other = this.clients[index];
    if (data[i] !== COMMA || other === undefined) return -1;
    let end: number;
    if (client.checker) {
      const ep = other.endpointBytes;
      let same = i + 1 + ep.length <= data.length;
      for (let k = 0; same && k < ep.length; k++) same = data[i + 1 + k] === ep[k];
      end = i + 1 + ep.length;
      if (same && end < data.length && data[end] !== stop) same = false;
      if (!same) this.totals.badEndpoints++;
    } else {
      end = -1;
    }
    if (end < 0 || (end < data.length && data[end] !== stop)) {
      end = data.indexOf(stop, i);
      if (end < 0) end = data.length;
    }
    if (add) client.view.set(index);
    else client.view.clear(index);
    return end;
  }

  /** Logs `client` in: `login` until `Accept` (5 tries), then the list over TCP. */
  async login(client: Client): Promise<boolean> {
    client.state = "logging-in";
    client.view.reset();
    client.loginSent = performance.now();
    const text = client.seedOnly
      ? `login,${client.name},${client.endpoint}`
      : `login,${client.name},${client.endpoint},${client.key},${client.secret}`;
    let tcpPort: number | undefined;
    for (let attempt = 0; attempt < 5 && tcpPort === undefined; attempt++) {
      if (attempt > 0) this.totals.retries++;
      const accepted = client.waitAccept();
      this.send(client, text);
      const timer = setTimeout(() => client.onAccept(undefined), 1000);
      tcpPort = await accepted;
      clearTimeout(timer);
    }
    if (tcpPort === undefined) {
      client.state = "idle";
      return false;
    }
    client.early = [];
    const accepted = performance.now();
    const list = await fetchList(client.host, tcpPort, this.phases);
    this.phases.accept.push(accepted - client.loginSent);
    if (list === undefined) {
      this.totals.listFailures++;
      client.state = "idle";
      client.early = undefined;
      return false;
    }
    this.#applyList(client, list);
    const early = client.early;
    client.early = undefined;
    for (const data of early) this.#applyLines(client, data);
    client.state = "online";
    client.listed = performance.now();
    this.latencies.push(client.listed - client.loginSent);
    this.truth.set(client.index);
    return true;
  }

  #applyList(client: Client, list: Uint8Array): void {
    let i = 0;
    while (i < list.length - 3) {
      const end = this.#entry(client, list, i, SEMICOLON, true);
      if (end < 0) {
        this.totals.badLines++;
        return;
      }
      i = end + 1;
    }
    if (decoder.decode(list.subarray(i)) !== "end") this.totals.badLines++;
  }

  logout(client: Client): void {
    client.state = "out";
    this.truth.clear(client.index);
    this.send(client, `logout,${client.name},${client.endpoint}`);
  }

  /** Online clients whose view is not the truth. */
  wrong(): number {
    let n = 0;
    for (const c of this.clients) if (c.state === "online" && !c.view.equals(this.truth)) n++;
    return n;
  }

  /** Waits until every online client's view is right; returns when (ms), or undefined. */
  async converge(since: number, timeoutMs: number): Promise<number | undefined> {
    while (performance.now() - since < timeoutMs) {
      if (this.wrong() === 0) return performance.now() - since;
      await sleep(20);
    }
    return undefined;
  }

  /** Sends every online client's heartbeat once per `intervalMs`, spread evenly, until stopped. */
  heartbeats(intervalMs: number): () => void {
    let cursor = 0;
    const tickMs = 50;
    const timer = setInterval(() => {
      const share = Math.ceil(this.clients.length * tickMs / intervalMs);
      for (let k = 0; k < share && this.clients.length > 0; k++) {
        const c = this.clients[cursor++ % this.clients.length];
        if (c.state !== "online") continue;
        this.send(c, c.seedOnly ? `heartbeat,${c.name}` : `heartbeat,${c.name},${c.secret}`);
      }
    }, tickMs);
    return () => clearInterval(timer);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.clients) c.conn.close();
    await Promise.all(this.#receivers);
  }
}

/** Reads the whole list from the TCP service, from the client's own address. */
function fetchList(
  localAddress: string,
  port: number,
  phases: { connect: number[]; transfer: number[] },
): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    const t0 = performance.now();
    let t1 = t0;
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      t1 = performance.now();
      phases.connect.push(t1 - t0);
    });
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      phases.transfer.push(performance.now() - t1);
      const list = concat(chunks);
      resolve(decoder.decode(list.subarray(list.length - 3)) === "end" ? list : undefined);
    });
  });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

// ---------------------------------------------------------------------------------------------
// One run.

/**
 * Logs `clients` in, offered at `rate` per second with at most `inflight` at once; resolves
 * when all are done, with when it started, the last list arrived, and the rates reached.
 */
async function loginMany(
  load: Load,
  clients: Client[],
  rate: number,
  inflight: number,
): Promise<{ t0: number; lastJoin: number; acceptRate: number; listRate: number }> {
  const t0 = performance.now();
  const accepts0 = load.totals.accepts;
  let started = 0;
  let running = 0;
  let lastJoin = t0;
  const logins: Promise<boolean>[] = [];
  const deadline = t0 + 300_000;
  while (started < clients.length && performance.now() < deadline) {
    const due = Math.min(clients.length, Math.floor((performance.now() - t0) / 1000 * rate) + 1);
    while (started < due && running < inflight) {
      running++;
      const client = clients[started++];
      logins.push(
        load.login(client).finally(() => {
          running--;
          lastJoin = Math.max(lastJoin, client.listed);
        }),
      );
    }
    await sleep(2);
  }
  const startedAll = performance.now();
  const ok = (await Promise.all(logins)).filter(Boolean).length;
  return {
    t0,
    lastJoin,
    acceptRate: (load.totals.accepts - accepts0) / ((startedAll - t0) / 1000),
    listRate: ok / ((lastJoin - t0) / 1000),
  };
}

interface RunOptions {
  users: number;
  /** Logins in the storm; the others come first, at `rampRate`. */
  storm: number;
  rampRate: number;
  rate: number;
  inflight: number;
  steadySec: number;
  heartbeatSec: number;
  churn: number;
  churnRate: number;
  seedShare: number;
  batchMs?: number;
  v8Flags?: string;
}

interface RunResult {
  users: number;
  seedShare: number;
  online: number;
  acceptRate: number;
  loginRate: number;
  p50: number;
  p99: number;
  stormConverge?: number;
  stormDatagramsPerEvent: number;
  /** Logins in the storm (the others came in the ramp before it). */
  storm: number;
  churnEvents: number;
  churnConverge?: number;
  churnDatagramsPerEvent: number;
  rssSteady: number;
  rssPeak: number;
  cpuStorm: number;
  cpuSteady: number;
  byes: number;
  /** Clients online when the coordinator was stopped (after the churn). */
  onlineAtShutdown: number;
  exitCode: number;
  exitMs: number;
  badEndpoints: number;
  badLines: number;
  listFailures: number;
  rejects: number;
  limited: number;
  stormDrops: number;
  churnDrops: number;
}

async function run(o: RunOptions): Promise<RunResult> {
  const churn = Math.round(o.users * o.churn);
  const capacity = o.users + churn;
  const logFile = await Deno.makeTempFile({ prefix: "bench-coordinator-", suffix: ".log" });
  const coordinator = await CoordinatorProcess.start(o.batchMs, o.v8Flags, logFile);
  const load = new Load(capacity, coordinator.udp, coordinator.tcp);
  const say = (text: string) => console.error(`[N=${o.users}] ${text}`);
  try {
    load.addClients(capacity, capacity, o.seedShare);
    say(`${capacity} client sockets ready; storm at ${o.rate} logins/s offered`);
    const stopHeartbeats = load.heartbeats(o.heartbeatSec * 1000);

    // Ramp: all but the storm's users, at a pace the simulated clients can digest.
    const stormSize = Math.min(o.users, o.storm);
    if (stormSize < o.users) {
      const ramp = await loginMany(
        load,
        load.clients.slice(0, o.users - stormSize),
        o.rampRate,
        o.inflight,
      );
      const converged = await load.converge(ramp.lastJoin, 60_000);
      say(
        `ramp: ${load.truth.count} online at ${ramp.listRate.toFixed(0)} logins/s, converged ` +
          `${converged?.toFixed(0) ?? "never"} ms after the last join`,
      );
    }
    load.latencies.length = 0;
    for (const list of Object.values(load.phases)) list.length = 0;

    // Storm: the rest, offered at `rate` per second, at most `inflight` at once.
    const before = await coordinator.stats();
    const cpu0 = coordinator.usage().cpu;
    const selfCpu0 = selfCpu();
    const drops0 = udpDrops(coordinator.udp);
    const retries0 = load.totals.retries;
    const storm = await loginMany(
      load,
      load.clients.slice(o.users - stormSize, o.users),
      o.rate,
      o.inflight,
    );
    const { t0, lastJoin, acceptRate, listRate: loginRate } = storm;
    const stormConverge = await load.converge(lastJoin, 60_000);
    const stormEnd = performance.now();
    const cpu1 = coordinator.usage().cpu;
    const afterStorm = await coordinator.stats();
    const online = load.truth.count;
    const ph = (v: number[]) =>
      `${percentile(v, 0.5).toFixed(0)}/${percentile(v, 0.99).toFixed(0)}`;
    say(
      `storm phases p50/p99 ms: accept ${ph(load.phases.accept)}, connect ${
        ph(load.phases.connect)
      }, transfer ${ph(load.phases.transfer)}`,
    );
    const drops1 = udpDrops(coordinator.udp);
    const stormDrops = drops1.others - drops0.others;
    say(
      `storm: ${
        load.totals.retries - retries0
      } login retries, ${afterStorm.limited} limited, event loop busy ${afterStorm.maxLoopLagMs} ms at most; datagrams ` +
        `dropped for full receive buffers: ${stormDrops} at clients, ` +
        `${drops1.coordinator - drops0.coordinator} at the coordinator; CPU: ` +
        `coordinator ${((cpu1 - cpu0) / ((stormEnd - t0) / 1000) * 100).toFixed(0)} %, ` +
        `load generator ${((selfCpu() - selfCpu0) / ((stormEnd - t0) / 1000) * 100).toFixed(0)} %`,
    );
    say(
      `storm: ${stormSize} logins, ${online} online, accepts ${acceptRate.toFixed(0)}/s, lists ${
        loginRate.toFixed(0)
      }/s, converged ${stormConverge?.toFixed(0) ?? "never"} ms after the last join`,
    );

    // Steady state: heartbeats only.
    const cpu2 = coordinator.usage().cpu;
    const steadyStart = performance.now();
    let rssSteady = 0;
    while (performance.now() - steadyStart < o.steadySec * 1000) {
      await sleep(500);
      rssSteady = Math.max(rssSteady, coordinator.usage().rss);
      if (Deno.env.get("BENCH_TRACE")) {
        const st = await coordinator.stats();
        say(
          `trace: RSS ${coordinator.usage().rss.toFixed(0)} MiB, spaces ${
            JSON.stringify(st.spaces)
          }`,
        );
      }
    }
    const cpuSteady = (coordinator.usage().cpu - cpu2) / ((performance.now() - steadyStart) / 1000);
    const mem = (await coordinator.stats()).memory;
    say(
      `steady: RSS ${rssSteady.toFixed(0)} MiB (heap ${(mem.heapUsed / 2 ** 20).toFixed(0)} of ${
        (mem.heapTotal / 2 ** 20).toFixed(0)
      } MiB, external ${(mem.external / 2 ** 20).toFixed(0)} MiB), CPU ${
        (cpuSteady * 100).toFixed(1)
      } %`,
    );

    // Churn: `churn` users leave and as many new ones join, interleaved, at `churnRate`/s.
    const beforeChurn = await coordinator.stats();
    const drops2 = udpDrops(coordinator.udp);
    const leaving = load.clients.slice(0, o.users).filter((c) => c.state === "online")
      .filter((_, k) => k % Math.max(1, Math.floor(o.users / Math.max(1, churn))) === 0)
      .slice(0, churn);
    const joining = load.clients.slice(o.users, o.users + churn);
    const churnStart = performance.now();
    const joins: Promise<boolean>[] = [];
    let lastEvent = churnStart;
    for (let k = 0; k < Math.max(leaving.length, joining.length); k++) {
      const due = churnStart + (2 * k) * 1000 / o.churnRate;
      while (performance.now() < due) await sleep(1);
      if (leaving[k]) load.logout(leaving[k]);
      lastEvent = performance.now();
      if (joining[k]) {
        joins.push(
          load.login(joining[k]).finally(() => {
            lastEvent = Math.max(lastEvent, joining[k].listed);
          }),
        );
      }
    }
    await Promise.all(joins);
    const churnConverge = await load.converge(lastEvent, 30_000);
    const afterChurn = await coordinator.stats();
    const churnEvents = leaving.length + joining.length;
    const drops3 = udpDrops(coordinator.udp);
    const churnDrops = drops3.others - drops2.others + drops3.coordinator - drops2.coordinator;
    say(
      `churn: ${churnEvents} events, ${churnDrops} datagrams dropped, converged ${
        churnConverge?.toFixed(0) ?? "never"
      } ms after the last`,
    );
    stopHeartbeats();

    // Graceful shutdown: every online client should hear Bye.
    const rssPeak = coordinator.usage().peak;
    const byesBefore = load.totals.byes;
    const exit = await coordinator.terminate();
    const onlineAtShutdown = load.truth.count;
    const byeDeadline = performance.now() + 2000;
    while (load.totals.byes - byesBefore < onlineAtShutdown && performance.now() < byeDeadline) {
      await sleep(20);
    }
    const result: RunResult = {
      users: o.users,
      seedShare: o.seedShare,
      online,
      acceptRate,
      loginRate,
      storm: stormSize,
      p50: percentile(load.latencies, 0.5),
      p99: percentile(load.latencies, 0.99),
      stormConverge,
      stormDatagramsPerEvent: (afterStorm.presenceSent - before.presenceSent) / stormSize,
      churnEvents,
      churnConverge,
      churnDatagramsPerEvent: (afterChurn.presenceSent - beforeChurn.presenceSent) /
        Math.max(1, churnEvents),
      rssSteady,
      rssPeak,
      cpuStorm: (cpu1 - cpu0) / ((stormEnd - t0) / 1000),
      cpuSteady,
      byes: load.totals.byes - byesBefore,
      onlineAtShutdown,
      exitCode: exit.code,
      exitMs: exit.ms,
      badEndpoints: load.totals.badEndpoints,
      badLines: load.totals.badLines,
      listFailures: load.totals.listFailures,
      rejects: load.totals.rejects,
      limited: afterChurn.limited,
      stormDrops,
      churnDrops,
    };
    say(`shutdown: exit ${exit.code} after ${exit.ms.toFixed(0)} ms, ${result.byes} Bye received`);
    return result;
  } finally {
    await load.close();
    try {
      coordinator.child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await coordinator.child.status;
    // What the coordinator said about limits (and anything odd), for the record.
    const notable = (await Deno.readTextFile(logFile).catch(() => "")).split("\n")
      .filter((l) => /limit|suppressed|error|UDP/.test(l));
    for (const line of notable.slice(0, 20)) say(`coordinator log: ${line}`);
    await Deno.remove(logFile).catch(() => {});
  }
}

function table(results: RunResult[]): string {
  const ms = (v: number | undefined) => (v === undefined ? "never" : `${v.toFixed(0)} ms`);
  const rows = [
    "| N online | clients | storm: logins, accepted/s, lists/s | login→list p50 / p99 | " +
    "converged after storm | presence datagrams per login | churn events | converged after churn | " +
    "presence datagrams per event | datagrams lost (storm + churn) | RSS steady / peak | " +
    "CPU storm / steady | Bye received, exit |",
    "| -: | - | - | -: | -: | -: | -: | -: | -: | -: | -: | -: | - |",
  ];
  for (const r of results) {
    const kind = r.seedShare >= 1
      ? "seed-only"
      : r.seedShare > 0
      ? `${r.seedShare * 100} % seed`
      : "extension";
    rows.push(
      `| ${r.online} | ${kind} | ${r.storm}, ${r.acceptRate.toFixed(0)}/s, ` +
        `${r.loginRate.toFixed(0)}/s | ${r.p50.toFixed(0)} / ${r.p99.toFixed(0)} ms | ` +
        `${ms(r.stormConverge)} | ${r.stormDatagramsPerEvent.toFixed(0)} | ${r.churnEvents} | ` +
        `${ms(r.churnConverge)} | ${r.churnDatagramsPerEvent.toFixed(0)} | ` +
        `${r.stormDrops + r.churnDrops} | ${r.rssSteady.toFixed(0)} / ${
          r.rssPeak.toFixed(0)
        } MiB | ` +
        `${(r.cpuStorm * 100).toFixed(0)} % / ${(r.cpuSteady * 100).toFixed(1)} % | ` +
        `${r.byes}/${r.onlineAtShutdown}, ${r.exitCode} in ${r.exitMs.toFixed(0)} ms |`,
    );
  }
  return rows.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      log: { type: "string" },
      users: { type: "string", default: "1000,5000,10000" },
      rate: { type: "string", default: "2500" },
      storm: { type: "string", default: "2000" },
      "ramp-rate": { type: "string", default: "500" },
      inflight: { type: "string", default: "500" },
      steady: { type: "string", default: "12" },
      heartbeat: { type: "string", default: "10" },
      churn: { type: "string", default: "0.05" },
      "churn-rate": { type: "string", default: "500" },
      "seed-share": { type: "string", default: "0" },
      "batch-ms": { type: "string" },
      "v8-flags": { type: "string" },
      json: { type: "string" },
    },
  });
  const batchMs = values["batch-ms"] === undefined ? undefined : Number(values["batch-ms"]);
  if (values.role === "coordinator") {
    await serveRole({ batchMs, logFile: values.log ?? "/dev/null" });
  } else {
    const sizes = values.users.split(",").map(Number);
    const total = Math.max(...sizes) * (1 + Number(values.churn));
    const limit = Number(new TextDecoder().decode(
      new Deno.Command("sh", { args: ["-c", "ulimit -n"] }).outputSync().stdout,
    ));
    if (limit < total + 1000) {
      console.error(`ulimit -n is ${limit}; ${Math.ceil(total + 1000)} needed: raise it first`);
      Deno.exit(1);
    }
    const results: RunResult[] = [];
    for (const users of sizes) {
      results.push(
        await run({
          users,
          rate: Number(values.rate),
          storm: Number(values.storm),
          rampRate: Number(values["ramp-rate"]),
          inflight: Number(values.inflight),
          steadySec: Number(values.steady),
          heartbeatSec: Number(values.heartbeat),
          churn: Number(values.churn),
          churnRate: Number(values["churn-rate"]),
          seedShare: Number(values["seed-share"]),
          batchMs,
          v8Flags: values["v8-flags"],
        }),
      );
    }
    console.log(table(results));
    const problems = results.flatMap((r) =>
      r.badEndpoints + r.badLines + r.listFailures + r.rejects > 0
        ? [
          `N=${r.users}: ${r.badEndpoints} wrong endpoints, ${r.badLines} bad lines, ` +
          `${r.listFailures} failed list fetches, ${r.rejects} rejected logins`,
        ]
        : []
    );
    for (const p of problems) console.log(p);
    if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2));
  }
}
