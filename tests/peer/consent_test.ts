import assert from "node:assert/strict";
import { Consent, type ConsentOptions } from "../../lib/peer/consent.ts";
import { FakeClock } from "../support/fake_clock.ts";

const BOB = new Uint8Array(32).fill(1);
const OTHER = new Uint8Array(32).fill(2);

function consent(options: Partial<ConsentOptions> = {}): Consent {
  const pinned = new Map([["bob", BOB]]);
  return new Consent({ policy: "anyone", pinned: (u) => pinned.get(u), ...options });
}

Deno.test("known: only pinned keys and users we wrote to are accepted", () => {
  const c = consent({ policy: "known" });
  assert.deepEqual(c.decide("bob", BOB, 0), { accepted: true });
  assert.deepEqual(c.decide("mallory", OTHER, 0), {
    accepted: false,
    reason: "you accept only known users (--accept known); write to mallory to talk",
  });
  assert.equal(c.consented("mallory"), false);
  c.want("mallory");
  assert.deepEqual(c.decide("mallory", OTHER, 0), { accepted: true });
  assert.equal(c.consented("mallory"), true);
});

Deno.test("known: a pinned name with another key is not known", () => {
  const c = consent({ policy: "known" });
  assert.deepEqual(c.decide("bob", OTHER, 0), {
    accepted: false,
    reason: "bob's key differs from the one pinned when you talked before",
  });
  // Traffic carries no key: the name is enough to ask (the handshake checks the key).
  assert.deepEqual(c.decide("bob", undefined, 0), { accepted: true });
});

Deno.test("anyone: strangers are accepted, so many at once, then so many a minute; known users always", () => {
  const clock = new FakeClock(0);
  const c = consent({ strangersBurst: 2, strangersPerMinute: 2 });
  assert.equal(c.decide("s1", OTHER, clock.now()).accepted, true);
  assert.equal(c.decide("s2", OTHER, clock.now()).accepted, true);
  assert.deepEqual(c.decide("s3", OTHER, clock.now()), {
    accepted: false,
    reason: "too many new users asked to talk (more than 2 at once, then 2 a minute)",
  });
  // Those already accepted, and known ones, cost nothing.
  assert.equal(c.decide("s1", OTHER, clock.now()).accepted, true);
  assert.equal(c.decide("bob", BOB, clock.now()).accepted, true);
  clock.advance(29_999);
  assert.equal(c.decide("s3", OTHER, clock.now()).accepted, false);
  clock.advance(1);
  assert.equal(c.decide("s3", OTHER, clock.now()).accepted, true, "30 s on, one more");
  assert.equal(c.decide("s4", OTHER, clock.now()).accepted, false);
});

Deno.test("anyone: a busy room's 30 strangers at once are accepted by default, then 10 a minute", () => {
  const clock = new FakeClock(0);
  const c = consent({ strangersBurst: undefined, strangersPerMinute: undefined });
  for (let i = 0; i < 30; i++) assert.equal(c.decide(`s${i}`, OTHER, clock.now()).accepted, true);
  assert.deepEqual(c.decide("s30", OTHER, clock.now()), {
    accepted: false,
    reason: "too many new users asked to talk (more than 30 at once, then 10 a minute)",
  });
  clock.advance(60_000);
  const next = Array.from({ length: 11 }, (_, i) => c.decide(`t${i}`, OTHER, clock.now()).accepted);
  assert.deepEqual(next, [...Array(10).fill(true), false], "a minute on, ten more");
});
