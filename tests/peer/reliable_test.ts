import assert from "node:assert/strict";
import { ReliableChannel, type ReliableChannelOptions } from "../../lib/peer/reliable.ts";
import {
  type AckSegment,
  DATA_HEADER_SIZE,
  type DataSegment,
  decodeSegment,
  encodeSegment,
  type Segment,
} from "../../lib/protocol/segment.ts";
import { prng } from "../support/prng.ts";

type Side = "a" | "b";

/** One direction of the simulated link. */
interface LinkConfig {
  loss: number;
  duplicate: number;
  delayMs: number;
  /** Extra random delay up to this, which reorders datagrams. */
  jitterMs: number;
}

const PERFECT: LinkConfig = { loss: 0, duplicate: 0, delayMs: 10, jitterMs: 0 };
const LOSSY: LinkConfig = { loss: 0.2, duplicate: 0.05, delayMs: 20, jitterMs: 30 };
const DEAD: LinkConfig = { loss: 1, duplicate: 0, delayMs: 10, jitterMs: 0 };
/** 20 % loss at each of two routers, as in the NAT lab: 1 - 0.8^2 = 36 % each way. */
const HEAVY: LinkConfig = { ...LOSSY, loss: 0.36 };

/** What one peer has seen through its callbacks. */
interface Peer {
  ch: ReliableChannel;
  received: Uint8Array[];
  delivered: number[];
  undelivered: { id: number; reason: string; at: number }[];
}

/**
 * Two channels joined by a simulated lossy, reordering, duplicating link, driven by a fake clock.
 * `tap` sees every segment a channel sends (before the link may drop it) and may veto it.
 */
class Sim {
  now = 0;
  readonly rand: () => number;
  readonly link: Record<Side, LinkConfig>;
  readonly peers = {} as Record<Side, Peer>;
  tap: ((from: Side, bytes: Uint8Array) => boolean | void) | undefined;
  /** Datagrams in the network, sorted by arrival time. */
  #queue: { at: number; to: Side; bytes: Uint8Array }[] = [];
  /** Scheduled actions, sorted by time. */
  #actions: { at: number; run: () => void }[] = [];

  constructor(
    seed: number,
    link: { ab: LinkConfig; ba: LinkConfig },
    options: Partial<Record<Side, Partial<ReliableChannelOptions>>> = {},
  ) {
    this.rand = prng(seed);
    // Keyed by sender: link.a carries a -> b.
    this.link = { a: link.ab, b: link.ba };
    this.restart("a", options.a);
    this.restart("b", options.b);
  }

  /** Replaces a side's channel with a fresh one, as a process restart would. */
  restart(side: Side, options: Partial<ReliableChannelOptions> = {}): Peer {
    const peer: Peer = { ch: undefined!, received: [], delivered: [], undelivered: [] };
    peer.ch = new ReliableChannel({
      now: () => this.now,
      send: (bytes) => this.#transmit(side, bytes),
      onMessage: (data) => peer.received.push(data),
      onDelivered: (id) => peer.delivered.push(id),
      onUndelivered: (id, reason) => peer.undelivered.push({ id, reason, at: this.now }),
      newStreamId: () => Math.floor(this.rand() * 2 ** 32),
      ...options,
    });
    this.peers[side] = peer;
    return peer;
  }

  at(time: number, run: () => void): void {
    const i = this.#actions.findIndex((a) => a.at > time);
    this.#actions.splice(i < 0 ? this.#actions.length : i, 0, { at: time, run });
  }

  /** Puts a datagram on the wire towards `to`, bypassing the tap and the loss model. */
  inject(to: Side, bytes: Uint8Array, delayMs = 0): void {
    this.#enqueue(this.now + delayMs, to, bytes);
  }

  #transmit(from: Side, bytes: Uint8Array): void {
    if (this.tap?.(from, bytes) === false) return;
    const cfg = this.link[from];
    const to: Side = from === "a" ? "b" : "a";
    const copies = this.rand() < cfg.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.rand() < cfg.loss) continue;
      this.#enqueue(this.now + cfg.delayMs + this.rand() * cfg.jitterMs, to, bytes);
    }
  }

  #enqueue(at: number, to: Side, bytes: Uint8Array): void {
    let lo = 0;
    let hi = this.#queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#queue[mid].at <= at) lo = mid + 1;
      else hi = mid;
    }
    this.#queue.splice(lo, 0, { at, to, bytes });
  }

  /** Advances the clock event by event until `done()` or `until`; returns whether done. */
  run(until: number, done: () => boolean = () => false): boolean {
    while (!done()) {
      const times = [
        this.#queue[0]?.at,
        this.#actions[0]?.at,
        this.peers.a.ch.nextDeadline(),
        this.peers.b.ch.nextDeadline(),
      ].filter((t): t is number => t !== undefined);
      const next = Math.max(this.now, Math.min(...times));
      if (times.length === 0 || next > until) {
        this.now = Math.max(this.now, until);
        return false;
      }
      this.now = next;
      while (this.#actions.length > 0 && this.#actions[0].at <= this.now) {
        this.#actions.shift()!.run();
      }
      while (this.#queue.length > 0 && this.#queue[0].at <= this.now) {
        const { to, bytes } = this.#queue.shift()!;
        this.peers[to].ch.receive(bytes);
      }
      for (const side of ["a", "b"] as const) {
        const { ch } = this.peers[side];
        ch.poll();
        // poll() must handle everything due, or the caller's timer loop would spin.
        const after = ch.nextDeadline();
        assert.ok(after === undefined || after > this.now, `${side}: deadline ${after} is due`);
      }
    }
    return true;
  }
}

/** A message that names its sender-side index, padded to `size` bytes with a checkable pattern. */
function message(index: number, size: number): Uint8Array {
  const out = new Uint8Array(Math.max(4, size));
  new DataView(out.buffer).setUint32(0, index);
  for (let i = 4; i < out.length; i++) out[i] = (index * 31 + i) & 0xff;
  return out;
}

function indexOf(data: Uint8Array): number {
  assert.ok(data.length >= 4, `message of ${data.length} bytes is too short`);
  const index = new DataView(data.buffer, data.byteOffset).getUint32(0);
  assert.deepEqual(data, message(index, data.length), `message ${index} is corrupted`);
  return index;
}

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function texts(list: Uint8Array[]): string[] {
  return list.map((d) => new TextDecoder().decode(d));
}

function decodeAll(list: Uint8Array[]): Segment[] {
  return list.map((b) => decodeSegment(b));
}

