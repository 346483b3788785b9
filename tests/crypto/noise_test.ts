import assert from "node:assert/strict";
import {
  CipherState,
  generateKeyPair,
  HandshakeState,
  keyPairFromSecretKey,
  MAX_MESSAGE_LEN,
  NoiseError,
  noiseNonce,
  prologueFor,
  PROTOCOL_NAME,
  SymmetricState,
} from "../../lib/crypto/noise.ts";
import { Session } from "../../lib/crypto/session.ts";
import { fromHex, toHex } from "../../lib/crypto/identity.ts";
import { handshakePair } from "../support/noise_pair.ts";

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  assert.ok(bytes, `bad hex in test: ${text}`);
  return bytes;
}

// Noise_XX_25519_ChaChaPoly_SHA256 from the cacophony test vectors (as shipped with the snow
// crate, tests/vectors/cacophony.txt): fixed keys, prologue "John Galt", three handshake
// messages, then three transport messages continuing the alternation (responder first).
const VECTOR = {
  prologue: "4a6f686e2047616c74",
  initStatic: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
  initEphemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
  respStatic: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
  respEphemeral: "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
  handshakeHash: "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e",
  messages: [
    {
      payload: "4c756477696720766f6e204d69736573",
      ciphertext: "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944" +
        "4c756477696720766f6e204d69736573",
    },
    {
      payload: "4d757272617920526f746862617264",
      ciphertext: "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e03" +
        "8c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528" +
        "f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162c9326ad",
    },
    {
      payload: "462e20412e20486179656b",
      ciphertext: "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f16" +
        "9ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030",
    },
    {
      payload: "4361726c204d656e676572",
      ciphertext: "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df",
    },
    {
      payload: "4a65616e2d426170746973746520536179",
      ciphertext: "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5",
    },
    {
      payload: "457567656e2042f6686d20766f6e2042617765726b",
      ciphertext: "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f",
    },
  ],
} as const;

function vectorPair(): { init: HandshakeState; resp: HandshakeState } {
  const prologue = hex(VECTOR.prologue);
  return {
    init: new HandshakeState({
      role: "initiator",
      prologue,
      staticKeyPair: keyPairFromSecretKey(hex(VECTOR.initStatic)),
      ephemeralKeyPair: keyPairFromSecretKey(hex(VECTOR.initEphemeral)),
    }),
    resp: new HandshakeState({
      role: "responder",
      prologue,
      staticKeyPair: keyPairFromSecretKey(hex(VECTOR.respStatic)),
      ephemeralKeyPair: keyPairFromSecretKey(hex(VECTOR.respEphemeral)),
    }),
  };
}

interface Run {
  init: HandshakeState;
  resp: HandshakeState;
  messages: Uint8Array[];
}

function handshake(prologue = prologueFor("alice", "bob")): Run {
  const { init, resp } = handshakePair(prologue);
  const m1 = init.writeMessage();
  resp.readMessage(m1);
  const m2 = resp.writeMessage();
  init.readMessage(m2);
  const m3 = init.writeMessage();
  resp.readMessage(m3);
  return { init, resp, messages: [m1, m2, m3] };
}

/** Asserts `fn` throws a NoiseError (and nothing else). */
function assertNoiseError(fn: () => unknown): void {
  assert.throws(fn, (e) => e instanceof NoiseError);
}

Deno.test("noise: protocol name is 32 bytes and used verbatim as the initial hash", () => {
  assert.equal(PROTOCOL_NAME, "Noise_XX_25519_ChaChaPoly_SHA256");
  assert.equal(
    toHex(new SymmetricState(PROTOCOL_NAME).handshakeHash),
    toHex(
      new TextEncoder().encode(PROTOCOL_NAME),
    ),
  );
});

