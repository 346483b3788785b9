import assert from "node:assert/strict";
import { Outbox } from "../../lib/peer/outbox.ts";

Deno.test("outbox: messages are cut into payloads in order; the last one ends the message", () => {
  const outbox = new Outbox({ payloadSize: 4, maxDeliveryMs: 1000 });
  const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(outbox.add(data), 1);
  assert.equal(outbox.add(new Uint8Array()), 2);
  data.fill(0); // the outbox keeps its own copy
  const cuts = [];
  for (let seq = 0; outbox.hasUnsent; seq++) cuts.push(outbox.cut(seq * 10, seq));
  assert.deepEqual(cuts, [
    { payload: new Uint8Array([1, 2, 3, 4]), end: false },
    { payload: new Uint8Array([5, 6, 7, 8]), end: false },
    { payload: new Uint8Array([9]), end: true },
    { payload: new Uint8Array(), end: true }, // an empty message is one empty END segment
  ]);
  assert.equal(outbox.pending, 2);
});

Deno.test("outbox: a message is delivered once the cumulative ack passes its last segment", () => {
  const outbox = new Outbox({ payloadSize: 4, maxDeliveryMs: 1000 });
  outbox.add(new Uint8Array(8)); // seqs 0, 1
  outbox.add(new Uint8Array(2)); // seq 2
  outbox.add(new Uint8Array(2)); // not cut yet
  for (let seq = 0; seq < 3; seq++) outbox.cut(0, seq);
  assert.deepEqual(outbox.delivered(1), []);
  assert.deepEqual(outbox.delivered(3), [1, 2]);
  assert.deepEqual(outbox.delivered(3), []);
  assert.equal(outbox.pending, 1);
  assert.deepEqual(outbox.delivered(100), [], "a message not cut yet is never delivered");
});

Deno.test("outbox: the delivery deadline runs from a message's first cut", () => {
  const outbox = new Outbox({ payloadSize: 4, maxDeliveryMs: 1000 });
  outbox.add(new Uint8Array(8));
  outbox.add(new Uint8Array(1));
  assert.equal(outbox.oldestDeadline, undefined);
  outbox.cut(50, 0);
  assert.equal(outbox.oldestDeadline, 1050);
  outbox.cut(70, 1); // the second cut does not move it
  assert.equal(outbox.oldestDeadline, 1050);
  outbox.cut(90, 2);
  outbox.delivered(2);
  assert.equal(outbox.oldestDeadline, 1090);
});

Deno.test("outbox: drain gives every pending id, sent ones first; ids go on", () => {
  const outbox = new Outbox({ payloadSize: 4, maxDeliveryMs: 1000 });
  outbox.add(new Uint8Array(1));
  outbox.add(new Uint8Array(8));
  outbox.add(new Uint8Array(1));
  outbox.cut(0, 0); // message 1 fully cut
  outbox.cut(0, 1); // message 2 partly cut
  assert.deepEqual(outbox.drain(), [1, 2, 3]);
  assert.equal(outbox.pending, 0);
  assert.equal(outbox.hasUnsent, false);
  assert.equal(outbox.oldestDeadline, undefined);
  assert.equal(outbox.add(new Uint8Array(1)), 4);
});
