/**
 * Cluster benchmark (docs/LOAD.md, "One community on three coordinators"): simulated clients
 * (`bench_load_clients.ts`'s pools, each client on its own loopback address) spread over three
 * coordinators that share one community over a real `nats-server`, compared in the same run with
 * one coordinator on its own and one coordinator with `--cluster` (what NATS costs).
 *
 * ```sh
 * scripts/deno task bench:cluster                     # 10,000 users
 * scripts/deno task bench:cluster --users 3000 --storm 1000
 * ```
 *
 * For each setup: all but `--storm` users log in at `--ramp-rate`, then the storm at `--rate`
 * (spread over the coordinators), then `--churn` of the users leave and come back at
 * `--churn-rate`; "converged" is every online client's view equal to the truth, timed from the
 * last join. Then `--probes` probe logins on the first coordinator, each timed from its admission
 * (the list fetch's TCP connect) to its `+name` line at a watcher client on every coordinator:
 * local (same coordinator) and remote (through NATS) latencies, p50 and p99; the remote minus
 * the local is what the hop adds. With three coordinators, the third is then restarted: the time
 * from its start until its online list holds every user of the other two ("restart to complete
 * list"), beside the same timed by the restarted coordinator (listening → the other members'
 * snapshots applied) and a timeline on stderr. RSS of every process (coordinators, nats-server)
 * from /proc. Presence gaps and resyncs are counted in the storm and the churn, beside the
 * datagrams the kernel dropped at the sockets meanwhile; a line gives the ramp's apart, and the
 * clients that gapped though their own socket dropped nothing (a gap no loss explains). Every
 * wait is bounded: what did not finish is printed, and the run goes on.
 *
 * The coordinators run as `bench_cluster.ts --role coordinator` (the `Coordinator` that
 * `p2p serve` runs, with the same V8 flags). The machine is shared by the generator, the
 * coordinators and NATS: figures are for comparison within one run.
 * @module
 */
import net from "node:net";
import { parseArgs } from "node:util";
import { Coordinator } from "../lib/coordinator.ts";
import { encodeBase64url } from "../lib/protocol/base64url.ts";
import { procAddress } from "../lib/net/linux_udp.ts";
import { V8_FLAGS } from "./compile.ts";
import {
  addressOf,
  clientKey,
  ClientPool,
  ListWorker,
  type LoginReport,
  now,
  PortLists,
  socketDrops,
  State,
  Views,
} from "./bench_load_clients.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const COMMUNITY = "bench";
/** A list fetch silent this long is given up (the list service answers in well under that). */
const FETCH_TIMEOUT_MS = 10_000;
/** Beyond its own length at its rate, how long a phase of logins may take before it is given up. */
const LOGINS_SLACK_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// The coordinator process.

async function coordinatorRole(args: {
  port: number;
  cluster?: string;
  member?: string;
  token?: string;
  /** Hops of users `u<i>` with i at least this are written to stdout, a JSON line each. */
  watchFrom?: number;
}): Promise<void> {
  const watched = (name: string) =>
    args.watchFrom !== undefined && name.startsWith("u") && Number(name.slice(1)) >= args.watchFrom;
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: args.port,
    mailbox: false,
    // BENCH_CLUSTER_LOG=<dir> writes each coordinator's log to <dir>/<member>.log (for debugging).
    log: logTo(args.member ?? "single"),
    cluster: args.cluster === undefined ? undefined : {
      url: args.cluster,
      community: COMMUNITY,
      member: args.member,
      token: args.token,
      onHop: (hop) => {
        if (hop.names.length > 0 && hop.names.every(watched)) {
          console.log(
            JSON.stringify({ stage: hop.stage, ms: hop.ms, names: hop.names, at: now() }),
          );
        }
      },
      onSnapshot: (snapshot) =>
        console.log(
          JSON.stringify({ snapshot: snapshot.member, users: snapshot.users, at: now() }),
        ),
    },
  });
  console.log(JSON.stringify({ udp: coordinator.udpPort, tcp: coordinator.tcpPort, at: now() }));
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  await stop.promise;
  await coordinator.close();
  Deno.exit(0);
}

/** The log of a coordinator: nowhere, or appended to a file under `BENCH_CLUSTER_LOG`. */
function logTo(member: string): (line: string) => void {
  const dir = Deno.env.get("BENCH_CLUSTER_LOG");
  if (dir === undefined) return () => {};
  const file = Deno.openSync(`${dir}/${member}.log`, { append: true, create: true });
  return (line) => file.writeSync(encoder.encode(`${new Date().toISOString()} ${line}\n`));
}

