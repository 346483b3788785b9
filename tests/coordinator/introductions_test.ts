import assert from "node:assert/strict";
import { Introductions, type IntroductionsOptions } from "../../lib/coordinator/introductions.ts";
import { Registry, type User } from "../../lib/coordinator/registry.ts";
import { RelayPolicy } from "../../lib/coordinator/relay.ts";
import { type Endpoint, formatEndpoint } from "../../lib/protocol/endpoint.ts";
import { encodeServerMessage, type ServerMessage } from "../../lib/protocol/seed.ts";

function setup(options: Partial<IntroductionsOptions> = {}) {
  const clock = { t: 0 };
  const registry = new Registry({ now: () => clock.t, peerTimeoutMs: 45_000 });
  const relay = new RelayPolicy({ now: () => clock.t });
  const sent: string[] = [];
  let tokens = 0;
  const introductions = new Introductions({
    registry,
    relay,
    now: () => clock.t,
    send: (msg: ServerMessage, to: Endpoint) =>
      sent.push(`${formatEndpoint(to)} ${encodeServerMessage(msg)}`),
    token: () => `token${++tokens}`,
    ...options,
  });
  /**
   * A user at `host`:4000 (default 192.0.2.`n`), online unless `pending`, with a key unless
   * `seed`, that claims 10.0.0.`n`:4000 as its LAN endpoint.
   */
  const user = (
    name: string,
    n: number,
    o: { seed?: boolean; pending?: boolean; host?: string } = {},
  ): User => {
    const at = { host: o.host ?? `192.0.2.${n}`, port: 4000 };
    const ext = o.seed ? undefined : { key: `key-${name}`, secret: `secret-${name}` };
    registry.login(name, { host: `10.0.0.${n}`, port: 4000 }, at, ext);
    if (!o.pending) registry.admitFrom(at.host);
    return registry.get(name)!;
  };
  /** Takes what was sent so far. */
  const take = () => sent.splice(0);
  return { registry, relay, sent, take, introductions, user, clock };
}

Deno.test("one side's connect knocks on the other's door and tells the requester nothing", () => {
  const { relay, take, introductions, user } = setup();
  const alice = user("alice", 1);
  user("bob", 2);
  introductions.connect(alice, "bob");
  assert.deepEqual(take(), ["192.0.2.2:4000 Knock,alice,key-alice"]);
  assert.equal(relay.allow("alice", "bob", 10), "not-introduced");
  assert.deepEqual(introductions.stats, {
    introductions: 0,
    knocks: 1,
    knocksLimited: 0,
    lapsed: 0,
  });
});

Deno.test("both sides' connect introduces them, with one fresh token, and opens the relay", () => {
  const { relay, take, introductions, user, clock } = setup();
  const alice = user("alice", 1, { host: "192.0.2.9" });
  const bob = user("bob", 2, { host: "192.0.2.9" });
  bob.nat = "hard";
  introductions.connect(alice, "bob");
  take();
  clock.t = 5000;
  introductions.connect(bob, "alice");
  // Behind one public address: each learns the other's LAN endpoint.
  assert.deepEqual(take(), [
    "192.0.2.9:4000 Introduce,alice,192.0.2.9:4000,10.0.0.1:4000,key-alice,token1",
    "192.0.2.9:4000 Introduce,bob,192.0.2.9:4000,10.0.0.2:4000,key-bob,token1,hard",
  ]);
  assert.equal(relay.allow("alice", "bob", 10), "ok");
  assert.equal(relay.allow("bob", "alice", 10), "ok");
  // The pair stays consented: either side's re-introduction goes through at once.
  clock.t = 100_000;
  introductions.connect(alice, "bob");
  assert.equal(take().length, 2);
  introductions.connect(bob, "alice");
  const again = take();
  assert.equal(again.length, 2);
  assert.match(again[0], /,token3(,hard)?$/, "a new token for each introduction");
  assert.equal(introductions.stats.introductions, 3);
});

Deno.test("the LAN endpoint goes only to a user behind the same public address", () => {
  const { take, introductions, user } = setup();
  const alice = user("alice", 1);
  const mallory = user("mallory", 3);
  introductions.connect(mallory, "alice");
  introductions.connect(alice, "mallory");
  assert.deepEqual(take().slice(1), [
    // The observed endpoint in both fields: "no LAN candidate" to any client.
    "192.0.2.1:4000 Introduce,mallory,192.0.2.3:4000,192.0.2.3:4000,key-mallory,token1",
    "192.0.2.3:4000 Introduce,alice,192.0.2.1:4000,192.0.2.1:4000,key-alice,token1",
  ]);
});

