import assert from "node:assert/strict";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { historyKeys, openValue, sealValue } from "../../lib/store/history_key.ts";

const keys = historyKeys(new Uint8Array(32).fill(7));
const aad = new Uint8Array([1, 2, 3]);
const text = new TextEncoder().encode("a secret line");

Deno.test("a sealed value opens with its key and associated data, and nothing else", () => {
  const sealed = sealValue(keys, text, aad);
  assert.equal(sealed[0], 2, "format 2: ChaCha20-Poly1305");
  assert.equal(sealed.length, 1 + 12 + text.length + 16);
  assert.deepEqual(openValue(keys, sealed, aad), text);
  assert.deepEqual(
    openValue(keys, sealValue(keys, new Uint8Array(0), aad), aad),
    new Uint8Array(0),
  );
  assert.notDeepEqual(sealValue(keys, text, aad), sealed, "a fresh nonce per seal");
  assert.equal(openValue(keys, sealed, new Uint8Array([1, 2, 4])), null, "another row's data");
  assert.equal(openValue(historyKeys(new Uint8Array(32)), sealed, aad), null, "another key");
  for (const at of [1, 13, sealed.length - 1]) {
    const changed = sealed.slice();
    changed[at] ^= 1;
    assert.equal(openValue(keys, changed, aad), null, `byte ${at} changed`);
  }
  assert.equal(openValue(keys, sealed.subarray(0, 28), aad), null, "cut short");
  assert.equal(openValue(keys, new Uint8Array(0), aad), null, "empty");
  const unknown = sealed.slice();
  unknown[0] = 9;
  assert.equal(openValue(keys, unknown, aad), null, "an unknown format");
});

Deno.test("a value sealed by the first version (format 1, XChaCha20-Poly1305) still opens", () => {
  const nonce = new Uint8Array(24).fill(5);
  const sealed = new Uint8Array([
    1,
    ...nonce,
    ...xchacha20poly1305(keys.sealV1, nonce, aad).encrypt(text),
  ]);
  assert.deepEqual(openValue(keys, sealed, aad), text);
  assert.equal(openValue(keys, sealed, new Uint8Array([9])), null);
  sealed[30] ^= 1;
  assert.equal(openValue(keys, sealed, aad), null);
  assert.notDeepEqual(keys.seal, keys.sealV1, "each format has its own key");
});
