import assert from "node:assert/strict";
import {
  type ClientMessage,
  decodeText,
  encodeClientMessage,
  encodeList,
  encodeListVersion,
  encodeServerMessage,
  type ListEntry,
  MAX_TEXT_DATAGRAM,
  parseClientMessage,
  parseList,
  parseOnlineList,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "../../lib/protocol/seed.ts";
import { usernameProblem } from "../../lib/protocol/username.ts";
import { MAX_WHOAMI } from "../../lib/protocol/whoami.ts";
import { mutate, randomBytes, randomText } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const encoder = new TextEncoder();
const V4 = { host: "192.0.2.1", port: 4000 };
const V6 = { host: "2001:db8::7", port: 65535 };
/** 32 Chinese characters: the longest name allowed, 96 bytes of UTF-8. */
const LONG_CHINESE = "张伟李娜王芳刘洋陈静杨磊赵敏黄勇周杰吴刚徐丽孙强马超朱琳胡斌郭峰";

/** Parses `text` as a client datagram would be: encoded, decoded, parsed. */
function parseClientBytes(text: string): ClientMessage {
  return parseClientMessage(decodeText(encoder.encode(text)));
}

function assertSeedError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SeedProtocolError, `expected SeedProtocolError, got ${err}`);
    assert.equal(err.name, "SeedProtocolError");
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

Deno.test("client messages round-trip", () => {
  const msgs: ClientMessage[] = [
    { type: "login", username: "alice", endpoint: V4 },
    { type: "login", username: "张伟", endpoint: V6 },
    { type: "login", username: LONG_CHINESE, endpoint: { host: "::1", port: 1 } },
    { type: "logout", username: "bob", endpoint: V4 },
    { type: "logout", username: "😀 smile", endpoint: V6 },
    { type: "heartbeat", username: "alice" },
    { type: "heartbeat", username: LONG_CHINESE },
  ];
  for (const msg of msgs) {
    const text = encodeClientMessage(msg);
    assert.ok(encoder.encode(text).length <= MAX_TEXT_DATAGRAM);
    assert.deepEqual(parseClientBytes(text), msg);
  }
  assert.equal(
    encodeClientMessage({ type: "login", username: "alice", endpoint: V4 }),
    "login,alice,192.0.2.1:4000",
  );
  assert.equal(
    encodeClientMessage({ type: "logout", username: "bob", endpoint: V6 }),
    "logout,bob,[2001:db8::7]:65535",
  );
  assert.equal(encodeClientMessage({ type: "heartbeat", username: "alice" }), "heartbeat,alice");
});