/** Two channels wired by hand: segments wait in `wire` until delivered explicitly. */
function manualPair(options: Partial<ReliableChannelOptions> = {}) {
  let now = 0;
  let nextStream = 100;
  const wire = { a: [] as Uint8Array[], b: [] as Uint8Array[] };
  const make = (side: Side) => {
    const peer: Peer = { ch: undefined!, received: [], delivered: [], undelivered: [] };
    peer.ch = new ReliableChannel({
      now: () => now,
      send: (bytes) => wire[side].push(bytes),
      onMessage: (data) => peer.received.push(data),
      onDelivered: (id) => peer.delivered.push(id),
      onUndelivered: (id, reason) => peer.undelivered.push({ id, reason, at: now }),
      newStreamId: () => nextStream++,
      ...options,
    });
    return peer;
  };
  return {
    wire,
    make,
    setNow: (t: number) => (now = t),
    /** Delivers everything `from` has sent to `to` (in order), returning the segments. */
    flush(from: Side, to: Peer): Uint8Array[] {
      const sent = wire[from].splice(0);
      for (const bytes of sent) to.ch.receive(bytes);
      return sent;
    },
  };
}

Deno.test("reliable: one message each way over a perfect link", () => {
  const sim = new Sim(1, { ab: PERFECT, ba: PERFECT });
  const { a, b } = sim.peers;
  const idA = a.ch.send(text("hello b"));
  const idB = b.ch.send(text("hello a"));
  assert.ok(sim.run(1000, () => a.delivered.length === 1 && b.delivered.length === 1));
  assert.deepEqual(texts(b.received), ["hello b"]);
  assert.deepEqual(texts(a.received), ["hello a"]);
  assert.deepEqual(a.delivered, [idA]);
  assert.deepEqual(b.delivered, [idB]);
  assert.equal(sim.now, 20, "delivered after one round trip");
  assert.equal(a.ch.nextDeadline(), undefined, "no timer runs when idle");
  assert.equal(a.ch.stats.retransmitted, 0);
});

for (const [link, boundMs] of [[LOSSY, 90_000], [HEAVY, 200_000]] as const) {
  const percent = `${link.loss * 100}%`;
  Deno.test(`reliable: 1,000 messages each way at ${percent} loss arrive exactly once, in order`, () => {
    // Default options: the peer stays alive, so nothing may be given up however old it gets.
    const sim = new Sim(0xc0ffee, { ab: link, ba: link });
    const N = 1000;
    const sizes = (i: number) => (i % 10 === 0 ? 100 + ((i * 997) % 3000) : 1 + ((i * 7) % 200));
    const sent: Record<Side, number[]> = { a: [], b: [] };
    // a queues everything at once; b sends one message every 10 ms.
    for (let i = 0; i < N; i++) sent.a.push(sim.peers.a.ch.send(message(i, sizes(i))));
    for (let i = 0; i < N; i++) {
      sim.at(i * 10, () => sent.b.push(sim.peers.b.ch.send(message(i, sizes(i)))));
    }
    const { a, b } = sim.peers;
    const done = () =>
      a.delivered.length + a.undelivered.length === N &&
      b.delivered.length + b.undelivered.length === N;
    assert.ok(sim.run(600_000, done), `not done by ${sim.now} ms`);
    for (const [me, peer] of [["a", b], ["b", a]] as const) {
      const self = sim.peers[me];
      assert.deepEqual(self.undelivered.slice(0, 1), [], `${me}: nothing undelivered`);
      assert.deepEqual(self.delivered, sent[me], `${me}: every id delivered once, in order`);
      assert.deepEqual(
        peer.received.map(indexOf),
        Array.from({ length: N }, (_, i) => i),
        `${me}'s messages received exactly once, in order`,
      );
      assert.ok(self.ch.stats.retransmitted > 0);
      assert.ok(peer.ch.stats.duplicates > 0, "duplicates were suppressed");
      assert.equal(peer.ch.stats.outOfWindow, 0);
      // Lost ACKs must not inflate the RTT (it is 40..100 ms here).
      const srtt = self.ch.sendState.srttMs!;
      assert.ok(srtt >= 40 && srtt <= 100, `${me}: SRTT ${srtt} ms`);
    }
    console.log(`  ${percent} loss each way: all delivered in ${(sim.now / 1000).toFixed(1)} s`);
    assert.ok(sim.now < boundMs, `took ${sim.now} ms, more than ${boundMs}`);
  });
}

Deno.test("reliable: 64 KiB messages are reassembled at 20% loss, 1 MiB at 5%", () => {
  const rand = prng(7);
  const random = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  const cases: [number, Uint8Array[], Uint8Array[]][] = [
    [0.2, [random(65536), text("small"), random(65536)], [random(65536), random(65536)]],
    [0.05, [random(1 << 20)], [random(100)]],
  ];
  for (const [loss, fromA, fromB] of cases) {
    const link = { ...LOSSY, loss };
    const sim = new Sim(64, { ab: link, ba: link });
    const { a, b } = sim.peers;
    for (const m of fromA) a.ch.send(m);
    for (const m of fromB) b.ch.send(m);
    sim.tap = (_from, bytes) => assert.ok(bytes.length <= 1100, `segment of ${bytes.length} B`);
    const done = () => a.delivered.length === fromA.length && b.delivered.length === fromB.length;
    assert.ok(sim.run(300_000, done), `loss ${loss}: not done by ${sim.now} ms`);
    assert.deepEqual(a.undelivered, []);
    assert.equal(b.received.length, fromA.length);
    assert.equal(a.received.length, fromB.length);
    fromA.forEach((m, i) => assert.ok(equal(b.received[i], m), `message ${i} from a`));
    fromB.forEach((m, i) => assert.ok(equal(a.received[i], m), `message ${i} from b`));
    assert.ok(a.ch.stats.retransmitted > 0);
  }
});

