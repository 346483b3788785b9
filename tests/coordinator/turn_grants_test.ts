import assert from "node:assert/strict";
import { Introductions } from "../../lib/coordinator/introductions.ts";
import { Registry } from "../../lib/coordinator/registry.ts";
import { RelayPolicy } from "../../lib/coordinator/relay.ts";
import { TurnGrants } from "../../lib/coordinator/turn_grants.ts";
import { formatEndpoint } from "../../lib/protocol/endpoint.ts";
import { encodeServerMessage, parseServerMessage } from "../../lib/protocol/seed.ts";
import { turnCredentials } from "../../lib/protocol/turn_credentials.ts";
import { FakeClock } from "../support/fake_clock.ts";

const secret = new TextEncoder().encode("north");

Deno.test("each side of an introduction gets its own TURN credentials right after Introduce", () => {
  const clock = new FakeClock(1_700_000_000_000);
  const registry = new Registry({ now: () => clock.now(), peerTimeoutMs: 45_000 });
  const grants = new TurnGrants({ uri: "turn:192.0.2.7:3478", secret, now: () => clock.now() });
  const sent: string[] = [];
  const introductions = new Introductions({
    registry,
    relay: new RelayPolicy({ now: () => clock.now() }),
    now: () => clock.now(),
    send: (msg, to) => sent.push(`${formatEndpoint(to)} ${encodeServerMessage(msg)}`),
    token: () => "token",
    alsoSend: (to) => grants.grant(to.name),
  });
  for (const [name, n] of [["alice", 1], ["bob", 2]] as const) {
    const at = { host: `192.0.2.${n}`, port: 4000 };
    registry.login(name, at, at, { key: `key-${name}`, secret: `secret-${name}` });
    registry.admitFrom(at.host);
  }
  introductions.connect(registry.get("alice")!, "bob");
  sent.length = 0; // the knock
  introductions.connect(registry.get("bob")!, "alice");
  const alice = turnCredentials({ secret, name: "alice", nowMs: clock.now() });
  const bob = turnCredentials({ secret, name: "bob", nowMs: clock.now() });
  assert.deepEqual(sent.map((l) => l.replace(/,key-.*$/, "")), [
    "192.0.2.2:4000 Introduce,alice,192.0.2.1:4000,192.0.2.1:4000",
    `192.0.2.2:4000 Turn,turn:192.0.2.7:3478,${bob.username},${bob.password}`,
    "192.0.2.1:4000 Introduce,bob,192.0.2.2:4000,192.0.2.2:4000",
    `192.0.2.1:4000 Turn,turn:192.0.2.7:3478,${alice.username},${alice.password}`,
  ]);
  assert.equal(bob.username, "1700003600:bob");
  assert.equal(grants.issued, 2);
  // The client reads it back.
  const line = sent[1].slice(sent[1].indexOf(" ") + 1);
  assert.deepEqual(parseServerMessage(line), {
    type: "turn",
    uri: "turn:192.0.2.7:3478",
    username: bob.username,
    password: bob.password,
  });
});

Deno.test("Turn messages that are not well formed are refused by the client's parser", () => {
  const good = "Turn,turn:192.0.2.7:3478,1700003600:bob,wjwSXO2ch1B6VaLTLMy2Avn5O9o=";
  assert.equal(parseServerMessage(good).type, "turn");
  for (
    const bad of [
      "Turn,turn:192.0.2.7:3478,1700003600:bob",
      "Turn,stun:192.0.2.7:3478,1700003600:bob,wjwSXO2ch1B6VaLTLMy2Avn5O9o=",
      "Turn,turn:192.0.2.7:3478,bob,wjwSXO2ch1B6VaLTLMy2Avn5O9o=",
      "Turn,turn:192.0.2.7:3478,1700003600:bob,short=",
      "Turn,turn:192.0.2.7:3478,1700003600:,wjwSXO2ch1B6VaLTLMy2Avn5O9o=",
    ]
  ) assert.throws(() => parseServerMessage(bad), /Cannot parse/, bad);
});

Deno.test("TurnGrants refuses a URI clients could not read, an empty secret, a short lifetime", () => {
  const now = () => 0;
  assert.throws(() => new TurnGrants({ uri: "turn:", secret, now }), /not a TURN URI/);
  assert.throws(() => new TurnGrants({ uri: "turn:a:1", secret: new Uint8Array(), now }), /empty/);
  assert.throws(() => new TurnGrants({ uri: "turn:a:1", secret, now, ttlMs: 1000 }), /60 s/);
});
