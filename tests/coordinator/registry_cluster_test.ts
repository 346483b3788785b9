/** The registry's users of other cluster members (Registry.addRemote), vetted as we would admit. */
import assert from "node:assert/strict";
import { NameOwners } from "../../lib/coordinator/name_owners.ts";
import { Registry } from "../../lib/coordinator/registry.ts";
import { openCoordinatorStore } from "../../lib/coordinator/store.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";

const KEY_A = encodeBase64url(new Uint8Array(32).fill(1));
const KEY_B = encodeBase64url(new Uint8Array(32).fill(2));
const EP = { host: "192.0.2.1", port: 4000 };

function setup() {
  let now = 1_000;
  const store = openCoordinatorStore();
  const owners = new NameOwners({ db: store.db, now: () => now });
  const registry = new Registry({ owners, now: () => now, peerTimeoutMs: 45_000 });
  return { registry, owners, store, advance: (ms: number) => now += ms };
}

Deno.test("registry: a remote user is listed, owns its name here too, and never expires here", () => {
  const { registry, owners, store, advance } = setup();
  const r = registry.addRemote({ name: "alice", observed: EP, claimed: EP, key: KEY_A }, "b");
  assert.equal(r.kind, "added");
  assert.equal(registry.onlineCount, 1);
  assert.equal(owners.ownerOf("alice"), KEY_A);
  assert.match(new TextDecoder().decode(registry.listParts()[0]), /^alice,192\.0\.2\.1:4000;/);
  // Not ours to answer for: no heartbeat, logout or connect from its endpoint counts here.
  assert.equal(registry.heartbeat("alice", EP).kind, "unknown");
  assert.equal(registry.logout("alice", EP).kind, "unknown");
  assert.equal(registry.heardFrom("alice", EP), undefined);
  assert.equal(registry.at(EP), undefined);
  advance(60_000);
  assert.deepEqual(registry.expire().expired, []);
  // A local login for the name is refused while the other member holds it.
  const login = registry.login("alice", EP, { host: "192.0.2.9", port: 1 }, {
    key: KEY_A,
    secret: "s".repeat(22),
  });
  assert.equal(login.kind, "rejected");
  // Moved there: updated; gone: unlisted (only by its own member).
  const moved = { host: "192.0.2.1", port: 4001 };
  const u = registry.addRemote({ name: "alice", observed: moved, claimed: moved, key: KEY_A }, "b");
  assert.deepEqual(u.kind === "updated" && u.moved, true);
  assert.equal(registry.removeRemote("alice", "c"), undefined);
  assert.equal(registry.removeRemote("alice", "b")?.name, "alice");
  assert.equal(registry.onlineCount, 0);
  store.close();
});

Deno.test("registry: a remote entry we would not have admitted is refused", () => {
  const { registry, owners, store } = setup();
  owners.use("bob", KEY_B);
  const refused = (r: { kind: string }) => assert.equal(r.kind, "refused");
  refused(registry.addRemote({ name: "bob", observed: EP, claimed: EP, key: KEY_A }, "b"));
  refused(registry.addRemote({ name: "bob", observed: EP, claimed: EP }, "b"));
  registry.addRemote({ name: "alice", observed: EP, claimed: EP, key: KEY_A }, "b");
  refused(registry.addRemote({ name: "alice", observed: EP, claimed: EP, key: KEY_A }, "c"));
  refused(registry.addRemote({ name: "aIice", observed: EP, claimed: EP }, "c"));
  // A user online here is a conflict for the cluster to settle.
  const local = { host: "192.0.2.5", port: 5 };
  registry.login("carol", local, local);
  registry.admitFrom("192.0.2.5");
  assert.equal(
    registry.addRemote({ name: "carol", observed: EP, claimed: EP }, "b").kind,
    "conflict",
  );
  store.close();
});

Deno.test("registry: --max-users caps the users logged in here, not other members' users", () => {
  let now = 1_000;
  const registry = new Registry({ now: () => now, peerTimeoutMs: 45_000, maxUsers: 1 });
  for (const name of ["bob", "carol", "dave"]) {
    registry.addRemote({ name, observed: EP, claimed: EP }, "b");
  }
  assert.equal(registry.onlineCount, 3);
  assert.equal(registry.localCount, 0);
  const alice = { host: "192.0.2.7", port: 1 };
  assert.equal(registry.login("alice", alice, alice).kind, "pending");
  assert.equal(registry.admitFrom(alice.host).admitted.length, 1);
  assert.equal(registry.localCount, 1);
  now += 1;
  const erin = { host: "192.0.2.8", port: 1 };
  const full = registry.login("erin", erin, erin);
  assert.equal(full.kind === "rejected" && full.why, "full");
});
