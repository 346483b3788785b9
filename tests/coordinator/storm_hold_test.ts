import assert from "node:assert/strict";
import { ContactFanout } from "../../lib/coordinator/contact_fanout.ts";
import { PresenceOutbox } from "../../lib/coordinator/presence_outbox.ts";
import type { User } from "../../lib/coordinator/registry.ts";
import { StormHold } from "../../lib/coordinator/storm_hold.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

const decoder = new TextDecoder();

/** A hold at 500 logins/s over 100 ms, kept over 400 ms, told of pending logins; no line over the cap. */
function toldPending(clock: FakeClock, pending: () => number, maxHoldMs = 2_000): StormHold {
  return new StormHold({
    clock,
    rate: 500,
    windowMs: 100,
    spanMs: 400,
    maxHoldMs,
    endMs: 50,
    pending,
  });
}

Deno.test("storm hold: lines wait only while logins come at the rate, and never past the cap", () => {
  const clock = new FakeClock();
  const hold = new StormHold({ clock, rate: 1_000, windowMs: 100, maxHoldMs: 2_000 });
  hold.waiting();
  assert.equal(hold.holdMs(), 0); // no logins: no storm
  for (let i = 0; i < 99; i++) {
    hold.login();
    clock.advance(0.5);
  }
  assert.equal(hold.holdMs(), 0); // 99 logins in 100 ms: under the rate
  hold.login(); // the 100th, at 49.5 ms: the first is 49.5 ms old
  assert.equal(hold.holdMs(), 50.5); // the storm ends 100 ms after the oldest of the last 100
  clock.advance(50.5);
  assert.equal(hold.holdMs(), 0); // no login since: over
  // A sustained storm: held, but no line longer than the cap from when it began to wait.
  hold.taken();
  hold.waiting();
  for (let t = 0; t < 1_990; t++) {
    hold.login();
    hold.login();
    clock.advance(1);
  }
  assert.equal(hold.holdMs(), 10);
  clock.advance(10);
  assert.equal(hold.holdMs(), 0);
  hold.taken();
  assert.equal(hold.holdMs(), 0); // nothing waits: nothing to hold
});

Deno.test("storm hold: once begun, a storm outlasts pauses in admissions while the rate over the span holds", () => {
  // Bursts of 100 admissions every 150 ms (667/s): each burst makes a storm over 100 ms, and 120
  // ms after it there is none over 100 ms, but over 400 ms the rate (200 logins) holds.
  const run = (spanMs: number) => {
    const clock = new FakeClock();
    const hold = new StormHold({ clock, rate: 500, windowMs: 100, spanMs, maxHoldMs: 2_000 });
    hold.waiting();
    const held: number[] = [];
    for (let burst = 0; burst < 6; burst++) {
      for (let i = 0; i < 100; i++) hold.login();
      clock.advance(120); // into the pause before the next burst
      held.push(hold.holdMs());
      clock.advance(30);
    }
    return held;
  };
  // The rate over 100 ms alone: every pause ends the storm (the lines go out, once a burst).
  assert.deepEqual(run(100), [0, 0, 0, 0, 0, 0]);
  // Over 400 ms: the first pause ends it (the span's 200 logins are not there yet), then the
  // storm goes on: 400 ms after the burst before, 130 ms after the pause's holdMs call.
  assert.deepEqual(run(400), [0, 130, 130, 130, 130, 130]);
});

Deno.test("storm hold: with pending logins told, a storm ends soon after its last admission", () => {
  const clock = new FakeClock();
  let pending = 500;
  const hold = toldPending(clock, () => pending);
  hold.waiting();
  for (let i = 0; i < 500; i++) {
    hold.login(); // 1,000/s for 500 ms
    pending--;
    clock.advance(1);
  }
  // The last admission left none pending: over 50 ms after it, not when the rate over 400 ms falls.
  assert.equal(hold.holdMs(), 49);
  clock.advance(49);
  assert.equal(hold.holdMs(), 0);
  // A storm that leaves logins pending for good (their clients went away) ends with the rate.
  hold.taken();
  pending = 3;
  hold.waiting();
  for (let i = 0; i < 500; i++) {
    hold.login();
    clock.advance(1);
  }
  clock.advance(100);
  assert.ok(hold.holdMs() > 0, "the rate over 400 ms still holds");
  clock.advance(300);
  assert.equal(hold.holdMs(), 0);
  // The same storm followed at once by a trickle of logins (one every 200 ms), those few still
  // pending: over when the rate falls, not held while the trickle lasts.
  hold.taken();
  hold.waiting();
  for (let i = 0; i < 500; i++) {
    hold.login();
    clock.advance(1);
  }
  const held: number[] = [];
  for (let i = 0; i < 20; i++) {
    hold.login();
    clock.advance(200);
    held.push(hold.holdMs());
    if (held.at(-1) === 0) hold.taken();
    hold.waiting();
  }
  assert.ok(held.slice(2).every((ms) => ms === 0), `held ${held}`);
});

