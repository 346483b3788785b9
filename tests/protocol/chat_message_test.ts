import assert from "node:assert/strict";
import {
  type ChatMessage,
  ChatMessageError,
  decodeChatMessage,
  encodeChatMessage,
  isUid,
  randomUid,
} from "../../lib/protocol/chat_message.ts";
import { prng } from "../support/prng.ts";

const encoder = new TextEncoder();

function assertChatError(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ChatMessageError, `expected ChatMessageError, got ${err}`);
    assert.equal(err.name, "ChatMessageError");
    assert.equal(err.message, message);
    return true;
  });
}

Deno.test("encodeChatMessage writes kind, big-endian id, then the UTF-8 text", () => {
  assert.deepEqual(
    [...encodeChatMessage({ group: false, id: 0x01020304, text: "hi" })],
    [0, 1, 2, 3, 4, 0x68, 0x69],
  );
  assert.deepEqual(
    [...encodeChatMessage({ group: true, id: 0xfffffffe, text: "张" })],
    [1, 0xff, 0xff, 0xff, 0xfe, 0xe5, 0xbc, 0xa0],
  );
  assert.deepEqual([...encodeChatMessage({ group: false, id: 0, text: "" })], [0, 0, 0, 0, 0]);
});

Deno.test("chat messages round-trip", () => {
  const messages: ChatMessage[] = [
    { group: false, id: 1, text: "hi" },
    { group: true, id: 0xffff_ffff, text: "你好，世界 😀" },
    { group: false, id: 0, text: "" },
    { group: true, id: 7, text: "\ufeffa leading BOM is text, not a marker" },
    { group: false, id: 8, text: "a,b;c\nd\u0000e\u2028\ufffd" },
    { group: false, id: 9, text: "x".repeat(5000) },
  ];
  for (const msg of messages) {
    const bytes = encodeChatMessage(msg);
    assert.deepEqual(decodeChatMessage(bytes), msg);
  }
});

Deno.test("decodeChatMessage reads a message inside a larger buffer", () => {
  const bytes = encodeChatMessage({ group: true, id: 0x0a0b0c0d, text: "ok" });
  const big = new Uint8Array(bytes.length + 9).fill(0xff);
  big.set(bytes, 5);
  assert.deepEqual(decodeChatMessage(big.subarray(5, 5 + bytes.length)), {
    group: true,
    id: 0x0a0b0c0d,
    text: "ok",
  });
});

Deno.test("encodeChatMessage refuses ids that are not a u32", () => {
  for (const id of [-1, 2 ** 32, 1.5, NaN, Infinity, -Infinity]) {
    assertChatError(
      () => encodeChatMessage({ group: false, id, text: "x" }),
      `Cannot encode chat message: id ${id} is not a u32`,
    );
  }
});

