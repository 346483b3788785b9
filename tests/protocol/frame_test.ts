import assert from "node:assert/strict";
import {
  COOKIE_LENGTH,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameError,
  frameHeader,
  FrameType,
  HANDSHAKE_MAC_LENGTH,
  handshakeSigned,
  isFrame,
  type OutFrame,
  PROBE_MAC_LENGTH,
} from "../../lib/protocol/frame.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const encoder = new TextEncoder();
const MAC = Uint8Array.from({ length: PROBE_MAC_LENGTH }, (_, i) => 0xa0 + i);
const MAC2 = Uint8Array.from({ length: HANDSHAKE_MAC_LENGTH }, (_, i) => 0xc0 + i);

function assertFrameError(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FrameError, `expected FrameError, got ${err}`);
    assert.equal(err.name, "FrameError");
    assert.equal(err.message, message);
    return true;
  });
}

/**
 * What decodeFrame returns for an encoded frame: hs and data frames add `header` and `raw`, hs
 * frames `signed` too (all but their MACs).
 */
function expectedDecode(frame: OutFrame, bytes: Uint8Array): Frame {
  if (frame.type === "turn-candidate") {
    return { ...frame, signed: bytes.subarray(0, bytes.length - PROBE_MAC_LENGTH) };
  }
  if (!("payload" in frame)) return frame;
  const header = bytes.subarray(0, 2 + bytes[1]);
  if (frame.type === "data") return { ...frame, header, raw: bytes };
  const macs = frame.type === "hs1" ? 2 * HANDSHAKE_MAC_LENGTH : HANDSHAKE_MAC_LENGTH;
  return { ...frame, signed: bytes.subarray(0, bytes.length - macs), header, raw: bytes };
}

Deno.test("frame type bytes are the documented ones, all below 0x20", () => {
  assert.deepEqual(FrameType, {
    PROBE: 0x10,
    PROBE_ACK: 0x11,
    HS1: 0x12,
    HS2: 0x13,
    HS3: 0x14,
    DATA: 0x15,
    COOKIE: 0x16,
    RELAY: 0x18,
    RELAYED: 0x19,
    TURN_CANDIDATE: 0x1a,
  });
  assert.equal(PROBE_MAC_LENGTH, 16);
  assert.equal(HANDSHAKE_MAC_LENGTH, 16);
  assert.equal(COOKIE_LENGTH, 16);
});

Deno.test("encodeFrame writes the documented layout of every type", () => {
  const mac = [...MAC];
  const cases: [OutFrame, number[]][] = [
    [
      { type: "probe", from: "al", txid: 0x01020304, mac: MAC },
      [0x10, 2, 0x61, 0x6c, 1, 2, 3, 4, ...mac],
    ],
    [
      { type: "probe-ack", from: "张", txid: 0xfffffffe, mac: MAC },
      [0x11, 3, 0xe5, 0xbc, 0xa0, 0xff, 0xff, 0xff, 0xfe, ...mac],
    ],
    [
      { type: "hs1", from: "a", payload: new Uint8Array([9, 8]), mac1: MAC, mac2: MAC2 },
      [0x12, 1, 0x61, 9, 8, ...mac, ...MAC2],
    ],
    [
      { type: "hs2", from: "bo", payload: new Uint8Array([7]), mac1: MAC },
      [0x13, 2, 0x62, 0x6f, 7, ...mac],
    ],
    [{ type: "hs3", from: "c", payload: new Uint8Array(), mac1: MAC }, [0x14, 1, 0x63, ...mac]],
    [
      { type: "cookie", from: "b", cookie: MAC2, mac: MAC },
      [0x16, 1, 0x62, ...MAC2, ...mac],
    ],
    [{ type: "data", from: "d", payload: new Uint8Array([0, 255]) }, [0x15, 1, 0x64, 0, 255]],
    [{ type: "relay", to: "bob", inner: new Uint8Array([0x15, 1]) }, [
      0x18,
      3,
      0x62,
      0x6f,
      0x62,
      0x15,
      1,
    ]],
    [{ type: "relayed", from: "", inner: new Uint8Array([1, 2, 3]) }, [0x19, 0, 1, 2, 3]],
  ];
  for (const [frame, bytes] of cases) {
    assert.deepEqual([...encodeFrame(frame)], bytes, frame.type);
  }
});