Deno.test("the longest login fits one datagram", () => {
  const endpoint = { host: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", port: 65535 };
  for (const username of [LONG_CHINESE, "😀".repeat(32)]) {
    const text = encodeClientMessage({ type: "login", username, endpoint });
    assert.ok(encoder.encode(text).length <= MAX_TEXT_DATAGRAM);
    assert.deepEqual(parseClientBytes(text), { type: "login", username, endpoint });
  }
});

Deno.test("parseClientMessage tolerates one trailing newline", () => {
  const login = { type: "login", username: "alice", endpoint: V4 };
  assert.deepEqual(parseClientMessage("login,alice,192.0.2.1:4000\n"), login);
  assert.deepEqual(parseClientMessage("login,alice,192.0.2.1:4000\r\n"), login);
  assert.deepEqual(parseClientMessage("heartbeat,alice\n"), {
    type: "heartbeat",
    username: "alice",
  });
  assertSeedError(
    () => parseClientMessage("heartbeat,alice\n\n"),
    "Cannot parse heartbeat: username must not contain control characters",
  );
});

Deno.test("parseClientMessage rejects bad usernames with the reason", () => {
  const cases: [string, string][] = [
    ["login,,192.0.2.1:4000", "Cannot parse login: username is empty"],
    [
      `login,${"x".repeat(33)},192.0.2.1:4000`,
      "Cannot parse login: username is 33 characters long, the limit is 32",
    ],
    [
      `login,${LONG_CHINESE}张,192.0.2.1:4000`,
      "Cannot parse login: username is 33 characters long, the limit is 32",
    ],
    ["login,a;b,192.0.2.1:4000", "Cannot parse login: username must not contain ',' or ';'"],
    [
      "login,a\u0007b,192.0.2.1:4000",
      "Cannot parse login: username must not contain control characters",
    ],
    [
      "login,end,192.0.2.1:4000",
      'Cannot parse login: username "end" is reserved (it ends the online list)',
    ],
    [
      "login, alice,192.0.2.1:4000",
      "Cannot parse login: username must not start or end with white space",
    ],
    [
      "logout,alice ,192.0.2.1:4000",
      "Cannot parse logout: username must not start or end with white space",
    ],
    ["heartbeat,", "Cannot parse heartbeat: username is empty"],
    ["heartbeat,a\ufffd", "Cannot parse heartbeat: username is not valid UTF-8"],
    // A comma in a name shows up as one field too many.
    ["login,a,b,192.0.2.1:4000", "Cannot parse login: expected 3 comma-separated fields, got 4"],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseClientBytes(text), message);
});

Deno.test("parseClientMessage rejects malformed messages with the reason", () => {
  const cases: [string, string][] = [
    ["", 'Cannot parse message: unknown message type ""'],
    ["hello", 'Cannot parse message: unknown message type "hello"'],
    ["LOGIN,alice,192.0.2.1:4000", 'Cannot parse message: unknown message type "LOGIN"'],
    [" login,alice,192.0.2.1:4000", 'Cannot parse message: unknown message type " login"'],
    ["Accept,7000", 'Cannot parse message: unknown message type "Accept"'],
    [`${"x".repeat(50)},a`, `Cannot parse message: unknown message type "${"x".repeat(20)}"`],
    ["login", "Cannot parse login: expected 3 comma-separated fields, got 1"],
    ["login,alice", "Cannot parse login: expected 3 comma-separated fields, got 2"],
    [
      "login,alice,192.0.2.1:4000,",
      "Cannot parse login: expected 3 comma-separated fields, got 4",
    ],
    ["logout,alice", "Cannot parse logout: expected 3 comma-separated fields, got 2"],
    ["heartbeat", "Cannot parse heartbeat: expected 2 comma-separated fields, got 1"],
    ["heartbeat,a,b", "Cannot parse heartbeat: secret is not 22 base64url characters"],
    ["heartbeat,a,b,c", "Cannot parse heartbeat: expected 2 comma-separated fields, got 4"],
    [
      "login,alice,192.0.2.1",
      'Cannot parse login: Cannot parse endpoint "192.0.2.1": missing ":port"',
    ],
    [
      "login,alice,192.0.2.1:0",
      'Cannot parse login: Cannot parse endpoint "192.0.2.1:0": port 0 is out of range 1-65535',
    ],
    [
      "logout,alice,example.com:80",
      'Cannot parse logout: Cannot parse endpoint "example.com:80": ' +
      '"example.com" is not an IPv4 address',
    ],
    [
      "login,alice,[::1]",
      'Cannot parse login: Cannot parse endpoint "[::1]": expected [v6]:port',
    ],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseClientBytes(text), message);
});

Deno.test("decodeText refuses invalid UTF-8 and oversized datagrams", () => {
  const invalid = [
    [0xff],
    [0x6c, 0xc3], // truncated two-byte sequence
    [0xc0, 0x80], // overlong NUL
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [...encoder.encode("heartbeat,al"), 0xe5, 0xbc], // a Chinese character cut short
  ];
  for (const bytes of invalid) {
    assertSeedError(
      () => decodeText(new Uint8Array(bytes)),
      "Cannot parse message: it is not valid UTF-8",
    );
  }
  assertSeedError(
    () => decodeText(new Uint8Array(MAX_TEXT_DATAGRAM + 1).fill(0x61)),
    "Cannot parse message: 513 bytes is longer than the 512-byte limit",
  );
  assertSeedError(
    () => decodeText(new Uint8Array(65_507)),
    "Cannot parse message: 65507 bytes is longer than the 512-byte limit",
  );
  assert.equal(decodeText(new Uint8Array(MAX_TEXT_DATAGRAM).fill(0x61)), "a".repeat(512));
  assert.equal(decodeText(new Uint8Array()), "");
  assert.equal(decodeText(encoder.encode("login,张伟,[::1]:5")), "login,张伟,[::1]:5");
});

Deno.test("server messages round-trip", () => {
  const msgs: ServerMessage[] = [
    { type: "accept", tcpPort: 7000 },
    { type: "accept", tcpPort: 1 },
    { type: "accept", tcpPort: 65535 },
    { type: "reject", reason: 'name "alice" is already in use' },
    { type: "reject", reason: "" },
    { type: "error", reason: "Cannot parse message: it is not valid UTF-8" },
    { type: "error", reason: "名字已被占用" },
    { type: "login", username: "alice", endpoint: V4 },
    { type: "login", username: LONG_CHINESE, endpoint: V6 },
    { type: "logout", username: "张伟", endpoint: V4 },
    { type: "alive", endpoint: V4 },
    { type: "alive", endpoint: V6 },
    { type: "alive", endpoint: V4, version: 0 },
    { type: "alive", endpoint: V6, version: Number.MAX_SAFE_INTEGER },
    { type: "presence", from: 0, to: 0 },
    { type: "presence", from: 17, to: 4096 },
    { type: "expired", username: "alice" },
    { type: "online", username: "alice", endpoint: V4 },
    { type: "online", username: LONG_CHINESE, endpoint: V6 },
    { type: "online", username: "😀", endpoint: { host: "0.0.0.0", port: 1 } },
    { type: "offline", username: "张伟" },
    { type: "offline", username: LONG_CHINESE },
  ];
  for (const msg of msgs) {
    const text = encodeServerMessage(msg);
    assert.ok(encoder.encode(text).length <= MAX_TEXT_DATAGRAM);
    assert.deepEqual(parseServerMessage(decodeText(encoder.encode(text))), msg);
  }
  assert.equal(encodeServerMessage({ type: "accept", tcpPort: 7000 }), "Accept,7000");
  assert.equal(encodeServerMessage({ type: "reject", reason: "full" }), "Reject,full");
  assert.equal(encodeServerMessage({ type: "error", reason: "bad" }), "Error,bad");
  assert.equal(encodeServerMessage({ type: "alive", endpoint: V6 }), "Alive,[2001:db8::7]:65535");
  assert.equal(encodeServerMessage({ type: "expired", username: "bob" }), "Expired,bob");
  assert.equal(
    encodeServerMessage({ type: "alive", endpoint: V4, version: 12 }),
    "Alive,192.0.2.1:4000,12",
  );
  assert.equal(encodeServerMessage({ type: "presence", from: 3, to: 9 }), "Presence,3,9");
  assert.equal(
    encodeServerMessage({ type: "login", username: "bob", endpoint: V4 }),
    "login,bob,192.0.2.1:4000",
  );
  assert.equal(
    encodeServerMessage({ type: "online", username: "bob", endpoint: V4 }),
    "+bob,wAACAQ-g",
  );
  assert.equal(
    encodeServerMessage({ type: "online", username: "张伟", endpoint: V6 }),
    "+张伟,[2001:db8::7]:65535",
  );
  assert.equal(encodeServerMessage({ type: "offline", username: "bob" }), "-bob");
});

Deno.test("compact presence lines: names may start with + or -, only the first sign counts", () => {
  // usernameProblem allows both signs anywhere in a name.
  for (const name of ["+plus", "-minus", "+", "-", "+-", "a+b-"]) {
    assert.equal(usernameProblem(name), undefined, name);
    for (
      const msg of [
        { type: "online", username: name, endpoint: V4 },
        { type: "offline", username: name },
      ] satisfies ServerMessage[]
    ) {
      assert.deepEqual(parseServerMessage(encodeServerMessage(msg)), msg);
    }
  }
  assert.deepEqual(parseServerMessage("++plus,wAACAQ-g"), {
    type: "online",
    username: "+plus",
    endpoint: V4,
  });
  assert.deepEqual(parseServerMessage("--minus"), { type: "offline", username: "-minus" });
  assert.deepEqual(parseServerMessage("-+plus"), { type: "offline", username: "+plus" });
  assert.deepEqual(parseServerMessage("+-minus,[2001:db8::7]:65535"), {
    type: "online",
    username: "-minus",
    endpoint: V6,
  });
  // The seed's text form of an IPv4 endpoint is read too.
  assert.deepEqual(parseServerMessage("+bob,192.0.2.1:4000"), {
    type: "online",
    username: "bob",
    endpoint: V4,
  });
});

Deno.test("encodeServerMessage makes reasons safe and short", () => {
  assert.equal(
    encodeServerMessage({ type: "reject", reason: "a,b;c\r\nd\te\x1b[2Jf\u009bg\u2028h" }),
    "Reject,a b c  d e [2Jf g h",
  );
  assert.equal(
    encodeServerMessage({ type: "error", reason: "x".repeat(1000) }),
    "Error," + "x".repeat(200),
  );
  // 200 bytes hold 66 three-byte characters; the 67th would be cut in half, so it is dropped.
  const chinese = encodeServerMessage({ type: "error", reason: "错".repeat(300) });
  assert.equal(chinese, "Error," + "错".repeat(66));
  // Four-byte characters are two UTF-16 units: cutting must not leave half a surrogate pair.
  const emoji = encodeServerMessage({ type: "reject", reason: "a" + "😀".repeat(100) });
  assert.equal(emoji, "Reject,a" + "😀".repeat(49));
  for (const text of [chinese, emoji]) {
    assert.ok(text.isWellFormed());
    assert.ok(encoder.encode(text).length <= MAX_TEXT_DATAGRAM);
    assert.doesNotThrow(() => parseServerMessage(decodeText(encoder.encode(text))));
  }
});

Deno.test("parseServerMessage keeps the reason text after the verb", () => {
  assert.deepEqual(parseServerMessage("Reject"), { type: "reject", reason: "" });
  assert.deepEqual(parseServerMessage("Error,a,b"), { type: "error", reason: "a,b" });
});

Deno.test("parseServerMessage rejects malformed messages with the reason", () => {
  const cases: [string, string][] = [
    ["", 'Cannot parse message: unknown message type ""'],
    ["accept,7000", 'Cannot parse message: unknown message type "accept"'],
    ["heartbeat,alice", 'Cannot parse message: unknown message type "heartbeat"'],
    ["Accept", 'Cannot parse Accept: "" is not a port number'],
    ["Accept,", 'Cannot parse Accept: "" is not a port number'],
    ["Accept,0", 'Cannot parse Accept: "0" is not a port number'],
    ["Accept,65536", 'Cannot parse Accept: "65536" is not a port number'],
    ["Accept,123456", 'Cannot parse Accept: "123456" is not a port number'],
    ["Accept,70 00", 'Cannot parse Accept: "70 00" is not a port number'],
    ["Accept,7000,1", 'Cannot parse Accept: "7000,1" is not a port number'],
    ["Accept,-1", 'Cannot parse Accept: "-1" is not a port number'],
    ["login,alice", "Cannot parse login: expected 3 comma-separated fields, got 2"],
    [
      "logout,end,192.0.2.1:1",
      'Cannot parse logout: username "end" is reserved (it ends the ' +
      "online list)",
    ],
    [
      "login,alice,192.0.2.1:99999",
      'Cannot parse login: Cannot parse endpoint "192.0.2.1:99999": port 99999 is out of range ' +
      "1-65535",
    ],
    ["Alive", "Cannot parse Alive: expected 2 comma-separated fields, got 1"],
    ["Alive,192.0.2.1:1,x", 'Cannot parse Alive: "x" is not a version'],
    ["Alive,192.0.2.1:1,-1", 'Cannot parse Alive: "-1" is not a version'],
    ["Alive,192.0.2.1:1,07", 'Cannot parse Alive: "07" is not a version'],
    [
      "Alive,192.0.2.1:1,9007199254740992",
      'Cannot parse Alive: "9007199254740992" is not a version',
    ],
    ["Alive,192.0.2.1:1,1,2", "Cannot parse Alive: expected 2 comma-separated fields, got 4"],
    ["Presence,1", "Cannot parse Presence: expected 3 comma-separated fields, got 2"],
    ["Presence,5,4", "Cannot parse Presence: version 5 is after 4"],
    ["Presence,1,2.5", 'Cannot parse Presence: "2.5" is not a version'],
    ["Expired", "Cannot parse Expired: username is empty"],
    ["Expired,a,b", "Cannot parse Expired: username must not contain ',' or ';'"],
    ["+", "Cannot parse online: expected 2 comma-separated fields, got 1"],
    ["+bob", "Cannot parse online: expected 2 comma-separated fields, got 1"],
    ["+bob,x,y", "Cannot parse online: expected 2 comma-separated fields, got 3"],
    ["+,wAACAQ-g", "Cannot parse online: username is empty"],
    [
      "+end,wAACAQ-g",
      'Cannot parse online: username "end" is reserved (it ends the online list)',
    ],
    ["+bob,", 'Cannot parse online: Cannot parse endpoint "": missing ":port"'],
    ["+bob,wAACAQ-", 'Cannot parse online: Cannot parse endpoint "wAACAQ-": missing ":port"'],
    ["+bob,wAACAQAA", 'Cannot parse online: Cannot parse endpoint "wAACAQAA": port 0'],
    [
      "+bob,wAACAQ+g",
      'Cannot parse online: Cannot parse endpoint "wAACAQ+g": not 8 base64url characters',
    ],
    [
      "+bob,192.0.2.1:99999",
      'Cannot parse online: Cannot parse endpoint "192.0.2.1:99999": port 99999 is out of range ' +
      "1-65535",
    ],
    ["-", "Cannot parse offline: username is empty"],
    // An offline line has no endpoint: the comma makes it a bad name.
    ["-bob,wAACAQ-g", "Cannot parse offline: username must not contain ',' or ';'"],
    ["- bob", "Cannot parse offline: username must not start or end with white space"],
    ["-end", 'Cannot parse offline: username "end" is reserved (it ends the online list)'],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseServerMessage(text), message);
});

Deno.test("online lists with zero, one and many entries round-trip", () => {
  assert.equal(encodeList([]), "end");
  assert.deepEqual(parseList("end"), []);
  const one: ListEntry[] = [{ username: "alice", endpoint: V4 }];
  assert.equal(encodeList(one), "alice,192.0.2.1:4000;end");
  assert.deepEqual(parseList("alice,192.0.2.1:4000;end"), one);
  const many: ListEntry[] = [];
  for (let i = 0; i < 200; i++) {
    many.push({
      username: i % 3 === 0
        ? `用户${i}`
        : i % 3 === 1
        ? `user ${i}`
        : `${LONG_CHINESE.slice(3)}${i}`,
      endpoint: i % 2 === 0
        ? { host: `10.0.${i >> 8}.${i & 255}`, port: 1000 + i }
        : { host: `2001:db8::${i.toString(16)}`, port: 60000 + i },
    });
  }
  assert.deepEqual(parseList(encodeList(many)), many);
  assert.equal(
    encodeList(many.slice(0, 2)),
    "用户0,10.0.0.0:1000;user 1,[2001:db8::1]:60001;end",
  );
});

Deno.test("an extension client's list carries its presence version after end", () => {
  const text = encodeList([{ username: "alice", endpoint: V4 }]) + encodeListVersion(41);
  assert.equal(text, "alice,192.0.2.1:4000;end\nversion,41");
  assert.deepEqual(parseOnlineList(text), {
    entries: [{ username: "alice", endpoint: V4 }],
    version: 41,
  });
  assert.deepEqual(parseOnlineList("end\nversion,0\r\n"), { entries: [], version: 0 });
  assert.deepEqual(parseOnlineList("end"), { entries: [] });
  assert.deepEqual(parseList(text), [{ username: "alice", endpoint: V4 }]);
  assertSeedError(() => parseOnlineList("end\nversion,x"), /"x" is not a version/);
  assertSeedError(() => parseOnlineList("end\nversion,1\nversion,2"), /does not end with "end"/);
  assertSeedError(() => parseOnlineList("alice,192.0.2.1:4000\nversion,1"), /does not end/);
});

Deno.test("whoami is padded so that its answer is never longer than the request", () => {
  const request = encodeClientMessage({ type: "whoami" });
  assert.equal(encoder.encode(request).length, MAX_WHOAMI);
  const longest = encodeServerMessage({
    type: "you",
    endpoint: { host: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", port: 65535 },
  });
  assert.ok(encoder.encode(longest).length <= MAX_WHOAMI, longest);
  assert.deepEqual(parseClientMessage(request), { type: "whoami" });
  assert.deepEqual(parseClientMessage("whoami"), { type: "whoami" });
  assertSeedError(() => parseClientMessage("whoami," + "-".repeat(58)), /64 bytes in all/);
  assertSeedError(() => parseClientMessage("whoami,a b"), /printable ASCII/);
  assertSeedError(() => parseClientMessage("whoami,a,b"), /expected 2 comma-separated fields/);
});

Deno.test("parseList tolerates trailing white space only", () => {
  assert.deepEqual(parseList("end\n"), []);
  assert.deepEqual(parseList("alice,192.0.2.1:4000;end\r\n  \t"), [
    { username: "alice", endpoint: V4 },
  ]);
  assertSeedError(
    () => parseList("alice,192.0.2.1:4000; end"),
    'Cannot parse online list: it does not end with "end"',
  );
});

Deno.test("parseList rejects malformed lists with the reason", () => {
  const noEnd = 'Cannot parse online list: it does not end with "end"';
  const cases: [string, string][] = [
    ["", noEnd],
    ["   ", noEnd],
    ["End", noEnd],
    ["END", noEnd],
    ["end;", noEnd],
    ["alice,192.0.2.1:4000", noEnd],
    ["alice,192.0.2.1:4000;", noEnd],
    ["alice,192.0.2.1:4000end", noEnd],
    ["alice,192.0.2.1:4000;end;bob,192.0.2.2:1", noEnd],
    [" end", noEnd],
    [";end", "Cannot parse online list entry: expected 2 comma-separated fields, got 1"],
    ["alice;end", "Cannot parse online list entry: expected 2 comma-separated fields, got 1"],
    [
      "alice,192.0.2.1:4000;;end",
      "Cannot parse online list entry: expected 2 comma-separated fields, got 1",
    ],
    [
      "alice,192.0.2.1:4000,x;end",
      "Cannot parse online list entry: expected 2 comma-separated fields, got 3",
    ],
    [",192.0.2.1:4000;end", "Cannot parse online list entry: username is empty"],
    [
      "end,192.0.2.1:4000;end",
      'Cannot parse online list entry: username "end" is reserved (it ends the online list)',
    ],
    [
      "a\ufffd,192.0.2.1:4000;end",
      "Cannot parse online list entry: username is not valid UTF-8",
    ],
    [
      "alice,192.0.2.1;end",
      'Cannot parse online list entry: Cannot parse endpoint "192.0.2.1": missing ":port"',
    ],
    [
      "alice,::1:80;end",
      'Cannot parse online list entry: Cannot parse endpoint "::1:80": "::1" is not an IPv4 ' +
      "address",
    ],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseList(text), message);
});

Deno.test("parseList takes linear time on long runs of white space", () => {
  // A hostile coordinator controls the list. /\s+$/ took quadratic time here (about 20 s).
  const text = "a" + " ".repeat(200_000) + "x;end";
  const start = performance.now();
  assertSeedError(() => parseList(text), /expected 2 comma-separated fields, got 1/);
  assert.ok(performance.now() - start < 1000, `took ${performance.now() - start} ms`);
});

// ---- fuzzing ---------------------------------------------------------------------------------

const PIECES = [
  "login",
  "logout",
  "heartbeat",
  "Accept",
  "Reject",
  "Error",
  "Alive",
  "Expired",
  "end",
  ",",
  ";",
  ":",
  "[",
  "]",
  " ",
  "\n",
  "\r\n",
  "\t",
  "\u0000",
  "\u2028",
  "\ufeff",
  "\ufffd",
  "alice",
  "张伟",
  "😀",
  "192.0.2.1",
  "::1",
  "::ffff:1.2.3.4",
  "fe80::1%eth0",
  "4000",
  "0",
  "65536",
  "99999999",
  "%",
  "-",
  "+",
  "wAACAQ-g",
];
/** How seed fuzz texts are made from PIECES. */
const TEXT = { maxPieces: 24, pieceShare: 0.7 };

/** Runs `parse` and fails on any thrown error that is not a SeedProtocolError. */
function tryParse<T>(parse: () => T, input: unknown): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (err instanceof SeedProtocolError) return undefined;
    assert.fail(`unexpected ${err} for input ${JSON.stringify(input)}`);
  }
}

