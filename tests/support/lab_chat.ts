/**
 * The messenger in the NAT lab: builds a lab with two peers behind a given pair of NATs, runs
 * `p2p serve` on a public host and `p2p chat --json` on each peer's host (real processes in real
 * network namespaces), and reads their events and the lab's packet counters. Shared by
 * `tests/nat_matrix_test.ts`, `tests/nat_keepalive_test.ts` and `scripts/bench_nat.ts`.
 *
 * @example
 * ```ts
 * await withPair("home/home", async (s) => {
 *   const chat = await startChat(s);
 *   const r = await exchange(chat.alice, chat.bob, "hello");
 *   console.log(r.path, await readRelayCounters(s)); // "direct" { relay: 0, relayed: 0 }
 * });
 * ```
 * @module
 */
import { type Host, Lab, type LabNode, type PublicHost, type Router } from "../lab/netlab.ts";
import { pumpLines } from "./lines.ts";
import { Collector, sleep } from "./wait.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
/** The coordinator's port in every scenario. */
export const SERVER_PORT = 7000;

/** The NAT pairs of the acceptance matrix: peer A's side, then peer B's. */
export type PairName =
  | "home/home"
  | "home/open"
  | "open/open"
  | "home/symmetric"
  | "symmetric/symmetric"
  | "mapped-symmetric/symmetric"
  | "double/home"
  | "same-router";

/** A pair of NATs and the path the messenger is expected to find between them. */
export interface PairSpec {
  name: PairName;
  /** What each side sits behind, for tables. */
  description: string;
  /** The path both peers should end up with (lib/traversal.ts, "Which NAT pairs…"). */
  expected: "direct" | "relay";
  /** For a direct path, which address of the other peer it goes to. */
  via?: "public" | "lan";
  /**
   * Direct only through a birthday search (lib/traversal.ts): it succeeds with a documented
   * probability (98.3 %) and may spend a few seconds on the relay first.
   */
  birthday?: boolean;
  /** A's router runs miniupnpd (tests/lab/netlab.ts `startMiniupnpd`): A's chat maps its port. */
  mapped?: boolean;
}

/**
 * How long to wait after both chats are online before the first message of a pair that needs a
 * birthday search. Each client reports its NAT kind to the coordinator just after logging in, and
 * an introduction made before the report arrived tells the other side no NAT kind, so that side
 * starts no search and the pair stays on the relay until the next introduction (90 s): a race
 * in the messenger, measured in the lab when a message went out within a few ms of the peer's
 * login. A person never types that fast; a test does.
 */
export const NAT_REPORT_SETTLE_MS = 1000;

/** Every pair, in the order of docs/NAT.md. */
export const PAIRS: readonly PairSpec[] = [
  { name: "home/home", description: "home ↔ home", expected: "direct", via: "public" },
  { name: "home/open", description: "home ↔ open", expected: "direct", via: "public" },
  { name: "open/open", description: "open ↔ open", expected: "direct", via: "public" },
  {
    name: "home/symmetric",
    description: "home ↔ symmetric",
    expected: "direct",
    via: "public",
    birthday: true,
  },
  { name: "symmetric/symmetric", description: "symmetric ↔ symmetric", expected: "relay" },
  {
    name: "mapped-symmetric/symmetric",
    description: "symmetric with port mapping ↔ symmetric",
    expected: "direct",
    via: "public",
    mapped: true,
  },
  {
    name: "double/home",
    description: "home behind cgnat ↔ home",
    expected: "direct",
    via: "public",
  },
  {
    name: "same-router",
    description: "both behind one home router",
    expected: "direct",
    via: "lan",
  },
];

/**
 * The spec of a pair by name.
 *
 * @example
 * ```ts
 * pairSpec("symmetric/symmetric").expected; // "relay"
 * ```
 */
export function pairSpec(name: PairName): PairSpec {
  const spec = PAIRS.find((p) => p.name === name);
  if (spec === undefined) throw new Error(`Unknown NAT pair '${name}'`);
  return spec;
}

