import assert from "node:assert/strict";
import { Outgoing } from "../../lib/peer/outgoing.ts";

Deno.test("outgoing: ids from 1; drain resolves once every message so far is settled", async () => {
  const outgoing = new Outgoing();
  await outgoing.drain(); // nothing pending: at once
  const [a, b] = [outgoing.add(), outgoing.add()];
  assert.deepEqual([a, b], [1, 2]);
  let drained = false;
  const done = outgoing.drain().then(() => drained = true);
  outgoing.settle(a);
  await Promise.resolve();
  assert.equal(drained, false);
  outgoing.settle(b);
  await done;
  assert.equal(drained, true);
  assert.equal(outgoing.add(), 3);
});

Deno.test("outgoing: release lets waiters go with messages still unsettled", async () => {
  const outgoing = new Outgoing();
  outgoing.add();
  const done = outgoing.drain();
  outgoing.release();
  await done;
});
