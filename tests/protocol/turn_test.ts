import assert from "node:assert/strict";
import {
  checkIntegrity,
  decodeChannelData,
  decodeTurnMessage,
  encodeBase64,
  encodeChannelData,
  encodeTurnMessage,
  formatIp,
  ipBytes,
  isChannelData,
  isTurnMessage,
  longTermKey,
  TurnCodecError,
  type TurnMessage,
} from "../../lib/protocol/turn.ts";
import {
  formatTurnUri,
  parseTurnUri,
  turnCredentials,
  TurnUriError,
} from "../../lib/protocol/turn_credentials.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const hex = (s: string) =>
  new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((h) => parseInt(h, 16)));

// RFC 5769 §2.2: a Binding success response with XOR-MAPPED-ADDRESS 192.0.2.1:32853,
// MESSAGE-INTEGRITY with the short-term password "VOkJxbRl1RmTxUk/WvJxBt", and FINGERPRINT.
const RFC5769_RESPONSE = hex(`
  0101003c 2112a442 b7e7a701 bc34d686 fa87dfae 8022000b 74657374 20766563
  746f7220 00200008 0001a147 e112a643 00080014 2b91f599 fd9e90c3 8c7489f9
  2af9ba53 f06be7d7 80280004 c07d4c96`);

Deno.test("turn codec reads the RFC 5769 response: XOR-MAPPED-ADDRESS and its integrity", () => {
  const msg = decodeTurnMessage(RFC5769_RESPONSE);
  assert.equal(msg.method, "binding");
  assert.equal(msg.cls, "success");
  assert.deepEqual(msg.attributes.mapped, { host: "192.0.2.1", port: 32853 });
  const key = new TextEncoder().encode("VOkJxbRl1RmTxUk/WvJxBt");
  assert.ok(checkIntegrity(RFC5769_RESPONSE, msg, key));
  assert.ok(!checkIntegrity(RFC5769_RESPONSE, msg, new TextEncoder().encode("wrong")));
});

Deno.test("turn codec: every attribute round-trips, signed, IPv4 and IPv6", () => {
  const key = longTermKey("1700000000:alice", "p2p", "pass");
  const message: TurnMessage = {
    method: "channel-bind",
    cls: "request",
    transactionId: new Uint8Array(12).fill(7),
    attributes: {
      username: "1700000000:alice",
      realm: "p2p",
      nonce: "abc",
      lifetime: 600,
      requestedTransport: 17,
      channel: 0x4001,
      peer: { host: "2001:db8::1", port: 4000 },
      relayed: { host: "203.0.113.9", port: 49152 },
      mapped: { host: "::ffff:c000:201", port: 1 },
      data: new Uint8Array([1, 2, 3, 4, 5]),
      errorCode: { code: 438, reason: "Stale Nonce" },
    },
  };
  const bytes = encodeTurnMessage(message, key);
  assert.ok(isTurnMessage(bytes));
  const back = decodeTurnMessage(bytes);
  assert.equal(back.method, "channel-bind");
  assert.equal(back.cls, "request");
  assert.deepEqual(back.attributes, message.attributes);
  assert.ok(checkIntegrity(bytes, back, key));
  bytes[bytes.length - 1] ^= 1; // the HMAC's last byte
  assert.ok(!checkIntegrity(bytes, decodeTurnMessage(bytes), key));
});

Deno.test("turn codec on the STUN layer: FINGERPRINT checked, big DATA, a peer's port 0", () => {
  const bad = RFC5769_RESPONSE.slice();
  bad[bad.length - 1] ^= 1; // the FINGERPRINT's last byte
  assert.throws(() => decodeTurnMessage(bad), TurnCodecError);
  // A Data indication over the 1,280 bytes a Binding answer is held to still decodes.
  const data = new Uint8Array(1400).fill(9);
  const indication = encodeTurnMessage({
    method: "data",
    cls: "indication",
    transactionId: new Uint8Array(12),
    attributes: { peer: { host: "198.51.100.7", port: 0 }, data },
  });
  assert.deepEqual(decodeTurnMessage(indication).attributes, {
    peer: { host: "198.51.100.7", port: 0 },
    data,
  });
});

Deno.test("turn codec: every method and class survives its interleaved type bits", () => {
  for (const method of ["allocate", "refresh", "send", "data", "create-permission"] as const) {
    for (const cls of ["request", "indication", "success", "error"] as const) {
      const id = new Uint8Array(12);
      const m = decodeTurnMessage(
        encodeTurnMessage({ method, cls, transactionId: id, attributes: {} }),
      );
      assert.deepEqual([m.method, m.cls], [method, cls]);
    }
  }
  // Allocate request is 0x0003, its error response 0x0113 (RFC 8656 §17).
  const err = encodeTurnMessage({
    method: "allocate",
    cls: "error",
    transactionId: new Uint8Array(12),
    attributes: {},
  });
  assert.deepEqual([err[0], err[1]], [0x01, 0x13]);
});