Deno.test("noise: cacophony test vector, byte for byte", () => {
  const { init, resp } = vectorPair();
  const [v1, v2, v3, ...transport] = VECTOR.messages;

  const m1 = init.writeMessage(hex(v1.payload));
  assert.equal(toHex(m1), v1.ciphertext);
  assert.equal(toHex(resp.readMessage(m1)), v1.payload);

  const m2 = resp.writeMessage(hex(v2.payload));
  assert.equal(toHex(m2), v2.ciphertext);
  assert.equal(toHex(init.readMessage(m2)), v2.payload);
  assert.equal(
    toHex(init.remoteStaticKey!),
    toHex(keyPairFromSecretKey(hex(VECTOR.respStatic)).publicKey),
  );

  const m3 = init.writeMessage(hex(v3.payload));
  assert.equal(toHex(m3), v3.ciphertext);
  assert.equal(toHex(resp.readMessage(m3)), v3.payload);

  const i = init.split();
  const r = resp.split();
  assert.equal(toHex(i.handshakeHash), VECTOR.handshakeHash);
  assert.equal(toHex(r.handshakeHash), VECTOR.handshakeHash);
  assert.equal(
    toHex(r.remoteStaticKey),
    toHex(keyPairFromSecretKey(hex(VECTOR.initStatic)).publicKey),
  );

  // Transport messages via Noise CipherStates (responder speaks first, then alternation).
  const send = { init: new CipherState(i.sendKey), resp: new CipherState(r.sendKey) };
  const recv = { init: new CipherState(i.receiveKey), resp: new CipherState(r.receiveKey) };
  const empty = new Uint8Array(0);
  transport.forEach((v, n) => {
    const from = n % 2 === 0 ? "resp" : "init";
    const to = from === "resp" ? "init" : "resp";
    const ct = send[from].encryptWithAd(empty, hex(v.payload));
    assert.equal(toHex(ct), v.ciphertext);
    assert.equal(toHex(recv[to].decryptWithAd(empty, ct)), v.payload);
  });

  // A Session's packet with counter c is `c as 8 bytes BE || Noise ciphertext at nonce c`.
  const respSession = new Session(r);
  const initSession = new Session(i);
  const p0 = respSession.seal(hex(transport[0].payload));
  assert.equal(toHex(p0), "0000000000000000" + transport[0].ciphertext);
  const p1 = initSession.seal(hex(transport[1].payload));
  assert.equal(toHex(p1), "0000000000000000" + transport[1].ciphertext);
  const p2 = respSession.seal(hex(transport[2].payload));
  assert.equal(toHex(p2), "0000000000000001" + transport[2].ciphertext);
  assert.equal(toHex(initSession.open(p0)!), transport[0].payload);
  assert.equal(toHex(initSession.open(p2)!), transport[2].payload);
  assert.equal(toHex(respSession.open(p1)!), transport[1].payload);
});

Deno.test("noise: random handshake agrees on keys, statics, hash and payloads", () => {
  const prologue = prologueFor("alice", "bob");
  const aliceKeys = generateKeyPair();
  const bobKeys = generateKeyPair();
  const init = new HandshakeState({ role: "initiator", staticKeyPair: aliceKeys, prologue });
  const resp = new HandshakeState({ role: "responder", staticKeyPair: bobKeys, prologue });
  const text = (s: string) => new TextEncoder().encode(s);
  const str = (b: Uint8Array) => new TextDecoder().decode(b);

  assert.equal(init.status, "write");
  assert.equal(resp.status, "read");
  assert.equal(str(resp.readMessage(init.writeMessage(text("one")))), "one");
  assert.equal(resp.remoteStaticKey, null);
  assert.equal(init.status, "read");
  assert.equal(resp.status, "write");
  const m2 = resp.writeMessage(text("two"));
  assert.equal(m2.length, 32 + 48 + 3 + 16);
  assert.equal(str(init.readMessage(m2)), "two");
  assert.deepEqual(init.remoteStaticKey, bobKeys.publicKey);
  const m3 = init.writeMessage(text("three"));
  assert.equal(m3.length, 48 + 5 + 16);
  assert.equal(str(resp.readMessage(m3)), "three");
  assert.equal(init.status, "done");
  assert.equal(resp.status, "done");

  const i = init.split();
  const r = resp.split();
  assert.deepEqual(i.sendKey, r.receiveKey);
  assert.deepEqual(i.receiveKey, r.sendKey);
  assert.notDeepEqual(i.sendKey, i.receiveKey);
  assert.deepEqual(i.handshakeHash, r.handshakeHash);
  assert.deepEqual(i.remoteStaticKey, bobKeys.publicKey);
  assert.deepEqual(r.remoteStaticKey, aliceKeys.publicKey);

  // Two runs with the same static keys still get fresh session keys (fresh ephemerals).
  assert.notDeepEqual(handshake().init.split().sendKey, i.sendKey);
});

