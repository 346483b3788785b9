/**
 * The coordinator's side of a contacts-mode login storm, alone: the real {@linkcode PresenceOutbox}
 * and {@linkcode ContactFanout} in one process, a socket that only counts (and spends `--send-us`
 * per datagram, about what Deno's `send` costs, docs/LOAD.md), no clients. `bench:load` measures
 * the whole system but needs the machine to itself; this measures what the coordinator's presence
 * code does with its event loop, which a shared machine disturbs much less:
 *
 * - the longest step of presence work (an admission, a flush, a slice of sends), in CPU time
 *   (`process.cpuUsage`, so that other processes on a shared machine do not count) and in wall
 *   time: while one runs, the socket's receive buffer fills and logins are dropped;
 * - presence datagrams per login (all the coordinator sent in the storm, over the storm's logins),
 *   and how many each member got;
 * - how long after the last login the coordinator had handed every change to the socket;
 * - how late a line was: from its user's login to its datagram's send, the worst and the 99th
 *   percentile (a storm hold, `storm_hold.ts`, makes lines wait while logins come fast).
 *
 * `--users` members, all but `--storm` online first; each has `--contacts` contacts
 * (`contactsOf`, the graph `bench:load` uses); then the storm logs in at `--rate` logins/s (a
 * comma-separated list: one storm each, on a fresh community); they are admitted in bursts, as
 * list fetches admit them in `bench:load`: every 0–`--bursts` ms (random), all that came since, the
 * others counted as pending. `--runs` repeats each. `--hold` (comma-separated, default all three)
 * says how lines are held through the storm: `pending` as the coordinator does (a
 * {@linkcode StormHold} with its defaults, told of the pending logins), `rate` by the rate over
 * 100 ms alone (the hold before it learnt of pending logins), `off` flushed as before any hold;
 * `--hold-ms` is the longest hold. They alternate, run by run, on the same machine.
 *
 *   scripts/deno run -A scripts/bench_contact_flush.ts [--users 10000] [--storm 2000]
 *     [--contacts 50] [--rate 2500,20000] [--runs 3] [--send-us 5] [--hold off,rate,pending]
 *     [--hold-ms 2000] [--bursts 150]
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { type Clock, realClock } from "../lib/clock.ts";
import { ContactFanout } from "../lib/coordinator/contact_fanout.ts";
import { PresenceOutbox } from "../lib/coordinator/presence_outbox.ts";
import { STORM_HOLD_DEFAULTS, StormHold } from "../lib/coordinator/storm_hold.ts";
import type { User } from "../lib/coordinator/registry.ts";
import type { Endpoint } from "../lib/protocol/endpoint.ts";
import { contactsOf } from "./bench_load_clients.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    users: { type: "string", default: "10000" },
    storm: { type: "string", default: "2000" },
    contacts: { type: "string", default: "50" },
    rate: { type: "string", default: "2500" },
    runs: { type: "string", default: "3" },
    "send-us": { type: "string", default: "5" },
    hold: { type: "string", default: "off,rate,pending" },
    "hold-ms": { type: "string", default: String(STORM_HOLD_DEFAULTS.maxHoldMs) },
    bursts: { type: "string", default: "150" },
  },
});
const USERS = Number(values.users);
const STORM = Number(values.storm);
const CONTACTS = Number(values.contacts);
const RUNS = Number(values.runs);
const SEND_US = Number(values["send-us"]);
const BURSTS = Number(values.bursts);
/** Logins accepted but not yet admitted (the registry's pending logins). */
let pending = 0;

interface StormResult {
  /** Longest step of presence work, CPU ms and wall ms. */
  stepCpuMs: number;
  stepWallMs: number;
  datagramsPerLogin: number;
  /** Datagrams a member got in the storm: median and most. */
  perMember: { median: number; most: number };
  /** From the last login to the last datagram handed to the socket, ms. */
  toldMs: number;
  stormMs: number;
  /** From a user's login to the send of a datagram with its line, ms: 99th percentile, most. */
  lateMs: { p99: number; most: number };
}

function spin(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) { /* a send's cost */ }
}

/** The longest step timed so far, CPU and wall ms. */
const longest = { cpu: 0, wall: 0 };

/** Runs one step of presence work, timing it. */
function timed<T>(fn: () => T): T {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  try {
    return fn();
  } finally {
    const used = process.cpuUsage(cpu);
    longest.cpu = Math.max(longest.cpu, (used.user + used.system) / 1000);
    longest.wall = Math.max(longest.wall, performance.now() - wall);
  }
}

/** The real clock, its timers timed (the outbox's flushes). */
const timedClock: Clock = {
  ...realClock,
  setTimeout: (fn, ms) => realClock.setTimeout(() => timed(fn), ms),
};

/** How lines are held through the storm: not, by the rate alone (100 ms), or as the coordinator. */
type Hold = "off" | "rate" | "pending";

