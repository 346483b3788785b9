import assert from "node:assert/strict";
import { decodeBase64url, encodeBase64url } from "../../lib/protocol/base64url.ts";
import {
  type ClientMessage,
  decodeText,
  encodeClientMessage,
  encodeServerMessage,
  MAX_BATCH_DATAGRAM,
  MAX_TEXT_DATAGRAM,
  parseClientMessage,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "../../lib/protocol/seed.ts";
import { usernameProblem } from "../../lib/protocol/username.ts";
import { mutate, randomText } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const encoder = new TextEncoder();
const V4 = { host: "192.0.2.1", port: 4000 };
const V6 = { host: "2001:db8::7", port: 65535 };
/** The longest IPv6 endpoint text there is (without a zone). */
const LONG_V6 = { host: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", port: 65535 };
/** 32 Chinese characters: the longest name allowed, 96 bytes of UTF-8. */
const LONG_CHINESE = "张伟李娜王芳刘洋陈静杨磊赵敏黄勇周杰吴刚徐丽孙强马超朱琳胡斌郭峰";
/** A public key and a secret as real clients write them: canonical base64url. */
const KEY = encodeBase64url(Uint8Array.from({ length: 32 }, (_, i) => i * 8 + 3));
const SECRET = encodeBase64url(Uint8Array.from({ length: 16 }, (_, i) => 255 - i * 7));
const TOKEN = encodeBase64url(new Uint8Array(16).fill(0xfb));

/** Parses `text` as the coordinator does a datagram: encoded, decoded, parsed. */
function parseClientBytes(text: string): ClientMessage {
  return parseClientMessage(decodeText(encoder.encode(text)));
}

/** Parses `text` as a client does one line of a batch from the coordinator. */
function parseServerBytes(text: string): ServerMessage {
  return parseServerMessage(decodeText(encoder.encode(text), MAX_BATCH_DATAGRAM));
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

Deno.test("the test's key, secret and token have the lengths the protocol expects", () => {
  assert.equal(KEY.length, 43);
  assert.equal(SECRET.length, 22);
  assert.equal(TOKEN.length, 22);
  assert.match(TOKEN, /[-_]/); // exercises the URL-safe characters
});

Deno.test("keys, secrets and tokens are taken exactly when they are canonical base64url", () => {
  // Every last character after every other: the parsers' check of the last character agrees with
  // decoding (a canonical value re-encodes to itself).
  const accepts = (parse: () => unknown): boolean => {
    try {
      parse();
      return true;
    } catch (err) {
      assert.ok(err instanceof SeedProtocolError);
      return false;
    }
  };
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (const first of alphabet) {
    for (const last of alphabet) {
      const key = first.repeat(42) + last;
      const secret = first.repeat(21) + last;
      const canonicalKey = decodeBase64url(key) !== null;
      const canonicalSecret = decodeBase64url(secret) !== null;
      const login = `login,alice,192.0.2.1:4000,${key},${SECRET}`;
      assert.equal(accepts(() => parseClientBytes(login)), canonicalKey, key);
      const heartbeat = `heartbeat,alice,${secret}`;
      assert.equal(accepts(() => parseClientBytes(heartbeat)), canonicalSecret, secret);
      const introduce = `Introduce,bob,192.0.2.1:4000,10.0.0.2:4000,${KEY},${secret}`;
      assert.equal(accepts(() => parseServerBytes(introduce)), canonicalSecret, secret);
    }
  }
});

Deno.test("extended client messages have the documented text form", () => {
  const cases: [ClientMessage, string][] = [
    [
      { type: "login", username: "alice", endpoint: V4, ext: { key: KEY, secret: SECRET } },
      `login,alice,192.0.2.1:4000,${KEY},${SECRET}`,
    ],
    [
      { type: "login", username: "张伟", endpoint: V6, ext: { key: KEY, secret: SECRET } },
      `login,张伟,[2001:db8::7]:65535,${KEY},${SECRET}`,
    ],
    [{ type: "heartbeat", username: "bob", secret: SECRET }, `heartbeat,bob,${SECRET}`],
    [
      { type: "logout", username: "bob", endpoint: V4, secret: SECRET },
      `logout,bob,192.0.2.1:4000,${SECRET}`,
    ],
    [{ type: "connect", username: "alice", target: "张伟" }, "connect,alice,张伟"],
    [{ type: "whoami" }, "whoami," + "-".repeat(57)],
  ];
  for (const [msg, text] of cases) {
    assert.equal(encodeClientMessage(msg), text);
    assert.deepEqual(parseClientBytes(text), msg, text);
  }
});

Deno.test("the seed's 3-field login and 2-field heartbeat still parse, without extension", () => {
  const login = parseClientBytes("login,alice,192.0.2.1:4000");
  assert.deepEqual(login, { type: "login", username: "alice", endpoint: V4 });
  assert.equal("ext" in login, false);
  assert.equal(encodeClientMessage(login), "login,alice,192.0.2.1:4000");
  const beat = parseClientBytes("heartbeat,bob");
  assert.deepEqual(beat, { type: "heartbeat", username: "bob" });
  assert.equal("secret" in beat, false);
  assert.equal(encodeClientMessage(beat), "heartbeat,bob");
  const logout = parseClientBytes("logout,bob,192.0.2.1:4000");
  assert.deepEqual(logout, { type: "logout", username: "bob", endpoint: V4 });
  assert.equal(encodeClientMessage(logout), "logout,bob,192.0.2.1:4000");
});

Deno.test("extended messages tolerate one trailing newline", () => {
  assert.deepEqual(parseClientBytes("whoami\n"), { type: "whoami" });
  assert.deepEqual(parseClientBytes("connect,a,b\r\n"), {
    type: "connect",
    username: "a",
    target: "b",
  });
  assert.deepEqual(parseClientBytes(`heartbeat,a,${SECRET}\n`), {
    type: "heartbeat",
    username: "a",
    secret: SECRET,
  });
});

Deno.test("login, heartbeat and logout refuse other field counts and bad secrets", () => {
  const cases: [string, RegExp][] = [
    ["login,alice", /^Cannot parse login: expected .*fields, got 2$/],
    [`login,alice,192.0.2.1:4000,${KEY}`, /^Cannot parse login: expected .*fields, got 4$/],
    [
      `login,alice,192.0.2.1:4000,${KEY},${SECRET},x`,
      /^Cannot parse login: expected .*fields, got 6$/,
    ],
    [`heartbeat,alice,${SECRET},x`, /^Cannot parse heartbeat: expected .*fields, got 4$/],
    [`logout,alice,192.0.2.1:4000,${SECRET},x`, /^Cannot parse logout: expected .*fields, got 5$/],
    [`logout,alice,192.0.2.1:4000,${SECRET.slice(1)}`, /^Cannot parse logout: secret is not 22/],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseClientBytes(text), message);
});

Deno.test("connect and whoami refuse other field counts", () => {
  const cases: [string, string][] = [
    ["connect", "Cannot parse connect: expected 3 comma-separated fields, got 1"],
    ["connect,alice", "Cannot parse connect: expected 3 comma-separated fields, got 2"],
    ["connect,alice,bob,x", "Cannot parse connect: expected 3 comma-separated fields, got 4"],
    ["whoami,a,b", "Cannot parse whoami: expected 2 comma-separated fields, got 3"],
    [
      "whoami,é",
      "Cannot parse whoami: padding must be printable ASCII, 64 bytes in all at most",
    ],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseClientBytes(text), message);
});

Deno.test("extended client messages check names, endpoints, keys and secrets", () => {
  const login = (key: string, secret: string): string =>
    `login,alice,192.0.2.1:4000,${key},${secret}`;
  const keyError = "Cannot parse login: key is not 43 base64url characters";
  const secretError = "Cannot parse login: secret is not 22 base64url characters";
  const cases: [string, string][] = [
    [login(KEY.slice(1), SECRET), keyError],
    [login(KEY + "A", SECRET), keyError],
    [login("", SECRET), keyError],
    [login(KEY.slice(1) + "+", SECRET), keyError],
    [login(KEY.slice(1) + "/", SECRET), keyError],
    [login(KEY.slice(2) + "==", SECRET), keyError],
    [login(KEY.slice(1) + " ", SECRET), keyError],
    [login(KEY.slice(1) + "é", SECRET), keyError],
    [login(KEY, SECRET.slice(1)), secretError],
    [login(KEY, SECRET + "A"), secretError],
    [login(KEY, ""), secretError],
    [login(KEY, SECRET.slice(1) + "+"), secretError],
    [login(KEY, SECRET.slice(1) + "."), secretError],
    [login(KEY, SECRET.slice(1) + "\u0000"), secretError],
    // Swapped: each is the other's length.
    [login(SECRET, KEY), keyError],
    [
      `login,a;b,192.0.2.1:4000,${KEY},${SECRET}`,
      "Cannot parse login: username must not contain ',' or ';'",
    ],
    [
      `login,alice,192.0.2.1,${KEY},${SECRET}`,
      'Cannot parse login: Cannot parse endpoint "192.0.2.1": missing ":port"',
    ],
    [
      `heartbeat,alice,${SECRET.slice(1)}`,
      "Cannot parse heartbeat: secret is not 22 base64url characters",
    ],
    ["heartbeat,alice,", "Cannot parse heartbeat: secret is not 22 base64url characters"],
    [`heartbeat,,${SECRET}`, "Cannot parse heartbeat: username is empty"],
    ["connect,,bob", "Cannot parse connect: username is empty"],
    ["connect,alice,", "Cannot parse connect: username is empty"],
    [
      "connect,alice,end",
      'Cannot parse connect: username "end" is reserved (it ends the online list)',
    ],
    ["connect,alice, bob", "Cannot parse connect: username must not start or end with white space"],
  ];
  for (const [text, message] of cases) {
    assertSeedError(() => parseClientBytes(text), message);
  }
});

Deno.test("the longest extended login and introduction fit one datagram", () => {
  const login = encodeClientMessage({
    type: "login",
    username: LONG_CHINESE,
    endpoint: LONG_V6,
    ext: { key: KEY, secret: SECRET },
  });
  assert.ok(encoder.encode(login).length <= MAX_TEXT_DATAGRAM);
  assert.equal(parseClientBytes(login).type, "login");
  const introduce = encodeServerMessage({
    type: "introduce",
    username: LONG_CHINESE,
    observed: LONG_V6,
    claimed: LONG_V6,
    key: KEY,
    token: TOKEN,
  });
  assert.ok(encoder.encode(introduce).length <= MAX_TEXT_DATAGRAM);
  assert.equal(parseServerMessage(decodeText(encoder.encode(introduce))).type, "introduce");
});

Deno.test("extended server messages have the documented text form", () => {
  const cases: [ServerMessage, string][] = [
    [{ type: "you", endpoint: V4 }, "You,192.0.2.1:4000"],
    [{ type: "you", endpoint: V6 }, "You,[2001:db8::7]:65535"],
    [
      {
        type: "introduce",
        username: "bob",
        observed: V4,
        claimed: { host: "10.0.0.2", port: 5000 },
        key: KEY,
        token: TOKEN,
      },
      `Introduce,bob,192.0.2.1:4000,10.0.0.2:5000,${KEY},${TOKEN}`,
    ],
    [
      { type: "introduce", username: "张伟", observed: V6, claimed: V6, key: KEY, token: TOKEN },
      `Introduce,张伟,[2001:db8::7]:65535,[2001:db8::7]:65535,${KEY},${TOKEN}`,
    ],
    [
      { type: "unavailable", username: "carol", reason: "carol is not online" },
      "Unavailable,carol,carol is not online",
    ],
    [{ type: "unavailable", username: "😀", reason: "" }, "Unavailable,😀,"],
    [{ type: "knock", username: "mallory", key: KEY }, `Knock,mallory,${KEY}`],
    [{ type: "knock", username: "张伟", key: KEY }, `Knock,张伟,${KEY}`],
  ];
  for (const [msg, text] of cases) {
    assert.equal(encodeServerMessage(msg), text);
    assert.deepEqual(parseServerBytes(text), msg, text);
  }
});

Deno.test("Unavailable keeps commas in its reason, and its encoder cleans the reason", () => {
  assert.deepEqual(parseServerMessage("Unavailable,bob,not online, try later"), {
    type: "unavailable",
    username: "bob",
    reason: "not online, try later",
  });
  const text = encodeServerMessage({
    type: "unavailable",
    username: "bob",
    reason: "a,b;c\nd\u001b[31m\u2028" + "x".repeat(500),
  });
  assert.ok(text.startsWith("Unavailable,bob,a b c d [31m "), text);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(text.slice("Unavailable,bob,".length), /[,;\u0000-\u001f\u2028]/);
  assert.ok(encoder.encode(text).length <= MAX_TEXT_DATAGRAM);
  const parsed = parseServerBytes(text);
  assert.equal(parsed.type, "unavailable");
  if (parsed.type === "unavailable") assert.equal(parsed.username, "bob");
});

Deno.test("extended server messages refuse bad fields with the reason", () => {
  const intro = (
    {
      user = "bob",
      observed = "192.0.2.1:4000",
      claimed = "10.0.0.2:5000",
      key = KEY,
      token = TOKEN,
    }: Record<string, string> = {},
  ): string => `Introduce,${user},${observed},${claimed},${key},${token}`;
  const cases: [string, string][] = [
    ["You", 'Cannot parse You: Cannot parse endpoint "": missing ":port"'],
    ["You,", 'Cannot parse You: Cannot parse endpoint "": missing ":port"'],
    ["You,[::1]", 'Cannot parse You: Cannot parse endpoint "[::1]": expected [v6]:port'],
    [
      "You,192.0.2.1:4000,x",
      'Cannot parse You: Cannot parse endpoint "192.0.2.1:4000,x": port "4000,x" is not a number',
    ],
    [
      `Introduce,bob,192.0.2.1:4000,10.0.0.2:5000,${KEY}`,
      "Cannot parse Introduce: expected 6 comma-separated fields, got 5",
    ],
    [intro() + ",x", 'Cannot parse Introduce: NAT kind "x" is not easy or hard'],
    [intro() + ",easy,x", "Cannot parse Introduce: expected <nat>,<candidates> last"],
    [intro() + ",easy,x,y", "Cannot parse Introduce: expected 6 comma-separated fields, got 9"],
    ["Introduce", "Cannot parse Introduce: expected 6 comma-separated fields, got 1"],
    [intro({ user: "" }), "Cannot parse Introduce: username is empty"],
    [
      intro({ user: "a\u0000" }),
      "Cannot parse Introduce: username must not contain control characters",
    ],
    [
      intro({ observed: "192.0.2.1" }),
      'Cannot parse Introduce: Cannot parse endpoint "192.0.2.1": missing ":port"',
    ],
    [
      intro({ claimed: "10.0.0.2:0" }),
      'Cannot parse Introduce: Cannot parse endpoint "10.0.0.2:0": port 0 is out of range 1-65535',
    ],
    [intro({ key: KEY.slice(1) }), "Cannot parse Introduce: key is not 43 base64url characters"],
    [
      intro({ key: KEY.slice(1) + "=" }),
      "Cannot parse Introduce: key is not 43 base64url characters",
    ],
    [intro({ token: KEY }), "Cannot parse Introduce: token is not 22 base64url characters"],
    [
      intro({ token: TOKEN.slice(1) + "/" }),
      "Cannot parse Introduce: token is not 22 base64url characters",
    ],
    ["Knock", "Cannot parse Knock: expected 3 comma-separated fields, got 1"],
    [`Knock,bob,${KEY},x`, "Cannot parse Knock: expected 3 comma-separated fields, got 4"],
    [`Knock,,${KEY}`, "Cannot parse Knock: username is empty"],
    ["Knock,bob," + TOKEN, "Cannot parse Knock: key is not 43 base64url characters"],
    [`Knock,bob,${KEY.slice(0, 42)}B`, "Cannot parse Knock: key is not canonical base64url"],
    ["Unavailable", "Cannot parse Unavailable: missing reason"],
    ["Unavailable,bob", "Cannot parse Unavailable: missing reason"],
    ["Unavailable,,gone", "Cannot parse Unavailable: username is empty"],
    [
      "Unavailable, bob,gone",
      "Cannot parse Unavailable: username must not start or end with white space",
    ],
    // Verbs are case-sensitive: these are what clients send, not the server.
    ["you,192.0.2.1:4000", 'Cannot parse message: unknown message type "you"'],
    ["whoami", 'Cannot parse message: unknown message type "whoami"'],
    ["connect,a,b", 'Cannot parse message: unknown message type "connect"'],
  ];
  for (const [text, message] of cases) assertSeedError(() => parseServerMessage(text), message);
  // Server verbs are not client verbs either.
  for (const text of ["You,192.0.2.1:4000", intro(), "Unavailable,bob,x", "Whoami"]) {
    assertSeedError(() => parseClientBytes(text), /^Cannot parse message: unknown message type/);
  }
});

Deno.test("decodeText enforces its limit: 512 bytes by default, a batch's 1400 when asked", () => {
  assert.equal(MAX_TEXT_DATAGRAM, 512);
  assert.equal(MAX_BATCH_DATAGRAM, 1400);
  assert.equal(decodeText(encoder.encode("x".repeat(512))), "x".repeat(512));
  assertSeedError(
    () => decodeText(encoder.encode("x".repeat(513))),
    "Cannot parse message: 513 bytes is longer than the 512-byte limit",
  );
  const batch = `You,192.0.2.1:4000\n${"y".repeat(1381)}`;
  assert.equal(encoder.encode(batch).length, 1400);
  assert.equal(decodeText(encoder.encode(batch), MAX_BATCH_DATAGRAM), batch);
  assertSeedError(
    () => decodeText(encoder.encode(batch + "z"), MAX_BATCH_DATAGRAM),
    "Cannot parse message: 1401 bytes is longer than the 1400-byte limit",
  );
  assertSeedError(
    () => decodeText(encoder.encode("x".repeat(513)), 512),
    "Cannot parse message: 513 bytes is longer than the 512-byte limit",
  );
  assertSeedError(() => decodeText(new Uint8Array([0x61]), 0), /1 bytes is longer than the 0-byte/);
  // The limit is checked before decoding, so an oversized invalid datagram reports its size.
  assertSeedError(
    () => decodeText(new Uint8Array(2000).fill(0xff), MAX_BATCH_DATAGRAM),
    "Cannot parse message: 2000 bytes is longer than the 1400-byte limit",
  );
  for (
    const bytes of [
      [0xff],
      [0x61, 0xc3],
      [...encoder.encode("Unavailable,张"), 0xe4, 0xbc],
      [0xed, 0xa0, 0x80],
    ]
  ) {
    assertSeedError(
      () => decodeText(new Uint8Array(bytes), MAX_BATCH_DATAGRAM),
      "Cannot parse message: it is not valid UTF-8",
    );
  }
});

const PIECES = [
  "login",
  "heartbeat",
  "connect",
  "whoami",
  "You",
  "Introduce",
  "Unavailable",
  "Knock",
  "Challenge",
  ",",
  ",",
  ",",
  ";",
  ":",
  "[",
  "]",
  " ",
  "\n",
  "\u0000",
  "\ufeff",
  "alice",
  "张伟",
  "😀",
  "192.0.2.1:4000",
  "[::1]:9",
  "65536",
  KEY,
  SECRET,
  TOKEN,
  "A",
  "-",
  "_",
  "=",
  "+",
];
/** How extension fuzz texts are made from PIECES. */
const TEXT = { maxPieces: 16, pieceShare: 0.8 };

/** Bytes our extension fields care about (separators and the base64url alphabet's edges). */
const SPECIAL = [0x2c, 0x3b, 0x3a, 0x0a, 0x00, 0x20, 0x2d, 0x5f, 0x2b, 0x3d, 0xff, 0xe5, 0x80];

function tryParse<T>(parse: () => T, input: unknown): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (err instanceof SeedProtocolError) return undefined;
    assert.fail(`unexpected ${err} for input ${JSON.stringify(input)}`);
  }
}

Deno.test("fuzz: extended client messages throw only SeedProtocolError and round-trip", () => {
  const rand = prng(0xe87);
  const corpus = [
    `login,alice,192.0.2.1:4000,${KEY},${SECRET}`,
    `login,${LONG_CHINESE},[2001:db8::7]:65535,${KEY},${SECRET}`,
    `login,alice,192.0.2.1:4000,${KEY},${SECRET},${TOKEN},${SECRET}`,
    "login,bob,10.0.0.1:1",
    `heartbeat,😀,${SECRET}`,
    "connect,alice,张伟",
    "whoami",
  ].map((t) => encoder.encode(t));
  const seen = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    const bytes = i % 2 === 0
      ? encoder.encode(randomText(rand, PIECES, TEXT))
      : mutate(rand, corpus[(i >> 1) % corpus.length], SPECIAL);
    const msg = tryParse(() => parseClientMessage(decodeText(bytes)), [...bytes]);
    if (!msg) continue;
    seen.add(
      msg.type + ("ext" in msg ? "+ext" : "") + ("secret" in msg ? "+secret" : "") +
        (msg.type === "login" && msg.ext?.proof ? "+proof" : ""),
    );
    if ("username" in msg) assert.equal(usernameProblem(msg.username), undefined);
    if (msg.type === "connect") assert.equal(usernameProblem(msg.target), undefined);
    if (msg.type === "login" && msg.ext) {
      assert.match(msg.ext.key, /^[A-Za-z0-9_-]{43}$/);
      assert.match(msg.ext.secret, /^[A-Za-z0-9_-]{22}$/);
      if (msg.ext.proof) assert.match(msg.ext.proof.nonce + msg.ext.proof.mac, /^[\w-]{44}$/);
    }
    // Whatever parses encodes back to text that parses to the same message.
    assert.deepEqual(parseClientBytes(encodeClientMessage(msg)), msg);
  }
  for (
    const kind of ["login", "login+ext", "login+ext+proof", "heartbeat+secret", "connect", "whoami"]
  ) {
    assert.ok(seen.has(kind), `the fuzzer never parsed a ${kind}: saw ${[...seen]}`);
  }
});