Deno.test("frameHeader is the type, name length and name: the prefix of hs and data frames", () => {
  assert.deepEqual([...frameHeader(FrameType.DATA, "张伟")], [
    0x15,
    6,
    ...encoder.encode("张伟"),
  ]);
  assert.deepEqual([...frameHeader(FrameType.HS1, "")], [0x12, 0]);
  const frame = encodeFrame({ type: "data", from: "alice", payload: new Uint8Array([1, 2, 3]) });
  const decoded = decodeFrame(frame);
  assert.equal(decoded.type, "data");
  if (decoded.type !== "data") return;
  // Both ends derive the same associated data: the sender from frameHeader, the receiver from
  // the decoded header.
  assert.deepEqual(decoded.header, frameHeader(FrameType.DATA, "alice"));
  assert.deepEqual(decoded.raw, frame);
  assert.deepEqual(decoded.payload, new Uint8Array([1, 2, 3]));
});

Deno.test("frames of every type round-trip", () => {
  const frames: OutFrame[] = [
    { type: "probe", from: "alice", txid: 0, mac: MAC },
    { type: "probe", from: "张伟", txid: 0xffff_ffff, mac: new Uint8Array(PROBE_MAC_LENGTH) },
    { type: "probe-ack", from: "😀 b", txid: 12345, mac: MAC },
    { type: "hs1", from: "alice", payload: new Uint8Array(32).fill(7), mac1: MAC, mac2: MAC2 },
    { type: "hs1", from: "a", payload: new Uint8Array(), mac1: MAC2, mac2: MAC },
    { type: "hs2", from: "\ufeffbob", payload: new Uint8Array(96).fill(1), mac1: MAC },
    { type: "hs3", from: "x".repeat(255), payload: new Uint8Array(64), mac1: MAC2 },
    { type: "cookie", from: "张伟", cookie: MAC, mac: MAC2 },
    { type: "data", from: "张".repeat(85), payload: new Uint8Array(1200).fill(0x5a) },
    { type: "data", from: "", payload: new Uint8Array() },
    { type: "relay", to: "bob", inner: new Uint8Array([0x15, 1, 0x61, 0xff]) },
    { type: "relay", to: "张伟", inner: new Uint8Array() },
    { type: "relayed", from: "alice", inner: new Uint8Array([0x10, 0x11, 0x12]) },
    { type: "relayed", from: "\ufeff", inner: new Uint8Array(1000).fill(0x20) },
  ];
  for (const frame of frames) {
    const bytes = encodeFrame(frame);
    assert.ok(isFrame(bytes), frame.type);
    assert.deepEqual(decodeFrame(bytes), expectedDecode(frame, bytes), frame.type);
    assert.deepEqual(encodeFrame(decodeFrame(bytes)), bytes, frame.type);
  }
});

Deno.test("decodeFrame reads a frame inside a larger buffer", () => {
  const probe = encodeFrame({ type: "probe-ack", from: "bob", txid: 0x0a0b0c0d, mac: MAC });
  const big = new Uint8Array(probe.length + 11).fill(0xee);
  big.set(probe, 7);
  const view = big.subarray(7, 7 + probe.length);
  assert.deepEqual(decodeFrame(view), {
    type: "probe-ack",
    from: "bob",
    txid: 0x0a0b0c0d,
    mac: MAC,
  });

  const data = encodeFrame({ type: "data", from: "al", payload: new Uint8Array([4, 5]) });
  const big2 = new Uint8Array(data.length + 3);
  big2.set(data, 3);
  const decoded = decodeFrame(big2.subarray(3));
  assert.equal(decoded.type, "data");
  if (decoded.type !== "data") return;
  assert.deepEqual(decoded.payload, new Uint8Array([4, 5]));
  assert.deepEqual(decoded.header, new Uint8Array([0x15, 2, 0x61, 0x6c]));
  assert.deepEqual(decoded.raw, data);
});

