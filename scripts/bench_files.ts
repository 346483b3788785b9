/**
 * `deno task bench:files [--size MIB] [--chat N] [--lab]`: file transfers against their ceilings,
 * on loopback (or, with `--lab`, as root, through the NAT lab's home ↔ home routers), in one run
 * (docs/FILES.md has the table):
 *
 * - raw Deno UDP, one way, 1,200-byte unencrypted datagrams sent as fast as they go (the ceiling);
 * - a plain TCP copy of the same file, written to disk (what a user compares with);
 * - p2p: `p2p serve` and two `p2p chat --json` processes, `/send` then `/accept`: MB/s, CPU
 *   seconds per MB of both chat processes, their peak RSS (VmHWM), and chat round trips
 *   (`/msg` to its `delivered`, p50 and p90): `--chat N` (default 40) while idle, then one every
 *   100 ms from the transfer's first byte to its end; and whether the goal (p50 during ≤ 2× idle)
 *   is met. A round trip cannot end before `/msg` was read and `delivered` printed: both chat
 *   processes' event loops are in it, as they are in what a user sees.
 *
 * The receiving sides run in processes of their own (this script started again with a role), so
 * that sender and receiver do not share an event loop, as in real use. In the lab, the ceilings
 * are measured from peer A's host to the public coordinator host (through A's NAT: two home NATs
 * let no plain socket through), the p2p transfer between A and B (direct, after hole punching).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { LabNode } from "../tests/lab/netlab.ts";
import { LabProcess, type PairScenario, SERVER_PORT, withPair } from "../tests/support/lab_chat.ts";
import { P2pProcess, startServe } from "../tests/support/proc.ts";
import { V8_FLAGS } from "./compile.ts";

const SELF = new URL(import.meta.url).pathname;
const DATAGRAM = 1200;
/** CPU per MB each side may spend for 60 % of the 48 MB/s raw-UDP ceiling (one core each). */
const CPU_GOAL_MS = 30;
/** Peak RSS of a client sending or receiving a file, MB (issue 14: "under about 150 MB", 2 GiB). */
const RSS_GOAL_MB = 150;

// --- roles: the receiving (and sending) ends of the ceilings, in processes of their own -------

async function udpReceive(host: string): Promise<void> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: host, port: 0 });
  console.log(JSON.stringify({ port: (sock.addr as Deno.NetAddr).port }));
  let bytes = 0;
  let first = 0;
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = () => {
    console.log(JSON.stringify({ bytes, seconds: (last - first) / 1000 }));
    sock.close();
  };
  try {
    for await (const [data] of sock) {
      const now = performance.now();
      if (bytes === 0) first = now;
      last = now;
      bytes += data.length;
      clearTimeout(timer);
      timer = setTimeout(done, 500);
    }
  } catch {
    // closed by done()
  }
}

async function udpSend(host: string, port: number, seconds: number): Promise<void> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const payload = new Uint8Array(DATAGRAM);
  const to = { transport: "udp" as const, hostname: host, port };
  const end = performance.now() + seconds * 1000;
  let sent = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) await sock.send(payload, to);
    sent += 64;
  }
  console.log(JSON.stringify({ sent: sent * DATAGRAM }));
  sock.close();
}

async function tcpReceive(host: string, path: string): Promise<void> {
  const listener = Deno.listen({ hostname: host, port: 0 });
  console.log(JSON.stringify({ port: (listener.addr as Deno.NetAddr).port }));
  const conn = await listener.accept();
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const t0 = performance.now();
  let bytes = 0;
  const buf = new Uint8Array(1 << 16);
  for (let n; (n = await conn.read(buf)) !== null;) {
    for (let done = 0; done < n;) done += await file.write(buf.subarray(done, n));
    bytes += n;
  }
  console.log(JSON.stringify({ bytes, seconds: (performance.now() - t0) / 1000 }));
  conn.close();
  listener.close();
}

async function tcpSend(host: string, port: number, path: string): Promise<void> {
  const conn = await Deno.connect({ hostname: host, port });
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 16);
  for (let n; (n = await file.read(buf)) !== null;) {
    for (let done = 0; done < n;) done += await conn.write(buf.subarray(done, n));
  }
  conn.close();
}

// --- the run ---------------------------------------------------------------------------------

/** Starts a command (on this host, or in a lab node) with stdout piped. */
type Spawn = (cmd: string[]) => Deno.ChildProcess;

const local: Spawn = (cmd) =>
  new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "inherit" }).spawn();

