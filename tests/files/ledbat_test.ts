import assert from "node:assert/strict";
import { DelayController } from "../../lib/files/ledbat.ts";

const CHUNK = 16384;

/** Feeds `delays` (ms) as confirmed chunks, 10 ms apart from `at`; returns the next time. */
function feed(cc: DelayController, delays: number[], at = 0): number {
  for (const delayMs of delays) cc.onDelivered({ delayMs, bytes: CHUNK, now: at += 10 });
  return at;
}

Deno.test("the target follows the base delay: twice it, at least 1 ms, at most targetMs", () => {
  const cc = new DelayController({ chunkBytes: CHUNK });
  assert.equal(cc.targetMs, 1, "no sample yet: the floor");
  feed(cc, [2]);
  assert.equal(cc.targetMs, 4);
  feed(cc, [0.3]);
  assert.equal(cc.targetMs, 1, "a base of 0.3 ms: the floor, not 0.6 ms");
  const far = new DelayController({ chunkBytes: CHUNK, targetMs: 10 });
  feed(far, [60]);
  assert.equal(far.targetMs, 10, "a long path: the ceiling");
  const fixed = new DelayController({ chunkBytes: CHUNK, targetMs: 10, targetFraction: 100 });
  feed(fixed, [2]);
  assert.equal(fixed.targetMs, 10, "the former fixed 10 ms");
});

Deno.test("one late chunk is jitter, not a queue: the window does not shrink for it", () => {
  const filtered = new DelayController({ chunkBytes: CHUNK });
  const raw = new DelayController({ chunkBytes: CHUNK, currentSamples: 1 });
  for (const cc of [filtered, raw]) {
    const at = feed(cc, [2, 2, 2, 2]);
    const before = cc.windowBytes;
    feed(cc, [30], at); // one chunk held up 28 ms (a preempted process)
    if (cc === filtered) assert.ok(cc.windowBytes >= before, "filtered: not a queue");
    else assert.ok(cc.windowBytes < before, "unfiltered: read as a queue");
  }
});

Deno.test("a standing queue above the target shrinks the window to its floor; none lets it grow", () => {
  const cc = new DelayController({ chunkBytes: CHUNK });
  let at = feed(cc, [2]);
  const start = cc.windowBytes;
  at = feed(cc, Array(60).fill(12), at); // 10 ms queued against a 4 ms target, every sample
  assert.equal(cc.windowBytes, 2 * CHUNK, "down to 2 chunks");
  at = feed(cc, Array(50).fill(2), at);
  assert.ok(cc.windowBytes > start, "grows again with no queue");
  const grown = cc.windowBytes;
  feed(cc, [2], at);
  assert.ok(cc.windowBytes - grown <= CHUNK, "at most a chunk a sample");
});

Deno.test("a chunk given up halves the window, not below its floor", () => {
  const cc = new DelayController({ chunkBytes: CHUNK, initialBytes: 8 * CHUNK });
  cc.onLoss();
  assert.equal(cc.windowBytes, 4 * CHUNK);
  cc.onLoss();
  cc.onLoss();
  assert.equal(cc.windowBytes, 2 * CHUNK);
});

Deno.test("the base delay is the minimum of the last 4 minutes: an older one is forgotten", () => {
  const cc = new DelayController({ chunkBytes: CHUNK });
  cc.onDelivered({ delayMs: 1, bytes: CHUNK, now: 0 });
  for (let minute = 1; minute <= 4; minute++) {
    cc.onDelivered({ delayMs: 5, bytes: CHUNK, now: minute * 60_000 });
  }
  assert.equal(cc.baseDelayMs, 5, "a route change is forgotten after 4 minutes");
});
