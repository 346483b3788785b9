import assert from "node:assert/strict";
import {
  ACK_HEADER_SIZE,
  type AckSegment,
  DATA_HEADER_SIZE,
  type DataSegment,
  decodeSegment,
  encodeSegment,
  MAX_ACK_SIZE,
  type Segment,
  SegmentError,
  unwrapSeq,
} from "../../lib/protocol/segment.ts";
import { prng } from "../support/prng.ts";

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("segment: DATA byte layout matches the documented golden vector", () => {
  const seg: DataSegment = {
    type: "data",
    streamId: 0x01020304,
    seq: 5,
    base: 2,
    tx: 0x11223344,
    end: true,
    payload: new Uint8Array([0xaa, 0xbb]),
  };
  const bytes = encodeSegment(seg);
  assert.equal(
    hex(bytes),
    "01" + "01" + "01020304" + "00000005" + "00000002" + "11223344" + "aabb",
  );
  assert.equal(bytes.length, DATA_HEADER_SIZE + 2);
  assert.deepEqual(decodeSegment(bytes), seg);
});

Deno.test("segment: ACK byte layout matches the documented golden vector", () => {
  const seg: AckSegment = {
    type: "ack",
    streamId: 0x0a0b0c0d,
    reset: false,
    cumAck: 7,
    window: 64,
    echo: 0x63,
    sacks: [{ start: 9, end: 11 }],
  };
  const bytes = encodeSegment(seg);
  assert.equal(
    hex(bytes),
    "02" + "00" + "0a0b0c0d" + "00000007" + "0040" + "00000063" + "01" + "00000009" + "0000000b",
  );
  assert.deepEqual(decodeSegment(bytes), seg);
  const reset = encodeSegment({ ...seg, reset: true, sacks: [] });
  assert.equal(reset.length, ACK_HEADER_SIZE);
  assert.equal(reset[1], 0x01);
});

Deno.test("segment: round-trips edge values", () => {
  const cases: Segment[] = [
    { type: "data", streamId: 0, seq: 0, base: 0, tx: 0, end: true, payload: new Uint8Array() },
    {
      type: "data",
      streamId: 0xffff_ffff,
      seq: 0xffff_ffff,
      base: 0xffff_fff0,
      tx: 0xffff_ffff,
      end: false,
      payload: new Uint8Array(1086).fill(7),
    },
    {
      type: "ack",
      streamId: 0xffff_ffff,
      reset: false,
      cumAck: 0xffff_fffe,
      window: 0xffff,
      echo: 0xffff_ffff,
      // Ranges may wrap past 2^32.
      sacks: [
        { start: 0xffff_ffff, end: 2 },
        { start: 5, end: 6 },
        { start: 8, end: 10 },
        { start: 20, end: 30 },
      ],
    },
  ];
  for (const seg of cases) assert.deepEqual(decodeSegment(encodeSegment(seg)), seg);
  assert.equal(encodeSegment(cases[2]).length, MAX_ACK_SIZE);
});

Deno.test("segment: decoded payload is a copy of the input", () => {
  const bytes = encodeSegment({
    type: "data",
    streamId: 1,
    seq: 0,
    base: 0,
    tx: 0,
    end: true,
    payload: new Uint8Array([1, 2, 3]),
  });
  const seg = decodeSegment(bytes) as DataSegment;
  bytes.fill(0);
  assert.deepEqual([...seg.payload], [1, 2, 3]);
});

Deno.test("segment: decode rejects malformed input with SegmentError", () => {
  const data = encodeSegment({
    type: "data",
    streamId: 1,
    seq: 1,
    base: 0,
    tx: 2,
    end: false,
    payload: new Uint8Array([9]),
  });
  const ack = encodeSegment({
    type: "ack",
    streamId: 1,
    reset: false,
    cumAck: 1,
    window: 8,
    echo: 2,
    sacks: [{ start: 3, end: 4 }],
  });
  const bad: [string, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(), /shorter than 2 bytes/],
    ["unknown type", new Uint8Array([9, 0, 0]), /unknown type 0x09/],
    ["short DATA", data.subarray(0, 17), /shorter than the 18-byte header/],
    ["DATA flags", Uint8Array.from(data, (b, i) => i === 1 ? 0x02 : b), /unknown flags 0x02/],
    ["empty non-final DATA", data.subarray(0, 18), /without END needs a payload/],
    ["short ACK", ack.subarray(0, 16), /shorter than the 17-byte header/],
    ["ACK flags", Uint8Array.from(ack, (b, i) => i === 1 ? 0x80 : b), /unknown flags 0x80/],
    ["ACK trailing byte", new Uint8Array([...ack, 0]), /does not match 25 for 1 SACK/],
    ["ACK missing range", ack.subarray(0, 24), /does not match 25 for 1 SACK/],
    ["too many ranges", Uint8Array.from(ack, (b, i) => i === 16 ? 5 : b), /5 SACK ranges exceed/],
    ["empty range", Uint8Array.from(ack, (b, i) => i === 24 ? 3 : b), /range 3-3 is empty/],
  ];
  for (const [name, bytes, message] of bad) {
    assert.throws(() => decodeSegment(bytes), (e: unknown) => {
      assert.ok(e instanceof SegmentError, name);
      assert.match(e.message, message, name);
      return true;
    });
  }
});

