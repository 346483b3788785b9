import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Coordinator } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import type { PeerOptions } from "../../lib/peer.ts";
import { startPeer, type TestPeer } from "../support/peers.ts";
import type { Collector } from "../support/wait.ts";

type Ev = PeerEvent;

/** A coordinator, and peers each with a download dir and a state file under one temp dir. */
async function world(
  fn: (w: {
    start: (name: string, extra?: Partial<PeerOptions>) => Promise<TestPeer>;
    dir: string;
  }) => Promise<void>,
): Promise<void> {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const dir = await Deno.makeTempDir({ prefix: "p2p-files-test-" });
  const peers: TestPeer[] = [];
  try {
    await fn({
      dir,
      start: async (name, extra = {}) => {
        const p = await startPeer(coordinator, join(dir, "config"), name, {
          files: {
            downloads: join(dir, name, "downloads"),
            stateFile: join(dir, name, "transfers.json"),
          },
          ...extra,
        });
        peers.push(p);
        return p;
      },
    });
  } finally {
    for (const p of peers) await p.peer.close();
    await coordinator.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function pair(start: (name: string) => Promise<TestPeer>): Promise<[TestPeer, TestPeer]> {
  const a = await start("alice");
  const b = await start("bob");
  await a.events.waitFor((e) => e.event === "online" && e.user === "bob", 3000, "bob online");
  return [a, b];
}

/** Writes `size` bytes of a fixed pattern, in chunks (never the whole file in memory). */
async function makeFile(path: string, size: number, seed = 1): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  for (let at = 0; at < size; at += chunk.length) {
    const n = Math.min(chunk.length, size - at);
    let done = 0;
    while (done < n) done += await file.write(chunk.subarray(done, n));
  }
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buf)) !== null;) hash.update(buf.subarray(0, n));
  return hash.digest("hex");
}

function offerIn(events: Collector<Ev>) {
  return events.waitFor((e) => e.event === "file-offer" && e.direction === "in", 5000, "offer");
}

function ended(events: Collector<Ev>, id: number, timeoutMs = 20_000) {
  return events.waitFor(
    (e) =>
      (e.event === "file-progress" && e.id === id && e.bytes === e.size) ||
      ((e.event === "file-failed" || e.event === "file-declined") && e.id === id),
    timeoutMs,
    `end of #${id}`,
  );
}

Deno.test("files of 0 B, 1 B, 1 MiB + 1 and 8 MiB arrive byte-identical, SHA-256 checked", async () => {
  await world(async ({ start, dir }) => {
    const [alice, bob] = await pair(start);
    const src = join(dir, "src");
    await Deno.mkdir(src);
    const sizes = { "empty.bin": 0, "one.bin": 1, "mib.bin": (1 << 20) + 1, "big.bin": 8 << 20 };
    for (const [name, size] of Object.entries(sizes)) await makeFile(join(src, name), size);
    await alice.peer.sendFiles("bob", Object.keys(sizes).map((n) => join(src, n)));
    const offer = await offerIn(bob.events);
    assert.equal(offer.event === "file-offer" && offer.files.length, 4);
    bob.peer.acceptFiles();
    const end = await ended(bob.events, offer.event === "file-offer" ? offer.id : 0);
    assert.equal(end.event, "file-progress", JSON.stringify(end));
    for (const [name] of Object.entries(sizes)) {
      const done = bob.events.items.find((e) => e.event === "file-done" && e.name === name);
      assert.ok(done && done.event === "file-done", `file-done for ${name}`);
      assert.equal(done.path, join(dir, "bob", "downloads", name));
      assert.equal(await fileHash(done.path), await fileHash(join(src, name)));
      assert.equal(done.sha256, await fileHash(join(src, name)));
    }
    // The sender hears of each file too.
    await alice.events.waitFor(
      (e) => e.event === "file-done" && e.name === "big.bin" && e.direction === "out",
      5000,
      "sender's file-done",
    );
    // No part files left behind.
    const left = [...Deno.readDirSync(join(dir, "bob", "downloads"))].map((e) => e.name).sort();
    assert.deepEqual(left, Object.keys(sizes).sort());
  });
});