function equal(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

Deno.test("reliable: segments fit a custom maxSegmentSize", () => {
  const sim = new Sim(3, { ab: LOSSY, ba: LOSSY }, {
    a: { maxSegmentSize: 100 },
    b: { maxSegmentSize: 100 },
  });
  let largest = 0;
  sim.tap = (_from, bytes) => void (largest = Math.max(largest, bytes.length));
  const data = message(1, 10_000);
  sim.peers.a.ch.send(data);
  assert.ok(sim.run(120_000, () => sim.peers.a.delivered.length === 1));
  assert.equal(largest, 100);
  assert.deepEqual(sim.peers.b.received, [data]);
  assert.equal(sim.peers.a.ch.stats.dataSent, Math.ceil(10_000 / (100 - DATA_HEADER_SIZE)));
});

Deno.test("reliable: the sender never exceeds the receive window or the congestion window", () => {
  for (const [seed, link] of [[11, PERFECT], [12, LOSSY]] as const) {
    const sim = new Sim(seed, { ab: link, ba: link }, { b: { receiveWindow: 8 } });
    const { a, b } = sim.peers;
    let rcvNext = 0; // b's cumulative ack, as b announced it
    let maxUnacked = 0;
    let violations = 0;
    // Probes may exceed cwnd: two when the timer expires, one tail loss probe.
    let probes = { at: -1, timeouts: 0, tailProbes: 0, allowed: 0 };
    sim.tap = (from, bytes) => {
      const seg = decodeSegment(bytes);
      if (from === "b" && seg.type === "ack") rcvNext = Math.max(rcvNext, seg.cumAck);
      if (from === "a" && seg.type === "data") {
        const s = a.ch.sendState;
        const { timeouts, tailProbes } = a.ch.stats;
        if (sim.now !== probes.at) probes = { ...probes, at: sim.now, allowed: 0 };
        probes.allowed += 2 * (timeouts - probes.timeouts) + (tailProbes - probes.tailProbes);
        Object.assign(probes, { timeouts, tailProbes });
        maxUnacked = Math.max(maxUnacked, s.unacked);
        if (seg.seq >= rcvNext + 8) violations++;
        if (s.unacked > s.peerWindow) violations++;
        // Exempt: the segment that holds up delivery (seq === base) is resent at once.
        if (seg.seq !== seg.base && s.inFlight > Math.max(1, Math.floor(s.cwnd))) {
          if (probes.allowed > 0) probes.allowed--;
          else violations++;
        }
      }
    };
    const ids: number[] = [];
    for (let i = 0; i < 300; i++) ids.push(a.ch.send(message(i, i % 25 === 0 ? 5000 : 50)));
    assert.ok(sim.run(600_000, () => a.delivered.length === ids.length), `seed ${seed}`);
    assert.equal(violations, 0);
    assert.equal(maxUnacked, 8, "the window is used up to its limit, never beyond");
    assert.equal(b.ch.stats.outOfWindow, 0);
    assert.deepEqual(b.received.map(indexOf), ids.map((_, i) => i));
  }
});

Deno.test("reliable: RTO starts at 1 s, doubles up to 2 s, then 30 s of silence give up", () => {
  const sim = new Sim(5, { ab: DEAD, ba: DEAD });
  const { a } = sim.peers;
  const sends: number[] = [];
  const copies = new Set<number>();
  sim.tap = (from, bytes) => {
    const seg = decodeSegment(bytes);
    if (from !== "a" || seg.type !== "data") return;
    sends.push(sim.now);
    copies.add(seg.tx);
  };
  const id = a.ch.send(text("anyone?"));
  assert.equal(a.ch.nextDeadline(), 1000);
  sim.run(29_999);
  // Each expiry sends two probes (here both copies of the only segment): 1 s, then every 2 s.
  const expiries = [1000, ...Array.from({ length: 14 }, (_, i) => 3000 + 2000 * i)];
  assert.deepEqual(sends, [0, ...expiries.flatMap((t) => [t, t])]);
  assert.equal(copies.size, sends.length, "every copy has its own transmission number");
  assert.equal(a.ch.sendState.rtoMs, 2000);
  assert.deepEqual(a.undelivered, [], "not given up before the timeout");
  assert.equal(a.ch.nextDeadline(), 30_000);
  sim.run(30_000);
  assert.deepEqual(a.undelivered, [
    { id, reason: "the peer acknowledged nothing new for 30000 ms", at: 30_000 },
  ]);
  assert.equal(a.ch.stats.giveUps, 1);
  assert.equal(a.ch.nextDeadline(), undefined);
});

Deno.test("reliable: RTO follows the RTT down to 200 ms; new data acked drops the backoff", () => {
  const fast: LinkConfig = { ...PERFECT, delayMs: 1 };
  const sim = new Sim(6, { ab: fast, ba: fast });
  const { a } = sim.peers;
  for (let i = 0; i < 10; i++) {
    a.ch.send(text(`m${i}`));
    assert.ok(sim.run(sim.now + 1000, () => a.delivered.length === i + 1));
  }
  assert.equal(a.ch.sendState.srttMs, 2);
  assert.equal(a.ch.sendState.rtoMs, 200, "RTO is clamped to the floor");
  sim.link.a = DEAD;
  const sends: number[] = [];
  sim.tap = (from) => void (from === "a" && sends.push(sim.now));
  const t0 = sim.now;
  a.ch.send(text("lost"));
  sim.run(t0 + 3100);
  // A tail loss probe after 2 SRTT, then two probes per expiry, the RTO doubling up to 2 s.
  assert.deepEqual(sends.map((t) => t - t0), [0, 4, 200, 200, 600, 600, 1400, 1400, 3000, 3000]);
  assert.equal(a.ch.sendState.rtoMs, 2000);
  sim.link.a = fast;
  assert.ok(sim.run(t0 + 6000, () => a.delivered.length === 11));
  assert.equal(sim.now, t0 + 5002, "the probes at 5 s got through");
  assert.equal(a.ch.sendState.rtoMs, 200, "the backoff is gone once new data is acknowledged");
});

Deno.test("reliable: the echo gives a resent segment an exact RTT sample (no Karn's rule)", () => {
  const slow: LinkConfig = { ...PERFECT, delayMs: 300 };
  const sim = new Sim(7, { ab: slow, ba: slow });
  const { a } = sim.peers;
  const sends: number[] = [];
  // Drop the first transmission only; its two probes at 1 s are acked at 1.6 s.
  sim.tap = (from) => from !== "a" || sends.push(sim.now) > 1;
  a.ch.send(text("first"));
  assert.ok(sim.run(5000, () => a.delivered.length === 1));
  assert.equal(sim.now, 1600);
  assert.deepEqual(sends, [0, 1000, 1000]);
  assert.equal(a.ch.sendState.srttMs, 600, "the RTT of the copy that arrived, not 1600");
  assert.equal(a.ch.sendState.rtoMs, 1800, "SRTT + 4 * RTTVAR = 600 + 4 * 300, backoff gone");
  a.ch.send(text("second"));
  assert.ok(sim.run(10_000, () => a.delivered.length === 2));
  assert.equal(a.ch.sendState.srttMs, 600);
  assert.equal(a.ch.sendState.rtoMs, 1500, "600 + 4 * 225");
});

Deno.test("reliable: a segment acked late because its own ACK was lost gives no RTT sample", () => {
  const sim = new Sim(16, { ab: PERFECT, ba: PERFECT });
  const { a } = sim.peers;
  let dropped = false;
  sim.tap = (from, bytes) => {
    const seg = decodeSegment(bytes);
    // Seq 0 is lost once; so are b's ACKs for seqs 1 and 2, which b got at 10 ms.
    if (from === "a" && seg.type === "data" && seg.seq === 0 && !dropped) return !(dropped = true);
    if (from === "b" && seg.type === "ack" && seg.cumAck === 0) return false;
  };
  for (let i = 0; i < 3; i++) a.ch.send(text(`m${i}`));
  assert.ok(sim.run(5000, () => a.delivered.length === 3));
  // The probes at the 1 s expiry are seqs 0 and 1; the ACK of seq 0 covers seq 2, sent at 0.
  assert.equal(sim.now, 1020);
  assert.equal(a.ch.sendState.srttMs, 20, "not 1020, the time since seq 2 was sent");
  assert.equal(a.ch.sendState.rtoMs, 200);
});

Deno.test("reliable: when the RTT grows beyond the RTO, the first ACK teaches it", () => {
  const sim = new Sim(17, { ab: PERFECT, ba: PERFECT });
  const { a } = sim.peers;
  const send = (i: number) => {
    a.ch.send(text(`m${i}`));
    assert.ok(sim.run(sim.now + 10_000, () => a.delivered.length === i + 1));
  };
  for (let i = 0; i < 5; i++) send(i);
  assert.equal(a.ch.sendState.rtoMs, 200);
  const slow: LinkConfig = { ...PERFECT, delayMs: 700 };
  Object.assign(sim.link, { a: slow, b: slow });
  send(5); // resent by the timer until the first copy's ACK comes after 1.4 s
  const timeouts = a.ch.stats.timeouts;
  assert.ok(timeouts > 0);
  assert.ok(a.ch.sendState.rtoMs > 1400, `RTO ${a.ch.sendState.rtoMs} ms after one sample`);
  for (let i = 6; i < 20; i++) send(i);
  assert.equal(a.ch.stats.timeouts, timeouts, "no more expiries: every later ACK came in time");
  assert.ok(a.ch.sendState.srttMs! > 1000, `SRTT ${a.ch.sendState.srttMs} ms`);
  const before = a.ch.stats.retransmitted;
  send(20);
  assert.equal(a.ch.stats.retransmitted, before, "nothing is resent once SRTT has caught up");
});

Deno.test("reliable: a lost last segment is resent by a tail loss probe, not the timer", () => {
  const fast: LinkConfig = { ...PERFECT, delayMs: 1 };
  const sim = new Sim(18, { ab: fast, ba: fast });
  const { a } = sim.peers;
  for (let i = 0; i < 10; i++) {
    a.ch.send(text(`m${i}`));
    assert.ok(sim.run(sim.now + 1000, () => a.delivered.length === i + 1));
  }
  let dropped = false;
  sim.tap = (from) => from !== "a" || dropped || !(dropped = true);
  const t0 = sim.now;
  a.ch.send(text("tail"));
  assert.ok(sim.run(t0 + 1000, () => a.delivered.length === 11));
  assert.equal(sim.now - t0, 6, "probe at 2 SRTT = 4 ms, acked 2 ms later; RTO would be 200");
  assert.equal(a.ch.stats.tailProbes, 1);
  assert.equal(a.ch.stats.timeouts, 0);
});

Deno.test("reliable: a dead link gives every pending message up; later messages go through", () => {
  const sim = new Sim(8, { ab: DEAD, ba: DEAD });
  const { a, b } = sim.peers;
  const early = [a.ch.send(text("e1")), a.ch.send(text("e2"))];
  const late: number[] = [];
  sim.at(10_000, () => late.push(a.ch.send(text("l1")), a.ch.send(text("l2"))));
  const oldStream = a.ch.sendState.streamId;
  sim.run(29_999);
  assert.equal(a.undelivered.length, 0);
  sim.run(30_000);
  // The first message's deadline gives up everything pending, also the later ones.
  assert.deepEqual(
    a.undelivered.map((u) => [u.id, u.at]),
    [...early, ...late].map((id) => [id, 30_000]),
  );
  assert.notEqual(a.ch.sendState.streamId, oldStream, "a new stream begins");
  assert.equal(a.ch.sendState.pendingMessages, 0);
  sim.run(40_000);
  sim.link.a = LOSSY;
  sim.link.b = LOSSY;
  const after = [a.ch.send(text("after1")), a.ch.send(text("after2"))];
  assert.ok(sim.run(100_000, () => a.delivered.length === 2));
  assert.deepEqual(a.delivered, after);
  assert.deepEqual(texts(b.received), ["after1", "after2"]);
});

Deno.test("reliable: a message the live peer never gets is given up, at the latest after 5 min", () => {
  const cases = [
    // b keeps SACKing later messages, so the peer is never silent: the per-message cap applies,
    // counted from the first transmission of the message holding seq 5 (at 5 s).
    { receiveWindow: 1024, at: 305_000, reason: "not acknowledged within 300000 ms" },
    // Once seqs 6..68 fill b's window of 64 beyond the hole, nothing new can be acknowledged:
    // silence applies 30 s after the ACK of seq 68 came back at 68.06 s. (Seq 68 went out at
    // 68.04 s, as a probe of a timer expiry: the stuck seq 5 keeps the window at 1 segment.)
    { receiveWindow: 64, at: 98_060, reason: "the peer acknowledged nothing new for 30000 ms" },
  ];
  for (const { receiveWindow, at, reason } of cases) {
    const sim = new Sim(19, { ab: PERFECT, ba: PERFECT }, { b: { receiveWindow } });
    const { a, b } = sim.peers;
    sim.tap = (from, bytes) => {
      const seg = decodeSegment(bytes);
      return !(from === "a" && seg.type === "data" && seg.seq === 5); // every copy is lost
    };
    const ids: number[] = [];
    for (let i = 0; i < 400; i++) sim.at(i * 1000, () => ids.push(a.ch.send(text(`m${i}`))));
    assert.ok(sim.run(400_000, () => a.undelivered.length > 0));
    assert.equal(sim.now, at, `window ${receiveWindow}`);
    assert.deepEqual(a.delivered, ids.slice(0, 5));
    assert.deepEqual(a.undelivered, ids.slice(5).map((id) => ({ id, reason, at })));
    assert.equal(a.ch.stats.giveUps, 1);
    assert.deepEqual(texts(b.received), ["m0", "m1", "m2", "m3", "m4"]);
    // Later messages go through on a new stream.
    sim.tap = undefined;
    const later = ids.length;
    assert.ok(sim.run(401_000, () => a.delivered.length === 5 + 400 - later));
    assert.deepEqual(a.delivered.slice(5), ids.slice(later));
  }
});

Deno.test("reliable: ACKs that acknowledge nothing new do not hold off the give-up", () => {
  const sim = new Sim(20, { ab: PERFECT, ba: PERFECT });
  const { a } = sim.peers;
  const acks: Uint8Array[] = [];
  sim.tap = (from, bytes) => void (from === "b" && acks.push(bytes));
  a.ch.send(text("m1"));
  assert.ok(sim.run(1000, () => a.delivered.length === 1));
  sim.link.a = DEAD;
  const t0 = 10_000;
  sim.run(t0);
  const id = a.ch.send(text("m2"));
  // Copies of b's old ACK keep coming: the peer is up, but nothing shows that m2 reaches it.
  for (let t = t0 + 500; t < t0 + 40_000; t += 500) sim.at(t, () => sim.inject("a", acks[0]));
  sim.run(t0 + 29_999);
  assert.equal(a.undelivered.length, 0);
  sim.run(t0 + 30_000);
  assert.deepEqual(a.undelivered.map((u) => [u.id, u.at]), [[id, t0 + 30_000]]);
});

Deno.test("reliable: after a give-up caused by lost ACKs, nothing is delivered twice", () => {
  // a -> b works, b -> a is dead: b gets the messages but a never hears of it.
  const sim = new Sim(9, { ab: PERFECT, ba: DEAD });
  const { a, b } = sim.peers;
  const oldData: Uint8Array[] = [];
  sim.tap = (from, bytes) => void (from === "a" && oldData.push(bytes));
  const ids = [a.ch.send(text("m1")), a.ch.send(text("m2"))];
  sim.run(30_000);
  assert.deepEqual(a.undelivered.map((u) => u.id), ids, "reported undelivered: unconfirmed");
  assert.deepEqual(texts(b.received), ["m1", "m2"], "yet b has them, once");
  assert.ok(b.ch.stats.duplicates > 0, "retransmissions were suppressed");
  sim.tap = undefined;
  sim.link.b = PERFECT;
  const next = a.ch.send(text("m3"));
  assert.ok(sim.run(31_000, () => a.delivered.length === 1));
  assert.deepEqual(a.delivered, [next]);
  assert.equal(b.ch.stats.streamsAdopted, 2);
  // A late copy of the old stream is ignored by b and its RESET answer ignored by a.
  const staleAcksBefore = a.ch.stats.staleAcks;
  sim.inject("b", oldData[0]);
  const last = a.ch.send(text("m4"));
  assert.ok(sim.run(32_000, () => a.delivered.length === 2));
  assert.deepEqual(a.delivered, [next, last]);
  assert.deepEqual(texts(b.received), ["m1", "m2", "m3", "m4"]);
  assert.equal(b.ch.stats.resetsSent, 1);
  assert.equal(a.ch.stats.staleAcks, staleAcksBefore + 1);
  assert.equal(a.ch.stats.resetsReceived, 0);
});

Deno.test("reliable: a receiver resets its state when a restarted sender starts a new stream", () => {
  const pair = manualPair({ maxSegmentSize: 64 });
  const a = pair.make("a");
  const b = pair.make("b");
  a.ch.send(text("old-1"));
  pair.flush("a", b);
  pair.flush("b", a);
  // A 3-segment message of which b gets only the first two segments.
  a.ch.send(message(7, 120));
  const segs = pair.wire.a.splice(0);
  assert.equal(segs.length, 3);
  b.ch.receive(segs[0]);
  b.ch.receive(segs[1]);
  assert.deepEqual(texts(b.received), ["old-1"]);
  // a restarts: its new channel has a new stream id and starts at seq 0.
  const a2 = pair.make("a");
  assert.notEqual(a2.ch.sendState.streamId, a.ch.sendState.streamId);
  a2.ch.send(text("new-1"));
  pair.flush("a", b);
  assert.equal(b.ch.stats.streamsAdopted, 2);
  // The old stream's last segment now arrives late: ignored, not glued to anything.
  b.ch.receive(segs[2]);
  a2.ch.send(text("new-2"));
  pair.flush("a", b);
  pair.flush("b", a2);
  assert.deepEqual(texts(b.received), ["old-1", "new-1", "new-2"]);
  assert.equal(a2.delivered.length, 2);
  assert.equal(b.ch.stats.resetsSent, 1, "b refused the late segment of the old stream");
  assert.equal(a2.ch.stats.resetsReceived, 0, "a RESET for the old stream does not affect a2");
  assert.deepEqual(a2.undelivered, []);
});

Deno.test("reliable: a restarted receiver RESETs the stream; the sender reports and moves on", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const b = pair.make("b");
  const first = a.ch.send(text("m1"));
  const stale = pair.wire.a.slice(); // seq 0 with base 0, as a late duplicate would be
  pair.flush("a", b);
  pair.flush("b", a);
  a.ch.send(text("m2"));
  pair.flush("a", b);
  pair.flush("b", a);
  assert.deepEqual(a.delivered, [first, 2]);
  // b restarts and first sees a stale copy of seq 0: it cannot tell and adopts the stream.
  const b2 = pair.make("b");
  for (const bytes of stale) b2.ch.receive(bytes);
  assert.deepEqual(texts(b2.received), ["m1"]);
  pair.flush("b", a); // b2's ack for seq 0 is old news for a
  // a's next segment says seq 0..1 were acknowledged: b2 knows it lost state and RESETs.
  const m3 = a.ch.send(text("m3"));
  pair.flush("a", b2);
  const answer = decodeAll(pair.wire.b.slice()) as AckSegment[];
  assert.deepEqual(answer.map((s) => s.reset), [true]);
  pair.flush("b", a);
  assert.deepEqual(a.undelivered.map((u) => u.id), [m3]);
  assert.match(a.undelivered[0].reason, /rejected the stream/);
  assert.equal(a.ch.stats.resetsReceived, 1);
  const m4 = a.ch.send(text("m4"));
  pair.flush("a", b2);
  pair.flush("b", a);
  assert.deepEqual(a.delivered.at(-1), m4);
  assert.deepEqual(texts(b2.received), ["m1", "m4"]);
  // A fresh receiver seeing a stream mid-way (base > 0) RESETs at once.
  const b3 = pair.make("b");
  a.ch.send(text("m5"));
  pair.flush("a", b3);
  pair.flush("b", a);
  assert.equal(b3.ch.stats.resetsSent, 1);
  assert.equal(b3.received.length, 0);
  assert.equal(a.undelivered.length, 2);
});

