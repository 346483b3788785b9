import assert from "node:assert/strict";
import {
  answerBinding,
  Attr,
  attribute,
  BINDING,
  crc32,
  decodeAddress,
  decodeStun,
  encodeAddress,
  encodeBindingRequest,
  encodeStun,
  HEADER_LENGTH,
  integrityMatches,
  integrityOffset,
  isStun,
  MAGIC_COOKIE,
  MAX_MESSAGE_BYTES,
  MAX_STUN_BYTES,
  parseBindingAnswer,
  StunError,
  type StunMessage,
  unknownRequired,
} from "../../lib/protocol/stun.ts";
import { isFrame } from "../../lib/protocol/frame.ts";
import { prng } from "../support/prng.ts";

const hex = (s: string) => Uint8Array.from(s.match(/[0-9a-f]{2}/gi)!.map((b) => parseInt(b, 16)));
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

// RFC 5769 ("Test Vectors for STUN", April 2010), sections 2.1-2.3, byte for byte. Their
// MESSAGE-INTEGRITY is keyed with the short-term password below; FINGERPRINT is checked by
// decodeStun.
const PASSWORD = new TextEncoder().encode("VOkJxbRl1RmTxUk/WvJxBt");
const TXID = hex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae");
const SAMPLE_REQUEST = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);
const SAMPLE_IPV4_RESPONSE = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);
const SAMPLE_IPV6_RESPONSE = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);
const V4 = { host: "192.0.2.1", port: 32853 };
const V6 = { host: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 };

Deno.test("RFC 5769 2.1: the sample request decodes, its FINGERPRINT checks out", () => {
  assert.ok(isStun(SAMPLE_REQUEST));
  const msg = decodeStun(SAMPLE_REQUEST);
  assert.equal(msg.method, BINDING);
  assert.equal(msg.class, "request");
  assert.equal(msg.classic, false);
  assert.deepEqual(msg.transactionId, TXID);
  assert.equal(text(attribute(msg, Attr.SOFTWARE)), "STUN test client");
  assert.equal(text(attribute(msg, Attr.USERNAME)), "evtj:h6vY");
  assert.deepEqual(msg.attributes.map((a) => a.type), [
    Attr.SOFTWARE,
    Attr.PRIORITY,
    Attr.ICE_CONTROLLED,
    Attr.USERNAME,
    Attr.MESSAGE_INTEGRITY,
    Attr.FINGERPRINT,
  ]);
  // Everything in it is understood by a server without credentials: it is answered.
  assert.deepEqual(unknownRequired(msg), []);
  const answer = answerBinding(SAMPLE_REQUEST, V4, { software: "p2p" })!;
  assert.deepEqual(parseBindingAnswer(answer, TXID), V4);
  assert.equal(text(attribute(decodeStun(answer), Attr.SOFTWARE)), "p2p");
});

Deno.test("RFC 5769 2.2 and 2.3: XOR-MAPPED-ADDRESS of both families, to the byte", () => {
  for (const [bytes, ep] of [[SAMPLE_IPV4_RESPONSE, V4], [SAMPLE_IPV6_RESPONSE, V6]] as const) {
    const msg = decodeStun(bytes);
    assert.equal(msg.class, "success");
    assert.equal(text(attribute(msg, Attr.SOFTWARE)), "test vector");
    assert.deepEqual(parseBindingAnswer(bytes, TXID), ep);
    // Our encoding of the address is the vector's.
    const value = attribute(msg, Attr.XOR_MAPPED_ADDRESS)!;
    assert.deepEqual(encodeAddress(ep, { xor: { transactionId: TXID } }), value);
    assert.deepEqual(decodeAddress(value, { xor: { transactionId: TXID } }), ep);
    // Not for another transaction.
    assert.equal(parseBindingAnswer(bytes, new Uint8Array(12)), undefined);
  }
  assert.deepEqual(
    encodeAddress(V4, { xor: { transactionId: TXID } }),
    hex("00 01 a1 47 e1 12 a6 43"),
  );
});

Deno.test("RFC 5769: MESSAGE-INTEGRITY of the three vectors checks out, and only with the key", () => {
  for (const vector of [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE]) {
    const at = integrityOffset(decodeStun(vector))!;
    assert.equal(at, vector.length - 8 - 24);
    assert.ok(integrityMatches(vector, at, PASSWORD));
    assert.ok(!integrityMatches(vector, at, new TextEncoder().encode("wrong")));
    const bad = vector.slice();
    bad[HEADER_LENGTH + 5] ^= 1;
    assert.ok(!integrityMatches(bad, at, PASSWORD));
    assert.ok(!integrityMatches(vector.subarray(0, at + 20), at, PASSWORD));
  }
});