async function storm(rate: number, hold: Hold): Promise<StormResult> {
  const users: User[] = Array.from({ length: USERS }, (_, i) => ({
    name: `u${i}`,
    skeleton: `u${i}`,
    claimed: { host: "10.0.0.1", port: 4000 },
    observed: { host: `127.1.${i >> 8}.${i & 255}`, port: 40000 + (i % 20000) },
    state: "pending",
    lastSeen: 0,
    since: 0,
    key: `k${i}`,
  }));
  const contacts = users.map((_, i) => contactsOf(i, USERS, CONTACTS).map((j) => users[j]));
  const index = new Map(users.map((u, i) => [u, i]));
  const got = new Map<string, number>();
  let sent = 0;
  let counting = false;
  /** The storm's datagrams and when each was sent, read after it (not to slow the sends). */
  const datagrams: [Uint8Array, number][] = [];
  const loggedIn = new Map<string, number>();
  const socket = {
    send(bytes: Uint8Array, to: Endpoint): void {
      spin(SEND_US);
      sent++;
      if (!counting) return;
      got.set(to.host + to.port, (got.get(to.host + to.port) ?? 0) + 1);
      datagrams.push([bytes, performance.now()]);
    },
    whenInFlightAtMost(_count: number, fn: () => void): void {
      setTimeout(() => timed(fn), 0); // the socket's queue drains while other work runs
    },
  };
  const outbox = new PresenceOutbox({
    clock: timedClock,
    socket,
    isCurrent: (u) => u.state === "online",
    fanout: new ContactFanout<User>({
      audience: (u) => contacts[index.get(u)!],
      listed: () => false,
      hold: hold === "off" ? undefined : new StormHold({
        clock: realClock,
        maxHoldMs: Number(values["hold-ms"]),
        ...(hold === "rate"
          ? { spanMs: STORM_HOLD_DEFAULTS.windowMs }
          : { pending: () => pending }),
      }),
    }),
  });
  const settled = async () => {
    while (outbox.backlog > 0) await new Promise((r) => setTimeout(r, 5));
  };
  // The community before the storm, in chunks (as a ramp would), then quiet.
  for (let i = 0; i < USERS - STORM; i++) {
    users[i].state = "online";
    outbox.admit([users[i]]);
    if (i % 500 === 499) await settled();
  }
  await settled();
  await new Promise((r) => setTimeout(r, 300));

  // The storm.
  longest.cpu = longest.wall = 0;
  sent = 0;
  counting = true;
  const start = performance.now();
  let joined = USERS - STORM;
  let burst = start;
  while (joined < USERS) {
    // Logins come at `rate`; they are admitted (their lists fetched) in bursts, as in bench:load.
    const due = USERS - STORM +
      Math.min(STORM, Math.floor((performance.now() - start) * rate / 1000));
    if (performance.now() >= burst) {
      for (; joined < due; joined++) {
        users[joined].state = "online";
        loggedIn.set(users[joined].name, performance.now());
        timed(() => outbox.admit([users[joined]]));
      }
      burst = performance.now() + Math.random() * BURSTS;
    }
    pending = due - joined;
    await new Promise((r) => setTimeout(r, 1));
  }
  const lastLogin = performance.now();
  await settled();
  const told = performance.now();
  outbox.close();
  const counts = [...got.values()].sort((a, b) => a - b);
  const late: number[] = [];
  const decoder = new TextDecoder();
  for (const [bytes, at] of datagrams) {
    for (const line of decoder.decode(bytes).split("\n").slice(1)) {
      const since = loggedIn.get(line.slice(1, line.indexOf(",")));
      if (line.startsWith("+") && since !== undefined) late.push(at - since);
    }
  }
  late.sort((a, b) => a - b);
  return {
    stepCpuMs: longest.cpu,
    stepWallMs: longest.wall,
    datagramsPerLogin: sent / STORM,
    perMember: { median: counts[counts.length >> 1] ?? 0, most: counts.at(-1) ?? 0 },
    toldMs: told - lastLogin,
    stormMs: lastLogin - start,
    lateMs: { p99: late[Math.floor(late.length * 0.99)] ?? 0, most: late.at(-1) ?? 0 },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const range = (xs: number[], digits = 0) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${
    Math.max(...xs).toFixed(digits)
  })`;

console.log(
  `${USERS} members, ${CONTACTS} contacts each, storm of ${STORM}; ${RUNS} runs per rate; ` +
    `send ${SEND_US} µs; medians (range)`,
);
console.log(
  "| storm rate | hold | storm lasted ms | longest step CPU ms | longest step wall ms | datagrams per login | per member (median / most) | all handed out after last login ms | line late p99 / most ms |",
);
console.log("| -: | - | -: | -: | -: | -: | -: | -: | -: |");
const holds = values.hold.split(",") as Hold[];
for (const rate of values.rate.split(",").map(Number)) {
  const results = new Map<Hold, StormResult[]>(holds.map((h) => [h, []]));
  // Alternating, run by run: the machine's other work falls on both alike.
  for (let r = 0; r < RUNS; r++) {
    for (const hold of holds) results.get(hold)!.push(await storm(rate, hold));
  }
  for (const [hold, rs] of results) print(rate, hold, rs);
}

function print(rate: number, hold: Hold, results: StormResult[]): void {
  console.log(
    `| ${rate}/s | ${hold === "off" ? "none" : `${hold}, ${values["hold-ms"]} ms at most`} | ${
      range(results.map((r) => r.stormMs))
    } | ${range(results.map((r) => r.stepCpuMs), 1)} | ${
      range(results.map((r) => r.stepWallMs), 1)
    } | ${range(results.map((r) => r.datagramsPerLogin), 1)} | ${
      median(results.map((r) => r.perMember.median))
    } / ${median(results.map((r) => r.perMember.most))} | ${
      range(results.map((r) => r.toldMs))
    } | ${range(results.map((r) => r.lateMs.p99))} / ${range(results.map((r) => r.lateMs.most))} |`,
  );
}
