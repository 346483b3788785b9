import assert from "node:assert/strict";
import { NoiseError, prologueFor } from "../../lib/crypto/noise.ts";
import {
  COUNTER_LEN,
  REPLAY_WINDOW,
  Session,
  SESSION_OVERHEAD,
  sessionFromHandshake,
  type SessionStats,
} from "../../lib/crypto/session.ts";
import { handshakePair } from "../support/noise_pair.ts";

function pair(): { alice: Session; bob: Session } {
  const k1 = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));
  return {
    alice: new Session({ sendKey: k1, receiveKey: k2 }),
    bob: new Session({ sendKey: k2, receiveKey: k1 }),
  };
}

function counterOf(packet: Uint8Array): number {
  const view = new DataView(packet.buffer, packet.byteOffset);
  return view.getUint32(0) * 2 ** 32 + view.getUint32(4);
}

const ZERO_STATS: SessionStats = { badMac: 0, replay: 0, tooOld: 0, malformed: 0 };

Deno.test("session: overhead constant and wire layout", () => {
  assert.equal(SESSION_OVERHEAD, 24);
  assert.equal(COUNTER_LEN, 8);
  const { alice, bob } = pair();
  const text = new TextEncoder().encode("hello bob");
  const p0 = alice.seal(text);
  const p1 = alice.seal(text);
  assert.equal(p0.length, text.length + SESSION_OVERHEAD);
  assert.equal(counterOf(p0), 0);
  assert.equal(counterOf(p1), 1);
  assert.notDeepEqual(p0.subarray(8), p1.subarray(8)); // fresh nonce per packet
  assert.deepEqual(bob.open(p0), text);
  assert.deepEqual(bob.open(p1), text);
  assert.deepEqual(alice.open(bob.seal(new Uint8Array(0))), new Uint8Array(0));
  assert.deepEqual(bob.stats, ZERO_STATS);
});

Deno.test("session: built from a finished handshake, both directions", () => {
  const prologue = prologueFor("alice", "bob");
  const { init, resp } = handshakePair(prologue);
  assert.throws(() => sessionFromHandshake(init), NoiseError);
  resp.readMessage(init.writeMessage());
  init.readMessage(resp.writeMessage());
  resp.readMessage(init.writeMessage());
  const alice = sessionFromHandshake(init);
  const bob = sessionFromHandshake(resp);
  assert.deepEqual(bob.open(alice.seal(new Uint8Array([1, 2]))), new Uint8Array([1, 2]));
  assert.deepEqual(alice.open(bob.seal(new Uint8Array([3]))), new Uint8Array([3]));
  // A packet reflected back to its sender does not open (different direction key).
  assert.equal(alice.open(alice.seal(new Uint8Array([4]))), null);
  assert.equal(alice.stats.badMac, 1);
});

Deno.test("session: associated data must match", () => {
  const { alice, bob } = pair();
  const ad = new TextEncoder().encode("msg");
  const packet = alice.seal(new Uint8Array([1]), ad);
  assert.equal(bob.open(packet), null);
  assert.equal(bob.open(packet, new TextEncoder().encode("ack")), null);
  assert.equal(bob.stats.badMac, 2);
  // Failed attempts do not mark the counter as seen.
  assert.deepEqual(bob.open(packet, ad), new Uint8Array([1]));
});

Deno.test("session: every flipped bit is rejected and counted", () => {
  const { alice, bob } = pair();
  const packet = alice.seal(new TextEncoder().encode("flip me"));
  for (let bit = 0; bit < packet.length * 8; bit++) {
    const bad = packet.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    assert.equal(bob.open(bad), null, `bit ${bit} accepted`);
  }
  const s = bob.stats;
  assert.equal(s.badMac + s.malformed, packet.length * 8);
  assert.equal(s.badMac, packet.length * 8 - 11); // the top 11 counter bits make it > 2^53 - 1
  assert.equal(s.replay + s.tooOld, 0);
  assert.deepEqual(bob.open(packet), new TextEncoder().encode("flip me"));
});

Deno.test("session: a replayed packet is dropped and counted", () => {
  const { alice, bob } = pair();
  const packets = [0, 1, 2].map((i) => alice.seal(new Uint8Array([i])));
  for (const p of packets) assert.notEqual(bob.open(p), null);
  for (const p of packets) assert.equal(bob.open(p), null);
  assert.equal(bob.open(packets[1].slice()), null);
  assert.deepEqual(bob.stats, { ...ZERO_STATS, replay: 4 });
});

Deno.test("session: out of order within the window is accepted, beyond it dropped", () => {
  const { alice, bob } = pair();
  const packets = Array.from(
    { length: REPLAY_WINDOW + 2 },
    (_, i) => alice.seal(new Uint8Array([i & 255])),
  );
  // Newest first, then everything older that is still inside the window, in reverse.
  const newest = REPLAY_WINDOW; // counter 2048
  assert.notEqual(bob.open(packets[newest]), null);
  for (let c = newest - 1; c >= 1; c--) assert.notEqual(bob.open(packets[c]), null, `counter ${c}`);
  // Counter 0 is exactly REPLAY_WINDOW behind: too old.
  assert.equal(bob.open(packets[0]), null);
  assert.deepEqual(bob.stats, { ...ZERO_STATS, tooOld: 1 });
  // All of them again are replays (or too old), and the next new one still works.
  for (let c = 1; c <= newest; c++) assert.equal(bob.open(packets[c]), null);
  assert.equal(bob.stats.replay, REPLAY_WINDOW);
  assert.notEqual(bob.open(packets[newest + 1]), null);
  assert.equal(bob.open(packets[1]), null);
  assert.equal(bob.stats.tooOld, 2);
});

