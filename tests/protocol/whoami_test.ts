import assert from "node:assert/strict";
import {
  encodeServerMessage,
  parseClientMessage,
  type ServerMessage,
} from "../../lib/protocol/seed.ts";
import {
  encodeWhoami,
  MAX_WHOAMI,
  parseWhoamiAnswer,
  secondPort,
} from "../../lib/protocol/whoami.ts";
import { mutate } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

Deno.test("the whoami request is padded to the longest answer and parses as whoami", () => {
  const request = encodeWhoami();
  assert.equal(request.length, MAX_WHOAMI);
  const text = new TextDecoder().decode(request);
  assert.match(text, /^whoami,-+$/);
  assert.deepEqual(parseClientMessage(text), { type: "whoami" });
  // The longest possible answer is no longer than the request: no amplification.
  const longest = encodeServerMessage({
    type: "you",
    endpoint: { host: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", port: 65535 },
  });
  assert.ok(bytes(longest).length <= request.length, longest);
  // Each call gives fresh bytes: a caller cannot spoil another's request.
  request.fill(0);
  assert.equal(new TextDecoder().decode(encodeWhoami()), text);
});

Deno.test("the second port is port + 1 unless given", () => {
  const server = { host: "192.0.2.10", port: 7000 };
  assert.deepEqual(secondPort(server), { host: "192.0.2.10", port: 7001 });
  assert.deepEqual(secondPort(server, 9000), { host: "192.0.2.10", port: 9000 });
  assert.deepEqual(secondPort({ host: "::1", port: 1 }), { host: "::1", port: 2 });
});

Deno.test("a You answer gives its endpoint; anything else gives undefined", () => {
  assert.deepEqual(parseWhoamiAnswer(bytes("You,203.0.113.5:4000")), {
    host: "203.0.113.5",
    port: 4000,
  });
  assert.deepEqual(parseWhoamiAnswer(bytes("You,[2001:db8::7]:65535")), {
    host: "2001:db8::7",
    port: 65535,
  });
  for (
    const other of [
      "Accept,7000",
      "Alive,203.0.113.5:4000",
      "You",
      "You,",
      "You,203.0.113.5",
      "You,203.0.113.5:4000,x",
      "you,203.0.113.5:4000",
      "whoami",
      "",
    ]
  ) {
    assert.equal(parseWhoamiAnswer(bytes(other)), undefined, other);
  }
  assert.equal(parseWhoamiAnswer(new Uint8Array([0xff, 0xfe])), undefined);
  assert.equal(parseWhoamiAnswer(bytes(`You,1.2.3.4:5${" ".repeat(600)}`)), undefined);
});

Deno.test("parseWhoamiAnswer never throws on random or mutated datagrams", () => {
  const rand = prng(0x4a7);
  const corpus: ServerMessage[] = [
    { type: "you", endpoint: { host: "203.0.113.5", port: 4000 } },
    { type: "you", endpoint: { host: "2001:db8::7", port: 65535 } },
    { type: "alive", endpoint: { host: "203.0.113.5", port: 4000 }, version: 3 },
  ];
  const seeds = corpus.map((m) => bytes(encodeServerMessage(m)));
  for (let i = 0; i < 5000; i++) {
    const data = i % 2 === 0
      ? Uint8Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256))
      : mutate(rand, seeds[(i >> 1) % seeds.length]);
    const seen = parseWhoamiAnswer(data);
    if (seen !== undefined) {
      assert.ok(Number.isInteger(seen.port) && seen.port >= 1 && seen.port <= 65535);
      assert.equal(typeof seen.host, "string");
    }
  }
});
