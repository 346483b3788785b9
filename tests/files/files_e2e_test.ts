/**
 * File transfers between real `p2p chat --json` processes on loopback: resume after `kill -9` of
 * the receiver and of the sender, from the verified part, not from zero.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { P2pProcess, startServe } from "../support/proc.ts";

type Ev = Record<string, unknown>;

async function fileHash(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buf)) !== null;) hash.update(buf.subarray(0, n));
  return hash.digest("hex");
}

async function makeFile(path: string, size: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + (i >> 10)) & 0xff;
  for (let at = 0; at < size; at += chunk.length) {
    const n = Math.min(chunk.length, size - at);
    for (let done = 0; done < n;) done += await file.write(chunk.subarray(done, n));
  }
}

const SIZE = 12 << 20;

/** A coordinator, a source file, and `p2p chat` processes that keep their data dirs. */
async function world(
  fn: (w: {
    chat: (name: string, home: string) => Promise<P2pProcess>;
    src: string;
    downloads: string;
    homes: { alice: string; bob: string };
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-files-e2e-" });
  const serve = await startServe();
  const procs: P2pProcess[] = [];
  try {
    const src = join(dir, "movie.bin");
    await makeFile(src, SIZE);
    const homes = { alice: join(dir, "alice"), bob: join(dir, "bob") };
    const downloads = join(dir, "downloads");
    await fn({
      src,
      downloads,
      homes,
      chat: async (name, home) => {
        const p = new P2pProcess(
          [
            "chat",
            `${name}@127.0.0.1:${serve.port}`,
            "--json",
            "--no-history",
            "--downloads",
            downloads,
          ],
          { env: { XDG_DATA_HOME: home } },
        );
        procs.push(p);
        await p.event((e) => e.event === "ready", 15_000);
        return p;
      },
    });
  } finally {
    for (const p of procs) await p.dispose();
    await serve.proc.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

async function offerAndAccept(alice: P2pProcess, bob: P2pProcess, src: string): Promise<void> {
  await alice.event((e) => e.event === "online" && e.user === "bob", 10_000);
  await alice.write(`/send bob ${src}`);
  const offer = await bob.event((e) => e.event === "file-offer", 10_000);
  await bob.write(`/accept ${offer.id}`);
}

/** The receiver's last progress before `at` bytes: waits until it passed half the file. */
function half(p: P2pProcess): Promise<Ev> {
  return p.event((e) => e.event === "file-progress" && (e.bytes as number) >= SIZE / 2, 60_000);
}

Deno.test("kill -9 of the receiver at about half: the restarted receiver resumes, the file is whole", async () => {
  await world(async ({ chat, src, downloads, homes }) => {
    const alice = await chat("alice", homes.alice);
    const bob = await chat("bob", homes.bob);
    await offerAndAccept(alice, bob, src);
    await half(bob);
    bob.kill("SIGKILL");
    await bob.wait();
    // The part and its block hashes are there; no file under the final name.
    const names = [...Deno.readDirSync(downloads)].map((e) => e.name).sort();
    assert.deepEqual(names, ["movie.bin.p2p-part", "movie.bin.p2p-part.blocks"]);
    const bob2 = await chat("bob", homes.bob);
    const resumed = await bob2.event((e) => e.event === "file-resumed", 30_000);
    assert.ok((resumed.bytes as number) >= SIZE / 2 - (2 << 20), JSON.stringify(resumed));
    const done = await bob2.event((e) => e.event === "file-done", 60_000);
    assert.equal(done.path, join(downloads, "movie.bin"));
    assert.equal(await fileHash(done.path as string), await fileHash(src));
    const sent = await alice.event((e) => e.event === "file-done", 10_000);
    // One sender process throughout: what it sent in all, at most ~105 % of the file.
    assert.ok((sent.sent as number) <= SIZE * 1.05 + (1 << 20), JSON.stringify(sent));
    assert.deepEqual([...Deno.readDirSync(downloads)].map((e) => e.name), ["movie.bin"]);
  });
});

Deno.test("kill -9 of the sender at about half: restarted, it offers again and the receiver resumes", async () => {
  await world(async ({ chat, src, downloads, homes }) => {
    const alice = await chat("alice", homes.alice);
    const bob = await chat("bob", homes.bob);
    await offerAndAccept(alice, bob, src);
    const before = await half(bob);
    alice.kill("SIGKILL");
    await alice.wait();
    const alice2 = await chat("alice", homes.alice);
    const resumed = await bob.event((e) => e.event === "file-resumed", 30_000);
    assert.ok((resumed.bytes as number) >= (before.bytes as number) - (1 << 20));
    const done = await bob.event((e) => e.event === "file-done", 60_000);
    assert.equal(await fileHash(done.path as string), await fileHash(src));
    const sent = await alice2.event((e) => e.event === "file-done", 10_000);
    // The second run sent only what was missing (no full restart).
    assert.ok(
      (sent.sent as number) <= SIZE - (resumed.bytes as number) + (1 << 20),
      JSON.stringify({ sent, resumed }),
    );
  });
});
