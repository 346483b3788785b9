/**
 * Load benchmark for the coordinator: many simulated clients, each with its own UDP socket on
 * its own loopback address (127.x.y.z), against a coordinator in a separate process, over real
 * sockets. For each community size it measures a login storm, a steady state with heartbeats,
 * churn, and a graceful shutdown, and prints one table (docs/LOAD.md has the results).
 *
 * ```sh
 * scripts/deno task bench:load                      # N = 1,000, 5,000 and 10,000
 * scripts/deno task bench:load --users 2000 --rate 3000 --seed-share 1
 * scripts/deno task bench:load --users 10000 --presence everyone,contacts  # both modes, one run
 * ```
 *
 * Each run first brings all but `--storm` users online at `--ramp-rate`, then logs the last
 * `--storm` in as a storm, and measures that. The storm's clients live in a Worker of their own
 * (`scripts/bench_load_clients.ts`), so that they get and time their `Accept`s promptly while the
 * main thread is busy with the presence datagrams of everyone else; the coordinator also counts
 * the logins it accepted, and when, so both rates are printed.
 *
 * Options: `--users N[,N…]`, `--storm` (logins in the storm, default 2000), `--ramp-rate`
 * (logins per second before it, default 500), `--rate` (storm logins offered per second, default
 * 2500), `--inflight` (list fetches in progress at once, default 500), `--steady` (seconds of
 * heartbeats, default 12), `--heartbeat` (seconds between a client's heartbeats, default 10),
 * `--churn` (share of users that leave and as many that join, default 0.05), `--churn-rate`
 * (events per second, default 500), `--seed-share` (share of clients that log in as seed-only
 * clients, default 0), `--batch-ms` (coordinator's longest presence pause), `--v8-flags` (for the
 * coordinator's process; default: those `p2p` runs with, {@linkcode V8_FLAGS}; `--v8-flags=` for
 * V8's own defaults), `--generator-nice` (default 10: see below), `--json FILE` (results as JSON),
 * `--max-pending` (the coordinator's pending-login limit, `p2p serve --max-pending`; default its
 * own, 4,096: a whole-community storm, `--storm` = `--users` = 10,000, on a busy machine passes it),
 * `--presence` (`everyone`, `contacts` or both, comma-separated: one run each, in that order;
 * default `everyone`), `--contacts` (contacts per user in contacts mode, default 50: a symmetric
 * graph, {@linkcode contactsOf}, made in the coordinator's database before the run; every client's
 * view must then be itself and its online contacts), `--coordinator-profile FILE.cpuprofile`
 * (V8's CPU profile of the coordinator from the storm's start until it converged, one file per
 * run, `-<k>` before the suffix; Chrome's DevTools open it), `--coordinator-trace FILE` (what the
 * coordinator prints besides its reports, e.g. with `--v8-flags=…,--trace-gc`),
 * `--coordinator-heap FILE.heapsnapshot` (V8's heap snapshot of the coordinator at the end of the
 * steady state, one file per run as for the profile; it collects all garbage first, and the live
 * heap and RSS just after are printed; Chrome's DevTools open it, as does
 * `scripts/heap_summary.ts`).
 *
 * The load generator stands in for ten thousand machines, each with a CPU of its own, but here it
 * shares two cores with the coordinator: it lowers its own priority (`nice` 10, after starting
 * every coordinator it will use, since children inherit it) so that the coordinator gets the CPU
 * it would have on its own box, and the generator the rest. It still does all its work, and
 * "converged" waits for it. `--generator-nice 0` runs both at the same priority.
 *
 * Each simulated client parses every list entry and presence line it receives (compact `+name,EP`
 * / `-name` lines after a `Presence` header; the seed's `login,…` / `logout,…` for seed-only
 * clients) and keeps its view of who is online as a bitset; one client in 8 also checks every
 * endpoint byte by byte (it must be the one that client really has, in the line's form).
 * "Converged" means every online client's view equals the truth.
 * Extension clients also check that the ranges of their presence datagrams tile from their list's
 * version with no gap ("presence gaps") or overlap. Loops are bounded by count and time.
 *
 * The coordinator runs as `bench_load.ts --role coordinator` (the same {@linkcode Coordinator}
 * that `p2p serve` runs, logging to a file) so that its counters can be read; its RSS and CPU
 * come from /proc/PID.
 * @module
 */
import os from "node:os";
import v8 from "node:v8";
import { Session } from "node:inspector";
import { parseArgs } from "node:util";
import { Coordinator } from "../lib/coordinator.ts";
import { procAddress } from "../lib/net/linux_udp.ts";
import { V8_FLAGS } from "./compile.ts";
import {
  clientKey,
  ClientPool,
  contactsOf,
  ListWorker,
  type LoginReport,
  now,
  type Phases,
  PortLists,
  Semaphore,
  socketDrops,
  State,
  threadCpu,
  type Totals,
  Views,
  WorkerPool,
} from "./bench_load_clients.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const MIB = 2 ** 20;

// ---------------------------------------------------------------------------------------------
// The coordinator process.

