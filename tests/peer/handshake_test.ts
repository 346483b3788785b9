import assert from "node:assert/strict";
import {
  generateKeyPair,
  HandshakeState,
  type KeyPair,
  prologueFor,
} from "../../lib/crypto/noise.ts";
import {
  Handshake,
  HANDSHAKE_ATTEMPTS,
  HANDSHAKE_RETRY_MS,
  type HandshakeFrame,
  type HandshakeOptions,
} from "../../lib/peer/handshake.ts";
import type { Session } from "../../lib/crypto/session.ts";
import {
  decodeFrame,
  encodeFrame,
  handshakeSigned,
  type HandshakeType,
} from "../../lib/protocol/frame.ts";
import { handshakeMac1, handshakeMac2 } from "../../lib/peer/handshake_macs.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** The token of the pair's introduction. */
const TOKEN = new Uint8Array(16).fill(7);

/** A handshake frame from its bytes, as the link hands it over. */
function frame(bytes: Uint8Array | undefined): HandshakeFrame {
  assert.ok(bytes, "a frame was to be sent");
  const f = decodeFrame(bytes);
  assert.ok(f.type === "hs1" || f.type === "hs2" || f.type === "hs3", f.type);
  return f;
}

/** A handshake frame with valid MACs (no cookie) around any Noise message. */
function sealed(type: HandshakeType, from: string, payload: Uint8Array, token = TOKEN) {
  const signed = handshakeSigned(type, from, payload);
  const mac1 = handshakeMac1(token, signed);
  return type === "hs1"
    ? encodeFrame({ type, from, payload, mac1, mac2: handshakeMac2(undefined, signed, mac1) })
    : encodeFrame({ type, from, payload, mac1 });
}

const NO_DROPS = {
  badHandshakes: 0,
  keyMismatches: 0,
  badMacs: 0,
  replays: 0,
  cookiesSent: 0,
  handshakesLimited: 0,
};

function typeOf(bytes: Uint8Array | undefined): string {
  return bytes ? decodeFrame(bytes).type : "nothing";
}

/** alice (who initiates: her name sorts first) and bob, introduced to each other. */
function pair(
  options: {
    alice?: Partial<HandshakeOptions>;
    bob?: Partial<HandshakeOptions>;
    keys?: { alice: KeyPair; bob: KeyPair };
  } = {},
) {
  const clock = new FakeClock();
  const keys = options.keys ?? { alice: generateKeyPair(), bob: generateKeyPair() };
  const make = (me: "alice" | "bob", peer: "alice" | "bob", instanceId: number) =>
    new Handshake({
      me,
      peer,
      staticKeyPair: keys[me],
      instanceId,
      verifyKey: () => true,
      clock,
      ...options[me],
    });
  const alice = make("alice", "bob", 1);
  const bob = make("bob", "alice", 2);
  alice.introduce(keys.bob.publicKey, TOKEN);
  bob.introduce(keys.alice.publicKey, TOKEN);
  return { clock, keys, alice, bob, make };
}

/** Both sessions read what the other seals. */
function assertSessionsMatch(a: Session, b: Session): void {
  assert.deepEqual(b.open(a.seal(new Uint8Array([1, 2, 3]))), new Uint8Array([1, 2, 3]));
  assert.deepEqual(a.open(b.seal(new Uint8Array([4, 5]))), new Uint8Array([4, 5]));
}

