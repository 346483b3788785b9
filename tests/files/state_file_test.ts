import assert from "node:assert/strict";
import { join } from "node:path";
import { readTransfers, type SavedTransfer, writeTransfers } from "../../lib/files/state_file.ts";

Deno.test("unfinished transfers round-trip; damaged entries are skipped, a damaged file is none", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-state-" });
  try {
    const path = join(dir, "sub", "transfers.json");
    assert.deepEqual(readTransfers(path), []);
    const file = { name: "a.txt", size: 3, sha256: "ab".repeat(32) };
    const good: SavedTransfer[] = [
      { transfer: "01".repeat(16), peer: "bob", direction: "out", files: [file], sources: ["/a"] },
      {
        transfer: "02".repeat(16),
        peer: "bob",
        direction: "in",
        files: [file, file],
        dir: "/dl",
        parts: ["/dl/a.txt.p2p-part", null],
      },
    ];
    writeTransfers(path, good);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(readTransfers(path), good);
    const bad = [
      { ...good[0], transfer: "xyz" },
      { ...good[0], sources: [] },
      { ...good[1], parts: ["/dl/a"] },
      { ...good[0], files: [{ ...file, size: -1 }] },
      { ...good[0], direction: "sideways" },
      null,
      7,
    ];
    await Deno.writeTextFile(path, JSON.stringify([...bad, good[1]]));
    assert.deepEqual(readTransfers(path), [good[1]]);
    await Deno.writeTextFile(path, "{not json");
    assert.deepEqual(readTransfers(path), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