/** A coordinator process of the benchmark. */
class CoordinatorProcess {
  readonly child: Deno.ChildProcess;
  readonly udp: number;
  readonly tcp: number;
  /** When it said it listens (ms, {@linkcode now}): when we read it, and by its own clock. */
  readonly readyAt: number;
  readonly listeningAt: number;
  /** Other members' whole snapshots it applied: whose, how many users, when (its clock). */
  readonly snapshots: { member: string; users: number; at: number }[] = [];
  /**
   * The hops it timed for watched users (`--watch-from`), by `<stage> <name>`: the first one (a
   * probe's login comes before its logout), and when it was timed (ms, {@linkcode now}).
   */
  readonly hops = new Map<string, { ms: number; at: number }>();

  private constructor(
    child: Deno.ChildProcess,
    ports: { udp: number; tcp: number; at: number },
  ) {
    this.child = child;
    this.udp = ports.udp;
    this.tcp = ports.tcp;
    this.readyAt = now();
    this.listeningAt = ports.at;
  }

  static async start(
    options: {
      cluster?: string;
      member?: string;
      token?: string;
      port?: number;
      watchFrom?: number;
    },
  ): Promise<CoordinatorProcess> {
    const args = [
      "run",
      "-A",
      `--v8-flags=${V8_FLAGS}`,
      import.meta.filename!,
      "--role",
      "coordinator",
    ];
    args.push("--port", String(options.port ?? 0));
    if (options.cluster !== undefined) {
      args.push(
        "--cluster",
        options.cluster,
        "--member",
        options.member!,
        "--token",
        options.token!,
      );
    }
    if (options.watchFrom !== undefined) args.push("--watch-from", String(options.watchFrom));
    const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
      .spawn();
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("coordinator process ended before it listened");
      text += decoder.decode(value);
    }
    const process = new CoordinatorProcess(child, JSON.parse(text.slice(0, text.indexOf("\n"))));
    process.#readHops(reader, text.slice(text.indexOf("\n") + 1));
    return process;
  }

  /** Reads the hop and snapshot lines the process writes after its ports, until it ends. */
  async #readHops(reader: ReadableStreamDefaultReader<Uint8Array>, text: string): Promise<void> {
    for (;;) {
      let newline;
      while ((newline = text.indexOf("\n")) >= 0) {
        const line = JSON.parse(text.slice(0, newline));
        text = text.slice(newline + 1);
        if (line.snapshot !== undefined) {
          this.snapshots.push({ member: line.snapshot, users: line.users, at: line.at });
          continue;
        }
        const hop = line as { stage: string; ms: number; names: string[]; at: number };
        for (const name of hop.names) {
          const key = `${hop.stage} ${name}`;
          if (!this.hops.has(key)) this.hops.set(key, { ms: hop.ms, at: hop.at });
        }
      }
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      text += decoder.decode(value, { stream: true });
    }
  }

  memory(): { rss: number; peak: number } {
    return memoryOf(this.child.pid);
  }

  /** SIGTERM, and SIGKILL if it has not ended 10 s later (it says so). */
  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // gone
    }
    const killed = setTimeout(() => {
      console.error(`coordinator process ${this.child.pid} did not stop in 10 s: killed`);
      try {
        this.child.kill("SIGKILL");
      } catch {
        // gone meanwhile
      }
    }, 10_000);
    await this.child.status;
    clearTimeout(killed);
  }
}

function memoryOf(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (k: string) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1] ?? 0);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

/** A nats-server on a free loopback port with a token. */
async function startNats(): Promise<{ url: string; token: string; child: Deno.ChildProcess }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const token = crypto.randomUUID();
  const child = new Deno.Command("nats-server", {
    args: [
      "-a",
      "127.0.0.1",
      "-p",
      String(port),
      "--auth",
      token,
      ...(Deno.env.get("BENCH_CLUSTER_LOG")
        ? ["-D", "-l", `${Deno.env.get("BENCH_CLUSTER_LOG")}/nats.log`]
        : []),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return { url: `nats://127.0.0.1:${port}`, token, child };
    } catch {
      await sleep(25);
    }
  }
  throw new Error("nats-server did not start");
}

// ---------------------------------------------------------------------------------------------
// Probes: a login on one coordinator, timed to its presence line at a watcher on each.

/** A raw keyed client on its own loopback address. */
class RawClient {
  readonly name: string;
  readonly host: string;
  readonly secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
  readonly conn: Deno.DatagramConn;
  readonly server: Deno.NetAddr;
  /** When each watched name's `+name,` line first came. */
  readonly seen = new Map<string, number>();
  #closed = false;