Deno.test("handshake: HS1, HS2, HS3 establish one session both ways, with each side's instance id", () => {
  const { alice, bob } = pair();
  assert.equal(alice.initiator, true);
  assert.equal(bob.initiator, false);
  // By the name rule only alice starts; bob has nothing to send on a new path.
  assert.equal(bob.begin(), undefined);
  assert.equal(bob.onPath(), undefined);
  const hs1 = alice.begin();
  assert.equal(typeOf(hs1), "hs1");
  const decoded = decodeFrame(hs1!);
  assert.ok(decoded.type === "hs1" && decoded.from === "alice");
  const step2 = bob.receive(frame(hs1));
  assert.equal(typeOf(step2.send), "hs2");
  assert.equal(step2.established, undefined, "the responder waits for HS3");
  const step3 = alice.receive(frame(step2.send));
  assert.equal(typeOf(step3.send), "hs3");
  assert.equal(step3.established?.instance, 2);
  assert.equal(step3.established?.restarted, false);
  assert.equal(step3.confirm, undefined, "the initiator does not confirm");
  const done = bob.receive(frame(step3.send));
  assert.equal(done.send, undefined);
  assert.equal(done.established?.instance, 1);
  assert.equal(done.confirm, true, "the responder confirms HS3");
  assertSessionsMatch(step3.established!.session, done.established!.session);
  assert.deepEqual(alice.stats, NO_DROPS);
  assert.deepEqual(bob.stats, NO_DROPS);
});

Deno.test("handshake: the initiator ignores HS1 and HS3, the responder HS2", () => {
  const { alice, bob } = pair();
  const hs1 = alice.begin();
  assert.deepEqual(alice.receive(frame(hs1)), {}, "an initiator answers no HS1");
  const step2 = bob.receive(frame(hs1));
  const step3 = alice.receive(frame(step2.send));
  assert.deepEqual(alice.receive(frame(step3.send)), {}, "nor an HS3");
  assert.deepEqual(bob.receive(frame(step2.send)), {}, "a responder takes no HS2");
});

Deno.test("handshake: a repeated HS1 is answered by the same HS2, without a new key exchange", () => {
  const { alice, bob } = pair();
  const hs1 = alice.begin();
  const first = bob.receive(frame(hs1)).send;
  const again = bob.receive(frame(hs1));
  assert.deepEqual(again, { send: first }, "the very same HS2");
  // alice answers the HS2 she got; bob still holds the state it belongs to.
  const step3 = alice.receive(frame(again.send));
  const done = bob.receive(frame(step3.send));
  assert.ok(done.established, "the handshake completes");
  assertSessionsMatch(step3.established!.session, done.established!.session);
  assert.equal(bob.stats.badHandshakes, 0);
});

Deno.test("handshake: a lost confirmation: HS3 is repeated each second until DATA, and confirmed again", () => {
  const { clock, alice, bob } = pair();
  const step2 = bob.receive(frame(alice.begin()));
  const hs3 = alice.receive(frame(step2.send)).send;
  assert.ok(bob.receive(frame(hs3)).confirm);
  // The confirmation is lost: alice repeats HS3 a second later, and bob confirms once more
  // (without a new session).
  assert.equal(alice.nextDeadline(), clock.now() + HANDSHAKE_RETRY_MS);
  clock.advance(HANDSHAKE_RETRY_MS - 1);
  assert.deepEqual(alice.poll(), {}, "not yet");
  clock.advance(1);
  const repeat = alice.poll();
  assert.deepEqual(repeat.send, hs3);
  assert.deepEqual(bob.receive(frame(repeat.send)), { confirm: true });
  // Any DATA from bob confirms: no more repeats.
  alice.onData();
  assert.equal(alice.nextDeadline(), undefined);
  clock.advance(5 * HANDSHAKE_RETRY_MS);
  assert.deepEqual(alice.poll(), {});
  // A stranger's HS3 (not the one bob confirmed) gets nothing.
  const forged = sealed("hs3", "alice", new Uint8Array(64));
  assert.deepEqual(bob.receive(frame(forged)), {});
});

Deno.test("handshake: unanswered, HS1 goes out 10 times, then an introduction is asked for", () => {
  const { clock, alice } = pair();
  const hs1 = alice.begin();
  const sent = [hs1];
  let retry = alice.poll();
  for (let i = 0; i < 20 && !retry.needIntroduction; i++) {
    clock.advance(HANDSHAKE_RETRY_MS);
    retry = alice.poll();
    if (retry.send) sent.push(retry.send);
  }
  assert.equal(sent.length, HANDSHAKE_ATTEMPTS);
  assert.ok(sent.every((s) => s === hs1), "the same HS1 each time");
  assert.deepEqual(retry, { needIntroduction: true });
  assert.equal(alice.nextDeadline(), undefined, "nothing more until something happens");
  // The next path (after the new introduction) starts a fresh handshake.
  const fresh = alice.onPath();
  assert.equal(typeOf(fresh), "hs1");
  assert.notDeepEqual(fresh, hs1, "a new ephemeral key");
});