Deno.test("reliable: a RESET that is lost is repeated for the retransmission", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const b = pair.make("b");
  a.ch.send(text("m1"));
  pair.flush("a", b);
  pair.flush("b", a);
  const b2 = pair.make("b");
  a.ch.send(text("m2"));
  pair.flush("a", b2);
  pair.wire.b.length = 0; // the RESET is lost
  pair.setNow(5000);
  a.ch.poll(); // the timer expires: two probes
  pair.flush("a", b2);
  assert.equal(b2.ch.stats.resetsSent, 3, "each probe is answered");
  pair.flush("b", a);
  assert.equal(a.undelivered.length, 1);
});

Deno.test("reliable: a message larger than the receiver's maxMessageSize is refused", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const b = pair.make("b");
  const r = new ReliableChannel({
    now: () => 0,
    send: (bytes) => pair.wire.b.push(bytes),
    onMessage: (data) => b.received.push(data),
    onDelivered: () => {},
    onUndelivered: () => {},
    maxMessageSize: 2000,
  });
  const big = a.ch.send(message(1, 5000));
  pair.flush("a", { ...b, ch: r });
  pair.flush("b", a);
  assert.deepEqual(a.undelivered.map((u) => u.id), [big]);
  assert.equal(b.received.length, 0);
  const ok = a.ch.send(message(2, 2000));
  pair.flush("a", { ...b, ch: r });
  pair.flush("b", a);
  assert.deepEqual(a.delivered, [ok]);
  assert.equal(b.received.map(indexOf)[0], 2);
});

