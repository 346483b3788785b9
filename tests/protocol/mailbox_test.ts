import assert from "node:assert/strict";
import {
  decodeMailboxReply,
  decodeMailboxRequest,
  encodeMailboxReply,
  encodeMailboxRequest,
  LineSplitter,
  MailboxLineError,
  type MailboxReply,
  type MailboxRequest,
  MAX_SEALED_BYTES,
  PADDED_LINE,
} from "../../lib/protocol/mailbox.ts";
import {
  encodeServerMessage,
  parseServerMessage,
  SeedProtocolError,
} from "../../lib/protocol/seed.ts";
import { mutate } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const key = new Uint8Array(32).fill(7);
const requests: MailboxRequest[] = [
  { type: "deposit", recipient: "bob", sealed: new Uint8Array([1, 2, 3, 250]) },
  { type: "key", name: "张伟" },
  { type: "fetch", name: "bob" },
  { type: "proof", proof: new Uint8Array(16).fill(3) },
  { type: "ack", ids: [1, 22, 9_007_199_254_740_991] },
];
const replies: MailboxReply[] = [
  { type: "deposited", id: 42 },
  { type: "key", name: "bob", key },
  { type: "challenge", serverKey: key, nonce: new Uint8Array(16).fill(1) },
  { type: "mail", id: 7, sealed: new Uint8Array(100).fill(9) },
  { type: "end", count: 0 },
  { type: "acked", count: 3 },
  { type: "refused", reason: "mailbox full, try later" },
];

Deno.test("mailbox lines: every request and reply round-trips", () => {
  for (const r of requests) assert.deepEqual(decodeMailboxRequest(encodeMailboxRequest(r)), r);
  for (const r of replies) assert.deepEqual(decodeMailboxReply(encodeMailboxReply(r)), r);
  const fetch = encodeMailboxRequest({ type: "fetch", name: "bob" });
  assert.equal(fetch, "fetch,bob," + "-".repeat(PADDED_LINE - 10));
  assert.deepEqual(decodeMailboxRequest("fetch,bob"), { type: "fetch", name: "bob" });
  assert.equal(encodeMailboxReply({ type: "refused", reason: "a\nb" }), "Refused,a b");
});

Deno.test("mailbox lines: malformed requests say what is wrong", () => {
  const bad: [string, RegExp][] = [
    ["", /unknown request/],
    ["steal,bob", /unknown request/],
    ["deposit,bob", /takes 2 field/],
    ["deposit,bob,", /0 bytes/],
    ["deposit,bob,AA=", /not base64url/],
    ["deposit,a;b,AAAA", /Malformed/],
    [`deposit,bob,${"A".repeat(Math.ceil((MAX_SEALED_BYTES + 1) * 4 / 3))}`, /bytes, not/],
    ["fetch,", /Malformed/],
    ["fetch,bob,x", /padding is made of/],
    ["key,bob,--,-", /takes a name and padding/],
    ["ack", /ack takes/],
    ["ack,0", /bad id/],
    ["ack,01", /bad id/],
    ["ack,1,,2", /bad id/],
    ["ack,99999999999999999", /bad id/],
    [`ack,${new Array(1001).fill(1).join(",")}`, /ack takes/],
  ];
  for (const [line, why] of bad) {
    assert.throws(
      () => decodeMailboxRequest(line),
      (e) => e instanceof MailboxLineError && why.test(e.message),
      line.slice(0, 40),
    );
  }
});

Deno.test("mailbox lines: malformed replies are refused", () => {
  for (
    const line of [
      "",
      "Deposited",
      "Deposited,x",
      "Key,bob,AAAA",
      "Challenge,AA,AA",
      "Mail,1,",
      "End,-1",
      "Hello",
    ]
  ) {
    assert.throws(() => decodeMailboxReply(line), MailboxLineError, line);
  }
});

Deno.test("mailbox lines: the splitter cuts lines across chunks and caps their length", () => {
  const enc = new TextEncoder();
  const split = new LineSplitter(10);
  assert.deepEqual(split.push(enc.encode("ab")), { lines: [] });
  assert.equal(split.pending, 2);
  assert.deepEqual(split.push(enc.encode("c\n\nde\nf")), { lines: ["abc", "", "de"] });
  assert.deepEqual(split.push(enc.encode("\n")), { lines: ["f"] });
  assert.deepEqual(split.push(enc.encode("0123456789\n")), { lines: ["0123456789"] });
  const long = new LineSplitter(10).push(enc.encode("ok\n0123456789A"));
  assert.deepEqual(long.lines, ["ok"]);
  assert.match(long.error!.message, /longer than 10/);
  // The lines before a bad one are still returned; nothing after it is.
  const bad = new LineSplitter(10);
  const result = bad.push(new Uint8Array([0x61, 10, 0xff, 10, 0x62, 10]));
  assert.deepEqual(result.lines, ["a"]);
  assert.match(result.error!.message, /not UTF-8/);
  assert.deepEqual(bad.push(enc.encode("c\n")), { lines: [] });
  const split2 = new LineSplitter(10);
  split2.push(enc.encode("01234"));
  assert.match(split2.push(enc.encode("567890\n")).error!.message, /longer than 10/);
});

Deno.test("mailbox lines: 50,000 mutated lines decode or throw MailboxLineError", () => {
  const rand = prng(5);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const seeds = [...requests.map(encodeMailboxRequest), ...replies.map(encodeMailboxReply)];
  for (let i = 0; i < 50_000; i++) {
    const line = dec.decode(mutate(rand, enc.encode(seeds[i % seeds.length])));
    for (const decode of [decodeMailboxRequest, decodeMailboxReply]) {
      try {
        decode(line);
      } catch (err) {
        if (!(err instanceof MailboxLineError)) throw err;
      }
    }
  }
});

Deno.test("mailbox lines: the coordinator's Mailbox datagram round-trips; bad ones are refused", () => {
  const msg = { type: "mailbox", port: 7001, waiting: 12 } as const;
  assert.equal(encodeServerMessage(msg), "Mailbox,7001,12");
  assert.deepEqual(parseServerMessage("Mailbox,7001,12"), msg);
  assert.deepEqual(parseServerMessage("Mailbox,1,0"), { type: "mailbox", port: 1, waiting: 0 });
  for (
    const bad of [
      "Mailbox",
      "Mailbox,0,1",
      "Mailbox,70000,1",
      "Mailbox,7001",
      "Mailbox,7001,-1",
      "Mailbox,7001,01",
      "Mailbox,7001,1,2",
    ]
  ) {
    assert.throws(() => parseServerMessage(bad), SeedProtocolError, bad);
  }
});