Deno.test("decodeFrame copies a probe's MAC but views hs/data payloads", () => {
  const probe = encodeFrame({ type: "probe", from: "a", txid: 1, mac: MAC });
  const decoded = decodeFrame(probe);
  probe[probe.length - 1] ^= 0xff;
  assert.equal(decoded.type, "probe");
  if (decoded.type === "probe") assert.deepEqual(decoded.mac, MAC);

  // Payloads are zero-copy views: a receiver must not reuse the datagram buffer while it holds one.
  const data = encodeFrame({ type: "data", from: "a", payload: new Uint8Array([1]) });
  const view = decodeFrame(data);
  data[data.length - 1] = 2;
  assert.equal(view.type, "data");
  if (view.type === "data") assert.deepEqual([...view.payload], [2]);
});

Deno.test("isFrame tells frames from coordinator text by the first byte", () => {
  assert.equal(isFrame(new Uint8Array()), false);
  assert.equal(isFrame(new Uint8Array([0x00])), true);
  assert.equal(isFrame(new Uint8Array([0x1f])), true);
  assert.equal(isFrame(new Uint8Array([0x20])), false);
  assert.equal(isFrame(new Uint8Array([0xff])), false);
  for (const value of Object.values(FrameType)) {
    assert.equal(isFrame(new Uint8Array([value])), true, value.toString(16));
  }
  for (
    const text of [
      "login,a,1.2.3.4:5",
      "heartbeat,a,AAAAAAAAAAAAAAAAAAAAAA",
      "connect,a,b",
      "whoami",
      "Accept,7000",
      "You,[::1]:1",
      "Introduce,b,1.2.3.4:5,1.2.3.4:5,k,t",
      "Unavailable,b,offline",
      "end",
      "张",
    ]
  ) {
    assert.equal(isFrame(encoder.encode(text)), false, text);
  }
});

Deno.test("encodeFrame refuses names over 255 bytes and lone surrogates", () => {
  // 255 bytes is the limit, counted in UTF-8 bytes, not characters.
  assert.equal(
    encodeFrame({ type: "hs1", from: "x".repeat(255), payload: MAC, mac1: MAC, mac2: MAC })[1],
    255,
  );
  assert.equal(
    encodeFrame({ type: "hs1", from: "张".repeat(85), payload: MAC, mac1: MAC, mac2: MAC })[1],
    255,
  );
  const tooLong: [OutFrame, number][] = [
    [{ type: "data", from: "x".repeat(256), payload: MAC }, 256],
    [{ type: "hs2", from: "张".repeat(86), payload: MAC, mac1: MAC }, 258],
    [{ type: "probe", from: "😀".repeat(64), txid: 1, mac: MAC }, 256],
    [{ type: "relay", to: "y".repeat(300), inner: MAC }, 300],
    [{ type: "relayed", from: "z".repeat(1000), inner: MAC }, 1000],
  ];
  for (const [frame, n] of tooLong) {
    assertFrameError(
      () => encodeFrame(frame),
      `Cannot encode frame: name is ${n} bytes, the limit is 255`,
    );
  }
  assertFrameError(
    () => frameHeader(FrameType.DATA, "n".repeat(256)),
    "Cannot encode frame: name is 256 bytes, the limit is 255",
  );
  for (const name of ["\ud800", "a\udc00b", "😀".slice(0, 1)]) {
    for (
      const fn of [
        () => encodeFrame({ type: "data", from: name, payload: MAC }),
        () => encodeFrame({ type: "relay", to: name, inner: MAC }),
        () => frameHeader(FrameType.PROBE, name),
      ]
    ) {
      assertFrameError(
        fn,
        "Cannot encode frame: the name has a lone surrogate, which UTF-8 cannot encode",
      );
    }
  }
});

