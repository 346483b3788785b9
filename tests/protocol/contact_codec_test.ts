import assert from "node:assert/strict";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import {
  cleanNote,
  type ClientMessage,
  decodeText,
  encodeClientMessage,
  encodeContactLines,
  encodeList,
  encodeListRequest,
  encodeListVersion,
  encodeServerMessage,
  MAX_BATCH_DATAGRAM,
  MAX_NOTE_BYTES,
  MAX_TEXT_DATAGRAM,
  parseClientMessage,
  parseListRequest,
  parseOnlineList,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "../../lib/protocol/seed.ts";
import { usernameProblem } from "../../lib/protocol/username.ts";
import { mutate, randomText } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const encoder = new TextEncoder();
const KEY = encodeBase64url(Uint8Array.from({ length: 32 }, (_, i) => i * 8 + 3));
const SECRET = encodeBase64url(Uint8Array.from({ length: 16 }, (_, i) => 255 - i * 7));
const LONG_CHINESE = "张伟李娜王芳刘洋陈静杨磊赵敏黄勇周杰吴刚徐丽孙强马超朱琳胡斌郭峰";

function assertSeedError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SeedProtocolError, `expected SeedProtocolError, got ${err}`);
    assert.match(err.message, message);
    return true;
  });
}

function tryParse<T>(parse: () => T, input: unknown): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (err instanceof SeedProtocolError) return undefined;
    assert.fail(`unexpected ${err} for input ${JSON.stringify(input)}`);
  }
}

Deno.test("contact messages have the documented text form", () => {
  const add: ClientMessage = {
    type: "contact",
    username: "alice",
    secret: SECRET,
    op: "add",
    target: "bob",
    note: "hi bob, it's alice, from work",
  };
  const text = encodeClientMessage(add);
  assert.equal(text, `contact,alice,${SECRET},add,bob,hi bob, it's alice, from work`);
  assert.deepEqual(parseClientMessage(text), add); // the note keeps its commas
  for (const op of ["add", "accept", "decline", "remove", "block", "unblock"] as const) {
    const msg: ClientMessage = {
      type: "contact",
      username: "张伟",
      secret: SECRET,
      op,
      target: "bob",
    };
    assert.deepEqual(parseClientMessage(encodeClientMessage(msg)), msg);
  }
  const listed: ClientMessage = { type: "listed", username: "alice", secret: SECRET, listed: true };
  assert.equal(encodeClientMessage(listed), `listed,alice,${SECRET},yes`);
  assert.deepEqual(parseClientMessage(`listed,alice,${SECRET},no`), { ...listed, listed: false });
  const server: [ServerMessage, string][] = [
    [
      { type: "request", username: "alice", key: KEY, note: "hi, bob" },
      `Request,alice,${KEY},hi, bob`,
    ],
    [{ type: "request", username: "alice", key: KEY, note: "" }, `Request,alice,${KEY},`],
    [{ type: "contact", username: "bob", key: KEY }, `Contact,bob,${KEY}`],
    [{ type: "uncontact", username: "bob" }, "Uncontact,bob"],
  ];
  for (const [msg, form] of server) {
    assert.equal(encodeServerMessage(msg), form);
    assert.deepEqual(parseServerMessage(form), msg);
  }
});

Deno.test("contact messages refuse bad ops, secrets, names and notes with the reason", () => {
  assertSeedError(
    () => parseClientMessage(`contact,alice,${SECRET},befriend,bob`),
    /not one of add/,
  );
  assertSeedError(
    () => parseClientMessage(`contact,alice,${SECRET},accept,bob,note`),
    /only with add/,
  );
  assertSeedError(() => parseClientMessage(`contact,alice,${SECRET},add`), /expected contact/);
  assertSeedError(() => parseClientMessage("contact,alice,short,add,bob"), /secret/);
  assertSeedError(() => parseClientMessage(`contact,alice,${SECRET},add,end`), /end/);
  assertSeedError(
    () => parseClientMessage(`contact,alice,${SECRET},add,bob,a\u001b[31mred`),
    /control character/,
  );
  assertSeedError(
    () => parseClientMessage(`contact,alice,${SECRET},add,bob,${"x".repeat(MAX_NOTE_BYTES + 1)}`),
    /over 140 bytes/,
  );
  assertSeedError(() => parseClientMessage(`listed,alice,${SECRET},maybe`), /yes or no/);
  assertSeedError(() => parseServerMessage(`Request,alice,${KEY}`), /<username>,<key>,<note>/);
  assertSeedError(() => parseServerMessage("Contact,bob,nokey"), /key/);
  assertSeedError(() => parseServerMessage("Uncontact,"), /Uncontact/);
});

Deno.test("cleanNote makes any typed note fit to send", () => {
  assert.equal(cleanNote("hi\u001b[31m bob\nx"), "hi [31m bob x");
  const long = cleanNote("张".repeat(100)); // 3 bytes each
  assert.equal(long, "张".repeat(46));
  const msg = `contact,alice,${SECRET},add,bob,${long}`;
  assert.ok(encoder.encode(msg).length <= MAX_TEXT_DATAGRAM);
  assert.equal((parseClientMessage(msg) as { note: string }).note, long);
});