Deno.test("reliable: empty messages; only the cumulative ack counts as delivery", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const b = pair.make("b");
  for (let i = 0; i < 6; i++) a.ch.send(i === 0 ? new Uint8Array() : text(`m${i}`));
  const data = decodeAll(pair.wire.a.splice(0)) as DataSegment[];
  assert.deepEqual(
    data.map((s) => [s.seq, s.base, s.end]),
    [0, 1, 2, 3, 4, 5].map((i) => [i, 0, true]),
  );
  // Deliver 5, 3, 1 (holes at 0, 2, 4): b acks each at once, SACKing what it holds.
  const encoded = data.map((s) => encodeSegment(s));
  for (const i of [5, 3, 1]) b.ch.receive(encoded[i]);
  const acks = decodeAll(pair.wire.b.splice(0)) as AckSegment[];
  assert.deepEqual(acks.map((s) => s.sacks.length), [1, 2, 3]);
  assert.ok(acks.every((s) => s.cumAck === 0 && s.window === 64 && !s.reset));
  assert.equal(b.received.length, 0, "nothing before the hole at 0 is delivered");
  b.ch.receive(encoded[0]);
  assert.deepEqual(texts(b.received), ["", "m1"]);
  const ack = decodeSegment(pair.wire.b.at(-1)!) as AckSegment;
  assert.equal(ack.cumAck, 2);
  for (const bytes of pair.wire.b.splice(0)) a.ch.receive(bytes);
  assert.deepEqual(a.delivered, [1, 2], "only cumulatively acked messages count as delivered");
});

