import assert from "node:assert/strict";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameError,
  isFrame,
} from "../lib/protocol/frame.ts";

const encoder = new TextEncoder();

function assertFrameError(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FrameError, `expected FrameError, got ${err}`);
    assert.equal(err.name, "FrameError");
    assert.equal(err.message, message);
    return true;
  });
}

Deno.test("frames round-trip", () => {
  const frames: Frame[] = [
    { type: "msg", from: "alice", id: 7, text: "hi" },
    { type: "msg", from: "张伟", id: 0, text: "你好，世界 😀" },
    { type: "msg", from: "", id: 0xffff_ffff, text: "" },
    { type: "msg", from: "bob", id: 1, text: "\ufeffleading BOM is text too" },
    { type: "msg", from: "\ufeffbob", id: 2, text: "a,b;c\nd\u0000e" },
    { type: "msg", from: "x".repeat(255), id: 3, text: "y".repeat(1100) },
    { type: "ack", from: "alice", id: 7 },
    { type: "ack", from: "张伟", id: 0xffff_ffff },
    { type: "ack", from: "", id: 0 },
  ];
  for (const frame of frames) {
    const bytes = encodeFrame(frame);
    assert.ok(isFrame(bytes));
    assert.deepEqual(decodeFrame(bytes), frame);
  }
});

Deno.test("encodeFrame writes the documented layout", () => {
  assert.deepEqual(
    [...encodeFrame({ type: "msg", from: "al", id: 0x01020304, text: "hi" })],
    [0x01, 2, 0x61, 0x6c, 1, 2, 3, 4, 0x68, 0x69],
  );
  assert.deepEqual(
    [...encodeFrame({ type: "ack", from: "张", id: 258 })],
    [0x02, 3, 0xe5, 0xbc, 0xa0, 0, 0, 1, 2],
  );
});

Deno.test("encodeFrame refuses what it cannot represent", () => {
  assertFrameError(
    () => encodeFrame({ type: "msg", from: "x".repeat(256), id: 1, text: "" }),
    "Cannot encode frame: sender name is 256 bytes, the limit is 255",
  );
  assertFrameError(
    () => encodeFrame({ type: "ack", from: "张".repeat(86), id: 1 }),
    "Cannot encode frame: sender name is 258 bytes, the limit is 255",
  );
  for (const id of [-1, 2 ** 32, 1.5, NaN, Infinity]) {
    assertFrameError(
      () => encodeFrame({ type: "ack", from: "a", id }),
      `Cannot encode frame: id ${id} is not a 32-bit unsigned integer`,
    );
  }
});

Deno.test("decodeFrame reads frames inside a larger buffer", () => {
  const frame = encodeFrame({ type: "ack", from: "bob", id: 99 });
  const big = new Uint8Array(frame.length + 10);
  big.set(frame, 5);
  assert.deepEqual(decodeFrame(big.subarray(5, 5 + frame.length)), {
    type: "ack",
    from: "bob",
    id: 99,
  });
});

Deno.test("isFrame tells frames from coordinator text by the first byte", () => {
  assert.equal(isFrame(new Uint8Array()), false);
  assert.equal(isFrame(new Uint8Array([0x00])), true);
  assert.equal(isFrame(new Uint8Array([0x1f])), true);
  assert.equal(isFrame(new Uint8Array([0x20])), false);
  for (const text of ["login,a,1.2.3.4:5", "Accept,7000", "Alive,[::1]:1", "end", "张"]) {
    assert.equal(isFrame(encoder.encode(text)), false, text);
  }
});

Deno.test("decodeFrame rejects truncated frames", () => {
  const msg = encodeFrame({ type: "msg", from: "alice", id: 1, text: "hi" });
  assertFrameError(
    () => decodeFrame(new Uint8Array()),
    "Cannot decode frame: 0 bytes is too short",
  );
  assertFrameError(
    () => decodeFrame(new Uint8Array([1])),
    "Cannot decode frame: 1 bytes is too short",
  );
  // Cut anywhere inside the header (type, name length, name, id): too short.
  for (let n = 2; n < 2 + 5 + 4; n++) {
    assertFrameError(
      () => decodeFrame(msg.subarray(0, n)),
      `Cannot decode frame: ${n} bytes is too short for its header`,
    );
  }
  // A name length pointing past the end.
  assertFrameError(
    () => decodeFrame(new Uint8Array([2, 255, 0x61, 0, 0, 0, 1])),
    "Cannot decode frame: 7 bytes is too short for its header",
  );
  // A message cut after the header is a shorter text, which is fine; an ack must be exact.
  assert.deepEqual(decodeFrame(msg.subarray(0, msg.length - 1)), {
    type: "msg",
    from: "alice",
    id: 1,
    text: "h",
  });
});