/** What the coordinator's process reports about its memory at a moment. */
interface MemorySample {
  /** VmRSS, in bytes. */
  rss: number;
  /**
   * VmRSS's parts, in bytes: anonymous memory (V8's heap, malloc), file pages (the `deno`
   * executable's code and data, libraries) and shared memory (SQLite's WAL index).
   */
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  heapTotal: number;
  heapUsed: number;
  /** External memory V8 knows of (array buffers), in bytes. */
  external: number;
  /** Size of each V8 heap space of more than 1 MiB, in MiB. */
  spaces: Record<string, number>;
}

function sampleMemory(): MemorySample {
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = Deno.memoryUsage();
  const kib = (field: string) =>
    Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1] ?? 0) * 1024;
  return {
    rss: kib("VmRSS"),
    rssAnon: kib("RssAnon"),
    rssFile: kib("RssFile"),
    rssShmem: kib("RssShmem"),
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    spaces: Object.fromEntries(
      v8.getHeapSpaceStatistics().filter((sp) => sp.space_size > MIB)
        .map((sp) => [sp.space_name, Math.round(sp.space_size / MIB)]),
    ),
  };
}

/** A memory sample in one line: RSS and its parts, V8's heap, external memory, in MiB. */
function memoryLine(m: MemorySample): string {
  const mib = (n: number) => (n / MIB).toFixed(0);
  return `RSS ${mib(m.rss)} MiB (anonymous ${mib(m.rssAnon)}, file ${mib(m.rssFile)}, shared ${
    mib(m.rssShmem)
  }), V8 heap ${mib(m.heapUsed)} used of ${mib(m.heapTotal)} MiB, external ${mib(m.external)} MiB`;
}

async function serveRole(
  args: {
    batchMs?: number;
    logFile: string;
    contacts: number;
    capacity: number;
    maxPending?: number;
  },
): Promise<void> {
  const file = await Deno.open(args.logFile, { write: true, create: true, truncate: true });
  // A database on disk, as `p2p serve` keeps one (names owned by keys), in a folder of its own,
  // removed after.
  const dataDir = await Deno.makeTempDir({ prefix: "p2p-bench-data-" });
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    batchMs: args.batchMs,
    limits: args.maxPending === undefined ? undefined : { maxPending: args.maxPending },
    dataDir,
    presence: args.contacts > 0 ? "contacts" : "everyone",
    // As `p2p serve` logs to stderr: one synchronous write per line.
    log: (line) => file.writeSync(encoder.encode(`${new Date().toISOString()} ${line}\n`)),
  });
  if (args.contacts > 0) {
    // The community's contacts, as if accepted long ago: a transaction per 500 users, so that
    // the setup's garbage does not swell the RSS measured after it.
    const party = (i: number) => ({ name: `u${i}`, key: clientKey(i) });
    for (let lo = 0; lo < args.capacity; lo += 500) {
      const pairs: [ReturnType<typeof party>, ReturnType<typeof party>][] = [];
      for (let i = lo; i < Math.min(args.capacity, lo + 500); i++) {
        for (const j of contactsOf(i, args.capacity, args.contacts)) {
          if (i < j) pairs.push([party(i), party(j)]);
        }
      }
      coordinator.contacts.addPairs(pairs);
    }
  }
  // The logins it accepted (new names, not a retry's repeat), and when: its own storm rate.
  const registry = coordinator.registry;
  const login = registry.login.bind(registry);
  const accepted = { count: 0, first: 0, last: 0 };
  registry.login = (...args) => {
    const result = login(...args);
    if (result.kind === "pending") {
      const t = now();
      if (accepted.count++ === 0) accepted.first = t;
      accepted.last = t;
    }
    return result;
  };
  // When it last changed who is online (admitted, logged out or expired someone): the moment of
  // "the last join or leave" that convergence is measured from.
  let lastChange = 0;
  const admitFrom = registry.admitFrom.bind(registry);
  registry.admitFrom = (ip) => {
    const result = admitFrom(ip);
    if (result.admitted.length > 0) lastChange = now();
    return result;
  };
  const logout = registry.logout.bind(registry);
  registry.logout = (...args) => {
    const result = logout(...args);
    if (result.kind === "removed") lastChange = now();
    return result;
  };
  const expire = registry.expire.bind(registry);
  registry.expire = () => {
    const result = expire();
    if (result.expired.length > 0) lastChange = now();
    return result;
  };
  console.log(JSON.stringify({ udp: coordinator.udpPort, tcp: coordinator.tcpPort }));
  // How late a 20 ms timer fires: how long the coordinator's event loop was busy at a stretch.
  let lag = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    lag = Math.max(lag, now - last - 20);
    last = now;
  }, 20);
  // What the memory was made of when RSS was highest (sampled every 100 ms).
  let peak = sampleMemory();
  const sampler = setInterval(() => {
    const sample = sampleMemory();
    if (sample.rss > peak.rss) peak = sample;
  }, 100);
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  // Counters on request: one line on stdin, one JSON line back; lag, peak and the accepted logins
  // are counted from one request to the next.
  (async () => {
    let buffered = "";
    for await (const chunk of Deno.stdin.readable) {
      buffered += decoder.decode(chunk);
      while (buffered.includes("\n")) {
        const request = buffered.slice(0, buffered.indexOf("\n"));
        buffered = buffered.slice(buffered.indexOf("\n") + 1);
        // `profile <file>`: starts V8's CPU profiler, or stops it and writes the profile there.
        if (request.startsWith("profile ")) await profile(request.slice("profile ".length));
        // `heap <file>`: V8's heap snapshot there (it collects all garbage first, so the sample
        // taken just after is the live heap).
        if (request.startsWith("heap ")) v8.writeHeapSnapshot(request.slice("heap ".length));
        const report: CoordinatorStats = {
          ...coordinator.stats,
          online: coordinator.registry.onlineCount,
          pending: coordinator.registry.pendingCount,
          backlog: coordinator.backlog,
          maxLoopLagMs: Math.round(lag),
          accepted: { ...accepted },
          lastChange,
          memory: sampleMemory(),
          peak,
        };
        console.log(JSON.stringify(report));
        lag = 0;
        peak = report.memory;
        accepted.count = 0;
      }
    }
  })();
  await stop.promise;
  clearInterval(probe);
  clearInterval(sampler);
  await coordinator.close();
  await Deno.remove(dataDir, { recursive: true });
  file.close();
  Deno.exit(0);
}

