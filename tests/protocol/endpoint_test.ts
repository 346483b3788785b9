import assert from "node:assert/strict";
import {
  type Endpoint,
  EndpointError,
  formatCompactEndpoint,
  formatEndpoint,
  parseCompactEndpoint,
  parseEndpoint,
  sameEndpoint,
} from "../../lib/protocol/endpoint.ts";
import { prng } from "../support/prng.ts";

Deno.test("parseEndpoint reads IPv4 endpoints", () => {
  assert.deepEqual(parseEndpoint("192.0.2.1:4000"), { host: "192.0.2.1", port: 4000 });
  assert.deepEqual(parseEndpoint("127.0.0.1:1"), { host: "127.0.0.1", port: 1 });
  assert.deepEqual(parseEndpoint("0.0.0.0:65535"), { host: "0.0.0.0", port: 65535 });
  assert.deepEqual(parseEndpoint("255.255.255.255:80"), { host: "255.255.255.255", port: 80 });
});

Deno.test("parseEndpoint reads bracketed IPv6 endpoints", () => {
  assert.deepEqual(parseEndpoint("[::1]:7000"), { host: "::1", port: 7000 });
  assert.deepEqual(parseEndpoint("[2001:db8::5]:443"), { host: "2001:db8::5", port: 443 });
  assert.deepEqual(parseEndpoint("[::ffff:192.0.2.1]:9"), { host: "::ffff:192.0.2.1", port: 9 });
  assert.deepEqual(parseEndpoint("[fe80::1%eth0]:5"), { host: "fe80::1%eth0", port: 5 });
  assert.deepEqual(parseEndpoint("[0:0:0:0:0:0:0:1]:5"), { host: "0:0:0:0:0:0:0:1", port: 5 });
});

Deno.test("formatEndpoint and parseEndpoint round-trip", () => {
  const eps: Endpoint[] = [
    { host: "10.0.0.2", port: 4000 },
    { host: "::1", port: 1 },
    { host: "2001:db8::1:2", port: 65535 },
    { host: "fe80::1%eth0", port: 7000 },
  ];
  for (const ep of eps) assert.deepEqual(parseEndpoint(formatEndpoint(ep)), ep);
  assert.equal(formatEndpoint({ host: "10.0.0.2", port: 4000 }), "10.0.0.2:4000");
  assert.equal(formatEndpoint({ host: "::1", port: 7000 }), "[::1]:7000");
});

Deno.test("parseEndpoint accepts leading zeros in the port and normalizes them", () => {
  assert.deepEqual(parseEndpoint("10.0.0.1:00080"), { host: "10.0.0.1", port: 80 });
});

Deno.test("parseEndpoint rejects bad ports", () => {
  const cases: [string, string][] = [
    ["10.0.0.1:0", 'Cannot parse endpoint "10.0.0.1:0": port 0 is out of range 1-65535'],
    [
      "10.0.0.1:65536",
      'Cannot parse endpoint "10.0.0.1:65536": port 65536 is out of range 1-65535',
    ],
    [
      "10.0.0.1:99999",
      'Cannot parse endpoint "10.0.0.1:99999": port 99999 is out of range 1-65535',
    ],
    ["10.0.0.1:", 'Cannot parse endpoint "10.0.0.1:": port "" is not a number'],
    ["10.0.0.1:123456", 'Cannot parse endpoint "10.0.0.1:123456": port "123456" is not a number'],
    ["10.0.0.1:-1", 'Cannot parse endpoint "10.0.0.1:-1": port "-1" is not a number'],
    ["10.0.0.1:+80", 'Cannot parse endpoint "10.0.0.1:+80": port "+80" is not a number'],
    ["10.0.0.1:8 0", 'Cannot parse endpoint "10.0.0.1:8 0": port "8 0" is not a number'],
    ["10.0.0.1:0x50", 'Cannot parse endpoint "10.0.0.1:0x50": port "0x50" is not a number'],
    ["10.0.0.1:1e3", 'Cannot parse endpoint "10.0.0.1:1e3": port "1e3" is not a number'],
    ["10.0.0.1:80\n", 'Cannot parse endpoint "10.0.0.1:80\n": port "80\n" is not a number'],
    ["10.0.0.1:٨٠", 'Cannot parse endpoint "10.0.0.1:٨٠": port "٨٠" is not a number'],
    ["[::1]:0", 'Cannot parse endpoint "[::1]:0": port 0 is out of range 1-65535'],
    ["[::1]:", 'Cannot parse endpoint "[::1]:": port "" is not a number'],
    ["[::1]:80]", 'Cannot parse endpoint "[::1]:80]": port "80]" is not a number'],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseEndpoint(text), { name: "EndpointError", message }, text);
  }
});

