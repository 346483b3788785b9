import assert from "node:assert/strict";
import { BASE_DATAGRAM, PathMtuSearch, PROBE_SIZES } from "../../lib/peer/path_mtu.ts";

/** A search on a fake clock whose probes and size changes are recorded. */
function search(options: { sizes?: number[] } = {}) {
  let now = 0;
  const probes: { id: number; size: number }[] = [];
  const sizes: number[] = [];
  const s = new PathMtuSearch({
    now: () => now,
    sendProbe: (id, size) => probes.push({ id, size }),
    onSize: (size) => sizes.push(size),
    ...options,
  });
  /** Moves the clock to the next deadline (at most `limit` ms on) and polls. */
  const advance = (limit = Infinity) => {
    const due = s.nextDeadline();
    now = due === undefined ? now + limit : Math.min(due, now + limit);
    s.poll();
  };
  return { s, probes, sizes, advance, at: () => now };
}

Deno.test("a search climbs the ladder one acknowledged probe at a time, and stops at the top", () => {
  const t = search();
  assert.equal(t.s.size, BASE_DATAGRAM);
  assert.equal(t.s.nextDeadline(), undefined, "nothing before start");
  t.s.start();
  for (const [i, size] of PROBE_SIZES.entries()) {
    assert.equal(t.probes.at(-1)!.size, size);
    t.s.onAck(t.probes.at(-1)!.id);
    assert.equal(t.s.size, size);
    assert.equal(t.probes.length, i + (i < PROBE_SIZES.length - 1 ? 2 : 1));
  }
  assert.deepEqual(t.sizes, [...PROBE_SIZES]);
  assert.equal(t.s.nextDeadline(), undefined, "done: no timer");
  t.s.start();
  assert.equal(t.probes.length, PROBE_SIZES.length, "a finished search does not probe again");
  assert.deepEqual(t.s.stats, { probesSent: 3, probesAcked: 3, sizesFailed: 0, blackHoles: 0 });
});

Deno.test("a size unanswered three times is given up; the search tries it again much later", () => {
  const t = search();
  t.s.start();
  t.s.onAck(t.probes[0].id); // 1452 passes
  for (let i = 0; i < 3; i++) {
    assert.equal(t.probes.at(-1)!.size, 8192);
    t.advance();
  }
  assert.equal(t.probes.length, 4, "three probes of 8192, then no more");
  assert.equal(t.s.size, 1452);
  assert.equal(t.s.stats.sizesFailed, 1);
  t.s.onAck(t.probes[1].id); // a late ACK of a given-up probe changes nothing
  assert.equal(t.s.size, 1452);
  const stopped = t.at();
  t.advance();
  assert.equal(t.at() - stopped, 600_000, "raise timer");
  assert.equal(t.probes.at(-1)!.size, 8192);
  t.s.onAck(t.probes.at(-1)!.id);
  assert.equal(t.s.size, 8192);
});

Deno.test("a black hole drops to the base and searches again at once; a second one within a minute waits a minute", () => {
  const t = search();
  t.s.start();
  t.s.onAck(t.probes[0].id);
  t.s.onAck(t.probes[1].id);
  assert.equal(t.s.size, 8192);
  t.s.onBlackHole();
  assert.equal(t.s.size, BASE_DATAGRAM);
  assert.deepEqual(t.sizes, [1452, 8192, BASE_DATAGRAM]);
  assert.equal(t.probes.length, 4);
  assert.equal(t.probes[3].size, 1452, "the search starts over at once");
  t.s.onAck(t.probes[2].id); // the 16384 probe sent before the black hole no longer counts
  assert.equal(t.s.size, BASE_DATAGRAM);
  t.s.onBlackHole(); // at the base a timeout is congestion, not the size
  assert.equal(t.s.stats.blackHoles, 1);
  t.s.onAck(t.probes[3].id); // a transient fall-back: the path still carries 1452, then 8192
  t.s.onAck(t.probes[4].id);
  assert.equal(t.s.size, 8192);
  t.s.onBlackHole(); // again within the minute: now it waits
  assert.equal(t.s.size, BASE_DATAGRAM);
  assert.equal(t.probes.length, 6, "no probe at once");
  const before = t.at();
  t.advance();
  assert.equal(t.at() - before, 60_000);
  assert.equal(t.probes.at(-1)!.size, 1452, "the search starts over");
});

Deno.test("a new path forgets the confirmed size; the next start searches again", () => {
  const t = search({ sizes: [1500] });
  t.s.start();
  t.s.onAck(t.probes[0].id);
  assert.equal(t.s.size, 1500);
  t.s.reset();
  assert.equal(t.s.size, BASE_DATAGRAM);
  assert.equal(t.s.nextDeadline(), undefined);
  t.s.start();
  assert.equal(t.probes.length, 2);
  assert.throws(() => search({ sizes: [1500, 1400] }), RangeError);
  assert.throws(() => search({ sizes: [1000] }), RangeError);
});

