import assert from "node:assert/strict";
import {
  addressKey,
  ConnectionSlots,
  DEFAULT_LIMITS,
  LogThrottle,
  RateLimiter,
  resolveLimits,
} from "../../lib/coordinator/limits.ts";

Deno.test("resolveLimits fills in defaults and refuses nonsense, naming the limit", () => {
  assert.deepEqual(resolveLimits(), DEFAULT_LIMITS);
  assert.equal(resolveLimits({ maxUsers: 5, maxTcp: undefined }).maxUsers, 5);
  assert.equal(resolveLimits({ maxUsers: 5 }).maxTcp, DEFAULT_LIMITS.maxTcp);
  for (const bad of [0, -1, NaN, Infinity]) {
    assert.throws(() => resolveLimits({ datagramsPerSecond: bad }), /datagramsPerSecond/);
  }
  assert.throws(() => resolveLimits({ maxLineBytes: 513 }), /maxLineBytes is 513/);
  assert.throws(() => resolveLimits({ nonsense: 1 } as never), /Unknown limit "nonsense"/);
  assert.ok(Object.isFrozen(DEFAULT_LIMITS));
});

Deno.test("addressKey keeps IPv4 addresses and groups IPv6 addresses by /64", () => {
  assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
  assert.equal(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("2001:DB8:0:0:ffff::2"), "2001:db8:0:0::/64");
  assert.equal(addressKey("2001:0db8:0001:0002:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("::"), "0:0:0:0::/64");
  assert.equal(addressKey("fe80::1:2:3:4"), "fe80:0:0:0::/64");
  assert.equal(addressKey("2001:db8:1::ffff:192.0.2.1"), "2001:db8:1:0::/64");
  assert.equal(addressKey("1:2:3:4:5:6::"), "1:2:3:4::/64");
  assert.notEqual(addressKey("2001:db8:0:1::1"), addressKey("2001:db8:0:2::1"));
});

Deno.test("RateLimiter allows a burst, then the sustained rate, per key", () => {
  const clock = { t: 0 };
  const limiter = new RateLimiter({ now: () => clock.t, perSecond: 10 });
  let allowed = 0;
  for (let i = 0; i < 100; i++) if (limiter.allow("a")) allowed++;
  assert.equal(allowed, 20, "the burst is twice the rate");
  assert.ok(limiter.allow("b"), "another key has its own bucket");
  clock.t = 500;
  allowed = 0;
  for (let i = 0; i < 100; i++) if (limiter.allow("a")) allowed++;
  assert.equal(allowed, 5, "half a second refills half the rate");
  clock.t = 100_000;
  allowed = 0;
  for (let i = 0; i < 100; i++) if (limiter.allow("a")) allowed++;
  assert.equal(allowed, 20, "never more than the burst");
  // A cost larger than what is left is refused without spending anything.
  const big = new RateLimiter({ now: () => clock.t, perSecond: 1, burst: 3 });
  assert.ok(!big.allow("x", 4));
  assert.ok(big.allow("x", 3));
  // A clock that goes backwards does not mint tokens.
  clock.t = 0;
  assert.ok(!big.allow("x"));
});

Deno.test("RateLimiter holds a bounded number of keys and forgets idle ones", () => {
  const clock = { t: 0 };
  const limiter = new RateLimiter({ now: () => clock.t, perSecond: 1, burst: 2, maxKeys: 100 });
  for (let i = 0; i < 10_000; i++) limiter.allow(`k${i}`);
  assert.equal(limiter.size, 100);
  limiter.allow("busy");
  limiter.allow("busy");
  clock.t = 1_000; // one token back: "busy" is not full yet, the others are
  limiter.sweep();
  assert.equal(limiter.size, 1);
  assert.ok(limiter.allow("busy"));
  assert.ok(!limiter.allow("busy"), "sweeping kept the key's state");
});

Deno.test("ConnectionSlots: a key at its cap gives its oldest slot to its newest", () => {
  const slots = new ConnectionSlots<string>({ perKey: 2, total: 3 });
  assert.deepEqual(slots.open("a", "a1"), { kind: "ok" });
  assert.deepEqual(slots.open("a", "a2"), { kind: "ok" });
  // Behaviour changed by issue 18: the third is not refused, the oldest of the address makes way.
  assert.deepEqual(slots.open("a", "a3"), {
    kind: "evicted",
    evicted: "a1",
    from: "a",
    because: "address",
  });
  assert.equal(slots.held("a"), 2);
  assert.equal(slots.count, 2);
  slots.close("a", "a1"); // evicted already: ignored
  assert.equal(slots.count, 2);
  slots.close("a", "a2");
  slots.close("a", "a3");
  slots.close("nobody", "x"); // ignored
  assert.equal(slots.count, 0);
  assert.equal(slots.held("a"), 0);
});

Deno.test("ConnectionSlots: when all are taken, a key holding fewer evicts the biggest holder's oldest", () => {
  const slots = new ConnectionSlots<string>({ perKey: 8, total: 6 });
  for (const item of ["a1", "a2", "a3", "a4"]) assert.equal(slots.open("a", item).kind, "ok");
  for (const item of ["b1", "b2"]) assert.equal(slots.open("b", item).kind, "ok");
  // Full: c holds none, a the most.
  assert.deepEqual(slots.open("c", "c1"), {
    kind: "evicted",
    evicted: "a1",
    from: "a",
    because: "total",
  });
  assert.deepEqual(slots.open("c", "c2"), {
    kind: "evicted",
    evicted: "a2",
    from: "a",
    because: "total",
  });
  // a, b and c hold 2 each: a newcomer evicts the oldest of the one that came to hold 2 first.
  assert.deepEqual(slots.open("d", "d1"), {
    kind: "evicted",
    evicted: "b1",
    from: "b",
    because: "total",
  });
  // A key that holds as many as anyone is refused: it cannot take from its equals.
  assert.deepEqual(slots.open("a", "a5"), { kind: "refused" });
  const held = ["a", "b", "c", "d"].map((key) => slots.held(key));
  assert.deepEqual(held, [2, 1, 2, 1]);
  assert.equal(slots.count, 6);
});

Deno.test("ConnectionSlots: 128 keys holding 8 each cannot keep a newcomer out", () => {
  const slots = new ConnectionSlots<number>({ perKey: 8, total: 1024 });
  for (let i = 0; i < 1024; i++) assert.equal(slots.open(`k${i >> 3}`, i).kind, "ok");
  const verdict = slots.open("newcomer", -1);
  assert.equal(verdict.kind, "evicted");
  assert.equal(slots.held("newcomer"), 1);
  assert.equal(slots.count, 1024);
  // And the newcomer's later fetches too, while the flood goes on.
  for (let i = 0; i < 100; i++) {
    slots.open(`k${i % 128}`, 10_000 + i); // the flood reconnects
    slots.close("newcomer", -1 - i);
    assert.notEqual(slots.open("newcomer", -2 - i).kind, "refused");
  }
});

Deno.test("LogThrottle writes a burst per kind, then a trickle, and counts the rest", () => {
  const clock = { t: 0 };
  const lines: string[] = [];
  const log = new LogThrottle({ now: () => clock.t, log: (l) => lines.push(l), burst: 3 });
  for (let i = 0; i < 1000; i++) log.line("malformed", `bad ${i}`);
  log.line("limit", "limit hit");
  assert.deepEqual(lines, ["bad 0", "bad 1", "bad 2", "limit hit"]);
  log.flush();
  assert.equal(lines.at(-1), "suppressed 997 more malformed line(s)");
  log.flush();
  assert.equal(lines.length, 5, "nothing more to report");
  clock.t = 1_000; // one line per second after the burst
  log.line("malformed", "bad again");
  log.line("malformed", "bad again");
  assert.equal(lines.at(-1), "bad again");
  assert.equal(lines.length, 6);
});