Deno.test("a directory tree (203 files) arrives intact; a taken name gets a suffix, never overwritten", async () => {
  await world(async ({ start, dir }) => {
    const [alice, bob] = await pair(start);
    const tree = join(dir, "src", "tree");
    await Deno.mkdir(join(tree, "a", "b"), { recursive: true });
    await makeFile(join(tree, "top.txt"), 100, 1);
    await makeFile(join(tree, "a", "mid.txt"), 70_000, 2);
    await makeFile(join(tree, "a", "b", "deep.txt"), 5, 3);
    await Deno.mkdir(join(tree, "many"));
    for (let i = 0; i < 200; i++) await makeFile(join(tree, "many", `${i}.txt`), i, i);
    const downloads = join(dir, "bob", "downloads");
    await Deno.mkdir(join(downloads, "tree"), { recursive: true });
    await Deno.writeTextFile(join(downloads, "tree", "top.txt"), "mine");
    await alice.peer.sendFiles("bob", [tree]);
    const offer = await offerIn(bob.events);
    assert.ok(offer.event === "file-offer");
    bob.peer.acceptFiles(offer.id);
    const end = await ended(bob.events, offer.id);
    assert.equal(end.event, "file-progress", JSON.stringify(end));
    assert.equal(await Deno.readTextFile(join(downloads, "tree", "top.txt")), "mine");
    assert.equal(
      await fileHash(join(downloads, "tree", "top (1).txt")),
      await fileHash(join(tree, "top.txt")),
    );
    assert.equal(
      await fileHash(join(downloads, "tree", "a", "mid.txt")),
      await fileHash(join(tree, "a", "mid.txt")),
    );
    assert.equal(
      await fileHash(join(downloads, "tree", "a", "b", "deep.txt")),
      await fileHash(join(tree, "a", "b", "deep.txt")),
    );
    for (let i = 0; i < 200; i += 37) {
      assert.equal(
        await fileHash(join(downloads, "tree", "many", `${i}.txt`)),
        await fileHash(join(tree, "many", `${i}.txt`)),
      );
    }
    assert.equal([...Deno.readDirSync(join(downloads, "tree", "many"))].length, 200);
  });
});

Deno.test("decline, a limit over --max-file-size and cancel are told to both sides", async () => {
  await world(async ({ start, dir }) => {
    const alice = await start("alice");
    const bob = await start("bob", {
      files: {
        downloads: join(dir, "bob", "downloads"),
        stateFile: join(dir, "bob", "transfers.json"),
        maxFileSize: 1000,
      },
    });
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob", 3000);
    const small = join(dir, "small.bin");
    const big = join(dir, "big.bin");
    await makeFile(small, 10);
    await makeFile(big, 1001);

    await alice.peer.sendFiles("bob", [small]);
    const first = await offerIn(bob.events);
    assert.ok(first.event === "file-offer");
    bob.peer.declineFiles(first.id);
    const declined = await alice.events.waitFor((e) => e.event === "file-declined", 5000);
    assert.ok(declined.event === "file-declined" && declined.reason.includes("bob declined"));

    await alice.peer.sendFiles("bob", [big]);
    const tooBig = await alice.events.waitFor(
      (e) => e.event === "file-declined" && e.reason.includes("--max-file-size"),
      5000,
      "limit",
    );
    assert.ok(tooBig.event === "file-declined" && tooBig.reason.includes("1001 B"));

    await alice.peer.sendFiles("bob", [small]);
    const third = await bob.events.waitFor(
      (e) =>
        e.event === "file-offer" && e.direction === "in" && e.id !== first.id &&
        e.files[0].size === 10,
      5000,
    );
    assert.ok(third.event === "file-offer");
    const out = alice.events.items.filter((e) => e.event === "file-offer").at(-1)!;
    assert.ok(out.event === "file-offer");
    alice.peer.cancelFiles(out.id);
    const failed = await bob.events.waitFor(
      (e) => e.event === "file-failed" && e.id === third.id,
      5000,
      "cancel told",
    );
    assert.ok(failed.event === "file-failed" && failed.reason.includes("alice cancelled"));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).includes("bob"), true);
  });
});

Deno.test("cancel mid-transfer by the receiver: both sides stop, the part is deleted", async () => {
  await world(async ({ start, dir }) => {
    const [alice, bob] = await pair(start);
    const src = join(dir, "big.bin");
    await makeFile(src, 32 << 20);
    await alice.peer.sendFiles("bob", [src]);
    const offer = await offerIn(bob.events);
    assert.ok(offer.event === "file-offer");
    bob.peer.acceptFiles(offer.id);
    await bob.events.waitFor((e) => e.event === "file-progress" && e.bytes > 0, 10_000, "progress");
    bob.peer.cancelFiles(offer.id);
    const mine = await bob.events.waitFor((e) => e.event === "file-failed", 5000, "bob stopped");
    assert.ok(mine.event === "file-failed" && mine.reason === "cancelled");
    const theirs = await alice.events.waitFor((e) => e.event === "file-failed", 5000, "told");
    assert.ok(theirs.event === "file-failed" && /bob cancelled/.test(theirs.reason));
    assert.deepEqual([...Deno.readDirSync(join(dir, "bob", "downloads"))], []);
    assert.equal(
      alice.peer.files().find((t) => t.direction === "out")?.state,
      "failed",
    );
  });
});