Deno.test("encodeStun: MESSAGE-INTEGRITY before FINGERPRINT, both verifiable; size is bounded", () => {
  const msg: StunMessage = {
    method: BINDING,
    class: "success",
    transactionId: TXID,
    classic: false,
    attributes: [{
      type: Attr.XOR_MAPPED_ADDRESS,
      value: encodeAddress(V4, { xor: { transactionId: TXID } }),
    }],
  };
  const bytes = encodeStun(msg, { integrityKey: PASSWORD, fingerprint: true });
  assert.equal(bytes.length, HEADER_LENGTH + 12 + 24 + 8);
  const back = decodeStun(bytes);
  assert.deepEqual(back.attributes.map((a) => a.type), [
    Attr.XOR_MAPPED_ADDRESS,
    Attr.MESSAGE_INTEGRITY,
    Attr.FINGERPRINT,
  ]);
  assert.ok(integrityMatches(bytes, integrityOffset(back)!, PASSWORD));
  // Without FINGERPRINT the HMAC is the same: it never covers what follows it.
  const plain = encodeStun(msg, { integrityKey: PASSWORD });
  assert.deepEqual(plain.subarray(HEADER_LENGTH), bytes.subarray(HEADER_LENGTH, bytes.length - 8));
  assert.equal(integrityOffset(decodeStun(encodeStun(msg))), undefined);
  const big = { type: 0x0013, value: new Uint8Array(0xffff) };
  assert.throws(() => encodeStun({ ...msg, attributes: [big] }), RangeError);
  const most = { type: 0x0013, value: new Uint8Array(0xfff8) }; // 65,552 bytes in all
  const full = encodeStun({ ...msg, attributes: [most] });
  assert.throws(() => decodeStun(full), StunError);
  assert.equal(decodeStun(full, { maxBytes: MAX_MESSAGE_BYTES }).attributes.length, 1);
  assert.throws(() => encodeAddress({ host: "192.0.2.1", port: 65536 }), RangeError);
});

Deno.test("FINGERPRINT: CRC-32 xor STUN; a changed byte or a misplaced one is refused", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  for (const vector of [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE]) {
    const bad = vector.slice();
    bad[30] ^= 1;
    assert.throws(() => decodeStun(bad), /FINGERPRINT does not match/);
  }
  // Our own messages carry a good one.
  const request = encodeBindingRequest({ transactionId: TXID });
  assert.equal(decodeStun(request).attributes.at(-1)?.type, Attr.FINGERPRINT);
  const msg: StunMessage = {
    method: BINDING,
    class: "request",
    transactionId: TXID,
    classic: false,
    attributes: [{ type: Attr.FINGERPRINT, value: new Uint8Array(4) }, {
      type: Attr.SOFTWARE,
      value: new Uint8Array(4),
    }],
  };
  assert.throws(() => decodeStun(encodeStun(msg)), /FINGERPRINT is not the last/);
});

Deno.test("header: types, classes and methods round-trip; lengths must agree", () => {
  for (const cls of ["request", "indication", "success", "error"] as const) {
    for (const method of [1, 0x3, 0x7f]) {
      const msg: StunMessage = {
        method,
        class: cls,
        transactionId: TXID,
        classic: false,
        attributes: [],
      };
      assert.deepEqual(decodeStun(encodeStun(msg)), msg);
    }
  }
  assert.deepEqual([
    ...encodeStun({
      method: 1,
      class: "error",
      transactionId: TXID,
      classic: false,
      attributes: [],
    }).subarray(0, 2),
  ], [0x01, 0x11]);
  // Methods from 0x80 on put a bit in the first byte: not ours to read (no frame looks like STUN).
  const high = encodeStun({
    method: 0x80,
    class: "request",
    transactionId: TXID,
    classic: false,
    attributes: [],
  });
  assert.equal(isStun(high), false);
  const request = encodeBindingRequest({ transactionId: TXID });
  assert.equal(isStun(request.subarray(0, 19)), false);
  assert.equal(isStun(request.subarray(0, request.length - 4)), false, "length disagrees");
  assert.throws(() => decodeStun(request.subarray(0, request.length - 4)), StunError);
  const truncated = encodeStun({
    method: 1,
    class: "request",
    transactionId: TXID,
    classic: false,
    attributes: [{ type: Attr.SOFTWARE, value: new Uint8Array(8) }],
  });
  truncated[HEADER_LENGTH + 3] = 12; // the attribute claims more than there is
  assert.throws(() => decodeStun(truncated), /overruns the message/);
  assert.throws(() => decodeStun(new Uint8Array(MAX_STUN_BYTES + 4)), /over 1280/);
  // No text message and no peer frame looks like STUN, nor STUN like a frame it is not.
  assert.equal(isStun(new TextEncoder().encode("login,alice,192.0.2.1:4000,aaaaaaa")), false);
  assert.ok(isFrame(request), "STUN's first byte is below 0x20 too: check STUN first");
  assert.ok(request[0] <= 1);
});

