/**
 * `deno task bench:nat`: the messenger through the NAT lab's real Linux NATs (root needed), per
 * pair of NATs, over several trials, each in a fresh lab with a fresh coordinator and chats:
 * - **ok**: every message of the trial delivered, and the pair reached the path it should;
 * - **direct**: trials in which a message arrived on a direct path;
 * - **first direct message**: from alice's first `/msg` to the arrival (bob's `message` event)
 *   of the first message that came directly (she sends one as soon as both chats are online, then
 *   one every 500 ms until one goes direct, for at most 20 s), p50, and p90 from 10 samples on,
 *   over the trials that got one. For a new pair this is introduction, probing, Noise handshake
 *   and the message itself. Pairs that need a birthday search start {@linkcode
 *   NAT_REPORT_SETTLE_MS} after both are online (see there); the others at once;
 * - **goal**, and whether it is **met** (issue 15): every trial ok, and a first direct message
 *   p50 ≤ 50 ms for pairs that go direct without a birthday search, ≤ 1 s with one; pairs
 *   expected on the relay: every trial ok; symmetric ↔ symmetric with a port mapping: every
 *   trial direct. A pair added to `PAIRS` gets the goal of its kind;
 * - **relay share**: of all the messages of the trials (the ones above plus 10 each way after
 *   the path settles), the share that arrived through the coordinator's relay;
 * - **relay pkts**: RELAY frames the coordinator received per trial (nft counter on its host);
 * - **bob ready in**: p50 from starting bob's `p2p chat` process to its `ready` event (loading,
 *   the in-memory warm-up, login): what a chat spends before it can be written to at once.
 *
 * Then one bulk run: home ↔ home, loss on both routers, N messages each way written at once:
 * how many arrive, exactly once and in order, and how long until every one is settled.
 *
 *     scripts/deno task bench:nat [--trials N] [--pairs home/home,open/open]
 *                                 [--loss-messages N] [--loss-percent P]
 * @module
 */
import { parseArgs } from "node:util";
import { Lab } from "../tests/lab/netlab.ts";
import {
  addRelayCounters,
  type ChatEvent,
  type Exchange,
  exchange,
  type LabProcess,
  NAT_REPORT_SETTLE_MS,
  PAIRS,
  type PairSpec,
  readRelayCounters,
  type RunningChat,
  startChat,
  withPair,
} from "../tests/support/lab_chat.ts";
import { sleep } from "../tests/support/wait.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    trials: { type: "string", default: "5" },
    pairs: { type: "string", default: PAIRS.map((p) => p.name).join(",") },
    "loss-messages": { type: "string", default: "1000" },
    "loss-percent": { type: "string", default: "20" },
  },
});
const TRIALS = positiveInt(values.trials, "--trials");
const LOSS_MESSAGES = Number(values["loss-messages"]);
const LOSS_PERCENT = Number(values["loss-percent"]);
const pairs = values.pairs.split(",").map((name) => {
  const spec = PAIRS.find((p) => p.name === name);
  if (!spec) throw new Error(`Unknown pair '${name}': one of ${PAIRS.map((p) => p.name)}`);
  return spec;
});
/** How long a trial keeps sending until a message goes direct. */
const DIRECT_WITHIN_MS = 20_000;
/** For a pair expected on the relay: how long to watch for a (surprising) direct path. */
const RELAY_WATCH_MS = 6_000;
const STEADY_MESSAGES = 10;

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);
  return n;
}

/** Goal of p50 first direct message for a pair that goes direct (issue 15). */
const DIRECT_GOAL_MS = 50;
/** The same for a pair that needs a birthday search. */
const BIRTHDAY_GOAL_MS = 1000;

/**
 * A pair's latency goal in ms; undefined for one expected on the relay, and for symmetric ↔
 * symmetric with a port mapping, whose goal is every trial direct (issue 15).
 */
function goalMs(spec: PairSpec): number | undefined {
  if (spec.expected !== "direct" || spec.mapped) return undefined;
  return spec.birthday ? BIRTHDAY_GOAL_MS : DIRECT_GOAL_MS;
}

