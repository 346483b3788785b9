/**
 * A NAT lab: real Linux NAT routers, hosts and a core "internet" router, each in its own network
 * namespace, wired with veth pairs and configured with `ip`, `sysctl` and `nft`. Tests of the
 * messenger use it to run peers behind NATs of several kinds and check that they punch through.
 *
 * Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), `ip` (iproute2), `nft` (nftables) and `conntrack`
 * (conntrack-tools). Call {@linkcode Lab.available} first to skip cleanly where the lab can't run.
 * See docs/LAB.md for the topology, addresses and the exact nft rulesets.
 *
 * @example
 * ```ts
 * const lab = await Lab.create();
 * try {
 *   const srv = await lab.addPublicHost("srv");
 *   const ra = await lab.addRouter("ra", { kind: "home" });
 *   const a = await lab.addHost("a", ra);
 *   const r = await lab.exec(a, ["ping", "-c1", "-W1", srv.ip]);
 *   console.log(r.code, ra.publicIp);
 * } finally {
 *   await lab.teardown();
 * }
 * ```
 * @module
 */

/**
 * How a router translates and filters.
 * - `home`: port-preserving masquerade + stateful firewall (no unsolicited WAN input or WAN->LAN).
 * - `open`: the same masquerade, no filtering at all.
 * - `symmetric`: `masquerade random,fully-random` (a new public port per destination) + home filter.
 * - `cgnat`: carrier NAT, like `home` but its LAN is 100.64.0.0/10 and holds other routers' WANs.
 */
export type RouterKind = "home" | "open" | "symmetric" | "cgnat";

/** Anything living in one of the lab's network namespaces. */
export interface LabNode {
  /** The name given at creation, e.g. `"ra"`. */
  readonly name: string;
  /** The network namespace, e.g. `"p2pl1234x1-ra"` (use with `ip netns exec`). */
  readonly netns: string;
}

/** The core router in the middle of the internet: plain forwarding, no NAT, no filter. */
export interface CoreRouter extends LabNode {
  readonly role: "core";
}

/** A host with a public address, on its own link to the core. */
export interface PublicHost extends LabNode {
  readonly role: "public";
  /** Its public address, e.g. `"198.51.100.2"`. */
  readonly ip: string;
  /** The core's address on its link (its default route). */
  readonly gateway: string;
  /** Its IPv6 address, e.g. `"2001:db8:ff00:0::2"`, when added with `ipv6` (docs/LAB.md). */
  readonly ip6?: string;
}

/** A NAT router. Its WAN is on the core, or on the LAN of its `upstream` router. */
export interface Router extends LabNode {
  readonly role: "router";
  readonly kind: RouterKind;
  /** Address of its WAN interface (a core link address, or an address in the upstream's LAN). */
  readonly wanIp: string;
  /** Next hop of its default route (the core, or the upstream router's LAN address). */
  readonly wanGateway: string;
  /** Its address on its LAN, the default gateway of the hosts behind it, e.g. `"10.1.0.1"`. */
  readonly lanIp: string;
  /** Its LAN, e.g. `"10.1.0.0/24"`. */
  readonly lanSubnet: string;
  /** The address the internet sees for traffic leaving it: the outermost router's WAN address. */
  readonly publicIp: string;
  /** The router its WAN sits behind (double NAT), if any. */
  readonly upstream?: Router;
  /**
   * With `ipv6`: its WAN's IPv6 address on the core link, and its LAN's routed /64 (no NAT66),
   * e.g. `"2001:db8:1::/64"`, whose `::1` is the router.
   */
  readonly wanIp6?: string;
  readonly lanPrefix6?: string;
  readonly lanIp6?: string;
}

/** A host with a private address behind a router. */
export interface Host extends LabNode {
  readonly role: "host";
  /** Its private address, e.g. `"10.1.0.2"`. */
  readonly ip: string;
  /** Its router's LAN address (its default route). */
  readonly gateway: string;
  readonly router: Router;
  /** The address the internet sees for its traffic (outermost router's WAN address). */
  readonly publicIp: string;
  /** Its global IPv6 address in the router's /64, when the router has `ipv6`. */
  readonly ip6?: string;
}

/** Options of {@linkcode Lab.create}. */
export interface LabOptions {
  /**
   * Prefix of every namespace name. Default `"p2pl<pid>x<n>-"`, unique per lab and process.
   * A custom prefix ends with `-` and must not be in use yet ({@linkcode Lab.attach} reuses one).
   */
  prefix?: string;
  /**
   * Delete namespaces left behind by crashed runs (default-prefix family whose process is gone
   * and that hold no process) before building. Default true.
   */
  cleanStale?: boolean;
}

/** Options of {@linkcode Lab.addRouter}. */
export interface RouterOptions {
  kind: RouterKind;
  /** Put the WAN behind this router's LAN instead of on the core (double NAT). */
  upstream?: Router;
  /**
   * The LAN, an `a.b.c.0/24` inside 10/8, 172.16/12, 192.168/16 or 100.64/10. Default
   * `10.<n>.0.0/24` (`100.64.<n>.0/24` for `cgnat`), `n` counting routers from 1. Two routers may
   * share a LAN range (like two homes on 192.168.1.0/24), but not a router and its upstreams.
   */
  lanSubnet?: string;
  /**
   * Also IPv6 (off by default; without it nothing of the node's IPv4 setup changes): a WAN
   * address on the core link, a routed /64 on the LAN (`2001:db8:<n>::/64`, no NAT66) given to
   * every host added behind it, and a stateful IPv6 firewall like a home router's (table
   * `ip6 p2plab6`: established and related traffic in, unsolicited traffic dropped; none on an
   * `open` router). Only for a router on the core (no `upstream`).
   */
  ipv6?: boolean;
}

