import assert from "node:assert/strict";
import { LOST, OUTSTANDING } from "../../lib/peer/flight.ts";
import { LossDetector, type SentSegment } from "../../lib/peer/loss_detection.ts";
import { RttEstimator } from "../../lib/peer/rtt.ts";

function setup(): { rtt: RttEstimator; loss: LossDetector } {
  const rtt = new RttEstimator({ initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 2000 });
  return { rtt, loss: new LossDetector(rtt) };
}

function seg(tx: number, sentAt: number, state: SentSegment["state"] = OUTSTANDING): SentSegment {
  return { tx, sentAt, state };
}

Deno.test("loss: nothing is lost before an echo gives RACK an RTT", () => {
  const { loss } = setup();
  const segments = [seg(0, 0), seg(1, 0)];
  loss.onAck(1, undefined); // segment 1 was acknowledged, but late: no RTT sample
  assert.deepEqual(loss.detect(10_000, segments), []);
  assert.equal(loss.lossDeadline, undefined);
  // Without an RTT, that ACK did not count: only what the first echo shows does.
  loss.onAck(-1, { tx: 0, rttMs: 100, needless: false });
  assert.deepEqual(loss.detect(10_000, [seg(1, 0)]), []);
});

Deno.test("loss: a segment is lost once overdue by the RACK RTT plus min RTT / 4", () => {
  const { rtt, loss } = setup();
  const segments = [seg(0, 0), seg(1, 10), seg(2, 20, LOST), seg(3, 30), seg(4, 40)];
  rtt.sample(80);
  loss.onAck(-1, { tx: 3, rttMs: 80, needless: false });
  // Due at sentAt + 80 + 20; segment 4 was sent after the one that arrived.
  assert.deepEqual(loss.detect(99, segments), []);
  assert.equal(loss.lossDeadline, 100);
  assert.deepEqual(loss.detect(100, segments), [segments[0]]);
  assert.equal(loss.lossDeadline, 110);
  assert.deepEqual(loss.detect(130, segments), [segments[0], segments[1], segments[3]]);
  assert.equal(loss.lossDeadline, undefined);
});

Deno.test("loss: needless resends widen the reordering allowance up to one min RTT", () => {
  const { rtt, loss } = setup();
  rtt.sample(80);
  const dues = [];
  for (let i = 0; i < 5; i++) {
    loss.onAck(-1, { tx: 5, rttMs: 80, needless: true });
    loss.detect(0, [seg(0, 0)]);
    dues.push(loss.lossDeadline);
  }
  assert.deepEqual(dues, [120, 140, 160, 160, 160]);
  loss.reset(); // a new stream keeps what was learned about reordering
  loss.onAck(-1, { tx: 5, rttMs: 80, needless: false });
  loss.detect(0, [seg(0, 0)]);
  assert.equal(loss.lossDeadline, 160);
});

Deno.test("loss: the timer and the silence start with the first transmission", () => {
  const { rtt, loss } = setup();
  loss.onTransmit(5);
  loss.onTransmit(50);
  assert.equal(loss.rtoDeadline, 1005);
  assert.equal(loss.silentSince, 5);
  assert.equal(loss.probeDeadline, undefined, "no tail probe without an SRTT");
  rtt.sample(100); // RTO 300
  loss.onProgress(400, true);
  assert.deepEqual([loss.rtoDeadline, loss.silentSince, loss.probeDeadline], [700, 400, 600]);
  loss.onTailProbe();
  assert.equal(loss.probeDeadline, undefined);
  loss.onTransmit(450); // within the silence: no new probe
  assert.deepEqual([loss.rtoDeadline, loss.silentSince, loss.probeDeadline], [700, 400, undefined]);
  loss.onProgress(500, false);
  assert.deepEqual([loss.rtoDeadline, loss.silentSince, loss.probeDeadline], [
    undefined,
    undefined,
    undefined,
  ]);
});

Deno.test("loss: the tail probe is armed only when due before the timer", () => {
  const { rtt, loss } = setup();
  rtt.sample(150);
  rtt.backOff(); // RTO 2·450 = 900 ms
  loss.onTransmit(0);
  assert.equal(loss.rtoDeadline, 900);
  assert.equal(loss.probeDeadline, 300);
  const late = setup();
  late.rtt.sample(1000); // RTO at its 2000 ms ceiling, no later than 2·SRTT: the timer goes first
  late.loss.onTransmit(0);
  assert.equal(late.loss.rtoDeadline, 2000);
  assert.equal(late.loss.probeDeadline, undefined);
});

Deno.test("loss: a timeout clears the loss and probe deadlines and restarts the backed-off timer", () => {
  const { rtt, loss } = setup();
  rtt.sample(100); // RTO 300
  loss.onTransmit(0);
  loss.onAck(-1, { tx: 1, rttMs: 100, needless: false });
  loss.detect(50, [seg(0, 0)]);
  assert.equal(loss.lossDeadline, 125);
  rtt.backOff();
  loss.onTimeout(300, true);
  assert.deepEqual([loss.lossDeadline, loss.probeDeadline, loss.rtoDeadline], [
    undefined,
    undefined,
    900,
  ]);
  assert.equal(loss.silentSince, 0, "a timeout does not end the silence");
  loss.onTimeout(900, false);
  assert.equal(loss.rtoDeadline, undefined);
  loss.reset();
  assert.equal(loss.silentSince, undefined);
  assert.deepEqual(loss.detect(10_000, [seg(0, 0)]), [], "RACK starts over without an RTT");
});
