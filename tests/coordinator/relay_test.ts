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
  for (let i = 0; i < count; i++) if (relay.allow(from, to, bytes, "192.0.2.1") === "ok") ok++;
  return ok;
}

Deno.test("pairs the coordinator did not introduce may not relay", () => {
  const { relay } = setup();
  assert.equal(relay.allow("alice", "bob", 100, "192.0.2.1"), "not-introduced");
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 100, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "carol", 100, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("carol", "bob", 100, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("alice", "alice", 100, "192.0.2.1"), "not-introduced");
  assert.deepEqual(relay.stats, {
    forwarded: 1,
    forwardedBytes: 100,
    notIntroduced: 4,
    overBudget: 0,
    userOverBudget: 0,
    addressOverBudget: 0,
  });
});

Deno.test("an introduction works both ways and the pair shares one budget", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("bob", "alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 600, "192.0.2.1"), "ok");
  assert.equal(relay.allow("bob", "alice", 400, "192.0.2.1"), "ok");
  assert.equal(relay.allow("bob", "alice", 1, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
});

Deno.test("the default budget: a 512 KiB and 800-packet burst, then 64 KiB/s and 200 packets/s", () => {
  const { relay, advance } = setup();
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 512 * 1024, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  advance(1000);
  assert.equal(relay.allow("alice", "bob", 64 * 1024, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");

  const fresh = setup();
  fresh.relay.introduce("alice", "bob");
  assert.equal(burst(fresh.relay, "alice", "bob", 10, 1000), 800);
  fresh.advance(1000);
  assert.equal(burst(fresh.relay, "bob", "alice", 10, 1000), 200);
});

Deno.test("the byte budget refills at its rate over fake time, up to the burst", () => {
  const { relay, advance } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  advance(250);
  assert.equal(relay.allow("alice", "bob", 251, "192.0.2.1"), "over-budget");
  // A refused frame costs nothing: the 250 bytes are still there.
  assert.equal(relay.allow("alice", "bob", 250, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  advance(500);
  assert.equal(relay.allow("alice", "bob", 300, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 200, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  // A long idle period refills only up to the burst.
  advance(3_600_000);
  assert.equal(relay.allow("alice", "bob", 1001, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
});

Deno.test("the packet budget refills at its rate over fake time, up to the burst", () => {
  // 4 packets/s: one every 250 ms (binary-exact steps, so no rounding at the edges).
  const { relay, advance } = setup({ burstPackets: 5, packetsPerSecond: 4 });
  relay.introduce("alice", "bob");
  assert.equal(burst(relay, "alice", "bob", 0, 10), 5);
  advance(125);
  assert.equal(relay.allow("alice", "bob", 0, "192.0.2.1"), "over-budget");
  advance(125); // 250 ms in all (the refused frame did not lose the half packet): one packet
  assert.equal(relay.allow("alice", "bob", 0, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 0, "192.0.2.1"), "over-budget");
  advance(60_000);
  assert.equal(burst(relay, "bob", "alice", 0, 10), 5);
});

Deno.test("a frame larger than the burst is never relayed", () => {
  const { relay, advance } = setup({ burstBytes: 1000 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1001, "192.0.2.1"), "over-budget");
  advance(3_600_000);
  assert.equal(relay.allow("alice", "bob", 1001, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
});

Deno.test("each pair has its own budget", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  relay.introduce("alice", "carol");
  relay.introduce("bob", "carol");
  assert.equal(relay.size, 3);
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  assert.equal(relay.allow("bob", "alice", 1, "192.0.2.1"), "over-budget");
  // Neither alice's nor bob's other pairs are charged for alice-bob.
  assert.equal(relay.allow("alice", "carol", 1000, "192.0.2.1"), "ok");
  assert.equal(relay.allow("carol", "bob", 1000, "192.0.2.1"), "ok");
  assert.deepEqual(relay.stats, {
    forwarded: 3,
    forwardedBytes: 3000,
    notIntroduced: 0,
    overBudget: 1,
    userOverBudget: 0,
    addressOverBudget: 0,
  });
});

Deno.test("introducing a pair again does not refill its budget", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  relay.introduce("alice", "bob");
  relay.introduce("bob", "alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
});

Deno.test("forget drops every pair of a user who logged out, and only those", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  relay.introduce("carol", "alice");
  relay.introduce("bob", "carol");
  assert.equal(relay.allow("bob", "carol", 1000, "192.0.2.1"), "ok");
  relay.forget("alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("bob", "alice", 1, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("carol", "alice", 1, "192.0.2.1"), "not-introduced");
  // bob-carol stays, with its budget as spent.
  assert.equal(relay.allow("carol", "bob", 1, "192.0.2.1"), "over-budget");
  // Forgetting someone unknown, or twice, is harmless.
  relay.forget("alice");
  relay.forget("dave");
  assert.equal(relay.size, 1);
  // A new introduction after a new login: alice-bob never spent anything, so a full bucket.
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("bob", "alice", 1000, "192.0.2.1"), "ok");
  relay.forget("bob");
  assert.equal(relay.size, 0);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "not-introduced");
});

Deno.test("forgetPair drops one pair (no longer contacts) and leaves the others", () => {
  const { relay } = setup({ burstBytes: 1000, bytesPerSecond: 1 });
  relay.introduce("alice", "bob");
  relay.introduce("alice", "carol");
  relay.forgetPair("bob", "alice");
  assert.equal(relay.size, 1);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("bob", "alice", 1, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("alice", "carol", 1, "192.0.2.1"), "ok");
  // Harmless twice; and alice's later logout forgets what is left without tripping on bob.
  relay.forgetPair("alice", "bob");
  relay.forget("alice");
  assert.equal(relay.size, 0);
});

Deno.test("a clock that steps back neither adds budget nor takes it away", () => {
  const { relay, setTime } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  setTime(10_000);
  relay.introduce("alice", "bob");
  relay.introduce("alice", "carol");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  setTime(5_000);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("alice", "carol", 1000, "192.0.2.1"), "ok");
  // Back at the time it was emptied: the seconds spent "in the past" are not refilled again.
  setTime(10_000);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  setTime(10_500);
  assert.equal(relay.allow("alice", "bob", 500, "192.0.2.1"), "ok");
});

Deno.test("names that share a prefix or differ by order are distinct pairs", () => {
  const { relay } = setup();
  relay.introduce("ab", "c");
  assert.equal(relay.allow("a", "bc", 1, "192.0.2.1"), "not-introduced");
  assert.equal(relay.allow("c", "ab", 1, "192.0.2.1"), "ok");
  relay.introduce("张伟", "😀");
  assert.equal(relay.allow("😀", "张伟", 1, "192.0.2.1"), "ok");
  assert.equal(relay.size, 2);
});

Deno.test("a pair's spent budget survives a logout and a new introduction", () => {
  const { relay, advance } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  relay.forget("alice");
  assert.equal(relay.remembered, 1);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "not-introduced");
  // Logging in again and asking for a new introduction buys nothing.
  relay.introduce("bob", "alice");
  assert.equal(relay.remembered, 0);
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  // The time spent logged out counts, as it would have online.
  relay.forget("bob");
  advance(400);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 401, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("alice", "bob", 400, "192.0.2.1"), "ok");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
});

Deno.test("the packet budget survives a logout too", () => {
  const { relay, advance } = setup({ burstPackets: 5, packetsPerSecond: 4 });
  relay.introduce("alice", "bob");
  assert.equal(burst(relay, "alice", "bob", 0, 10), 5);
  relay.forget("bob");
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 0, "192.0.2.1"), "over-budget");
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
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
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
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  // A bucket that refilled while its pair was online is not kept either.
  assert.equal(relay.allow("erin", "frank", 1000, "192.0.2.1"), "ok");
  advance(1000);
  relay.forget("frank");
  assert.equal(relay.remembered, 0);
});

Deno.test("at most maxRemembered buckets are remembered, the oldest forgotten first", () => {
  const { relay, advance } = setup({ burstBytes: 1000, bytesPerSecond: 1, maxRemembered: 2 });
  const pairs = [["a", "b"], ["c", "d"], ["e", "f"]];
  for (const [x, y] of pairs) {
    relay.introduce(x, y);
    assert.equal(relay.allow(x, y, 1000, "192.0.2.1"), "ok");
  }
  for (const [x] of pairs) {
    relay.forget(x);
    advance(1);
  }
  assert.equal(relay.remembered, 2);
  for (const [x, y] of pairs) relay.introduce(x, y);
  assert.equal(relay.allow("a", "b", 1000, "192.0.2.1"), "ok"); // pushed out: a full bucket again
  assert.equal(relay.allow("c", "d", 100, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("e", "f", 100, "192.0.2.1"), "over-budget");

  const none = setup({ burstBytes: 1000, bytesPerSecond: 1, maxRemembered: 0 });
  none.relay.introduce("a", "b");
  assert.equal(none.relay.allow("a", "b", 1000, "192.0.2.1"), "ok");
  none.relay.forget("a");
  assert.equal(none.relay.remembered, 0);
  none.relay.introduce("a", "b");
  assert.equal(none.relay.allow("a", "b", 1000, "192.0.2.1"), "ok");
});

Deno.test("a clock that steps back while a pair is forgotten refills nothing twice", () => {
  const { relay, setTime } = setup({ burstBytes: 1000, bytesPerSecond: 1000 });
  setTime(10_000);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
  relay.forget("alice");
  setTime(5_000);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 1, "192.0.2.1"), "over-budget");
  relay.forget("bob");
  setTime(10_500);
  relay.introduce("alice", "bob");
  assert.equal(relay.allow("alice", "bob", 501, "192.0.2.1"), "over-budget");
  assert.equal(relay.allow("alice", "bob", 500, "192.0.2.1"), "ok");
});

Deno.test("a sender's budget caps what it relays to everyone together", () => {
  const { relay, advance } = setup({ perUser: { bytesPerSecond: 1000, packetsPerSecond: 100 } });
  for (const to of ["bob", "carol", "dave"]) relay.introduce("alice", to);
  // 8 s of bytes at once (8,000), shared by alice's three pairs.
  assert.equal(burst(relay, "alice", "bob", 1000, 5), 5);
  assert.equal(burst(relay, "alice", "carol", 1000, 5), 3);
  assert.equal(relay.allow("alice", "dave", 1, "192.0.2.1"), "user-over-budget");
  assert.equal(relay.stats.userOverBudget, 3);
  // The others' own sending is not alice's: bob has his budget.
  assert.equal(relay.allow("bob", "alice", 1000, "192.0.2.2"), "ok");
  advance(1000);
  assert.equal(burst(relay, "alice", "dave", 1000, 5), 1);
  // Packets: 4 s worth (400) at once.
  const packets = setup({ perUser: { bytesPerSecond: 1e9, packetsPerSecond: 100 } });
  packets.relay.introduce("alice", "bob");
  packets.relay.introduce("alice", "carol");
  assert.equal(burst(packets.relay, "alice", "bob", 1, 300), 300);
  assert.equal(burst(packets.relay, "alice", "carol", 1, 300), 100);
});

Deno.test("an address's budget caps what all its users relay together; a swarm gains nothing", () => {
  const { relay, advance } = setup({
    perAddress: { bytesPerSecond: 64 * 1024, packetsPerSecond: 200 },
  });
  const swarm = ["m1", "m2", "m3", "m4", "m5"];
  for (const m of swarm) relay.introduce(m, "victim");
  let relayed = 0;
  for (let second = 0; second < 10; second++) {
    for (const m of swarm) {
      for (let i = 0; i < 200; i++) {
        if (relay.allow(m, "victim", 1000, "198.51.100.9") === "ok") relayed += 1000;
      }
    }
    advance(1000);
  }
  // One pair's worth (512 KiB + 9 × 64 KiB), not five pairs'.
  assert.ok(relayed <= 8 * 64 * 1024 + 9 * 64 * 1024, `${relayed}`);
  assert.ok(relayed > 8 * 64 * 1024 + 8 * 64 * 1024, `${relayed}`);
  assert.ok(relay.stats.addressOverBudget > 0);
  // Another address is not affected.
  relay.introduce("alice", "victim");
  assert.equal(relay.allow("alice", "victim", 1000, "192.0.2.1"), "ok");
});

Deno.test("a refused frame charges nothing, and refilled senders and addresses are forgotten", () => {
  const { relay, advance } = setup({
    perUser: { bytesPerSecond: 1000, packetsPerSecond: 100 },
    perAddress: { bytesPerSecond: 2000, packetsPerSecond: 100 },
  });
  relay.introduce("alice", "bob");
  relay.introduce("carol", "bob");
  assert.equal(burst(relay, "alice", "bob", 1000, 8), 8);
  // The address has 8,000 bytes left, but alice is out: refused, and the address is not charged.
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "user-over-budget");
  assert.equal(burst(relay, "carol", "bob", 1000, 10), 8);
  assert.equal(relay.allow("carol", "bob", 1, "192.0.2.1"), "user-over-budget");
  relay.sweep();
  advance(16_000);
  relay.sweep(); // everything refilled: nothing to remember
  assert.equal(burst(relay, "alice", "bob", 1000, 8), 8);
});

Deno.test("the file limit is a per-pair volume: a file of the limit passes, a bulk transfer stalls", () => {
  const { relay, advance } = setup({ fileLimitBytes: 64 * 1024 });
  relay.introduce("alice", "bob");
  // 64 KiB × 1.25 + 256 KiB = 336 KiB at once; the rate buckets refill meanwhile.
  let ok = 0;
  for (let i = 0; i < 1000; i++) {
    if (relay.allow("alice", "bob", 1000, "192.0.2.1") === "ok") ok++;
    advance(20); // 50 frames a second: well under the per-second budgets
  }
  // 344 frames at once, and 20 s of refill (573 B/s) on top.
  assert.ok(ok >= 344 && ok <= 360, `${ok} frames of 1000 B relayed`);
  // It refills over 10 minutes.
  advance(10 * 60_000);
  assert.equal(relay.allow("alice", "bob", 1000, "192.0.2.1"), "ok");
});

Deno.test("a file limit of 0 means no files over the relay: chat's 256 KiB volume only", () => {
  const { relay, advance } = setup({ fileLimitBytes: 0 });
  relay.introduce("alice", "bob");
  let ok = 0;
  for (let i = 0; i < 2000; i++) {
    if (relay.allow("alice", "bob", 1000, "192.0.2.1") === "ok") ok++;
    advance(20);
  }
  // 256 KiB at once, plus what 40 s of the 10-minute refill adds: no bulk transfer.
  assert.ok(ok >= 262 && ok < 300, `${ok} datagrams of 1000 bytes relayed`);
});