Deno.test("heavy loss of large datagrams is a black hole when a probe of the size in use goes unanswered", () => {
  const t = search({ sizes: [1452] });
  t.s.onSegments(1000, 500); // at the base: nothing to fall back from
  t.s.start();
  t.s.onAck(t.probes[0].id);
  t.s.onSegments(128, 100); // the first sample after a change: congestion while the window adapts
  t.s.onSegments(100, 9);
  t.s.onSegments(28, 3); // 12 of 128: under a tenth
  assert.equal(t.probes.length, 1, "no suspicion yet");
  t.s.onSegments(64, 7);
  t.s.onSegments(64, 6); // 13 of 128: the size in use is confirmed first
  assert.equal(t.s.size, 1452);
  assert.deepEqual(t.probes.at(-1)!.size, 1452);
  t.s.onSegments(128, 64); // more loss while confirming: no second probe
  assert.equal(t.probes.length, 2);
  t.advance();
  t.advance();
  assert.equal(t.probes.length, 4, "sent three times");
  assert.equal(t.s.size, 1452);
  t.advance(); // the third went unanswered too
  assert.equal(t.s.size, BASE_DATAGRAM);
  assert.equal(t.s.stats.blackHoles, 1);
});

Deno.test("loss from congestion keeps the size: the confirming probe is answered, the search goes on", () => {
  const t = search();
  t.s.start();
  t.s.onAck(t.probes[0].id); // 1452; 8192 probed next
  t.s.onSegments(128, 0); // the first sample after the change
  t.s.onSegments(128, 40); // a full receive buffer: 40 of 128 resent
  const confirm = t.probes.at(-1)!;
  assert.equal(confirm.size, 1452, "the size in use, not the next");
  t.s.onAck(t.probes[1].id); // the replaced search probe's late ACK counts for nothing
  assert.equal(t.s.size, 1452);
  t.s.onAck(confirm.id);
  assert.equal(t.s.size, 1452);
  assert.equal(t.s.stats.blackHoles, 0);
  assert.equal(t.probes.at(-1)!.size, 8192, "and the search goes on");
  t.s.onAck(t.probes.at(-1)!.id);
  assert.equal(t.s.size, 8192);
});

Deno.test("observe turns a stream's counters into timeouts and loss samples; a new stream starts afresh", () => {
  const t = search();
  t.s.start();
  t.s.onAck(t.probes[0].id);
  const one = {};
  const counters = (timeouts: number, dataSent: number, retransmitted: number) => ({
    timeouts,
    dataSent,
    retransmitted,
  });
  t.s.observe(one, counters(5, 1000, 900)); // the first sight of a stream is a baseline
  t.s.observe(one, counters(5, 1128, 900)); // the first sample after the raise: not judged
  t.s.observe(one, counters(5, 1256, 920)); // 20 of 128 resent: confirm the size in use
  assert.equal(t.probes.at(-1)!.size, 1452);
  t.advance();
  t.advance();
  t.advance(); // never answered
  assert.equal(t.s.size, BASE_DATAGRAM);
  t.s.onAck(t.probes.at(-1)!.id); // the search went on at once: 1452 again
  assert.equal(t.s.size, 1452);
  const two = {};
  t.s.observe(two, counters(0, 0, 0)); // a replaced channel: lower counters are no timeout
  t.s.observe(two, counters(1, 10, 0));
  assert.equal(t.s.size, BASE_DATAGRAM, "its first timeout is");
  assert.equal(t.s.stats.blackHoles, 2);
});

Deno.test("a second black hole waits its minute even when onSize hands bulk data over (start) at once", () => {
  let now = 0;
  const probes: number[] = [];
  const s: PathMtuSearch = new PathMtuSearch({
    now: () => now,
    sendProbe: (_id, size) => probes.push(size),
    // A fall-back makes the link give its stream up, and the transfers send again: `start` from
    // inside `onSize`.
    onSize: (size) => size === BASE_DATAGRAM && s.start(),
  });
  s.start();
  s.onAck(1);
  s.onBlackHole(); // the first: the search runs again at once
  assert.deepEqual(probes, [1452, 8192, 1452]);
  s.onAck(3);
  now = 1_000;
  s.onBlackHole(); // the second within a minute
  assert.equal(probes.length, 4, `no probe at once: ${probes}`);
  assert.equal(s.nextDeadline(), 61_000);
});
