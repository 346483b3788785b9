import assert from "node:assert/strict";
import { ContactFanout } from "../../lib/coordinator/contact_fanout.ts";
import { ContactBook } from "../../lib/coordinator/contacts.ts";
import { COORDINATOR_MIGRATIONS } from "../../lib/coordinator/schema.ts";
import { openDatabase } from "../../lib/store/database.ts";

const A = { name: "alice", key: "A-key" };
const B = { name: "bob", key: "B-key" };
const C = { name: "carol", key: "C-key" };

function book(options: { now?: () => number; path?: string } = {}) {
  const db = openDatabase({
    path: options.path ?? ":memory:",
    kind: "coordinator",
    migrations: COORDINATOR_MIGRATIONS,
  });
  return { db, book: new ContactBook({ db, now: options.now ?? (() => 1_000_000) }) };
}

Deno.test("a request, its acceptance, and a pair bound to both keys", () => {
  const { db, book: b } = book();
  assert.deepEqual(b.request(A, "bob", "hi"), { kind: "requested" });
  assert.deepEqual(b.requestsFor("bob"), [{ username: "alice", key: "A-key", note: "hi" }]);
  assert.equal(b.accept(C, "alice"), undefined, "carol had no request from alice");
  const pair = b.accept(B, "alice");
  assert.ok(pair);
  assert.deepEqual(b.requestsFor("bob"), []);
  assert.deepEqual(b.contactsOf(A), [{ username: "bob", key: "B-key" }]);
  assert.deepEqual(b.contactsOf(B), [{ username: "alice", key: "A-key" }]);
  assert.ok(b.areContacts(A, B) && b.areContacts(B, A));
  // Bound to keys: whoever holds "bob" with another key later inherits nothing.
  const newBob = { name: "bob", key: "other" };
  assert.deepEqual(b.contactsOf(newBob), []);
  assert.equal(b.areContacts(A, newBob), false);
  assert.equal(b.remove(newBob, "alice"), undefined, "the new bob cannot remove the old pair");
  db.close();
});

Deno.test("asking each other is consent; asking again, or oneself, changes nothing", () => {
  const { db, book: b } = book();
  b.request(A, "bob", "");
  assert.deepEqual(b.request(A, "bob", "again"), { kind: "ignored", why: "known" });
  assert.deepEqual(b.request(A, "alice", ""), { kind: "ignored", why: "self" });
  const outcome = b.request(B, "alice", "");
  assert.equal(outcome.kind, "contacts");
  assert.equal(b.requests, 0);
  assert.deepEqual(b.request(A, "bob", ""), { kind: "ignored", why: "known" });
  db.close();
});

Deno.test("decline and block are silent; a blocked name's requests are dropped; remove undoes a pair", () => {
  const { db, book: b } = book();
  b.request(A, "bob", "");
  assert.equal(b.decline(B, "alice"), true);
  assert.deepEqual(b.requestsFor("bob"), []);
  b.request(C, "bob", "");
  b.accept(B, "carol");
  const removed = b.block(B, "carol");
  assert.ok(removed, "blocking a contact removes the pair");
  assert.deepEqual(b.contactsOf(B), []);
  assert.deepEqual(b.request(C, "bob", "please"), { kind: "ignored", why: "blocked" });
  assert.deepEqual(b.requestsFor("bob"), []);
  b.unblock(B, "carol");
  assert.deepEqual(b.request(C, "bob", "please"), { kind: "requested" });
  b.accept(B, "carol");
  assert.ok(b.remove(C, "bob"));
  assert.equal(b.pairs, 0);
  db.close();
});

Deno.test("requests are rate-limited per sender, capped per recipient and per sender, and lapse", () => {
  let now = 0;
  const db = openDatabase({
    path: ":memory:",
    kind: "coordinator",
    migrations: COORDINATOR_MIGRATIONS,
  });
  const b = new ContactBook({
    db,
    now: () => now,
    requestRate: { burst: 5, perHour: 60 },
    maxPerRecipient: 3,
    maxPerSender: 5,
    requestTtlMs: 10_000,
  });
  // Rate: a burst of 5, whatever the names (existing or not), then one a minute.
  for (let i = 0; i < 5; i++) assert.notEqual(b.request(A, `n${i}`, "").kind, "limited");
  assert.deepEqual(b.request(A, "n5", ""), { kind: "limited", why: "rate" });
  now += 60_000;
  // Per sender: 5 waiting at most (n0…n4), so n5 is refused even with budget.
  assert.deepEqual(b.request(A, "n5", ""), { kind: "limited", why: "outstanding" });
  // Per recipient: 3 waiting at most; the fourth sender's request is dropped, silently.
  for (const name of ["s1", "s2", "s3"]) {
    assert.equal(b.request({ name, key: name }, "bob", "").kind, "requested");
  }
  assert.deepEqual(b.request({ name: "s4", key: "s4" }, "bob", ""), {
    kind: "ignored",
    why: "recipient-full",
  });
  // Lapse: after the time to live they are not delivered, and a sweep forgets them.
  now += 20_000 + 60_000;
  assert.deepEqual(b.requestsFor("bob"), []);
  assert.equal(b.accept(B, "s1"), undefined);
  b.sweep();
  assert.equal(b.requests, 0);
  assert.equal(b.request(A, "n5", "").kind, "requested", "its old requests no longer count");
  db.close();
});

