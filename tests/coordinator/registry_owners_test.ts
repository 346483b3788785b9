/** The registry with names owned by keys ({@linkcode NameOwners}), on a fake clock. */
import assert from "node:assert/strict";
import { NameOwners } from "../../lib/coordinator/name_owners.ts";
import { Registry } from "../../lib/coordinator/registry.ts";
import { openCoordinatorStore } from "../../lib/coordinator/store.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

const CLAIMED: Endpoint = { host: "10.0.0.2", port: 4000 };
const HOME: Endpoint = { host: "192.0.2.1", port: 4000 };
const NEW_NETWORK: Endpoint = { host: "198.51.100.7", port: 5000 };
const K1 = { key: "K1".padEnd(43, "A"), secret: "s1".padEnd(22, "A") };
const K1_NEW_PROCESS = { key: K1.key, secret: "s2".padEnd(22, "A") };
const K2 = { key: "K2".padEnd(43, "A"), secret: "s3".padEnd(22, "A") };
const DAY = 24 * 3600 * 1000;

function setup(options: { ttlMs?: number; namesPerAddress?: number } = {}) {
  const clock = new FakeClock();
  const store = openCoordinatorStore();
  const now = () => clock.now();
  const owners = new NameOwners({ db: store.db, now, ttlMs: options.ttlMs });
  const reg = new Registry({ now, peerTimeoutMs: 45_000, owners, ...options });
  return { clock, store, owners, reg };
}

/** Logs alice in with `ext` from `at` and admits her. */
function online(reg: Registry, at: Endpoint, ext: { key: string; secret: string }): void {
  assert.equal(reg.login("alice", CLAIMED, at, ext).kind, "pending");
  assert.equal(reg.admitFrom(at.host).admitted.length, 1);
}

Deno.test("registry: a registered name goes to no other key, nor to a seed-only login", () => {
  const { store, owners, reg } = setup();
  online(reg, HOME, K1);
  assert.equal(owners.ownerOf("alice"), K1.key);
  const refused = { kind: "rejected", reason: "name belongs to another key", why: "owned" };
  assert.deepEqual(reg.login("alice", CLAIMED, NEW_NETWORK, K2), refused);
  // Even from the holder's own endpoint (a spoofed datagram), and after it left.
  assert.deepEqual(reg.login("alice", CLAIMED, HOME, K2), refused);
  reg.logout("alice", HOME, K1.secret);
  assert.deepEqual(reg.login("alice", CLAIMED, NEW_NETWORK, K2), refused);
  assert.deepEqual(reg.login("alice", CLAIMED, NEW_NETWORK), refused);
  // Seed-only users keep first come, first served for names no key registered.
  assert.equal(reg.login("zed", CLAIMED, NEW_NETWORK).kind, "pending");
  reg.admitFrom(NEW_NETWORK.host);
  assert.equal(owners.ownerOf("zed"), undefined);
  store.close();
});

Deno.test("registry: the owner's new session needs a proof, then takes over at once", () => {
  const { store, reg } = setup();
  online(reg, HOME, K1);
  // From a new network while the old session lives: challenged, nothing changed yet.
  const challenged = reg.login("alice", CLAIMED, NEW_NETWORK, K1_NEW_PROCESS);
  assert.equal(challenged.kind, "challenge");
  assert.equal(reg.get("alice")!.secret, K1.secret);
  const result = reg.login("alice", CLAIMED, NEW_NETWORK, { ...K1_NEW_PROCESS, proven: true });
  assert.equal(result.kind, "rebound");
  assert.deepEqual(result.kind === "rebound" && result.displaced, HOME);
  const alice = reg.get("alice")!;
  assert.deepEqual([alice.observed, alice.secret, alice.state], [
    NEW_NETWORK,
    K1_NEW_PROCESS.secret,
    "online",
  ]);
  assert.equal(reg.at(NEW_NETWORK)?.name, "alice");
  assert.equal(reg.at(HOME), undefined);
  // The old session is told it was replaced; its secret is worth nothing now.
  assert.deepEqual(reg.heartbeat("alice", HOME, K1.secret), { kind: "replaced" });
  assert.deepEqual(reg.heartbeat("alice", HOME, K2.secret), { kind: "unknown" });
  assert.equal(reg.logout("alice", HOME, K1.secret).kind, "forged");
  store.close();
});

Deno.test("registry: a restart on the same port takes over after proof, not after 22 s", () => {
  const { clock, store, reg } = setup();
  online(reg, HOME, K1);
  clock.advance(1000);
  // Before names were owned: "held by an earlier session at your address; try again in 22 s".
  assert.equal(reg.login("alice", CLAIMED, HOME, K1_NEW_PROCESS).kind, "challenge");
  const result = reg.login("alice", CLAIMED, HOME, { ...K1_NEW_PROCESS, proven: true });
  assert.equal(result.kind, "refreshed");
  assert.equal(reg.get("alice")!.secret, K1_NEW_PROCESS.secret);
  // A holder silent for half the peer timeout is replaced without proof, as before.
  clock.advance(23_000);
  const third = { key: K1.key, secret: "s9".padEnd(22, "A") };
  assert.equal(reg.login("alice", CLAIMED, HOME, third).kind, "refreshed");
  store.close();
});

Deno.test("registry: a takeover must find room at its new address, or changes nothing", () => {
  const { store, reg } = setup({ namesPerAddress: 1 });
  assert.equal(reg.login("bob", CLAIMED, NEW_NETWORK, K2).kind, "pending");
  reg.admitFrom(NEW_NETWORK.host);
  online(reg, HOME, K1);
  const result = reg.login("alice", CLAIMED, NEW_NETWORK, { ...K1_NEW_PROCESS, proven: true });
  assert.equal(result.kind, "rejected");
  const alice = reg.get("alice")!;
  assert.deepEqual([alice.observed, alice.secret], [HOME, K1.secret]);
  store.close();
});

Deno.test("registry: two keys pending for a free name: the first admitted owns it", () => {
  const { store, owners, reg } = setup();
  assert.equal(reg.login("alice", CLAIMED, HOME, K1).kind, "pending");
  // Another endpoint's login may replace a pending one only once it is stale (2.5 s).
  const early = reg.login("alice", CLAIMED, NEW_NETWORK, K2);
  assert.equal(early.kind, "rejected");
  reg.admitFrom(HOME.host);
  assert.equal(owners.ownerOf("alice"), K1.key);
  store.close();
});

Deno.test("registry: a registration lapses after the time to live unused, counted from leaving", () => {
  const { clock, store, owners, reg } = setup({ ttlMs: 10 * DAY });
  online(reg, HOME, K1);
  clock.advance(9 * DAY); // online all along, silent at the end: expires
  reg.heartbeat("alice", HOME, K1.secret);
  clock.advance(46_000);
  assert.deepEqual(reg.expire().expired.map((u) => u.name), ["alice"]);
  assert.equal(owners.get("alice")?.lastUsed, clock.now(), "leaving is a use");
  clock.advance(9 * DAY);
  assert.equal(reg.login("alice", CLAIMED, NEW_NETWORK, K2).kind, "rejected");
  clock.advance(DAY + 1);
  assert.equal(reg.login("alice", CLAIMED, NEW_NETWORK, K2).kind, "pending");
  reg.admitFrom(NEW_NETWORK.host);
  assert.equal(owners.ownerOf("alice"), K2.key);
  store.close();
});
