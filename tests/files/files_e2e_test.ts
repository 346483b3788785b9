/**
 * A file transfer between real `p2p chat --json` processes on loopback that survives `kill -9` of
 * the receiver and then of the sender: each restart resumes from the verified part, not from zero.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { P2pProcess, startServe } from "../support/proc.ts";

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

// Large enough that a third of it takes a while even with 16 KiB datagrams on loopback (a
// kill must land mid-transfer): progress events come every 250 ms, ~18 MB apart at 70 MB/s, so
// a kill "at a third" lands between a third and about three quarters.
const SIZE = 64 << 20;
const MiB = 1 << 20;

Deno.test("kill -9 of the receiver at a third, then of the sender at two thirds: each resumes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-files-e2e-" });
  const serve = await startServe();
  const procs: P2pProcess[] = [];
  const downloads = join(dir, "downloads");
  const chat = async (name: string) => {
    const p = new P2pProcess(
      [
        "chat",
        `${name}@127.0.0.1:${serve.port}`,
        "--json",
        "--no-history",
        "--downloads",
        downloads,
      ],
      { env: { XDG_DATA_HOME: join(dir, name) } },
    );
    procs.push(p);
    await p.event((e) => e.event === "ready", 15_000);
    return p;
  };
  const progress = (p: P2pProcess, atLeast: number) =>
    p.event((e) => e.event === "file-progress" && (e.bytes as number) >= atLeast, 60_000);
  try {
    const src = join(dir, "movie.bin");
    await makeFile(src, SIZE);
    const alice = await chat("alice");
    const bob = await chat("bob");
    await alice.event((e) => e.event === "online" && e.user === "bob", 10_000);
    await alice.write(`/send bob ${src}`);
    const offer = await bob.event((e) => e.event === "file-offer", 10_000);
    await bob.write(`/accept ${offer.id}`);

    // The receiver dies at a third: the part and its block hashes stay, no file under its name.
    const third = await progress(bob, SIZE / 3);
    bob.kill("SIGKILL");
    await bob.wait();
    assert.deepEqual([...Deno.readDirSync(downloads)].map((e) => e.name).sort(), [
      "movie.bin.p2p-part",
      "movie.bin.p2p-part.blocks",
    ]);
    const bob2 = await chat("bob");
    const resumed = await bob2.event((e) => e.event === "file-resumed", 30_000);
    assert.ok(
      (resumed.bytes as number) >= (third.bytes as number) - 2 * MiB,
      JSON.stringify(resumed),
    );

    // The sender has sent at most what was confirmed, plus its window (at most 2 MiB) and what
    // the dead receiver had not confirmed: no full restart.
    const twoThirds = await progress(alice, (2 * SIZE) / 3);
    assert.ok(
      (twoThirds.sent as number) <= (twoThirds.bytes as number) * 1.05 + 4 * MiB,
      JSON.stringify(twoThirds),
    );
    // Then the sender dies; restarted, it offers again and sends only what is missing.
    alice.kill("SIGKILL");
    await alice.wait();
    const alice2 = await chat("alice");
    // The second resume: from at least where the first one was (the same bytes when the sender
    // died before more arrived, as when the receiver's kill landed past two thirds).
    const resumes = () => bob2.events().filter((e) => e.event === "file-resumed");
    await bob2.event(() => resumes().length >= 2, 30_000);
    const again = resumes()[1];
    assert.ok((again.bytes as number) >= (resumed.bytes as number), JSON.stringify(again));
    const done = await bob2.event((e) => e.event === "file-done", 60_000);
    assert.equal(done.path, join(downloads, "movie.bin"));
    assert.equal(await fileHash(done.path as string), await fileHash(src));
    const sent = await alice2.event((e) => e.event === "file-done", 10_000);
    assert.ok(
      (sent.sent as number) <= SIZE - (again.bytes as number) + MiB,
      JSON.stringify({ sent, again }),
    );
    assert.deepEqual([...Deno.readDirSync(downloads)].map((e) => e.name), ["movie.bin"]);
  } finally {
    for (const p of procs) await p.dispose();
    await serve.proc.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