/** A built lab with a coordinator host and two peer hosts. */
export interface PairScenario {
  spec: PairSpec;
  lab: Lab;
  /** The public host the coordinator runs on. */
  srv: PublicHost;
  /** Peer A's host (user `alice`) and peer B's (user `bob`). */
  a: Host;
  b: Host;
  /** Every NAT router of the scenario (A's side first). */
  routers: Router[];
  /**
   * `XDG_CONFIG_HOME` of both chats (their keys and pinned peers); `XDG_DATA_HOME` (history) and
   * `XDG_STATE_HOME` (the coordinator's database) are its `data` and `state` folders.
   */
  configHome: string;
  /** Processes started through {@linkcode startChat}; disposed by {@linkcode withPair}. */
  processes: LabProcess[];
}

/**
 * Builds the lab of a pair: a public `srv`, then A's and B's routers and hosts.
 *
 * @example
 * ```ts
 * const lab = await Lab.create();
 * const s = await buildPair(lab, "double/home"); // s.a behind rc behind cg, s.b behind rb
 * ```
 */
export async function buildPair(lab: Lab, name: PairName): Promise<PairScenario> {
  const spec = pairSpec(name);
  const srv = await lab.addPublicHost("srv");
  let a: Host, b: Host;
  const routers: Router[] = [];
  const router = async (
    rname: string,
    kind: Router["kind"],
    upstream?: Router,
  ): Promise<Router> => {
    const r = await lab.addRouter(rname, {
      kind,
      upstream,
      lanSubnet: upstream ? "192.168.1.0/24" : undefined,
    });
    routers.push(r);
    return r;
  };
  if (name === "same-router") {
    const ra = await router("ra", "home");
    a = await lab.addHost("a", ra);
    b = await lab.addHost("b", ra);
  } else if (name === "double/home") {
    const cg = await router("cg", "cgnat");
    const rc = await router("rc", "home", cg);
    const rb = await router("rb", "home");
    a = await lab.addHost("a", rc);
    b = await lab.addHost("b", rb);
  } else {
    const [ka, kb] = name.replace("mapped-", "").split("/") as Router["kind"][];
    const ra = await router("ra", ka);
    const rb = await router("rb", kb);
    a = await lab.addHost("a", ra);
    b = await lab.addHost("b", rb);
    // Before any chat starts: the chat asks its router once it has logged in.
    if (spec.mapped) await lab.startMiniupnpd(ra, { stunHost: srv });
  }
  const configHome = await Deno.makeTempDir({ prefix: "p2p-lab-keys-" });
  return { spec, lab, srv, a, b, routers, configHome, processes: [] };
}

/**
 * Creates a lab, builds a pair in it, runs `fn`, and always disposes of every process,
 * namespace and temporary directory afterwards.
 *
 * @example
 * ```ts
 * await withPair("open/open", async (s) => console.log(s.a.publicIp, s.b.publicIp));
 * ```
 */
export async function withPair<T>(
  name: PairName,
  fn: (s: PairScenario) => Promise<T>,
): Promise<T> {
  await ensureCached();
  // Lab.create()'s default prefix counts labs per module instance, and `deno test --parallel`
  // runs test files in workers of one process: two files would both make `p2pl<pid>x1-`. A random
  // lab number in the same family keeps the stale-namespace cleanup working.
  const n = 100_000 + crypto.getRandomValues(new Uint32Array(1))[0] % 900_000_000;
  const lab = await Lab.create({ prefix: `p2pl${Deno.pid}x${n}-` });
  let scenario: PairScenario | undefined;
  try {
    scenario = await buildPair(lab, name);
    return await fn(scenario);
  } finally {
    for (const p of scenario?.processes ?? []) await p.dispose();
    await lab.teardown();
    if (scenario) await Deno.remove(scenario.configHome, { recursive: true });
  }
}

let cached: Promise<void> | undefined;

/**
 * Makes sure main.ts and its npm packages are in Deno's cache: processes in the lab have no
 * internet to fetch them. Runs once per process; cheap when already cached.
 */