Deno.test("a want lapses unanswered: the requester hears why on its next connect", () => {
  const { relay, take, introductions, user, clock } = setup();
  const mallory = user("mallory", 3);
  const victim = user("victim", 4);
  // The client asks every 2 s while its message waits: one knock, repeated once half-way.
  for (clock.t = 0; clock.t < 20_000; clock.t += 2000) introductions.connect(mallory, "victim");
  assert.deepEqual(take(), [
    "192.0.2.4:4000 Knock,mallory,key-mallory",
    "192.0.2.4:4000 Knock,mallory,key-mallory",
  ]);
  introductions.connect(mallory, "victim");
  assert.deepEqual(take(), [
    "192.0.2.3:4000 Unavailable,victim,victim did not accept your request to talk",
  ]);
  assert.equal(introductions.stats.lapsed, 1);
  // The victim's consent after the lapse is a request of its own, not an introduction.
  clock.t += 1000;
  introductions.connect(victim, "mallory");
  assert.deepEqual(take(), ["192.0.2.3:4000 Knock,victim,key-victim"]);
  assert.equal(relay.allow("mallory", "victim", 10), "not-introduced");
});

Deno.test("knocks are limited per target, whoever asks; the budget refills", () => {
  const { take, introductions, user, clock } = setup({ knockBurst: 3, knocksPerMinute: 6 });
  user("star", 1);
  const fans = [2, 3, 4, 5, 6].map((n) => user(`fan${n}`, n));
  for (const fan of fans) introductions.connect(fan, "star");
  assert.equal(take().length, 3);
  assert.equal(introductions.stats.knocksLimited, 2);
  clock.t = 10_000; // one knock's worth
  introductions.connect(user("late", 7), "star");
  assert.deepEqual(take(), ["192.0.2.1:4000 Knock,late,key-late"]);
});

Deno.test("consent is forgotten when a side leaves, and belongs to one login", () => {
  const { registry, relay, take, introductions, user } = setup();
  const alice = user("alice", 1);
  const bob = user("bob", 2);
  introductions.connect(alice, "bob");
  introductions.connect(bob, "alice");
  take();
  // Bob leaves; whoever logs in as bob next has consented to nothing.
  assert.equal(registry.logout("bob", bob.observed, bob.secret).kind, "removed");
  relay.forget("bob");
  introductions.forget("bob");
  const bob2 = user("bob", 5);
  introductions.connect(alice, "bob");
  assert.deepEqual(take(), ["192.0.2.5:4000 Knock,alice,key-alice"]);
  // A want from an earlier login does not count either.
  assert.equal(registry.logout("alice", alice.observed, alice.secret).kind, "removed");
  user("alice", 6);
  introductions.connect(bob2, "alice");
  assert.deepEqual(take(), ["192.0.2.6:4000 Knock,bob,key-bob"]);
});

Deno.test("wants are swept once nobody asks for them any more", () => {
  const { introductions, user, clock } = setup();
  const alice = user("alice", 1);
  for (let n = 2; n < 12; n++) introductions.connect(alice, user(`u${n}`, n).name);
  assert.equal(introductions.wants, 10);
  clock.t = 40_000;
  introductions.connect(user("bob", 20), "alice");
  assert.equal(introductions.wants, 1);
});

Deno.test("connect to someone unreachable tells the requester why, and nobody else anything", () => {
  const { relay, sent, introductions, user } = setup();
  const alice = user("alice", 1);
  user("pat", 2, { pending: true });
  user("sid", 3, { seed: true });
  const seedOnly = user("sam", 4, { seed: true });
  user("bob", 5);
  introductions.connect(alice, "nobody");
  introductions.connect(alice, "pat");
  introductions.connect(alice, "sid");
  introductions.connect(alice, "alice");
  introductions.connect(seedOnly, "bob");
  assert.deepEqual(sent, [
    "192.0.2.1:4000 Unavailable,nobody,nobody is not online",
    "192.0.2.1:4000 Unavailable,pat,pat is not online",
    "192.0.2.1:4000 Unavailable,sid,sid uses a client without direct messaging",
    "192.0.2.1:4000 Unavailable,alice,cannot connect to yourself",
    "192.0.2.4:4000 Unavailable,bob,log in with a key first",
  ]);
  assert.equal(relay.allow("sam", "bob", 10), "not-introduced");
});