Deno.test("answerBinding: what is answered, and never more than the rule allows", () => {
  // A bare 20-byte request (turnutils_stunclient's) gets the bare answer: 32 bytes for IPv4.
  const bare = encodeStun({
    method: 1,
    class: "request",
    transactionId: TXID,
    classic: false,
    attributes: [],
  });
  assert.equal(bare.length, 20);
  const a4 = answerBinding(bare, V4, { software: "p2p" })!;
  assert.equal(a4.length, 32);
  assert.deepEqual(parseBindingAnswer(a4, TXID), V4);
  const a6 = answerBinding(bare, V6, { software: "p2p" })!;
  assert.equal(a6.length, 44);
  assert.deepEqual(parseBindingAnswer(a6, TXID), V6);
  // A padded one gets SOFTWARE and FINGERPRINT too, within its own length.
  const padded = encodeBindingRequest({ transactionId: TXID, padTo: 64 });
  assert.equal(padded.length, 64);
  for (const ep of [V4, V6]) {
    const full = answerBinding(padded, ep, { software: "p2p" })!;
    assert.ok(full.length <= padded.length, `${full.length} bytes`);
    const msg = decodeStun(full);
    assert.deepEqual(msg.attributes.map((a) => a.type), [
      Attr.XOR_MAPPED_ADDRESS,
      Attr.SOFTWARE,
      Attr.FINGERPRINT,
    ]);
  }
  // Indications, answers, other methods, malformed messages: nothing.
  for (const cls of ["indication", "success", "error"] as const) {
    const m = encodeStun({
      method: 1,
      class: cls,
      transactionId: TXID,
      classic: false,
      attributes: [],
    });
    assert.equal(answerBinding(m, V4), undefined, cls);
  }
  const allocate = encodeStun({
    method: 3,
    class: "request",
    transactionId: TXID,
    classic: false,
    attributes: [],
  });
  assert.equal(answerBinding(allocate, V4), undefined);
  assert.equal(answerBinding(SAMPLE_REQUEST.subarray(0, 40), V4), undefined);
  // A classic (RFC 3489) request, as `stun` sends it: MAPPED-ADDRESS, no cookie, same 16-byte id.
  const classicId = hex("0101b2024430ae5382a04d0449645a34");
  const classic = hex("000100080101b2024430ae5382a04d0449645a340003000400000000");
  const answer = decodeStun(answerBinding(classic, V4)!);
  assert.equal(answer.classic, true);
  assert.deepEqual(answer.transactionId, classicId);
  assert.deepEqual(decodeAddress(attribute(answer, Attr.MAPPED_ADDRESS)!), V4);
  assert.equal(answerBinding(classic, V4)!.length, 32);
});