Deno.test("a named list carries contacts and requests between end and its version", () => {
  const text = encodeList([{ username: "alice", endpoint: { host: "192.0.2.1", port: 4000 } }]) +
    encodeContactLines(
      [{ username: "bob", key: KEY }, { username: "张伟", key: KEY }],
      [{ username: "carol", key: KEY, note: "hi, it's carol" }],
    ) + encodeListVersion(3);
  assert.equal(
    text,
    `alice,192.0.2.1:4000;end\ncontact,bob,${KEY}\ncontact,张伟,${KEY}\n` +
      `request,carol,${KEY},hi, it's carol\nversion,3`,
  );
  assert.deepEqual(parseOnlineList(text), {
    entries: [{ username: "alice", endpoint: { host: "192.0.2.1", port: 4000 } }],
    version: 3,
    contacts: [{ username: "bob", key: KEY }, { username: "张伟", key: KEY }],
    requests: [{ username: "carol", key: KEY, note: "hi, it's carol" }],
  });
  // A list with no contacts and no requests is the list as before.
  assert.deepEqual(parseOnlineList("end" + encodeContactLines([], []) + "\nversion,0"), {
    entries: [],
    version: 0,
  });
  assertSeedError(() => parseOnlineList("end\nfriend,bob\nversion,1"), /does not end with "end"/);
  assertSeedError(() => parseOnlineList("end\ncontact,bob\nversion,1"), /list contact/);
  assert.equal(encodeListRequest({ username: "alice", secret: SECRET }), `list,alice,${SECRET}\n`);
  assert.deepEqual(parseListRequest(`list,alice,${SECRET}\r\n`), {
    username: "alice",
    secret: SECRET,
  });
  assertSeedError(() => parseListRequest(`lust,alice,${SECRET}`), /not list/);
  assertSeedError(() => parseListRequest("list,alice"), /3 comma-separated/);
});

const PIECES = [
  "contact",
  "listed",
  "Request",
  "Contact",
  "Uncontact",
  "add",
  "accept",
  "block",
  "yes",
  ",",
  "\n",
  "alice",
  "张伟",
  KEY,
  SECRET,
  "end",
  "\u001b",
  "é",
];
const TEXT = { maxPieces: 12, pieceShare: 0.8 };

Deno.test("fuzz: contact client messages throw only SeedProtocolError and round-trip", () => {
  const rand = prng(0xc0c7);
  const corpus = [
    `contact,alice,${SECRET},add,bob,hi, bob`,
    `contact,${LONG_CHINESE},${SECRET},block,${LONG_CHINESE}`,
    `contact,alice,${SECRET},accept,bob`,
    `listed,alice,${SECRET},yes`,
  ].map((t) => encoder.encode(t));
  const seen = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    const bytes = i % 2 === 0
      ? encoder.encode(randomText(rand, PIECES, TEXT))
      : mutate(rand, corpus[(i >> 1) % corpus.length]);
    const msg = tryParse(() => parseClientMessage(decodeText(bytes)), [...bytes]);
    if (!msg) continue;
    seen.add(msg.type === "contact" ? `contact-${msg.op}${msg.note ? "+note" : ""}` : msg.type);
    if (msg.type === "contact") {
      assert.equal(usernameProblem(msg.username), undefined);
      assert.equal(usernameProblem(msg.target), undefined);
      if (msg.note !== undefined) assert.ok(encoder.encode(msg.note).length <= MAX_NOTE_BYTES);
    }
    assert.deepEqual(parseClientMessage(encodeClientMessage(msg)), msg);
  }
  for (const kind of ["contact-add+note", "contact-accept", "contact-block", "listed"]) {
    assert.ok(seen.has(kind), `the fuzzer never parsed a ${kind}: saw ${[...seen]}`);
  }
});

Deno.test("fuzz: Request, Contact, Uncontact and named lists throw only SeedProtocolError and round-trip", () => {
  const rand = prng(0xc0c8);
  const lenient = new TextDecoder();
  const corpus = [
    `Request,alice,${KEY},hi, bob`,
    `Request,${LONG_CHINESE},${KEY},`,
    `Contact,bob,${KEY}`,
    "Uncontact,张伟",
  ].map((t) => encoder.encode(t));
  const seen = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    const text = i % 2 === 0
      ? randomText(rand, PIECES, TEXT)
      : lenient.decode(mutate(rand, corpus[(i >> 1) % corpus.length]));
    const msg = tryParse(() => parseServerMessage(text), text);
    if (!msg) continue;
    seen.add(msg.type);
    const again = encodeServerMessage(msg);
    assert.ok(encoder.encode(again).length <= MAX_BATCH_DATAGRAM);
    assert.deepEqual(parseServerMessage(again), msg);
  }
  for (const kind of ["request", "contact", "uncontact"]) {
    assert.ok(seen.has(kind), `the fuzzer never parsed a ${kind}: saw ${[...seen]}`);
  }
  const list = encoder.encode(
    `alice,192.0.2.1:4000;end\ncontact,bob,${KEY}\nrequest,carol,${KEY},hi\nversion,3`,
  );
  let parsed = 0;
  for (let i = 0; i < 3000; i++) {
    const text = lenient.decode(mutate(rand, list));
    const got = tryParse(() => parseOnlineList(text), text);
    if (!got) continue;
    parsed++;
    const back = encodeList(got.entries) +
      encodeContactLines(got.contacts ?? [], got.requests ?? []) +
      (got.version === undefined ? "" : encodeListVersion(got.version));
    const again = parseOnlineList(back);
    assert.deepEqual(again.entries, got.entries);
    assert.deepEqual(again.contacts ?? [], got.contacts ?? []);
    assert.deepEqual(again.requests ?? [], got.requests ?? []);
  }
  assert.ok(parsed > 100, `only ${parsed} mutated lists parsed`);
});
