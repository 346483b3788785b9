import assert from "node:assert/strict";
import {
  type ChatMessage,
  ChatMessageError,
  decodeChatMessage,
  encodeChatMessage,
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
  for (const kind of [2, 3, 0x7f, 0xff]) {
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

const TEXT_PIECES = ["a", " ", "张伟", "😀", "\ufeff", "\n", ",", "é", "\u0000"];

Deno.test("fuzz: random messages round-trip", () => {
  const rand = prng(0xc4a7);
  for (let i = 0; i < 3000; i++) {
    let text = "";
    const n = Math.floor(rand() * 20);
    for (let j = 0; j < n; j++) text += TEXT_PIECES[Math.floor(rand() * TEXT_PIECES.length)];
    const msg = { group: rand() < 0.5, id: Math.floor(rand() * 2 ** 32), text };
    assert.deepEqual(decodeChatMessage(encodeChatMessage(msg)), msg);
  }
});

Deno.test("fuzz: decodeChatMessage throws only ChatMessageError; what decodes re-encodes", () => {
  const rand = prng(0x7e57);
  const corpus = [
    encodeChatMessage({ group: false, id: 1, text: "hello" }),
    encodeChatMessage({ group: true, id: 0xdeadbeef, text: "你好 😀" }),
    encoder.encode("\u0000\u0000\u0000\u0000\u0001\ufeffé"),
  ];
  const special = [0, 1, 2, 0x80, 0xbf, 0xc0, 0xc3, 0xe5, 0xed, 0xef, 0xf0, 0xf4, 0xff];
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    let bytes: number[];
    if (i % 2 === 0) {
      bytes = Array.from({ length: Math.floor(rand() * 24) }, () => Math.floor(rand() * 256));
      if (bytes.length > 0 && rand() < 0.7) bytes[0] = Math.floor(rand() * 3);
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