Deno.test("storm hold: while logins are pending, a pause early in a storm does not end it", () => {
  // As the rate-only test above, bursts of 100 admissions every 150 ms, but with logins pending:
  // the first pause (before the span's 200 logins are there) no longer ends the storm; from 400 ms
  // on, the span's rate keeps it going, as without pending logins.
  const run = (pending: number) => {
    const clock = new FakeClock();
    const hold = toldPending(clock, () => pending);
    hold.waiting();
    const held: number[] = [];
    for (let burst = 0; burst < 3; burst++) {
      for (let i = 0; i < 100; i++) hold.login();
      clock.advance(120);
      held.push(hold.holdMs());
      clock.advance(30);
    }
    return held;
  };
  // 400 ms after the last admission in the storm's first 400 ms, then 400 ms after the span's
  // 200th latest (the burst before).
  assert.deepEqual(run(40), [280, 280, 130]);
  assert.deepEqual(run(0), [0, 0, 0]); // none pending: over 50 ms after each burst
});

Deno.test("storm hold: a storm that ended with no line to notice it is not resumed later", () => {
  const clock = new FakeClock();
  const hold = toldPending(clock, () => 5, 1_000);
  hold.waiting();
  for (let i = 0; i < 1_500; i++) { // 1,000/s for 1.5 s: the cap lets lines go after 1 s
    hold.login();
    clock.advance(1);
    if (hold.holdMs() === 0) hold.taken(); // flushed
  }
  // No line waits as the storm ends; ten minutes on, one login with some pending holds nothing.
  clock.advance(600_000);
  hold.login();
  hold.waiting();
  assert.equal(hold.holdMs(), 0);
});

/** Users 0…n-1, each a contact of every other, on a fake clock; the socket records sends. */
function community(
  n: number,
  hold: { rate: number; maxHoldMs: number; spanMs?: number; pending?: () => number },
) {
  const clock = new FakeClock();
  const users: User[] = Array.from({ length: n }, (_, i) => ({
    name: `u${i}`,
    skeleton: `u${i}`,
    claimed: { host: "10.0.0.1", port: 4000 },
    observed: { host: `10.0.0.${i}`, port: 4000 },
    state: "pending",
    lastSeen: 0,
    since: 0,
    key: `k${i}`,
  }));
  const sent: { at: number; to: string; lines: string[] }[] = [];
  const outbox = new PresenceOutbox({
    clock,
    isCurrent: (u) => u.state === "online",
    socket: {
      send: (bytes: Uint8Array, to: Endpoint) => {
        const lines = decoder.decode(bytes).split("\n").slice(1);
        sent.push({ at: clock.now(), to: to.host, lines });
      },
      whenInFlightAtMost: (_count, fn) => queueMicrotask(fn),
    },
    fanout: new ContactFanout<User>({
      audience: (u) => users.filter((o) => o !== u && o.state === "online"),
      listed: () => false,
      hold: new StormHold({ clock, windowMs: 100, spanMs: 100, ...hold }),
    }),
  });
  const login = (i: number) => {
    users[i].state = "online";
    outbox.admit([users[i]]);
  };
  return { clock, sent, outbox, login };
}

