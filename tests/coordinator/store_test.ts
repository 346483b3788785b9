import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DATABASE_FILE,
  defaultDataDir,
  openCoordinatorStore,
} from "../../lib/coordinator/store.ts";
import { COORDINATOR_MIGRATIONS } from "../../lib/coordinator/schema.ts";
import { DatabaseError } from "../../lib/store/database.ts";

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
