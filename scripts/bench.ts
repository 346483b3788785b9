/**
 * `deno task bench`: our encrypted, reliable messages against raw UDP, on loopback, in one run.
 *
 * For each loss rate (0 % and 10 %, dropped at random on receipt) it measures
 * - raw UDP ping-pong: round trips one at a time (a lost datagram is resent after 200 ms);
 * - p2p: a {@linkcode Link} pair over real UDP sockets (Noise XX session, reliable channel):
 *   round trip = send a message, wait for its `delivered`; throughput = send a burst, wait for all.
 *
 *   scripts/deno task bench [--messages N] [--round-trips N]
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeyPair } from "../lib/crypto/noise.ts";
import { Link } from "../lib/peer/link.ts";
import type { Endpoint } from "../lib/protocol/endpoint.ts";
import { decodeFrame, FrameError } from "../lib/protocol/frame.ts";
import { UdpSocket } from "../lib/net/udp.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    messages: { type: "string", default: "2000" },
    "round-trips": { type: "string", default: "500" },
  },
});
const MESSAGES = Number(values.messages);
const ROUND_TRIPS = Number(values["round-trips"]);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Raw UDP: one datagram out, the echo back; resend after 200 ms if either was dropped. */
async function rawUdp(loss: number): Promise<{ rtts: number[]; perSecond: number }> {
  const a = await UdpSocket.bind({ host: "127.0.0.1" });
  const b = await UdpSocket.bind({ host: "127.0.0.1" });
  b.onMessage((data, from) => {
    if (Math.random() >= loss) b.send(data, from);
  });
  const rtts: number[] = [];
  const payload = new Uint8Array(100);
  try {
    const started = performance.now();
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        let timer: ReturnType<typeof setTimeout>;
        const attempt = () => {
          a.send(payload, b.local);
          timer = setTimeout(attempt, 200);
        };
        a.onMessage(() => {
          if (Math.random() < loss) return;
          clearTimeout(timer);
          resolve();
        });
        attempt();
      });
      rtts.push(performance.now() - t0);
    }
    return { rtts, perSecond: ROUND_TRIPS / ((performance.now() - started) / 1000) };
  } finally {
    await a.close();
    await b.close();
  }
}

/** Two links over real loopback sockets, dropping `loss` of datagrams on receipt. */
async function linkPair(loss: number) {
  const sockets = {
    alice: await UdpSocket.bind({ host: "127.0.0.1" }),
    bob: await UdpSocket.bind({ host: "127.0.0.1" }),
  };
  const keys = { alice: generateKeyPair(), bob: generateKeyPair() };
  const settled = new Map<number, () => void>();
  let received = 0;
  const links = {} as Record<"alice" | "bob", Link>;
  const verifyKey = () => true;
  for (const me of ["alice", "bob"] as const) {
    const peer = me === "alice" ? "bob" : "alice";
    const transport = {
      sendTo: (frame: Uint8Array, to: Endpoint, ttl?: number) =>
        sockets[me].send(frame, to, { ttl }),
      sendViaRelay: () => {},
      openSockets: () => Promise.reject(new Error("no extra sockets here")),
      closeSockets: () => {},
      localNat: () => undefined,
      requestIntroduction: () => {},
    };
    const events = {
      onMessage: () => received++,
      onDelivered: (id: number) => settled.get(id)?.(),
      onUndelivered: (id: number, reason: string) => {
        throw new Error(`message ${id} undelivered: ${reason}`);
      },
      onPath: () => {},
    };
    const instanceId = me === "alice" ? 1 : 2;
    const staticKeyPair = keys[me];
    links[me] = new Link({ me, peer, staticKeyPair, instanceId, verifyKey, transport, events });
    sockets[me].onMessage((data, from) => {
      if (Math.random() < loss) return;
      try {
        links[me].receive(decodeFrame(data), from);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
      }
    });
  }
  const token = crypto.getRandomValues(new Uint8Array(16));
  for (const me of ["alice", "bob"] as const) {
    const peer = me === "alice" ? "bob" : "alice";
    links[me].introduce({
      candidates: [{ kind: "public", endpoint: sockets[peer].local }],
      key: keys[peer].publicKey,
      token,
    });
  }
  let nextId = 1;
  const send = (text: string) =>
    new Promise<void>((resolve) => {
      const id = nextId++;
      settled.set(id, resolve);
      links.alice.send({ group: false, id, text });
    });
  const close = async () => {
    links.alice.close("bench over");
    links.bob.close("bench over");
    await sockets.alice.close();
    await sockets.bob.close();
  };
  return { send, close, received: () => received };
}

async function ours(loss: number): Promise<{ rtts: number[]; perSecond: number }> {
  const pair = await linkPair(loss);
  try {
    await pair.send("warm-up: path and handshake");
    const rtts: number[] = [];
    const text = "x".repeat(100);
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const t0 = performance.now();
      await pair.send(text);
      rtts.push(performance.now() - t0);
    }
    const started = performance.now();
    await Promise.all(Array.from({ length: MESSAGES }, () => pair.send(text)));
    return { rtts, perSecond: MESSAGES / ((performance.now() - started) / 1000) };
  } finally {
    await pair.close();
  }
}

const rows: string[][] = [];
for (const loss of [0, 0.1]) {
  for (
    const [name, run] of [["raw UDP ping-pong", rawUdp], ["p2p encrypted reliable", ours]] as const
  ) {
    const { rtts, perSecond } = await run(loss);
    rtts.sort((x, y) => x - y);
    rows.push([
      name,
      `${loss * 100}%`,
      perSecond.toFixed(0),
      percentile(rtts, 0.5).toFixed(2),
      percentile(rtts, 0.99).toFixed(2),
    ]);
  }
}
const header = ["what", "loss", "msgs/s", "RTT p50 ms", "RTT p99 ms"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
console.log(
  `loopback, ${ROUND_TRIPS} round trips one at a time; p2p msgs/s from a burst of ` +
    `${MESSAGES} (raw UDP msgs/s = round trips/s)`,
);
console.log(line(header));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const r of rows) console.log(line(r));
