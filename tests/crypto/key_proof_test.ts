import assert from "node:assert/strict";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import { KEY_PROOF_LENGTH, keyProof, verifyKeyProof } from "../../lib/crypto/key_proof.ts";

const client = generateKeyPair();
const server = generateKeyPair();
const nonce = crypto.getRandomValues(new Uint8Array(16));
const made = {
  privateKey: client.secretKey,
  publicKey: server.publicKey,
  purpose: "login" as const,
  nonce,
  name: "alice",
  binding: "s3cret",
};
const checked = { ...made, privateKey: server.secretKey, publicKey: client.publicKey };

Deno.test("a key proof made by the client verifies at the coordinator", () => {
  const proof = keyProof(made);
  assert.equal(proof.length, KEY_PROOF_LENGTH);
  assert.ok(verifyKeyProof({ ...checked, proof }));
});

Deno.test("a key proof does not verify for another nonce, name, binding, purpose or key", () => {
  const proof = keyProof(made);
  const other = crypto.getRandomValues(new Uint8Array(16));
  assert.ok(!verifyKeyProof({ ...checked, proof, nonce: other }));
  assert.ok(!verifyKeyProof({ ...checked, proof, name: "alicf" }));
  assert.ok(!verifyKeyProof({ ...checked, proof, binding: "other" }));
  assert.ok(!verifyKeyProof({ ...checked, proof, purpose: "mailbox" }));
  assert.ok(!verifyKeyProof({ ...checked, proof, publicKey: generateKeyPair().publicKey }));
  // The name and the binding are separated: moving a byte across the boundary changes the proof.
  assert.ok(!verifyKeyProof({ ...checked, proof, name: "alices", binding: "3cret" }));
});

Deno.test("a forged proof made with another key is refused", () => {
  const mallory = generateKeyPair();
  const forged = keyProof({ ...made, privateKey: mallory.secretKey });
  assert.ok(!verifyKeyProof({ ...checked, proof: forged }));
});

Deno.test("verifyKeyProof says false, never throws, for garbage from the network", () => {
  assert.ok(!verifyKeyProof({ ...checked, proof: new Uint8Array(15) }));
  assert.ok(!verifyKeyProof({ ...checked, proof: new Uint8Array(16) }));
  assert.ok(
    !verifyKeyProof({ ...checked, publicKey: new Uint8Array(5), proof: new Uint8Array(16) }),
  );
  // A low-order point gives an all-zero shared secret: refused, not a proof anyone can make.
  assert.ok(
    !verifyKeyProof({ ...checked, publicKey: new Uint8Array(32), proof: new Uint8Array(16) }),
  );
});