Deno.test("decodeFrame rejects unknown types and trailing bytes", () => {
  const ack = encodeFrame({ type: "ack", from: "alice", id: 1 });
  for (const type of [0x00, 0x03, 0x1f, 0x41, 0xff]) {
    const bytes = ack.slice();
    bytes[0] = type;
    assertFrameError(
      () => decodeFrame(bytes),
      `Cannot decode frame: unknown type 0x${type.toString(16)}`,
    );
  }
  assertFrameError(
    () => decodeFrame(new Uint8Array([...ack, 0])),
    "Cannot decode ack: trailing bytes",
  );
});

Deno.test("decodeFrame rejects invalid UTF-8", () => {
  assertFrameError(
    () => decodeFrame(new Uint8Array([1, 2, 0xc3, 0x28, 0, 0, 0, 1])),
    "Cannot decode frame: sender name is not valid UTF-8",
  );
  assertFrameError(
    () => decodeFrame(new Uint8Array([2, 1, 0xff, 0, 0, 0, 1])),
    "Cannot decode frame: sender name is not valid UTF-8",
  );
  // A name cut in the middle of a character by a short name length.
  const name = encoder.encode("张伟");
  assertFrameError(
    () => decodeFrame(new Uint8Array([2, 4, ...name.subarray(0, 4), 0, 0, 0, 1])),
    "Cannot decode frame: sender name is not valid UTF-8",
  );
  const msg = encodeFrame({ type: "msg", from: "a", id: 1, text: "张" });
  assertFrameError(
    () => decodeFrame(msg.subarray(0, msg.length - 1)),
    "Cannot decode frame: message text is not valid UTF-8",
  );
  assertFrameError(
    () => decodeFrame(new Uint8Array([1, 1, 0x61, 0, 0, 0, 1, 0xed, 0xa0, 0x80])),
    "Cannot decode frame: message text is not valid UTF-8",
  );
});

/** mulberry32: a small seeded PRNG, so a failure reproduces. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("fuzz: decodeFrame throws only FrameError", () => {
  const rand = prng(0xf4a3e);
  const corpus = [
    encodeFrame({ type: "msg", from: "alice", id: 7, text: "hello" }),
    encodeFrame({ type: "msg", from: "张伟", id: 0xdeadbeef, text: "你好 😀" }),
    encodeFrame({ type: "ack", from: "bob", id: 3 }),
    encodeFrame({ type: "ack", from: "", id: 0 }),
  ];
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = new Uint8Array(Math.floor(rand() * 64));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      // Bias towards plausible headers so the fuzzer gets past the first checks.
      if (bytes.length > 0 && rand() < 0.7) bytes[0] = 1 + Math.floor(rand() * 3);
      if (bytes.length > 1 && rand() < 0.7) bytes[1] = Math.floor(rand() * bytes.length);
    } else {
      const copy = [...corpus[i % corpus.length]];
      const edits = rand() < 0.6 ? 1 : 2 + Math.floor(rand() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * (copy.length + 1));
        const op = Math.floor(rand() * 4);
        if (op === 0 && at < copy.length) copy[at] = Math.floor(rand() * 256);
        else if (op === 1) copy.splice(at, 0, Math.floor(rand() * 256));
        else if (op === 2) copy.splice(at, 1);
        else copy.length = at;
      }
      bytes = new Uint8Array(copy);
    }
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (err) {
      if (err instanceof FrameError) continue;
      assert.fail(`unexpected ${err} for input [${bytes}]`);
    }
    decoded++;
    // Whatever decodes is canonical: it encodes back to the very same bytes.
    assert.deepEqual(encodeFrame(frame), bytes);
  }
  assert.ok(
    decoded > 200,
    `only ${decoded} inputs decoded: the fuzzer is not reaching the decoder`,
  );
});
