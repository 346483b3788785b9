import assert from "node:assert/strict";
import {
  chunkFrame,
  decodeFileFrame,
  encodeFileFrame,
  type FileFrame,
  FileFrameError,
  MAX_OFFER_FILES,
} from "../../lib/protocol/file_frame.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const ID = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const HASH = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);

function assertFileFrameError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FileFrameError, `expected FileFrameError, got ${err}`);
    assert.match(err.message, message);
    return true;
  });
}

/** What decoding the encoding of `frame` gives: the frame itself, chunk data as plain bytes. */
function normal(frame: FileFrame): unknown {
  return JSON.parse(JSON.stringify(frame, (_k, v) => v instanceof Uint8Array ? [...v] : v));
}

Deno.test("file frames round-trip, every type", () => {
  const frames: FileFrame[] = [
    {
      type: "offer",
      id: ID,
      files: [
        { name: "a.txt", size: 0, sha256: HASH },
        { name: "dir/子/b 😀.bin", size: Number.MAX_SAFE_INTEGER, sha256: HASH },
      ],
    },
    { type: "offer", id: ID, files: [] },
    { type: "accept", id: ID, offsets: [0, 65536, 2 ** 40] },
    { type: "decline", id: ID, reason: "bob declined" },
    { type: "chunk", id: ID, index: 3, offset: 1 << 20, data: new Uint8Array([1, 2, 3]) },
    { type: "chunk", id: ID, index: 0, offset: 0, data: new Uint8Array() },
    { type: "cancel", id: ID, reason: "" },
    { type: "result", id: ID, index: 1, ok: false, reason: "the disk is full" },
    { type: "result", id: ID, index: 0, ok: true, reason: "" },
  ];
  for (const frame of frames) {
    assert.deepEqual(normal(decodeFileFrame(encodeFileFrame(frame))), normal(frame));
  }
});

Deno.test("a chunk is laid out as the spec says: type, id, index, offset, data", () => {
  const bytes = encodeFileFrame({
    type: "chunk",
    id: ID,
    index: 0x0102,
    offset: 0x0304,
    data: new Uint8Array([9]),
  });
  assert.deepEqual(
    [...bytes],
    [0x04, ...ID, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0x03, 0x04, 9],
  );
});

Deno.test("encodeFileFrame refuses what it cannot write", () => {
  assertFileFrameError(
    () => encodeFileFrame({ type: "cancel", id: new Uint8Array(3), reason: "" }),
    /transfer id is 3 bytes/,
  );
  assertFileFrameError(
    () =>
      encodeFileFrame({ type: "offer", id: ID, files: [{ name: "a", size: -1, sha256: HASH }] }),
    /not a size/,
  );
  assertFileFrameError(
    () =>
      encodeFileFrame({ type: "offer", id: ID, files: [{ name: "a", size: 1.5, sha256: HASH }] }),
    /not a size/,
  );
  assertFileFrameError(
    () =>
      encodeFileFrame({
        type: "offer",
        id: ID,
        files: [{ name: "x".repeat(1025), size: 1, sha256: HASH }],
      }),
    /1025 bytes, the limit is 1024/,
  );
  assertFileFrameError(
    () => encodeFileFrame({ type: "decline", id: ID, reason: "\ud800" }),
    /lone surrogate/,
  );
  assertFileFrameError(
    () =>
      encodeFileFrame({
        type: "chunk",
        id: ID,
        index: MAX_OFFER_FILES,
        offset: 0,
        data: new Uint8Array(),
      }),
    /file index/,
  );
});