Deno.test("encodeFrame refuses bad txids and MAC lengths", () => {
  for (const txid of [-1, 2 ** 32, 1.5, NaN, Infinity, -Infinity]) {
    for (const type of ["probe", "probe-ack"] as const) {
      assertFrameError(
        () => encodeFrame({ type, from: "a", txid, mac: MAC }),
        `Cannot encode ${type}: txid ${txid} is not a u32`,
      );
    }
  }
  for (const n of [0, 15, 17, 32]) {
    assertFrameError(
      () => encodeFrame({ type: "probe", from: "a", txid: 1, mac: new Uint8Array(n) }),
      `Cannot encode probe: MAC is ${n} bytes, not 16`,
    );
  }
  assertFrameError(
    () => encodeFrame({ type: "probe-ack", from: "a", txid: 1, mac: new Uint8Array(8) }),
    "Cannot encode probe-ack: MAC is 8 bytes, not 16",
  );
});

Deno.test("decodeFrame rejects truncated headers", () => {
  assertFrameError(
    () => decodeFrame(new Uint8Array()),
    "Cannot decode frame: 0 bytes is shorter than a header",
  );
  assertFrameError(
    () => decodeFrame(new Uint8Array([0x15])),
    "Cannot decode frame: 1 bytes is shorter than a header",
  );
  const data = encodeFrame({ type: "data", from: "alice", payload: new Uint8Array() });
  // Cut anywhere inside the name: the name length points past the end.
  for (let n = 2; n < data.length; n++) {
    assertFrameError(
      () => decodeFrame(data.subarray(0, n)),
      `Cannot decode frame: ${n} bytes is too short for its name`,
    );
  }
  assertFrameError(
    () => decodeFrame(new Uint8Array([0x18, 255, 0x61])),
    "Cannot decode frame: 3 bytes is too short for its name",
  );
  // Exactly a header, with an empty body, is a frame.
  assert.deepEqual(decodeFrame(data), {
    type: "data",
    from: "alice",
    payload: new Uint8Array(),
    header: data,
    raw: data,
  });
});

Deno.test("decodeFrame requires a probe body of exactly txid and MAC", () => {
  const probe = encodeFrame({ type: "probe", from: "ab", txid: 5, mac: MAC });
  for (const type of [FrameType.PROBE, FrameType.PROBE_ACK]) {
    for (let cut = 1; cut <= 20; cut++) {
      const bytes = probe.slice(0, probe.length - cut);
      bytes[0] = type;
      assertFrameError(
        () => decodeFrame(bytes),
        `Cannot decode probe: body is ${20 - cut} bytes, expected 20`,
      );
    }
    const longer = new Uint8Array([...probe, 0]);
    longer[0] = type;
    assertFrameError(
      () => decodeFrame(longer),
      "Cannot decode probe: body is 21 bytes, expected 20",
    );
  }
});

Deno.test("decodeFrame requires the MACs of handshake frames and a cookie's exact body", () => {
  const body = (n: number) => new Uint8Array(n).fill(3);
  for (const [type, macs] of [["hs1", 32], ["hs2", 16], ["hs3", 16]] as const) {
    for (let n = 0; n < macs; n++) {
      const bytes = new Uint8Array([FrameType[type.toUpperCase() as "HS1"], 1, 0x61, ...body(n)]);
      assertFrameError(
        () => decodeFrame(bytes),
        `Cannot decode ${type}: body is ${n} bytes, shorter than its ${macs} of MACs`,
      );
    }
    // Just the MACs: an empty Noise message, which the handshake then refuses.
    const bare = decodeFrame(
      new Uint8Array([FrameType[type.toUpperCase() as "HS1"], 0, ...body(macs)]),
    );
    assert.equal(bare.type === type && bare.payload.length, 0);
  }
  for (const n of [0, 16, 31, 33]) {
    assertFrameError(
      () => decodeFrame(new Uint8Array([FrameType.COOKIE, 1, 0x62, ...body(n)])),
      `Cannot decode cookie: body is ${n} bytes, expected 32`,
    );
  }
});

