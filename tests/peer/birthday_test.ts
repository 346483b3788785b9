import assert from "node:assert/strict";
import {
  BirthdaySearch,
  type BirthdayStart,
  planBirthday,
  SPRAY_PORTS,
  SprayProof,
} from "../../lib/peer/birthday.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { prng } from "../support/prng.ts";

const TARGET: Endpoint = { host: "203.0.113.9", port: 4000 };

function start(now = 0, random: () => number = () => 0): BirthdayStart {
  return { target: TARGET, now, firstRoundTtl: 2, random };
}

/** Calls `next` at each time of `times` until it has nothing due, returning the send times. */
function drain(search: BirthdaySearch, times: number[]): number[] {
  const sent: number[] = [];
  for (const t of times) while (search.next(t) !== undefined) sent.push(t);
  return sent;
}

Deno.test("birthday plan: defaults and validation", () => {
  assert.deepEqual(planBirthday({ role: "spray" }), {
    role: "spray",
    sockets: [],
    total: 1024,
    rate: 500,
    windowMs: 15_000,
    secondRoundAfterMs: 0,
  });
  const sockets = [3, 4, 5];
  const plan = planBirthday({ role: "sockets", sockets });
  assert.deepEqual(plan, {
    role: "sockets",
    sockets,
    total: 6,
    rate: 500,
    windowMs: 15_000,
    secondRoundAfterMs: 3000,
  });
  assert.notEqual(plan.sockets, sockets, "the plan keeps its own copy");
  assert.throws(() => planBirthday({ role: "spray", ports: SPRAY_PORTS + 1 }), /Invalid ports/);
  assert.throws(() => planBirthday({ role: "spray", probesPerSecond: 0 }), /probesPerSecond/);
  assert.throws(() => planBirthday({ role: "sockets", sockets: [2, 2] }), /distinct/);
  assert.throws(() => planBirthday({ role: "sockets", sockets: [] }), /at least one/);
});

Deno.test("birthday spray: every port of the range once, from the main socket", () => {
  const search = new BirthdaySearch(
    planBirthday({ role: "spray", ports: SPRAY_PORTS, probesPerSecond: 1000 }),
    start(
      0,
      (() => {
        const rand = prng(3);
        return () => Math.floor(rand() * 2 ** 32);
      })(),
    ),
  );
  const ports = new Set<number>();
  for (let t = 0; search.nextDue !== undefined; t = search.nextDue) {
    for (let p = search.next(t); p !== undefined; p = search.next(t)) {
      assert.equal(p.to.host, TARGET.host);
      assert.deepEqual([p.socket, p.ttl], [0, undefined]);
      ports.add(p.to.port);
    }
  }
  assert.equal(ports.size, SPRAY_PORTS);
  assert.equal(Math.min(...ports), 1024);
  assert.equal(Math.max(...ports), 65535);
});

Deno.test("birthday spray: ports are drawn by a lazy Fisher-Yates shuffle", () => {
  // With a random source stuck at 0, each draw takes the first slot, which holds the last value.
  const search = new BirthdaySearch(planBirthday({ role: "spray", ports: 3 }), start());
  const drawn = [0, 5, 10].map((t) => search.next(t)!.to.port);
  assert.deepEqual(drawn, [1024, 65535, 65534]);
});

Deno.test("birthday spray: paced at the rate from the start; nothing more once all went", () => {
  const search = new BirthdaySearch(planBirthday({ role: "spray", ports: 4 }), start(100));
  assert.equal(search.nextDue, 100);
  assert.equal(search.next(99), undefined);
  assert.deepEqual(drain(search, [100, 101, 102, 104, 105, 106, 200]), [100, 102, 104, 106]);
  assert.equal(search.nextDue, undefined);
  assert.equal(search.next(1000), undefined);
});

Deno.test("birthday: polled late, probes catch up but never exceed the rate in any second", () => {
  const search = new BirthdaySearch(
    planBirthday({ role: "spray", ports: 50, probesPerSecond: 10 }),
    start(),
  );
  assert.equal(drain(search, [3000]).length, 10);
  assert.equal(search.nextDue, 4000, "the next may go 1 s after the oldest of the last 10");
  assert.equal(drain(search, [3999]).length, 0);
  assert.equal(drain(search, [4000]).length, 10);
  assert.deepEqual(drain(search, [5000, 5999, 6000]), [
    ...Array(10).fill(5000),
    ...Array(10).fill(6000),
  ]);
  assert.equal(search.nextDue, 7000);
});