Deno.test("parseEndpoint rejects bad hosts", () => {
  const cases: [string, string][] = [
    ["", 'Cannot parse endpoint "": missing ":port"'],
    ["10.0.0.1", 'Cannot parse endpoint "10.0.0.1": missing ":port"'],
    [":80", 'Cannot parse endpoint ":80": "" is not an IPv4 address'],
    ["localhost:80", 'Cannot parse endpoint "localhost:80": "localhost" is not an IPv4 address'],
    ["256.0.0.1:80", 'Cannot parse endpoint "256.0.0.1:80": "256.0.0.1" is not an IPv4 address'],
    ["1.2.3:80", 'Cannot parse endpoint "1.2.3:80": "1.2.3" is not an IPv4 address'],
    ["1.2.3.4.5:80", 'Cannot parse endpoint "1.2.3.4.5:80": "1.2.3.4.5" is not an IPv4 address'],
    ["01.2.3.4:80", 'Cannot parse endpoint "01.2.3.4:80": "01.2.3.4" is not an IPv4 address'],
    [" 1.2.3.4:80", 'Cannot parse endpoint " 1.2.3.4:80": " 1.2.3.4" is not an IPv4 address'],
    // A bare IPv6 address is ambiguous (where does the port start?): brackets are required.
    ["::1:80", 'Cannot parse endpoint "::1:80": "::1" is not an IPv4 address'],
    ["[::1]", 'Cannot parse endpoint "[::1]": expected [v6]:port'],
    ["[::1:80", 'Cannot parse endpoint "[::1:80": expected [v6]:port'],
    ["[::1]80", 'Cannot parse endpoint "[::1]80": expected [v6]:port'],
    ["[]:80", 'Cannot parse endpoint "[]:80": "" is not an IPv6 address'],
    ["[1.2.3.4]:80", 'Cannot parse endpoint "[1.2.3.4]:80": "1.2.3.4" is not an IPv6 address'],
    ["[1::2::3]:80", 'Cannot parse endpoint "[1::2::3]:80": "1::2::3" is not an IPv6 address'],
    ["[::1 ]:80", 'Cannot parse endpoint "[::1 ]:80": "::1 " is not an IPv6 address'],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseEndpoint(text), { name: "EndpointError", message }, text);
  }
  assert.throws(() => parseEndpoint("x"), EndpointError);
});

Deno.test("sameEndpoint compares address and port", () => {
  const a = { host: "10.0.0.1", port: 80 };
  assert.equal(sameEndpoint(a, { host: "10.0.0.1", port: 80 }), true);
  assert.equal(sameEndpoint(a, { host: "10.0.0.1", port: 81 }), false);
  assert.equal(sameEndpoint(a, { host: "10.0.0.2", port: 80 }), false);
  assert.equal(sameEndpoint({ host: "::1", port: 80 }, { host: "::1", port: 80 }), true);
});

Deno.test("formatCompactEndpoint writes IPv4 as 8 base64url characters: exact examples", () => {
  const cases: [string, string][] = [
    // c0 00 02 01 | 0f a0
    ["192.0.2.1:4000", "wAACAQ-g"],
    // 7f 01 27 10 | 9c bb
    ["127.1.39.16:40123", "fwEnEJy7"],
    ["0.0.0.0:1", "AAAAAAAB"],
    ["127.0.0.1:1", "fwAAAQAB"],
    ["255.255.255.255:65535", "________"],
  ];
  for (const [text, compact] of cases) {
    assert.equal(formatCompactEndpoint(parseEndpoint(text)), compact, text);
    assert.deepEqual(parseCompactEndpoint(compact), parseEndpoint(text), compact);
  }
});