Deno.test("decodeChatMessage rejects short input, unknown kinds and bad UTF-8", () => {
  for (let n = 0; n < 5; n++) {
    assertChatError(
      () => decodeChatMessage(new Uint8Array(n)),
      `Cannot decode chat message: ${n} bytes is too short`,
    );
  }
  for (const kind of [4, 0x7f, 0xff]) {
    assertChatError(
      () => decodeChatMessage(new Uint8Array([kind, 0, 0, 0, 1, 0x61])),
      `Cannot decode chat message: unknown kind ${kind}`,
    );
  }
  const cut = encodeChatMessage({ group: false, id: 1, text: "张" }).subarray(0, 7);
  for (
    const bytes of [
      cut,
      new Uint8Array([0, 0, 0, 0, 1, 0xff]),
      new Uint8Array([1, 0, 0, 0, 1, 0xc0, 0xaf]), // overlong "/"
      new Uint8Array([0, 0, 0, 0, 1, 0xed, 0xa0, 0x80]), // an encoded surrogate
      new Uint8Array([0, 0, 0, 0, 1, 0x61, 0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
    ]
  ) {
    assertChatError(
      () => decodeChatMessage(bytes),
      "Cannot decode chat message: the text is not valid UTF-8",
    );
  }
});

const UID = "00112233445566778899aabbccddeeff";

Deno.test("kinds 2 and 3 carry the uid and the send time after the id", () => {
  const bytes = encodeChatMessage({ group: true, id: 5, text: "hi", uid: UID, time: 0x0102_0304 });
  assert.deepEqual(
    [...bytes],
    [3, 0, 0, 0, 5, ...Array.from({ length: 16 }, (_, i) => i * 0x11), 0, 0, 0, 0, 1, 2, 3, 4]
      .concat([0x68, 0x69]),
  );
  assert.equal(encodeChatMessage({ group: false, id: 5, text: "", uid: UID, time: 1 })[0], 2);
  const msg = { group: false, id: 9, text: "张 😀", uid: randomUid(), time: Date.now() };
  assert.deepEqual(decodeChatMessage(encodeChatMessage(msg)), msg);
});

Deno.test("randomUid gives 32 hex digits, different each time", () => {
  const a = randomUid();
  assert.ok(isUid(a), a);
  assert.notEqual(a, randomUid());
  for (const bad of ["", UID.toUpperCase(), UID.slice(1), UID + "0", "g".repeat(32)]) {
    assert.equal(isUid(bad), false, bad);
  }
});

Deno.test("encodeChatMessage refuses a bad uid or time, or one without the other", () => {
  for (const uid of ["x", UID.toUpperCase(), undefined]) {
    assertChatError(
      () => encodeChatMessage({ group: false, id: 1, text: "", uid, time: 1 }),
      `Cannot encode chat message: uid ${uid} is not 32 lowercase hex digits`,
    );
  }
  for (const time of [-1, 1.5, 2 ** 53, NaN, undefined]) {
    assertChatError(
      () => encodeChatMessage({ group: false, id: 1, text: "", uid: UID, time }),
      `Cannot encode chat message: time ${time} is not ms since 1970`,
    );
  }
});

Deno.test("decodeChatMessage rejects kinds 2 and 3 too short for their header, or a huge time", () => {
  const whole = encodeChatMessage({ group: false, id: 1, text: "", uid: UID, time: 7 });
  for (const n of [5, 20, 28]) {
    assertChatError(
      () => decodeChatMessage(whole.subarray(0, n)),
      `Cannot decode chat message: ${n} bytes is too short for kind 2`,
    );
  }
  const huge = whole.slice();
  huge.fill(0xff, 21, 29);
  assertChatError(
    () => decodeChatMessage(huge),
    `Cannot decode chat message: time ${2n ** 64n - 1n} is out of range`,
  );
});

const TEXT_PIECES = ["a", " ", "张伟", "😀", "\ufeff", "\n", ",", "é", "\u0000"];

Deno.test("fuzz: random messages round-trip", () => {
  const rand = prng(0xc4a7);
  for (let i = 0; i < 3000; i++) {
    let text = "";
    const n = Math.floor(rand() * 20);
    for (let j = 0; j < n; j++) text += TEXT_PIECES[Math.floor(rand() * TEXT_PIECES.length)];
    const msg: ChatMessage = { group: rand() < 0.5, id: Math.floor(rand() * 2 ** 32), text };
    if (rand() < 0.5) {
      msg.uid = randomUid();
      msg.time = Math.floor(rand() * 2 ** 53);
    }
    assert.deepEqual(decodeChatMessage(encodeChatMessage(msg)), msg);
  }
});

Deno.test("fuzz: decodeChatMessage throws only ChatMessageError; what decodes re-encodes", () => {
  const rand = prng(0x7e57);
  const corpus = [
    encodeChatMessage({ group: false, id: 1, text: "hello" }),
    encodeChatMessage({ group: true, id: 0xdeadbeef, text: "你好 😀" }),
    encoder.encode("\u0000\u0000\u0000\u0000\u0001\ufeffé"),
    encodeChatMessage({ group: false, id: 2, text: "hé", uid: UID, time: 1_700_000_000_000 }),
    encodeChatMessage({ group: true, id: 3, text: "", uid: randomUid(), time: 0 }),
  ];
  const special = [0, 1, 2, 0x80, 0xbf, 0xc0, 0xc3, 0xe5, 0xed, 0xef, 0xf0, 0xf4, 0xff];
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    let bytes: number[];
    if (i % 2 === 0) {
      bytes = Array.from({ length: Math.floor(rand() * 48) }, () => Math.floor(rand() * 256));
      if (bytes.length > 0 && rand() < 0.7) bytes[0] = Math.floor(rand() * 5);
    } else {
      bytes = [...corpus[(i >> 1) % corpus.length]];
      const edits = 1 + Math.floor(rand() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * (bytes.length + 1));
        const byte = rand() < 0.6
          ? special[Math.floor(rand() * special.length)]
          : Math.floor(rand() * 256);
        const op = Math.floor(rand() * 4);
        if (op === 0 && at < bytes.length) bytes[at] = byte;
        else if (op === 1) bytes.splice(at, 0, byte);
        else if (op === 2) bytes.splice(at, 1);
        else bytes.length = at;
      }
    }
    const input = new Uint8Array(bytes);
    let msg: ChatMessage;
    try {
      msg = decodeChatMessage(input);
    } catch (err) {
      if (err instanceof ChatMessageError) continue;
      assert.fail(`unexpected ${err} for input [${bytes}]`);
    }
    decoded++;
    assert.deepEqual(encodeChatMessage(msg), input);
  }
  assert.ok(
    decoded > 500,
    `only ${decoded} inputs decoded: the fuzzer is not reaching the decoder`,
  );
});
