import assert from "node:assert/strict";
import { RttEstimator } from "../../lib/peer/rtt.ts";

const DEFAULTS = { initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 2000 };

Deno.test("rtt: the initial RTO holds until the first sample", () => {
  const rtt = new RttEstimator(DEFAULTS);
  assert.equal(rtt.rtoMs, 1000);
  assert.equal(rtt.srttMs, undefined);
  assert.equal(rtt.minRttMs, undefined);
});

Deno.test("rtt: RFC 6298 arithmetic: first sample, then smoothed SRTT and RTTVAR", () => {
  const rtt = new RttEstimator({ ...DEFAULTS, minRtoMs: 1 });
  rtt.sample(100); // SRTT 100, RTTVAR 50
  assert.equal(rtt.srttMs, 100);
  assert.equal(rtt.rtoMs, 300);
  rtt.sample(200); // RTTVAR 3/4·50 + 1/4·100 = 62.5, SRTT 7/8·100 + 1/8·200 = 112.5
  assert.equal(rtt.srttMs, 112.5);
  assert.equal(rtt.rtoMs, 112.5 + 4 * 62.5);
  rtt.sample(40);
  assert.equal(rtt.minRttMs, 40);
  rtt.sample(80);
  assert.equal(rtt.minRttMs, 40);
});

Deno.test("rtt: a steady RTT leaves SRTT plus the clock granularity, clamped to the bounds", () => {
  const fine = new RttEstimator({ ...DEFAULTS, minRtoMs: 1 });
  for (let i = 0; i < 200; i++) fine.sample(50);
  // RTTVAR decays towards 0, so max(G, 4·RTTVAR) is G = 1 ms.
  assert.equal(fine.rtoMs, 51);
  const floor = new RttEstimator(DEFAULTS);
  floor.sample(10);
  assert.equal(floor.rtoMs, 200);
  const ceiling = new RttEstimator(DEFAULTS);
  ceiling.sample(1000);
  assert.equal(ceiling.rtoMs, 2000);
});

Deno.test("rtt: backoff doubles the RTO up to the ceiling and stops counting there", () => {
  const rtt = new RttEstimator(DEFAULTS);
  rtt.sample(100); // RTO 300
  const seen = [];
  for (let i = 0; i < 6; i++) {
    rtt.backOff();
    seen.push(rtt.rtoMs);
  }
  assert.deepEqual(seen, [600, 1200, 2000, 2000, 2000, 2000]);
  // Three doublings were counted, not six: a lower base RTO shows it.
  for (let i = 0; i < 100; i++) rtt.sample(20); // the base RTO falls to the 200 ms floor
  assert.equal(rtt.rtoMs, 200 * 8);
  rtt.resetBackoff();
  assert.equal(rtt.rtoMs, 200);
});

Deno.test("rtt: invalid bounds are refused", () => {
  for (
    const bad of [
      { ...DEFAULTS, minRtoMs: 0 },
      { ...DEFAULTS, initialRtoMs: 100 },
      { ...DEFAULTS, maxRtoMs: 500 },
      { ...DEFAULTS, minRtoMs: NaN },
    ]
  ) {
    assert.throws(() => new RttEstimator(bad), RangeError);
  }
});
