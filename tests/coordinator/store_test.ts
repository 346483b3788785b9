import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DATABASE_FILE,
  defaultDataDir,
  openCoordinatorStore,
} from "../../lib/coordinator/store.ts";
import { COORDINATOR_MIGRATIONS } from "../../lib/coordinator/schema.ts";
import { DatabaseError } from "../../lib/store/database.ts";
import { DatabaseSync } from "node:sqlite";
import { Coordinator } from "../../lib/coordinator.ts";
import { NameOwners } from "../../lib/coordinator/name_owners.ts";

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("store: the data directory is made 0700, the database 0600, the key kept", async () => {
  await withDir((parent) => {
    const dataDir = join(parent, "state", "p2p");
    const first = openCoordinatorStore({ dataDir });
    const key = first.keyPair.publicKey;
    assert.equal(first.path, join(dataDir, DATABASE_FILE));
    first.close();
    assert.equal(Deno.statSync(dataDir).mode! & 0o777, 0o700);
    assert.equal(Deno.statSync(join(dataDir, DATABASE_FILE)).mode! & 0o777, 0o600);
    const again = openCoordinatorStore({ dataDir });
    assert.deepEqual(again.keyPair.publicKey, key);
    assert.equal(again.keyPair.secretKey.length, 32);
    const version = again.db.prepare("PRAGMA user_version").get() as { user_version: number };
    assert.equal(version.user_version, COORDINATOR_MIGRATIONS.length);
    again.close();
  });
});

Deno.test("store: without a data directory, a fresh key in memory each time", () => {
  const a = openCoordinatorStore();
  const b = openCoordinatorStore();
  assert.equal(a.path, ":memory:");
  assert.notDeepEqual(a.keyPair.publicKey, b.keyPair.publicKey);
  a.close();
  b.close();
});

Deno.test("store: a foreign file is refused, named, and left untouched", async () => {
  await withDir((dataDir) => {
    const path = join(dataDir, DATABASE_FILE);
    const junk = new TextEncoder().encode(
      "not a database at all, but somebody's notes\n".repeat(200),
    );
    Deno.writeFileSync(path, junk, { mode: 0o600 });
    assert.throws(
      () => openCoordinatorStore({ dataDir }),
      (err: Error) => err instanceof DatabaseError && err.message.includes(path),
    );
    assert.deepEqual(Deno.readFileSync(path), junk);
  });
});

/** Overwrites the root page of `table` in the closed database at `path` with random bytes. */
function damageTable(path: string, table: string): void {
  const db = new DatabaseSync(path);
  const { rootpage } = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = ?")
    .get(table) as { rootpage: number };
  const { page_size: pageSize } = db.prepare("PRAGMA page_size").get() as { page_size: number };
  db.close();
  const file = Deno.openSync(path, { write: true });
  try {
    file.seekSync((rootpage - 1) * pageSize, Deno.SeekMode.Start);
    file.writeSync(crypto.getRandomValues(new Uint8Array(pageSize)));
  } finally {
    file.close();
  }
}

for (const table of ["server_key", "name_owner", "contact", "contact_request"]) {
  Deno.test(`store: a file whose ${table} is damaged is refused at start, named, untouched`, async () => {
    await withDir(async (dataDir) => {
      const path = join(dataDir, DATABASE_FILE);
      const store = openCoordinatorStore({ dataDir });
      const owners = new NameOwners({ db: store.db, now: () => Date.now() });
      owners.use("alice", "A".repeat(43));
      owners.flush();
      store.close();
      damageTable(path, table);
      const before = Deno.readFileSync(path);
      await assert.rejects(
        () => Coordinator.start({ host: "127.0.0.1", port: 0, dataDir }),
        (err: Error) => {
          assert.ok(err instanceof DatabaseError, `expected a DatabaseError, got ${err}`);
          assert.ok(err.message.includes(path));
          assert.match(err.message, /damaged.*Move it away/);
          return true;
        },
      );
      assert.deepEqual(Deno.readFileSync(path), before);
    });
  });
}

Deno.test("store: the default data directory", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(defaultDataDir({ uid: 0, getEnv: env({ HOME: "/root" }) }), "/var/lib/p2p");
  assert.equal(defaultDataDir({ uid: 0, getEnv: env({ XDG_STATE_HOME: "/s" }) }), "/s/p2p");
  assert.equal(
    defaultDataDir({ uid: 1000, getEnv: env({ XDG_STATE_HOME: "/s", HOME: "/h" }) }),
    "/s/p2p",
  );
  // XDG paths must be absolute; a relative one is ignored.
  assert.equal(
    defaultDataDir({ uid: 1000, getEnv: env({ XDG_STATE_HOME: "s", HOME: "/h" }) }),
    "/h/.local/state/p2p",
  );
  assert.throws(() => defaultDataDir({ uid: 1000, getEnv: env({}) }), DatabaseError);
});
