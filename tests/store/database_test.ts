import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  APPLICATION_IDS,
  DatabaseError,
  openDatabase,
  transaction,
} from "../../lib/store/database.ts";

const MIGRATIONS = [
  "CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
  "ALTER TABLE note ADD COLUMN time INTEGER NOT NULL DEFAULT 0",
];

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-db-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openDatabase creates a private file in a private folder and migrates it", async () => {
  await withDir((dir) => {
    const path = `${dir}/sub/h.db`;
    const db = openDatabase({ path, kind: "history", migrations: MIGRATIONS });
    db.prepare("INSERT INTO note (text, time) VALUES (?, ?)").run("hi", 5);
    db.close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(`${dir}/sub`).mode! & 0o777, 0o700);
    const again = openDatabase({ path, kind: "history", migrations: MIGRATIONS });
    assert.deepEqual({ ...again.prepare("SELECT text, time FROM note").get() }, {
      text: "hi",
      time: 5,
    });
    assert.equal(
      (again.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode,
      "wal",
    );
    again.close();
  });
});

Deno.test("openDatabase runs only the new migrations on an older file", async () => {
  await withDir((dir) => {
    const path = `${dir}/h.db`;
    openDatabase({ path, kind: "history", migrations: MIGRATIONS.slice(0, 1) }).close();
    const db = openDatabase({ path, kind: "history", migrations: MIGRATIONS });
    assert.equal(
      (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
      2,
    );
    db.prepare("INSERT INTO note (text, time) VALUES ('x', 1)").run();
    db.close();
  });
});

Deno.test("openDatabase refuses a foreign, corrupt, other-kind or newer file and leaves it as it was", async () => {
  await withDir((dir) => {
    const cases: [string, (path: string) => void, RegExp][] = [
      [
        "text",
        (p) => Deno.writeTextFileSync(p, "not a database at all, just some text\n".repeat(200)),
        /not a readable SQLite database/,
      ],
      ["foreign", (p) => {
        const db = new DatabaseSync(p);
        db.exec("CREATE TABLE t (x)");
        db.close();
      }, /not a p2p history database/],
      [
        "other kind",
        (p) =>
          openDatabase({ path: p, kind: "coordinator", migrations: ["CREATE TABLE n (x)"] })
            .close(),
        /p2p coordinator database, not a history database/,
      ],
      [
        "newer",
        (p) =>
          openDatabase({
            path: p,
            kind: "history",
            migrations: [...MIGRATIONS, "CREATE TABLE later (x)"],
          }).close(),
        /newer p2p \(schema 3; this version knows up to 2\)/,
      ],
    ];
    for (const [name, make, pattern] of cases) {
      const path = `${dir}/${name.replace(" ", "_")}.db`;
      make(path);
      const before = Deno.readFileSync(path);
      assert.throws(
        () => openDatabase({ path, kind: "history", migrations: MIGRATIONS }),
        (e: unknown) =>
          e instanceof DatabaseError && pattern.test(e.message) && e.message.includes(path),
        name,
      );
      assert.deepEqual(Deno.readFileSync(path), before, `${name}: the file was changed`);
    }
  });
});

Deno.test("openDatabase refuses a folder others can write in", async () => {
  await withDir((dir) => {
    const folder = `${dir}/open`;
    Deno.mkdirSync(folder);
    Deno.chmodSync(folder, 0o777);
    assert.throws(
      () => openDatabase({ path: `${folder}/h.db`, kind: "history", migrations: MIGRATIONS }),
      (e: unknown) => e instanceof DatabaseError && /mode 777.*chmod go-w/.test(e.message),
    );
    assert.throws(() => Deno.statSync(`${folder}/h.db`), Deno.errors.NotFound);
  });
});

Deno.test("a failed migration leaves the schema at its last good version", async () => {
  await withDir((dir) => {
    const path = `${dir}/h.db`;
    openDatabase({ path, kind: "history", migrations: MIGRATIONS.slice(0, 1) }).close();
    assert.throws(
      () =>
        openDatabase({
          path,
          kind: "history",
          migrations: [MIGRATIONS[0], "CREATE TABLE note (dup)"],
        }),
      (e: unknown) =>
        e instanceof DatabaseError && /schema could not be brought up to date/.test(e.message),
    );
    const db = new DatabaseSync(path);
    assert.equal(
      (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
      1,
    );
    assert.equal(
      (db.prepare("PRAGMA application_id").get() as { application_id: number }).application_id,
      APPLICATION_IDS.history,
    );
    db.close();
  });
});

Deno.test("a committed write survives a process killed right after it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/h.db`;
    const script = `
      import { openDatabase } from ${
      JSON.stringify(new URL("../../lib/store/database.ts", import.meta.url).href)
    };
      const db = openDatabase({ path: ${JSON.stringify(path)}, kind: "history", migrations: ${
      JSON.stringify(MIGRATIONS)
    } });
      const insert = db.prepare("INSERT INTO note (text) VALUES (?)");
      for (let i = 0; ; i++) {
        insert.run("n" + i);
        if (i === 200) console.log("committed");
      }`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    let seen = "";
    while (!seen.includes("committed")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    assert.ok(seen.includes("committed"));
    const db = openDatabase({ path, kind: "history", migrations: MIGRATIONS });
    const { n } = db.prepare("SELECT count(*) AS n FROM note").get() as { n: number };
    assert.ok(n >= 201, `only ${n} rows survived`);
    assert.equal(
      (db.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check,
      "ok",
    );
    db.close();
  });
});

Deno.test("openDatabase says a file held by another process is in use, not damaged", async () => {
  await withDir((dir) => {
    const path = `${dir}/h.db`;
    const holder = openDatabase({ path, kind: "history", migrations: MIGRATIONS });
    holder.exec("PRAGMA locking_mode = EXCLUSIVE");
    holder.exec("BEGIN IMMEDIATE");
    holder.exec("COMMIT");
    try {
      assert.throws(
        () => openDatabase({ path, kind: "history", migrations: MIGRATIONS }),
        (e: unknown) =>
          e instanceof DatabaseError && /another process is using it/.test(e.message) &&
          !/Move it away/.test(e.message),
      );
    } finally {
      holder.close();
    }
  });
});

Deno.test("transaction commits, rolls back on a throw, and joins an outer one", () => {
  const db = openDatabase({ path: ":memory:", kind: "history", migrations: MIGRATIONS });
  const insert = db.prepare("INSERT INTO note (text) VALUES (?)");
  const count = () => (db.prepare("SELECT count(*) AS n FROM note").get() as { n: number }).n;
  assert.equal(transaction(db, () => insert.run("a").changes), 1);
  assert.throws(() =>
    transaction(db, () => {
      insert.run("b");
      throw new Error("midway");
    }), /midway/);
  assert.equal(count(), 1, "the failed transaction left a row");
  assert.equal(db.isTransaction, false);
  // Inner writes join the outer transaction: the outer throw undoes them too.
  assert.throws(() =>
    transaction(db, () => {
      transaction(db, () => insert.run("c"));
      throw new Error("outer");
    }, "immediate"), /outer/);
  assert.equal(count(), 1);
  db.close();
});