/** The coordinator's CPU profile in progress (`--coordinator-profile`), if any. */
let profiler: Session | undefined;

/** Starts V8's CPU profiler, or stops it and writes its profile (Chrome's format) to `file`. */
async function profile(file: string): Promise<void> {
  const post = <T>(method: string) =>
    new Promise<T>((resolve, reject) =>
      profiler!.post(method, (err, result) => err ? reject(err) : resolve(result as T))
    );
  if (profiler === undefined) {
    profiler = new Session();
    profiler.connect();
    await post("Profiler.enable");
    await post("Profiler.start");
    return;
  }
  const { profile } = await post<{ profile: unknown }>("Profiler.stop");
  profiler.disconnect();
  profiler = undefined;
  await Deno.writeTextFile(file, JSON.stringify(profile));
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
  /** When it last admitted, logged out or expired a user ({@link now}); 0 if never. */
  lastChange: number;
  /** New logins accepted since the last request, and when the first and last were ({@link now}). */
  accepted: { count: number; first: number; last: number };
  memory: MemorySample;
  /** The sample with the highest RSS since the last request. */
  peak: MemorySample;
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
    contacts: { perUser: number; capacity: number },
    maxPending?: number,
  ): Promise<CoordinatorProcess> {
    const args = ["run", "-A", ...(v8Flags ? [`--v8-flags=${v8Flags}`] : [])];
    args.push(new URL(import.meta.url).pathname, "--role", "coordinator");
    args.push("--log", logFile);
    if (batchMs !== undefined) args.push("--batch-ms", String(batchMs));
    args.push("--contacts", String(contacts.perUser), "--capacity", String(contacts.capacity));
    if (maxPending !== undefined) args.push("--max-pending", String(maxPending));
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

  /**
   * Counters; `profile` starts the coordinator's CPU profiler, or stops it and writes there;
   * `heap` writes a heap snapshot there first.
   */
  async stats(profile?: string, heap?: string): Promise<CoordinatorStats> {
    const request = profile ? `profile ${profile}` : heap ? `heap ${heap}` : "stats";
    await this.#writer.write(encoder.encode(`${request}\n`));
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
 * Datagrams the kernel dropped for want of receive-buffer room so far, from /proc/net/udp: at the
 * coordinator's socket, and at the simulated clients' (`sockets`: `host:port` each; other
 * programs' sockets on this machine are not counted).
 */
function udpDrops(
  coordinatorPort: number,
  sockets: Set<string>,
): { coordinator: number; clients: number } {
  const drops = socketDrops();
  const at = (host: string, port: number) => drops.get(procAddress(host, port)) ?? 0;
  let clients = 0;
  for (const endpoint of sockets) {
    const [host, port] = endpoint.split(":");
    clients += at(host, Number(port));
  }
  return { coordinator: at("127.0.0.1", coordinatorPort), clients };
}

/** CPU seconds this process (all its threads) has used. */
function selfCpu(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The coordinator's JSON lines. Anything else it prints (V8's `--trace-gc`, say) goes to
 * `--coordinator-trace`'s file, with the time it was read ({@link now}), or nowhere.
 */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      // V8 writes through a buffer of its own, flushed mid-line: a report may follow a part.
      const at = line.indexOf('{"');
      if (at > 0 || at < 0) {
        trace?.writeSync(
          encoder.encode(`${now().toFixed(1)} ${line.slice(0, at < 0 ? undefined : at)}\n`),
        );
      }
      if (at >= 0) yield line.slice(at);
    }
  }
}

/** Where `--coordinator-trace` sends the coordinator's other output. */
let trace: Deno.FsFile | undefined;

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, k) => from + k);
}

/** "converged N ms after the last …", or "never converged". */
function converged(ms: number | undefined, after: string): string {
  return ms === undefined ? "never converged" : `converged ${ms.toFixed(0)} ms after ${after}`;
}

