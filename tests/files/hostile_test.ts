/**
 * Hostile input to file transfers: names from a peer, a scripted peer lying about size or hash,
 * symlinks in the download directory, damaged parts on resume.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { BLOCK_SIZE, FileError, PartFile } from "../../lib/files/disk.ts";
import type { FileEvent } from "../../lib/files/file_events.ts";
import { safeRelativePath, withSuffix } from "../../lib/files/names.ts";
import { type FileLinks, Transfers } from "../../lib/files/transfers.ts";
import { decodeFileFrame, encodeFileFrame, type FileFrame } from "../../lib/protocol/file_frame.ts";
import { FakeClock } from "../support/fake_clock.ts";

Deno.test("names from a peer: no path out, no control or bidi characters, no Windows devices", () => {
  const cases: [string, string[]][] = [
    ["../../etc/passwd", ["etc", "passwd"]],
    ["/etc/shadow", ["etc", "shadow"]],
    ["C:\\Windows\\System32\\con.txt", ["Windows", "System32", "_con.txt"]],
    ["..", ["file"]],
    ["", ["file"]],
    ["a/./b/../c", ["a", "b", "c"]],
    ["evil\u202etxt.exe", ["evil_txt.exe"]],
    ["bell\u0007\nname", ["bell__name"]],
    ["NUL", ["_NUL"]],
    ["lpt1.log", ["_lpt1.log"]],
    ["trailing. . ", ["trailing"]],
    ['a<b>c:d"e|f?g*h', ["a_b_c_d_e_f_g_h"]],
    ["zero\u200bwidth", ["zero_width"]],
    ["ok/name.txt", ["ok", "name.txt"]],
  ];
  for (const [name, want] of cases) assert.deepEqual(safeRelativePath(name), want, name);
  assert.equal(safeRelativePath("x".repeat(500) + ".txt")[0].length, 120);
  assert.ok(safeRelativePath("x".repeat(500) + ".txt")[0].endsWith(".txt"));
  assert.equal(safeRelativePath(Array(100).fill("d").join("/")).length, 32);
  assert.equal(withSuffix("photo.jpg", 2), "photo (2).jpg");
  assert.equal(withSuffix("README", 1), "README (1)");
});

const sha = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

Deno.test("a part resumes from its verified blocks; a damaged block and what follows are cut", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-part-" });
  try {
    const data = Uint8Array.from({ length: 3 * BLOCK_SIZE + 100 }, (_, i) => (i * 7) & 0xff);
    const opts = { dir, parts: ["f.bin"], size: data.length, sha256: sha(data) };
    const first = PartFile.open(opts);
    first.write(0, data.subarray(0, 3 * BLOCK_SIZE + 50));
    first.close();
    // Damage the second block on disk: only the first verifies.
    using f = await Deno.open(first.path, { write: true });
    await f.seek(BLOCK_SIZE + 5, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0]));
    const again = PartFile.open({ ...opts, resumeFrom: first.path });
    assert.equal(again.offset, BLOCK_SIZE);
    again.write(BLOCK_SIZE, data.subarray(BLOCK_SIZE));
    const path = again.finish();
    assert.deepEqual(await Deno.readFile(path), data);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a part refuses data past the offered size, and a wrong hash deletes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-part-" });
  try {
    const part = PartFile.open({ dir, parts: ["a"], size: 2, sha256: sha(new Uint8Array(2)) });
    assert.throws(() => part.write(0, new Uint8Array(3)), FileError);
    assert.throws(() => part.write(1, new Uint8Array(1)), /expected 0/);
    part.write(0, new Uint8Array([1, 2]));
    assert.throws(() => part.finish(), /SHA-256 does not match/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a symlink in the download directory is not followed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-part-" });
  const outside = await Deno.makeTempDir({ prefix: "p2p-outside-" });
  try {
    await Deno.symlink(outside, join(dir, "link"));
    assert.throws(
      () => PartFile.open({ dir, parts: ["link", "x"], size: 1, sha256: sha(new Uint8Array(1)) }),
      /symlink is not followed/,
    );
    assert.deepEqual([...Deno.readDirSync(outside)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

/** A receiver (`bob`) whose only peer is a script: frames in by hand, frames out recorded. */
async function scripted(
  fn: (w: {
    bob: Transfers;
    events: FileEvent[];
    sent: FileFrame[];
    from: (frame: FileFrame) => void;
    downloads: string;
  }) => Promise<void> | void,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-hostile-" });
  const sent: FileFrame[] = [];
  const events: FileEvent[] = [];
  const link = {
    secured: true,
    pathKind: "direct" as const,
    sendFile: (frame: Uint8Array) => {
      sent.push(decodeFileFrame(frame));
      return sent.length;
    },
  };
  const links: FileLinks = { open: () => link, get: () => link, online: () => true };
  const downloads = join(dir, "downloads");
  const bob = new Transfers({
    me: "bob",
    links,
    emit: (e) => {
      if (e.event !== "error") events.push(e);
    },
    downloads,
    stateFile: join(dir, "state.json"),
    clock: new FakeClock(),
  });
  try {
    await fn({
      bob,
      events,
      sent,
      downloads,
      from: (frame) => bob.onFrame("mallory", encodeFileFrame(frame)),
    });
  } finally {
    bob.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const ID = new Uint8Array(16).fill(7);

Deno.test("a scripted peer's hostile name stays in the download directory", async () => {
  await scripted(({ bob, events, from, downloads }) => {
    const data = new TextEncoder().encode("root::0:0");
    from({
      type: "offer",
      id: ID,
      files: [{ name: "../../etc/passwd", size: data.length, sha256: sha(data) }],
    });
    bob.accept();
    from({ type: "chunk", id: ID, index: 0, offset: 0, data });
    const done = events.find((e) => e.event === "file-done");
    assert.ok(done?.event === "file-done", JSON.stringify(events));
    assert.equal(done.path, join(downloads, "etc", "passwd"));
    assert.deepEqual(Deno.readFileSync(done.path), data);
  });
});

Deno.test("a scripted peer lying about the size: clear error both sides, part deleted", async () => {
  await scripted(({ bob, events, sent, from, downloads }) => {
    from({
      type: "offer",
      id: ID,
      files: [{ name: "a.bin", size: 4, sha256: sha(new Uint8Array(4)) }],
    });
    bob.accept();
    from({ type: "chunk", id: ID, index: 0, offset: 0, data: new Uint8Array(10) });
    const failed = events.find((e) => e.event === "file-failed");
    assert.ok(failed?.event === "file-failed" && /lying size/.test(failed.reason));
    const result = sent.find((f) => f.type === "result");
    assert.ok(result?.type === "result" && !result.ok && /lying size/.test(result.reason));
    assert.deepEqual([...Deno.readDirSync(downloads)], []);
    // Later frames of the failed transfer change nothing.
    from({ type: "chunk", id: ID, index: 0, offset: 0, data: new Uint8Array(4) });
    assert.deepEqual([...Deno.readDirSync(downloads)], []);
  });
});

Deno.test("a scripted peer lying about the hash: clear error both sides, nothing kept", async () => {
  await scripted(({ bob, events, sent, from, downloads }) => {
    from({
      type: "offer",
      id: ID,
      files: [{ name: "a.bin", size: 4, sha256: sha(new Uint8Array(4)) }],
    });
    bob.accept();
    from({ type: "chunk", id: ID, index: 0, offset: 0, data: new Uint8Array([1, 2, 3, 4]) });
    const failed = events.find((e) => e.event === "file-failed");
    assert.ok(failed?.event === "file-failed" && /SHA-256 does not match/.test(failed.reason));
    const result = sent.find((f) => f.type === "result");
    assert.ok(result?.type === "result" && !result.ok);
    assert.deepEqual([...Deno.readDirSync(downloads)], []);
  });
});

Deno.test("a scripted peer's malformed frames and data for an unknown transfer are ignored", async () => {
  await scripted(({ bob, events, sent }) => {
    bob.onFrame("mallory", new Uint8Array([0x04, 1, 2]));
    bob.onFrame(
      "mallory",
      encodeFileFrame({ type: "chunk", id: ID, index: 0, offset: 0, data: new Uint8Array(5) }),
    );
    assert.deepEqual(events, []);
    assert.deepEqual(sent, []);
  });
});

Deno.test("over the relay, a transfer above the coordinator's limit is refused: no direct path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-relay-" });
  try {
    const sent: FileFrame[] = [];
    const events: FileEvent[] = [];
    const link = {
      secured: true,
      pathKind: "relay" as const,
      sendFile: (frame: Uint8Array) => sent.push(decodeFileFrame(frame)),
    };
    const alice = new Transfers({
      me: "alice",
      links: { open: () => link, get: () => link, online: () => true },
      emit: (e) => {
        if (e.event !== "error") events.push(e);
      },
      downloads: join(dir, "dl"),
      stateFile: join(dir, "state.json"),
      clock: new FakeClock(),
    });
    alice.setRelayLimit(1000);
    const small = join(dir, "small.bin");
    const big = join(dir, "big.bin");
    await Deno.writeFile(small, new Uint8Array(1000));
    await Deno.writeFile(big, new Uint8Array(1001));
    await alice.send("bob", [big]);
    await alice.send("bob", [small]);
    const offers = sent.filter((f) => f.type === "offer");
    assert.equal(offers.length, 2);
    for (const o of offers) {
      alice.onFrame("bob", encodeFileFrame({ type: "accept", id: o.id, offsets: [0] }));
    }
    const failed = events.find((e) => e.event === "file-failed");
    assert.ok(failed?.event === "file-failed" && /no direct path to bob/.test(failed.reason));
    assert.equal(failed.id, 1);
    assert.ok(sent.some((f) => f.type === "cancel" && /no direct path/.test(f.reason)));
    // The small one goes.
    assert.ok(sent.some((f) => f.type === "chunk" && f.data.length === 1000));
    alice.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a source gone before it is read: a clear error on both sides", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-gone-" });
  try {
    const sent: FileFrame[] = [];
    const events: FileEvent[] = [];
    const link = {
      secured: true,
      pathKind: "direct" as const,
      sendFile: (frame: Uint8Array) => sent.push(decodeFileFrame(frame)),
    };
    const alice = new Transfers({
      me: "alice",
      links: { open: () => link, get: () => link, online: () => true },
      emit: (e) => {
        if (e.event !== "error") events.push(e);
      },
      downloads: join(dir, "dl"),
      stateFile: join(dir, "state.json"),
      clock: new FakeClock(),
    });
    const src = join(dir, "a.bin");
    await Deno.writeFile(src, new Uint8Array(10));
    await alice.send("bob", [src]);
    await Deno.remove(src);
    const offer = sent.find((f) => f.type === "offer")!;
    alice.onFrame("bob", encodeFileFrame({ type: "accept", id: offer.id, offsets: [0] }));
    const failed = events.find((e) => e.event === "file-failed");
    assert.ok(failed?.event === "file-failed" && /no such file/.test(failed.reason));
    const cancel = sent.find((f) => f.type === "cancel");
    assert.ok(cancel?.type === "cancel" && /no such file/.test(cancel.reason));
    alice.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
