import assert from "node:assert/strict";
import { RelayPolicy, type RelayPolicyOptions } from "../../lib/coordinator/relay.ts";

/** A relay policy on a fake clock that the test moves by hand. */
function setup(options: Omit<RelayPolicyOptions, "now"> = {}): {
  relay: RelayPolicy;
  advance: (ms: number) => void;
  setTime: (ms: number) => void;
} {
  let now = 1_000_000;
  const relay = new RelayPolicy({ now: () => now, ...options });
  return {
    relay,
    advance: (ms) => {
      now += ms;
    },
    setTime: (ms) => {
      now = ms;
    },
  };
}

/** Sends `count` frames of `bytes` from `from` to `to`; returns how many were allowed. */
function burst(relay: RelayPolicy, from: string, to: string, bytes: number, count: number): number {
  let ok = 0;
  for (let i = 0; i < count; i++) if (relay.allow(from, to, bytes) === "ok") ok++;
  return ok;
}

Deno.test("pairs the coordinator did not introduce may not relay", () => {
  const { relay } = setup();
  assert.equal(relay.allow("alice", "bob", 100), "not-introduced");
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 100), "ok");
  assert.equal(relay.allow("alice", "carol", 100), "not-introduced");
  assert.equal(relay.allow("carol", "bob", 100), "not-introduced");
  assert.equal(relay.allow("alice", "alice", 100), "not-introduced");
  assert.deepEqual(relay.stats, {
    forwarded: 1,
    forwardedBytes: 100,
    notIntroduced: 4,
    overBudget: 0,
  });
});

Deno.test("an introduction works both ways and the pair shares one budget", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("bob", "alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 600), "ok");
  assert.equal(relay.allow("bob", "alice", 400), "ok");
  assert.equal(relay.allow("bob", "alice", 1), "over-budget");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
});

Deno.test("the default budget: a 512 KiB and 800-packet burst, then 64 KiB/s and 200 packets/s", () => {
  const { relay, advance } = setup();
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 512 * 1024), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  advance(1000);
  assert.equal(relay.allow("alice", "bob", 64 * 1024), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");

  const fresh = setup();
  fresh.relay.introduce("alice", "bob");
  assert.equal(burst(fresh.relay, "alice", "bob", 10, 1000), 800);
  fresh.advance(1000);
  assert.equal(burst(fresh.relay, "bob", "alice", 10, 1000), 200);
});

Deno.test("the byte budget refills at its rate over fake time, up to the burst", () => {
  const { relay, advance } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  advance(250);
  assert.equal(relay.allow("alice", "bob", 251), "over-budget");
  // A refused frame costs nothing: the 250 bytes are still there.
  assert.equal(relay.allow("alice", "bob", 250), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  advance(500);
  assert.equal(relay.allow("alice", "bob", 300), "ok");
  assert.equal(relay.allow("alice", "bob", 200), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  // A long idle period refills only up to the burst.
  advance(3_600_000);
  assert.equal(relay.allow("alice", "bob", 1001), "over-budget");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
});

Deno.test("the packet budget refills at its rate over fake time, up to the burst", () => {
  // 4 packets/s: one every 250 ms (binary-exact steps, so no rounding at the edges).
  const { relay, advance } = setup({ burstPackets: 5, packetsPerSecond: 4 });
  relay.introduce("alice", "bob");
  assert.equal(burst(relay, "alice", "bob", 0, 10), 5);
  advance(125);
  assert.equal(relay.allow("alice", "bob", 0), "over-budget");
  advance(125); // 250 ms in all (the refused frame did not lose the half packet): one packet
  assert.equal(relay.allow("alice", "bob", 0), "ok");
  assert.equal(relay.allow("alice", "bob", 0), "over-budget");
  advance(60_000);
  assert.equal(burst(relay, "bob", "alice", 0, 10), 5);
});

Deno.test("a frame larger than the burst is never relayed", () => {
  const { relay, advance } = setup({ burstBytes: 1000 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1001), "over-budget");
  advance(3_600_000);
  assert.equal(relay.allow("alice", "bob", 1001), "over-budget");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
});

Deno.test("each pair has its own budget", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  relay.introduce("alice", "carol");
  relay.introduce("bob", "carol");
  assert.equal(relay.size, 3);
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  assert.equal(relay.allow("bob", "alice", 1), "over-budget");
  // Neither alice's nor bob's other pairs are charged for alice-bob.
  assert.equal(relay.allow("alice", "carol", 1000), "ok");
  assert.equal(relay.allow("carol", "bob", 1000), "ok");
  assert.deepEqual(relay.stats, {
    forwarded: 3,
    forwardedBytes: 3000,
    notIntroduced: 0,
    overBudget: 1,
  });
});

Deno.test("introducing a pair again does not refill its budget", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  relay.introduce("alice", "bob");
  relay.introduce("bob", "alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
});

Deno.test("forget drops every pair of a user who logged out, and only those", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  relay.introduce("carol", "alice");
  relay.introduce("bob", "carol");
  assert.equal(relay.allow("bob", "carol", 1000), "ok");
  relay.forget("alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 1), "not-introduced");
  assert.equal(relay.allow("bob", "alice", 1), "not-introduced");
  assert.equal(relay.allow("carol", "alice", 1), "not-introduced");
  // bob-carol stays, with its budget as spent.
  assert.equal(relay.allow("carol", "bob", 1), "over-budget");
  // Forgetting someone unknown, or twice, is harmless.
  relay.forget("alice");
  relay.forget("dave");
  assert.equal(relay.size, 1);
  // A new introduction after a new login: alice-bob never spent anything, so a full bucket.
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("bob", "alice", 1000), "ok");
  relay.forget("bob");
  assert.equal(relay.size, 0);
  assert.equal(relay.allow("alice", "bob", 1), "not-introduced");
});