Deno.test("formatCompactEndpoint keeps an IPv6 endpoint's text; parseCompactEndpoint reads it", () => {
  // `[::1]:80` is 8 characters, as long as a compact IPv4 endpoint: the bracket tells them apart.
  const texts = ["[2001:db8::1]:4000", "[::ffff:192.0.2.1]:9", "[fe80::1%eth0]:5", "[::1]:80"];
  for (const text of texts) {
    assert.equal(formatCompactEndpoint(parseEndpoint(text)), text);
    assert.deepEqual(parseCompactEndpoint(text), parseEndpoint(text), text);
  }
  // The spelling is kept as written, not normalized: one address, one text in the lines.
  assert.equal(
    formatCompactEndpoint({ host: "0:0:0:0:0:0:0:1", port: 7000 }),
    "[0:0:0:0:0:0:0:1]:7000",
  );
  // parseCompactEndpoint also reads the seed's IPv4 text form.
  assert.deepEqual(parseCompactEndpoint("192.0.2.1:4000"), { host: "192.0.2.1", port: 4000 });
});

Deno.test("formatCompactEndpoint and parseCompactEndpoint round-trip random IPv4 endpoints", () => {
  const random = prng(11);
  const byte = () => Math.floor(random() * 256);
  for (let i = 0; i < 2000; i++) {
    const ep = {
      host: [byte(), byte(), byte(), byte()].join("."),
      // Now and then the extremes, where a sign or a carry would show.
      port: i % 10 === 0
        ? [1, 255, 256, 32767, 32768, 65535][(i / 10) % 6]
        : 1 + Math.floor(random() * 65535),
    };
    const compact = formatCompactEndpoint(ep);
    assert.match(compact, /^[A-Za-z0-9_-]{8}$/, formatEndpoint(ep));
    assert.deepEqual(parseCompactEndpoint(compact), ep, formatEndpoint(ep));
  }
});

Deno.test("parseCompactEndpoint refuses what is neither 8 base64url characters nor an endpoint", () => {
  const cases: [string, string][] = [
    // Base64 (not url) and padding characters.
    ["wAACAQ+g", 'Cannot parse endpoint "wAACAQ+g": not 8 base64url characters'],
    ["wAACAQ/g", 'Cannot parse endpoint "wAACAQ/g": not 8 base64url characters'],
    ["wAACAQ==", 'Cannot parse endpoint "wAACAQ==": not 8 base64url characters'],
    ["wAAC AQg", 'Cannot parse endpoint "wAAC AQg": not 8 base64url characters'],
    ["wAACAQ-\u00e9", 'Cannot parse endpoint "wAACAQ-\u00e9": not 8 base64url characters'],
    // 8 characters that look like an endpoint are still read as base64url.
    ["1.2.3:45", 'Cannot parse endpoint "1.2.3:45": not 8 base64url characters'],
    // Port 0: c0 00 02 01 | 00 00.
    ["wAACAQAA", 'Cannot parse endpoint "wAACAQAA": port 0'],
    // 7 and 9 characters are not compact: read (and refused) as text endpoints.
    ["wAACAQ-", 'Cannot parse endpoint "wAACAQ-": missing ":port"'],
    ["wAACAQ-gA", 'Cannot parse endpoint "wAACAQ-gA": missing ":port"'],
    ["", 'Cannot parse endpoint "": missing ":port"'],
    ["[::1]:0", 'Cannot parse endpoint "[::1]:0": port 0 is out of range 1-65535'],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseCompactEndpoint(text), { name: "EndpointError", message }, text);
  }
  assert.throws(() => parseCompactEndpoint("x"), EndpointError);
});