  constructor(index: number, udpPort: number) {
    this.name = `u${index}`;
    this.host = addressOf(index);
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: this.host, port: 0 });
    this.server = { transport: "udp", hostname: "127.0.0.1", port: udpPort };
    this.#receive();
  }

  get endpoint(): string {
    return `${this.host}:${(this.conn.addr as Deno.NetAddr).port}`;
  }

  async #receive(): Promise<void> {
    while (!this.#closed) {
      let data: Uint8Array;
      try {
        [data] = await this.conn.receive();
      } catch {
        return;
      }
      const at = now();
      for (const line of decoder.decode(data).split("\n")) {
        if (line.startsWith("+")) {
          const name = line.slice(1, line.indexOf(","));
          if (!this.seen.has(name)) this.seen.set(name, at);
        }
      }
    }
  }

  send(text: string): void {
    this.conn.send(encoder.encode(text), this.server).catch(() => {});
  }

  /** Logs in (keyed) and fetches the list; resolves with when the fetch's TCP connect was made. */
  async login(index: number, tcpPort: number): Promise<number> {
    this.send(`login,${this.name},${this.endpoint},${clientKey(index)},${this.secret}`);
    await sleep(20);
    return await new Promise<number>((resolve, reject) => {
      let connectedAt = 0;
      const socket = net.connect(
        { host: "127.0.0.1", port: tcpPort, localAddress: this.host },
        () => {
          connectedAt = now();
        },
      );
      socket.setTimeout(FETCH_TIMEOUT_MS, () => socket.destroy(new Error("list fetch timed out")));
      socket.on("data", () => {});
      socket.on("error", reject);
      socket.on("close", () => resolve(connectedAt));
    });
  }

  heartbeat(): void {
    this.send(`heartbeat,${this.name},${this.secret}`);
  }

  logout(): void {
    this.send(`logout,${this.name},${this.endpoint},${this.secret}`);
  }

  close(): void {
    this.#closed = true;
    this.conn.close();
  }
}

/** Entries in the online list at `tcpPort` (fetched from a fresh address). */
function listCount(tcpPort: number, from: string): Promise<number> {
  return new Promise((resolve) => {
    let text = "";
    const socket = net.connect({ host: "127.0.0.1", port: tcpPort, localAddress: from });
    socket.setTimeout(FETCH_TIMEOUT_MS, () => socket.destroy());
    socket.on("data", (d: Uint8Array) => text += decoder.decode(d));
    socket.on("error", () => resolve(-1));
    socket.on("close", () => resolve(text.split(";").length - 1));
  });
}

// ---------------------------------------------------------------------------------------------
// One setup.

interface SetupResult {
  setup: string;
  users: number;
  stormConvergeMs: number;
  churnConvergeMs: number;
  localP50: number;
  localP99: number;
  remoteP50?: number;
  remoteP99?: number;
  hopP50?: number;
  hopP99?: number;
  restartMs?: number;
  /** The restart, timed by the restarted coordinator: listening → the others' snapshots applied. */
  restartSyncedMs?: number;
  /**
   * The hop as the coordinators time it, p50 and p99 (ms): `published`, at the probes'
   * coordinator from admission to publish; `applied` and `sent`, at the others from that
   * publish to the probe listed there and to its datagram handed to the socket for every client;
   * `read`, from that last moment to the watcher's receipt (the generator's share).
   */
  coordinatorHop?: Record<"published" | "applied" | "sent" | "read", [number, number]>;
  rss: string;
  /** Presence gaps the clients found in the storm and the churn, and lists they fetched again. */
  gaps: number;
  resyncs: number;
  /** Datagrams the kernel dropped for full receive buffers in the storm and the churn. */
  drops?: Drops;
  /** The same figures for the ramp before the storm (`--users` minus `--storm` logins). */
  ramp?: GapWindow;
  /**
   * Clients with a gap in the storm and the churn whose own socket dropped nothing in the run: a
   * gap no loss explains, which would be the coordinator's (it promised what it did not send).
   */
  unexplainedGaps?: number;
}

/** Gaps, resyncs and drops over one stretch of a run (see {@linkcode SetupResult}). */
interface GapWindow {
  gaps: number;
  resyncs: number;
  drops: Drops;
  unexplainedGaps: number;
  /** Presence datagrams the clients received (and lines in them): what the clients had to read. */
  datagrams: number;
  lines: number;
}

/** Datagrams dropped at the simulated clients' sockets and at the coordinators'. */
interface Drops {
  clients: number;
  coordinators: number;
}

/**
 * What gaps and loss to tell apart: every client's gap count (by endpoint), each loopback
 * socket's drops (by `/proc/net/udp` address), the totals; taken at both ends of a stretch.
 */
interface GapMark {
  gaps: Map<string, number>;
  socketDrops: Map<string, number>;
  resyncs: number;
  datagrams: number;
  lines: number;
}

