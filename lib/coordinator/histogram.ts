/**
 * A histogram with fixed buckets, as Prometheus keeps them: counts per upper bound, a sum and a
 * count. The cluster times each coordinator-to-coordinator hop with one (docs/CLUSTER.md,
 * `p2p_cluster_hop_seconds` in docs/METRICS.md); `metrics.ts` writes the text. Separate so that
 * observing costs one loop over a dozen bounds and no formatting, and so that it has no I/O.
 *
 * @example
 * ```ts
 * const h = new Histogram(HOP_BUCKETS_SECONDS);
 * h.observe(0.004);
 * h.snapshot(); // { bounds: [0.001, …], counts: [0, 0, 1, …], sum: 0.004, count: 1 }
 * ```
 * @module
 */

/**
 * Upper bounds (seconds) for the cluster's hop: fine below the 50 ms goal, coarse above it up to
 * the member timeout (a hop longer than that means a member was stalled).
 */
export const HOP_BUCKETS_SECONDS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** What a histogram holds: `counts[i]` observations in (`bounds[i-1]`, `bounds[i]`], +Inf last. */
export interface HistogramSnapshot {
  readonly bounds: readonly number[];
  /** Per bucket, not cumulative; one more than `bounds` (the +Inf bucket). */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/** Observations counted in fixed buckets. */
export class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  /** `bounds`: the buckets' upper bounds, ascending; a +Inf bucket is added. */
  constructor(bounds: readonly number[]) {
    if (bounds.some((b, i) => !(b > (bounds[i - 1] ?? -Infinity)) || !Number.isFinite(b))) {
      throw new RangeError(`histogram bounds must be finite and ascending: ${bounds.join(", ")}`);
    }
    this.#bounds = [...bounds];
    this.#counts = new Array(bounds.length + 1).fill(0);
  }

  /**
   * Counts `value`. A negative one (a lag read against another machine's clock that is ahead of
   * ours) counts as 0: the sum stays a counter, as Prometheus expects of a histogram's.
   */
  observe(value: number): void {
    const v = Math.max(0, value);
    let i = 0;
    while (i < this.#bounds.length && v > this.#bounds[i]) i++;
    this.#counts[i]++;
    this.#sum += v;
    this.#count++;
  }

  /** A copy of the counts so far. */
  snapshot(): HistogramSnapshot {
    return { bounds: this.#bounds, counts: [...this.#counts], sum: this.#sum, count: this.#count };
  }
}