/**
 * Waits until every online client's view is right; returns when ({@link now}), or undefined if
 * that did not happen within `timeoutMs` of `since`. Convergence is reported from the
 * coordinator's last change of who is online ({@linkcode after}).
 */
async function converge(
  views: Views,
  since: number,
  timeoutMs: number,
): Promise<number | undefined> {
  while (now() - since < timeoutMs) {
    if (!views.anyWrong()) return now();
    await sleep(5);
  }
  return undefined;
}

/** How long after the coordinator's last join or leave (`stats`, read after `at`) `at` came. */
function after(at: number | undefined, stats: CoordinatorStats): number | undefined {
  return at === undefined ? undefined : at - stats.lastChange;
}

// ---------------------------------------------------------------------------------------------
// One run.

interface RunOptions {
  users: number;
  /** Where to write the coordinator's CPU profile of the storm (`--coordinator-profile`). */
  profile?: string;
  /** Where to write the coordinator's heap snapshot at the end of the steady state (`--coordinator-heap`). */
  heap?: string;
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
  v8Flags?: string;
  /** Contacts per user in contacts mode; 0: everyone mode. */
  contacts: number;
}

interface RunResult {
  users: number;
  /** Contacts per user (contacts mode), or 0 (everyone mode). */
  contacts: number;
  seedShare: number;
  /** The coordinator's V8 flags ("" for none). */
  v8Flags: string;
  online: number;
  /** Storm logins per second whose `Accept` the clients received (first login to last Accept). */
  acceptRate: number;
  /** Storm logins per second the coordinator accepted (its first to its last). */
  coordinatorAcceptRate: number;
  loginRate: number;
  p50: number;
  p99: number;
  stormConverge?: number;
  stormDatagramsPerEvent: number;
  /** Logins in the storm (the others came in the ramp before it). */
  storm: number;
  stormRetries: number;
  churnEvents: number;
  churnConverge?: number;
  churnDatagramsPerEvent: number;
  rssSteady: number;
  rssPeak: number;
  /** What the coordinator's memory was made of at its highest RSS (sampled every 100 ms). */
  peakSample: MemorySample;
  cpuStorm: number;
  cpuSteady: number;
  /** The coordinator's CPU seconds from start to shutdown, and the datagrams it sent meanwhile. */
  cpuTotal: number;
  sentTotal: number;
  /** CPU of the load generator in the storm: its main thread, and the storm's Worker. */
  cpuGeneratorMain: number;
  cpuGeneratorWorker: number;
  maxLoopLagMs: number;
  byes: number;
  /** Clients online when the coordinator was stopped (after the churn). */
  onlineAtShutdown: number;
  exitCode: number;
  exitMs: number;
  totals: Totals;
  limited: number;
  stormDrops: number;
  churnDrops: number;
}

function sumTotals(a: Totals, b: Totals): Totals {
  const out = { ...a };
  for (const key of Object.keys(b) as (keyof Totals)[]) out[key] += b[key];
  return out;
}

/** A coordinator process for one run, started before the load generator lowers its priority. */
interface Started {
  coordinator: CoordinatorProcess;
  logFile: string;
}

async function startCoordinator(
  o: { batchMs?: number; v8Flags: string; contacts: number; capacity: number; maxPending?: number },
): Promise<Started> {
  const logFile = await Deno.makeTempFile({ prefix: "bench-coordinator-", suffix: ".log" });
  const contacts = { perUser: o.contacts, capacity: o.capacity };
  return {
    coordinator: await CoordinatorProcess.start(
      o.batchMs,
      o.v8Flags,
      logFile,
      contacts,
      o.maxPending,
    ),
    logFile,
  };
}