function gapMark(pools: ClientPool[]): GapMark {
  let resyncs = 0;
  let datagrams = 0;
  let lines = 0;
  const gaps = new Map<string, number>();
  for (const pool of pools) {
    pool.checkGaps();
    resyncs += pool.totals.resyncs;
    datagrams += pool.totals.presenceDatagrams;
    lines += pool.totals.presenceLines;
    for (const [endpoint, n] of pool.gapsByEndpoint()) gaps.set(endpoint, n);
  }
  return { gaps, socketDrops: socketDrops(), resyncs, datagrams, lines };
}

/**
 * Gaps and drops between two marks, and the clients that gapped meanwhile though their socket
 * dropped nothing since `origin` (the run's start: a datagram lost in the ramp may show as a gap
 * only at the client's first heartbeat after it).
 */
function gapWindow(from: GapMark, to: GapMark, origin: GapMark): GapWindow {
  let gaps = 0;
  let unexplainedGaps = 0;
  for (const [endpoint, n] of to.gaps) {
    const more = n - (from.gaps.get(endpoint) ?? 0);
    if (more === 0) continue;
    gaps += more;
    const [host, port] = endpoint.split(":");
    const address = procAddress(host, Number(port));
    const dropped = (to.socketDrops.get(address) ?? 0) - (origin.socketDrops.get(address) ?? 0);
    if (dropped === 0) unexplainedGaps++;
  }
  const [before, after] = [loopbackDrops(from.socketDrops), loopbackDrops(to.socketDrops)];
  return {
    gaps,
    resyncs: to.resyncs - from.resyncs,
    drops: {
      clients: after.clients - before.clients,
      coordinators: after.coordinators - before.coordinators,
    },
    unexplainedGaps,
    datagrams: to.datagrams - from.datagrams,
    lines: to.lines - from.lines,
  };
}

/**
 * Of {@linkcode socketDrops}, the coordinators' (127.0.0.1) and the simulated clients' (127.1.0.1
 * on, every other loopback address) summed.
 */
function loopbackDrops(socketDrops: Map<string, number>): Drops {
  const drops = { coordinators: 0, clients: 0 };
  for (const [address, n] of socketDrops) {
    // The address in hex, least significant byte first: 0100007F is 127.0.0.1.
    const ip = address.slice(0, 8);
    if (ip === "0100007F") drops.coordinators += n;
    else if (ip.endsWith("7F")) drops.clients += n;
  }
  return drops;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))];
}

/**
 * When every online client's view became right, or NaN after `ms` (the count is logged). A client
 * that lost a presence datagram is right again once its next heartbeat's `Alive` shows it behind
 * and it has fetched its list again, as a real one does (a resync: up to a heartbeat interval and
 * a second later).
 */
async function converge(
  views: Views,
  coordinators: CoordinatorProcess[],
  ms = 60_000,
): Promise<number> {
  const deadline = now() + ms;
  while (views.anyWrong()) {
    if (now() > deadline) {
      console.error(`not converged: ${views.wrong()} of ${views.online} clients wrong`);
      await explain(views, coordinators);
      return NaN;
    }
    await sleep(5);
  }
  return now();
}

/** Says why the first wrong client is wrong, and which coordinators' lists hold whom it gets wrong. */
async function explain(views: Views, coordinators: CoordinatorProcess[]): Promise<void> {
  const wrong = views.firstWrong();
  if (wrong === undefined) return;
  const show = (xs: number[]) =>
    xs.slice(0, 5).map((i) => `u${i}(${Object.keys(State)[views.state(i)]})`).join(" ");
  console.error(
    `  client ${wrong.c} sees ${wrong.count} of ${views.online}: ${wrong.extra.length} not ` +
      `online [${show(wrong.extra)}], ${wrong.missing.length} missed [${show(wrong.missing)}]`,
  );
  for (const [k, c] of coordinators.entries()) {
    const names = new Set((await fetchList(c.tcp)).split(/[;\n]/).map((e) => e.split(",")[0]));
    const held = (xs: number[]) => xs.filter((i) => names.has(`u${i}`)).length;
    // Whom it lists that the benchmark does not count online, by their client's state.
    const states = new Map<string, number>();
    for (const name of names) {
      const i = Number(name.slice(1));
      if (!name.startsWith("u") || !(i >= 0) || views.state(i) === State.Online) continue;
      const state = Object.keys(State)[views.state(i)];
      states.set(state, (states.get(state) ?? 0) + 1);
    }
    console.error(
      `  coordinator ${k} lists ${names.size - 1}: ${held(wrong.extra)} of the not online, ` +
        `${held(wrong.missing)} of the missed; listed but not online here: ` +
        JSON.stringify(Object.fromEntries(states)),
    );
  }
}

/** A coordinator's whole list, fetched from 127.0.0.1 (no login is pending there). */
async function fetchList(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
}

