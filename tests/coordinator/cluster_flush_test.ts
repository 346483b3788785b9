/** When a member publishes its presence changes (lib/coordinator/cluster.ts, `flushDelayMs`). */
import assert from "node:assert/strict";
import { flushDelayMs } from "../../lib/coordinator/cluster.ts";

Deno.test("cluster flush: a change after a quiet spell is published at once", () => {
  assert.equal(flushDelayMs({ now: 0, flushedAt: -Infinity, batchMs: 10 }), 0);
  assert.equal(flushDelayMs({ now: 1000, flushedAt: 500, batchMs: 10 }), 0);
  assert.equal(flushDelayMs({ now: 1010, flushedAt: 1000, batchMs: 10 }), 0);
});

Deno.test("cluster flush: a stream of changes goes out at most once per batch interval", () => {
  assert.equal(flushDelayMs({ now: 1000, flushedAt: 1000, batchMs: 10 }), 10);
  assert.equal(flushDelayMs({ now: 1004, flushedAt: 1000, batchMs: 10 }), 6);
  // A clock that stepped back never makes a change wait longer than one interval.
  assert.equal(flushDelayMs({ now: 900, flushedAt: 1000, batchMs: 10 }), 10);
});