Deno.test("encodeFrame refuses MACs and cookies of the wrong length", () => {
  const short = new Uint8Array(15);
  const payload = new Uint8Array(32);
  assertFrameError(
    () => encodeFrame({ type: "hs1", from: "a", payload, mac1: short, mac2: MAC2 }),
    "Cannot encode hs1 mac1: it is 15 bytes, not 16",
  );
  assertFrameError(
    () => encodeFrame({ type: "hs1", from: "a", payload, mac1: MAC, mac2: new Uint8Array(17) }),
    "Cannot encode hs1 mac2: it is 17 bytes, not 16",
  );
  assertFrameError(
    () => encodeFrame({ type: "hs3", from: "a", payload, mac1: short }),
    "Cannot encode hs3 mac1: it is 15 bytes, not 16",
  );
  assertFrameError(
    () => encodeFrame({ type: "cookie", from: "a", cookie: short, mac: MAC }),
    "Cannot encode cookie: it is 15 bytes, not 16",
  );
  assertFrameError(
    () => encodeFrame({ type: "cookie", from: "a", cookie: MAC, mac: short }),
    "Cannot encode cookie mac: it is 15 bytes, not 16",
  );
});

Deno.test("handshakeSigned is what a handshake frame's mac1 covers", () => {
  const frame = decodeFrame(
    encodeFrame({ type: "hs2", from: "张伟", payload: new Uint8Array([1, 2]), mac1: MAC }),
  );
  assert.ok(frame.type === "hs2");
  assert.deepEqual(handshakeSigned("hs2", "张伟", new Uint8Array([1, 2])), frame.signed);
  assert.deepEqual(frame.mac1, MAC);
});

Deno.test("decodeFrame rejects unknown types", () => {
  const known = new Set<number>(Object.values(FrameType));
  const frame = encodeFrame({ type: "hs1", from: "a", payload: MAC, mac1: MAC, mac2: MAC2 });
  for (let type = 0; type < 256; type++) {
    if (known.has(type)) continue;
    const bytes = frame.slice();
    bytes[0] = type;
    assertFrameError(
      () => decodeFrame(bytes),
      `Cannot decode frame: unknown type 0x${type.toString(16)}`,
    );
  }
});

Deno.test("decodeFrame rejects names that are not UTF-8, and keeps a leading BOM", () => {
  const bad = [
    [0xc3, 0x28], // a lead byte followed by ASCII
    [0xff],
    [0xc0, 0xaf], // overlong "/"
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [...encoder.encode("张伟").subarray(0, 4)], // cut in the middle of a character
  ];
  for (const name of bad) {
    for (const type of [FrameType.PROBE, FrameType.DATA, FrameType.RELAY, FrameType.RELAYED]) {
      assertFrameError(
        () => decodeFrame(new Uint8Array([type, name.length, ...name, ...new Uint8Array(20)])),
        "Cannot decode frame: the name is not valid UTF-8",
      );
    }
  }
  const bom = decodeFrame(new Uint8Array([0x19, 4, 0xef, 0xbb, 0xbf, 0x61, 9]));
  assert.deepEqual(bom, { type: "relayed", from: "\ufeffa", inner: new Uint8Array([9]) });
});

const NAME_PIECES = ["a", "bob", "张", "😀", "\ufeff", " ", ",", "\u0000", "é"];

function randomName(rand: () => number): string {
  let name = "";
  const n = Math.floor(rand() * 12);
  for (let i = 0; i < n; i++) name += NAME_PIECES[Math.floor(rand() * NAME_PIECES.length)];
  return name;
}

const OUT_TYPES = [
  "probe",
  "probe-ack",
  "hs1",
  "hs2",
  "hs3",
  "data",
  "cookie",
  "relay",
  "relayed",
] as const;

function randomMac(rand: () => number): Uint8Array {
  return Uint8Array.from({ length: HANDSHAKE_MAC_LENGTH }, () => Math.floor(rand() * 256));
}