Deno.test("reliable: ACKs carry the newest SACK range first, then the lowest ones", () => {
  const pair = manualPair();
  const b = pair.make("b");
  const seg = (seq: number) =>
    encodeSegment({
      type: "data",
      streamId: 42,
      seq,
      base: 0,
      tx: seq,
      end: true,
      payload: text(`${seq}`),
    });
  const lastAck = () => decodeSegment(pair.wire.b.at(-1)!) as AckSegment;
  const sacks = () => lastAck().sacks.map((r) => `${r.start}-${r.end}`);
  const expected: [number, string[]][] = [
    [1, ["1-2"]],
    [9, ["9-10", "1-2"]],
    [3, ["3-4", "1-2", "9-10"]],
    [7, ["7-8", "1-2", "3-4", "9-10"]],
    [5, ["5-6", "1-2", "3-4", "7-8"]], // five ranges: the highest one is left out
    [3, ["3-4", "1-2", "5-6", "7-8"]], // a duplicate is acked again
  ];
  for (const [seq, ranges] of expected) {
    b.ch.receive(seg(seq));
    assert.deepEqual(sacks(), ranges, `after seq ${seq}`);
    assert.equal(lastAck().cumAck, 0);
  }
  assert.equal(b.ch.stats.duplicates, 1);
  b.ch.receive(seg(0));
  assert.deepEqual(texts(b.received), ["0", "1"]);
  assert.equal(lastAck().cumAck, 2);
  b.ch.receive(seg(0)); // below the cumulative ack: a duplicate, not buffered again
  assert.equal(b.ch.stats.duplicates, 2);
  assert.deepEqual(sacks(), ["3-4", "5-6", "7-8", "9-10"]);
  assert.equal(b.ch.stats.acksSent, 8);
  assert.deepEqual(texts(b.received), ["0", "1"]);
  b.ch.receive(seg(2 + 64)); // beyond the window of 64 from the cumulative ack: dropped
  assert.equal(b.ch.stats.outOfWindow, 1);
  assert.deepEqual(sacks(), ["3-4", "5-6", "7-8", "9-10"]);
  assert.equal(lastAck().window, 64);
  b.ch.receive(seg(2 + 63)); // the last seq in the window is kept
  assert.deepEqual(sacks(), ["65-66", "3-4", "5-6", "7-8"]);
});

Deno.test("reliable: loss is detected from later ACKs (RACK) and halves the window once", () => {
  const sim = new Sim(13, { ab: PERFECT, ba: PERFECT });
  const { a } = sim.peers;
  const copies: { at: number; cwnd: number }[] = [];
  sim.tap = (from, bytes) => {
    const seg = decodeSegment(bytes);
    if (from !== "a" || seg.type !== "data" || seg.seq !== 2) return;
    copies.push({ at: sim.now, cwnd: a.ch.sendState.cwnd });
    return copies.length > 2; // the first two copies of seq 2 are lost
  };
  for (let i = 0; i < 40; i++) a.ch.send(text(`m${i}`));
  assert.equal(a.ch.stats.dataSent, 8, "the initial window is 8 segments");
  assert.ok(sim.run(10_000, () => a.delivered.length === 40));
  // Sent at 0, overdue once a later segment's ACK came (RTT 20 ms) plus min RTT / 4 = 5 ms;
  // the lost resend is found the same way, without waiting for the 200 ms timer.
  assert.deepEqual(copies.map((c) => c.at), [0, 25, 60]);
  assert.ok(copies[1].cwnd < 10, `cwnd ${copies[1].cwnd} was reduced`);
  assert.equal(a.ch.stats.lossEvents, 1, "the second loss is in the same window: no second cut");
  assert.equal(a.ch.stats.timeouts, 0);
  assert.equal(a.ch.stats.retransmitted, 2);
});

Deno.test("reliable: a needless resend caused by reordering widens the reordering allowance", () => {
  const sim = new Sim(15, { ab: PERFECT, ba: PERFECT });
  const { a, b } = sim.peers;
  const late = new Set([2, 10]);
  sim.tap = (from, bytes) => {
    const seg = decodeSegment(bytes);
    if (from !== "a" || seg.type !== "data" || !late.has(seg.seq)) return;
    late.delete(seg.seq);
    sim.inject("b", bytes, 18); // 8 ms later than the segments around it
    return false;
  };
  for (let i = 0; i < 8; i++) a.ch.send(text(`m${i}`));
  assert.ok(sim.run(1000, () => a.delivered.length === 8));
  // The ACK of seq 2 came 3 ms after its resend at 25: it was for the reordered original.
  assert.equal(a.ch.stats.retransmitted, 1);
  for (let i = 8; i < 16; i++) a.ch.send(text(`m${i}`));
  assert.ok(sim.run(2000, () => a.delivered.length === 16));
  assert.equal(a.ch.stats.retransmitted, 1, "the same delay no longer counts as loss");
  assert.equal(b.received.length, 16);
});

