import assert from "node:assert/strict";
import {
  CandidateListError,
  formatCandidateList,
  MAX_ANNOUNCED,
  parseCandidateList,
} from "../../lib/protocol/candidates.ts";
import {
  decodeText,
  encodeClientMessage,
  encodeServerMessage,
  MAX_BATCH_DATAGRAM,
  parseClientMessage,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "../../lib/protocol/seed.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { mutate } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const encoder = new TextEncoder();
const KEY = encodeBase64url(Uint8Array.from({ length: 32 }, (_, i) => i * 8 + 3));
const SECRET = encodeBase64url(Uint8Array.from({ length: 16 }, (_, i) => 255 - i * 7));
const TOKEN = encodeBase64url(new Uint8Array(16).fill(0xfb));
const V6 = { kind: "v6" as const, endpoint: { host: "2001:db8::7", port: 4000 } };
const MAPPED = { kind: "mapped" as const, endpoint: { host: "203.0.113.5", port: 41000 } };

Deno.test("candidate lists round-trip; the empty list is the empty text", () => {
  const text = "v6=[2001:db8::7]:4000;mapped=203.0.113.5:41000";
  assert.deepEqual(parseCandidateList(text), [V6, MAPPED]);
  assert.equal(formatCandidateList([V6, MAPPED]), text);
  assert.deepEqual(parseCandidateList(""), []);
  assert.equal(formatCandidateList([]), "");
  // IPv6 addresses come back canonical, so that a probe's source matches; twice is twice.
  assert.deepEqual(parseCandidateList("v6=[2001:DB8:0:0::0007]:4000"), [V6]);
  assert.throws(
    () => parseCandidateList("v6=[2001:db8::7]:4000;mapped=[2001:0db8::7]:4000"),
    /given twice/,
  );
  // A mapping may be IPv6 too (a PCP firewall pinhole).
  assert.deepEqual(parseCandidateList("mapped=[2001:db8::9]:1"), [
    { kind: "mapped", endpoint: { host: "2001:db8::9", port: 1 } },
  ]);
});

Deno.test("candidate lists: bad input is refused with the reason", () => {
  const refused = (text: string, why: RegExp) =>
    assert.throws(() => parseCandidateList(text), (e: unknown) => {
      assert.ok(e instanceof CandidateListError);
      assert.match(e.message, why);
      return true;
    });
  refused("lan=10.0.0.1:4000", /is not <kind>=<endpoint>/);
  refused("v6", /is not <kind>=<endpoint>/);
  refused("v6=192.0.2.1:4000", /needs an IPv6 address/);
  refused("mapped=203.0.113.5", /missing ":port"/);
  refused("mapped=203.0.113.5:0", /out of range/);
  refused("mapped=203.0.113.5:1;mapped=203.0.113.5:1", /given twice/);
  refused(";", /is not <kind>=<endpoint>/);
  const five = Array.from({ length: MAX_ANNOUNCED + 1 }, (_, i) => `mapped=192.0.2.1:${i + 1}`);
  refused(five.join(";"), /5 entries, at most 4/);
  assert.equal(parseCandidateList(five.slice(1).join(";")).length, MAX_ANNOUNCED);
});

Deno.test("candidates: the client message carries the owner's secret and its whole list", () => {
  const msg = { type: "candidates" as const, username: "alice", secret: SECRET };
  const full = `candidates,alice,${SECRET},v6=[2001:db8::7]:4000;mapped=203.0.113.5:41000`;
  assert.equal(encodeClientMessage({ ...msg, candidates: [V6, MAPPED] }), full);
  assert.deepEqual(parseClientMessage(full), { ...msg, candidates: [V6, MAPPED] });
  assert.equal(encodeClientMessage({ ...msg, candidates: [] }), `candidates,alice,${SECRET}`);
  assert.deepEqual(parseClientMessage(`candidates,alice,${SECRET}`), { ...msg, candidates: [] });
  for (
    const bad of [
      `candidates,alice,${SECRET},`,
      "candidates,alice",
      `candidates,alice,nosecret,v6=[::1]:1`,
      `candidates,alice,${SECRET},v6=[::1]:1,mapped=192.0.2.1:1`,
      `candidates,alice,${SECRET},v6=1.2.3.4:5`,
    ]
  ) {
    assert.throws(() => parseClientMessage(bad), SeedProtocolError, bad);
  }
  // The longest announcement still fits a text datagram.
  const long = Array.from({ length: MAX_ANNOUNCED }, (_, i) => ({
    kind: "v6" as const,
    endpoint: { host: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.${i}`, port: 65535 },
  }));
  const text = encodeClientMessage({ ...msg, username: "a".repeat(32), candidates: long });
  assert.ok(text.length < 512, `${text.length} bytes`);
  assert.equal(parseClientMessage(decodeText(encoder.encode(text))).type, "candidates");
});

Deno.test("Introduce: candidates after the NAT kind, or alone; told apart by their =", () => {
  const base = `Introduce,bob,198.51.100.2:4000,198.51.100.2:4000,${KEY},${TOKEN}`;
  const intro: ServerMessage = {
    type: "introduce",
    username: "bob",
    observed: { host: "198.51.100.2", port: 4000 },
    claimed: { host: "198.51.100.2", port: 4000 },
    key: KEY,
    token: TOKEN,
  };
  const cases: [string, ServerMessage][] = [
    [base, intro],
    [`${base},hard`, { ...intro, nat: "hard" }],
    [`${base},v6=[2001:db8::7]:4000`, { ...intro, candidates: [V6] }],
    [
      `${base},easy,v6=[2001:db8::7]:4000;mapped=203.0.113.5:41000`,
      { ...intro, nat: "easy", candidates: [V6, MAPPED] },
    ],
  ];
  for (const [text, msg] of cases) {
    assert.equal(encodeServerMessage(msg), text);
    assert.deepEqual(parseServerMessage(text), msg);
  }
  // An empty list is not sent at all.
  assert.equal(encodeServerMessage({ ...intro, candidates: [] }), base);
  for (
    const bad of [
      `${base},`,
      `${base},hard,easy`,
      `${base},v6=[2001:db8::7]:4000,hard`,
      `${base},hard,v6=[2001:db8::7]:4000,x`,
      `${base},v6=[2001:db8::7]:4000,mapped=203.0.113.5:1`,
      `${base},hard,mapped=`,
    ]
  ) {
    assert.throws(() => parseServerMessage(bad), SeedProtocolError, bad);
  }
});

function tryParse<T>(parse: () => T, input: Uint8Array): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (err instanceof SeedProtocolError || err instanceof CandidateListError) return undefined;
    assert.fail(`unexpected ${err} for input ${JSON.stringify([...input])}`);
  }
}

Deno.test("fuzz: candidate fields throw only protocol errors and what parses round-trips", () => {
  const rand = prng(0xca9d);
  const special = [0x2c, 0x3b, 0x3a, 0x3d, 0x5b, 0x5d, 0x2e, 0x30, 0x39, 0x66, 0x00, 0xff];
  const corpus = [
    `candidates,alice,${SECRET},v6=[2001:db8::7]:4000;mapped=203.0.113.5:41000`,
    `candidates,alice,${SECRET}`,
    `Introduce,bob,198.51.100.2:4000,10.0.0.2:4000,${KEY},${TOKEN},easy,v6=[::1]:1`,
    `Introduce,bob,198.51.100.2:4000,10.0.0.2:4000,${KEY},${TOKEN},mapped=192.0.2.1:9`,
    "v6=[2001:db8::7]:4000;mapped=203.0.113.5:41000;mapped=[2001:db8::1]:2;v6=[::2]:3",
  ].map((t) => encoder.encode(t));
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const bytes = mutate(rand, corpus[i % corpus.length], special);
    let text: string;
    try {
      text = decodeText(bytes, MAX_BATCH_DATAGRAM);
    } catch {
      continue;
    }
    if (i % corpus.length === 4) {
      const list = tryParse(() => parseCandidateList(text), bytes);
      if (list) {
        seen.add("list");
        assert.ok(list.length <= MAX_ANNOUNCED);
        assert.deepEqual(parseCandidateList(formatCandidateList(list)), list);
      }
    } else if (text.startsWith("Introduce")) {
      const msg = tryParse(() => parseServerMessage(text), bytes);
      if (msg?.type === "introduce") {
        seen.add(msg.candidates ? "introduce+candidates" : "introduce");
        assert.deepEqual(parseServerMessage(encodeServerMessage(msg)), msg);
      }
    } else {
      const msg = tryParse(() => parseClientMessage(text), bytes);
      if (msg?.type === "candidates") {
        seen.add(`candidates${msg.candidates.length}`);
        assert.ok(msg.candidates.length <= MAX_ANNOUNCED);
        assert.deepEqual(parseClientMessage(encodeClientMessage(msg)), msg);
      }
    }
  }
  for (const k of ["list", "introduce", "introduce+candidates", "candidates0", "candidates2"]) {
    assert.ok(seen.has(k), `no fuzz case parsed as ${k}: ${[...seen]}`);
  }
});
