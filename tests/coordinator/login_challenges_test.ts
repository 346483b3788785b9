import assert from "node:assert/strict";
import { LoginChallenges } from "../../lib/coordinator/login_challenges.ts";
import { keyProof } from "../../lib/crypto/key_proof.ts";
import { generateKeyPair, type KeyPair } from "../../lib/crypto/noise.ts";
import { decodeBase64url, encodeBase64url } from "../../lib/protocol/base64url.ts";
import { FakeClock } from "../support/fake_clock.ts";

const server = generateKeyPair();
const owner = generateKeyPair();
const login = {
  name: "alice",
  key: encodeBase64url(owner.publicKey),
  secret: encodeBase64url(crypto.getRandomValues(new Uint8Array(16))),
  observed: { host: "192.0.2.1", port: 4000 },
};

function setup(options: { maxUsed?: number } = {}) {
  const clock = new FakeClock();
  const challenges = new LoginChallenges({
    keyPair: server,
    now: () => clock.now(),
    ...options,
  });
  return { clock, challenges };
}

/** The client's proof for `nonce`, made with `by`'s private key for `what`. */
function prove(nonce: string, by: KeyPair = owner, what = login): string {
  return encodeBase64url(keyProof({
    privateKey: by.secretKey,
    publicKey: server.publicKey,
    purpose: "login",
    nonce: decodeBase64url(nonce)!,
    name: what.name,
    binding: what.secret,
  }));
}

Deno.test("LoginChallenges: a proof of the nonce is good once", () => {
  const { challenges } = setup();
  assert.equal(challenges.serverKey, encodeBase64url(server.publicKey));
  const nonce = challenges.issue(login);
  assert.equal(decodeBase64url(nonce)?.length, 16);
  assert.notEqual(challenges.issue(login), nonce, "two challenges to one login differ");
  const mac = prove(nonce);
  assert.equal(challenges.verify({ ...login, nonce, mac }), "ok");
  assert.equal(challenges.verify({ ...login, nonce, mac }), "replayed");
  assert.equal(challenges.usedCount, 1);
});

Deno.test("LoginChallenges: a nonce is bound to the login's name, key, secret and endpoint", () => {
  const { challenges } = setup();
  const nonce = challenges.issue(login);
  const other = generateKeyPair();
  const variants = [
    { ...login, name: "alicia" },
    { ...login, key: encodeBase64url(other.publicKey) },
    { ...login, secret: encodeBase64url(new Uint8Array(16)) },
    { ...login, observed: { host: "192.0.2.1", port: 4001 } },
    { ...login, observed: { host: "192.0.2.2", port: 4000 } },
  ];
  for (const changed of variants) {
    // Even with a proof that is right for the changed login, the nonce is not its.
    const by = changed.key === login.key ? owner : other;
    const mac = prove(nonce, by, changed);
    assert.equal(challenges.verify({ ...changed, nonce, mac }), "forged-nonce");
  }
  // A nonce of another coordinator (or from before a restart) is not ours either.
  const before = setup().challenges.issue(login);
  assert.equal(challenges.verify({ ...login, nonce: before, mac: prove(before) }), "forged-nonce");
  assert.equal(challenges.verify({ ...login, nonce, mac: prove(nonce) }), "ok");
});

Deno.test("LoginChallenges: a proof made without the private key is refused", () => {
  const { challenges } = setup();
  const nonce = challenges.issue(login);
  const random = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
  assert.equal(challenges.verify({ ...login, nonce, mac: random }), "bad-proof");
  assert.equal(
    challenges.verify({ ...login, nonce, mac: prove(nonce, generateKeyPair()) }),
    "bad-proof",
  );
  // Another purpose's proof (a mailbox proof) does not pass for a login.
  const mailbox = encodeBase64url(keyProof({
    privateKey: owner.secretKey,
    publicKey: server.publicKey,
    purpose: "mailbox",
    nonce: decodeBase64url(nonce)!,
    name: login.name,
    binding: login.secret,
  }));
  assert.equal(challenges.verify({ ...login, nonce, mac: mailbox }), "bad-proof");
  // Wrong answers use nothing up.
  assert.equal(challenges.verify({ ...login, nonce, mac: prove(nonce) }), "ok");
});

Deno.test("LoginChallenges: a nonce expires after 30 s; used ones are forgotten then", () => {
  const { clock, challenges } = setup();
  const late = challenges.issue(login);
  const used = challenges.issue(login);
  assert.equal(challenges.verify({ ...login, nonce: used, mac: prove(used) }), "ok");
  clock.advance(29_000);
  assert.equal(challenges.usedCount, 1);
  clock.advance(2_000);
  assert.equal(challenges.verify({ ...login, nonce: late, mac: prove(late) }), "expired");
  assert.equal(challenges.verify({ ...login, nonce: used, mac: prove(used) }), "expired");
  clock.advance(2_000);
  challenges.sweep();
  assert.equal(challenges.usedCount, 0);
  assert.equal(challenges.verify({ ...login, nonce: used, mac: prove(used) }), "expired");
});

Deno.test("LoginChallenges: used nonces are bounded; beyond, proofs wait (busy)", () => {
  const { challenges } = setup({ maxUsed: 2 });
  for (let i = 0; i < 2; i++) {
    const nonce = challenges.issue(login);
    assert.equal(challenges.verify({ ...login, nonce, mac: prove(nonce) }), "ok");
  }
  const nonce = challenges.issue(login);
  assert.equal(challenges.verify({ ...login, nonce, mac: prove(nonce) }), "busy");
});