Deno.test("reliable: after a timeout the congestion window restarts at one segment", () => {
  const sim = new Sim(14, { ab: DEAD, ba: PERFECT });
  const { a, b } = sim.peers;
  const sends: number[] = [];
  sim.tap = (from, bytes) =>
    void (from === "a" && sends.push((decodeSegment(bytes) as DataSegment).seq));
  for (let i = 0; i < 20; i++) a.ch.send(text(`m${i}`));
  sim.run(999);
  assert.equal(sends.length, 8);
  sim.link.a = PERFECT;
  sim.run(1000);
  assert.deepEqual(sends.slice(8), [0, 1], "two probes go out whatever the window");
  assert.equal(a.ch.sendState.cwnd, 1);
  sim.run(1020); // their two ACKs let three more go (slow start)
  assert.equal(a.ch.sendState.cwnd, 3);
  assert.deepEqual(sends.slice(10), [2, 3, 4]);
  assert.ok(sim.run(20_000, () => a.delivered.length === 20));
  assert.equal(b.received.length, 20);
});

Deno.test("reliable: ACKs for unsent data or another stream are ignored", () => {
  const pair = manualPair();
  const a = pair.make("a");
  a.ch.send(text("m1"));
  const streamId = a.ch.sendState.streamId;
  const ack = (fields: Partial<AckSegment>) =>
    encodeSegment({
      type: "ack",
      streamId,
      reset: false,
      cumAck: 0,
      window: 64,
      echo: 0,
      sacks: [],
      ...fields,
    });
  a.ch.receive(ack({ cumAck: 2 })); // only seq 0 was sent
  a.ch.receive(ack({ sacks: [{ start: 1, end: 2 }] }));
  assert.equal(a.ch.stats.invalidAcks, 2);
  a.ch.receive(ack({ streamId: streamId ^ 1, cumAck: 1 }));
  a.ch.receive(ack({ streamId: streamId ^ 1, reset: true }));
  assert.equal(a.ch.stats.staleAcks, 2);
  assert.deepEqual(a.delivered, []);
  assert.equal(a.ch.sendState.pendingMessages, 1);
  a.ch.receive(ack({ cumAck: 1 }));
  assert.deepEqual(a.delivered, [1]);
});

Deno.test("reliable: close reports pending messages undelivered and stops the channel", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const ids = [a.ch.send(text("x")), a.ch.send(text("y"))];
  a.ch.close();
  assert.deepEqual(
    a.undelivered.map((u) => [u.id, u.reason]),
    ids.map((id) => [id, "channel closed"]),
  );
  assert.ok(a.ch.closed);
  assert.equal(a.ch.nextDeadline(), undefined);
  assert.throws(() => a.ch.send(text("z")), /channel is closed/);
  a.ch.receive(pair.wire.a[0]);
  a.ch.poll();
  a.ch.close();
  assert.equal(a.undelivered.length, 2);
});

Deno.test("reliable: options and message size are validated", () => {
  const base: ReliableChannelOptions = {
    now: () => 0,
    send: () => {},
    onMessage: () => {},
    onDelivered: () => {},
    onUndelivered: () => {},
  };
  for (
    const bad of [
      { maxSegmentSize: 63 },
      { maxMessageSize: -1 },
      { giveUpAfterMs: 0 },
      { receiveWindow: 7 },
      { receiveWindow: 65536 },
      { minRtoMs: 0 },
      { initialRtoMs: 100 },
      { maxRtoMs: 500 },
    ]
  ) {
    assert.throws(() => new ReliableChannel({ ...base, ...bad }), RangeError, JSON.stringify(bad));
  }
  const ch = new ReliableChannel({ ...base, maxMessageSize: 10 });
  assert.throws(() => ch.send(new Uint8Array(11)), /exceeds maxMessageSize 10/);
  ch.send(new Uint8Array(10));
});

Deno.test("reliable: a throwing callback does not lose later events", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const b = pair.make("b");
  let calls = 0;
  const r = new ReliableChannel({
    now: () => 0,
    send: (bytes) => pair.wire.b.push(bytes),
    onMessage: (data) => {
      calls++;
      if (calls === 1) throw new Error("app bug");
      b.received.push(data);
    },
    onDelivered: () => {},
    onUndelivered: () => {},
  });
  a.ch.send(text("one"));
  a.ch.send(text("two"));
  const [s1, s2] = pair.wire.a.splice(0);
  r.receive(s2);
  assert.throws(() => r.receive(s1), /app bug/);
  r.receive(new Uint8Array([0xff])); // any later call reports the queued message
  assert.deepEqual(texts(b.received), ["two"]);
  assert.equal(r.stats.messagesReceived, 2);
});

Deno.test("reliable: a handler that sends is not overtaken by the next message of a filled hole", () => {
  const pair = manualPair();
  const a = pair.make("a");
  const seen: string[] = [];
  const r: ReliableChannel = new ReliableChannel({
    now: () => 0,
    send: () => {},
    onMessage: (data) => {
      const msg = new TextDecoder().decode(data);
      seen.push(`start ${msg}`);
      r.send(text(`re ${msg}`)); // sending flushes queued events: it must not deliver "two" here
      seen.push(`end ${msg}`);
    },
    onDelivered: () => {},
    onUndelivered: () => {},
  });
  a.ch.send(text("one"));
  a.ch.send(text("two"));
  const [s1, s2] = pair.wire.a.splice(0);
  r.receive(s2);
  r.receive(s1); // fills the hole: both messages are ready at once
  assert.deepEqual(seen, ["start one", "end one", "start two", "end two"]);
});

