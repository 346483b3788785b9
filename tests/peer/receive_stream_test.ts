import assert from "node:assert/strict";
import { type ReceiveCounters, ReceiveStream } from "../../lib/peer/receive_stream.ts";
import type { DataSegment } from "../../lib/protocol/segment.ts";

function setup(options: { receiveWindow?: number; maxMessageSize?: number } = {}) {
  const counters: ReceiveCounters = { duplicates: 0, outOfWindow: 0, streamsAdopted: 0 };
  const rx = new ReceiveStream(
    { receiveWindow: options.receiveWindow ?? 64, maxMessageSize: options.maxMessageSize ?? 100 },
    counters,
  );
  return { rx, counters };
}

function data(seq: number, text: string, end: boolean, extra: Partial<DataSegment> = {}) {
  const payload = new TextEncoder().encode(text);
  return { type: "data", streamId: 9, seq, base: 0, tx: seq, end, payload, ...extra } as const;
}

function texts(list: Uint8Array[]): string[] {
  return list.map((m) => new TextDecoder().decode(m));
}

Deno.test("receive: out-of-order segments are reassembled into whole messages, in order", () => {
  const { rx, counters } = setup();
  // Message "hello" (seqs 0-2), then "!" (seq 3), arriving 3, 1, 2, 0.
  let r = rx.receive(data(3, "!", true));
  assert.deepEqual(texts(r.messages), []);
  assert.deepEqual([r.ack.cumAck, r.ack.sacks, r.ack.echo], [0, [{ start: 3, end: 4 }], 3]);
  r = rx.receive(data(1, "ll", false));
  r = rx.receive(data(2, "o", true));
  assert.deepEqual(texts(r.messages), []);
  assert.deepEqual(r.ack.sacks, [{ start: 1, end: 4 }]);
  r = rx.receive(data(0, "he", false, { tx: 7 }));
  assert.deepEqual(texts(r.messages), ["hello", "!"]);
  assert.deepEqual(r.ack, {
    type: "ack",
    streamId: 9,
    reset: false,
    cumAck: 4,
    window: 64,
    echo: 7,
    sacks: [],
  });
  assert.equal(counters.streamsAdopted, 1);
});

Deno.test("receive: the SACK range of the latest segment goes first, then the lowest four", () => {
  const { rx } = setup();
  for (const seq of [2, 4, 6, 8, 10]) rx.receive(data(seq, "x", true));
  const { ack } = rx.receive(data(11, "x", true));
  assert.deepEqual(ack.sacks, [
    { start: 10, end: 12 },
    { start: 2, end: 3 },
    { start: 4, end: 5 },
    { start: 6, end: 7 },
  ]);
});

Deno.test("receive: duplicates and segments beyond the window are counted and still acked", () => {
  const { rx, counters } = setup({ receiveWindow: 8 });
  rx.receive(data(0, "a", true));
  let r = rx.receive(data(0, "a", true));
  assert.deepEqual([r.messages, counters.duplicates, r.ack.cumAck], [[], 1, 1]);
  rx.receive(data(5, "b", true));
  rx.receive(data(5, "b", true));
  assert.equal(counters.duplicates, 2);
  r = rx.receive(data(9, "c", true)); // 1 + 8: beyond the window
  assert.deepEqual([counters.outOfWindow, r.ack.sacks], [1, [{ start: 5, end: 6 }]]);
  r = rx.receive(data(8, "c", true)); // the last seq the window holds
  assert.deepEqual([counters.outOfWindow, r.ack.sacks.length], [1, 2]);
});

Deno.test("receive: a new stream from base 0 replaces the old one, which is then RESET", () => {
  const { rx, counters } = setup();
  rx.receive(data(0, "par", false));
  rx.receive(data(2, "x", true));
  let r = rx.receive(data(0, "new", true, { streamId: 10 }));
  assert.deepEqual(texts(r.messages), ["new"], "the old partial message is dropped");
  assert.deepEqual([r.ack.streamId, r.ack.cumAck, r.ack.sacks], [10, 1, []]);
  assert.equal(counters.streamsAdopted, 2);
  r = rx.receive(data(1, "tial", true)); // late segment of retired stream 9
  assert.deepEqual([r.ack.streamId, r.ack.reset, r.messages], [9, true, []]);
  r = rx.receive(data(1, "more", true, { streamId: 10 }));
  assert.deepEqual(texts(r.messages), ["more"], "stream 10 is unaffected");
});

Deno.test("receive: streams that cannot be continued are RESET and forgotten", () => {
  const { rx } = setup({ maxMessageSize: 5 });
  // Unknown stream that does not start at 0: this receiver restarted.
  let r = rx.receive(data(3, "x", true, { base: 3, tx: 4 }));
  assert.deepEqual(r.ack, {
    type: "ack",
    streamId: 9,
    reset: true,
    cumAck: 0,
    window: 0,
    echo: 4,
    sacks: [],
  });
  r = rx.receive(data(0, "x", true)); // retired now, even from base 0
  assert.equal(r.ack.reset, true);
  // The sender's base is beyond what we acknowledged: we lost state.
  rx.receive(data(0, "a", true, { streamId: 10 }));
  r = rx.receive(data(5, "x", true, { streamId: 10, base: 4 }));
  assert.equal(r.ack.reset, true);
  // A message larger than maxMessageSize.
  rx.receive(data(0, "abc", false, { streamId: 11 }));
  r = rx.receive(data(1, "def", true, { streamId: 11 }));
  assert.deepEqual([r.ack.reset, r.messages], [true, []]);
});

Deno.test("receive: 16 retired streams are remembered, not more", () => {
  const { rx } = setup();
  for (let id = 100; id <= 117; id++) rx.receive(data(0, "x", true, { streamId: id }));
  // 100..116 were retired in turn; 100 has been forgotten, 101 has not.
  assert.equal(rx.receive(data(0, "x", true, { streamId: 101 })).ack.reset, true);
  assert.equal(rx.receive(data(0, "x", true, { streamId: 100 })).ack.reset, false);
});

Deno.test("receive: reset drops the partial message and starts the stream over at seq 0", () => {
  const { rx } = setup();
  rx.receive(data(0, "ab", false));
  rx.receive(data(1, "cd", false));
  rx.reset();
  const r = rx.receive(data(0, "ok", true));
  assert.deepEqual([texts(r.messages), r.ack.cumAck], [["ok"], 1]);
});
