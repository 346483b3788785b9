/** The cluster codec (lib/protocol/cluster.ts): round trips, checks, subjects, and a fuzz run. */
import assert from "node:assert/strict";
import { decodeBase64url, encodeBase64url } from "../../lib/protocol/base64url.ts";
import {
  type ClusterMessage,
  ClusterProtocolError,
  clusterSubject,
  decodeClusterMessage,
  encodeClusterMessage,
  parseClusterSubject,
} from "../../lib/protocol/cluster.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const KEY = encodeBase64url(new Uint8Array(32).fill(1));
const ALICE = {
  name: "alice",
  observed: { host: "192.0.2.1", port: 4000 },
  claimed: { host: "10.0.0.2", port: 4000 },
  key: KEY,
  nat: "easy" as const,
};
const encoder = new TextEncoder();

const SAMPLES: ClusterMessage[] = [
  { t: "beat", boot: "b1", seq: 4, users: 2 },
  {
    t: "presence",
    boot: "b1",
    seq: 5,
    changes: [ALICE, { name: "bob", gone: true }, {
      name: "张伟",
      observed: { host: "2001:db8::1", port: 9 },
      claimed: { host: "2001:db8::1", port: 9 },
    }],
  },
  { t: "presence", boot: "b1", seq: 6, changes: [{ name: "bob", gone: true }], at: 1765e9 + 0.25 },
  { t: "want" },
  { t: "snapshot", boot: "b1", seq: 5, part: 0, parts: 2, users: [ALICE] },
  { t: "connect", from: "alice", to: "bob" },
  { t: "deliver", to: "bob", msg: { type: "knock", username: "alice", key: KEY } },
  { t: "relay", from: "alice", to: "bob", inner: new Uint8Array([0, 1, 2, 255]) },
];

Deno.test("cluster codec: every message round-trips", () => {
  for (const msg of SAMPLES) assert.deepEqual(decodeClusterMessage(encodeClusterMessage(msg)), msg);
});

Deno.test("cluster codec: bad fields are refused with the reason", () => {
  const bad = (body: unknown, reason: RegExp) =>
    assert.throws(
      () => decodeClusterMessage(encoder.encode(JSON.stringify(body))),
      (err) => err instanceof ClusterProtocolError && reason.test(err.message),
    );
  bad({ t: "nope" }, /unknown message type/);
  bad([], /not an object/);
  bad({ t: "beat", boot: "b", seq: -1, users: 0 }, /seq is not a count/);
  bad({ t: "presence", boot: "b", seq: 1, changes: [{ name: "a,b" }] }, /must not contain/);
  bad({ t: "presence", boot: "b", seq: 1, changes: [{ ...json(ALICE), key: "short" }] }, /key/);
  bad(
    { t: "presence", boot: "b", seq: 1, changes: [{ ...json(ALICE), observed: "x" }] },
    /observed/,
  );
  bad({ t: "presence", boot: "b", seq: 1, changes: [], at: -1 }, /at is not a time/);
  bad({ t: "presence", boot: "b", seq: 1, changes: [], at: "now" }, /at is not a time/);
  bad({ t: "snapshot", boot: "b", seq: 1, part: 2, parts: 2, users: [] }, /impossible/);
  bad({ t: "deliver", to: "bob", msg: "Accept,7000" }, /not for members to route/);
  bad({ t: "relay", from: "a", to: "b", inner: "!!!" }, /base64/);
  assert.throws(() => decodeClusterMessage(new Uint8Array([0xff, 0xfe])), ClusterProtocolError);
});

Deno.test("cluster codec: a key is taken exactly when it decodes to 32 bytes", () => {
  // The codec checks a key's form without decoding it; the two must agree, one character off
  // included (a non-canonical last character, a character outside the alphabet, a length).
  const random = prng(7);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.";
  const takes = (key: string) => {
    const change = { ...json(ALICE), key };
    const body = encoder.encode(
      JSON.stringify({ t: "presence", boot: "b", seq: 1, changes: [change] }),
    );
    try {
      decodeClusterMessage(body);
      return true;
    } catch (err) {
      assert(err instanceof ClusterProtocolError);
      return false;
    }
  };
  let taken = 0;
  for (let i = 0; i < 3000; i++) {
    const bytes = new Uint8Array(i % 3 === 0 ? 30 + (i % 5) : 32);
    for (let b = 0; b < bytes.length; b++) bytes[b] = Math.floor(random() * 256);
    let key = encodeBase64url(bytes);
    if (i % 2 === 1) {
      const at = Math.floor(random() * key.length);
      key = key.slice(0, at) + alphabet[Math.floor(random() * alphabet.length)] + key.slice(at + 1);
    }
    const expected = decodeBase64url(key)?.length === 32;
    assert.equal(takes(key), expected, key);
    if (expected) taken++;
  }
  assert(taken > 1000 && taken < 2500, `${taken} of 3000 keys taken`);
});

Deno.test("cluster codec: subjects name the sender last, and are checked", () => {
  assert.equal(clusterSubject("c", "presence", "a"), "p2p.c.presence.a");
  assert.equal(clusterSubject("c", "to", "a", "b"), "p2p.c.to.b.a");
  assert.deepEqual(parseClusterSubject("c", "p2p.c.to.b.a"), {
    kind: "to",
    addressee: "b",
    sender: "a",
  });
  assert.deepEqual(parseClusterSubject("c", "p2p.c.beat.a"), { kind: "beat", sender: "a" });
  for (const s of ["p2p.d.beat.a", "p2p.c.beat", "p2p.c.beat.a.b", "p2p.c.x.a", "p2p.c.to.b"]) {
    assert.throws(() => parseClusterSubject("c", s), ClusterProtocolError);
  }
  assert.throws(() => clusterSubject("c.d", "beat", "a"), /not a valid community/);
});

Deno.test("cluster codec fuzz: 20,000 mutated and random bodies decode or are refused", () => {
  const rand = prng(Number(Deno.env.get("FUZZ_SEED") ?? 1616));
  const valid = SAMPLES.map(encodeClusterMessage);
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const input = rand() < 0.9
      ? mutate(rand, valid[Math.floor(rand() * valid.length)])
      : randomBytes(rand, 300);
    try {
      const msg = decodeClusterMessage(input);
      // What decodes encodes again to something that decodes the same.
      assert.deepEqual(decodeClusterMessage(encodeClusterMessage(msg)), msg);
      decoded++;
    } catch (err) {
      if (!(err instanceof ClusterProtocolError)) throw err;
    }
  }
  assert.ok(decoded > 100, `only ${decoded} mutated bodies were still valid`);
});

function json(u: typeof ALICE): Record<string, unknown> {
  return { ...u, observed: "192.0.2.1:4000", claimed: "10.0.0.2:4000" };
}