Deno.test("ChannelData: framing, padding optional on input, range checked", () => {
  const frame = encodeChannelData(0x4000, new Uint8Array([1, 2, 3]));
  assert.deepEqual(frame, new Uint8Array([0x40, 0, 0, 3, 1, 2, 3, 0]));
  assert.ok(isChannelData(frame) && !isTurnMessage(frame));
  assert.deepEqual(decodeChannelData(frame.subarray(0, 7)), {
    channel: 0x4000,
    data: new Uint8Array([1, 2, 3]),
  });
  assert.throws(() => decodeChannelData(new Uint8Array([0x40, 0, 0, 9, 1])), TurnCodecError);
  assert.throws(() => encodeChannelData(0x3fff, new Uint8Array()), RangeError);
});

Deno.test("IP addresses: bytes and RFC 5952 text", () => {
  for (
    const ip of ["127.0.0.1", "::1", "2001:db8::1", "fe80::1:0:0:2", "2001:db8:0:1:1:1:1:1", "::"]
  ) {
    assert.equal(formatIp(ipBytes(ip)), ip);
  }
  assert.equal(formatIp(ipBytes("2001:DB8:0:0:0:0:0:1")), "2001:db8::1");
  for (const bad of ["1.2.3", "256.0.0.1", "1::2::3", "host", "1:2:3:4:5:6:7:8:9"]) {
    assert.throws(() => ipBytes(bad), RangeError, bad);
  }
});

Deno.test("TURN REST credentials: expiry:name and base64(HMAC-SHA1(secret, username))", () => {
  const secret = new TextEncoder().encode("north");
  const c = turnCredentials({ secret, name: "alice", nowMs: 1_700_000_000_000, ttlMs: 3_600_000 });
  assert.equal(c.username, "1700003600:alice");
  assert.equal(c.expiresAtMs, 1_700_003_600_000);
  // printf %s 1700003600:alice | openssl dgst -sha1 -hmac north -binary | base64
  assert.equal(c.password, "wjwSXO2ch1B6VaLTLMy2Avn5O9o=");
  assert.equal(encodeBase64(new Uint8Array([0xff])), "/w==");
});

Deno.test("turn: URIs", () => {
  assert.deepEqual(parseTurnUri("turn:192.0.2.7:3478"), { host: "192.0.2.7", port: 3478 });
  assert.deepEqual(parseTurnUri("turn:[2001:db8::7]:5349"), { host: "2001:db8::7", port: 5349 });
  assert.deepEqual(parseTurnUri("turn:turn.example.org"), { host: "turn.example.org", port: 3478 });
  assert.equal(formatTurnUri({ host: "::1", port: 3478 }), "turn:[::1]:3478");
  for (const bad of ["turns:a:1", "turn:", "turn:a:0", "turn:a:70000", "turn:a_b:1", "stun:a:1"]) {
    assert.throws(() => parseTurnUri(bad), TurnUriError, bad);
  }
});

Deno.test("turn codec fuzz: mutated and random datagrams decode or throw TurnCodecError", () => {
  const rand = prng(16);
  const key = longTermKey("u", "p2p", "p");
  const seeds = [
    RFC5769_RESPONSE,
    encodeTurnMessage({
      method: "allocate",
      cls: "success",
      transactionId: new Uint8Array(12).fill(1),
      attributes: {
        relayed: { host: "127.0.0.1", port: 49152 },
        mapped: { host: "::1", port: 7 },
        lifetime: 600,
        errorCode: { code: 401, reason: "Unauthorized" },
        realm: "p2p",
        nonce: "n",
      },
    }, key),
    encodeChannelData(0x4002, new Uint8Array(20)),
  ];
  for (let i = 0; i < 20_000; i++) {
    const input = i % 10 === 0
      ? randomBytes(rand, 80)
      : mutate(rand, seeds[i % seeds.length], [0x00, 0x01, 0x08, 0x20, 0x21, 0x12, 0x40, 0xff]);
    try {
      if (isChannelData(input)) decodeChannelData(input);
      else {
        const m = decodeTurnMessage(input);
        checkIntegrity(input, m, key);
      }
    } catch (err) {
      assert.ok(err instanceof TurnCodecError, `${err} on ${input}`);
    }
  }
});