Deno.test("fuzz: extended server messages throw only SeedProtocolError and round-trip", () => {
  const rand = prng(0x5e4e);
  const lenient = new TextDecoder();
  const corpus = [
    "You,192.0.2.1:4000",
    "You,[2001:db8::7]:65535",
    `Introduce,bob,192.0.2.1:4000,10.0.0.2:5000,${KEY},${TOKEN}`,
    `Introduce,${LONG_CHINESE},[::1]:9,[::1]:9,${KEY},${TOKEN}`,
    "Unavailable,carol,carol is not online",
    `Knock,mallory,${KEY}`,
    `Knock,${LONG_CHINESE},${KEY}`,
    `Challenge,${KEY},${TOKEN}`,
    "Replaced,张伟",
  ].map((t) => encoder.encode(t));
  const seen = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    // Also raw JS strings (lone surrogates included), not only what decodeText lets through.
    const text = i % 2 === 0
      ? randomText(rand, PIECES, TEXT)
      : lenient.decode(mutate(rand, corpus[(i >> 1) % corpus.length], SPECIAL));
    const msg = tryParse(() => parseServerMessage(text), text);
    if (!msg) continue;
    seen.add(msg.type);
    const again = encodeServerMessage(msg);
    if (msg.type === "unavailable") {
      // The encoder cleans the reason; the name and verb survive as they were.
      const back = parseServerMessage(again);
      assert.equal(back.type, "unavailable");
      if (back.type === "unavailable") assert.equal(back.username, msg.username);
      assert.ok(encoder.encode(again).length <= MAX_TEXT_DATAGRAM);
    } else {
      assert.deepEqual(parseServerMessage(again), msg);
    }
  }
  for (const kind of ["you", "introduce", "unavailable", "knock", "challenge"]) {
    assert.ok(seen.has(kind), `the fuzzer never parsed a ${kind}: saw ${[...seen]}`);
  }
});