Deno.test("decodeFileFrame refuses malformed frames with a reason", () => {
  assertFileFrameError(() => decodeFileFrame(new Uint8Array()), /empty/);
  assertFileFrameError(() => decodeFileFrame(new Uint8Array([0x7f, ...ID])), /unknown type 0x7f/);
  assertFileFrameError(() => decodeFileFrame(new Uint8Array([0x01, 1, 2])), /end before/);
  const accept = encodeFileFrame({ type: "accept", id: ID, offsets: [1] });
  assertFileFrameError(() => decodeFileFrame(new Uint8Array([...accept, 0])), /after its fields/);
  const big = new Uint8Array(accept);
  big[accept.length - 8] = 0xff; // offset 2^64 - …: over 2^53 - 1
  assertFileFrameError(() => decodeFileFrame(big), /over 2\^53-1/);
  const result = encodeFileFrame({ type: "result", id: ID, index: 0, ok: true, reason: "" });
  result[19] = 2;
  assertFileFrameError(() => decodeFileFrame(result), /ok flag 2/);
  const bad = new Uint8Array([0x03, ...ID, 0xff, 0xfe]);
  assertFileFrameError(() => decodeFileFrame(bad), /not valid UTF-8/);
});

function randomFrame(rand: () => number): FileFrame {
  const id = ID; // ids are opaque bytes: one is enough
  const text = () => String.fromCharCode(...randomBytes(rand, 12)).replace(/[\ud800-\udfff]/g, "");
  const n = () => Math.floor(rand() * 2 ** (rand() < 0.5 ? 16 : 53));
  switch (Math.floor(rand() * 6)) {
    case 0:
      return {
        type: "offer",
        id,
        files: Array.from(
          { length: Math.floor(rand() * 4) },
          () => ({ name: text(), size: n(), sha256: HASH }),
        ),
      };
    case 1:
      return { type: "accept", id, offsets: Array.from({ length: Math.floor(rand() * 4) }, n) };
    case 2:
      return { type: "decline", id, reason: text() };
    case 3:
      return {
        type: "chunk",
        id,
        index: Math.floor(rand() * MAX_OFFER_FILES),
        offset: n(),
        data: randomBytes(rand, 40),
      };
    case 4:
      return { type: "cancel", id, reason: text() };
    default:
      return {
        type: "result",
        id,
        index: Math.floor(rand() * 100),
        ok: rand() < 0.5,
        reason: text(),
      };
  }
}

Deno.test("fuzz: decodeFileFrame throws only FileFrameError, and what decodes re-encodes exactly", () => {
  const rand = prng(0xf11e);
  const corpus = Array.from({ length: 32 }, () => encodeFileFrame(randomFrame(rand)));
  let decoded = 0;
  for (let i = 0; i < 6000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = randomBytes(rand, 80);
      if (bytes.length > 0 && rand() < 0.8) bytes[0] = 1 + Math.floor(rand() * 6);
    } else {
      bytes = mutate(rand, corpus[Math.floor(rand() * corpus.length)], [0, 1, 2, 0xff, 0x80]);
    }
    let frame: FileFrame;
    try {
      frame = decodeFileFrame(bytes);
    } catch (err) {
      assert.ok(err instanceof FileFrameError, `unexpected ${err} for ${[...bytes]}`);
      continue;
    }
    decoded++;
    assert.deepEqual([...encodeFileFrame(frame)], [...bytes]);
  }
  assert.ok(decoded > 300, `only ${decoded} decoded: the fuzzer does not get far`);
});

Deno.test("chunkFrame: data filled in place makes the chunk encodeFileFrame makes", () => {
  const bytes = Uint8Array.from({ length: 300 }, (_, i) => i % 251);
  const { frame, data } = chunkFrame({ id: ID, index: 3, offset: 65_536, length: bytes.length });
  assert.equal(data.buffer, frame.buffer, "a view of the frame: the file is read straight into it");
  data.set(bytes);
  const chunk: FileFrame = { type: "chunk", id: ID, index: 3, offset: 65_536, data: bytes };
  assert.deepEqual(frame, encodeFileFrame(chunk));
  assert.deepEqual(normal(decodeFileFrame(frame)), normal(chunk));
  assertFileFrameError(
    () => chunkFrame({ id: ID, index: MAX_OFFER_FILES, offset: 0, length: 1 }),
    /file index/,
  );
  assertFileFrameError(() => chunkFrame({ id: ID, index: 0, offset: -1, length: 1 }), /offset/);
  assertFileFrameError(() => chunkFrame({ id: HASH, index: 0, offset: 0, length: 1 }), /16/);
});