Deno.test("reliable: fuzzed and mutated segments never throw and the channels recover", () => {
  const sim = new Sim(0xf022, { ab: LOSSY, ba: LOSSY });
  const { a, b } = sim.peers;
  const rand = prng(99);
  let fuzzing = true;
  sim.tap = (from, bytes) => {
    if (!fuzzing || rand() > 0.3) return;
    const to: Side = from === "a" ? "b" : "a";
    const mutated = bytes.slice(0, rand() < 0.2 ? Math.floor(rand() * bytes.length) : undefined);
    for (let f = 1 + Math.floor(rand() * 3); f > 0 && mutated.length > 0; f--) {
      mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256);
    }
    sim.inject(to, mutated, rand() * 50);
    const junk = Uint8Array.from({ length: Math.floor(rand() * 40) }, () => rand() * 256);
    if (junk.length > 0 && rand() < 0.7) junk[0] = 1 + Math.floor(rand() * 2);
    sim.inject(to, junk, rand() * 50);
  };
  const resolved = (p: Peer) => p.delivered.length + p.undelivered.length;
  for (let i = 0; i < 200; i++) {
    sim.at(i * 20, () => {
      a.ch.send(message(i, 10 + i * 13));
      b.ch.send(message(i, 10 + i * 7));
    });
  }
  assert.ok(sim.run(600_000, () => resolved(a) === 200 && resolved(b) === 200));
  assert.ok(a.ch.stats.malformed > 0 && b.ch.stats.malformed > 0);
  for (const p of [a, b]) {
    const ids = [...p.delivered, ...p.undelivered.map((u) => u.id)].sort((x, y) => x - y);
    assert.deepEqual(ids, Array.from({ length: 200 }, (_, i) => i + 1), "each id reported once");
  }
  // Once the garbage stops, both directions work normally again: the first message may still
  // find confused state (e.g. a forged ACK made a skip data) and be refused with a RESET, after
  // which the streams are fresh.
  fuzzing = false;
  sim.run(sim.now + 1000);
  a.ch.send(text("probe"));
  b.ch.send(text("probe"));
  assert.ok(sim.run(sim.now + 120_000, () => resolved(a) === 201 && resolved(b) === 201));
  const start = { a: a.received.length, b: b.received.length };
  const sent: Record<Side, number[]> = { a: [], b: [] };
  for (let i = 0; i < 20; i++) {
    sent.a.push(a.ch.send(text(`a${i}`)));
    sent.b.push(b.ch.send(text(`b${i}`)));
  }
  assert.ok(sim.run(sim.now + 120_000, () => resolved(a) === 221 && resolved(b) === 221));
  assert.deepEqual(a.delivered.slice(-20), sent.a);
  assert.deepEqual(b.delivered.slice(-20), sent.b);
  assert.deepEqual(texts(b.received.slice(start.b)), sent.a.map((_, i) => `a${i}`));
  assert.deepEqual(texts(a.received.slice(start.a)), sent.b.map((_, i) => `b${i}`));
});

Deno.test("ackEvery: one ACK per 4 in-order segments, at once at a message's end, a late one on poll", () => {
  let now = 0;
  const acks: AckSegment[] = [];
  const received: Uint8Array[] = [];
  const rx = new ReliableChannel({
    now: () => now,
    send: (bytes) => acks.push(decodeSegment(bytes) as AckSegment),
    onMessage: (m) => received.push(m),
    onDelivered: () => {},
    onUndelivered: () => {},
    ackEvery: 4,
    ackDelayMs: 2,
  });
  const data = (seq: number, end: boolean): Uint8Array =>
    encodeSegment({
      type: "data",
      streamId: 5,
      seq,
      base: 0,
      tx: seq,
      end,
      payload: new Uint8Array([seq]),
    });
  for (let seq = 0; seq < 4; seq++) rx.receive(data(seq, false));
  assert.equal(acks.length, 1);
  assert.equal(acks[0].cumAck, 4);
  assert.equal(acks[0].echo, 3);
  rx.receive(data(4, false));
  assert.equal(acks.length, 1, "waits for more");
  assert.equal(rx.nextDeadline(), 2);
  now = 2;
  rx.poll();
  assert.equal(acks.length, 2, "sent when due");
  assert.equal(acks[1].cumAck, 5);
  rx.receive(data(5, true));
  assert.equal(acks.length, 3, "a message's end is acknowledged at once");
  assert.equal(received.length, 1);
  rx.receive(data(7, false));
  assert.equal(acks.length, 4, "a hole is acknowledged at once");
  assert.deepEqual(acks[3].sacks, [{ start: 7, end: 8 }]);
  rx.close();
});

Deno.test("holdNew: no new segment while it holds, resends still go, new ones go once it stops", () => {
  let now = 0;
  let hold = false;
  const sent: DataSegment[] = [];
  const wire: Uint8Array[] = [];
  const tx = new ReliableChannel({
    now: () => now,
    send: (bytes) => {
      wire.push(bytes);
      sent.push(decodeSegment(bytes) as DataSegment);
    },
    onMessage: () => {},
    onDelivered: () => {},
    onUndelivered: () => {},
    holdNew: () => hold,
  });
  const acks: Uint8Array[] = [];
  const rx = new ReliableChannel({
    now: () => now,
    send: (bytes) => acks.push(bytes),
    onMessage: () => {},
    onDelivered: () => {},
    onUndelivered: () => {},
  });
  tx.send(text("first"));
  assert.deepEqual(sent.map((s) => s.seq), [0]);
  hold = true;
  tx.send(text("second"));
  assert.equal(sent.length, 1, "held");
  now = tx.nextDeadline()!; // the retransmission timer: seq 0 is resent, seq 1 still waits
  tx.poll();
  assert.ok(sent.length > 1 && sent.every((s) => s.seq === 0), "only resends of seq 0");
  hold = false;
  // After the timer expiry cwnd is 1 and seq 0 fills it: its ACK opens room, and seq 1 goes.
  rx.receive(wire.at(-1)!);
  tx.receive(acks.at(-1)!);
  assert.equal(sent.at(-1)!.seq, 1, "released: the new segment goes");
  tx.close();
  rx.close();
});

Deno.test("resize: below a segment in flight, the stream is given up at once; else segments are cut anew", () => {
  const sim = new Sim(21, { ab: PERFECT, ba: PERFECT }, { a: { maxSegmentSize: 4_000 } });
  const { a, b } = sim.peers;
  let largest = 0;
  let narrow = false; // whether the path carries only 1,000 bytes
  sim.tap = (from, bytes) => {
    if (from === "a") largest = Math.max(largest, bytes.length);
    return !narrow || bytes.length <= 1_000;
  };
  // Small segments in flight only: a smaller size gives nothing up.
  a.ch.send(message(1, 500));
  assert.equal(a.ch.resize(1_000), false);
  assert.ok(sim.run(1_000, () => a.delivered.length === 1));
  // Large segments in flight when the size drops under them: given up at once, not in 30 s.
  assert.equal(a.ch.resize(4_000), false);
  const oldStream = a.ch.sendState.streamId;
  narrow = true;
  const big = a.ch.send(message(2, 20_000));
  sim.run(sim.now + 300); // their copies do not get through
  assert.equal(a.ch.resize(1_000), true);
  assert.deepEqual(a.undelivered.map((u) => u.id), [big]);
  assert.match(a.undelivered[0].reason, /no longer carries/);
  assert.notEqual(a.ch.sendState.streamId, oldStream, "a new stream begins");
  assert.equal(a.ch.stats.giveUps, 1);
  // Sent again (as the file layer does), it goes at the new size and arrives.
  largest = 0;
  const again = a.ch.send(message(2, 20_000));
  assert.ok(sim.run(sim.now + 5_000, () => a.delivered.includes(again)));
  assert.ok(largest <= 1_000, `largest segment ${largest}`);
  assert.equal(indexOf(b.received.at(-1)!), 2);
  assert.equal(a.ch.resize(500), false, "nothing in flight");
});