Deno.test("segment: encode rejects out-of-range fields with SegmentError", () => {
  const data: DataSegment = {
    type: "data",
    streamId: 1,
    seq: 0,
    base: 0,
    tx: 0,
    end: true,
    payload: new Uint8Array(),
  };
  const ack: AckSegment = {
    type: "ack",
    streamId: 1,
    reset: false,
    cumAck: 0,
    window: 8,
    echo: 0,
    sacks: [],
  };
  const bad: Segment[] = [
    { ...data, streamId: -1 },
    { ...data, seq: 2 ** 32 },
    { ...data, base: 1.5 },
    { ...data, tx: -1 },
    { ...ack, echo: 2 ** 32 },
    { ...data, end: false },
    { ...ack, window: 0x10000 },
    { ...ack, cumAck: NaN },
    { ...ack, sacks: [{ start: 4, end: 4 }] },
    { ...ack, sacks: [{ start: 0, end: 0x8000_0000 }] },
    { ...ack, sacks: Array.from({ length: 5 }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 })) },
  ];
  for (const seg of bad) assert.throws(() => encodeSegment(seg), SegmentError);
});

Deno.test("segment: unwrapSeq recovers full sequence numbers across 2^32", () => {
  assert.equal(unwrapSeq(5, 3), 5);
  assert.equal(unwrapSeq(1, 3), 1);
  assert.equal(unwrapSeq(0xffff_ffff, 0), -1);
  assert.equal(unwrapSeq(5, 0xffff_fffe), 0x1_0000_0005);
  assert.equal(unwrapSeq(0xffff_fffe, 0x1_0000_0005), 0xffff_fffe);
  const ref = 7 * 2 ** 32 + 100;
  assert.equal(unwrapSeq((ref + 0x7fff_ffff) >>> 0, ref), ref + 0x7fff_ffff);
  assert.equal(unwrapSeq((ref - 0x8000_0000) >>> 0, ref), ref - 0x8000_0000);
});

Deno.test("segment: fuzzed input throws only SegmentError, and what decodes re-encodes exactly", () => {
  const rand = prng(0x5e6);
  const valid = [
    encodeSegment({
      type: "data",
      streamId: 0xdeadbeef,
      seq: 77,
      base: 70,
      tx: 123,
      end: false,
      payload: new Uint8Array(40).fill(3),
    }),
    encodeSegment({
      type: "ack",
      streamId: 0xdeadbeef,
      reset: false,
      cumAck: 70,
      window: 64,
      echo: 123,
      sacks: [{ start: 72, end: 75 }, { start: 80, end: 81 }],
    }),
  ];
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = Uint8Array.from({ length: Math.floor(rand() * 60) }, () => Math.floor(rand() * 256));
      // Bias the type byte towards known types so that the type-specific checks get exercised.
      if (bytes.length > 0 && rand() < 0.8) bytes[0] = 1 + Math.floor(rand() * 2);
    } else {
      const base = valid[Math.floor(rand() * valid.length)];
      bytes = base.slice(0, rand() < 0.2 ? Math.floor(rand() * base.length) : base.length);
      const flips = 1 + Math.floor(rand() * 3);
      for (let f = 0; f < flips && bytes.length > 0; f++) {
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
    }
    let seg: Segment;
    try {
      seg = decodeSegment(bytes);
    } catch (e) {
      assert.ok(e instanceof SegmentError, `input ${hex(bytes)} threw ${e}`);
      continue;
    }
    decoded++;
    assert.equal(hex(encodeSegment(seg)), hex(bytes));
  }
  // Make sure the fuzzer reaches the success path too, not only the error paths.
  assert.ok(decoded > 1000, `only ${decoded} inputs decoded`);
});
