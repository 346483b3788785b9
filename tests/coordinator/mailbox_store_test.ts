import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type Clock, realClock } from "../../lib/clock.ts";
import {
  DEFAULT_MAILBOX_QUOTAS,
  MAILBOX_MIGRATIONS,
  type MailboxQuotas,
  MailboxStore,
  REFUSALS,
} from "../../lib/coordinator/mailbox_store.ts";
import { openDatabase } from "../../lib/store/database.ts";

/** Real timers (the group commit), a wall time the test sets. */
function settableClock(): Clock & { t: number } {
  const clock = { ...realClock, t: 1_000_000, now: () => clock.t };
  return clock;
}

async function withStore(
  fn: (
    open: () => MailboxStore,
    clock: Clock & { t: number },
    file: { path: string; db: () => DatabaseSync },
  ) => Promise<void>,
  quotas: Partial<MailboxQuotas> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-mailbox-store-" });
  const clock = settableClock();
  const dbs: DatabaseSync[] = [];
  const path = `${dir}/mailbox.db`;
  const open = () => {
    const db = openDatabase({
      path: `${dir}/mailbox.db`,
      kind: "mailbox",
      migrations: MAILBOX_MIGRATIONS,
    });
    dbs.push(db);
    return new MailboxStore({
      db,
      clock,
      quotas: { ...DEFAULT_MAILBOX_QUOTAS, ...quotas },
      ttlMs: 1000,
    });
  };
  try {
    await fn(open, clock, { path, db: () => dbs[dbs.length - 1] });
  } finally {
    for (const db of dbs) {
      try {
        db.close();
      } catch {
        // closed by the test
      }
    }
    await Deno.remove(dir, { recursive: true });
  }
}

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

Deno.test("mailbox store: deposits commit together, fetch in order, ack only the owner's, survive reopening", async () => {
  await withStore(async (open) => {
    const store = open();
    const results = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) =>
          store.deposit({
            recipient: i % 2 ? "bob" : "carol",
            sender: "192.0.2.1",
            sealed: bytes(10, i),
          }),
      ),
    );
    assert.ok(results.every((r) => r.ok));
    const ids = results.map((r) => r.ok ? r.id : 0);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(store.waiting("bob"), 25);
    const page = store.fetch("bob", 0, 10);
    assert.deepEqual(page.map((m) => m.sealed[0]), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    assert.deepEqual(store.fetch("bob", page[9].id, 100).length, 15);
    // carol cannot delete bob's mail
    assert.equal(store.ack("carol", page.map((m) => m.id)), 0);
    assert.equal(store.ack("bob", page.map((m) => m.id)), 10);
    assert.equal(store.ack("bob", page.map((m) => m.id)), 0);
    assert.deepEqual(store.total, { count: 40, bytes: 400 });
    await store.close();
    const again = open();
    assert.equal(again.waiting("bob"), 15);
    assert.equal(again.waiting("carol"), 25);
    assert.deepEqual(again.total, { count: 40, bytes: 400 });
    assert.equal(again.fetch("bob", 0, 1)[0].sealed[0], 21);
    await again.close();
  });
});

Deno.test("mailbox store: quotas per recipient, per sender and in total refuse with their reasons", async () => {
  await withStore(async (open) => {
    const store = open();
    const deposit = (recipient: string, sender: string, size = 10) =>
      store.deposit({ recipient, sender, sealed: bytes(size) });
    assert.deepEqual(await deposit("bob", "a", 101), { ok: false, reason: REFUSALS.tooLarge });
    const burst = await Promise.all([1, 2, 3, 4].map(() => deposit("bob", "a")));
    assert.deepEqual(burst.map((r) => r.ok), [true, true, true, false]);
    assert.deepEqual(burst[3], { ok: false, reason: REFUSALS.recipientFull });
    assert.equal((await deposit("carol", "a")).ok, true);
    assert.equal((await deposit("carol", "a")).ok, true);
    assert.deepEqual(await deposit("dave", "a"), { ok: false, reason: REFUSALS.senderFull });
    assert.equal((await deposit("dave", "b")).ok, true);
    assert.equal((await deposit("erin", "c")).ok, true);
    assert.deepEqual(await deposit("frank", "d"), { ok: false, reason: REFUSALS.storeFull });
    // acking frees the recipient's and the sender's room
    store.ack("bob", store.fetch("bob", 0, 10).map((m) => m.id));
    assert.equal((await deposit("dave", "a")).ok, true);
    await store.close();
  }, { maxMailBytes: 100, perRecipientCount: 3, perSenderCount: 5, totalCount: 7 });
});

Deno.test("mailbox store: mail older than the TTL expires and frees its quota", async () => {
  await withStore(async (open, clock) => {
    const store = open();
    await store.deposit({ recipient: "bob", sender: "a", sealed: bytes(5) });
    clock.t += 600;
    await store.deposit({ recipient: "bob", sender: "a", sealed: bytes(5) });
    clock.t += 500;
    assert.equal(store.expire(), 1);
    assert.equal(store.waiting("bob"), 1);
    clock.t += 600;
    assert.equal(store.expire(), 1);
    assert.equal(store.waiting("bob"), 0);
    assert.deepEqual(store.total, { count: 0, bytes: 0 });
    await store.close();
  });
});

Deno.test("mailbox store: a commit that fails refuses the whole batch, loses nothing acknowledged, frees its quota", async () => {
  await withStore(async (open, _clock, file) => {
    const store = open();
    const kept = await store.deposit({ recipient: "bob", sender: "a", sealed: bytes(5) });
    assert.equal(kept.ok, true);
    // Another process holds the write lock and the store may not wait: its commit fails, as on
    // a full disk or an I/O error.
    const other = new DatabaseSync(file.path);
    other.exec("BEGIN EXCLUSIVE");
    file.db().exec("PRAGMA busy_timeout = 0");
    const refused = await Promise.all(
      [1, 2, 3].map(() => store.deposit({ recipient: "bob", sender: "a", sealed: bytes(7) })),
    );
    assert.ok(
      refused.every((r) => !r.ok && /cannot store it now/.test(r.reason)),
      JSON.stringify(refused),
    );
    assert.deepEqual(store.total, { count: 1, bytes: 5 });
    other.exec("ROLLBACK");
    other.close();
    assert.equal(
      (await store.deposit({ recipient: "bob", sender: "a", sealed: bytes(7) })).ok,
      true,
    );
    assert.deepEqual(store.fetch("bob", 0, 10).map((m) => m.sealed.length), [5, 7]);
    await store.close();
  });
});