Deno.test("session: a big jump forward clears the window correctly", () => {
  const { alice, bob } = pair();
  const packets = Array.from({ length: 3 * REPLAY_WINDOW }, () => alice.seal(new Uint8Array(0)));
  assert.notEqual(bob.open(packets[5]), null);
  assert.notEqual(bob.open(packets[5 + 2 * REPLAY_WINDOW + 37]), null);
  // Counters that share a ring slot with the old packet 5 must not look seen.
  const c = 5 + 2 * REPLAY_WINDOW + 37 - (REPLAY_WINDOW - 1);
  assert.notEqual(bob.open(packets[c]), null);
  assert.equal(bob.open(packets[c - 1]), null);
  assert.deepEqual(bob.stats, { ...ZERO_STATS, tooOld: 1 });
});

Deno.test("session: window decisions match a reference model on random sequences", () => {
  let seed = 0x9e3779b9;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const { alice, bob } = pair();
  const total = 4 * REPLAY_WINDOW;
  const packets = Array.from({ length: total }, () => alice.seal(new Uint8Array(0)));
  const seen = new Set<number>();
  let highest = -1;
  let cursor = 0;
  for (let step = 0; step < 6000; step++) {
    // Mostly near the moving front, sometimes far behind, sometimes a jump ahead.
    cursor = Math.min(total - 1, cursor + rand(4));
    const r = rand(10);
    const c = r < 6
      ? Math.max(0, cursor - rand(64))
      : r < 8
      ? Math.max(0, cursor - rand(2 * REPLAY_WINDOW + 100))
      : Math.min(total - 1, cursor + rand(300));
    const expected = !seen.has(c) && highest - c < REPLAY_WINDOW;
    const got = bob.open(packets[c]) !== null;
    assert.equal(got, expected, `step ${step}: counter ${c}, highest ${highest}`);
    if (expected) {
      seen.add(c);
      highest = Math.max(highest, c);
    }
  }
  assert.equal(bob.stats.badMac + bob.stats.malformed, 0);
});

Deno.test("session: malformed input is dropped and counted, never thrown", () => {
  const { alice, bob } = pair();
  for (let n = 0; n < SESSION_OVERHEAD; n++) assert.equal(bob.open(new Uint8Array(n)), null);
  assert.equal(bob.open(null as unknown as Uint8Array), null);
  assert.equal(bob.open("packet" as unknown as Uint8Array), null);
  const huge = alice.seal(new Uint8Array(1));
  huge.fill(0xff, 0, 8);
  assert.equal(bob.open(huge), null);
  assert.deepEqual(bob.stats, { ...ZERO_STATS, malformed: SESSION_OVERHEAD + 3 });
  // A packet in a subarray of a bigger buffer still opens.
  const p = alice.seal(new Uint8Array([5]));
  const framed = new Uint8Array(p.length + 3);
  framed.set(p, 3);
  assert.deepEqual(bob.open(framed.subarray(3)), new Uint8Array([5]));
});

Deno.test("session: fuzz open with random and mutated packets", () => {
  let seed = 0x1234567;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const { alice, bob } = pair();
  const genuine = Array.from(
    { length: 64 },
    (_, i) => alice.seal(new Uint8Array(rand(100)).fill(i)),
  );
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    let input: Uint8Array;
    if (rand(2) === 0) {
      input = crypto.getRandomValues(new Uint8Array(rand(150)));
    } else {
      const base = genuine[rand(genuine.length)];
      switch (rand(4)) {
        case 0:
          input = base.map((b) => (rand(base.length) < 2 ? b ^ (1 << rand(8)) : b));
          break;
        case 1:
          input = base.slice(0, rand(base.length + 1));
          break;
        case 2:
          input = Uint8Array.from([...base, rand(256)]);
          break;
        default:
          input = base.slice(); // a genuine packet, possibly replayed
      }
    }
    let result: Uint8Array | null = null;
    try {
      result = bob.open(input);
    } catch (e) {
      assert.fail(`open threw ${e}`);
    }
    if (result !== null) {
      accepted++;
      assert.ok(
        genuine.some((g) => g.length === input.length && g.every((b, j) => b === input[j])),
      );
    }
  }
  const s = bob.stats;
  assert.ok(accepted <= genuine.length);
  assert.equal(s.badMac + s.replay + s.tooOld + s.malformed + accepted, 3000);
});

Deno.test("session: rejects keys of the wrong length", () => {
  const key = new Uint8Array(32);
  assert.throws(() => new Session({ sendKey: new Uint8Array(16), receiveKey: key }), RangeError);
  assert.throws(() => new Session({ sendKey: key, receiveKey: new Uint8Array(33) }), RangeError);
});

Deno.test("a packet sealed from parts behind a prefix is the prefix, then the seal of their concatenation", () => {
  const key1 = crypto.getRandomValues(new Uint8Array(32));
  const key2 = crypto.getRandomValues(new Uint8Array(32));
  const parts = new Session({ sendKey: key1, receiveKey: key2 });
  const whole = new Session({ sendKey: key1, receiveKey: key2 });
  const bob = new Session({ sendKey: key2, receiveKey: key1 });
  const ad = new TextEncoder().encode("header");
  const prefix = Uint8Array.of(9, 8, 7);
  const a = Uint8Array.of(1, 2, 3);
  const b = crypto.getRandomValues(new Uint8Array(2000));
  const packet = parts.seal([a, b], ad, { prefix });
  const plain = new Uint8Array([...a, ...b]);
  assert.deepEqual([...packet.subarray(0, 3)], [9, 8, 7]);
  assert.deepEqual(packet.subarray(3), whole.seal(plain, ad), "the same bytes as one plaintext");
  assert.deepEqual(bob.open(packet.subarray(3), ad), plain);
});