const CLIENT_CORPUS = [
  "login,alice,192.0.2.1:4000",
  `login,${LONG_CHINESE},[2001:db8::7]:65535`,
  "logout,张伟,[::1]:7000",
  "heartbeat,bob",
  "heartbeat,😀\n",
].map((t) => encoder.encode(t));

Deno.test("fuzz: parseClientMessage(decodeText()) throws only SeedProtocolError", () => {
  const rand = prng(0xc0ffee);
  let parsed = 0;
  for (let i = 0; i < 4000; i++) {
    const bytes = i % 3 === 0
      ? randomBytes(rand, rand() < 0.9 ? 80 : 700)
      : i % 3 === 1
      ? encoder.encode(randomText(rand, PIECES, TEXT))
      : mutate(rand, CLIENT_CORPUS[i % CLIENT_CORPUS.length]);
    const msg = tryParse(() => parseClientMessage(decodeText(bytes)), [...bytes]);
    if (!msg) continue;
    parsed++;
    if ("username" in msg) assert.equal(usernameProblem(msg.username), undefined);
    // Whatever parses must encode back to text that parses to the same message.
    assert.deepEqual(parseClientBytes(encodeClientMessage(msg)), msg);
  }
  assert.ok(parsed > 50, `only ${parsed} inputs parsed: the fuzzer is not reaching the parser`);
});