Deno.test("contacts, requests and blocks survive a reopen of the database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-contacts-db-" });
  try {
    const path = `${dir}/coordinator.db`;
    const first = book({ path });
    first.book.request(A, "bob", "hi");
    first.book.request(C, "bob", "");
    first.book.accept(B, "carol");
    first.book.block(B, "mallory");
    first.db.close();
    const second = book({ path });
    assert.deepEqual(second.book.requestsFor("bob"), [{
      username: "alice",
      key: "A-key",
      note: "hi",
    }]);
    assert.deepEqual(second.book.contactsOf(B), [{ username: "carol", key: "C-key" }]);
    assert.deepEqual(second.book.request({ name: "mallory", key: "M" }, "bob", ""), {
      kind: "ignored",
      why: "blocked",
    });
    second.db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("addPairs makes many pairs in one transaction", () => {
  const { db, book: b } = book();
  const users = Array.from({ length: 20 }, (_, i) => ({ name: `u${i}`, key: `k${i}` }));
  b.addPairs(users.slice(1).map((u) => [users[0], u]));
  assert.equal(b.pairs, 19);
  assert.equal(b.contactsOf(users[0]).length, 19);
  db.close();
});

Deno.test("a reopen reads back every pair, past one page of the load (4,096)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-contacts-db-" });
  try {
    const path = `${dir}/coordinator.db`;
    const first = book({ path });
    const users = Array.from({ length: 101 }, (_, i) => ({ name: `u${i}`, key: `k${i}` }));
    const pairs: [typeof A, typeof A][] = [];
    for (let i = 0; i < users.length; i++) {
      for (let j = i + 1; j < users.length; j++) pairs.push([users[i], users[j]]);
    }
    first.book.addPairs(pairs);
    assert.equal(first.book.pairs, 5050);
    first.db.close();
    const second = book({ path });
    assert.equal(second.book.pairs, 5050);
    assert.equal(second.book.contactsOf(users[50]).length, 100);
    second.db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

interface M {
  name: string;
}

const decoder = new TextDecoder();
const lines = (name: string) => ({
  seed: `login,${name},192.0.2.1:4000`,
  batched: `+${name},wAACAQ-g`,
});

Deno.test("contact fan-out: each change goes to its audience only, with each member's own versions", () => {
  const alice: M = { name: "alice" };
  const bob: M = { name: "bob" };
  const carol: M = { name: "carol" };
  const seedy: M = { name: "seedy" };
  const contacts = new Map<M, M[]>([[alice, [bob]], [bob, [alice]], [carol, []]]);
  const listed = new Set<M>([carol]);
  const fanout = new ContactFanout<M>({
    audience: (u) => contacts.get(u) ?? [],
    listed: (u) => listed.has(u),
  });
  for (const m of [alice, bob, carol]) fanout.add(m, { batched: true });
  fanout.add(seedy, { batched: false });
  fanout.record("alice", lines("alice"), alice);
  fanout.record("carol", lines("carol"), carol);
  fanout.record("bob", lines("bob"), bob);
  fanout.record("alice", { seed: "logout,alice,192.0.2.1:4000", batched: "-alice" }, alice);
  assert.equal(fanout.pending, 3); // bob: alice (coalesced); alice: bob; seedy: carol
  const batches = fanout.take();
  const got = new Map(
    batches.map((b) => [b.members[0].name, b.datagrams.map((d) => decoder.decode(d))]),
  );
  assert.deepEqual(Object.fromEntries(got), {
    bob: ["Presence,0,1\n-alice"],
    alice: ["Presence,0,1\n+bob,wAACAQ-g"],
    seedy: ["login,carol,192.0.2.1:4000"],
  });
  // Versions are each member's own, and Alive's waits for the socket.
  assert.equal(fanout.versionFor(bob), 1);
  assert.equal(fanout.handedTo(bob), 0);
  fanout.handed();
  assert.equal(fanout.handedTo(bob), 1);
  assert.equal(fanout.versionFor(carol), 0);
  fanout.tell(carol, "alice", lines("alice"));
  assert.deepEqual(fanout.take().map((b) => decoder.decode(b.datagrams[0])), [
    "Presence,0,1\n+alice,wAACAQ-g",
  ]);
});

Deno.test("contact fan-out: a member's lines fill datagrams that tile its versions", () => {
  const me: M = { name: "me" };
  const others = Array.from({ length: 200 }, (_, i) => ({ name: `user${i}` }));
  const fanout = new ContactFanout<M>({ audience: () => [me], listed: () => false });
  fanout.add(me, { batched: true });
  for (const o of others) fanout.record(o.name, lines(o.name), o);
  // The early flush looks at the fullest member: 200 lines of 18 bytes are more than two datagrams.
  assert.ok(fanout.pendingBytes > 2800);
  const [batch] = fanout.take();
  let from = 0;
  let count = 0;
  for (const d of batch.datagrams) {
    assert.ok(d.length <= 1400);
    const [head, ...body] = decoder.decode(d).split("\n");
    assert.equal(head, `Presence,${from},${from + 1}`);
    from++;
    count += body.length;
  }
  assert.equal(count, 200);
  assert.equal(batch.datagrams.length, 3);
});

Deno.test("contact fan-out: a take's datagrams are packed when read, counted before, versioned at a list", () => {
  const me: M = { name: "me" };
  const you: M = { name: "you" };
  const others = Array.from({ length: 200 }, (_, i) => ({ name: `user${i}` }));
  const fanout = new ContactFanout<M>({ audience: () => [me, you], listed: () => false });
  fanout.add(me, { batched: true });
  fanout.add(you, { batched: true });
  for (const o of others) fanout.record(o.name, lines(o.name), o);
  const [mine, yours] = fanout.take();
  // Counted without packing (the outbox's backlog), and the count is what packing makes.
  assert.equal(mine.count, 3);
  // A change after the take is not in it: it waits for the next one.
  fanout.record("late", lines("late"), { name: "late" });
  // A list written for `you` now is at the version after its taken datagrams: they are packed.
  assert.equal(fanout.versionFor(you), 3);
  assert.deepEqual(
    yours.datagrams.map((d) => decoder.decode(d).split("\n")[0]),
    ["Presence,0,1", "Presence,1,2", "Presence,2,3"],
  );
  assert.equal(mine.datagrams.length, 3);
  assert.equal(mine.datagrams.flatMap((d) => decoder.decode(d).split("\n").slice(1)).length, 200);
  fanout.handed();
  assert.equal(fanout.handedTo(me), 3);
  const [next] = fanout.take();
  assert.deepEqual(next.datagrams.map((d) => decoder.decode(d)), ["Presence,3,4\n+late,wAACAQ-g"]);
});

Deno.test("contact fan-out: datagrams cut from shared blocks keep their bytes through later takes", () => {
  // A storm's flush: many members, each with a datagram of its own, over more than one 64 KiB
  // block, then more takes; every datagram read earlier still says what it said.
  const members = Array.from({ length: 400 }, (_, i) => ({ name: `m${i}` }));
  const others = Array.from({ length: 40 }, (_, i) => ({ name: `user${i}` }));
  const fanout = new ContactFanout<M>({ audience: () => members, listed: () => false });
  for (const m of members) fanout.add(m, { batched: true });
  const kept: { bytes: Uint8Array; text: string }[] = [];
  for (let round = 0; round < 3; round++) {
    for (const o of others) fanout.record(o.name, lines(`${o.name}r${round}`), o);
    for (const batch of fanout.take()) {
      for (const d of batch.datagrams) kept.push({ bytes: d, text: decoder.decode(d) });
    }
    fanout.handed();
  }
  assert.equal(kept.length, 3 * members.length);
  const blocks = new Set(kept.map((k) => k.bytes.buffer));
  assert.ok(blocks.size > 1, "the datagrams span several blocks");
  assert.ok(blocks.size < kept.length / 10, "blocks are shared");
  for (const [i, k] of kept.entries()) {
    const round = Math.floor(i / members.length);
    assert.equal(decoder.decode(k.bytes), k.text);
    assert.ok(k.text.startsWith(`Presence,${round},${round + 1}\n+user0r${round},`), k.text);
    assert.equal(k.text.split("\n").length, 1 + others.length);
  }
});