Deno.test("handshake: an HS2 without its HS3 is repeated 10 times; a path change repeats it too", () => {
  const { clock, alice, bob } = pair();
  const hs2 = bob.receive(frame(alice.begin())).send;
  // A new path: what is unanswered goes out on it (and counts as an attempt).
  assert.deepEqual(bob.onPath(), hs2);
  let sends = 2;
  let retry = bob.poll();
  while (!retry.needIntroduction && sends < 20) {
    clock.advance(HANDSHAKE_RETRY_MS);
    retry = bob.poll();
    if (retry.send) {
      assert.deepEqual(retry.send, hs2);
      sends++;
    }
  }
  assert.equal(sends, HANDSHAKE_ATTEMPTS);
  assert.deepEqual(retry, { needIntroduction: true });
  // The responder does not start one itself.
  assert.equal(bob.onPath(), undefined);
});

Deno.test("handshake: a key other than the introduced one is refused: no HS3, nothing established", () => {
  const keys = { alice: generateKeyPair(), bob: generateKeyPair() };
  const { alice, bob } = pair({ keys });
  alice.introduce(generateKeyPair().publicKey, TOKEN); // the coordinator vouched for another key
  const step2 = bob.receive(frame(alice.begin()));
  assert.deepEqual(alice.receive(frame(step2.send)), {}, "no HS3: bob learns nothing of alice");
  assert.equal(alice.stats.keyMismatches, 1);
  assert.equal(alice.nextDeadline(), undefined, "the handshake is abandoned, HS1 not repeated");
  // And on the responder's side: an HS3 proving an unexpected key establishes nothing.
  const other = pair({ keys });
  other.bob.introduce(generateKeyPair().publicKey, TOKEN);
  const hs3 = other.alice.receive(frame(other.bob.receive(frame(other.alice.begin())).send)).send;
  assert.deepEqual(other.bob.receive(frame(hs3)), {});
  assert.equal(other.bob.stats.keyMismatches, 1);
  assert.equal(other.bob.nextDeadline(), undefined, "HS2 is not repeated either");
});

Deno.test("handshake: a key the trust store refuses is abandoned the same way, not counted as a mismatch", () => {
  const asked: Uint8Array[] = [];
  const { keys, alice, bob } = pair({
    alice: {
      verifyKey: (key) => {
        asked.push(key);
        return false;
      },
    },
  });
  const step2 = bob.receive(frame(alice.begin()));
  assert.deepEqual(alice.receive(frame(step2.send)), {});
  assert.deepEqual(asked, [keys.bob.publicKey], "asked about bob's proven key");
  assert.equal(alice.stats.keyMismatches, 0);
  assert.equal(alice.nextDeadline(), undefined);
});

Deno.test("handshake: a restarted peer shows a new instance id; the same one again is no restart", () => {
  const { keys, alice, bob, make } = pair();
  const handshake = (responder: Handshake) => {
    alice.introduce(keys.bob.publicKey, TOKEN);
    const step3 = alice.receive(frame(responder.receive(frame(alice.begin())).send));
    responder.receive(frame(step3.send));
    alice.onData();
    return step3.established!;
  };
  assert.equal(handshake(bob).restarted, false);
  // Introduced again, to the same process: the same instance.
  const same = handshake(bob);
  assert.equal(same.instance, 2);
  assert.equal(same.restarted, false);
  // bob restarted: a new process, a new instance id.
  const bob2 = make("bob", "alice", 3);
  bob2.introduce(keys.alice.publicKey, TOKEN);
  const again = handshake(bob2);
  assert.equal(again.instance, 3);
  assert.equal(again.restarted, true);
});

