import assert from "node:assert/strict";
import { encodeKey, fingerprint } from "../../lib/crypto/identity.ts";
import type { AcceptPolicy } from "../../lib/peer/consent.ts";
import { ASK_INTERVAL_MS, Door, type KnockEvent } from "../../lib/peer/door.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

const BOB = new Uint8Array(32).fill(1);
const MALLORY = new Uint8Array(32).fill(2);
const MALLORY_AT: Endpoint = { host: "198.51.100.9", port: 4000 };

/** A door for alice, who pinned bob's key; mallory is listed online at MALLORY_AT. */
function door(policy: AcceptPolicy = "anyone", strangersPerMinute?: number) {
  const clock = new FakeClock();
  const asked: string[] = [];
  const knocks: KnockEvent[] = [];
  const pinned = new Map([["bob", BOB]]);
  const listed = new Map([["mallory", MALLORY_AT], ["bob", { host: "192.0.2.2", port: 2000 }]]);
  const d = new Door({
    me: "alice",
    policy,
    pinned: (u) => pinned.get(u),
    strangersPerMinute,
    listed: (u) => listed.get(u),
    ask: (u) => asked.push(u),
    onKnock: (e) => knocks.push(e),
    clock,
  });
  return { door: d, clock, asked, knocks };
}

Deno.test("door: an accepted knock is reported and answered with our consent", () => {
  const { door: d, asked, knocks } = door();
  d.knock("mallory", encodeKey(MALLORY));
  assert.deepEqual(knocks, [
    { event: "knock", user: "mallory", fingerprint: fingerprint(MALLORY), accepted: true },
  ]);
  assert.deepEqual(asked, ["mallory"]);
});

Deno.test("door: a refused knock is reported with the reason, and nothing is asked", () => {
  const { door: d, asked, knocks } = door("known");
  d.knock("mallory", encodeKey(MALLORY));
  assert.deepEqual(knocks, [{
    event: "knock",
    user: "mallory",
    fingerprint: fingerprint(MALLORY),
    accepted: false,
    reason: "you accept only known users (--accept known); write to mallory to talk",
  }]);
  assert.deepEqual(asked, []);
  // Once we write to mallory, its knock is accepted.
  d.want("mallory");
  d.knock("mallory", encodeKey(MALLORY));
  assert.equal(knocks[1].accepted, true);
  assert.deepEqual(asked, ["mallory"]);
});

Deno.test("door: knocks in our own name, or with a malformed key, are ignored", () => {
  const { door: d, asked, knocks } = door();
  d.knock("alice", encodeKey(MALLORY));
  d.knock("mallory", "not a key");
  assert.deepEqual(knocks, []);
  assert.deepEqual(asked, []);
});

Deno.test("door: the default strangers' budget is 30 at once, then 10 a minute", () => {
  const { door: d, knocks, clock } = door();
  for (let i = 0; i < 31; i++) d.knock(`s${i}`, encodeKey(MALLORY));
  assert.deepEqual(knocks.map((k) => k.accepted), [...Array(30).fill(true), false]);
  assert.equal(
    knocks[30].reason,
    "too many new users asked to talk (more than 30 at once, then 10 a minute)",
  );
  clock.advance(6000);
  d.knock("s30", encodeKey(MALLORY));
  assert.equal(knocks[31].accepted, true, "6 s on, one more");
  d.knock("s31", encodeKey(MALLORY));
  assert.equal(knocks[32].accepted, false);
});

Deno.test("door: an unasked introduction is taken if we consented, else decided like a knock", () => {
  const { door: d, asked, knocks } = door("known");
  d.want("carol");
  assert.equal(d.admitIntroduction("carol", MALLORY), true);
  assert.equal(knocks.length, 0, "consented: nothing to decide");
  assert.equal(d.admitIntroduction("bob", BOB), true, "a pinned key is known");
  assert.equal(knocks.at(-1)?.accepted, true);
  assert.equal(d.admitIntroduction("mallory", MALLORY), false);
  assert.equal(knocks.at(-1)?.accepted, false);
  assert.deepEqual(asked, [], "an introduction needs no connect of ours");
  assert.deepEqual(d.drops, { unsolicitedFrames: 0, refusedRelayed: 0, refusedIntroductions: 1 });
});

Deno.test("door: strangers' frames are counted; vouched ones ask at most every 2 s per user", () => {
  const { door: d, asked, clock } = door();
  d.strangerFrame("mallory", "relay");
  assert.deepEqual(asked, ["mallory"], "the coordinator vouches for a relayed frame's name");
  d.strangerFrame("mallory", MALLORY_AT);
  clock.advance(ASK_INTERVAL_MS - 1);
  d.strangerFrame("mallory", "relay");
  assert.deepEqual(asked, ["mallory"], "asked less than 2 s ago");
  clock.advance(1);
  d.strangerFrame("mallory", MALLORY_AT);
  assert.deepEqual(asked, ["mallory", "mallory"], "from its listed endpoint, 2 s on");
  assert.deepEqual(d.drops, { unsolicitedFrames: 2, refusedRelayed: 2, refusedIntroductions: 0 });
});

Deno.test("door: frames from anywhere else, in our name, or refused by policy ask nothing", () => {
  const { door: d, asked, knocks } = door("known");
  d.strangerFrame("bob", { host: "203.0.113.5", port: 9 }); // not bob's listed endpoint
  d.strangerFrame("carol", { host: "203.0.113.5", port: 9 }); // not listed at all
  d.strangerFrame("alice", "relay");
  d.strangerFrame("mallory", "relay"); // vouched for, but not known
  assert.deepEqual(asked, []);
  assert.deepEqual(knocks, [], "traffic is not a knock: nothing reported");
  d.strangerFrame("bob", "relay"); // pinned: known
  assert.deepEqual(asked, ["bob"]);
  const drops = d.drops;
  assert.deepEqual(drops, { unsolicitedFrames: 2, refusedRelayed: 3, refusedIntroductions: 0 });
  drops.refusedRelayed = 0;
  assert.equal(d.drops.refusedRelayed, 3, "drops is a copy");
});
