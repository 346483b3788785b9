/**
 * `deno run -A scripts/trace_first_msg.ts [--pair home/open] [--trials 3] [--settle-ms 0]`:
 * where the time of a first direct message goes, step by step, for a new pair in the NAT lab
 * (root needed). It captures every packet on alice's and bob's hosts (tcpdump), sends one `/msg`
 * from alice as soon as both chats are online (or `--settle-ms` later), and prints a timeline relative to that `/msg`: alice's `connect`, the
 * coordinator's `Introduce` on each side, the priming probes (with their TTL), the first probe
 * each way, the first ack, the Noise XX frames (HS1..HS3), the first DATA frames, and when the
 * harness saw `message` at bob and `delivered` at alice. Packet times are the kernel's capture
 * times on each host; `/msg`, `message` and `delivered` are this process's (the same clock,
 * CLOCK_REALTIME, since the lab shares one kernel).
 *
 * A diagnostic for docs/NAT.md ("Where the time of a first message goes"); `bench:nat` measures
 * the totals over many trials.
 * @module
 */
import { parseArgs } from "node:util";
import { Lab } from "../tests/lab/netlab.ts";
import {
  Capture,
  type ChatEvent,
  type PairName,
  PAIRS,
  SERVER_PORT,
  startChat,
  withPair,
} from "../tests/support/lab_chat.ts";
import { sleep } from "../tests/support/wait.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    pair: { type: "string", default: "home/open" },
    trials: { type: "string", default: "1" },
    "settle-ms": { type: "string", default: "0" },
  },
});
const pair = values.pair as PairName;
if (!PAIRS.some((p) => p.name === pair)) {
  throw new Error(`Unknown pair '${pair}': one of ${PAIRS.map((p) => p.name)}`);
}

/** One UDP datagram of a capture. */
interface Packet {
  /** Capture time, ms since the epoch. */
  at: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  ttl: number;
  payload: Uint8Array;
}

/**
 * The IPv4 UDP datagrams of a pcap file captured with `-i any` (Linux cooked headers, SLL or
 * SLL2), each once: a packet seen on two interfaces of the node (in and out) keeps the first.
 */
function udpPackets(pcap: Uint8Array): Packet[] {
  const v = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
  const little = v.getUint32(0, true) === 0xa1b2c3d4;
  const nanos = [0xa1b23c4d, 0x4d3cb2a1].includes(v.getUint32(0, true));
  const linktype = v.getUint32(20, little);
  const linkLen = linktype === 276 ? 20 : linktype === 113 ? 16 : undefined;
  if (linkLen === undefined) throw new Error(`Unsupported pcap link type ${linktype}`);
  const out: Packet[] = [];
  for (let off = 24; off + 16 <= pcap.length;) {
    const sec = v.getUint32(off, little);
    const frac = v.getUint32(off + 4, little);
    const caplen = v.getUint32(off + 8, little);
    const p = off + 16 + linkLen;
    off += 16 + caplen;
    if (pcap[p] >> 4 !== 4 || pcap[p + 9] !== 17) continue; // IPv4 UDP only
    const ihl = (pcap[p] & 15) * 4;
    const udp = p + ihl;
    out.push({
      at: sec * 1000 + (nanos ? frac / 1e6 : frac / 1e3),
      src: pcap.subarray(p + 12, p + 16).join("."),
      dst: pcap.subarray(p + 16, p + 20).join("."),
      sport: v.getUint16(udp, false),
      dport: v.getUint16(udp + 2, false),
      ttl: pcap[p + 8],
      payload: pcap.subarray(udp + 8, off),
    });
  }
  return out;
}

const FRAMES: Record<number, string> = {
  0x10: "PROBE",
  0x11: "PROBE_ACK",
  0x12: "HS1",
  0x13: "HS2",
  0x14: "HS3",
  0x15: "DATA",
  0x16: "COOKIE",
  0x18: "RELAY",
  0x19: "RELAYED",
};

/** What a datagram is: a frame type, or the first word of the coordinator's text. */
function what(p: Packet): string {
  const first = p.payload[0];
  if (FRAMES[first]) return FRAMES[first];
  return new TextDecoder().decode(p.payload.subarray(0, 24)).split(/[,\n]/)[0];
}

async function trace(n: number): Promise<void> {
  await withPair(pair, async (s) => {
    const dir = await Deno.makeTempDir({ prefix: "p2p-trace-" });
    try {
      const caps = [await Capture.start(s.lab, s.a, dir), await Capture.start(s.lab, s.b, dir)];
      const chat = await startChat(s);
      // 0 (the default) as in bench:nat: the message goes as soon as both see each other online.
      await sleep(Number(values["settle-ms"]));
      const t0 = Date.now();
      const p0 = performance.now();
      await chat.alice.write(`/msg bob first ${n}`);
      const isMsg = (e: ChatEvent) => e.event === "message" && e.text === `first ${n}`;
      const got = await chat.bob.event(isMsg, 30_000, "first message");
      const done = await chat.alice.event((e) => e.event === "delivered", 30_000, "delivered");
      await sleep(100);
      const [pa, pb] = await Promise.all(caps.map((c) => c.stop()));
      const rows: [number, string][] = [[0, "alice: /msg written"]];
      const seen = new Set<string>();
      const once = (key: string, at: number, text: string) => {
        if (seen.has(key)) return;
        seen.add(key);
        rows.push([at - t0, text]);
      };
      for (const [who, pcap, host] of [["alice", pa, s.a], ["bob", pb, s.b]] as const) {
        for (const p of udpPackets(pcap)) {
          if (p.at < t0 - 5) continue;
          const k = what(p);
          const out = p.src === host.ip;
          const coord = (out ? p.dport : p.sport) === SERVER_PORT;
          const dir = out ? "→" : "←";
          const peerOrSrv = coord
            ? "coordinator"
            : (out ? `${p.dst}:${p.dport}` : `${p.src}:${p.sport}`);
          if (k === "PROBE" && out && p.ttl < 10) {
            once(
              `${who} prime ${p.ttl}`,
              p.at,
              `${who}: priming probe TTL ${p.ttl} → ${peerOrSrv}`,
            );
            continue;
          }
          once(`${who} ${k} ${dir} ${coord}`, p.at, `${who}: ${k} ${dir} ${peerOrSrv}`);
        }
      }
      rows.push([got.at - p0, "bob: message event seen"]);
      rows.push([done.at - p0, "alice: delivered event seen"]);
      rows.sort((x, y) => x[0] - y[0]);
      console.log(`\n${pair} trial ${n + 1}: path ${got.path}`);
      for (const [ms, text] of rows) console.log(`${ms.toFixed(1).padStart(8)} ms  ${text}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

if (import.meta.main) {
  const reason = await Lab.available();
  if (reason !== null) {
    console.error(`trace_first_msg: ${reason}`);
    Deno.exit(1);
  }
  for (let n = 0; n < Number(values.trials); n++) await trace(n);
}