Deno.test("handshake: malformed messages are counted and leave the handshake as it was", () => {
  const { alice, bob } = pair();
  const hs1 = alice.begin()!;
  // A short HS1 does not even hold an ephemeral key.
  const short = sealed("hs1", "alice", new Uint8Array(5));
  assert.deepEqual(bob.receive(frame(short)), {});
  assert.equal(bob.stats.badHandshakes, 1);
  const hs2 = bob.receive(frame(hs1)).send!;
  // A tampered HS2 (with a valid mac1: from a holder of the token) does not decrypt.
  const noise = frame(hs2).payload.slice();
  noise[noise.length - 1] ^= 1;
  assert.deepEqual(alice.receive(frame(sealed("hs2", "bob", noise))), {});
  assert.equal(alice.stats.badHandshakes, 1);
  // One whose MAC is wrong is not even read.
  const badMac = hs2.slice();
  badMac[badMac.length - 1] ^= 1;
  assert.deepEqual(alice.receive(frame(badMac)), {});
  assert.deepEqual([alice.stats.badHandshakes, alice.stats.badMacs], [1, 1]);
  // The real HS2 still completes the handshake.
  const step3 = alice.receive(frame(hs2));
  assert.ok(step3.established);
  assert.ok(bob.receive(frame(step3.send)).established);
  assert.equal(alice.stats.keyMismatches + bob.stats.keyMismatches, 0);
});

Deno.test("handshake: an HS2 without a 4-byte instance id is counted and completes nothing", () => {
  const { keys, alice } = pair();
  const hs1 = alice.begin();
  // A responder that is not one of us: it proves bob's key but sends a 3-byte payload.
  const odd = new HandshakeState({
    role: "responder",
    staticKeyPair: keys.bob,
    prologue: prologueFor("alice", "bob"),
  });
  odd.readMessage(frame(hs1).payload);
  const oddHs2 = sealed("hs2", "bob", odd.writeMessage(new Uint8Array([0, 0, 7])));
  assert.deepEqual(alice.receive(frame(oddHs2)), {});
  assert.equal(alice.stats.badHandshakes, 1);
  assert.equal(alice.stats.keyMismatches, 0);
});

Deno.test("handshake: no key exchange without the introduction's token: forged frames are counted", () => {
  const { keys, alice, bob, make } = pair();
  // A stranger makes a perfect Noise HS1 for alice's name, but does not know the token.
  const stranger = new HandshakeState({
    role: "initiator",
    staticKeyPair: generateKeyPair(),
    prologue: prologueFor("alice", "bob"),
  });
  const forged = sealed("hs1", "alice", stranger.writeMessage(), new Uint8Array(16).fill(9));
  for (let i = 0; i < 100; i++) assert.deepEqual(bob.receive(frame(forged), "0/192.0.2.9:1"), {});
  assert.equal(bob.stats.badMacs, 100);
  assert.equal(bob.nextDeadline(), undefined, "nothing started: no HS2 to repeat");
  // Not introduced at all: nothing to check a MAC with.
  const fresh = make("bob", "alice", 5);
  assert.deepEqual(fresh.receive(frame(alice.begin())), {});
  assert.equal(fresh.stats.badMacs, 1);
  // A forged HS2 costs the waiting initiator nothing either, and the real one still works.
  alice.introduce(keys.bob.publicKey, TOKEN);
  const hs1 = alice.begin();
  const fakeHs2 = sealed("hs2", "bob", new Uint8Array(80), new Uint8Array(16));
  assert.deepEqual(alice.receive(frame(fakeHs2)), {});
  assert.equal(alice.stats.badMacs, 1);
  const step3 = alice.receive(frame(bob.receive(frame(hs1)).send));
  assert.ok(bob.receive(frame(step3.send)).established);
});