/** Starts this script with a role; resolves with the child and a reader of its JSON lines. */
function role(
  spawn: Spawn,
  args: string[],
): { child: Deno.ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn([Deno.execPath(), "run", "-A", SELF, ...args]);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, string>({
      transform(chunk, out) {
        for (const l of chunk.split("\n")) if (l.trim()) out.enqueue(l);
      },
    }),
  )[Symbol.asyncIterator]();
  return { child, lines };
}

async function next(lines: AsyncIterator<string>): Promise<Record<string, number>> {
  const { value } = await lines.next();
  return JSON.parse(value);
}

/** Where the ceilings run: the receiving side's spawner and address, the sending side's. */
interface Ends {
  rx: Spawn;
  rxHost: string;
  tx: Spawn;
}

async function rawUdp(ends: Ends): Promise<number> {
  const rx = role(ends.rx, ["udp-recv", ends.rxHost]);
  const { port } = await next(rx.lines);
  const tx = role(ends.tx, ["udp-send", ends.rxHost, String(port), "3"]);
  await next(tx.lines);
  await tx.child.status;
  const { bytes, seconds } = await next(rx.lines);
  await rx.child.status;
  return bytes / 1e6 / seconds;
}

async function tcpCopy(ends: Ends, src: string, dst: string): Promise<number> {
  const rx = role(ends.rx, ["tcp-recv", ends.rxHost, dst]);
  const { port } = await next(rx.lines);
  const tx = role(ends.tx, ["tcp-send", ends.rxHost, String(port), src]);
  await tx.child.status;
  const { bytes, seconds } = await next(rx.lines);
  await rx.child.status;
  return bytes / 1e6 / seconds;
}

/** utime + stime of `pid`, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

/** Peak resident set of `pid`, in MB. */
function peakRss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function makeFile(path: string, mib: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + (i >> 9)) & 0xff;
  for (let m = 0; m < mib; m++) {
    chunk[0] = m & 0xff; // every MiB different
    for (let done = 0; done < chunk.length;) done += await file.write(chunk.subarray(done));
  }
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buf)) !== null;) hash.update(buf.subarray(0, n));
  return hash.digest("hex");
}

/** A running `p2p chat --json`: on loopback or in the lab. */
interface Chat {
  readonly child: Deno.ChildProcess;
  event(
    pred: (e: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  write(line: string): Promise<void>;
}

/**
 * Round trips of `/msg bob` to its `delivered`, one at a time, `gapMs` apart: `count` of them,
 * or, with `while`, as many as complete while it holds (a round trip that ends after it stopped
 * holding is not counted: it was not all during the transfer).
 */
async function chatRtts(
  alice: Chat,
  options: { count: number; gapMs: number; while?: () => boolean },
): Promise<number[]> {
  const rtts: number[] = [];
  const going = options.while ?? (() => true);
  while (rtts.length < options.count && going()) {
    const text = `ping-${crypto.randomUUID()}`;
    const t0 = performance.now();
    await alice.write(`/msg bob ${text}`);
    const sent = await alice.event((e) => e.event === "sent" && e.text === text, 30_000);
    await alice.event((e) => e.event === "delivered" && e.id === sent.id, 30_000);
    if (going()) rtts.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, options.gapMs));
  }
  return rtts;
}

/** The `q`-quantile of `xs` (nearest rank). */
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

interface P2pResult {
  mbps: number;
  cpuPerMb: { sender: number; receiver: number };
  rss: { sender: number; receiver: number };
  idleRss: { sender: number; receiver: number };
  /** Chat round trips, ms: idle, and during the transfer. */
  rttIdle: number[];
  rttBusy: number[];
}

/** Starts the coordinator and returns how to start a chat as `name`, and how to stop all. */
type World = { chat: (name: string) => Chat; close: () => Promise<void> };

/** Args of a chat of the bench: JSON, no history, downloads under `dir`. */
function chatArgs(name: string, server: string, dir: string): string[] {
  return ["chat", `${name}@${server}`, "--json", "--no-history", "--downloads", `${dir}/downloads`];
}

/**
 * As scripts/p2p and the compiled binary run it (scripts/compile.ts V8_FLAGS); `BENCH_V8_FLAGS`
 * replaces them, to try others (docs/FILES.md: the young generation's size sets a transfer's RSS).
 */
const V8 = { DENO_V8_FLAGS: Deno.env.get("BENCH_V8_FLAGS") ?? V8_FLAGS };