interface Trial {
  ok: boolean;
  /** Ms from the first `/msg` to the first direct message's arrival, if one went direct. */
  firstDirectMs: number | undefined;
  messages: number;
  viaRelay: number;
  relayPackets: number;
  /** Ms from spawning bob's chat to its `ready` event. */
  readyMs: number;
  note?: string;
}

async function trial(spec: PairSpec, n: number): Promise<Trial> {
  return await withPair(spec.name, async (s) => {
    await addRelayCounters(s);
    const chat: RunningChat = await startChat(s);
    const ready = await chat.bob.event((e) => e.event === "ready", 1000, "ready");
    const readyMs = ready.at - chat.bob.startedAt;
    if (spec.birthday) await sleep(NAT_REPORT_SETTLE_MS);
    const start = performance.now();
    const results: Exchange[] = [];
    let firstDirectMs: number | undefined;
    try {
      // Alice keeps trying every 500 ms until a message arrives directly.
      const watch = spec.expected === "direct" ? DIRECT_WITHIN_MS : RELAY_WATCH_MS;
      const inFlight: Promise<void>[] = [];
      let failure: Error | undefined;
      let k = 0;
      while (firstDirectMs === undefined && !failure && performance.now() - start < watch) {
        const text = `trial ${n} try ${k++}`;
        inFlight.push(
          exchange(chat.alice, chat.bob, text, 45_000).then((r) => {
            results.push(r);
            if (r.path === "direct") {
              const ms = r.message.at - start;
              firstDirectMs = Math.min(firstDirectMs ?? ms, ms);
            }
          }, (err) => {
            failure ??= err;
          }),
        );
        for (let t = 0; t < 10 && firstDirectMs === undefined && !failure; t++) await sleep(50);
      }
      await Promise.all(inFlight);
      if (failure) throw failure;
      for (let i = 0; i < STEADY_MESSAGES; i++) {
        results.push(await exchange(chat.alice, chat.bob, `trial ${n} steady a${i}`, 45_000));
        results.push(await exchange(chat.bob, chat.alice, `trial ${n} steady b${i}`, 45_000));
      }
    } catch (err) {
      return {
        ok: false,
        firstDirectMs,
        messages: results.length,
        viaRelay: results.filter((r) => r.path === "relay").length,
        relayPackets: (await readRelayCounters(s)).relay,
        readyMs,
        note: (err as Error).message.slice(0, 200),
      };
    }
    const reached = spec.expected === "direct" ? firstDirectMs !== undefined : true;
    return {
      ok: reached,
      firstDirectMs,
      messages: results.length,
      viaRelay: results.filter((r) => r.path === "relay").length,
      relayPackets: (await readRelayCounters(s)).relay,
      readyMs,
      note: reached ? undefined : "no direct path",
    };
  });
}

function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function ms(v: number | undefined): string {
  return v === undefined ? "–" : `${Math.round(v)} ms`;
}

/** Samples from which a p90 is worth showing. */
const P90_SAMPLES = 10;