Deno.test("answerBinding: unknown comprehension-required attributes get 420, if it fits", () => {
  const withAttrs = (attrs: [number, Uint8Array][]) =>
    encodeStun({
      method: 1,
      class: "request",
      transactionId: TXID,
      classic: false,
      attributes: [
        ...attrs.map(([type, value]) => ({ type, value })),
        { type: Attr.SOFTWARE, value: new Uint8Array(40) },
      ],
    });
  const change = (flags: number) => Uint8Array.of(0, 0, 0, flags);
  const cases: [string, [number, Uint8Array][], number[]][] = [
    ["an unknown required one", [[0x0042, new Uint8Array(4)]], [0x0042]],
    ["RESPONSE-PORT (a reflection)", [[Attr.RESPONSE_PORT, new Uint8Array(4)]], [0x0027]],
    ["CHANGE-REQUEST asking for a change", [[Attr.CHANGE_REQUEST, change(4)]], [0x0003]],
    ["two of them", [[0x0042, new Uint8Array(0)], [0x7fff, new Uint8Array(1)]], [0x42, 0x7fff]],
  ];
  for (const [what, attrs, unknown] of cases) {
    const request = withAttrs(attrs);
    const answer = answerBinding(request, V4)!;
    assert.ok(answer, what);
    assert.ok(answer.length <= request.length);
    const msg = decodeStun(answer);
    assert.equal(msg.class, "error", what);
    const code = attribute(msg, Attr.ERROR_CODE)!;
    assert.equal(code[2] * 100 + code[3], 420);
    assert.equal(text(code.subarray(4)), "Unknown Attribute");
    const list = attribute(msg, Attr.UNKNOWN_ATTRIBUTES)!;
    assert.deepEqual(
      [...new Uint16Array(list.length / 2).keys()].map((i) => list[2 * i] << 8 | list[2 * i + 1]),
      unknown,
    );
    assert.equal(parseBindingAnswer(answer, TXID), undefined, "an error is no address");
  }
  // An unknown optional one is ignored; CHANGE-REQUEST without a change is understood.
  assert.equal(
    decodeStun(answerBinding(withAttrs([[0x8042, new Uint8Array(4)]]), V4)!).class,
    "success",
  );
  assert.equal(
    decodeStun(answerBinding(withAttrs([[Attr.CHANGE_REQUEST, change(0)]]), V4)!).class,
    "success",
  );
  // A short request with an unknown attribute gets no error at all: it would be larger.
  const short = encodeStun({
    method: 1,
    class: "request",
    transactionId: TXID,
    classic: false,
    attributes: [{ type: 0x0042, value: new Uint8Array(0) }],
  });
  assert.equal(answerBinding(short, V4), undefined);
});

/**
 * One to three cheap edits of a copy of `input` (a byte set to a special or random value, a cut,
 * a slice doubled): `mutate` of the shared helpers, lighter, as 100,000 of them must be quick.
 */
function edit(rand: () => number, input: Uint8Array, special: readonly number[]): Uint8Array {
  let bytes = input.slice();
  for (let e = 1 + Math.floor(rand() * 3); e > 0; e--) {
    const at = Math.floor(rand() * bytes.length);
    const kind = rand();
    if (kind < 0.6) {
      bytes[at] = rand() < 0.5 ? special[Math.floor(rand() * special.length)] : rand() * 256;
    } else if (kind < 0.8) bytes = bytes.subarray(0, at);
    else {
      const more = new Uint8Array(bytes.length + 4);
      more.set(bytes);
      more.set(bytes.subarray(at, at + 4), bytes.length);
      bytes = more;
    }
  }
  return bytes;
}

Deno.test("fuzz: 100,000 random and mutated datagrams: decode throws only StunError, answers stay small", () => {
  const rand = prng(0x57a9);
  const corpus = [
    SAMPLE_REQUEST,
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    encodeBindingRequest({ transactionId: TXID, padTo: 64 }),
    encodeStun({
      method: 1,
      class: "request",
      transactionId: TXID,
      classic: false,
      attributes: [],
    }),
    hex("000100080101b2024430ae5382a04d0449645a340003000400000000"),
  ];
  const special = [0x00, 0x01, 0x11, 0x20, 0x21, 0x12, 0xa4, 0x42, 0x80, 0x28, 0x22, 0xff];
  let decoded = 0;
  let answered = 0;
  for (let i = 0; i < 100_000; i++) {
    let bytes: Uint8Array;
    if (i % 4 === 0) {
      bytes = Uint8Array.from({ length: Math.floor(rand() * 120) }, () => rand() * 256);
      if (rand() < 0.5 && bytes.length >= 20) {
        // A plausible header, so that random bytes get past the first checks.
        bytes[0] &= 0x01;
        bytes[2] = 0;
        bytes[3] = bytes.length - 20;
        new DataView(bytes.buffer).setUint32(4, MAGIC_COOKIE);
      }
    } else {
      bytes = edit(rand, corpus[i % corpus.length], special);
    }
    try {
      const msg = decodeStun(bytes);
      decoded++;
      // What decodes encodes again to a message that decodes the same (padding aside).
      if (i % 16 === 1) assert.deepEqual(decodeStun(encodeStun(msg)), msg);
    } catch (err) {
      if (!(err instanceof StunError)) assert.fail(`unexpected ${err} for ${[...bytes]}`);
    }
    const from = i % 2 === 0 ? V4 : V6;
    const answer = answerBinding(bytes, from, { software: "p2p" });
    if (answer) {
      answered++;
      assert.ok(answer.length <= Math.max(bytes.length, from === V4 ? 32 : 44), "amplified");
      assert.ok(isStun(answer));
    }
    parseBindingAnswer(bytes, TXID); // never throws
  }
  assert.ok(decoded > 3000 && answered > 1000, `${decoded} decoded, ${answered} answered`);
});
