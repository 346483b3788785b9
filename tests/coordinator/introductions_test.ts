import assert from "node:assert/strict";
import { Introductions, type IntroductionsOptions } from "../../lib/coordinator/introductions.ts";
import { Registry, type User } from "../../lib/coordinator/registry.ts";
import { RelayPolicy } from "../../lib/coordinator/relay.ts";
import { type Endpoint, formatEndpoint } from "../../lib/protocol/endpoint.ts";
import { encodeServerMessage, type ServerMessage } from "../../lib/protocol/seed.ts";
import { FakeClock } from "../support/fake_clock.ts";

function setup(options: Partial<IntroductionsOptions> = {}) {
  const clock = new FakeClock(0);
  const registry = new Registry({ now: () => clock.now(), peerTimeoutMs: 45_000 });
  const relay = new RelayPolicy({ now: () => clock.now() });
  const sent: string[] = [];
  let tokens = 0;
  const introductions = new Introductions({
    registry,
    relay,
    now: () => clock.now(),
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

Deno.test("both sides' connect introduces them, with one new token, and opens the relay", () => {
  const { relay, take, introductions, user, clock } = setup();
  const alice = user("alice", 1, { host: "192.0.2.9" });
  const bob = user("bob", 2, { host: "192.0.2.9" });
  bob.nat = "hard";
  introductions.connect(alice, "bob");
  take();
  clock.advance(5000);
  introductions.connect(bob, "alice");
  // Behind one public address: each learns the other's LAN endpoint.
  assert.deepEqual(take(), [
    "192.0.2.9:4000 Introduce,alice,192.0.2.9:4000,10.0.0.1:4000,key-alice,token1",
    "192.0.2.9:4000 Introduce,bob,192.0.2.9:4000,10.0.0.2:4000,key-bob,token1,hard",
  ]);
  assert.equal(relay.allow("alice", "bob", 10), "ok");
  assert.equal(relay.allow("bob", "alice", 10), "ok");
  // The pair stays consented: either side's re-introduction goes through at once.
  clock.advance(95_000);
  introductions.connect(alice, "bob");
  assert.equal(take().length, 2);
  introductions.connect(bob, "alice");
  const again = take();
  assert.equal(again.length, 2);
  assert.match(again[0], /,token1(,hard)?$/);
  assert.equal(introductions.stats.introductions, 3);
});

Deno.test("a consented pair keeps its token in every re-introduction; a new consent gets a new one", () => {
  const { registry, relay, take, introductions, user, clock } = setup();
  const alice = user("alice", 1);
  const bob = user("bob", 2);
  introductions.connect(alice, "bob");
  introductions.connect(bob, "alice");
  const tokenOf = (lines: string[]) => [...new Set(lines.map((l) => l.split(",")[5]))];
  assert.deepEqual(tokenOf(take().slice(1)), ["token1"]);
  // Both ask again every 13 s or so while off a direct path, each time during the other's
  // handshake: a new token each time would fail the handshake's retries (`mac1`).
  for (let i = 0; i < 6; i++) {
    clock.advance(6500);
    introductions.connect(i % 2 ? bob : alice, i % 2 ? "alice" : "bob");
    const lines = take();
    assert.equal(lines.length, 2);
    assert.deepEqual(tokenOf(lines), ["token1"], `re-introduction ${i}: ${lines}`);
  }
  // Bob leaves and comes back: the pair must consent again, and that consent has a new token.
  assert.equal(registry.logout("bob", bob.observed, bob.secret).kind, "removed");
  relay.forget("bob");
  introductions.forget("bob");
  const bob2 = user("bob", 2);
  introductions.connect(alice, "bob");
  assert.deepEqual(take(), ["192.0.2.2:4000 Knock,alice,key-alice"]);
  introductions.connect(bob2, "alice");
  assert.deepEqual(tokenOf(take()), ["token2"]);
  introductions.connect(alice, "bob");
  assert.deepEqual(tokenOf(take()), ["token2"]);
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
  for (let i = 0; i < 10; i++, clock.advance(2000)) introductions.connect(mallory, "victim");
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
  clock.advance(1000);
  introductions.connect(victim, "mallory");
  assert.deepEqual(take(), ["192.0.2.3:4000 Knock,victim,key-victim"]);
  assert.equal(relay.allow("mallory", "victim", 10), "not-introduced");
});

Deno.test("knocks are limited per target across addresses, whoever asks; the budget refills", () => {
  const { take, introductions, user, clock } = setup({ knocks: { burst: 3, perMinute: 6 } });
  user("star", 1);
  const fans = [2, 3, 4, 5, 6].map((n) => user(`fan${n}`, n));
  for (const fan of fans) introductions.connect(fan, "star");
  assert.equal(take().length, 3);
  assert.equal(introductions.stats.knocksLimited, 2);
  clock.advance(10_000); // one knock's worth
  introductions.connect(user("late", 7), "star");
  assert.deepEqual(take(), ["192.0.2.1:4000 Knock,late,key-late"]);
});

Deno.test("names on one address get one address's knocks: another address still gets through", () => {
  const { take, introductions, user } = setup({ knocks: { perAddressBurst: 2 } });
  user("victim", 1);
  const names = [2, 3, 4, 5, 6].map((n) => user(`sock${n}`, n, { host: "203.0.113.9" }));
  for (const name of names) introductions.connect(name, "victim");
  assert.deepEqual(take(), [
    "192.0.2.1:4000 Knock,sock2,key-sock2",
    "192.0.2.1:4000 Knock,sock3,key-sock3",
  ]);
  assert.equal(introductions.stats.knocksLimited, 3);
  introductions.connect(user("honest", 7), "victim");
  assert.deepEqual(take(), ["192.0.2.1:4000 Knock,honest,key-honest"]);
});

Deno.test("a held-back knock is tried again on the next connect; if it never went, the requester hears why", () => {
  const { take, introductions, user, clock } = setup({
    knocks: { perAddressBurst: 1, perAddressPerMinute: 1 },
  });
  user("victim", 1);
  const first = user("first", 2, { host: "203.0.113.9" });
  const second = user("second", 3, { host: "203.0.113.9" });
  introductions.connect(first, "victim");
  introductions.connect(second, "victim");
  assert.deepEqual(take(), ["192.0.2.1:4000 Knock,first,key-first"]);
  // Both clients (at one endpoint: second's lines come first) ask every 2 s. The address's budget
  // refills one knock a minute after first's.
  for (let i = 0; i < 30; i++) {
    clock.advance(2000);
    introductions.connect(second, "victim");
    introductions.connect(first, "victim");
  }
  const busy = "victim is receiving too many requests: try again later";
  assert.deepEqual(take(), [
    // 20 s: second's want never knocked; first's did, unanswered. Both ask anew at 22 s.
    `203.0.113.9:4000 Unavailable,victim,${busy}`,
    "203.0.113.9:4000 Unavailable,victim,victim did not accept your request to talk",
    // 42 s: neither new want could knock.
    `203.0.113.9:4000 Unavailable,victim,${busy}`,
    `203.0.113.9:4000 Unavailable,victim,${busy}`,
    // 60 s: the budget refilled, and second's held-back knock goes on its next connect.
    "192.0.2.1:4000 Knock,second,key-second",
  ]);
  assert.equal(introductions.stats.lapsed, 4);
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
  clock.advance(40_000);
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