Deno.test("handshake: an old HS1 replayed after the handshake gets no key exchange", () => {
  const { alice, bob } = pair();
  const hs1 = alice.begin();
  const step3 = alice.receive(frame(bob.receive(frame(hs1)).send));
  assert.ok(bob.receive(frame(step3.send)).established);
  for (let i = 0; i < 5; i++) assert.deepEqual(bob.receive(frame(hs1)), {});
  assert.equal(bob.stats.replays, 5);
  assert.equal(bob.nextDeadline(), undefined, "no HS2 waiting for an HS3 that never comes");
});

Deno.test("handshake: the previous introduction's token is still taken (the new one may be in flight)", () => {
  const { keys, alice, bob } = pair();
  const hs1 = alice.begin(); // under TOKEN
  bob.introduce(keys.alice.publicKey, new Uint8Array(16).fill(8)); // bob's new introduction came first
  const step3 = alice.receive(frame(bob.receive(frame(hs1)).send));
  assert.ok(step3.established, "bob answers under the token alice used");
  assert.ok(bob.receive(frame(step3.send)).established);
  // Two introductions later, the first token is forgotten.
  bob.introduce(keys.alice.publicKey, new Uint8Array(16).fill(10));
  alice.introduce(keys.bob.publicKey, TOKEN);
  assert.deepEqual(bob.receive(frame(alice.begin())), {});
  assert.equal(bob.stats.badMacs, 1);
});

Deno.test("handshake: under load, a cookie first; the initiator's next HS1 carries it and gets through", () => {
  const { clock, keys, alice, bob, make } = pair();
  const source = "0/192.0.2.7:4000";
  // A holder of the token starts fresh handshakes as fast as it likes: 3 key exchanges, then
  // cookies (5 a second), then nothing.
  const flooder = make("alice", "bob", 9);
  const fresh = () => {
    flooder.introduce(keys.bob.publicKey, TOKEN);
    return frame(flooder.begin());
  };
  const answers = Array.from({ length: 20 }, () => bob.receive(fresh(), source));
  assert.equal(answers.filter((a) => a.send).length, 3);
  assert.equal(answers.filter((a) => a.cookieReply).length, 5);
  assert.deepEqual(
    [bob.stats.cookiesSent, bob.stats.handshakesLimited],
    [5, 12],
  );
  // Through the relay, under load, there is no cookie: dropped.
  assert.deepEqual(bob.receive(fresh()), {});
  assert.equal(bob.stats.handshakesLimited, 13);
  // Now the real alice, at her address: a cookie, then her repeat with mac2 is answered.
  clock.advance(1000);
  const hs1 = alice.begin()!;
  const first = bob.receive(frame(hs1), source);
  assert.ok(first.cookieReply && !first.send);
  const cookie = decodeFrame(first.cookieReply);
  assert.ok(cookie.type === "cookie");
  // A cookie for another HS1 (or forged) is not taken.
  const wrong = { ...cookie, mac: new Uint8Array(16) };
  alice.onCookie(wrong);
  assert.equal(alice.stats.badMacs, 1);
  alice.onCookie(cookie);
  clock.advance(HANDSHAKE_RETRY_MS);
  const repeat = alice.poll().send!;
  assert.notDeepEqual(repeat, hs1, "the same HS1 with a mac2");
  // The flooder spends the key exchange the budget regained meanwhile.
  assert.equal(typeOf(bob.receive(fresh(), source).send), "hs2");
  // From another address the cookie is worth nothing.
  const elsewhere = bob.receive(frame(repeat), "0/192.0.2.66:4000");
  assert.equal(elsewhere.send, undefined);
  const step2 = bob.receive(frame(repeat), source);
  assert.equal(typeOf(step2.send), "hs2");
  const step3 = alice.receive(frame(step2.send));
  assert.ok(bob.receive(frame(step3.send)).established);
  // The budget refills: one key exchange per 2 s without cookies.
  clock.advance(2000);
  alice.introduce(keys.bob.publicKey, TOKEN);
  assert.equal(typeOf(bob.receive(frame(alice.begin()), source).send), "hs2");
});
