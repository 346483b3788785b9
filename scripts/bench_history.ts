/**
 * `deno task bench:history`: what the history costs a chat message's round trip, against no
 * history, in one run. Three pairs of real {@linkcode Peer}s on loopback, through one
 * coordinator: no history, history (synchronous=NORMAL, the default), history with
 * synchronous=FULL. A round trip is a message sent and its `delivered` back, so it holds the
 * three records of a message: the sender's, the receiver's (before it is shown and acknowledged),
 * the sender's record of its fate; the history queues them and writes them in batches (every
 * 20 ms, `history.ts`), which the round trips meet now and then. The first two pairs take turns, one message
 * each, so that both see the same machine; the third, whose waits on the disk would spill into
 * the others' turns, runs after them. Then a burst of messages per pair, and the bytes the
 * history file takes per message.
 *
 * All in one thread by default, so every write of either side is on the round trip, in turn.
 * `--receiver-thread` runs each receiving chat in a worker, as two chats are two processes:
 * then work the sender does after its datagram has left runs beside the receiver's.
 *
 *   scripts/deno task bench:history [--round-trips N] [--burst N] [--bytes N] [--receiver-thread]
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Coordinator } from "../lib/coordinator.ts";
import { Peer } from "../lib/peer.ts";
import type { PeerEvent } from "../lib/peer/events.ts";
import { History, historyPath } from "../lib/store/history.ts";
import type { MessageLog } from "../lib/store/message_log.ts";
import type { ReceiverSetup } from "./bench_history_receiver.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "round-trips": { type: "string", default: "1000" },
    burst: { type: "string", default: "1000" },
    bytes: { type: "string", default: "100" },
    "receiver-thread": { type: "boolean", default: false },
  },
});
const ROUND_TRIPS = Number(values["round-trips"]);
const BURST = Number(values.burst);
const TEXT = "x".repeat(Number(values.bytes));
const THREAD = values["receiver-thread"];

type Mode = "off" | "normal" | "full";

interface Pair {
  mode: Mode;
  send(): Promise<number>;
  close(): Promise<void>;
  sender: MessageLog;
}

async function pair(coordinator: Coordinator, root: string, mode: Mode): Promise<Pair> {
  const configDir = join(root, "config");
  const dataDir = join(root, `data-${mode}`);
  const names = [`a-${mode}`, `b-${mode}`];
  const logs: MessageLog[] = [];
  const peers: Peer[] = [];
  const waiting = new Map<number, () => void>();
  let receiver: Worker | undefined;
  if (THREAD) {
    // Logged in first, so that the sender finds it online.
    receiver = new Worker(new URL("./bench_history_receiver.ts", import.meta.url), {
      type: "module",
    });
    const ready = new Promise((resolve) => receiver!.onmessage = resolve);
    receiver.postMessage(
      {
        server: { host: "127.0.0.1", port: coordinator.udpPort },
        username: names[1],
        configDir,
        dataDir,
        mode,
      } satisfies ReceiverSetup,
    );
    await ready;
  }
  for (const name of THREAD ? names.slice(0, 1) : names) {
    const history = mode === "off"
      ? undefined
      : await History.open({ username: name, configDir, dataDir, synchronous: mode });
    if (history) logs.push(history);
    const onEvent = (e: PeerEvent) => {
      if (e.event === "delivered") waiting.get(e.id)?.();
      if (e.event === "undelivered") throw new Error(`undelivered: ${e.reason}`);
    };
    peers.push(
      await Peer.start({
        server: { host: "127.0.0.1", port: coordinator.udpPort },
        username: name,
        bind: { host: "127.0.0.1", port: 0 },
        configDir,
        history,
        onEvent,
      }),
    );
  }
  const send = () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      const id = peers[0].send(names[1], TEXT)!;
      waiting.set(id, () => {
        waiting.delete(id);
        resolve(performance.now() - t0);
      });
    });
  const close = async () => {
    for (const p of peers) await p.close();
    for (const l of logs) l.close();
    if (receiver) {
      const closed = new Promise((resolve) => receiver!.onmessage = resolve);
      receiver.postMessage("close");
      await closed;
    }
  };
  // The first message finds the path and makes the session.
  await send();
  return { mode, send, close, sender: logs[0] };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

// Its own TCP port (not the UDP port's number, which may be taken for TCP on a busy machine).
const coordinator = await Coordinator.start({
  host: "127.0.0.1",
  port: 0,
  tcpPort: 0,
  log: () => {},
});
const root = await Deno.makeTempDir({ prefix: "p2p-bench-history-" });
try {
  const pairs = [
    await pair(coordinator, root, "off"),
    await pair(coordinator, root, "normal"),
    await pair(coordinator, root, "full"),
  ];
  const rtts = new Map<Mode, number[]>(pairs.map((p) => [p.mode, []]));
  for (const group of [pairs.slice(0, 2), pairs.slice(2)]) {
    for (let i = 0; i < ROUND_TRIPS; i++) {
      for (const p of group) rtts.get(p.mode)!.push(await p.send());
    }
  }
  const perSecond = new Map<Mode, number>();
  for (const p of pairs) {
    const started = performance.now();
    await Promise.all(Array.from({ length: BURST }, () => p.send()));
    perSecond.set(p.mode, BURST / ((performance.now() - started) / 1000));
  }
  for (const p of pairs) await p.close();

  const label: Record<Mode, string> = {
    off: "no history (--no-history)",
    normal: "history (default: synchronous=NORMAL)",
    full: "history, synchronous=FULL",
  };
  const base = percentile(rtts.get("off")!.toSorted((a, b) => a - b), 0.5);
  console.log(
    `loopback, ${ROUND_TRIPS} round trips per row, taking turns; msgs/s from a burst of ` +
      `${BURST}; ${TEXT.length}-byte messages; receivers ` +
      (THREAD ? "in worker threads" : "in the same thread"),
  );
  console.log(
    "what                                   RTT p50 ms  RTT p99 ms  p50 vs off  msgs/s",
  );
  console.log(
    "-------------------------------------  ----------  ----------  ----------  ------",
  );
  for (const [mode, list] of rtts) {
    const sorted = list.toSorted((a, b) => a - b);
    const p50 = percentile(sorted, 0.5);
    const change = mode === "off"
      ? ""
      : `${p50 >= base ? "+" : ""}${Math.round((p50 / base - 1) * 100)} %`;
    console.log(
      `${label[mode].padEnd(37)}  ${p50.toFixed(2).padStart(10)}  ` +
        `${percentile(sorted, 0.99).toFixed(2).padStart(10)}  ${change.padStart(10)}  ` +
        `${Math.round(perSecond.get(mode)!)}`,
    );
  }
  // Closed: the WAL is checkpointed into the file, so its size is all there is.
  const rows = ROUND_TRIPS + BURST + 1;
  for (const mode of ["normal", "full"] as const) {
    const file = historyPath(join(root, `data-${mode}`), `a-${mode}`);
    const { size } = await Deno.stat(file);
    console.log(
      `history file (${mode}): ${size} bytes for ${rows} messages sent, ` +
        `${Math.round(size / rows)} bytes per message`,
    );
  }
} finally {
  await coordinator.close();
  await Deno.remove(root, { recursive: true });
}