/**
 * `BENCH_CPU_PROF=DIR`: the loopback chat processes write V8 CPU profiles (`--cpu-prof`) into DIR
 * when they quit, to see where a transfer's time goes (open them in Chrome's DevTools).
 */
const CPU_PROF = Deno.env.get("BENCH_CPU_PROF");

async function loopbackWorld(dir: string): Promise<World> {
  const serve = await startServe();
  const procs: P2pProcess[] = [];
  return {
    chat: (name) => {
      const env = { XDG_DATA_HOME: join(dir, name), ...V8 };
      const runFlags = CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF}`] : [];
      const p = new P2pProcess(chatArgs(name, `127.0.0.1:${serve.port}`, dir), { env, runFlags });
      procs.push(p);
      return p;
    },
    close: async () => {
      for (const p of procs) {
        // A profile is written at a clean exit: quit, and give it a moment before the kill.
        if (CPU_PROF) {
          await p.write("/quit");
          await Promise.race([p.child.status, new Promise((r) => setTimeout(r, 5000))]);
        }
        await p.dispose();
      }
      await serve.proc.dispose();
    },
  };
}

async function labWorld(s: PairScenario, dir: string): Promise<World> {
  const env = {
    XDG_CONFIG_HOME: s.configHome,
    XDG_DATA_HOME: `${s.configHome}/data`,
    XDG_STATE_HOME: `${s.configHome}/state`,
    ...V8,
  };
  const server = new LabProcess(s.lab, s.srv, "serve", [
    "serve",
    "--host",
    "0.0.0.0",
    "--port",
    String(SERVER_PORT),
  ], env);
  s.processes.push(server);
  await server.stderr.waitFor((l) => l.includes(` UDP ${SERVER_PORT}`), 60_000, "serve");
  const nodes: Record<string, LabNode> = { alice: s.a, bob: s.b };
  return {
    chat: (name) => {
      const args = chatArgs(name, `${s.srv.ip}:${SERVER_PORT}`, dir);
      const p = new LabProcess(s.lab, nodes[name], name, args, env);
      s.processes.push(p);
      return p;
    },
    close: async () => {}, // withPair disposes of the processes and the lab
  };
}

async function p2p(world: World, src: string, mib: number, chats: number): Promise<P2pResult> {
  const chat = async (name: string) => {
    const p = world.chat(name);
    await p.event((e) => e.event === "ready", 30_000);
    return p;
  };
  try {
    const alice = await chat("alice");
    const bob = await chat("bob");
    const idleRss = { sender: peakRss(alice.child.pid), receiver: peakRss(bob.child.pid) };
    await alice.event((e) => e.event === "online" && e.user === "bob", 10_000);
    const rttIdle = await chatRtts(alice, { count: chats, gapMs: 50 });
    await alice.write(`/send bob ${src}`);
    const offer = await bob.event((e) => e.event === "file-offer", 60_000);
    const cpu0 = [cpuSeconds(alice.child.pid), cpuSeconds(bob.child.pid)];
    const t0 = performance.now();
    await bob.write(`/accept ${offer.id}`);
    // Chat during the transfer, from its first byte to its end, a message every 100 ms at most
    // (a brisk conversation; each one holds file data back for a round trip, link.ts).
    let running = true;
    const finished = bob.event((e) => e.event === "file-done", 3_600_000);
    finished.then(() => running = false, () => running = false);
    await bob.event((e) => e.event === "file-progress" && (e.bytes as number) > 0, 60_000);
    const rttBusy = await chatRtts(alice, { count: 100_000, gapMs: 100, while: () => running });
    const done = await finished;
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = [cpuSeconds(alice.child.pid), cpuSeconds(bob.child.pid)];
    const mb = mib * 1024 * 1024 / 1e6; // not mib << 20: 2048 MiB overflows 32 bits
    if (await fileHash(done.path as string) !== await fileHash(src)) {
      throw new Error("the received file differs from the source");
    }
    return {
      mbps: mb / seconds,
      cpuPerMb: { sender: (cpu1[0] - cpu0[0]) / mb, receiver: (cpu1[1] - cpu0[1]) / mb },
      rss: { sender: peakRss(alice.child.pid), receiver: peakRss(bob.child.pid) },
      idleRss,
      rttIdle,
      rttBusy,
    };
  } finally {
    await world.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      size: { type: "string", default: "200" },
      chat: { type: "string", default: "40" },
      lab: { type: "boolean", default: false },
    },
  });
  const mib = Number(values.size);
  const chats = Number(values.chat);
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-files-" });
  try {
    const src = join(dir, "src.bin");
    await makeFile(src, mib);
    const measure = async (ends: Ends, world: () => Promise<World>) => {
      const udp = await rawUdp(ends);
      const tcp = await tcpCopy(ends, src, join(dir, "tcp.bin"));
      await Deno.remove(join(dir, "tcp.bin"));
      return { udp, tcp, r: await p2p(await world(), src, mib, chats) };
    };
    const { udp, tcp, r } = values.lab
      ? await withPair("home/home", (s) => {
        const inNode = (node: LabNode): Spawn => (cmd) =>
          s.lab.spawn(node, cmd, { stdout: "piped", stderr: "inherit" });
        const ends = { rx: inNode(s.srv), rxHost: s.srv.ip, tx: inNode(s.a) };
        return measure(ends, () => labWorld(s, dir));
      })
      : await measure({ rx: local, rxHost: "127.0.0.1", tx: local }, () => loopbackWorld(dir));
    const f = (n: number, d = 1) => n.toFixed(d);
    const where = values.lab ? "NAT lab, home ↔ home" : "Loopback";
    console.log(
      `${where}, ${mib} MiB file, ${Deno.build.target}; ${navigator.hardwareConcurrency} cores`,
    );
    console.log("| what | figure |");
    console.log("| --- | --- |");
    console.log(`| raw Deno UDP, one way, ${DATAGRAM} B datagrams | ${f(udp)} MB/s |`);
    console.log(`| plain TCP copy to disk | ${f(tcp)} MB/s |`);
    console.log(
      `| p2p file transfer | ${f(r.mbps)} MB/s (${f(r.mbps / udp * 100, 0)} % of raw UDP) |`,
    );
    console.log(
      `| CPU per MB (sender, receiver) | ${f(r.cpuPerMb.sender * 1000)} ms, ` +
        `${f(r.cpuPerMb.receiver * 1000)} ms |`,
    );
    console.log(
      `| peak RSS (sender, receiver); at login | ${f(r.rss.sender, 0)} MB, ` +
        `${f(r.rss.receiver, 0)} MB; ${f(r.idleRss.sender, 0)} MB, ${
          f(r.idleRss.receiver, 0)
        } MB |`,
    );
    const [idle50, busy50] = [quantile(r.rttIdle, 0.5), quantile(r.rttBusy, 0.5)];
    console.log(
      `| chat p50 round trip, idle / during (${r.rttIdle.length} / ${r.rttBusy.length}) | ` +
        `${f(idle50)} ms / ${f(busy50)} ms (${f(busy50 / idle50)}x) |`,
    );
    console.log(
      `| chat p90 round trip, idle / during | ${f(quantile(r.rttIdle, 0.9))} ms / ` +
        `${f(quantile(r.rttBusy, 0.9))} ms |`,
    );
    // The goals of issue 14, judged on this run's figures.
    const met = (ok: boolean) => ok ? "met" : "NOT met";
    const cpu = Math.max(r.cpuPerMb.sender, r.cpuPerMb.receiver) * 1000;
    console.log(`| goal: p2p ≥ 60 % of raw UDP | ${met(r.mbps >= 0.6 * udp)} |`);
    console.log(
      `| goal: CPU ≤ ${CPU_GOAL_MS} ms per MB each side (60 % of 48 MB/s on one core) | ` +
        `${met(cpu <= CPU_GOAL_MS)} (${f(cpu)} ms) |`,
    );
    console.log(
      `| goal: peak RSS ≤ ${RSS_GOAL_MB} MB each side, flat with the size | ` +
        `${met(Math.max(r.rss.sender, r.rss.receiver) <= RSS_GOAL_MB)} ` +
        `(${f(r.rss.sender, 0)} MB, ${f(r.rss.receiver, 0)} MB) |`,
    );
    console.log(`| goal: chat p50 during ≤ 2× idle | ${met(busy50 <= 2 * idle50)} |`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const [mode, ...rest] = Deno.args;
if (mode === "udp-recv") await udpReceive(rest[0]);
else if (mode === "udp-send") await udpSend(rest[0], Number(rest[1]), Number(rest[2]));
else if (mode === "tcp-recv") await tcpReceive(rest[0], rest[1]);
else if (mode === "tcp-send") await tcpSend(rest[0], Number(rest[1]), rest[2]);
else await main();