const SERVER_CORPUS = [
  "Accept,7000",
  "Reject,name in use",
  "Error,bad",
  "login,alice,192.0.2.1:4000",
  "logout,张伟,[::1]:7000",
  "Alive,[2001:db8::7]:65535",
  "Expired,bob",
  "+alice,wAACAQ-g",
  "+张伟,[2001:db8::7]:65535",
  "-bob",
].map((t) => encoder.encode(t));

Deno.test("fuzz: parseServerMessage throws only SeedProtocolError", () => {
  const rand = prng(0x5eed);
  const lenient = new TextDecoder();
  let parsed = 0;
  const types = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    // Also raw JS strings (lone surrogates included), not only what decodeText lets through.
    const text = i % 3 === 0
      ? randomText(rand, PIECES, TEXT)
      : i % 3 === 1
      ? lenient.decode(randomBytes(rand, rand() < 0.9 ? 80 : 700))
      : lenient.decode(mutate(rand, SERVER_CORPUS[i % SERVER_CORPUS.length]));
    const msg = tryParse(() => parseServerMessage(text), text);
    if (!msg) continue;
    parsed++;
    types.add(msg.type);
    if (msg.type !== "reject" && msg.type !== "error") {
      assert.deepEqual(parseServerMessage(encodeServerMessage(msg)), msg);
    } else {
      const again = encodeServerMessage(msg);
      assert.ok(encoder.encode(again).length <= MAX_TEXT_DATAGRAM);
      assert.equal(parseServerMessage(again).type, msg.type);
    }
  }
  assert.ok(parsed > 50, `only ${parsed} inputs parsed: the fuzzer is not reaching the parser`);
  for (const type of ["login", "logout", "online", "offline"]) {
    assert.ok(types.has(type), `no ${type} message parsed: the corpus does not reach it`);
  }
});