async function run(o: RunOptions, { coordinator, logFile }: Started): Promise<RunResult> {
  const churn = Math.round(o.users * o.churn);
  const capacity = o.users + churn;
  const stormSize = Math.min(o.users, o.storm);
  // Client indices: the ramp's first, then the churn's newcomers (both in the main thread), then
  // the storm's, in a Worker of their own.
  const rampSize = o.users - stormSize;
  const stormLo = capacity - stormSize;
  const views = Views.create(capacity, o.contacts);
  const ports = { views, seedShare: o.seedShare, udpPort: coordinator.udp };
  const endpoints: Uint8Array[] = [];
  const main = new ClientPool({ ...ports, lo: 0, hi: stormLo }, (i) => endpoints[i]);
  main.endpoints().forEach((ep, i) => endpoints[i] = encoder.encode(ep));
  let worker: WorkerPool | undefined;
  let lists: ListWorker | undefined;
  let mainLists: PortLists | undefined;
  const mode = o.contacts > 0 ? `, contacts` : "";
  const say = (text: string) => console.error(`[N=${o.users}${mode}] ${text}`);
  try {
    worker = await WorkerPool.start({
      ...ports,
      lo: stormLo,
      hi: capacity,
      endpoints: main.endpoints(),
    });
    worker.endpoints.forEach((ep, k) => endpoints[stormLo + k] = encoder.encode(ep));
    const sockets = new Set([...main.endpoints(), ...worker.endpoints]);
    const storm = worker;
    // Lists are fetched and parsed in a third thread, for both pools.
    lists = ListWorker.start(views, [...main.endpoints(), ...worker.endpoints]);
    main.useLists(mainLists = new PortLists(lists.channel()));
    await storm.useLists(lists.channel());
    const totals = async () => sumTotals(main.totals, await storm.totals());
    // Gaps so far (each pool counts each client's gap once).
    const gaps = async () => main.checkGaps() + await storm.checkGaps();
    say(
      `${capacity} client sockets ready; storm at ${o.rate} logins/s offered; the coordinator ` +
        `runs with ${o.v8Flags ? `V8 flags ${o.v8Flags}` : "V8's default flags"}`,
    );
    // What the coordinator holds with nobody online: what the users' memory adds to.
    say(`idle: ${memoryLine((await coordinator.stats()).memory)}`);
    main.startHeartbeats(o.heartbeatSec * 1000);
    await storm.startHeartbeats(o.heartbeatSec * 1000);

    // Ramp: all but the storm's users, at a pace the simulated clients can digest.
    let afterRamp: CoordinatorStats | undefined;
    if (rampSize > 0) {
      const ramp = await main.loginMany(range(0, rampSize), {
        rate: o.rampRate,
        inflight: o.inflight,
      });
      const rampConverged = await converge(views, ramp.lastJoin, 60_000);
      afterRamp = await coordinator.stats();
      const rampConverge = after(rampConverged, afterRamp);
      const rate = ramp.listed / ((ramp.lastJoin - ramp.t0) / 1000);
      say(
        `ramp: ${views.online} online at ${rate.toFixed(0)} logins/s, ` +
          `${converged(rampConverge, "the last join")}, ${await gaps()} presence gaps`,
      );
    }

    // Storm: the rest, offered at `rate` per second, from the Worker.
    const gaps0 = await gaps();
    const before = await coordinator.stats(o.profile);
    const cpu0 = coordinator.usage().cpu;
    const generator0 = { all: selfCpu(), main: threadCpu(), worker: await storm.cpu() };
    const drops0 = udpDrops(coordinator.udp, sockets);
    const report: LoginReport = await storm.loginMany(range(stormLo, capacity), {
      rate: o.rate,
      inflight: o.inflight,
    });
    const stormConverged = await converge(views, report.lastJoin, 60_000);
    const stormEnd = now();
    const stormSec = (stormEnd - report.t0) / 1000;
    const cpu1 = coordinator.usage().cpu;
    const generator = {
      all: (selfCpu() - generator0.all) / stormSec,
      main: (threadCpu() - generator0.main) / stormSec,
      worker: (await storm.cpu() - generator0.worker) / stormSec,
    };
    const afterStorm = await coordinator.stats(o.profile);
    const stormConverge = after(stormConverged, afterStorm);
    const gaps1 = await gaps();
    const online = views.online;
    const acceptRate = report.accepted / ((report.lastAccept - report.t0) / 1000);
    const { count, first, last } = afterStorm.accepted;
    const coordinatorAcceptRate = count / (Math.max(1, last - first) / 1000);
    const loginRate = report.listed / ((report.lastJoin - report.t0) / 1000);
    const ph = (v: number[]) =>
      `${percentile(v, 0.5).toFixed(0)}/${percentile(v, 0.99).toFixed(0)}`;
    const phases: Phases = report.phases;
    say(
      `storm phases p50/p99 ms: accept ${ph(phases.accept)}, connect ${ph(phases.connect)}, ` +
        `transfer ${ph(phases.transfer)}`,
    );
    const drops1 = udpDrops(coordinator.udp, sockets);
    const stormDrops = drops1.clients - drops0.clients + drops1.coordinator - drops0.coordinator;
    say(
      `storm: ${report.retries} login retries, ${afterStorm.limited} limited, event loop busy ` +
        `${afterStorm.maxLoopLagMs} ms at most; datagrams dropped for full receive buffers: ` +
        `${drops1.clients - drops0.clients} at clients, ${
          drops1.coordinator - drops0.coordinator
        } at the coordinator; CPU: coordinator ${((cpu1 - cpu0) / stormSec * 100).toFixed(0)} % (${
          ((cpu1 - cpu0) / stormSize * 1000).toFixed(2)
        } ms per storm login, all its storm work included: what other processes disturb least), load generator ${
          (generator.all * 100).toFixed(0)
        } % (main thread ${(generator.main * 100).toFixed(0)} %, storm's Worker ${
          (generator.worker * 100).toFixed(0)
        } %, lists' Worker and the rest ${
          ((generator.all - generator.main - generator.worker) * 100).toFixed(0)
        } %)`,
    );
    say(
      `storm: ${stormSize} logins, ${online} online, accepted ${acceptRate.toFixed(0)}/s as the ` +
        `clients saw it, ${coordinatorAcceptRate.toFixed(0)}/s as the coordinator did (${count} ` +
        `new logins), lists ${loginRate.toFixed(0)}/s, ` +
        `${converged(stormConverge, "the last join")} (${
          stormConverged === undefined ? "—" : ((stormConverged - report.t0) / 1000).toFixed(2)
        } s after the first login), ${gaps1 - gaps0} presence gaps`,
    );

    // Steady state: heartbeats only.
    const cpu2 = coordinator.usage().cpu;
    const steadyStart = performance.now();
    let rssSteady = 0;
    while (performance.now() - steadyStart < o.steadySec * 1000) {
      await sleep(500);
      rssSteady = Math.max(rssSteady, coordinator.usage().rss);
    }
    const cpuSteady = (coordinator.usage().cpu - cpu2) / ((performance.now() - steadyStart) / 1000);
    const { memory: mem } = await coordinator.stats();
    say(
      `steady: RSS ${rssSteady.toFixed(0)} MiB (heap ${(mem.heapUsed / MIB).toFixed(0)} of ${
        (mem.heapTotal / MIB).toFixed(0)
      } MiB, spaces ${JSON.stringify(mem.spaces)} MiB, external ${
        (mem.external / MIB).toFixed(0)
      } MiB), CPU ${(cpuSteady * 100).toFixed(1)} %`,
    );
    say(`steady, at its end: ${memoryLine(mem)}`);
    if (o.heap) {
      // After the snapshot's full collection: what is live (the snapshot's own buffers swell
      // the RSS from here on, peak included).
      const { memory: live } = await coordinator.stats(undefined, o.heap);
      say(`steady, after a full GC (heap snapshot in ${o.heap}): ${memoryLine(live)}`);
    }

    // Churn: `churn` users leave and as many new ones join, interleaved, at `churnRate`/s.
    const beforeChurn = await coordinator.stats();
    const drops2 = udpDrops(coordinator.udp, sockets);
    const members = [...range(0, rampSize), ...range(stormLo, capacity)];
    const leaving = members.filter((i) => views.state(i) === State.Online)
      .filter((_, k) => k % Math.max(1, Math.floor(o.users / Math.max(1, churn))) === 0)
      .slice(0, churn);
    const joining = range(rampSize, rampSize + churn);
    const churnStart = now();
    const slots = new Semaphore(o.inflight);
    const churnPhases: Phases = { accept: [], connect: [], transfer: [] };
    const joins: Promise<void>[] = [];
    let lastEvent = churnStart;
    for (let k = 0; k < Math.max(leaving.length, joining.length); k++) {
      const due = churnStart + (2 * k) * 1000 / o.churnRate;
      while (now() < due) await sleep(1);
      if (leaving[k] !== undefined) {
        const i = leaving[k];
        if (i >= stormLo) await storm.logout(i);
        else main.logout(i);
      }
      lastEvent = now();
      if (joining[k] !== undefined) {
        joins.push(
          main.login(joining[k], slots, churnPhases).then((r) => {
            lastEvent = Math.max(lastEvent, r.listed ?? 0);
          }),
        );
      }
    }
    await Promise.all(joins);
    const churnConverged = await converge(views, lastEvent, 30_000);
    const afterChurn = await coordinator.stats();
    const churnConverge = after(churnConverged, afterChurn);
    const churnGaps = await gaps() - gaps1;
    const churnEvents = leaving.length + joining.length;
    const drops3 = udpDrops(coordinator.udp, sockets);
    const churnDrops = drops3.clients - drops2.clients + drops3.coordinator - drops2.coordinator;
    say(
      `churn: ${churnEvents} events, ${churnDrops} datagrams dropped, ` +
        `${converged(churnConverge, "the last")}, ${churnGaps} presence gaps since the storm`,
    );
    main.stopHeartbeats();
    await storm.stopHeartbeats();

    // Graceful shutdown: every online client should hear Bye.
    const { peak: rssPeak, cpu: cpuTotal } = coordinator.usage();
    const peakSample = [afterRamp ?? before, before, afterStorm, beforeChurn, afterChurn]
      .map((s) => s.peak)
      .reduce((a, b) => (b.rss > a.rss ? b : a));
    const byesBefore = (await totals()).byes;
    const exit = await coordinator.terminate();
    const onlineAtShutdown = views.online;
    const byeDeadline = performance.now() + 2000;
    while (
      (await totals()).byes - byesBefore < onlineAtShutdown && performance.now() < byeDeadline
    ) {
      await sleep(20);
    }
    const all = await totals();
    const result: RunResult = {
      users: o.users,
      contacts: o.contacts,
      seedShare: o.seedShare,
      v8Flags: o.v8Flags ?? "",
      online,
      acceptRate,
      coordinatorAcceptRate,
      loginRate,
      storm: stormSize,
      stormRetries: report.retries,
      p50: percentile(report.latencies, 0.5),
      p99: percentile(report.latencies, 0.99),
      stormConverge,
      stormDatagramsPerEvent: (afterStorm.presenceSent - before.presenceSent) / stormSize,
      churnEvents,
      churnConverge,
      churnDatagramsPerEvent: (afterChurn.presenceSent - beforeChurn.presenceSent) /
        Math.max(1, churnEvents),
      rssSteady,
      rssPeak,
      peakSample,
      cpuStorm: (cpu1 - cpu0) / stormSec,
      cpuSteady,
      cpuTotal,
      sentTotal: afterChurn.sent,
      cpuGeneratorMain: generator.main,
      cpuGeneratorWorker: generator.worker,
      maxLoopLagMs: afterStorm.maxLoopLagMs,
      byes: all.byes - byesBefore,
      onlineAtShutdown,
      exitCode: exit.code,
      exitMs: exit.ms,
      totals: all,
      limited: afterChurn.limited,
      stormDrops,
      churnDrops,
    };
    const p = peakSample;
    say(
      `memory at the highest RSS sampled, ${(p.rss / MIB).toFixed(0)} MiB: V8 heap ${
        (p.heapTotal / MIB).toFixed(0)
      } MiB (${(p.heapUsed / MIB).toFixed(0)} used; spaces ${JSON.stringify(p.spaces)} MiB), ` +
        `external ${(p.external / MIB).toFixed(0)} MiB, the rest (Deno, Rust, malloc, code) ${
          ((p.rss - p.heapTotal) / MIB).toFixed(0)
        } MiB`,
    );
    say(
      `coordinator: ${cpuTotal.toFixed(1)} CPU seconds in all, for ${afterChurn.sent} datagrams ` +
        `sent (${(cpuTotal / afterChurn.sent * 1e6).toFixed(1)} µs each, all its work included)`,
    );
    say(
      `presence: ${all.presenceDatagrams} datagrams received, ${all.headed} of them with a ` +
        `version range; ${all.gaps} gaps, ${all.resyncs} resyncs, ${all.overlaps} overlaps`,
    );
    say(`shutdown: exit ${exit.code} after ${exit.ms.toFixed(0)} ms, ${result.byes} Bye received`);
    return result;
  } finally {
    await main.close();
    await worker?.close();
    mainLists?.close();
    lists?.close();
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
    "| N online | clients | storm: logins, accepted/s (clients / coordinator), lists/s | " +
    "login→list p50 / p99 | converged after storm | presence datagrams per login | churn events | " +
    "converged after churn | presence datagrams per event | presence gaps | " +
    "datagrams lost (storm + churn) | RSS steady / peak | CPU storm / steady | Bye received, exit |",
    "| -: | - | - | -: | -: | -: | -: | -: | -: | -: | -: | -: | -: | - |",
  ];
  for (const r of results) {
    const kind = (r.seedShare >= 1
      ? "seed-only"
      : r.seedShare > 0
      ? `${r.seedShare * 100} % seed`
      : "extension") +
      (r.contacts > 0 ? `, contacts mode (${r.contacts} each)` : "") +
      (r.v8Flags === V8_FLAGS ? "" : `, V8 flags \`${r.v8Flags || "(V8's defaults)"}\``);
    rows.push(
      `| ${r.online} | ${kind} | ${r.storm}, ${r.acceptRate.toFixed(0)} / ` +
        `${r.coordinatorAcceptRate.toFixed(0)}/s, ${r.loginRate.toFixed(0)}/s | ` +
        `${r.p50.toFixed(0)} / ${r.p99.toFixed(0)} ms | ${ms(r.stormConverge)} | ` +
        `${r.stormDatagramsPerEvent.toFixed(0)} | ${r.churnEvents} | ${ms(r.churnConverge)} | ` +
        `${r.churnDatagramsPerEvent.toFixed(0)} | ${r.totals.gaps} | ` +
        `${r.stormDrops + r.churnDrops} | ${r.rssSteady.toFixed(0)} / ${
          r.rssPeak.toFixed(0)
        } MiB | ` +
        `${(r.cpuStorm * 100).toFixed(0)} % / ${(r.cpuSteady * 100).toFixed(1)} % | ` +
        `${r.byes}/${r.onlineAtShutdown}, ${r.exitCode} in ${r.exitMs.toFixed(0)} ms |`,
    );
  }
  return rows.join("\n");
}

