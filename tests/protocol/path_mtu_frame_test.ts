import assert from "node:assert/strict";
import {
  ACK_LENGTH,
  decodePathMtuFrame,
  encodePathMtuFrame,
  MAX_PROBE_LENGTH,
  PATH_MTU_CHANNEL,
  type PathMtuFrame,
  PathMtuFrameError,
  PROBE_HEADER_LENGTH,
} from "../../lib/protocol/path_mtu_frame.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

Deno.test("a probe is padded to its length and an ack names the probe; both round-trip", () => {
  const probe = encodePathMtuFrame({ type: "probe", id: 0xdead_beef, length: 1400 });
  assert.equal(probe.length, 1400);
  assert.deepEqual([...probe.subarray(0, 6)], [PATH_MTU_CHANNEL, 1, 0xde, 0xad, 0xbe, 0xef]);
  assert.ok(probe.subarray(6).every((b) => b === 0));
  assert.deepEqual(decodePathMtuFrame(probe), { type: "probe", id: 0xdead_beef, length: 1400 });
  const ack = encodePathMtuFrame({ type: "ack", id: 3, length: 16_384 });
  assert.equal(ack.length, ACK_LENGTH);
  assert.deepEqual(decodePathMtuFrame(ack), { type: "ack", id: 3, length: 16_384 });
  const smallest = encodePathMtuFrame({ type: "probe", id: 0, length: PROBE_HEADER_LENGTH });
  assert.deepEqual(decodePathMtuFrame(smallest), { type: "probe", id: 0, length: 6 });
});

Deno.test("bad path-MTU frames are refused with PathMtuFrameError, and so are bad fields", () => {
  const bad = (bytes: number[], why: RegExp) =>
    assert.throws(
      () => decodePathMtuFrame(Uint8Array.from(bytes)),
      (err) => err instanceof PathMtuFrameError && why.test(err.message),
    );
  bad([], /Not a path-MTU frame/);
  bad([0x46, 1, 0, 0, 0, 1], /Not a path-MTU frame/);
  bad([PATH_MTU_CHANNEL, 1, 0, 0, 0], /Not a path-MTU frame/);
  bad([PATH_MTU_CHANNEL, 1, 0, 0, 0, 1, 0, 7], /padding is not zero/);
  bad([PATH_MTU_CHANNEL, 2, 0, 0, 0, 1, 0, 0, 5], /ack of 9 bytes/);
  bad([PATH_MTU_CHANNEL, 2, 0, 0, 0, 1, 0, 0, 0, 5], /length 5/);
  bad([PATH_MTU_CHANNEL, 3, 0, 0, 0, 1], /Unknown path-MTU frame type 0x3/);
  const tooLong = new Uint8Array(MAX_PROBE_LENGTH + 1);
  tooLong.set([PATH_MTU_CHANNEL, 1]);
  assert.throws(
    () => decodePathMtuFrame(tooLong),
    (err) => err instanceof PathMtuFrameError && /too long/.test(err.message),
  );
  for (
    const frame of [
      { type: "probe", id: -1, length: 100 },
      { type: "probe", id: 2 ** 32, length: 100 },
      { type: "probe", id: 1, length: 5 },
      { type: "ack", id: 1, length: MAX_PROBE_LENGTH + 1 },
      { type: "ack", id: 1.5, length: 100 },
    ] as PathMtuFrame[]
  ) {
    assert.throws(() => encodePathMtuFrame(frame), PathMtuFrameError);
  }
});

Deno.test("fuzz: decodePathMtuFrame throws only PathMtuFrameError, and what decodes re-encodes exactly", () => {
  const rand = prng(0x9a7d);
  const corpus = [
    encodePathMtuFrame({ type: "probe", id: 1, length: 6 }),
    encodePathMtuFrame({ type: "probe", id: 0xffff_ffff, length: 40 }),
    encodePathMtuFrame({ type: "ack", id: 77, length: 1452 }),
    encodePathMtuFrame({ type: "ack", id: 0, length: 6 }),
  ];
  let decoded = 0;
  for (let i = 0; i < 6000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = randomBytes(rand, 24);
      if (bytes.length > 1 && rand() < 0.8) {
        bytes.set([PATH_MTU_CHANNEL, 1 + (i % 4 === 0 ? 1 : 0)]);
      }
      if (rand() < 0.5) bytes.fill(0, Math.min(bytes.length, 6));
    } else {
      bytes = mutate(rand, corpus[Math.floor(rand() * corpus.length)], [0, 1, 2, 0x50, 0xff]);
    }
    let frame: PathMtuFrame;
    try {
      frame = decodePathMtuFrame(bytes);
    } catch (err) {
      assert.ok(err instanceof PathMtuFrameError, `unexpected ${err} for ${[...bytes]}`);
      continue;
    }
    decoded++;
    assert.deepEqual([...encodePathMtuFrame(frame)], [...bytes]);
  }
  assert.ok(decoded > 300, `only ${decoded} decoded: the fuzzer does not get far`);
});