/** Options of {@linkcode Lab.addPublicHost}. */
export interface PublicHostOptions {
  /** Also an IPv6 address on its link (`2001:db8:ff00:<k>::2/64`); off by default. */
  ipv6?: boolean;
}

/** Options of {@linkcode Lab.exec}. */
export interface ExecOptions {
  /** Text written to the command's stdin (otherwise stdin is empty). */
  stdin?: string;
  /** Kill the command after this long. Default 30000 ms. */
  timeoutMs?: number;
  /** Throw when the command exits non-zero. Default false. */
  check?: boolean;
  /** Extra environment variables (`DENO_NO_UPDATE_CHECK=1` is always added). */
  env?: Record<string, string>;
}

/** The result of {@linkcode Lab.exec}. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Options of {@linkcode Lab.spawn}: a subset of `Deno.CommandOptions` (defaults as in Deno, plus
 * `DENO_NO_UPDATE_CHECK=1` in the environment).
 */
export type SpawnOptions = Pick<
  Deno.CommandOptions,
  "stdin" | "stdout" | "stderr" | "env" | "clearEnv" | "cwd"
>;

/** Options of {@linkcode Lab.startMiniupnpd}. */
export interface MiniupnpdOptions {
  /**
   * A public host of this lab where a STUN responder (`tests/lab/stun_responder.ts`, port 3478)
   * runs, started here if it does not run yet: miniupnpd maps nothing while its WAN address is a
   * reserved one (the lab's are) unless a STUN check says the WAN is reachable.
   */
  stunHost: PublicHost;
  /** Longest lifetime miniupnpd grants, in seconds (`max_lifetime`). Default 86400. */
  maxLifetime?: number;
  /** Shortest lifetime miniupnpd grants, in seconds (`min_lifetime`). Default 120. */
  minLifetime?: number;
  /** Serve NAT-PMP and PCP (`enable_natpmp`); default true. False leaves UPnP-IGD alone. */
  natpmp?: boolean;
}