Deno.test("a login may carry a proof of key; Challenge carries the coordinator's key and a nonce", () => {
  const proof = { nonce: TOKEN, mac: SECRET };
  const login = {
    type: "login",
    username: "alice",
    endpoint: V4,
    ext: { key: KEY, secret: SECRET, proof },
  };
  const text = `login,alice,192.0.2.1:4000,${KEY},${SECRET},${TOKEN},${SECRET}`;
  assert.equal(encodeClientMessage(login as ClientMessage), text);
  assert.deepEqual(parseClientBytes(text), login);
  const challenge = { type: "challenge", serverKey: KEY, nonce: TOKEN } as const;
  assert.equal(encodeServerMessage(challenge), `Challenge,${KEY},${TOKEN}`);
  assert.deepEqual(parseServerBytes(`Challenge,${KEY},${TOKEN}`), challenge);
  // Never longer than the shortest login it answers (no amplification): 76 bytes against 83.
  const shortest = `login,a,1.2.3.4:5,${KEY},${SECRET}`;
  assert.ok(encodeServerMessage(challenge).length < shortest.length);
  for (
    const [bad, why] of [
      [
        `login,alice,192.0.2.1:4000,${KEY},${SECRET},${TOKEN}`,
        /expected 3 comma-separated fields, got 6/,
      ],
      [`login,alice,192.0.2.1:4000,${KEY},${SECRET},${TOKEN},short`, /proof is not 22 base64url/],
      [
        `login,alice,192.0.2.1:4000,${KEY},${SECRET},${TOKEN.slice(0, -1)}B,${SECRET}`,
        /nonce is not canonical/,
      ],
    ] as const
  ) {
    assertSeedError(() => parseClientBytes(bad), why);
  }
  const replaced = { type: "replaced", username: "alice" } as const;
  assert.equal(encodeServerMessage(replaced), "Replaced,alice");
  assert.deepEqual(parseServerBytes("Replaced,alice"), replaced);
  assertSeedError(() => parseServerBytes("Replaced,a;b"), /Cannot parse Replaced/);
  assertSeedError(() => parseServerBytes(`Challenge,${KEY}`), /expected 3 comma-separated fields/);
  assertSeedError(() => parseServerBytes(`Challenge,${KEY},${KEY}`), /nonce is not 22 base64url/);
});

Deno.test("NAT kinds travel in nat reports and introductions", () => {
  assert.deepEqual(parseClientMessage("nat,alice,hard"), {
    type: "nat",
    username: "alice",
    nat: "hard",
  });
  assert.equal(
    encodeClientMessage({ type: "nat", username: "张伟", nat: "easy" }),
    "nat,张伟,easy",
  );
  assert.throws(() => parseClientMessage("nat,alice,cone"), SeedProtocolError);
  assert.throws(() => parseClientMessage("nat,alice"), SeedProtocolError);
  const intro = {
    type: "introduce" as const,
    username: "bob",
    observed: { host: "198.51.100.7", port: 4000 },
    claimed: { host: "10.0.0.7", port: 4000 },
    key: "A".repeat(43),
    token: "B".repeat(21) + "A",
    nat: "hard" as const,
  };
  const text = encodeServerMessage(intro);
  assert.match(text, /,hard$/);
  assert.deepEqual(parseServerMessage(text), intro);
  const { nat: _, ...withoutNat } = intro;
  assert.deepEqual(parseServerMessage(encodeServerMessage(withoutNat)), withoutNat);
});
