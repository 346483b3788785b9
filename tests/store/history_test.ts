import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { decodeBase64url } from "../../lib/protocol/base64url.ts";
import { fromHex } from "../../lib/crypto/identity.ts";
import { DatabaseError } from "../../lib/store/database.ts";
import { historyKeys } from "../../lib/store/history_key.ts";
import { randomUid } from "../../lib/protocol/chat_message.ts";
import {
  DEFAULT_BATCH_MS,
  History,
  HistoryError,
  historyPath,
  MAX_BATCH,
} from "../../lib/store/history.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { MemoryLog } from "../../lib/store/message_log.ts";

const MAIN_DIR = new URL("./", import.meta.url).pathname;

async function withDirs(fn: (dirs: { dataDir: string; configDir: string }) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "p2p-history-test-" });
  try {
    await fn({ dataDir: join(root, "data"), configDir: join(root, "config") });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function assertRejectsWith(fn: () => Promise<unknown>, pattern: RegExp, type = HistoryError) {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err}`);
    assert.match((err as Error).message, pattern);
    return true;
  });
}

Deno.test("history keeps what was sent and received, with its fate, across a reopen", async () => {
  await withDirs(async (dirs) => {
    const h = await History.open({ username: "alice", ...dirs });
    const [u1, u2, u3, u4] = [randomUid(), randomUid(), randomUid(), randomUid()];
    h.addOutgoing({ uid: u1, peer: "bob", group: false, time: 1000, text: "hi bob" });
    h.addOutgoing({ uid: u2, peer: "bob", group: true, time: 2000, text: "hi all" });
    h.addOutgoing({ uid: u3, peer: "carol", group: false, time: 2500, text: "hi carol" });
    h.settle("bob", u1, { state: "delivered", path: "direct" });
    h.settle("carol", u3, { state: "undelivered", reason: "no connection to carol within 30 s" });
    assert.equal(
      h.addIncoming({ uid: u4, peer: "bob", group: false, time: 3000, text: "Yo", path: "relay" }),
      true,
    );
    // The same message again (resent by a restarted bob, or through the mailbox): a duplicate.
    assert.equal(
      h.addIncoming({
        uid: u4,
        peer: "bob",
        group: false,
        time: 3000,
        text: "Yo",
        path: "mailbox",
      }),
      false,
    );
    // The same uid from someone else is another message.
    assert.equal(
      h.addIncoming({
        uid: u4,
        peer: "carol",
        group: false,
        time: 3100,
        text: "yo",
        path: "direct",
      }),
      true,
    );
    h.close();

    const again = await History.open({ username: "alice", ...dirs });
    try {
      assert.deepEqual(again.conversation("bob", 10), [
        {
          uid: u1,
          peer: "bob",
          outgoing: true,
          group: false,
          time: 1000,
          text: "hi bob",
          state: "delivered",
          path: "direct",
        },
        {
          uid: u2,
          peer: "bob",
          outgoing: true,
          group: true,
          time: 2000,
          text: "hi all",
          state: "sending",
        },
        {
          uid: u4,
          peer: "bob",
          outgoing: false,
          group: false,
          time: 3000,
          text: "Yo",
          state: "received",
          path: "relay",
        },
      ]);
      assert.deepEqual(again.conversation("bob", 1).map((m) => m.text), ["Yo"]);
      assert.deepEqual(again.pending().map((m) => m.uid), [u2]);
      const [carol] = again.conversation("carol", 1).filter((m) => m.outgoing);
      assert.equal(carol, undefined, "limit 1 gives the latest line only");
      assert.equal(
        again.conversation("carol", 5)[0].reason,
        "no connection to carol within 30 s",
      );
      assert.deepEqual(again.search("HI", 10).map((m) => m.text), ["hi bob", "hi all", "hi carol"]);
      assert.deepEqual(again.search("hi", 2).map((m) => m.text), ["hi all", "hi carol"]);
      assert.deepEqual(
        again.recent({ contacts: 1, perContact: 2 }).map((m) => m.text),
        ["hi carol", "yo"],
      );
      assert.deepEqual(
        again.recent({ contacts: 5, perContact: 1 }).map((m) => `${m.peer}:${m.text}`),
        ["bob:Yo", "carol:yo"],
      );
      assert.equal(again.conversation("nobody", 5).length, 0);
    } finally {
      again.close();
    }
    const path = historyPath(dirs.dataDir, "alice");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const keyFile = join(dirs.configDir, "users", "alice", "history_key.json");
    assert.equal((await Deno.stat(keyFile)).mode! & 0o777, 0o600);
  });
});

Deno.test("a copied history file (and its WAL) holds neither the text nor the peer's name", async () => {
  await withDirs(async (dirs) => {
    const h = await History.open({ username: "alice", ...dirs });
    const marker = "MARKER-7f3a-secret-text";
    const peer = "zebrapeername";
    h.addOutgoing({ uid: randomUid(), peer, group: false, time: 1, text: `${marker} out` });
    h.addIncoming({
      uid: randomUid(),
      peer,
      group: false,
      time: 2,
      text: `${marker} in`,
      path: "direct",
    });
    const uid = randomUid();
    h.addOutgoing({ uid, peer, group: false, time: 3, text: "x" });
    h.settle(peer, uid, { state: "undelivered", reason: `${marker} reason` });
    const path = historyPath(dirs.dataDir, "alice");
    const grep = async (needle: string) => {
      for (const file of [path, `${path}-wal`]) {
        let bytes: Uint8Array;
        try {
          bytes = await Deno.readFile(file);
        } catch {
          continue;
        }
        const text = new TextDecoder("latin1").decode(bytes);
        assert.equal(text.includes(needle), false, `${needle} found in ${file}`);
      }
    };
    await grep(marker); // while open: the rows are in the WAL
    await grep(peer);
    assert.ok((await Deno.stat(`${path}-wal`)).size > 0, "the test must look at a WAL with rows");
    h.close();
    await grep(marker); // closed: checkpointed into the main file
    await grep(peer);
    // The owner reads it back.
    const again = await History.open({ username: "alice", ...dirs });
    assert.equal(again.search(marker, 10).length, 2);
    again.close();
  });
});

Deno.test("a history written before format bytes (schema 1, XChaCha20) is migrated and read", async () => {
  await withDirs(async (dirs) => {
    const uid = randomUid();
    const h = await History.open({ username: "alice", ...dirs });
    h.addOutgoing({ uid, peer: "bob", group: false, time: 1, text: "x" });
    h.settle("bob", uid, { state: "undelivered", reason: "x" });
    h.close();
    // Turn it into what the first version wrote: nonce ‖ XChaCha20-Poly1305, schema 1, its index.
    const keyFile = join(dirs.configDir, "users", "alice", "history_key.json");
    const keys = historyKeys(decodeBase64url(JSON.parse(await Deno.readTextFile(keyFile)).key)!);
    const encode = (text: string) => new TextEncoder().encode(text);
    const seal = (plain: string, aad: Uint8Array) => {
      const nonce = crypto.getRandomValues(new Uint8Array(24));
      return new Uint8Array([
        ...nonce,
        ...xchacha20poly1305(keys.sealV1, nonce, aad).encrypt(encode(plain)),
      ]);
    };
    const path = historyPath(dirs.dataDir, "alice");
    const raw = new DatabaseSync(path);
    const rowAad = (field: number) => new Uint8Array([...fromHex(uid)!, 1, field]);
    raw.prepare("UPDATE messages SET body = ?, reason = ?").run(
      seal(JSON.stringify(["bob", "written long ago"]), rowAad(0)),
      seal("an old reason", rowAad(1)),
    );
    raw.prepare("UPDATE meta SET value = ? WHERE name = 'check'")
      .run(seal("p2p history key check", encode("check")));
    raw.exec(
      `DROP INDEX messages_received;
       CREATE UNIQUE INDEX messages_uid ON messages (peer, outgoing, uid);
       PRAGMA user_version = 1`,
    );
    raw.close();

    const again = await History.open({ username: "alice", ...dirs });
    const uid2 = randomUid();
    try {
      again.addOutgoing({ uid: uid2, peer: "bob", group: false, time: 2, text: "new" });
      assert.deepEqual(
        again.conversation("bob", 10).map((m) => [m.text, m.reason]),
        [["written long ago", "an old reason"], ["new", undefined]],
      );
      // A message recorded in an earlier run is settled all the same (found without its seq).
      again.settle("bob", uid, { state: "delivered", path: "relay" });
      again.settle("bob", uid2, { state: "delivered", path: "direct" });
      assert.deepEqual(
        again.conversation("bob", 10).map((m) => [m.state, m.path]),
        [["delivered", "relay"], ["delivered", "direct"]],
      );
    } finally {
      again.close();
    }
    const check = new DatabaseSync(path, { readOnly: true });
    try {
      assert.deepEqual(
        check.prepare("SELECT substr(body, 1, 1) AS f FROM messages ORDER BY seq").all()
          .map((r) => (r.f as Uint8Array)[0]),
        [1, 2],
        "old rows keep format 1, new ones are format 2",
      );
      assert.equal(check.prepare("PRAGMA user_version").get()!.user_version, 3);
    } finally {
      check.close();
    }
  });
});

Deno.test("a passphrase history needs the passphrase, the right one, and keeps no key file", async () => {
  await withDirs(async (dirs) => {
    const h = await History.open({ username: "alice", ...dirs, passphrase: "correct horse" });
    const uid = randomUid();
    h.addOutgoing({ uid, peer: "bob", group: false, time: 5, text: "sealed by a passphrase" });
    h.close();
    const keyFile = join(dirs.configDir, "users", "alice", "history_key.json");
    await assert.rejects(() => Deno.stat(keyFile), Deno.errors.NotFound);
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs }),
      /history\.sqlite is protected by a passphrase: set P2P_PASSPHRASE or use --passphrase/,
    );
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs, passphrase: "wrong horse" }),
      /history\.sqlite: wrong passphrase/,
    );
    const again = await History.open({ username: "alice", ...dirs, passphrase: "correct horse" });
    assert.deepEqual(again.pending().map((m) => m.text), ["sealed by a passphrase"]);
    again.close();
  });
});

Deno.test("a key-file history refuses a passphrase, and a missing or other key file", async () => {
  await withDirs(async (dirs) => {
    (await History.open({ username: "alice", ...dirs })).close();
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs, passphrase: "x" }),
      /is encrypted with the key file .*history_key\.json, not a passphrase/,
    );
    const keyFile = join(dirs.configDir, "users", "alice", "history_key.json");
    const saved = await Deno.readFile(keyFile);
    await Deno.remove(keyFile);
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs }),
      /its key file .*history_key\.json is missing/,
    );
    // Another history's key does not open it.
    (await History.open({
      username: "alice",
      dataDir: join(dirs.dataDir, "other"),
      ...{ configDir: dirs.configDir },
    }))
      .close();
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs }),
      /history_key\.json does not open it/,
    );
    await Deno.writeFile(keyFile, saved, { mode: 0o600 });
    (await History.open({ username: "alice", ...dirs })).close();
  });
});

Deno.test("a history open in one chat is refused to a second one, with the reason", async () => {
  await withDirs(async (dirs) => {
    (await History.open({ username: "alice", ...dirs })).close(); // an existing history
    const first = await History.open({ username: "alice", ...dirs });
    try {
      await assertRejectsWith(
        () => History.open({ username: "alice", ...dirs }),
        /history\.sqlite: another p2p chat as alice is using it/,
      );
    } finally {
      first.close();
    }
    (await History.open({ username: "alice", ...dirs })).close();
  });
});

Deno.test("a corrupt or foreign history file is refused, named, and left as it was", async () => {
  await withDirs(async (dirs) => {
    const path = historyPath(dirs.dataDir, "alice");
    await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
    const garbage = new TextEncoder().encode(
      "this is not a database, but someone's notes\n".repeat(100),
    );
    await Deno.writeFile(path, garbage, { mode: 0o600 });
    await assert.rejects(
      () => History.open({ username: "alice", ...dirs }),
      (err: Error) => err.message.includes(path),
    );
    assert.deepEqual(await Deno.readFile(path), garbage);

    await Deno.remove(path);
    const foreign = new DatabaseSync(path);
    foreign.exec("CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup')");
    foreign.close();
    const before = await Deno.readFile(path);
    await assert.rejects(
      () => History.open({ username: "alice", ...dirs }),
      (err: Error) => err.message.includes(path),
    );
    assert.deepEqual(await Deno.readFile(path), before);
  });
});

Deno.test("search reads the whole history, page after page, newest matches kept", async () => {
  await withDirs(async (dirs) => {
    const h = await History.open({ username: "alice", ...dirs });
    try {
      for (let i = 0; i < 1234; i++) {
        const text = i % 100 === 7 ? `needle ${i}` : `hay ${i}`;
        h.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: i, text });
      }
      const all = h.search("NEEDLE", 100).map((m) => m.text);
      assert.deepEqual(all, Array.from({ length: 13 }, (_, k) => `needle ${k * 100 + 7}`));
      assert.deepEqual(h.search("needle", 2).map((m) => m.text), ["needle 1107", "needle 1207"]);
      assert.deepEqual(h.search("hay 0", 5).map((m) => m.text), ["hay 0"]);
    } finally {
      h.close();
    }
  });
});

/** Overwrites the root page of `table` in the closed database at `path` with random bytes. */
async function damageTable(path: string, table: string): Promise<void> {
  const db = new DatabaseSync(path);
  const { rootpage } = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = ?")
    .get(table) as { rootpage: number };
  const { page_size: pageSize } = db.prepare("PRAGMA page_size").get() as { page_size: number };
  db.close();
  const file = await Deno.open(path, { write: true });
  try {
    await file.seek((rootpage - 1) * pageSize, Deno.SeekMode.Start);
    await file.write(crypto.getRandomValues(new Uint8Array(pageSize)));
  } finally {
    file.close();
  }
}

Deno.test("a history damaged past its header is refused, named, with what to do, untouched", async () => {
  await withDirs(async (dirs) => {
    const path = historyPath(dirs.dataDir, "alice");
    const h = await History.open({ username: "alice", ...dirs });
    h.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: 1000, text: "hi bob" });
    h.close();
    const damaged = /damaged.*Move it away/;

    // The key check is read while opening.
    await damageTable(path, "meta");
    const before = await Deno.readFile(path);
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs }),
      damaged,
      DatabaseError,
    );
    await assertRejectsWith(
      () => History.open({ username: "alice", ...dirs }),
      new RegExp(path),
      DatabaseError,
    );
    assert.deepEqual(await Deno.readFile(path), before);
  });
  await withDirs(async (dirs) => {
    const path = historyPath(dirs.dataDir, "alice");
    const h = await History.open({ username: "alice", ...dirs });
    h.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: 1000, text: "hi bob" });
    h.close();

    // The messages are read after opening: by the backlog, /history, /search, the next write.
    await damageTable(path, "messages");
    const reopened = await History.open({ username: "alice", ...dirs });
    try {
      for (
        const use of [
          () => reopened.recent({ contacts: 10, perContact: 10 }),
          () => reopened.pending(),
          () => reopened.conversation("bob", 10),
          () => reopened.search("hi", 10),
        ]
      ) {
        assert.throws(use, (err: unknown) => {
          assert.ok(err instanceof DatabaseError, `expected a DatabaseError, got ${err}`);
          assert.match(err.message, /damaged.*Move it away/);
          assert.ok(err.message.includes(path));
          return true;
        });
      }
    } finally {
      reopened.close();
    }
    // A write is found damaged when its batch is written: reported, naming what is not kept.
    const errors: Error[] = [];
    const writer = await History.open({
      username: "alice",
      ...dirs,
      onError: (e) => errors.push(e),
    });
    const uid = randomUid();
    writer.addOutgoing({ uid, peer: "bob", group: false, time: 2000, text: "yo" });
    writer.close();
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, new RegExp(`Not kept in the history: our message ${uid}`));
    assert.match(errors[0].message, /damaged.*Move it away/);
    assert.ok(errors[0].message.includes(path));
    assert.ok(errors[0].cause instanceof DatabaseError);
  });
});

Deno.test("a history killed (SIGKILL) in the middle of writing opens, with whole rows", async () => {
  await withDirs(async (dirs) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(MAIN_DIR, "history_writer.ts"), dirs.dataDir, dirs.configDir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    // Wait until it has written a good many rows, then kill it mid-stream.
    let seen = "";
    let written = 0;
    while (written < 500) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
      const lines = seen.split("\n");
      written = Number(lines.at(-2) ?? 0);
    }
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
    const h = await History.open({ username: "alice", ...dirs });
    try {
      const rows = h.conversation("bob", 1_000_000);
      // Every batch it reported written is there, and whole batches only.
      assert.ok(rows.length >= written, `${rows.length} rows, ${written} written`);
      assert.equal(rows.length % 7, 0, `${rows.length} rows: a batch cut in two`);
      rows.forEach((m, i) => assert.equal(m.text, `message ${i}`));
      assert.equal(h.pending().length, rows.length);
    } finally {
      h.close();
    }
  });
});

Deno.test("the --no-history log writes nothing and drops duplicates within the session", () => {
  const log = new MemoryLog();
  const msg = {
    uid: randomUid(),
    peer: "bob",
    group: false,
    time: 0,
    text: "hi",
    path: "direct" as const,
  };
  log.addOutgoing({ ...msg, peer: "carol" });
  assert.equal(log.addIncoming(msg), true);
  assert.equal(log.addIncoming(msg), false);
  assert.equal(log.addIncoming({ ...msg, peer: "carol" }), true);
  assert.deepEqual(log.pending(), []);
  assert.deepEqual(log.conversation("bob", 5), []);
  assert.deepEqual(log.search("hi", 5), []);
});

/** Bytes in the history's WAL: they grow when a transaction commits. */
function walBytes(path: string): number {
  try {
    return Deno.statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

Deno.test("records are written together, batchMs after the first, or at once when asked", async () => {
  await withDirs(async (dirs) => {
    const clock = new FakeClock();
    const h = await History.open({ username: "alice", ...dirs, clock, batchMs: 20 });
    const path = historyPath(dirs.dataDir, "alice");
    try {
      const before = walBytes(path);
      const written: string[] = [];
      const [u1, u2] = [randomUid(), randomUid()];
      h.addOutgoing({ uid: u1, peer: "bob", group: false, time: 1, text: "one" });
      h.flushed(() => written.push("one"));
      clock.advance(10);
      h.addIncoming({ uid: u2, peer: "bob", group: false, time: 2, text: "two", path: "direct" });
      h.settle("bob", u1, { state: "delivered", path: "direct" });
      h.flushed(() => written.push("two"));
      // A copy of a received message still in the queue is found there.
      assert.equal(
        h.addIncoming({ uid: u2, peer: "bob", group: false, time: 2, text: "two", path: "relay" }),
        false,
      );
      clock.advance(9);
      assert.deepEqual(written, []);
      assert.equal(walBytes(path), before, "nothing written before the window ends");
      clock.advance(1); // 20 ms after the first record: one transaction for all three
      assert.deepEqual(written, ["one", "two"]);
      assert.ok(walBytes(path) > before);
      let now = false;
      h.flushed(() => now = true);
      assert.ok(now, "nothing queued: at once");

      // A read writes what is queued first; so does flush().
      const u3 = randomUid();
      h.addOutgoing({ uid: u3, peer: "carol", group: false, time: 3, text: "three" });
      assert.deepEqual(h.conversation("carol", 5).map((m) => m.text), ["three"]);
      const bob = h.conversation("bob", 5);
      assert.deepEqual(bob.map((m) => [m.text, m.state]), [["one", "delivered"], [
        "two",
        "received",
      ]]);
    } finally {
      h.close();
    }
  });
});

Deno.test("close() writes what is queued; a full queue is written at once", async () => {
  await withDirs(async (dirs) => {
    const clock = new FakeClock();
    const h = await History.open({ username: "alice", ...dirs, clock, batchMs: 60_000 });
    const path = historyPath(dirs.dataDir, "alice");
    const before = walBytes(path);
    for (let i = 0; i < MAX_BATCH - 1; i++) {
      h.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: i, text: `m${i}` });
    }
    assert.equal(walBytes(path), before);
    h.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: 0, text: "full" });
    assert.ok(walBytes(path) > before, "the full batch is written without waiting");
    h.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: 0, text: "last" });
    h.close(); // no timer fired: close writes it
    const again = await History.open({ username: "alice", ...dirs });
    try {
      const rows = again.conversation("bob", 10_000);
      assert.equal(rows.length, MAX_BATCH + 1);
      assert.equal(rows.at(-1)!.text, "last");
    } finally {
      again.close();
    }
  });
});

Deno.test("a record queued longer than the batch window survives SIGKILL", async () => {
  await withDirs(async (dirs) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(MAIN_DIR, "history_writer.ts"),
        dirs.dataDir,
        dirs.configDir,
        "--queue-one",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    let seen = "";
    while (!seen.includes("queued\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    // Generous: the window is DEFAULT_BATCH_MS; a loaded machine may run the timer late.
    await new Promise((resolve) => setTimeout(resolve, 25 * DEFAULT_BATCH_MS));
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
    const h = await History.open({ username: "alice", ...dirs });
    try {
      assert.deepEqual(h.pending().map((m) => m.text), ["queued"]);
    } finally {
      h.close();
    }
  });
});