/** A miniupnpd running in a router, from {@linkcode Lab.startMiniupnpd}. */
export interface Miniupnpd {
  readonly router: Router;
  /** The NAT-PMP/PCP port it listens on, on the router's LAN address (if it serves them). */
  readonly port: 5351;
  /** Its log so far (it runs in the foreground, `-d`, logging to stderr). */
  log(): string;
  /** The DNAT rules of its mappings, one `nft` rule text each (empty when it maps nothing). */
  redirects(): Promise<string[]>;
  /** Stops it (SIGTERM: it removes its rules) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

/** Packet and byte totals of a counter. */
export interface CounterValue {
  packets: number;
  bytes: number;
}

const DEFAULT_PREFIX_RE = /^p2pl(\d+)x\d+-/;
const NAME_RE = /^[a-z][a-z0-9]{0,11}$/;
/** A trailing dash keeps a prefix from matching unrelated namespaces by accident. */
const PREFIX_RE = /^[A-Za-z0-9_.-]{1,23}-$/;
/** Room for 64 /30 links in each documentation /24. */
const MAX_CORE_LINKS = 64;
const PUBLIC_NET = "198.51.100";
const ROUTER_NET = "203.0.113";
/** Table names; chosen so they never clash with anything a test adds by hand. */
const NAT_TABLE = "p2plab";
const FIREWALL6_TABLE = "p2plab6";
/** IPv6 prefixes of the lab, inside the documentation prefix 2001:db8::/32 (docs/LAB.md). */
const PUBLIC_NET6 = "2001:db8:ff00";
const ROUTER_NET6 = "2001:db8:ff01";
const LOSS_TABLE = "p2plab_loss";
const COUNT_TABLE = "p2plab_count";
/** miniupnpd's own table (its chains are named in its config file). */
const UPNP_TABLE = "p2plab_upnp";
const STUN_PORT = 3478;

/**
 * Added to the environment of every command run in a node: Deno's update check would otherwise
 * send DNS queries for dl.deno.land from inside the lab (the core drops them: no default route).
 */
const LAB_ENV = { DENO_NO_UPDATE_CHECK: "1" };

let labSeq = 0;

/** Why a lab cannot be built here, or null if it can. */
async function probe(): Promise<string | null> {
  if (Deno.build.os !== "linux") return `the NAT lab needs Linux, this is ${Deno.build.os}`;
  if (Deno.uid() !== 0) return `the NAT lab needs root (uid 0), running as uid ${Deno.uid()}`;
  const tools: [string, string[]][] = [["ip", ["-V"]], ["nft", ["--version"]], [
    "conntrack",
    ["-V"],
  ]];
  for (const [tool, args] of tools) {
    try {
      const out = await new Deno.Command(tool, { args, stdout: "null", stderr: "null" }).output();
      if (!out.success) return `the NAT lab needs '${tool}', which fails to run`;
    } catch {
      return `the NAT lab needs '${tool}' on PATH (apt-get install -y iproute2 nftables conntrack)`;
    }
  }
  // Parallel test files are workers of one process (one pid): a random part keeps them apart.
  const ns = `p2pl${Deno.pid}x0${uniqueSuffix()}-probe`;
  const add = await run("ip", ["netns", "add", ns]);
  if (add.code !== 0) return `the NAT lab cannot create a network namespace: ${add.stderr.trim()}`;
  try {
    const nft = await run("ip", ["netns", "exec", ns, "nft", "list", "ruleset"]);
    if (nft.code !== 0) return `the NAT lab cannot use nftables: ${nft.stderr.trim()}`;
  } finally {
    await run("ip", ["netns", "del", ns]);
  }
  return null;
}

/** Runs a program on the host, collecting its output. */
async function run(
  cmd: string,
  args: string[],
  options: { stdin?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ExecResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 30_000);
  try {
    const child = new Deno.Command(cmd, {
      args,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      env: options.env,
      signal: controller.signal,
    }).spawn();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      // A command may exit without reading its input; its output still tells what happened.
      await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
      await writer.close().catch(() => {});
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return {
      code: controller.signal.aborted ? 124 : out.code,
      stdout: dec.decode(out.stdout),
      stderr: controller.signal.aborted
        ? `timed out after ${options.timeoutMs ?? 30_000} ms\n${dec.decode(out.stderr)}`
        : dec.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a program on the host and throws, with its stderr, unless it succeeds. */
async function must(cmd: string, args: string[], stdin?: string): Promise<string> {
  const r = await run(cmd, args, { stdin });
  if (r.code !== 0) {
    throw new Error(`Lab command failed (exit ${r.code}): ${cmd} ${args.join(" ")}\n${r.stderr}`);
  }
  return r.stdout;
}

/** Runs `ip` commands, one per line, inside a namespace in one process. */
function ipBatch(netns: string, lines: string[]): Promise<string> {
  return must("ip", ["-n", netns, "-batch", "-"], lines.join("\n") + "\n");
}

/** Names of all network namespaces on the machine. */
async function listNetns(): Promise<string[]> {
  const out = await must("ip", ["netns", "list"]);
  // Lines look like "name (id: 3)" or just "name".
  return out.split("\n").map((l) => l.trim().split(" ")[0]).filter((n) => n !== "");
}

/** Whether a process runs (a zombie, killed but not yet reaped, does not). */
function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Digits that differ between the workers of one process (which share a pid and counters). */
function uniqueSuffix(): string {
  return String(crypto.getRandomValues(new Uint16Array(1))[0]);
}

/** Deletes namespaces of crashed runs: default-prefix family, owner process gone, no process. */
async function cleanStale(): Promise<void> {
  for (const ns of await listNetns()) {
    const m = DEFAULT_PREFIX_RE.exec(ns);
    if (m === null || processAlive(Number(m[1]))) continue;
    const pids = await run("ip", ["netns", "pids", ns]);
    // A namespace still holding processes is left alone: deleting it would not free it anyway.
    if (pids.code !== 0 || pids.stdout.trim() !== "") continue;
    await run("ip", ["netns", "del", ns]);
  }
}

function parseSubnet24(subnet: string): [number, number, number] {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  const [a, b, c] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [NaN, NaN, NaN];
  const inRange = a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
    (a === 100 && b >= 64 && b <= 127);
  if (!m || b > 255 || c > 255 || !inRange) {
    throw new Error(
      `Cannot use LAN subnet '${subnet}': expected a.b.c.0/24 inside 10/8, 172.16/12, ` +
        `192.168/16 or 100.64/10`,
    );
  }
  return [a, b, c];
}

/**
 * The nft ruleset a router of this kind gets (table `ip p2plab`; see docs/LAB.md).
 *
 * @example
 * ```ts
 * console.log(routerRuleset("symmetric")); // ... oifname "wan" masquerade random,fully-random
 * ```
 */
export function routerRuleset(kind: RouterKind): string {
  const filter = kind === "open" ? "" : `
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }`;
  const masquerade = kind === "symmetric" ? "masquerade random,fully-random" : "masquerade";
  return `table ip ${NAT_TABLE} {${filter}
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ${masquerade}
  }
}
`;
}

/**
 * The IPv6 firewall a router of this kind gets (table `ip6 p2plab6`; see docs/LAB.md): like its
 * IPv4 filter, established and related traffic in and unsolicited traffic from the WAN dropped,
 * but for neighbour discovery with the core; nothing for an `open` router.
 *
 * @example
 * ```ts
 * console.log(router6Ruleset("home")); // ... iifname "wan" ct state established,related accept
 * ```
 */
export function router6Ruleset(kind: RouterKind): string {
  if (kind === "open") return "";
  const nd = "nd-neighbor-solicit, nd-neighbor-advert";
  return `table ip6 ${FIREWALL6_TABLE} {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" icmpv6 type { ${nd} } accept
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
`;
}

interface Lan {
  subnet: [number, number, number];
  nextHost: number;
  nextPort: number;
}

/**
 * A running lab. Build nodes with {@linkcode Lab.addPublicHost}, {@linkcode Lab.addRouter} and
 * {@linkcode Lab.addHost}; always call {@linkcode Lab.teardown} (or use `await using`).
 *
 * @example
 * ```ts
 * await using lab = await Lab.create();
 * const srv = await lab.addPublicHost("srv");
 * const r = await lab.addRouter("r", { kind: "symmetric" });
 * const h = await lab.addHost("h", r);
 * await lab.setLoss(r, 10);
 * ```
 */
export class Lab {
  /** Prefix of every namespace this lab owns. */
  readonly prefix: string;
  /** The core router; public hosts and top-level routers link to it. */
  readonly core: CoreRouter;
  readonly #nodes = new Map<string, LabNode>();
  readonly #owned: string[] = [];
  readonly #children = new Set<Deno.ChildProcess>();
  readonly #lans = new Map<string, Lan>();
  readonly #tempDirs: string[] = [];
  readonly #stunHosts = new Set<string>();
  #publicLinks = 0;
  #routerLinks = 0;
  #routerCount = 0;
  #torn = false;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.core = { role: "core", name: "core", netns: `${prefix}core` };
  }

  /**
   * Why the lab cannot run here (not Linux, not root, a tool missing, namespaces not allowed),
   * or null when it can. Creates and deletes one probe namespace.
   *
   * @example
   * ```ts
   * const reason = await Lab.available();
   * Deno.test({ name: "nat", ignore: reason !== null, fn: async () => {} });
   * ```
   */
  static available(): Promise<string | null> {
    return probe();
  }

  /**
   * Builds an empty lab: just the core router. Cleans up stale namespaces of crashed runs first.
   *
   * @example
   * ```ts
   * const lab = await Lab.create();
   * await lab.teardown();
   * ```
   */
  static async create(options: LabOptions = {}): Promise<Lab> {
    const prefix = options.prefix ?? `p2pl${Deno.pid}x${++labSeq}${uniqueSuffix()}-`;
    if (!PREFIX_RE.test(prefix)) {
      throw new Error(`Cannot create lab: prefix '${prefix}' must match ${PREFIX_RE}`);
    }
    if (options.cleanStale ?? true) await cleanStale();
    const existing = (await listNetns()).filter((n) => n.startsWith(prefix));
    if (existing.length > 0) {
      throw new Error(
        `Cannot create lab: namespaces with prefix '${prefix}' already exist (${
          existing.join(", ")
        })`,
      );
    }
    const lab = new Lab(prefix);
    try {
      await lab.#addNamespace(lab.core, true);
    } catch (e) {
      await lab.teardown();
      throw e;
    }
    return lab;
  }

  /**
   * Adopts the namespaces of a lab built earlier (e.g. by `scripts/lab.ts up`), so they can be
   * driven and torn down. Nodes are known by name only: `lab.node("ra")`.
   *
   * @example
   * ```ts
   * const lab = await Lab.attach("p2plab-");
   * await lab.setLoss(lab.node("ra"), 5);
   * ```
   */
  static async attach(prefix: string): Promise<Lab> {
    if (!PREFIX_RE.test(prefix)) {
      throw new Error(`Cannot attach lab: prefix '${prefix}' must match ${PREFIX_RE}`);
    }
    const lab = new Lab(prefix);
    for (const ns of (await listNetns()).sort()) {
      if (!ns.startsWith(prefix)) continue;
      const name = ns.slice(prefix.length);
      lab.#owned.push(ns);
      if (name !== "core") lab.#nodes.set(name, { name, netns: ns });
    }
    return lab;
  }

  /** Every node, core excluded, in creation order. */
  get nodes(): LabNode[] {
    return [...this.#nodes.values()];
  }

  /**
   * The node with this name (`"core"` for the core router).
   *
   * @example
   * ```ts
   * const ra = lab.node("ra");
   * ```
   */
  node(name: string): LabNode {
    if (name === "core") return this.core;
    const node = this.#nodes.get(name);
    if (node === undefined) throw new Error(`Lab has no node named '${name}'`);
    return node;
  }

  /**
   * Adds a host with a public address on its own /30 link to the core (198.51.100.4k+2).
   *
   * @example
   * ```ts
   * const srv = await lab.addPublicHost("srv"); // srv.ip === "198.51.100.2" for the first one
   * ```
   */
  async addPublicHost(name: string, options: PublicHostOptions = {}): Promise<PublicHost> {
    this.#checkName(name);
    const k = this.#publicLinks;
    if (k >= MAX_CORE_LINKS) throw new Error(`Cannot add '${name}': the lab is full`);
    this.#publicLinks++;
    const gateway = `${PUBLIC_NET}.${4 * k + 1}`;
    const host: PublicHost = {
      role: "public",
      name,
      netns: this.prefix + name,
      ip: `${PUBLIC_NET}.${4 * k + 2}`,
      gateway,
      ...(options.ipv6 ? { ip6: `${PUBLIC_NET6}:${k}::2` } : {}),
    };
    this.#nodes.set(name, host);
    await this.#addNamespace(host, false);
    await this.#link(this.core.netns, `p${k}`, host.netns, "eth0", [
      `addr add ${gateway}/30 dev p${k}`,
    ]);
    await ipBatch(host.netns, [
      `addr add ${host.ip}/30 dev eth0`,
      "link set eth0 up",
      `route add default via ${gateway}`,
    ]);
    if (host.ip6 !== undefined) {
      await this.#enableIpv6(this.core, [`p${k}`], true);
      await this.#enableIpv6(host, ["eth0"], false);
      await ipBatch(this.core.netns, [`addr add ${PUBLIC_NET6}:${k}::1/64 dev p${k} nodad`]);
      await ipBatch(host.netns, [
        `addr add ${host.ip6}/64 dev eth0 nodad`,
        `route add default via ${PUBLIC_NET6}:${k}::1 dev eth0`,
      ]);
    }
    return host;
  }

  /**
   * Adds a NAT router of a kind, its WAN on the core (203.0.113.4k+2/30) or on the LAN of
   * `upstream`. Its LAN is a bridge where hosts and downstream routers attach.
   *
   * @example
   * ```ts
   * const cg = await lab.addRouter("cg", { kind: "cgnat" });
   * const rc = await lab.addRouter("rc", { kind: "home", upstream: cg, lanSubnet: "192.168.1.0/24" });
   * ```
   */
  async addRouter(name: string, options: RouterOptions): Promise<Router> {
    this.#checkName(name);
    const { kind, upstream } = options;
    if (!["home", "open", "symmetric", "cgnat"].includes(kind)) {
      throw new Error(`Cannot add router '${name}': unknown kind '${kind}'`);
    }
    if (upstream !== undefined && this.#nodes.get(upstream.name) !== upstream) {
      throw new Error(`Cannot add router '${name}': upstream is not a router of this lab`);
    }
    if (options.ipv6 && upstream !== undefined) {
      throw new Error(`Cannot add router '${name}': IPv6 is only for routers on the core`);
    }
    const n = this.#routerCount + 1;
    if (n > 254) throw new Error(`Cannot add router '${name}': the lab is full`);
    const lan = parseSubnet24(
      options.lanSubnet ?? (kind === "cgnat" ? `100.64.${n}.0/24` : `10.${n}.0.0/24`),
    );
    const lanSubnet = `${lan.join(".")}.0/24`;
    for (let up = upstream; up !== undefined; up = up.upstream) {
      if (up.lanSubnet === lanSubnet) {
        throw new Error(
          `Cannot add router '${name}': its LAN ${lanSubnet} is also the LAN of its upstream ` +
            `'${up.name}', so its WAN would be unreachable`,
        );
      }
    }
    let wanIp: string, wanGateway: string, wanPrefix: number, parentNetns: string, parentIf: string;
    let coreLink = -1;
    const parentSetup: string[] = [];
    if (upstream === undefined) {
      const k = this.#routerLinks;
      if (k >= MAX_CORE_LINKS) throw new Error(`Cannot add router '${name}': the lab is full`);
      this.#routerLinks++;
      coreLink = k;
      wanGateway = `${ROUTER_NET}.${4 * k + 1}`;
      wanIp = `${ROUTER_NET}.${4 * k + 2}`;
      wanPrefix = 30;
      parentNetns = this.core.netns;
      parentIf = `r${k}`;
      parentSetup.push(`addr add ${wanGateway}/30 dev ${parentIf}`);
    } else {
      const slot = this.#lanSlot(upstream);
      wanGateway = upstream.lanIp;
      wanIp = slot.ip;
      wanPrefix = 24;
      parentNetns = upstream.netns;
      parentIf = slot.port;
      parentSetup.push(`link set ${parentIf} master lan`);
    }
    this.#routerCount = n;
    const router: Router = {
      role: "router",
      kind,
      name,
      netns: this.prefix + name,
      wanIp,
      wanGateway,
      lanIp: `${lan.join(".")}.1`,
      lanSubnet,
      publicIp: upstream?.publicIp ?? wanIp,
      upstream,
      ...(options.ipv6
        ? {
          wanIp6: `${ROUTER_NET6}:${coreLink}::2`,
          lanPrefix6: `2001:db8:${n}::/64`,
          lanIp6: `2001:db8:${n}::1`,
        }
        : {}),
    };
    this.#nodes.set(name, router);
    this.#lans.set(name, { subnet: lan, nextHost: 2, nextPort: 0 });
    await this.#addNamespace(router, true);
    await this.#link(parentNetns, parentIf, router.netns, "wan", parentSetup);
    // A fixed bridge MAC: otherwise it follows the lowest port MAC and changes under the hosts' ARP.
    const mac = `02:00:00:00:${(n >> 8).toString(16).padStart(2, "0")}:${
      (n & 255).toString(16).padStart(2, "0")
    }`;
    await ipBatch(router.netns, [
      `addr add ${wanIp}/${wanPrefix} dev wan`,
      "link set wan up",
      `route add default via ${wanGateway}`,
      "link add lan type bridge",
      `link set lan address ${mac}`,
      `addr add ${router.lanIp}/24 dev lan`,
      "link set lan up",
    ]);
    await this.#nft(router, routerRuleset(kind));
    if (router.lanIp6 !== undefined) {
      const coreIp6 = `${ROUTER_NET6}:${coreLink}::1`;
      await this.#enableIpv6(this.core, [`r${coreLink}`], true);
      await this.#enableIpv6(router, ["wan", "lan"], true);
      await ipBatch(this.core.netns, [
        `addr add ${coreIp6}/64 dev r${coreLink} nodad`,
        `route add ${router.lanPrefix6} via ${router.wanIp6} dev r${coreLink}`,
      ]);
      await ipBatch(router.netns, [
        `addr add ${router.wanIp6}/64 dev wan nodad`,
        `route add default via ${coreIp6} dev wan`,
        `addr add ${router.lanIp6}/64 dev lan nodad`,
      ]);
      const rules = router6Ruleset(kind);
      if (rules !== "") await this.#nft(router, rules);
    }
    return router;
  }

  /**
   * Runs Debian's miniupnpd (`/usr/sbin/miniupnpd`, 2.3.x, nftables backend) in a router, with
   * NAT-PMP, PCP (unless `natpmp: false`) and UPnP-IGD for its LAN (`secure_mode`: a host maps only its own address).
   * The router's filter lets in what miniupnpd's DNAT rules forward (`ct status dnat accept`),
   * as a real router with UPnP does; its masquerade then covers only its LAN's traffic, so that
   * miniupnpd's own STUN check sees the WAN address and ports unchanged (docs/LAB.md).
   * Resolves once it listens; teardown kills it if still running.
   *
   * @example
   * ```ts
   * const upnp = await lab.startMiniupnpd(rs, { stunHost: srv });
   * console.log(await upnp.redirects());
   * await upnp.stop();
   * ```
   */
  async startMiniupnpd(router: Router, options: MiniupnpdOptions): Promise<Miniupnpd> {
    if (this.#nodes.get(router.name) !== router) {
      throw new Error(`Cannot start miniupnpd: '${router.name}' is not a router of this lab`);
    }
    if (!exists("/usr/sbin/miniupnpd")) {
      throw new Error(
        "Cannot start miniupnpd: /usr/sbin/miniupnpd is missing (apt-get install miniupnpd)",
      );
    }
    await this.#startStunResponder(options.stunHost);
    const masquerade = router.kind === "symmetric"
      ? "masquerade random,fully-random"
      : "masquerade";
    await this.#nft(
      router,
      `flush chain ip ${NAT_TABLE} postrouting
add rule ip ${NAT_TABLE} postrouting oifname "wan" ip saddr ${router.lanSubnet} ${masquerade}
${
        router.kind === "open"
          ? ""
          : `insert rule ip ${NAT_TABLE} forward iifname "wan" ct status dnat accept\n`
      }
table inet ${UPNP_TABLE} {
  chain forward {
    type filter hook forward priority filter - 5; policy accept;
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting {
    type nat hook postrouting priority srcnat - 5; policy accept;
    jump postrouting_miniupnpd
  }
  chain postrouting_miniupnpd {
  }
}
`,
    );
    const dir = await Deno.makeTempDir({ prefix: "p2plab-upnp-" });
    this.#tempDirs.push(dir);
    const uuid = crypto.randomUUID();
    await Deno.writeTextFile(
      `${dir}/miniupnpd.conf`,
      [
        "ext_ifname=wan",
        "listening_ip=lan",
        "http_port=0",
        `enable_natpmp=${options.natpmp === false ? "no" : "yes"}`,
        "enable_upnp=yes",
        "secure_mode=yes",
        "system_uptime=no",
        `uuid=${uuid}`,
        `min_lifetime=${options.minLifetime ?? 120}`,
        `max_lifetime=${options.maxLifetime ?? 86400}`,
        "ext_perform_stun=yes",
        `ext_stun_host=${options.stunHost.ip}`,
        `ext_stun_port=${STUN_PORT}`,
        `lease_file=${dir}/leases`,
        `upnp_table_name=${UPNP_TABLE}`,
        `upnp_nat_table_name=${UPNP_TABLE}`,
        "upnp_forward_chain=miniupnpd",
        "upnp_nat_chain=prerouting_miniupnpd",
        "upnp_nat_postrouting_chain=postrouting_miniupnpd",
        `allow 1024-65535 ${router.lanSubnet} 1024-65535`,
        "deny 0-65535 0.0.0.0/0 0-65535",
        "",
      ].join("\n"),
    );
    const child = this.spawn(router, [
      "/usr/sbin/miniupnpd",
      "-d",
      "-f",
      `${dir}/miniupnpd.conf`,
      "-P",
      `${dir}/miniupnpd.pid`,
    ], { stdin: "null", stdout: "null", stderr: "piped" });
    let log = "";
    let listening = (): void => {};
    const ready = new Promise<void>((resolve) => listening = resolve);
    const reading = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        log += dec.decode(chunk, { stream: true });
        const up = options.natpmp === false
          ? /HTTP listening on port/
          : /Listening for NAT-PMP\/PCP/;
        if (up.test(log)) listening();
      }
    })();
    const exited = child.status.then((s) => s.code);
    const outcome = await Promise.race([
      // Without NAT-PMP/PCP it is up once its HTTP (UPnP) side listens.
      ready.then(() => "ready"),
      exited.then((code) => `exited with code ${code}`),
      new Promise<string>((r) => setTimeout(() => r("timed out after 15 s"), 15_000)),
    ]);
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already exited.
        }
        await child.status;
        await reading;
      })();
    if (outcome !== "ready") {
      await stop();
      throw new Error(`Cannot start miniupnpd in '${router.name}': ${outcome}\n${log}`);
    }
    if (!/Port forwarding is (now )?enabled/.test(log)) {
      await stop();
      throw new Error(`miniupnpd in '${router.name}' will not forward ports:\n${log}`);
    }
    return {
      router,
      port: 5351,
      log: () => log,
      redirects: async () => {
        const r = await this.exec(router, [
          "nft",
          "list",
          "chain",
          "inet",
          UPNP_TABLE,
          "prerouting_miniupnpd",
        ], { check: true });
        return r.stdout.split("\n").map((l) => l.trim()).filter((l) => l.includes("dnat"));
      },
      stop,
    };
  }

  /**
   * Adds a host on a router's LAN with the next free private address (`.2`, `.3`, ...).
   *
   * @example
   * ```ts
   * const a = await lab.addHost("a", ra); // a.ip === "10.1.0.2", a.publicIp === ra.publicIp
   * ```
   */
  async addHost(name: string, router: Router): Promise<Host> {
    this.#checkName(name);
    if (this.#nodes.get(router.name) !== router) {
      throw new Error(`Cannot add host '${name}': its router is not a router of this lab`);
    }
    const slot = this.#lanSlot(router);
    const host: Host = {
      role: "host",
      name,
      netns: this.prefix + name,
      ip: slot.ip,
      gateway: router.lanIp,
      router,
      publicIp: router.publicIp,
      // The same host number as its IPv4 address, in the router's /64.
      ...(router.lanIp6 !== undefined
        ? { ip6: `${router.lanIp6.slice(0, -1)}${slot.ip.split(".")[3]}` }
        : {}),
    };
    this.#nodes.set(name, host);
    await this.#addNamespace(host, false);
    await this.#link(router.netns, slot.port, host.netns, "eth0", [
      `link set ${slot.port} master lan`,
    ]);
    await ipBatch(host.netns, [
      `addr add ${host.ip}/24 dev eth0`,
      "link set eth0 up",
      `route add default via ${router.lanIp}`,
    ]);
    if (host.ip6 !== undefined) {
      await this.#enableIpv6(host, ["eth0"], false);
      await ipBatch(host.netns, [
        `addr add ${host.ip6}/64 dev eth0 nodad`,
        `route add default via ${router.lanIp6} dev eth0`,
      ]);
    }
    return host;
  }

  /**
   * Runs a command inside a node's namespace and collects its output.
   *
   * @example
   * ```ts
   * const { code, stdout } = await lab.exec(a, ["ip", "-4", "addr"]);
   * ```
   */
  async exec(node: LabNode, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const ns = this.#netnsOf(node);
    const r = await run("ip", ["netns", "exec", ns, ...cmd], {
      ...options,
      env: { ...LAB_ENV, ...options.env },
    });
    if (options.check && r.code !== 0) {
      throw new Error(
        `Command failed in '${node.name}' (exit ${r.code}): ${cmd.join(" ")}\n${r.stderr}`,
      );
    }
    return r;
  }

  /**
   * Starts a long-running command inside a node's namespace. The lab kills it at teardown if it
   * still runs; the caller should still await `status` and consume piped output.
   *
   * @example
   * ```ts
   * const child = lab.spawn(srv, [Deno.execPath(), "run", "-A", "main.ts", "serve"], {
   *   stdout: "piped",
   * });
   * ```
   */
  spawn(node: LabNode, cmd: string[], options: SpawnOptions = {}): Deno.ChildProcess {
    const ns = this.#netnsOf(node);
    // `ip netns exec` execs the command, so the child's pid is the command's own.
    const child = new Deno.Command("ip", {
      ...options,
      env: { ...LAB_ENV, ...options.env },
      args: ["netns", "exec", ns, ...cmd],
    }).spawn();
    this.#children.add(child);
    child.status.finally(() => this.#children.delete(child));
    return child;
  }

  /**
   * Drops `percent`% of the packets a node forwards, receives or sends, at random, in both
   * directions (`numgen random mod 100 < N drop`). On a router this is its forward path. 0 removes.
   *
   * @example
   * ```ts
   * await lab.setLoss(ra, 20);
   * await lab.setLoss(ra, 0);
   * ```
   */
  async setLoss(node: LabNode, percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
      throw new Error(`Cannot set loss to ${percent}: expected an integer percentage 0..100`);
    }
    // Creating then deleting the table makes the delete succeed whether or not it existed.
    let script = `table ip ${LOSS_TABLE}\ndelete table ip ${LOSS_TABLE}\n`;
    if (percent > 0) {
      const chain = (hook: string): string => `
  chain ${hook} {
    type filter hook ${hook} priority filter - 10; policy accept;
    ${percent === 100 ? "drop" : `numgen random mod 100 < ${percent} drop`}
  }`;
      script += `table ip ${LOSS_TABLE} {${chain("forward")}${chain("input")}${
        chain("output")
      }\n}\n`;
    }
    await this.#nft(node, script);
  }

  /**
   * Sets how long an idle UDP conntrack entry (so a NAT mapping) lives in a node:
   * `nf_conntrack_udp_timeout` (one-way flows) and `nf_conntrack_udp_timeout_stream` (flows that
   * saw replies). Existing entries take it at their next packet.
   *
   * @example
   * ```ts
   * await lab.setUdpTimeout(ra, 10);
   * ```
   */
  async setUdpTimeout(node: LabNode, seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 1) {
      throw new Error(`Cannot set UDP timeout to ${seconds}: expected a positive integer (s)`);
    }
    await this.exec(node, [
      "sysctl",
      "-q",
      "-w",
      `net.netfilter.nf_conntrack_udp_timeout=${seconds}`,
      `net.netfilter.nf_conntrack_udp_timeout_stream=${seconds}`,
    ], { check: true });
  }

  /**
   * Deletes every conntrack entry (so every NAT mapping) of a node, like a router reboot.
   *
   * @example
   * ```ts
   * await lab.flushConntrack(ra);
   * ```
   */
  async flushConntrack(node: LabNode): Promise<void> {
    await this.exec(node, ["conntrack", "-F"], { check: true });
  }

  /**
   * The node's conntrack entries, one `conntrack -L` line each, e.g.
   * `udp 17 28 src=10.1.0.2 dst=198.51.100.2 sport=4000 dport=7000 [UNREPLIED] src=... mark=0 use=1`.
   *
   * @example
   * ```ts
   * const unreplied = (await lab.listConntrack(ro)).filter((l) => l.includes("[UNREPLIED]"));
   * ```
   */
  async listConntrack(node: LabNode): Promise<string[]> {
    const r = await this.exec(node, ["conntrack", "-L"], { check: true });
    return r.stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  }

  /**
   * Adds a named counter of the packets matching an nft expression that enter (before NAT, as on
   * the wire) or leave a node. A forwarded packet counts once.
   *
   * @example
   * ```ts
   * await lab.addCounter(srv, "relay", "udp dport 7000");
   * const { packets } = await lab.readCounter(srv, "relay");
   * ```
   */
  async addCounter(node: LabNode, name: string, match: string): Promise<void> {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(name)) {
      throw new Error(`Cannot add counter '${name}': expected a name matching [a-z][a-z0-9_]*`);
    }
    if (/[\n;#]/.test(match)) {
      throw new Error(`Cannot add counter '${name}': match must be one nft expression`);
    }
    // `add` is idempotent for the table and chains; the named counter must be new. The `c_`
    // prefix keeps names like "icmp" from parsing as nft keywords.
    await this.#nft(
      node,
      `add table ip ${COUNT_TABLE}
add chain ip ${COUNT_TABLE} in { type filter hook prerouting priority raw - 1; policy accept; }
add chain ip ${COUNT_TABLE} out { type filter hook output priority raw - 1; policy accept; }
create counter ip ${COUNT_TABLE} c_${name}
add rule ip ${COUNT_TABLE} in ${match} counter name "c_${name}"
add rule ip ${COUNT_TABLE} out ${match} counter name "c_${name}"
`,
    );
  }

  /**
   * Reads a counter made by {@linkcode Lab.addCounter}.
   *
   * @example
   * ```ts
   * const { packets, bytes } = await lab.readCounter(srv, "relay");
   * ```
   */
  async readCounter(node: LabNode, name: string): Promise<CounterValue> {
    const r = await this.exec(node, [
      "nft",
      "-j",
      "list",
      "counter",
      "ip",
      COUNT_TABLE,
      `c_${name}`,
    ], {
      check: true,
    });
    const items = (JSON.parse(r.stdout) as {
      nftables: { counter?: { packets: number; bytes: number } }[];
    }).nftables;
    const counter = items.find((i) => i.counter !== undefined)?.counter;
    if (counter === undefined) throw new Error(`Cannot read counter '${name}': not in nft output`);
    return { packets: counter.packets, bytes: counter.bytes };
  }

  /**
   * Kills the processes the lab spawned and deletes every namespace it made (which deletes their
   * veths). Safe to call twice and after a failed build; throws after trying everything if some
   * namespace could not be deleted.
   *
   * @example
   * ```ts
   * await lab.teardown();
   * ```
   */
  async teardown(): Promise<void> {
    this.#torn = true;
    for (const child of [...this.#children]) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      for (const stream of ["stdout", "stderr"] as const) {
        try {
          if (!child[stream].locked) await child[stream].cancel();
        } catch {
          // Not piped.
        }
      }
    }
    for (const dir of this.#tempDirs.splice(0)) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    const failures: string[] = [];
    for (const ns of this.#owned.splice(0).reverse()) {
      const r = await run("ip", ["netns", "del", ns]);
      if (r.code !== 0 && !r.stderr.includes("No such file")) failures.push(`${ns}: ${r.stderr}`);
    }
    if (failures.length > 0) {
      throw new Error(`Lab teardown could not delete namespaces:\n${failures.join("\n")}`);
    }
  }

  /** Same as {@linkcode Lab.teardown}, for `await using lab = await Lab.create()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.teardown();
  }

  #checkName(name: string): void {
    if (this.#torn) throw new Error(`Cannot add '${name}': the lab was torn down`);
    if (!NAME_RE.test(name) || name === "core") {
      throw new Error(
        `Cannot add node '${name}': names match ${NAME_RE} and 'core' is the core router`,
      );
    }
    if (this.#nodes.has(name)) throw new Error(`Cannot add node '${name}': name already used`);
  }

  #netnsOf(node: LabNode): string {
    if (node.netns !== this.core.netns && this.#nodes.get(node.name)?.netns !== node.netns) {
      throw new Error(`Node '${node.name}' (${node.netns}) is not part of this lab`);
    }
    return node.netns;
  }

  /** Next free address and bridge port name on a router's LAN. */
  #lanSlot(router: Router): { ip: string; port: string } {
    const lan = this.#lans.get(router.name)!;
    if (lan.nextHost > 254) throw new Error(`Router '${router.name}' has no free LAN address`);
    return { ip: `${lan.subnet.join(".")}.${lan.nextHost++}`, port: `l${lan.nextPort++}` };
  }

  async #addNamespace(node: LabNode, forwarding: boolean): Promise<void> {
    await must("ip", ["netns", "add", node.netns]);
    this.#owned.push(node.netns);
    // Set explicitly: with net.core.devconf_inherit_init_net a new namespace copies the host's.
    const sysctls = [
      "net.ipv6.conf.all.disable_ipv6=1",
      "net.ipv6.conf.default.disable_ipv6=1",
      "net.ipv4.conf.all.rp_filter=0",
      "net.ipv4.conf.default.rp_filter=0",
      `net.ipv4.ip_forward=${forwarding ? 1 : 0}`,
    ];
    // With br_netfilter loaded, bridged LAN frames would cross the router's nft hooks too.
    if (forwarding && exists("/proc/sys/net/bridge/bridge-nf-call-iptables")) {
      sysctls.push("net.bridge.bridge-nf-call-iptables=0");
    }
    await must("ip", ["netns", "exec", node.netns, "sysctl", "-q", "-w", ...sysctls]);
    await ipBatch(node.netns, ["link set lo up"]);
  }

  /**
   * Turns IPv6 on for these interfaces of a node (it is off everywhere else: #addNamespace), with
   * neither router advertisements, autoconfiguration (addresses are static) nor duplicate address
   * detection; `forwarding` makes the node route IPv6.
   */
  async #enableIpv6(node: LabNode, interfaces: string[], forwarding: boolean): Promise<void> {
    // No duplicate address detection either: a link-local address waits a second in it, and
    // neighbour discovery with it, so the first packets of a fresh lab would wait too.
    const sysctls = ["all", "default", ...interfaces].flatMap((i) => [
      `net.ipv6.conf.${i}.accept_ra=0`,
      `net.ipv6.conf.${i}.autoconf=0`,
      `net.ipv6.conf.${i}.accept_dad=0`,
    ]);
    for (const i of interfaces) sysctls.push(`net.ipv6.conf.${i}.disable_ipv6=0`);
    if (forwarding) sysctls.push("net.ipv6.conf.all.forwarding=1");
    await must("ip", ["netns", "exec", node.netns, "sysctl", "-q", "-w", ...sysctls]);
  }

  /** Creates a veth pair from one namespace into another and brings the near end up. */
  async #link(
    fromNs: string,
    fromIf: string,
    toNs: string,
    toIf: string,
    fromSetup: string[],
  ): Promise<void> {
    await ipBatch(fromNs, [
      `link add ${fromIf} type veth peer name ${toIf} netns ${toNs}`,
      ...fromSetup,
      `link set ${fromIf} up`,
    ]);
  }

  async #startStunResponder(host: PublicHost): Promise<void> {
    if (this.#nodes.get(host.name) !== host) {
      throw new Error(`Cannot start a STUN responder: '${host.name}' is not a host of this lab`);
    }
    if (this.#stunHosts.has(host.name)) return;
    const program = new URL("./stun_responder.ts", import.meta.url).pathname;
    const child = this.spawn(host, [Deno.execPath(), "run", "-A", program, String(STUN_PORT)], {
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    });
    const reader = child.stdout.getReader();
    const first = await Promise.race([
      reader.read(),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000)),
    ]);
    reader.releaseLock();
    // Keep draining so the responder never blocks on a full pipe.
    child.stdout.pipeTo(new WritableStream()).catch(() => {});
    if (first === undefined || first.done) {
      throw new Error(`Cannot start the STUN responder on '${host.name}'`);
    }
    this.#stunHosts.add(host.name);
  }

  async #nft(node: LabNode, script: string): Promise<void> {
    await must("ip", ["netns", "exec", this.#netnsOf(node), "nft", "-f", "-"], script);
  }
}