Deno.test("birthday sockets: a low-TTL round at once from each socket, a paced default-TTL one later", () => {
  const plan = planBirthday({
    role: "sockets",
    sockets: [7, 8, 9],
    secondRoundAfterMs: 1000,
    probesPerSecond: 200,
  });
  const search = new BirthdaySearch(plan, start(50));
  const probes = [];
  for (const t of [49, 50, 55, 60, 65, 1049, 1050, 1055, 1060]) {
    for (let p = search.next(t); p !== undefined; p = search.next(t)) probes.push({ t, ...p });
  }
  assert.deepEqual(probes, [
    { t: 50, to: TARGET, socket: 7, ttl: 2 },
    { t: 50, to: TARGET, socket: 8, ttl: 2 },
    { t: 50, to: TARGET, socket: 9, ttl: 2 },
    { t: 1050, to: TARGET, socket: 7, ttl: undefined },
    { t: 1055, to: TARGET, socket: 8, ttl: undefined },
    { t: 1060, to: TARGET, socket: 9, ttl: undefined },
  ]);
  assert.equal(search.nextDue, undefined);
  assert.deepEqual(search.sockets, [7, 8, 9]);
  assert.equal(search.role, "sockets");
});

Deno.test("birthday sockets: the low-TTL burst leaves the rate to the probes that reach the peer", () => {
  // Four sockets at 2 a second, second round at once: were the burst counted, the second round
  // would wait a second for it.
  const plan = planBirthday({
    role: "sockets",
    sockets: [1, 2, 3, 4],
    probesPerSecond: 2,
    secondRoundAfterMs: 0,
  });
  const burst = new BirthdaySearch(plan, start(0));
  assert.deepEqual(drain(burst, [0, 500, 1000, 1500]), [0, 0, 0, 0, 0, 500, 1000, 1500]);
  // Without a low TTL the first round reaches the peer: paced like the rest.
  const paced = new BirthdaySearch(plan, { ...start(0), firstRoundTtl: undefined });
  const times = drain(paced, [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]);
  assert.deepEqual(times, [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]);
});

Deno.test("birthday: the window ends the search", () => {
  const search = new BirthdaySearch(
    planBirthday({ role: "spray", windowMs: 2000 }),
    start(1000),
  );
  assert.equal(search.endAt, 3000);
  assert.equal(search.over(2999), false);
  assert.equal(search.over(3000), true);
});

Deno.test("a spray waits for a proof within its window, uses it once, and lapses unproven", () => {
  const plan = planBirthday({ role: "spray" });
  const proof = new SprayProof();
  assert.equal(proof.take(0, true), undefined, "nothing armed");
  proof.arm(plan, 1_000);
  assert.equal(proof.armed, true);
  assert.equal(proof.until, 1_000 + plan.windowMs);
  assert.equal(proof.take(1_100, true), undefined, "no proof yet");
  proof.prove(1_200);
  assert.equal(proof.take(1_300, false), undefined, "no target yet: the proof keeps");
  assert.equal(proof.take(1_400, true), plan);
  assert.equal(proof.armed, false);
  // Used once: a new spray needs a new proof.
  proof.arm(plan, 2_000);
  assert.equal(proof.take(2_100, true), undefined);
  // A proof older than a window does not count; the window then lapses.
  proof.prove(2_000);
  assert.equal(proof.take(2_000 + plan.windowMs - 1, true), plan);
  proof.arm(plan, 100_000);
  proof.prove(100_000 - plan.windowMs - 1);
  assert.equal(proof.take(100_000, true), undefined, "a stale proof");
  assert.equal(proof.take(100_000 + plan.windowMs, true), "expired");
  assert.equal(proof.armed, false);
  proof.arm(plan, 0);
  proof.prove(0);
  proof.clear();
  assert.equal(proof.armed, false);
  proof.arm(plan, 1);
  assert.equal(proof.take(2, true), undefined, "clear forgot the proof too");
});