Deno.test("storm hold: a storm's lines wait, then reach each member in one datagram as it ends", () => {
  // 20 logins in 100 ms (200/s) make a storm here.
  const { clock, sent, outbox, login } = community(60, { rate: 200, maxHoldMs: 2_000 });
  for (let i = 0; i < 10; i++) {
    login(i); // one a second: no storm, each told at once
    assert.equal(sent.filter((s) => s.at === clock.now()).length, i);
    clock.advance(1_000);
  }
  // 50 logins, one every 2 ms (500/s).
  const start = clock.now();
  for (let i = 10; i < 60; i++) {
    login(i);
    clock.advance(2);
  }
  const last = clock.now() - 2;
  // Once the rate was reached (the 20th login, at 38 ms), nothing more went out in the storm.
  const inStorm = sent.filter((s) => s.at >= start + 40);
  assert.deepEqual(inStorm, []);
  clock.advance(100);
  // The rate fell 100 ms after the oldest of the last 20 logins: everything went out then, in
  // one datagram per member, with every line it had not had.
  const end = sent.filter((s) => s.at >= start + 40);
  assert.equal(end.length, 59); // u59 logged in last: its list has everyone; the rest, one each
  assert.ok(end.every((s) => s.at === last - 19 * 2 + 100), "flushed when the rate fell");
  const toU0 = sent.filter((s) => s.to === "10.0.0.0" && s.at >= start).flatMap((s) => s.lines);
  assert.equal(new Set(toU0).size, 50); // told of all 50 logins…
  assert.equal(toU0.length, 50); // …none twice
  outbox.close();
});

Deno.test("storm hold: a storm that goes on still delivers every maxHoldMs", () => {
  const { clock, sent, outbox, login } = community(250, { rate: 200, maxHoldMs: 300 });
  login(0);
  const start = clock.now();
  for (let i = 1; i < 250; i++) {
    login(i); // 500/s for 500 ms
    clock.advance(2);
  }
  const u0 = sent.filter((s) => s.to === "10.0.0.0" && s.at >= start).map((s) => s.at - start);
  // Told at once until the storm began (the 20th login, at 36 ms), then held 300 ms at most.
  assert.ok(u0.every((t) => t <= 36 || t === 336 || t > 498), `sends to u0 at ${u0}`);
  assert.ok(u0.includes(336), `sends to u0 at ${u0}`);
  outbox.close();
});

Deno.test("storm hold: a member with two datagrams' worth waiting does not end the hold for all", async () => {
  const { clock, sent, outbox, login } = community(300, { rate: 200, maxHoldMs: 2_000 });
  login(0);
  const start = clock.now();
  for (let i = 1; i < 300; i++) {
    login(i); // 500/s for 600 ms: u0 gets ~300 lines, far beyond EARLY_FLUSH_BYTES
    clock.advance(2);
  }
  const last = clock.now() - 2;
  // Once the storm began (the 20th login, at 36 ms), nothing went out until it ended.
  const inStorm = sent.filter((s) => s.at > start + 38 && s.at <= last);
  assert.deepEqual(inStorm.length, 0, `${inStorm.length} datagrams during the storm`);
  clock.advance(100);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the flush's later slices
  const toU0 = sent.filter((s) => s.to === "10.0.0.0" && s.at > start + 38);
  assert.ok(toU0.length >= 3, "u0's backlog, in several datagrams at the storm's end");
  assert.ok(toU0.every((s) => s.at === last - 19 * 2 + 100), "flushed when the rate fell");
  outbox.close();
});

Deno.test("storm hold: the outbox flushes as soon as the storm's last pending login is admitted", () => {
  let pending = 0;
  const { clock, sent, outbox, login } = community(60, {
    rate: 200,
    maxHoldMs: 2_000,
    spanMs: 400,
    pending: () => pending,
  });
  login(0);
  const start = clock.now();
  pending = 59;
  for (let i = 1; i < 60; i++) {
    pending--;
    login(i); // 500/s
    clock.advance(2);
  }
  const last = clock.now() - 2;
  assert.deepEqual(sent.filter((s) => s.at > start + 40), []); // held since the 20th login
  clock.advance(400);
  // Flushed 50 ms after the last admission (none left pending), though the timer the hold set
  // earlier waited for the rate over 400 ms to fall.
  const end = sent.filter((s) => s.at > start + 40);
  assert.equal(end.length, 59);
  assert.ok(end.every((s) => s.at === last + 50), `flushed at ${end[0]?.at - last} ms`);
  outbox.close();
});
