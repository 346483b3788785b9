import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { decodeBase64url, encodeBase64url } from "../../lib/protocol/base64url.ts";
import { prng } from "../support/prng.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

Deno.test("encodeBase64url matches RFC 4648 test vectors, without padding", () => {
  // RFC 4648 §10, in the URL-safe alphabet and with the padding removed.
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ];
  const encoder = new TextEncoder();
  for (const [plain, text] of vectors) {
    assert.equal(encodeBase64url(encoder.encode(plain)), text);
    assert.deepEqual(decodeBase64url(text), encoder.encode(plain));
  }
});

Deno.test("the URL-safe alphabet replaces + and /", () => {
  assert.equal(encodeBase64url(new Uint8Array([250, 251])), "-vs");
  assert.equal(encodeBase64url(new Uint8Array([0xfb, 0xff, 0xbf])), "-_-_");
  assert.deepEqual(decodeBase64url("-_-_"), new Uint8Array([0xfb, 0xff, 0xbf]));
  // Every alphabet character in every position decodes to its 6-bit value.
  const all = decodeBase64url(ALPHABET);
  assert.ok(all);
  assert.equal(encodeBase64url(all), ALPHABET);
});

Deno.test("keys, secrets and tokens have the lengths the coordinator protocol expects", () => {
  assert.equal(encodeBase64url(new Uint8Array(32).fill(0xff)).length, 43);
  assert.equal(encodeBase64url(new Uint8Array(16).fill(0xff)).length, 22);
  assert.equal(decodeBase64url("A".repeat(43))?.length, 32);
  assert.equal(decodeBase64url("A".repeat(22))?.length, 16);
});

Deno.test("decodeBase64url refuses other alphabets, padding and white space", () => {
  for (
    const text of [
      "+vs", // standard alphabet
      "/w",
      "Zg==", // padding
      "Zm8=",
      "Zm9v\n",
      " Zm9v",
      "Zm 9v",
      "Zm9v\t",
      "Zm,9",
      "Zm;9",
      "Zm.9",
      "Zm9vé",
      "Ｚｍ９ｖ", // full-width look-alikes
      "Zm9v\u0000",
    ]
  ) {
    assert.equal(decodeBase64url(text), null, JSON.stringify(text));
  }
});

Deno.test("decodeBase64url refuses impossible lengths", () => {
  for (const text of ["A", "AAAAA", "Zm9vY", "A".repeat(41)]) {
    assert.equal(decodeBase64url(text), null, text);
  }
});

Deno.test("decodeBase64url refuses non-canonical forms (unused bits set)", () => {
  // One byte takes 2 characters: the second's low 4 bits are unused.
  assert.deepEqual(decodeBase64url("Zg"), new Uint8Array([0x66]));
  for (const text of ["Zh", "Zi", "Zv", "Z_"]) assert.equal(decodeBase64url(text), null, text);
  // Two bytes take 3 characters: the third's low 2 bits are unused.
  assert.deepEqual(decodeBase64url("Zm8"), new Uint8Array([0x66, 0x6f]));
  for (const text of ["Zm9", "Zm-", "Zm_"]) assert.equal(decodeBase64url(text), null, text);
  // A 32-byte key: 43 characters, the last with 2 unused bits.
  const key = encodeBase64url(new Uint8Array(32));
  assert.equal(key, "A".repeat(43));
  for (const last of "BCDFGH") assert.equal(decodeBase64url("A".repeat(42) + last), null, last);
  assert.deepEqual(decodeBase64url("A".repeat(42) + "E"), new Uint8Array(32).fill(0x01, 31));
  // A 16-byte secret: 22 characters, the last with 4 unused bits.
  for (let bits = 1; bits < 16; bits++) {
    assert.equal(decodeBase64url("A".repeat(21) + ALPHABET[bits]), null, ALPHABET[bits]);
  }
  assert.deepEqual(decodeBase64url("A".repeat(21) + "Q"), new Uint8Array(16).fill(0x01, 15));
});

Deno.test("large inputs round-trip (no call-stack limit)", () => {
  const bytes = new Uint8Array(300_000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131) & 0xff;
  const text = encodeBase64url(bytes);
  assert.equal(text, Buffer.from(bytes).toString("base64url"));
  assert.deepEqual(decodeBase64url(text), bytes);
});

Deno.test("fuzz: random bytes round-trip and match node:buffer's encoding", () => {
  const rand = prng(0xb64);
  for (let i = 0; i < 3000; i++) {
    const bytes = new Uint8Array(Math.floor(rand() * 70));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
    const text = encodeBase64url(bytes);
    assert.equal(text, Buffer.from(bytes).toString("base64url"));
    assert.deepEqual(decodeBase64url(text), bytes);
  }
});

Deno.test("fuzz: decodeBase64url never throws and accepts exactly the canonical forms", () => {
  const rand = prng(0xdec0de);
  const extra = ["=", "+", "/", " ", "\n", ",", "é", "\ud800", "😀"];
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    let text = "";
    const n = Math.floor(rand() * 48);
    for (let j = 0; j < n; j++) {
      text += rand() < 0.97
        ? ALPHABET[Math.floor(rand() * 64)]
        : extra[Math.floor(rand() * extra.length)];
    }
    // Half the time, near misses: the last character replaced, so its unused bits vary.
    if (i % 2 === 1 && text.length > 0) {
      text = text.slice(0, -1) + ALPHABET[Math.floor(rand() * 64)];
    }
    const bytes = decodeBase64url(text);
    // Oracle: node:buffer decodes leniently; canonical text is what re-encodes to itself.
    const canonical = /^[A-Za-z0-9_-]*$/.test(text) && text.length % 4 !== 1 &&
      Buffer.from(text, "base64url").toString("base64url") === text;
    assert.equal(bytes !== null, canonical, JSON.stringify(text));
    if (bytes === null) continue;
    accepted++;
    assert.deepEqual(bytes, new Uint8Array(Buffer.from(text, "base64url")));
    assert.equal(encodeBase64url(bytes), text);
  }
  // Lengths that are 0 mod 4 are always canonical when the alphabet is right: many pass.
  assert.ok(accepted > 500, `only ${accepted} accepted: the fuzzer is not reaching the decoder`);
});
