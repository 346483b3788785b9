import assert from "node:assert/strict";
import { fromHex, toHex } from "../../lib/crypto/identity.ts";
import { generateKeyPair, keyPairFromSecretKey, NoiseError } from "../../lib/crypto/noise.ts";
import {
  MAX_SEALED_PAYLOAD,
  openSealed,
  seal,
  SEAL_OVERHEAD,
  sealPrologue,
} from "../../lib/crypto/seal.ts";

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  assert.ok(bytes, `bad hex in test: ${text}`);
  return bytes;
}

// Noise_X_25519_ChaChaPoly_SHA256 from the cacophony test vectors (as shipped with the snow
// crate, tests/vectors/cacophony.txt): the first message is the sealed message.
const VECTOR = {
  prologue: "4a6f686e2047616c74",
  initStatic: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
  initEphemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
  initRemoteStatic: "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62",
  respStatic: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
  payload: "4c756477696720766f6e204d69736573",
  ciphertext: "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79446c15957a594079a5" +
    "bdeae05d01e089fbb7cc6ea2ecfd209b941f73c9235213bc875f7283e9e17ebdac8112627915b455fdc3aaa6de" +
    "60cb3c98302f370fdb03ea850b9b0cf22fec13e4dc0707245c8721",
};

Deno.test("seal: cacophony Noise_X vector, byte for byte, both ways", () => {
  const recipient = keyPairFromSecretKey(hex(VECTOR.respStatic));
  assert.equal(toHex(recipient.publicKey), VECTOR.initRemoteStatic);
  const sender = keyPairFromSecretKey(hex(VECTOR.initStatic));
  const sealed = seal({
    sender,
    recipientKey: recipient.publicKey,
    payload: hex(VECTOR.payload),
    prologue: hex(VECTOR.prologue),
    ephemeral: keyPairFromSecretKey(hex(VECTOR.initEphemeral)),
  });
  assert.equal(toHex(sealed), VECTOR.ciphertext);
  const opened = openSealed({ recipient, sealed, prologue: hex(VECTOR.prologue) });
  assert.equal(toHex(opened.payload), VECTOR.payload);
  assert.deepEqual(opened.senderKey, sender.publicKey);
});

Deno.test("seal: the overhead is 96 bytes and two seals of one payload differ", () => {
  const bob = generateKeyPair();
  const options = {
    sender: generateKeyPair(),
    recipientKey: bob.publicKey,
    payload: new Uint8Array(7),
  };
  const a = seal(options);
  assert.equal(a.length, 7 + SEAL_OVERHEAD);
  assert.notDeepEqual(a, seal(options));
});

Deno.test("seal: the wrong recipient, prologue or any flipped byte fails with NoiseError", () => {
  const alice = generateKeyPair();
  const bob = generateKeyPair();
  const prologue = sealPrologue("bob");
  const sealed = seal({
    sender: alice,
    recipientKey: bob.publicKey,
    prologue,
    payload: new Uint8Array([1, 2, 3]),
  });
  assert.throws(() => openSealed({ recipient: generateKeyPair(), sealed, prologue }), NoiseError);
  assert.throws(
    () => openSealed({ recipient: bob, sealed, prologue: sealPrologue("bob2") }),
    NoiseError,
  );
  for (let i = 0; i < sealed.length; i++) {
    const bad = sealed.slice();
    bad[i] ^= 0x01;
    assert.throws(
      () => openSealed({ recipient: bob, sealed: bad, prologue }),
      NoiseError,
      `byte ${i}`,
    );
  }
  assert.throws(
    () => openSealed({ recipient: bob, sealed: sealed.subarray(0, 95), prologue }),
    NoiseError,
  );
  assert.deepEqual(
    openSealed({ recipient: bob, sealed, prologue }).payload,
    new Uint8Array([1, 2, 3]),
  );
});

Deno.test("seal: a low-order ephemeral key and an oversized payload are refused", () => {
  const bob = generateKeyPair();
  const sealed = new Uint8Array(SEAL_OVERHEAD); // ephemeral key all zeros: low order
  assert.throws(() => openSealed({ recipient: bob, sealed }), NoiseError);
  assert.throws(
    () =>
      seal({
        sender: generateKeyPair(),
        recipientKey: bob.publicKey,
        payload: new Uint8Array(MAX_SEALED_PAYLOAD + 1),
      }),
    /more than/,
  );
  assert.throws(
    () =>
      seal({
        sender: generateKeyPair(),
        recipientKey: new Uint8Array(31),
        payload: new Uint8Array(1),
      }),
    /31 bytes/,
  );
  const max = seal({
    sender: generateKeyPair(),
    recipientKey: bob.publicKey,
    payload: new Uint8Array(MAX_SEALED_PAYLOAD),
  });
  assert.equal(openSealed({ recipient: bob, sealed: max }).payload.length, MAX_SEALED_PAYLOAD);
});
