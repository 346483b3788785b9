/**
 * `deno task bench:files [--size MIB] [--chat N]`: file transfers against their ceilings, on
 * loopback, in one run (docs/FILES.md has the table):
 *
 * - raw Deno UDP, one way, 1,200-byte unencrypted datagrams sent as fast as they go (the ceiling);
 * - a plain TCP copy of the same file, written to disk (what a user compares with);
 * - p2p: `p2p serve` and two `p2p chat --json` processes, `/send` then `/accept`: MB/s, CPU
 *   seconds per MB of both chat processes, their peak RSS (VmHWM), and chat round trips
 *   (`/msg` to its `delivered`) while idle and during the transfer.
 *
 * The receiving sides run in processes of their own (this script started again with a role), so
 * that sender and receiver do not share an event loop, as in real use.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { P2pProcess, startServe } from "../tests/support/proc.ts";

const SELF = new URL(import.meta.url).pathname;
const DATAGRAM = 1200;

// --- roles: the receiving (and sending) ends of the ceilings, in processes of their own -------

async function udpReceive(): Promise<void> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
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

async function udpSend(port: number, seconds: number): Promise<void> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const payload = new Uint8Array(DATAGRAM);
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const end = performance.now() + seconds * 1000;
  let sent = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) await sock.send(payload, to);
    sent += 64;
  }
  console.log(JSON.stringify({ sent: sent * DATAGRAM }));
  sock.close();
}

async function tcpReceive(path: string): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
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

async function tcpSend(port: number, path: string): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 16);
  for (let n; (n = await file.read(buf)) !== null;) {
    for (let done = 0; done < n;) done += await conn.write(buf.subarray(done, n));
  }
  conn.close();
}

// --- the run ---------------------------------------------------------------------------------

/** Starts this script with a role; resolves with the child and a reader of its JSON lines. */
function role(args: string[]): { child: Deno.ChildProcess; lines: AsyncIterator<string> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SELF, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
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

async function rawUdp(): Promise<number> {
  const rx = role(["udp-recv"]);
  const { port } = await next(rx.lines);
  const tx = role(["udp-send", String(port), "3"]);
  await next(tx.lines);
  await tx.child.status;
  const { bytes, seconds } = await next(rx.lines);
  await rx.child.status;
  return bytes / 1e6 / seconds;
}

async function tcpCopy(src: string, dst: string): Promise<number> {
  const rx = role(["tcp-recv", dst]);
  const { port } = await next(rx.lines);
  const tx = role(["tcp-send", String(port), src]);
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Round trips of `/msg bob` to its `delivered`, `count` of them, one at a time. */
async function chatRtts(alice: P2pProcess, count: number, gapMs: number): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < count; i++) {
    const text = `ping-${crypto.randomUUID()}`;
    const t0 = performance.now();
    await alice.write(`/msg bob ${text}`);
    const sent = await alice.event((e) => e.event === "sent" && e.text === text, 30_000);
    await alice.event((e) => e.event === "delivered" && e.id === sent.id, 30_000);
    rtts.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return rtts;
}

interface P2pResult {
  mbps: number;
  cpuPerMb: { sender: number; receiver: number };
  rss: { sender: number; receiver: number };
  idleRss: { sender: number; receiver: number };
  rttIdle: number;
  rttBusy: number;
  chats: number;
}

async function p2p(src: string, dir: string, mib: number, chats: number): Promise<P2pResult> {
  const serve = await startServe();
  const downloads = join(dir, "downloads");
  const procs: P2pProcess[] = [];
  const chat = async (name: string) => {
    const p = new P2pProcess([
      "chat",
      `${name}@127.0.0.1:${serve.port}`,
      "--json",
      "--no-history",
      "--downloads",
      downloads,
    ], {
      // As scripts/p2p and the compiled binary run it (scripts/compile.ts V8_FLAGS).
      env: { XDG_DATA_HOME: join(dir, name), DENO_V8_FLAGS: "--max-semi-space-size=8" },
    });
    procs.push(p);
    await p.event((e) => e.event === "ready", 20_000);
    return p;
  };
  try {
    const alice = await chat("alice");
    const bob = await chat("bob");
    const idleRss = { sender: peakRss(alice.child.pid), receiver: peakRss(bob.child.pid) };
    await alice.event((e) => e.event === "online" && e.user === "bob", 10_000);
    const rttIdle = median(await chatRtts(alice, chats, 50));
    await alice.write(`/send bob ${src}`);
    const offer = await bob.event((e) => e.event === "file-offer", 60_000);
    const cpu0 = [cpuSeconds(alice.child.pid), cpuSeconds(bob.child.pid)];
    const t0 = performance.now();
    await bob.write(`/accept ${offer.id}`);
    // Chat during the transfer, while it runs.
    await bob.event((e) => e.event === "file-progress" && (e.bytes as number) > 0, 60_000);
    const busy = await chatRtts(alice, chats, 100);
    const done = await bob.event((e) => e.event === "file-done", 3_600_000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = [cpuSeconds(alice.child.pid), cpuSeconds(bob.child.pid)];
    const mb = (mib << 20) / 1e6;
    if (await fileHash(done.path as string) !== await fileHash(src)) {
      throw new Error("the received file differs from the source");
    }
    return {
      mbps: mb / seconds,
      cpuPerMb: { sender: (cpu1[0] - cpu0[0]) / mb, receiver: (cpu1[1] - cpu0[1]) / mb },
      rss: { sender: peakRss(alice.child.pid), receiver: peakRss(bob.child.pid) },
      idleRss,
      rttIdle,
      rttBusy: median(busy),
      chats,
    };
  } finally {
    for (const p of procs) await p.dispose();
    await serve.proc.dispose();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { size: { type: "string", default: "200" }, chat: { type: "string", default: "20" } },
  });
  const mib = Number(values.size);
  const chats = Number(values.chat);
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-files-" });
  try {
    const src = join(dir, "src.bin");
    await makeFile(src, mib);
    const udp = await rawUdp();
    const tcp = await tcpCopy(src, join(dir, "tcp.bin"));
    await Deno.remove(join(dir, "tcp.bin"));
    const r = await p2p(src, dir, mib, chats);
    const f = (n: number, d = 1) => n.toFixed(d);
    console.log(
      `Loopback, ${mib} MiB file, ${Deno.build.target}; ${navigator.hardwareConcurrency} cores`,
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
    console.log(
      `| chat p50 round trip, idle / during (${r.chats} each) | ${f(r.rttIdle)} ms / ` +
        `${f(r.rttBusy)} ms (${f(r.rttBusy / r.rttIdle)}x) |`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const [mode, ...rest] = Deno.args;
if (mode === "udp-recv") await udpReceive();
else if (mode === "udp-send") await udpSend(Number(rest[0]), Number(rest[1]));
else if (mode === "tcp-recv") await tcpReceive(rest[0]);
else if (mode === "tcp-send") await tcpSend(Number(rest[0]), rest[1]);
else await main();