async function lossRun(): Promise<string> {
  return await withPair("home/home", async (s) => {
    const chat = await startChat(s);
    // Loss starts once the chat is set up (introduced, direct, session keys), as in
    // tests/nat_matrix_test.ts: what is measured is delivery.
    await exchange(chat.alice, chat.bob, "before the loss");
    await exchange(chat.bob, chat.alice, "reply before the loss");
    const since = { alice: chat.alice.events.items.length, bob: chat.bob.events.items.length };
    const after = (p: LabProcess) => p.events.items.slice(since[p.name as "alice" | "bob"]);
    for (const r of s.routers) await s.lab.setLoss(r, LOSS_PERCENT);
    const texts = (who: string) =>
      Array.from({ length: LOSS_MESSAGES }, (_, i) => `${who} ${String(i).padStart(5, "0")}`);
    const sent = { alice: texts("alice"), bob: texts("bob") };
    const start = performance.now();
    await Promise.all([
      chat.alice.write(...sent.alice.map((t) => `/msg bob ${t}`)),
      chat.bob.write(...sent.bob.map((t) => `/msg alice ${t}`)),
    ]);
    const settled = (e: ChatEvent) => e.event === "delivered" || e.event === "undelivered";
    const done = (p: LabProcess) =>
      p.events.waitFor(() => after(p).filter(settled).length >= LOSS_MESSAGES, 600_000, "settled");
    await Promise.all([done(chat.alice), done(chat.bob)]);
    const seconds = (performance.now() - start) / 1000;
    const lines: string[] = [];
    for (const [from, to] of [[chat.alice, chat.bob], [chat.bob, chat.alice]] as const) {
      const delivered = after(from).filter((e) => e.event === "delivered").length;
      const got = after(to).filter((e) => e.event === "message" && e.from === from.name)
        .map((e) => String(e.text));
      const expected = sent[from.name as "alice" | "bob"];
      const unique = new Set(got).size;
      const inOrder = got.every((t, i) => i === 0 || t > got[i - 1]);
      const complete = got.length === expected.length && got.every((t, i) => t === expected[i]);
      lines.push(
        `| ${from.name} → ${to.name} | ${delivered} / ${LOSS_MESSAGES} | ${got.length} | ` +
          `${got.length - unique} | ${inOrder ? "yes" : "no"} | ${complete ? "yes" : "no"} |`,
      );
    }
    return [
      `home ↔ home, ${LOSS_PERCENT}% loss on each router, ${LOSS_MESSAGES} messages each way ` +
      `written at once: all settled after ${seconds.toFixed(1)} s`,
      "",
      "| direction | delivered | received | duplicates | in order | all, exactly once, in order |",
      "| --- | --- | --- | --- | --- | --- |",
      ...lines,
    ].join("\n");
  });
}

if (import.meta.main) {
  const reason = await Lab.available();
  if (reason !== null) {
    console.error(`bench:nat: ${reason}`);
    Deno.exit(1);
  }
  const rows: string[] = [];
  for (const spec of pairs) {
    const trials: Trial[] = [];
    for (let n = 0; n < TRIALS; n++) {
      const t = await trial(spec, n);
      trials.push(t);
      console.error(
        `${spec.name} #${n + 1}: ${t.ok ? "ok" : "FAILED"}, first direct ${ms(t.firstDirectMs)}, ` +
          `${t.viaRelay}/${t.messages} via relay, ${t.relayPackets} relay pkts, ` +
          `bob ready in ${ms(t.readyMs)}` +
          (t.note ? ` (${t.note})` : ""),
      );
    }
    const firsts = trials.flatMap((t) => t.firstDirectMs === undefined ? [] : [t.firstDirectMs]);
    const messages = trials.reduce((a, t) => a + t.messages, 0);
    const viaRelay = trials.reduce((a, t) => a + t.viaRelay, 0);
    const relayPackets = trials.reduce((a, t) => a + t.relayPackets, 0) / TRIALS;
    const ok = trials.filter((t) => t.ok).length;
    const p50 = percentile(firsts, 0.5);
    const goal = goalMs(spec);
    const met = ok === TRIALS &&
      (spec.mapped ? firsts.length === TRIALS : goal === undefined || (p50 ?? Infinity) <= goal);
    rows.push(
      `| ${spec.description} | ${spec.expected}${spec.birthday ? " (birthday)" : ""} | ` +
        `${ok}/${TRIALS} | ${firsts.length}/${TRIALS} | ${ms(p50)} | ` +
        `${firsts.length >= P90_SAMPLES ? ms(percentile(firsts, 0.9)) : "–"} | ` +
        `${spec.mapped ? "all direct" : goal === undefined ? "all ok" : `≤ ${ms(goal)}`} | ` +
        `${met ? "yes" : "**no**"} | ` +
        `${(100 * viaRelay / Math.max(1, messages)).toFixed(0)} % | ${relayPackets.toFixed(1)} | ` +
        `${ms(percentile(trials.map((t) => t.readyMs), 0.5))} |`,
    );
  }
  console.log(
    [
      `${TRIALS} trials per pair (scripts/deno task bench:nat --trials ${TRIALS})`,
      "",
      "| pair | expected | ok | direct | first direct msg p50 | p90 | goal (p50) | met | " +
      "relay share | relay pkts/trial | bob ready in |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
      ...rows,
    ].join("\n"),
  );
  if (LOSS_MESSAGES > 0) console.log("\n" + await lossRun());
}
