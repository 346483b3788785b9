import assert from "node:assert/strict";
import {
  decodeMailPayload,
  encodeMailPayload,
  MailPayloadError,
  MAX_RECEIPT_UIDS,
} from "../../lib/protocol/mailbox_payload.ts";
import { mutate } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

Deno.test("mailbox payload: messages and receipts round-trip", () => {
  const message = {
    kind: "message",
    from: "张伟",
    uid: "aB-_9",
    time: 1_765_000_000_123,
    text: "hi, 🙂\n",
  } as const;
  assert.deepEqual(decodeMailPayload(encodeMailPayload(message)), message);
  const empty = { ...message, text: "" };
  assert.deepEqual(decodeMailPayload(encodeMailPayload(empty)), empty);
  const receipt = {
    kind: "receipt",
    from: "bob",
    uid: "r1",
    time: 0,
    uids: Array.from({ length: MAX_RECEIPT_UIDS }, (_, i) => `u${i}`),
  } as const;
  assert.deepEqual(decodeMailPayload(encodeMailPayload(receipt)), receipt);
});

Deno.test("mailbox payload: bad values are refused when encoding", () => {
  const ok = { kind: "message", from: "alice", uid: "u1", time: 1, text: "x" } as const;
  assert.throws(() => encodeMailPayload({ ...ok, from: "a,b" }), MailPayloadError);
  assert.throws(() => encodeMailPayload({ ...ok, uid: "" }), /bad uid/);
  assert.throws(() => encodeMailPayload({ ...ok, uid: "x".repeat(65) }), /bad uid/);
  assert.throws(() => encodeMailPayload({ ...ok, time: -1 }), /bad time/);
  assert.throws(() => encodeMailPayload({ ...ok, time: 1.5 }), /bad time/);
  assert.throws(
    () =>
      encodeMailPayload({
        kind: "receipt",
        from: "bob",
        uid: "r",
        time: 0,
        uids: new Array(MAX_RECEIPT_UIDS + 1).fill("u"),
      }),
    /more than/,
  );
});

Deno.test("mailbox payload: malformed bytes say what is wrong", () => {
  const good = encodeMailPayload({ kind: "message", from: "alice", uid: "u1", time: 5, text: "x" });
  const at = (i: number, v: number) => {
    const b = good.slice();
    b[i] = v;
    return b;
  };
  assert.throws(() => decodeMailPayload(new Uint8Array()), /truncated/);
  assert.throws(() => decodeMailPayload(at(0, 2)), /version 2/);
  assert.throws(() => decodeMailPayload(at(1, 9)), /unknown kind 9/);
  assert.throws(() => decodeMailPayload(good.subarray(0, 12)), /truncated/);
  assert.throws(
    () => decodeMailPayload(new Uint8Array([...good.subarray(0, good.length - 1), 0xff])),
    /not UTF-8/,
  );
  const receipt = encodeMailPayload({
    kind: "receipt",
    from: "bob",
    uid: "r",
    time: 0,
    uids: ["a"],
  });
  assert.throws(() => decodeMailPayload(new Uint8Array([...receipt, 0])), /after the receipt/);
});

Deno.test("mailbox payload: 20,000 mutated inputs decode or throw MailPayloadError", () => {
  const rand = prng(13);
  const seeds = [
    encodeMailPayload({ kind: "message", from: "alice", uid: "u1", time: 5, text: "hello" }),
    encodeMailPayload({ kind: "receipt", from: "bob", uid: "r", time: 9, uids: ["a", "b"] }),
  ];
  for (let i = 0; i < 20_000; i++) {
    const input = mutate(rand, seeds[i % 2]);
    try {
      const value = decodeMailPayload(input);
      assert.deepEqual(decodeMailPayload(encodeMailPayload(value)), value);
    } catch (err) {
      if (!(err instanceof MailPayloadError)) throw err;
    }
  }
});