/**
 * `pool.loginMany(indices)`, given up (with what did not finish printed: how many of the clients
 * are in which state, and the first few not online) if it has not finished `LOGINS_SLACK_MS`
 * after the time its rate needs. A client whose login never ends must not hang the benchmark.
 */
async function logins(
  what: string,
  views: Views,
  pool: ClientPool,
  indices: number[],
  options: { rate: number; inflight: number },
): Promise<LoginReport | undefined> {
  const ms = indices.length / options.rate * 1000 + LOGINS_SLACK_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) =>
    timer = setTimeout(() => resolve(undefined), ms)
  );
  const report = await Promise.race([pool.loginMany(indices, options), late]);
  clearTimeout(timer);
  if (report !== undefined) return report;
  const states = new Map<string, number>();
  const stuck: string[] = [];
  for (const i of indices) {
    const state = Object.keys(State)[views.state(i)];
    states.set(state, (states.get(state) ?? 0) + 1);
    if (views.state(i) !== State.Online && stuck.length < 10) stuck.push(`u${i}(${state})`);
  }
  console.error(
    `${what}: ${indices.length} logins not finished after ${(ms / 1000).toFixed(0)} s, given ` +
      `up: ${JSON.stringify(Object.fromEntries(states))}; not online: ${stuck.join(" ")}`,
  );
  return undefined;
}