function randomFrame(rand: () => number): OutFrame {
  const type = OUT_TYPES[Math.floor(rand() * OUT_TYPES.length)];
  const name = randomName(rand);
  switch (type) {
    case "probe":
    case "probe-ack": {
      const mac = new Uint8Array(PROBE_MAC_LENGTH);
      for (let i = 0; i < mac.length; i++) mac[i] = Math.floor(rand() * 256);
      return { type, from: name, txid: Math.floor(rand() * 2 ** 32), mac };
    }
    case "relay":
      return { type, to: name, inner: randomBytes(rand, 80) };
    case "relayed":
      return { type, from: name, inner: randomBytes(rand, 80) };
    case "hs1":
      return {
        type,
        from: name,
        payload: randomBytes(rand, 80),
        mac1: randomMac(rand),
        mac2: randomMac(rand),
      };
    case "hs2":
    case "hs3":
      return { type, from: name, payload: randomBytes(rand, 80), mac1: randomMac(rand) };
    case "cookie":
      return { type, from: name, cookie: randomMac(rand), mac: randomMac(rand) };
    case "data":
      return { type, from: name, payload: randomBytes(rand, 80) };
  }
}

Deno.test("fuzz: random frames round-trip through encode and decode", () => {
  const rand = prng(0xfa11);
  for (let i = 0; i < 3000; i++) {
    const frame = randomFrame(rand);
    const bytes = encodeFrame(frame);
    assert.deepEqual(decodeFrame(bytes), expectedDecode(frame, bytes));
  }
});

/** Bytes edits favour: small values hit the type and name-length bytes; the rest, UTF-8 edges. */
const FRAME_SPECIAL: readonly number[] = [
  ...Array.from({ length: 0x20 }, (_, i) => i),
  ...[0x80, 0xbf, 0xc0, 0xc3, 0xe5, 0xed, 0xef, 0xf0, 0xf4, 0xff],
];

Deno.test("fuzz: decodeFrame throws only FrameError, and what decodes re-encodes exactly", () => {
  const rand = prng(0xf4a3e);
  const corpus = Array.from({ length: 32 }, () => encodeFrame(randomFrame(rand)));
  let decoded = 0;
  const types = new Set<string>();
  for (let i = 0; i < 6000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = randomBytes(rand, 64);
      // Bias towards plausible headers so the fuzzer gets past the first checks.
      if (bytes.length > 0 && rand() < 0.8) bytes[0] = 0x10 + Math.floor(rand() * 10);
      if (bytes.length > 1 && rand() < 0.7) bytes[1] = Math.floor(rand() * bytes.length);
    } else {
      bytes = mutate(rand, corpus[(i >> 1) % corpus.length], FRAME_SPECIAL);
    }
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (err) {
      if (err instanceof FrameError) continue;
      assert.fail(`unexpected ${err} for input [${bytes}]`);
    }
    decoded++;
    types.add(frame.type);
    assert.ok(isFrame(bytes));
    // Whatever decodes is canonical: it encodes back to the very same bytes.
    assert.deepEqual(encodeFrame(frame), bytes);
    if ("header" in frame) {
      assert.deepEqual(frame.header, frameHeader(bytes[0], frame.from));
      assert.equal(frame.raw, bytes);
    }
  }
  assert.ok(
    decoded > 500,
    `only ${decoded} inputs decoded: the fuzzer is not reaching the decoder`,
  );
  assert.equal(types.size, OUT_TYPES.length, `decoded only ${[...types]}`);
});

Deno.test("a TURN_CANDIDATE carries a relayed IPv4 or IPv6 endpoint and a MAC over the rest", () => {
  for (
    const endpoint of [{ host: "198.51.100.3", port: 49152 }, { host: "2001:db8::3", port: 1 }]
  ) {
    const frame: OutFrame = { type: "turn-candidate", from: "alice", endpoint, mac: MAC };
    const bytes = encodeFrame(frame);
    assert.equal(bytes[0], 0x1a);
    assert.deepEqual(decodeFrame(bytes), expectedDecode(frame, bytes));
  }
  assertFrameError(
    () => decodeFrame(new Uint8Array([0x1a, 1, 0x61, 0, 1, 1, 2, 3, ...MAC])),
    "Cannot decode turn-candidate: body is 21 bytes, not a port, an IPv4 or IPv6 address and a MAC",
  );
  assertFrameError(
    () =>
      encodeFrame({
        type: "turn-candidate",
        from: "a",
        endpoint: { host: "x", port: 1 },
        mac: MAC,
      }),
    'Cannot encode turn-candidate: "x" is not an IP address',
  );
});
