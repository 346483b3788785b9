import assert from "node:assert/strict";
import { ACKED, Flight, LOST, OUTSTANDING } from "../../lib/peer/flight.ts";

function bytes(n: number): Uint8Array {
  return new Uint8Array([n]);
}

Deno.test("flight: new segments get consecutive seqs and transmission numbers", () => {
  const flight = new Flight(7);
  const a = flight.add(bytes(1), false, 10);
  const b = flight.add(bytes(2), true, 20);
  assert.deepEqual([a.seq, a.tx, a.sentAt, a.state], [0, 0, 10, OUTSTANDING]);
  assert.deepEqual([b.seq, b.tx, b.sentAt, b.end], [1, 1, 20, true]);
  assert.deepEqual(
    [flight.streamId, flight.una, flight.next, flight.size, flight.inFlight, flight.txCount],
    [7, 0, 2, 2, 2, 2],
  );
  assert.equal(flight.head, a);
  assert.equal(flight.copy(1)?.seg, b);
});

Deno.test("flight: a lost segment is resent under a new number; a probe copy changes nothing else", () => {
  const flight = new Flight(7);
  const a = flight.add(bytes(1), false, 0);
  const b = flight.add(bytes(2), false, 0);
  flight.markLost(a);
  assert.deepEqual([a.state, flight.inFlight, flight.lost], [LOST, 1, 1]);
  assert.equal(flight.firstLost(), a);
  flight.resend(a, 300);
  assert.deepEqual([a.state, a.tx, a.sentAt, a.copies], [OUTSTANDING, 2, 300, [0, 2]]);
  assert.deepEqual([flight.inFlight, flight.lost], [2, 0]);
  assert.equal(flight.copy(0)?.sentAt, 0, "the first copy is still known");
  const tx = flight.addCopy(b, 400);
  assert.equal(tx, 3);
  assert.deepEqual([b.tx, b.sentAt, b.copies], [1, 0, [1, 3]]);
  assert.deepEqual(flight.copy(3), { seg: b, sentAt: 400 });
  assert.equal(flight.inFlight, 2);
});

Deno.test("flight: acknowledgement counts new segments once and slides to the cumulative ack", () => {
  const flight = new Flight(7);
  const segs = [0, 1, 2, 3, 4].map((i) => flight.add(bytes(i), false, 0));
  flight.markLost(segs[0]);
  flight.resend(segs[0], 100); // tx 5
  flight.markLost(segs[3]);
  // SACK of 2..4: seg 2 and the lost seg 3 (sent once each: latest tx 3).
  assert.deepEqual(flight.acknowledge(0, [{ start: 2, end: 4 }]), { acked: 2, latestTx: 3 });
  assert.deepEqual([flight.inFlight, flight.lost, flight.una], [3, 0, 0]);
  assert.equal(flight.copy(2), undefined, "copies of acknowledged segments are forgotten");
  assert.equal(flight.lastUnacked(), segs[4]);
  // Cumulative ack 3: seg 0 (resent: which copy arrived is unknown) and seg 1; seg 2 again.
  assert.deepEqual(flight.acknowledge(3, [{ start: 2, end: 4 }]), { acked: 2, latestTx: 1 });
  assert.deepEqual([flight.una, flight.size, flight.inFlight], [3, 2, 1]);
  assert.equal(flight.head, segs[3]);
  assert.equal(segs[3].state, ACKED);
  assert.deepEqual(flight.acknowledge(5, []), { acked: 1, latestTx: 4 });
  assert.deepEqual([flight.una, flight.size, flight.inFlight, flight.head], [5, 0, 0, undefined]);
});

Deno.test("flight: a timeout deems every outstanding segment lost; reset starts a new stream", () => {
  const flight = new Flight(7);
  const segs = [0, 1, 2].map((i) => flight.add(bytes(i), false, 0));
  flight.acknowledge(0, [{ start: 1, end: 2 }]);
  flight.markAllLost();
  assert.deepEqual(segs.map((s) => s.state), [LOST, ACKED, LOST]);
  assert.deepEqual([flight.inFlight, flight.lost], [0, 2]);
  flight.reset(8);
  assert.deepEqual(
    [flight.streamId, flight.una, flight.next, flight.size, flight.inFlight, flight.lost],
    [8, 0, 0, 0, 0, 0],
  );
  assert.equal(flight.txCount, 0);
  assert.equal(flight.copy(0), undefined);
  assert.equal(flight.add(bytes(9), true, 5).tx, 0);
});