export function ensureCached(): Promise<void> {
  cached ??= (async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["cache", MAIN],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
      env: { DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    if (!out.success) {
      throw new Error(
        `Cannot cache main.ts for the lab's processes: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
  })();
  return cached;
}

/** A JSON event of `p2p chat --json`, with when the test saw it (`performance.now()`). */
export type ChatEvent = Record<string, unknown> & { event: string; at: number };

/** A `p2p` process in a lab node, its output collected line by line. */
export class LabProcess {
  /** What it printed on stdout (with `--json`, one event per line). */
  readonly stdout = new Collector<string>();
  readonly stderr = new Collector<string>();
  /** Parsed JSON events, in order. */
  readonly events = new Collector<ChatEvent>();
  readonly child: Deno.ChildProcess;
  readonly name: string;
  /** When it was started (`performance.now()`, as the `at` of its events). */
  readonly startedAt = performance.now();
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #done: Promise<unknown>;
  #status: Deno.CommandStatus | undefined;

  /**
   * Starts `p2p ARGS` in `node` (through `lab.spawn`, so teardown kills it).
   *
   * @example
   * ```ts
   * const serve = new LabProcess(lab, srv, "serve", ["serve", "--port", "7000"], {});
   * ```
   */
  constructor(
    lab: Lab,
    node: LabNode,
    name: string,
    args: string[],
    env: Record<string, string>,
  ) {
    this.name = name;
    this.child = lab.spawn(node, [Deno.execPath(), "run", "-A", MAIN, ...args], {
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    });
    this.#stdin = this.child.stdin.getWriter();
    this.#done = Promise.all([
      pumpLines(this.child.stdout, (line) => {
        this.stdout.push(line);
        if (line.startsWith("{")) {
          this.events.push({ ...JSON.parse(line), at: performance.now() });
        }
      }),
      pumpLines(this.child.stderr, this.stderr.push),
      this.child.status.then((s) => this.#status = s),
    ]);
  }

  /** Waits for an event matching `pred` (searching from the first one). */
  event(pred: (e: ChatEvent) => boolean, timeoutMs = 10_000, what = "event"): Promise<ChatEvent> {
    return this.events.waitFor(pred, timeoutMs, `${this.name}: ${what}`);
  }

  /** Writes lines to stdin in one go. */
  async write(...lines: string[]): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(lines.map((l) => l + "\n").join("")));
  }

  /** Closes stdin: a chat then delivers what is in flight, logs out and exits. */
  async closeStdin(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for the process to exit (SIGKILL after `timeoutMs`). */
  async wait(timeoutMs = 30_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    await this.#done;
    clearTimeout(timer);
    return this.#status!;
  }

  /** Sends a signal, if it still runs. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status !== undefined) return;
    try {
      this.child.kill(signal);
    } catch {
      // Exited meanwhile.
    }
  }

  /** Kills it if it still runs and waits for its output to end; safe to call twice. */
  async dispose(): Promise<void> {
    await this.closeStdin();
    this.kill("SIGKILL");
    await this.#done;
  }
}

/** A coordinator and two logged-in chats that see each other. */
export interface RunningChat {
  server: LabProcess;
  alice: LabProcess;
  bob: LabProcess;
}

/** Options of {@linkcode startChat}. */
export interface StartChatOptions {
  /** `--keepalive` of both chats, seconds; default 2. */
  keepalive?: number;
  /** Time allowed to start the processes and log in, ms; default 60 000. */
  timeoutMs?: number;
  /** More options for `p2p serve` (e.g. `--turn`). */
  serveArgs?: string[];
}

/**
 * Starts `p2p serve --host 0.0.0.0 --port 7000` on `srv` and `p2p chat alice@srv:7000 --json`
 * on A and `bob@…` on B, and waits until each chat sees the other online.
 *
 * @example
 * ```ts
 * const { alice, bob } = await startChat(s, { keepalive: 2 });
 * ```
 */
export async function startChat(
  s: PairScenario,
  options: StartChatOptions = {},
): Promise<RunningChat> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const env = {
    XDG_CONFIG_HOME: s.configHome,
    XDG_DATA_HOME: `${s.configHome}/data`,
    XDG_STATE_HOME: `${s.configHome}/state`,
  };
  const server = new LabProcess(s.lab, s.srv, "serve", [
    "serve",
    "--host",
    "0.0.0.0",
    "--port",
    String(SERVER_PORT),
    ...options.serveArgs ?? [],
  ], env);
  s.processes.push(server);
  await server.stderr.waitFor(
    (l) => l.includes(` UDP ${SERVER_PORT}`),
    timeoutMs,
    "coordinator listening",
  );
  const chat = (user: string, node: Host): LabProcess => {
    const p = new LabProcess(s.lab, node, user, [
      "chat",
      `${user}@${s.srv.ip}:${SERVER_PORT}`,
      "--json",
      "--keepalive",
      String(options.keepalive ?? 2),
    ], env);
    s.processes.push(p);
    return p;
  };
  // One after the other: a client whose TCP list fetch races another's login broadcast can
  // drop that user from its list and never see it online (lib/presence.ts `login()`; about 1
  // run in 30 when both start at once, measured in the lab).
  const alice = chat("alice", s.a);
  await alice.event((e) => e.event === "ready", timeoutMs, "ready");
  const bob = chat("bob", s.b);
  await Promise.all([
    alice.event((e) => e.event === "online" && e.user === "bob", timeoutMs, "bob online"),
    bob.event((e) => e.event === "online" && e.user === "alice", timeoutMs, "alice online"),
  ]);
  return { server, alice, bob };
}

/** The outcome of one message. */
export interface Exchange {
  /** Path the receiver reported it came by. */
  path: string;
  /** The receiver's `message` event. */
  message: ChatEvent;
  /** The sender's `delivered` event (its `at` says when). */
  delivered: ChatEvent;
}

/**
 * Sends `text` from one chat to the other (user names `alice`/`bob`) and waits until the
 * receiver shows it and the sender reports it delivered. Throws on `undelivered` or timeout.
 * `text` must be unique among the messages of the test.
 *
 * @example
 * ```ts
 * const { path } = await exchange(chat.bob, chat.alice, "hi alice");
 * ```
 */
export async function exchange(
  from: LabProcess,
  to: LabProcess,
  text: string,
  timeoutMs = 30_000,
): Promise<Exchange> {
  await from.write(`/msg ${to.name} ${text}`);
  const sent = await from.event(
    (e) => e.event === "sent" && e.text === text,
    timeoutMs,
    `sent "${text}"`,
  );
  const settled = await from.event(
    (e) => (e.event === "delivered" || e.event === "undelivered") && e.id === sent.id,
    timeoutMs,
    `delivery of "${text}"`,
  );
  if (settled.event !== "delivered") {
    throw new Error(`${from.name}: "${text}" was not delivered: ${JSON.stringify(settled)}`);
  }
  const msg = await to.event(
    (e) => e.event === "message" && e.text === text && e.from === from.name,
    timeoutMs,
    `message "${text}"`,
  );
  return { path: String(msg.path), message: msg, delivered: settled };
}

/** The last `path` event a chat reported for `user`, if any. */
export function lastPath(chat: LabProcess, user: string): ChatEvent | undefined {
  return chat.events.items.findLast((e) => e.event === "path" && e.user === user);
}

/**
 * Waits until the last `path` event of `chat` for `user` says `path`.
 *
 * @example
 * ```ts
 * await waitForPath(chat.alice, "bob", "direct", 30_000);
 * ```
 */
export async function waitForPath(
  chat: LabProcess,
  user: string,
  path: "direct" | "turn" | "relay",
  timeoutMs: number,
): Promise<ChatEvent> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const last = lastPath(chat, user);
    if (last?.path === path) return last;
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new Error(
        `${chat.name}: path to ${user} is ${last?.path ?? "unset"}, not ${path}, after ` +
          `${timeoutMs} ms; events: ${JSON.stringify(chat.events.items.slice(-20))}`,
      );
    }
    await sleep(Math.min(left, 100));
  }
}

/**
 * nft expressions matching the relay frames on the coordinator's host: RELAY (type 0x18, client
 * to coordinator) and RELAYED (0x19, coordinator to client). `@th,64,8` is the first byte after
 * the 8-byte UDP header, i.e. the frame type.
 */
export const RELAY_MATCH = `udp dport ${SERVER_PORT} @th,64,8 0x18`;
export const RELAYED_MATCH = `udp sport ${SERVER_PORT} @th,64,8 0x19`;

/**
 * Adds the counters read by {@linkcode readRelayCounters} on the coordinator's host.
 *
 * @example
 * ```ts
 * await addRelayCounters(s);
 * ```
 */
export async function addRelayCounters(s: PairScenario): Promise<void> {
  await s.lab.addCounter(s.srv, "relay", RELAY_MATCH);
  await s.lab.addCounter(s.srv, "relayed", RELAYED_MATCH);
}

/** Relay packets counted on the coordinator's host so far. */
export interface RelayCounts {
  /** RELAY frames that arrived from the clients. */
  relay: number;
  /** RELAYED frames the coordinator sent. */
  relayed: number;
}

/**
 * Reads the relay counters.
 *
 * @example
 * ```ts
 * const { relay, relayed } = await readRelayCounters(s);
 * ```
 */
export async function readRelayCounters(s: PairScenario): Promise<RelayCounts> {
  const [relay, relayed] = await Promise.all([
    s.lab.readCounter(s.srv, "relay"),
    s.lab.readCounter(s.srv, "relayed"),
  ]);
  return { relay: relay.packets, relayed: relayed.packets };
}

/**
 * The address a direct path to `other` goes to: its LAN address for peers behind one router,
 * its public address otherwise.
 *
 * @example
 * ```ts
 * expectedDirectHost(s, s.b); // "203.0.113.6" for home/home
 * ```
 */
export function expectedDirectHost(s: PairScenario, other: Host): string {
  return s.spec.via === "lan" ? other.ip : other.publicIp;
}

/**
 * Adds a counter `direct_data` on each peer's host: encrypted chat frames (DATA, type 0x15)
 * arriving straight from the other peer's {@linkcode expectedDirectHost}, not via the coordinator.
 *
 * @example
 * ```ts
 * await addDirectDataCounters(s);
 * (await readDirectDataCounters(s)).toB; // DATA packets b got directly from a
 * ```
 */
export async function addDirectDataCounters(s: PairScenario): Promise<void> {
  const match = (from: Host) =>
    `ip saddr ${expectedDirectHost(s, from)} udp sport 1-65535 ` +
    `@th,64,8 0x15`;
  await s.lab.addCounter(s.a, "direct_data", match(s.b));
  await s.lab.addCounter(s.b, "direct_data", match(s.a));
}

/** DATA packets each peer received straight from the other. */
export interface DirectDataCounts {
  toA: number;
  toB: number;
}

/**
 * Reads the counters of {@linkcode addDirectDataCounters}.
 *
 * @example
 * ```ts
 * const { toA, toB } = await readDirectDataCounters(s);
 * ```
 */
export async function readDirectDataCounters(s: PairScenario): Promise<DirectDataCounts> {
  const [toA, toB] = await Promise.all([
    s.lab.readCounter(s.a, "direct_data"),
    s.lab.readCounter(s.b, "direct_data"),
  ]);
  return { toA: toA.packets, toB: toB.packets };
}

/** Whether tests may run the lab here, and how to report when they may not. */
export interface LabGate {
  /** Pass as `Deno.test`'s `ignore`: the lab can't run and `P2P_LAB=require` is not set. */
  ignore: boolean;
  /** Call first in a test: throws when the lab is required but can't run. */
  requireLab: () => void;
}

/**
 * Checks {@linkcode Lab.available} once, prints why lab tests are skipped (as
 * tests/netlab_test.ts does), and returns what a test file needs.
 *
 * @example
 * ```ts
 * const { ignore, requireLab } = await labGate("NAT traversal");
 * Deno.test({ name: "nat: …", ignore }, async () => { requireLab(); });
 * ```
 */
export async function labGate(what: string): Promise<LabGate> {
  let reason = await Lab.available();
  // Lab.available() probes with a namespace named after the pid, which test files running in
  // parallel workers of one `deno test --parallel` process share: a clash is not a verdict.
  for (let i = 0; i < 20 && reason?.includes("File exists"); i++) {
    await sleep(50 + Math.random() * 250);
    reason = await Lab.available();
  }
  const ignore = reason !== null && Deno.env.get("P2P_LAB") !== "require";
  if (ignore) {
    console.warn(`${what} tests skipped: ${reason} (set P2P_LAB=require to fail instead)`);
  }
  return {
    ignore,
    requireLab: () => {
      if (reason !== null) throw new Error(`NAT lab required (P2P_LAB=require) but ${reason}`);
    },
  };
}

/**
 * A `tcpdump` running in a lab node, writing every packet on every interface of that node to a
 * pcap file. `--immediate-mode -U` hands each packet to the file as it comes: otherwise libpcap
 * holds packets in its ring buffer for up to a second, and those still there when tcpdump is
 * stopped are lost (a whole short chat was, measured).
 *
 * @example
 * ```ts
 * const cap = await Capture.start(s.lab, s.lab.core, dir);
 * // ... traffic ...
 * const pcap = await cap.stop(); // the raw pcap file
 * ```
 */
export class Capture {
  readonly #child: Deno.ChildProcess;
  readonly #file: string;
  readonly #stderr: Collector<string>;
  readonly #done: Promise<unknown>;

  private constructor(child: Deno.ChildProcess, file: string) {
    this.#child = child;
    this.#file = file;
    this.#stderr = new Collector<string>();
    this.#done = pumpLines(child.stderr, this.#stderr.push);
  }

  /**
   * Starts capturing in `node` into `<dir>/<node name>.pcap`; resolves once tcpdump listens.
   * tcpdump keeps root (`-Z root`): it would otherwise drop to a user that cannot write `dir`.
   */
  static async start(lab: Lab, node: LabNode, dir: string): Promise<Capture> {
    const file = `${dir}/${node.name}.pcap`;
    const args = ["-i", "any", "-n", "--immediate-mode", "-U", "-Z", "root", "-w", file];
    const child = lab.spawn(node, ["tcpdump", ...args], {
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    });
    const cap = new Capture(child, file);
    try {
      await cap.#stderr.waitFor((l) => l.includes("listening on"), 15_000, "tcpdump listening");
    } catch (err) {
      await cap.stop().catch(() => {});
      throw err;
    }
    return cap;
  }

  /** Stops tcpdump and returns the pcap file's bytes. */
  async stop(): Promise<Uint8Array> {
    try {
      this.#child.kill("SIGINT");
    } catch {
      // Already exited.
    }
    const status = await this.#child.status;
    await this.#done;
    if (!status.success && status.signal !== "SIGINT") {
      throw new Error(`tcpdump failed (${status.code}): ${this.#stderr.items.join("\n")}`);
    }
    return await Deno.readFile(this.#file);
  }
}

/**
 * Whether `needle` occurs in `haystack`, byte for byte.
 *
 * @example
 * ```ts
 * containsBytes(new Uint8Array([1, 2, 3]), new Uint8Array([2, 3])); // true
 * ```
 */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  const first = needle[0];
  for (let i = haystack.indexOf(first); i !== -1; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return false;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}

/**
 * The first bytes of a peer frame of `type` with `name` in its header (type, name length, name):
 * what a DATA frame from `alice` (0x15) or a RELAY frame to `bob` (0x18) starts with.
 *
 * @example
 * ```ts
 * frameHeaderBytes(0x15, "alice"); // [0x15, 5, ...alice]
 * ```
 */
export function frameHeaderBytes(type: number, name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  return new Uint8Array([type, n.length, ...n]);
}

/**
 * Why a tool is not usable here (missing from PATH, or fails), or null.
 *
 * @example
 * ```ts
 * await toolProblem("tcpdump", ["--version"]); // null when installed
 * ```
 */
export async function toolProblem(tool: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(tool, { args, stdout: "null", stderr: "null" }).output();
    return out.success ? null : `'${tool}' fails to run`;
  } catch {
    return `'${tool}' is not installed (apt-get install -y ${tool})`;
  }
}
