import assert from "node:assert/strict";
import { SearchSchedule, type SearchScheduleOptions } from "../../lib/peer/search_schedule.ts";

function schedule(options: Partial<SearchScheduleOptions> = {}): SearchSchedule {
  return new SearchSchedule({
    probeIntervalMs: 200,
    fastProbeMs: 3000,
    backgroundIntervalMs: 3000,
    backgroundForMs: 30_000,
    reintroduceAfterMs: 90_000,
    relayAfterMs: 3000,
    primeDelayMs: 100,
    primeTtls: [2, 3],
    random: () => 2 ** 31, // jitter factor 1
    ...options,
  });
}

/** The times of the probe rounds from `from` to `until`, each ended as `direct` says. */
function rounds(s: SearchSchedule, from: number, until: number, direct = false): number[] {
  const at: number[] = [];
  for (let now = from; now <= until; now = s.nextDeadline() ?? Infinity) {
    if (s.roundDue(now)) {
      at.push(now);
      s.endRound(now, direct);
    }
    s.takePrimes(now);
  }
  return at;
}

Deno.test("schedule: priming TTLs spread over the delay; public probes after it", () => {
  const s = schedule();
  s.begin(1000);
  assert.deepEqual(s.takePrimes(1000), [2]);
  assert.deepEqual(s.takePrimes(1049), []);
  assert.deepEqual(s.takePrimes(1050), [3]);
  assert.equal(s.primed(1099), false);
  assert.equal(s.primed(1100), true);
  assert.equal(s.lowestPrimeTtl, 2);
  assert.equal(schedule({ primeTtls: [] }).lowestPrimeTtl, undefined);
});

Deno.test("schedule: a round at once, then at the primed time, fast, then background", () => {
  const s = schedule();
  s.begin(0);
  const at = rounds(s, 0, 40_000);
  assert.deepEqual(at.slice(0, 4), [0, 100, 300, 500]);
  const fast = at.filter((t) => t < 3000);
  assert.equal(fast.at(-1), 2900);
  assert.deepEqual(at.slice(fast.length), [
    5900,
    8900,
    11900,
    14900,
    17900,
    20900,
    23900,
    26900,
    29900,
  ]);
  assert.equal(s.inFastPhase(2999), true);
  assert.equal(s.inFastPhase(3000), false);
});

Deno.test("schedule: background rounds are jittered by ±25 %, and none while direct", () => {
  const low = schedule({ random: () => 0, primeTtls: [] });
  low.begin(0);
  low.endRound(2900, false);
  assert.equal(low.nextDeadline(), 2900 + 2250);
  const direct = schedule({ primeTtls: [] });
  direct.begin(0);
  assert.deepEqual(rounds(direct, 0, 40_000, true).length, 15, "fast rounds only");
});

Deno.test("schedule: relay once, re-introductions repeat until a direct path", () => {
  const s = schedule();
  s.armRelay(0);
  s.begin(0);
  assert.equal(s.takeRelay(2999), false);
  assert.equal(s.takeRelay(3000), true);
  assert.equal(s.takeRelay(3000), false);
  assert.equal(s.takeReintroduction(89_999, false), false);
  assert.equal(s.takeReintroduction(90_000, false), true);
  assert.equal(s.takeReintroduction(179_999, false), false);
  assert.equal(s.takeReintroduction(180_000, true), false, "a direct path needs none");
  assert.equal(s.takeReintroduction(270_000, false), false, "and none is due any more");
  s.armRelay(0);
  s.begin(0);
  s.onDirect();
  assert.equal(s.takeRelay(5000), false);
  assert.equal(s.takeReintroduction(90_000, false), false);
  s.stop();
  assert.equal(s.nextDeadline(), undefined);
});

Deno.test("schedule: early primed, no priming rounds: public probes are due at once", () => {
  const s = schedule();
  s.begin(1000, { earlyPrimed: true });
  assert.deepEqual(s.takePrimes(1000), []);
  assert.equal(s.primed(1000), true);
  assert.deepEqual(rounds(s, 1000, 1500), [1000, 1200, 1400]);
  // Every later search (a dead path, a re-introduction) primes as usual.
  s.begin(5000);
  assert.deepEqual(s.takePrimes(5000), [2]);
  assert.equal(s.primed(5099), false);
  assert.equal(s.primed(5100), true);
});