async function runSetup(
  setup: "single" | "single+nats" | "three",
  o: {
    users: number;
    storm: number;
    rate: number;
    rampRate: number;
    churn: number;
    churnRate: number;
    probes: number;
  },
  nats: { url: string; token: string; child: Deno.ChildProcess },
): Promise<SetupResult> {
  const n = setup === "three" ? 3 : 1;
  const clustered = setup !== "single";
  // Clients 0..users+churn-1 in pools (each coordinator's share: ramp, storm, then newcomers of
  // the churn); then probes, then one watcher per coordinator.
  const joiners = Math.floor(o.users * o.churn / n);
  const total = o.users + n * joiners;
  const probeBase = total;
  const coordinators: CoordinatorProcess[] = [];
  for (let k = 0; k < n; k++) {
    coordinators.push(
      await CoordinatorProcess.start(
        clustered
          ? { cluster: nats.url, member: `c${k}`, token: nats.token, watchFrom: probeBase }
          : {},
      ),
    );
  }
  const watcherBase = total + o.probes;
  const views = Views.create(watcherBase + n);
  const endpoints: Uint8Array[] = [];
  const pools: ClientPool[] = [];
  for (let k = 0; k < n; k++) {
    const lo = Math.floor(k * total / n);
    const hi = Math.floor((k + 1) * total / n);
    const pool = new ClientPool(
      { views, lo, hi, seedShare: 0, udpPort: coordinators[k].udp },
      (i) => endpoints[i],
    );
    pool.endpoints().forEach((ep, j) => endpoints[lo + j] = encoder.encode(ep));
    pools.push(pool);
  }
  const lists = ListWorker.start(views, endpoints.map((e) => decoder.decode(e)));
  for (const pool of pools) pool.useLists(new PortLists(lists.channel()));
  /** Coordinator k's clients: its share of the users, then its newcomers of the churn. */
  const share = (k: number) => {
    const lo = Math.floor(k * total / n);
    const hi = Math.floor((k + 1) * total / n);
    return Array.from({ length: hi - lo }, (_, j) => lo + j);
  };
  const base = (k: number) => share(k).slice(0, share(k).length - joiners);
  const newcomers = (k: number) => share(k).slice(share(k).length - joiners);
  const result: Partial<SetupResult> = { setup, users: o.users };
  try {
    const start = gapMark(pools);
    // Ramp, then the storm.
    await Promise.all(pools.map((pool, k) => {
      const mine = base(k);
      return logins(
        `ramp on coordinator ${k}`,
        views,
        pool,
        mine.slice(0, mine.length - Math.floor(o.storm / n)),
        {
          rate: o.rampRate / n,
          inflight: 200,
        },
      );
    }));
    for (const pool of pools) pool.startHeartbeats(10_000);
    await converge(views, coordinators);
    // Gaps and drops are counted from here (the ramp's on their own): a client whose socket
    // overflowed in the ramp must not pass for a gap of the storm's with nothing lost.
    const stormStart = gapMark(pools);
    result.ramp = gapWindow(start, stormStart, start);
    const storm = await Promise.all(pools.map((pool, k) => {
      const mine = base(k);
      return logins(
        `storm on coordinator ${k}`,
        views,
        pool,
        mine.slice(mine.length - Math.floor(o.storm / n)),
        {
          rate: o.rate / n,
          inflight: 500,
        },
      );
    }));
    // A phase given up has no last join: its convergence is not timed (NaN).
    const lastJoin = Math.max(...storm.map((s) => s?.lastJoin ?? NaN));
    result.stormConvergeMs = (await converge(views, coordinators)) - lastJoin;
    // Churn: on each coordinator, `joiners` users leave and as many newcomers join, interleaved.
    const perPoolRate = o.churnRate / n;
    const leaving = pools.map((_, k) =>
      base(k).filter((_, j) => j % Math.max(1, Math.floor(1 / o.churn)) === 0).slice(0, joiners)
    );
    const churned = await Promise.all(pools.map(async (pool, k) => {
      const joins = logins(`churn on coordinator ${k}`, views, pool, newcomers(k), {
        rate: perPoolRate / 2,
        inflight: 200,
      });
      let last = now();
      for (const i of leaving[k]) {
        pool.logout(i);
        last = now();
        await sleep(2000 / perPoolRate);
      }
      return Math.max(last, (await joins)?.lastJoin ?? NaN);
    }));
    result.churnConvergeMs = (await converge(views, coordinators)) - Math.max(...churned);
    const stormAndChurn = gapWindow(stormStart, gapMark(pools), start);
    result.gaps = stormAndChurn.gaps;
    result.resyncs = stormAndChurn.resyncs;
    result.drops = stormAndChurn.drops;
    result.unexplainedGaps = stormAndChurn.unexplainedGaps;
    // Probes: watchers on every coordinator, probe logins on the first.
    const watchers = coordinators.map((c, k) => new RawClient(watcherBase + k, c.udp));
    for (const [k, w] of watchers.entries()) {
      views.setOnline(watcherBase + k, true);
      await w.login(watcherBase + k, coordinators[k].tcp).catch((err) =>
        console.error(`watcher on coordinator ${k}: ${err.message}; it may see nothing`)
      );
    }
    const beat = setInterval(() => watchers.forEach((w) => w.heartbeat()), 5000);
    const local: number[] = [];
    const remote: number[] = [];
    const hop: number[] = [];
    const probed: { name: string; seen: (number | undefined)[] }[] = [];
    for (let p = 0; p < o.probes; p++) {
      const index = probeBase + p;
      const probe = new RawClient(index, coordinators[0].udp);
      views.setOnline(index, true);
      const t0 = await probe.login(index, coordinators[0].tcp).catch((err) => {
        console.error(`probe ${probe.name}: ${err.message}; left out`);
        return undefined;
      });
      if (t0 === undefined) {
        probe.logout();
        views.setOnline(index, false);
        probe.close();
        continue;
      }
      const deadline = now() + 3000;
      while (watchers.some((w) => !w.seen.has(probe.name)) && now() < deadline) await sleep(2);
      const at = watchers.map((w) => w.seen.get(probe.name));
      probed.push({ name: probe.name, seen: at });
      if (at[0] !== undefined) local.push(at[0] - t0);
      for (const t of at.slice(1)) {
        if (t === undefined) continue;
        remote.push(t - t0);
        if (at[0] !== undefined) hop.push(t - at[0]);
      }
      probe.logout();
      views.setOnline(index, false);
      probe.close();
      await sleep(50);
    }
    clearInterval(beat);
    await sleep(200); // the coordinators' last hop lines
    // The hop as the coordinators time it (the publish's `at` read against the receiver's clock:
    // one machine here), for every probe at every other coordinator.
    const stages = { published: [] as number[], applied: [] as number[], sent: [] as number[] };
    const read: number[] = [];
    for (const { name, seen } of probed) {
      const published = coordinators[0].hops.get(`published ${name}`);
      if (published) stages.published.push(published.ms);
      for (const [k, c] of coordinators.entries()) {
        if (k === 0) continue;
        const applied = c.hops.get(`applied ${name}`);
        const sent = c.hops.get(`sent ${name}`);
        if (applied) stages.applied.push(applied.ms);
        if (sent) stages.sent.push(sent.ms);
        if (sent && seen[k] !== undefined) read.push(seen[k]! - sent.at);
      }
    }
    if (n > 1) {
      result.coordinatorHop = Object.fromEntries(
        Object.entries({ ...stages, read }).map((
          [stage, xs],
        ) => [stage, [pct(xs, 50), pct(xs, 99)]]),
      ) as SetupResult["coordinatorHop"];
    }
    Object.assign(result, {
      localP50: pct(local, 50),
      localP99: pct(local, 99),
      ...(n > 1
        ? {
          remoteP50: pct(remote, 50),
          remoteP99: pct(remote, 99),
          hopP50: pct(hop, 50),
          hopP99: pct(hop, 99),
        }
        : {}),
    });
    const mem = coordinators.map((c) => c.memory());
    const natsMem = clustered ? memoryOf(nats.child.pid) : undefined;
    result.rss = mem.map((m) => `${Math.round(m.rss)}/${Math.round(m.peak)}`).join(", ") +
      (natsMem ? `; nats ${Math.round(natsMem.rss)}/${Math.round(natsMem.peak)}` : "");
    if (n === 3) {
      // Restart the third: how soon its list holds everyone of the other two.
      // Everyone online but the third coordinator's users and its watcher.
      const third = share(2).filter((i) => views.state(i) === State.Online);
      const others = views.online - third.length - 1;
      for (const i of third) {
        views.setState(i, State.Out);
        views.setOnline(i, false);
      }
      const stopAt = now();
      await coordinators[2].stop();
      const exitedAt = now();
      const restarted = await CoordinatorProcess.start({
        cluster: nats.url,
        member: "c2",
        token: nats.token,
        watchFrom: probeBase,
      });
      coordinators[2] = restarted;
      // Every fetch: when it started and ended, and the entries it got.
      const fetches: { start: number; end: number; count: number }[] = [];
      let complete = 0;
      const restartDeadline = now() + 10_000;
      for (let attempt = 0; complete === 0 && now() < restartDeadline; attempt++) {
        const start = now();
        const count = await listCount(restarted.tcp, addressOf(watcherBase + 10 + (attempt % 200)));
        fetches.push({ start, end: now(), count });
        if (count >= others) complete = now();
        else await sleep(5);
      }
      result.restartMs = complete === 0 ? NaN : complete - restarted.readyAt;
      // The same, timed by the restarted coordinator: from listening to the other two members'
      // snapshots applied (the list is complete then; the fetch above adds the generator's turn).
      const snapshotOf = (m: string) => restarted.snapshots.find((s) => s.member === m);
      // Its lines come through a pipe that a busy generator reads late: wait for them (2 s).
      for (let i = 0; i < 200 && !(snapshotOf("c0") && snapshotOf("c1")); i++) await sleep(10);
      const synced = ["c0", "c1"].map(snapshotOf);
      result.restartSyncedMs = synced.every((s) => s !== undefined)
        ? Math.max(...synced.map((s) => s!.at)) - restarted.listeningAt
        : NaN;
      const rel = (t: number) => `${(t - restarted.listeningAt).toFixed(0)} ms`;
      const firstFull = fetches.find((f) => f.count >= others);
      const firstSome = fetches.find((f) => f.count > 0);
      console.error(
        `restart timeline (from the new process listening, its clock): old stopped in ` +
          `${(exitedAt - stopAt).toFixed(0)} ms, new listening ` +
          `${(restarted.listeningAt - exitedAt).toFixed(0)} ms after; we read that at ` +
          `${rel(restarted.readyAt)}; snapshots applied: ` +
          (restarted.snapshots.map((s) => `${s.member} ${s.users} users at ${rel(s.at)}`).join(
            ", ",
          ) || "none") +
          `; ${fetches.length} list fetches, the first non-empty ` +
          (firstSome ? `from ${rel(firstSome.start)} to ${rel(firstSome.end)}` : "never") +
          ` (${firstSome?.count ?? 0} of ${others}), the first complete ` +
          (firstFull ? `from ${rel(firstFull.start)} to ${rel(firstFull.end)}` : "never") +
          `, the last ${fetches.at(-1)?.count ?? 0} of ${others}; longest fetch ${
            Math.max(...fetches.map((f) => f.end - f.start)).toFixed(0)
          } ms`,
      );
    }
    watchers.forEach((w) => w.close());
  } finally {
    for (const pool of pools) await pool.close();
    lists.close();
    for (const c of coordinators) await c.stop();
  }
  return result as SetupResult;
}