Deno.test("a clock that steps back neither adds budget nor takes it away", () => {
  const { relay, setTime } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  setTime(10_000);
  relay.introduce("alice", "bob");
  relay.introduce("alice", "carol");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  setTime(5_000);
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  assert.equal(relay.allow("alice", "carol", 1000), "ok");
  // Back at the time it was emptied: the seconds spent "in the past" are not refilled again.
  setTime(10_000);
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  setTime(10_500);
  assert.equal(relay.allow("alice", "bob", 500), "ok");
});

Deno.test("names that share a prefix or differ by order are distinct pairs", () => {
  const { relay } = setup();
  relay.introduce("ab", "c");
  assert.equal(relay.allow("a", "bc", 1), "not-introduced");
  assert.equal(relay.allow("c", "ab", 1), "ok");
  relay.introduce("张伟", "😀");
  assert.equal(relay.allow("😀", "张伟", 1), "ok");
  assert.equal(relay.size, 2);
});

Deno.test("a pair's spent budget survives a logout and a new introduction", () => {
  const { relay, advance } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  relay.forget("alice");
  assert.equal(relay.remembered, 1);
  assert.equal(relay.allow("alice", "bob", 1), "not-introduced");
  // Logging in again and asking for a new introduction buys nothing.
  relay.introduce("bob", "alice");
  assert.equal(relay.remembered, 0);
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  // The time spent logged out counts, as it would have online.
  relay.forget("bob");
  advance(400);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 401), "over-budget");
  assert.equal(relay.allow("alice", "bob", 400), "ok");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
});

Deno.test("the packet budget survives a logout too", () => {
  const { relay, advance } = setup({ burstPackets: 5, packetsPerSecond: 4 });
  relay.introduce("alice", "bob");
  assert.equal(burst(relay, "alice", "bob", 0, 10), 5);
  relay.forget("bob");
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 0), "over-budget");
  relay.forget("alice");
  advance(250);
  relay.introduce("alice", "bob");
  assert.equal(burst(relay, "alice", "bob", 0, 10), 1);
});

Deno.test("a remembered bucket is dropped once it would have refilled; full ones are not kept", () => {
  // Spending 1000 bytes and one packet: full again after 1 s (the packet after 0.25 s).
  const { relay, advance } = setup({
    burstBytes: 1000,
    bytesPerSecond: 1000,
    burstPackets: 5,
    packetsPerSecond: 4,
  });
  relay.introduce("alice", "bob");
  relay.introduce("carol", "dave");
  relay.introduce("erin", "frank");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  relay.forget("alice");
  assert.equal(relay.remembered, 1);
  // carol-dave never relayed: its full bucket is what a new introduction gives anyway.
  relay.forget("carol");
  assert.equal(relay.remembered, 1);
  advance(999);
  relay.forget("nobody"); // any forget drops what has refilled
  assert.equal(relay.remembered, 1);
  advance(1);
  relay.forget("nobody");
  assert.equal(relay.remembered, 0);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  // A bucket that refilled while its pair was online is not kept either.
  assert.equal(relay.allow("erin", "frank", 1000), "ok");
  advance(1000);
  relay.forget("frank");
  assert.equal(relay.remembered, 0);
});

Deno.test("at most maxRemembered buckets are remembered, the oldest forgotten first", () => {
  const { relay, advance } = setup({ burstBytes: 1000, bytesPerSecond: 1, maxRemembered: 2 });
  const pairs = [["a", "b"], ["c", "d"], ["e", "f"]];
  for (const [x, y] of pairs) {
    relay.introduce(x, y);
    assert.equal(relay.allow(x, y, 1000), "ok");
  }
  for (const [x] of pairs) {
    relay.forget(x);
    advance(1);
  }
  assert.equal(relay.remembered, 2);
  for (const [x, y] of pairs) relay.introduce(x, y);
  assert.equal(relay.allow("a", "b", 1000), "ok"); // pushed out: a full bucket again
  assert.equal(relay.allow("c", "d", 100), "over-budget");
  assert.equal(relay.allow("e", "f", 100), "over-budget");

  const none = setup({ burstBytes: 1000, bytesPerSecond: 1, maxRemembered: 0 });
  none.relay.introduce("a", "b");
  assert.equal(none.relay.allow("a", "b", 1000), "ok");
  none.relay.forget("a");
  assert.equal(none.relay.remembered, 0);
  none.relay.introduce("a", "b");
  assert.equal(none.relay.allow("a", "b", 1000), "ok");
});

Deno.test("a clock that steps back while a pair is forgotten refills nothing twice", () => {
  const { relay, setTime } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  setTime(10_000);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000), "ok");
  relay.forget("alice");
  setTime(5_000);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1), "over-budget");
  relay.forget("bob");
  setTime(10_500);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 501), "over-budget");
  assert.equal(relay.allow("alice", "bob", 500), "ok");
});