Deno.test("fuzz: parseList throws only SeedProtocolError", () => {
  const rand = prng(0x1157);
  const lenient = new TextDecoder();
  const corpus = [
    "end",
    "alice,192.0.2.1:4000;end",
    encodeList([
      { username: "alice", endpoint: V4 },
      { username: LONG_CHINESE, endpoint: V6 },
      { username: "😀 b", endpoint: { host: "::1", port: 9 } },
    ]) + "\n",
  ].map((t) => encoder.encode(t));
  let parsed = 0;
  for (let i = 0; i < 4000; i++) {
    let text: string;
    if (i % 4 === 0) text = randomText(rand, PIECES, TEXT) + (rand() < 0.5 ? "end" : "");
    else if (i % 4 === 1) text = lenient.decode(randomBytes(rand, rand() < 0.9 ? 80 : 700));
    else text = lenient.decode(mutate(rand, corpus[i % corpus.length]));
    const list = tryParse(() => parseList(text), text);
    if (!list) continue;
    parsed++;
    for (const entry of list) assert.equal(usernameProblem(entry.username), undefined);
    assert.deepEqual(parseList(encodeList(list)), list);
  }
  assert.ok(parsed > 50, `only ${parsed} inputs parsed: the fuzzer is not reaching the parser`);
});

Deno.test("Bye (the coordinator is shutting down) round-trips with a safe reason", () => {
  for (const reason of ["the server is shutting down", "", "维护中"]) {
    const text = encodeServerMessage({ type: "bye", reason });
    assert.equal(text, `Bye,${reason}`);
    assert.deepEqual(parseServerMessage(decodeText(encoder.encode(text))), { type: "bye", reason });
  }
  assert.equal(encodeServerMessage({ type: "bye", reason: "a,b\nc" }), "Bye,a b c");
  assert.deepEqual(parseServerMessage("Bye"), { type: "bye", reason: "" });
});
