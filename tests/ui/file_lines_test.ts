import assert from "node:assert/strict";
import type { FileEvent } from "../../lib/files/file_events.ts";
import { describeFileEvent, FileProgress, formatBytes } from "../../lib/ui/file_lines.ts";

const base = { transfer: "ab".repeat(16), peer: "bob" };

Deno.test("file events as lines: offers say how to answer; progress makes no line", () => {
  const offer: FileEvent = {
    event: "file-offer",
    id: 2,
    ...base,
    direction: "in",
    files: [{ name: "a.txt", size: 1536, sha256: "00".repeat(32) }],
    size: 1536,
  };
  assert.equal(
    describeFileEvent(offer),
    "#2 bob offers 1 file(s), 1.5 KiB: a.txt (1.5 KiB) — /accept 2 [DIR] or /decline 2",
  );
  assert.equal(
    describeFileEvent({ event: "file-failed", id: 2, ...base, direction: "out", reason: "why" }),
    "#2 ✗ transfer to bob stopped: why",
  );
  assert.equal(
    describeFileEvent({
      event: "file-progress",
      id: 2,
      ...base,
      direction: "in",
      bytes: 1,
      size: 2,
      rate: 1,
    }),
    undefined,
  );
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
});

Deno.test("progress goes in the prompt, one bracket per running transfer, gone when it ends", () => {
  const progress = new FileProgress();
  const p = (id: number, bytes: number): FileEvent => ({
    event: "file-progress",
    id,
    ...base,
    direction: "out",
    bytes,
    size: 1024 * 1024,
    rate: 256 * 1024,
    eta: 75,
  });
  assert.equal(progress.note(p(1, 512 * 1024)), true);
  assert.equal(progress.summary(), "[#1 → bob 50% 512 KiB/1.0 MiB 256 KiB/s 1:15] ");
  progress.note(p(2, 0));
  assert.equal(progress.summary().split("] [").length, 2);
  assert.equal(progress.note(p(1, 1024 * 1024)), true); // done: redraw without it
  assert.ok(!progress.summary().includes("#1"));
  assert.equal(
    progress.note({ event: "file-failed", id: 2, ...base, direction: "out", reason: "x" }),
    true,
  );
  assert.equal(progress.summary(), "");
});