// ---------------------------------------------------------------------------------------------

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      port: { type: "string", default: "0" },
      cluster: { type: "string" },
      member: { type: "string" },
      token: { type: "string" },
      "watch-from": { type: "string" },
      users: { type: "string", default: "10000" },
      storm: { type: "string", default: "2000" },
      rate: { type: "string", default: "2500" },
      "ramp-rate": { type: "string", default: "500" },
      churn: { type: "string", default: "0.05" },
      "churn-rate": { type: "string", default: "500" },
      probes: { type: "string", default: "200" },
      setups: { type: "string", default: "single,single+nats,three" },
    },
  });
  if (values.role === "coordinator") {
    await coordinatorRole({
      port: Number(values.port),
      cluster: values.cluster,
      member: values.member,
      token: values.token,
      watchFrom: values["watch-from"] === undefined ? undefined : Number(values["watch-from"]),
    });
  } else {
    const o = {
      users: Number(values.users),
      storm: Number(values.storm),
      rate: Number(values.rate),
      rampRate: Number(values["ramp-rate"]),
      churn: Number(values.churn),
      churnRate: Number(values["churn-rate"]),
      probes: Number(values.probes),
    };
    const nats = await startNats();
    const results: SetupResult[] = [];
    try {
      for (const setup of values.setups.split(",")) {
        console.error(`${new Date().toISOString()} ${setup}: ${o.users} users…`);
        results.push(await runSetup(setup as "single" | "single+nats" | "three", o, nats));
        console.error(JSON.stringify(results.at(-1)));
      }
    } finally {
      nats.child.kill("SIGTERM");
      await nats.child.status;
    }
    const f = (x: number | undefined) => x === undefined || Number.isNaN(x) ? "—" : x.toFixed(0);
    console.log(
      "| setup | users | storm converged (ms after last join) | churn converged (ms) | " +
        "join seen, same coordinator p50/p99 (ms) | join seen, other coordinators p50/p99 (ms) | " +
        "hop (other − same) p50/p99 (ms) | restart → complete list (ms) | gaps/resyncs | " +
        "dropped, clients/coordinators | RSS now/peak (MiB) |",
    );
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const r of results) {
      console.log(
        `| ${r.setup} | ${r.users} | ${f(r.stormConvergeMs)} | ${f(r.churnConvergeMs)} | ` +
          `${f(r.localP50)}/${f(r.localP99)} | ${f(r.remoteP50)}/${f(r.remoteP99)} | ` +
          `${f(r.hopP50)}/${f(r.hopP99)} | ${f(r.restartMs)} | ${r.gaps}/${r.resyncs} | ` +
          `${r.drops ? `${r.drops.clients}/${r.drops.coordinators}` : "—"} | ${r.rss} |`,
      );
    }
    // Gaps are loss unless a client gapped with nothing dropped at its socket: say which.
    for (const r of results) {
      if (r.ramp === undefined) continue;
      console.log(
        `gaps, ${r.setup}: storm and churn ${r.gaps}/${r.resyncs} (gaps/resyncs), clients' ` +
          `sockets dropped ${r.drops!.clients}; ramp ${r.ramp.gaps}/${r.ramp.resyncs}, ` +
          `dropped ${r.ramp.drops.clients} of ${r.ramp.datagrams} presence datagrams ` +
          `received (${r.ramp.lines} lines); clients with a gap though their socket dropped ` +
          `nothing (the coordinator's fault): ${r.unexplainedGaps} in storm and churn, ` +
          `${r.ramp.unexplainedGaps} in the ramp`,
      );
    }
    // The coordinator-to-coordinator hop, as the coordinators time it, beside the watchers' one.
    const g = (x: number) => Number.isNaN(x) ? "—" : x.toFixed(1);
    const clustered = results.filter((r) => r.coordinatorHop !== undefined);
    if (clustered.length > 0) {
      console.log(
        "\n| setup | users | admit → publish (origin) p50/p99 (ms) | publish → applied (other " +
          "member) p50/p99 (ms) | publish → sent to its clients p50/p99 (ms) | sent → watcher " +
          "read p50/p99 (ms) |",
      );
      console.log("| --- | --- | --- | --- | --- | --- |");
      for (const r of clustered) {
        const h = r.coordinatorHop!;
        console.log(
          `| ${r.setup} | ${r.users} | ${h.published.map(g).join("/")} | ` +
            `${h.applied.map(g).join("/")} | ${h.sent.map(g).join("/")} | ` +
            `${h.read.map(g).join("/")} |`,
        );
      }
    }
    const three = results.find((r) => r.setup === "three");
    if (three?.coordinatorHop !== undefined) {
      // The goal is the hop between coordinators (docs/LOAD.md); what clients see besides adds
      // their own coordinator's batching, which a change made there waits for as well.
      const applied = three.coordinatorHop.applied[1];
      console.log(
        `goal: p99 of the coordinator-to-coordinator hop ≤ 50 ms, publish → applied at the ` +
          `other member (coordinators' clocks): ${f(applied)} ms, ${
            applied <= 50 ? "met" : "not met"
          }`,
      );
      console.log(
        `beside it, what clients see: publish → sent to the other member's clients p99 ${
          f(three.coordinatorHop.sent[1])
        } ms (that member's batching included); a join seen p99 ${f(three.localP99)} ms on the ` +
          `same coordinator, ${f(three.remoteP99)} ms on the others; other − same per probe ` +
          `p50/p99 ${f(three.hopP50)}/${f(three.hopP99)} ms (two flush cycles' phases)`,
      );
    }
    if (three?.restartMs !== undefined) {
      console.log(
        `goal: restart → complete list ≤ 500 ms: ${f(three.restartMs)} ms (the list fetched by ` +
          `the generator), ${three.restartMs <= 500 ? "met" : "not met"}; listening → the ` +
          `other members' snapshots applied (the restarted coordinator's clock): ` +
          `${f(three.restartSyncedMs)} ms`,
      );
    }
    console.log(`load average at the end: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  }
}
