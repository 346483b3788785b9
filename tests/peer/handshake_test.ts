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
import { decodeFrame, encodeFrame } from "../../lib/protocol/frame.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** A handshake frame from its bytes, as the link hands it over. */
function frame(bytes: Uint8Array | undefined): HandshakeFrame {
  assert.ok(bytes, "a frame was to be sent");
  const f = decodeFrame(bytes);
  assert.ok(f.type === "hs1" || f.type === "hs2" || f.type === "hs3", f.type);
  return { type: f.type, payload: f.payload, raw: f.raw };
}

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
  alice.introduce(keys.bob.publicKey);
  bob.introduce(keys.alice.publicKey);
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
  assert.deepEqual(alice.stats, { badHandshakes: 0, keyMismatches: 0 });
  assert.deepEqual(bob.stats, { badHandshakes: 0, keyMismatches: 0 });
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
  const forged = encodeFrame({ type: "hs3", from: "alice", payload: new Uint8Array(64) });
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
  alice.introduce(generateKeyPair().publicKey); // the coordinator vouched for another key
  const step2 = bob.receive(frame(alice.begin()));
  assert.deepEqual(alice.receive(frame(step2.send)), {}, "no HS3: bob learns nothing of alice");
  assert.equal(alice.stats.keyMismatches, 1);
  assert.equal(alice.nextDeadline(), undefined, "the handshake is abandoned, HS1 not repeated");
  // And on the responder's side: an HS3 proving an unexpected key establishes nothing.
  const other = pair({ keys });
  other.bob.introduce(generateKeyPair().publicKey);
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
    alice.introduce(keys.bob.publicKey);
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
  bob2.introduce(keys.alice.publicKey);
  const again = handshake(bob2);
  assert.equal(again.instance, 3);
  assert.equal(again.restarted, true);
});

Deno.test("handshake: malformed messages are counted and leave the handshake as it was", () => {
  const { alice, bob } = pair();
  const hs1 = alice.begin()!;
  // A short HS1 does not even hold an ephemeral key.
  const short = encodeFrame({ type: "hs1", from: "alice", payload: new Uint8Array(5) });
  assert.deepEqual(bob.receive(frame(short)), {});
  assert.equal(bob.stats.badHandshakes, 1);
  const hs2 = bob.receive(frame(hs1)).send!;
  // A tampered HS2 does not decrypt.
  const tampered = hs2.slice();
  tampered[tampered.length - 1] ^= 1;
  assert.deepEqual(alice.receive(frame(tampered)), {});
  assert.equal(alice.stats.badHandshakes, 1);
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
  const oddHs2 = encodeFrame({
    type: "hs2",
    from: "bob",
    payload: odd.writeMessage(new Uint8Array([0, 0, 7])),
  });
  assert.deepEqual(alice.receive(frame(oddHs2)), {});
  assert.equal(alice.stats.badHandshakes, 1);
  assert.equal(alice.stats.keyMismatches, 0);
});