Deno.test("noise: prologueFor binds both names, in order", () => {
  assert.equal(new TextDecoder().decode(prologueFor("alice", "bob")), "p2p/1\nalice\nbob");
  assert.notDeepEqual(prologueFor("alice", "bob"), prologueFor("bob", "alice"));
  assert.throws(() => prologueFor("al\nice", "bob"), RangeError);
  assert.throws(() => prologueFor("alice", "b\nob"), RangeError);
});

Deno.test("noise: a different prologue (swapped or relabelled names) fails message 2", () => {
  for (const respPrologue of [prologueFor("bob", "alice"), prologueFor("alice", "mallory")]) {
    const { init, resp } = handshakePair(prologueFor("alice", "bob"), respPrologue);
    resp.readMessage(init.writeMessage());
    const m2 = resp.writeMessage();
    assertNoiseError(() => init.readMessage(m2));
    assert.equal(init.remoteStaticKey, null);
  }
});

Deno.test("noise: every flipped bit in messages 2 and 3 is rejected, state unchanged", () => {
  const prologue = prologueFor("alice", "bob");
  const { init, resp } = handshakePair(prologue);
  resp.readMessage(init.writeMessage());
  const m2 = resp.writeMessage(new Uint8Array([1, 2, 3]));
  for (let bit = 0; bit < m2.length * 8; bit++) {
    const bad = m2.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    assertNoiseError(() => init.readMessage(bad));
  }
  assert.equal(init.status, "read");
  assert.deepEqual(init.readMessage(m2), new Uint8Array([1, 2, 3]));

  const m3 = init.writeMessage(new Uint8Array([4]));
  for (let bit = 0; bit < m3.length * 8; bit++) {
    const bad = m3.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    assertNoiseError(() => resp.readMessage(bad));
  }
  assert.equal(resp.status, "read");
  assert.deepEqual(resp.readMessage(m3), new Uint8Array([4]));
  assert.deepEqual(init.split().sendKey, resp.split().receiveKey);
});

Deno.test("noise: a tampered message 1 is accepted but breaks message 2", () => {
  const prologue = prologueFor("alice", "bob");
  const { init, resp } = handshakePair(prologue);
  const m1 = init.writeMessage(new Uint8Array([7]));
  m1[m1.length - 1] ^= 1; // the payload of message 1 is not encrypted, but it is hashed
  resp.readMessage(m1);
  assertNoiseError(() => init.readMessage(resp.writeMessage()));
});

Deno.test("noise: calls out of turn, short or oversize messages, and bad keys throw NoiseError", () => {
  const kp = generateKeyPair();
  const init = new HandshakeState({ role: "initiator", staticKeyPair: kp });
  const resp = new HandshakeState({ role: "responder", staticKeyPair: generateKeyPair() });
  assertNoiseError(() => init.readMessage(new Uint8Array(100)));
  assertNoiseError(() => resp.writeMessage());
  assertNoiseError(() => init.split());
  assertNoiseError(() => init.writeMessage(new Uint8Array(MAX_MESSAGE_LEN)));
  assertNoiseError(() => resp.readMessage(new Uint8Array(31)));
  assertNoiseError(() => resp.readMessage(new Uint8Array(MAX_MESSAGE_LEN + 1)));
  assertNoiseError(() => keyPairFromSecretKey(new Uint8Array(31)));
  assertNoiseError(() =>
    new HandshakeState({
      role: "initiator",
      staticKeyPair: { ...kp, publicKey: new Uint8Array(5) },
    })
  );
  assertNoiseError(() => new CipherState(new Uint8Array(16)));

  // A low-order (all-zero) ephemeral key: the responder's DH fails when writing message 2.
  resp.readMessage(new Uint8Array(32));
  assertNoiseError(() => resp.writeMessage());
  assert.equal(resp.status, "write");

  // After completion nothing more can be written or read.
  const { init: done } = handshake();
  assertNoiseError(() => done.writeMessage());
  assertNoiseError(() => done.readMessage(new Uint8Array(64)));
});

