import assert from "node:assert/strict";
import { join } from "node:path";
import { NameOwners } from "../../lib/coordinator/name_owners.ts";
import { openCoordinatorStore } from "../../lib/coordinator/store.ts";
import { FakeClock } from "../support/fake_clock.ts";

const DAY = 24 * 3600 * 1000;

function setup(ttlMs = 10 * DAY) {
  const clock = new FakeClock();
  const store = openCoordinatorStore();
  const owners = new NameOwners({ db: store.db, now: () => clock.now(), ttlMs });
  return { clock, store, owners };
}

function rows(owners: { flush(): number }, db: ReturnType<typeof openCoordinatorStore>["db"]) {
  owners.flush();
  return db.prepare("SELECT name, key FROM name_owner ORDER BY name").all().map((r) => ({ ...r }));
}

Deno.test("NameOwners: the first key owns a name; its uses keep it; others are left alone", () => {
  const { store, owners } = setup();
  assert.equal(owners.ownerOf("alice"), undefined);
  assert.equal(owners.use("alice", "K1"), "registered");
  assert.equal(owners.use("alice", "K1"), "used");
  assert.equal(owners.use("alice", "K2"), "owned");
  assert.equal(owners.ownerOf("alice"), "K1");
  assert.deepEqual(rows(owners, store.db), [{ name: "alice", key: "K1" }]);
  store.close();
});

Deno.test("NameOwners: a registration unused for the time to live lapses, and is pruned", () => {
  const { clock, store, owners } = setup();
  owners.use("alice", "K1");
  owners.use("bob", "K2");
  clock.advance(6 * DAY);
  owners.use("bob", "K2"); // bob comes back: his ten days start again
  clock.advance(5 * DAY);
  assert.equal(owners.ownerOf("alice"), undefined, "11 days unused");
  assert.equal(owners.ownerOf("bob"), "K2", "5 days unused");
  // Another key may take the lapsed name; it is registered anew.
  assert.equal(owners.use("alice", "K3"), "registered");
  assert.equal(owners.get("alice")?.registered, clock.now());
  clock.advance(11 * DAY);
  assert.equal(owners.flush(), 2); // bob's use and alice's new owner; lapsed ones pruned (hourly)
  assert.equal(owners.size, 0);
  assert.deepEqual(store.db.prepare("SELECT name FROM name_owner").all(), []);
  store.close();
});

Deno.test("NameOwners: writes are batched, one transaction per flush, and survive a reopen", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "p2p-owners-" });
  try {
    const clock = new FakeClock();
    let store = openCoordinatorStore({ dataDir });
    let owners = new NameOwners({ db: store.db, now: () => clock.now() });
    for (let i = 0; i < 1000; i++) owners.use(`user${i}`, `K${i}`);
    assert.equal(owners.flush(), 1000);
    assert.equal(owners.flush(), 0, "nothing changed since");
    owners.use("late", "KL"); // not flushed: a crash now would lose it (at most a second's worth)
    store.close();

    store = openCoordinatorStore({ dataDir });
    owners = new NameOwners({ db: store.db, now: () => clock.now() });
    assert.equal(owners.size, 1000);
    assert.equal(owners.ownerOf("user7"), "K7");
    assert.equal(owners.ownerOf("late"), undefined);
    store.close();
    assert.ok(Deno.statSync(join(dataDir, "coordinator.db")).size > 0);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
