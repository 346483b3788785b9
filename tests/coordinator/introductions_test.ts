import assert from "node:assert/strict";
import { Introductions } from "../../lib/coordinator/introductions.ts";
import { Registry, type User } from "../../lib/coordinator/registry.ts";
import { RelayPolicy } from "../../lib/coordinator/relay.ts";
import { type Endpoint, formatEndpoint } from "../../lib/protocol/endpoint.ts";
import { encodeServerMessage, type ServerMessage } from "../../lib/protocol/seed.ts";

function setup() {
  const registry = new Registry({ now: () => 0, peerTimeoutMs: 45_000 });
  const relay = new RelayPolicy({ now: () => 0 });
  const sent: string[] = [];
  let tokens = 0;
  const introductions = new Introductions({
    registry,
    relay,
    send: (msg: ServerMessage, to: Endpoint) =>
      sent.push(`${formatEndpoint(to)} ${encodeServerMessage(msg)}`),
    token: () => `token${++tokens}`,
  });
  /** A user at 192.0.2.`n`:4000, online unless `pending`, with a key unless `seed`. */
  const user = (name: string, n: number, o: { seed?: boolean; pending?: boolean } = {}): User => {
    const at = { host: `192.0.2.${n}`, port: 4000 };
    const ext = o.seed ? undefined : { key: `key-${name}`, secret: `secret-${name}` };
    registry.login(name, { host: "10.0.0.2", port: 4000 }, at, ext);
    if (!o.pending) registry.admitFrom(at.host);
    return registry.get(name)!;
  };
  return { registry, relay, sent, introductions, user };
}

Deno.test("connect introduces both sides to each other, with one fresh token, and opens the relay", () => {
  const { relay, sent, introductions, user } = setup();
  const alice = user("alice", 1);
  const bob = user("bob", 2);
  bob.nat = "hard";
  assert.equal(relay.allow("alice", "bob", 10), "not-introduced");
  introductions.connect(alice, "bob");
  assert.deepEqual(sent, [
    "192.0.2.1:4000 Introduce,bob,192.0.2.2:4000,10.0.0.2:4000,key-bob,token1,hard",
    "192.0.2.2:4000 Introduce,alice,192.0.2.1:4000,10.0.0.2:4000,key-alice,token1",
  ]);
  assert.equal(relay.allow("alice", "bob", 10), "ok");
  assert.equal(relay.allow("bob", "alice", 10), "ok");
  introductions.connect(bob, "alice");
  assert.match(sent[2], /,token2$/, "a new token for each introduction");
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