/** The issue's goals, each met or not, for one run (MB = 10^6 bytes, as the issue counts). */
function goals(r: RunResult): string[] {
  const ms = (v: number | undefined) => (v === undefined ? "never" : `${v.toFixed(0)} ms`);
  const mb = (mib: number) => mib * MIB / 1e6;
  const verdict = (ok: boolean) => (ok ? "met" : "NOT MET");
  const lines = [
    `coordinator RSS ≤ 150 MB: steady ${mb(r.rssSteady).toFixed(0)} MB, peak ${
      mb(r.rssPeak).toFixed(0)
    } MB: ${verdict(mb(r.rssPeak) <= 150)}`,
    `storm ≥ 2,000 logins/s accepted: ${r.acceptRate.toFixed(0)}/s as the clients saw it, ${
      r.coordinatorAcceptRate.toFixed(0)
    }/s as the coordinator did: ${
      verdict(Math.min(r.acceptRate, r.coordinatorAcceptRate) >= 2000)
    }`,
    `lists right within 2 s: ${ms(r.stormConverge)} after the storm, ${
      ms(r.churnConverge)
    } after the churn: ${
      verdict((r.stormConverge ?? Infinity) <= 2000 && (r.churnConverge ?? Infinity) <= 2000)
    }`,
  ];
  if (r.contacts > 0) {
    const most = 2 * r.contacts / 85;
    lines.push(
      `contacts mode: converged ≤ 0.5 s after the storm: ${ms(r.stormConverge)}: ${
        verdict((r.stormConverge ?? Infinity) <= 500)
      }`,
      `contacts mode: presence datagrams per login ≤ 2 × ${r.contacts} / 85 = ${most.toFixed(2)}: ${
        r.stormDatagramsPerEvent.toFixed(2)
      }: ${verdict(r.stormDatagramsPerEvent <= most)} (every UDP presence datagram the ` +
        `coordinator sent from the storm's start until convergence, over the ${r.storm} storm ` +
        `logins; lists over TCP not counted; the floor is one datagram per member with a contact ` +
        `in the storm, ≈ ${r.users} / ${r.storm} = ${(r.users / r.storm).toFixed(2)}${
          r.users / r.storm > most
            ? `, above the goal: out of reach in this storm; a whole community's storm, --storm ` +
              `${r.users}, has floor 1`
            : ""
        })`,
    );
  }
  return lines.map((l) => `N=${r.users}${r.contacts > 0 ? " (contacts)" : ""}: ${l}`);
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
      "v8-flags": { type: "string", default: V8_FLAGS },
      "generator-nice": { type: "string", default: "10" },
      json: { type: "string" },
      presence: { type: "string", default: "everyone" },
      contacts: { type: "string", default: "50" },
      capacity: { type: "string", default: "0" },
      "max-pending": { type: "string" },
      "coordinator-trace": { type: "string" },
      "coordinator-profile": { type: "string" },
      "coordinator-heap": { type: "string" },
    },
  });
  const batchMs = values["batch-ms"] === undefined ? undefined : Number(values["batch-ms"]);
  const maxPending = () =>
    values["max-pending"] === undefined ? undefined : Number(values["max-pending"]);
  if (values.role === "coordinator") {
    await serveRole({
      batchMs,
      logFile: values.log ?? "/dev/null",
      contacts: Number(values.contacts),
      capacity: Number(values.capacity),
      maxPending: maxPending(),
    });
  } else {
    const traceFile = values["coordinator-trace"];
    if (traceFile) trace = Deno.openSync(traceFile, { write: true, create: true, truncate: true });
    const modes = values.presence.split(",");
    if (modes.some((m) => m !== "everyone" && m !== "contacts")) {
      console.error(`--presence takes everyone, contacts or both, not "${values.presence}"`);
      Deno.exit(2);
    }
    const perUser = Number(values.contacts);
    // Each size in each mode: everyone's run, then contacts' (the same size side by side).
    const runs = values.users.split(",").map(Number).flatMap((users) =>
      modes.map((m) => ({ users, contacts: m === "contacts" ? perUser : 0 }))
    );
    const sizes = runs.map((r) => r.users);
    const v8Flags = values["v8-flags"];
    const total = Math.max(...sizes) * (1 + Number(values.churn));
    const limit = Number(new TextDecoder().decode(
      new Deno.Command("sh", { args: ["-c", "ulimit -n"] }).outputSync().stdout,
    ));
    if (limit < total + 1000) {
      console.error(`ulimit -n is ${limit}; ${Math.ceil(total + 1000)} needed: raise it first`);
      Deno.exit(1);
    }
    // Every coordinator starts before the generator lowers its priority (children and Workers
    // inherit it; it cannot be raised again without privileges).
    const started: Started[] = [];
    const results: RunResult[] = [];
    try {
      for (const { users, contacts } of runs) {
        const capacity = users + Math.round(users * Number(values.churn));
        started.push(
          await startCoordinator({
            batchMs,
            v8Flags,
            contacts,
            capacity,
            maxPending: maxPending(),
          }),
        );
      }
      const nice = Number(values["generator-nice"]);
      if (nice > 0) os.setPriority(0, Math.min(19, nice)); // this thread, and Workers made after it
      for (const [k, users] of sizes.entries()) {
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
            v8Flags,
            contacts: runs[k].contacts,
            profile: values["coordinator-profile"]?.replace(".cpuprofile", `-${k}.cpuprofile`),
            heap: values["coordinator-heap"]?.replace(".heapsnapshot", `-${k}.heapsnapshot`),
          }, started[k]),
        );
      }
    } finally {
      // Those left unused by a failure: no coordinator outlives the benchmark.
      for (const { coordinator, logFile } of started) {
        try {
          coordinator.child.kill("SIGKILL");
        } catch {
          // its run stopped it
        }
        await coordinator.child.status;
        await Deno.remove(logFile).catch(() => {});
      }
    }
    console.log(table(results));
    for (const r of results) for (const line of goals(r)) console.log(line);
    const problems = results.flatMap((r) => {
      const t = r.totals;
      return t.badEndpoints + t.badLines + t.listFailures + t.rejects + t.gaveUp + t.overlaps > 0
        ? [
          `N=${r.users}: ${t.badEndpoints} wrong endpoints, ${t.badLines} bad lines, ` +
          `${t.overlaps} overlapping presence ranges, ${t.listFailures} failed list fetches, ` +
          `${t.rejects} rejected logins, ${t.gaveUp} logins given up after 5 tries`,
        ]
        : [];
    });
    for (const p of problems) console.log(p);
    if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2));
  }
}
