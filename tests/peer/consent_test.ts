import assert from "node:assert/strict";
import { Consent, type ConsentOptions } from "../../lib/peer/consent.ts";

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

Deno.test("anyone: strangers are accepted, at most so many a minute; known users always", () => {
  const c = consent({ strangersPerMinute: 2 });
  assert.equal(c.decide("s1", OTHER, 0).accepted, true);
  assert.equal(c.decide("s2", OTHER, 1000).accepted, true);
  assert.deepEqual(c.decide("s3", OTHER, 2000), {
    accepted: false,
    reason: "more than 2 new users asked this minute",
  });
  // Those already accepted, and known ones, cost nothing.
  assert.equal(c.decide("s1", OTHER, 3000).accepted, true);
  assert.equal(c.decide("bob", BOB, 3000).accepted, true);
  assert.equal(c.decide("s3", OTHER, 60_000).accepted, true, "a minute on, one more");
  assert.equal(c.decide("s4", OTHER, 60_500).accepted, false);
});

Deno.test("anyone: 10 strangers a minute by default, even with the option given as undefined", () => {
  const c = consent({ strangersPerMinute: undefined });
  for (let i = 0; i < 10; i++) assert.equal(c.decide(`s${i}`, OTHER, 0).accepted, true);
  assert.deepEqual(c.decide("s10", OTHER, 0), {
    accepted: false,
    reason: "more than 10 new users asked this minute",
  });
});