Deno.test("noise: CipherState nonce layout and failure leaves the nonce unchanged", () => {
  assert.equal(toHex(noiseNonce(0x0102030405)), "000000000504030201000000");
  const key = crypto.getRandomValues(new Uint8Array(32));
  const ad = new Uint8Array([9]);
  const sender = new CipherState(key);
  const receiver = new CipherState(key);
  const c0 = sender.encryptWithAd(ad, new Uint8Array([1]));
  const c1 = sender.encryptWithAd(ad, new Uint8Array([2]));
  assert.equal(sender.nonce, 2);
  assertNoiseError(() => receiver.decryptWithAd(ad, c1)); // out of order for a CipherState
  assertNoiseError(() => receiver.decryptWithAd(new Uint8Array(0), c0)); // wrong ad
  assertNoiseError(() => receiver.decryptWithAd(ad, new Uint8Array(15)));
  assert.equal(receiver.nonce, 0);
  assert.deepEqual(receiver.decryptWithAd(ad, c0), new Uint8Array([1]));
  assert.deepEqual(receiver.decryptWithAd(ad, c1), new Uint8Array([2]));
  const plain = new CipherState();
  assert.equal(plain.hasKey(), false);
  assert.deepEqual(plain.encryptWithAd(ad, new Uint8Array([5])), new Uint8Array([5]));
});

Deno.test("noise: fuzz readMessage with random and mutated messages", () => {
  // Deterministic PRNG so a failure can be reproduced.
  let seed = 0x2545f491;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const randomBytes = (length: number): Uint8Array => Uint8Array.from({ length }, () => rand(256));
  const mutate = (message: Uint8Array): Uint8Array => {
    switch (rand(5)) {
      case 0: // flip a few bits
        return message.map((b) => (rand(message.length) < 2 ? b ^ (1 << rand(8)) : b));
      case 1: // truncate
        return message.slice(0, rand(message.length));
      case 2: // extend
        return Uint8Array.from([...message, ...randomBytes(1 + rand(40))]);
      case 3: // overwrite a byte
        return message.map((b, i) => (i === rand(message.length) ? rand(256) : b));
      default: // swap halves
        return Uint8Array.from([
          ...message.subarray(message.length >> 1),
          ...message.subarray(0, message.length >> 1),
        ]);
    }
  };

  const prologue = prologueFor("alice", "bob");
  let rejected = 0;
  for (let round = 0; round < 300; round++) {
    // Reader at each stage: responder before message 1, initiator before 2, responder before 3.
    const { init, resp } = handshakePair(prologue);
    const stage = round % 3;
    let genuine = init.writeMessage();
    if (stage >= 1) {
      resp.readMessage(genuine);
      genuine = resp.writeMessage();
    }
    if (stage === 2) {
      init.readMessage(genuine);
      genuine = init.writeMessage();
    }
    const reader = stage === 1 ? init : resp;
    const input = rand(2) === 0 ? randomBytes(rand(200)) : mutate(genuine);
    try {
      reader.readMessage(input);
      // Only message 1 has no MAC; anything else accepted must be the genuine message.
      if (stage !== 0) assert.deepEqual(input, genuine, `stage ${stage} accepted a forgery`);
    } catch (e) {
      if (!(e instanceof NoiseError)) throw e;
      rejected++;
      assert.equal(reader.status, "read");
    }
  }
  assert.ok(rejected >= 200, `only ${rejected} rejections`);
});
