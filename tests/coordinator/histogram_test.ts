/** The fixed-bucket histogram the cluster times its hop with (lib/coordinator/histogram.ts). */
import assert from "node:assert/strict";
import { Histogram } from "../../lib/coordinator/histogram.ts";

Deno.test("histogram: each value counts in the first bucket whose bound it does not exceed", () => {
  const h = new Histogram([0.01, 0.05]);
  for (const v of [0.01, 0.0100001, 0.05, 0.2, -3]) h.observe(v);
  const s = h.snapshot();
  assert.deepEqual(s.counts, [2, 2, 1], "a bound is inclusive; a negative value counts as 0");
  assert.equal(s.count, 5);
  assert.ok(Math.abs(s.sum - 0.2700001) < 1e-12);
  h.observe(1);
  assert.deepEqual(s.counts, [2, 2, 1], "a snapshot is a copy");
});

Deno.test("histogram: bounds must be finite and ascending", () => {
  assert.throws(() => new Histogram([0.1, 0.1]), /ascending/);
  assert.throws(() => new Histogram([1, Infinity]), /finite/);
  assert.throws(() => new Histogram([NaN]), RangeError);
});
