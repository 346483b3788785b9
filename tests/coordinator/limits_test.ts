import assert from "node:assert/strict";
import {
  addressKey,
  ConnectionCounter,
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

Deno.test("ConnectionCounter caps connections per key and in total", () => {
  const tcp = new ConnectionCounter({ perKey: 2, total: 3 });
  assert.equal(tcp.open("a"), "ok");
  assert.equal(tcp.open("a"), "ok");
  assert.equal(tcp.open("a"), "address");
  assert.equal(tcp.open("b"), "ok");
  assert.equal(tcp.open("c"), "total");
  assert.equal(tcp.count, 3);
  tcp.close("a");
  assert.equal(tcp.open("c"), "ok");
  tcp.close("nobody"); // ignored
  assert.equal(tcp.count, 3);
  for (const key of ["a", "b", "c"]) tcp.close(key);
  assert.equal(tcp.count, 0);
  tcp.close("a"); // already closed: ignored
  assert.equal(tcp.count, 0);
  assert.equal(tcp.open("a"), "ok");
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
