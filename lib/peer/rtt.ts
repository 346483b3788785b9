/**
 * The round-trip time estimate and retransmission timeout of a reliable channel (`reliable.ts`), as in
 * RFC 6298: SRTT and RTTVAR smoothed from samples, RTO = SRTT + max(G, 4·RTTVAR) clamped to
 * [`minRtoMs`, `maxRtoMs`], doubled on each timer expiry up to `maxRtoMs` and restored by
 * {@linkcode RttEstimator.resetBackoff}. It also keeps the minimum RTT seen, from which loss
 * detection derives its reordering allowance.
 *
 * Separate from the channel because it is plain arithmetic on samples: no segments, no clock.
 *
 * @example
 * ```ts
 * import { RttEstimator } from "./rtt.ts";
 *
 * const rtt = new RttEstimator({ initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 2000 });
 * rtt.sample(100); // SRTT 100, RTTVAR 50: RTO 300
 * rtt.backOff(); // the timer expired: RTO 600
 * rtt.resetBackoff(); // new data acknowledged: RTO 300
 * ```
 * @module
 */
/** Clock granularity G of RFC 6298 in ms. */
const CLOCK_GRANULARITY_MS = 1;

/** Options of {@linkcode RttEstimator}, in ms. */
export interface RttEstimatorOptions {
  /** Retransmission timeout before the first sample. */
  initialRtoMs: number;
  /** Lower bound of the retransmission timeout. */
  minRtoMs: number;
  /** Upper bound of the retransmission timeout, backoff included. */
  maxRtoMs: number;
}

/**
 * RFC 6298 RTT estimator and retransmission timeout with exponential backoff.
 *
 * @example
 * ```ts
 * import { RttEstimator } from "./rtt.ts";
 *
 * const rtt = new RttEstimator({ initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 2000 });
 * console.log(rtt.rtoMs, rtt.srttMs); // 1000 undefined
 * ```
 */
export class RttEstimator {
  readonly #minRto: number;
  readonly #maxRto: number;
  #srtt: number | undefined;
  #rttvar = 0;
  #minRtt: number | undefined;
  /** RTO computed from the RTT estimates, before backoff. */
  #rto: number;
  /** Timer expiries since the backoff was last reset: the RTO is doubled this many times. */
  #backoff = 0;

  /** Creates an estimator. Throws `RangeError` unless 0 < min <= initial <= max. */
  constructor(options: RttEstimatorOptions) {
    this.#minRto = options.minRtoMs;
    this.#maxRto = options.maxRtoMs;
    this.#rto = options.initialRtoMs;
    if (!(this.#minRto > 0 && this.#minRto <= this.#rto && this.#rto <= this.#maxRto)) {
      throw new RangeError(
        `Invalid RTO bounds: need 0 < minRtoMs (${this.#minRto}) <= initialRtoMs (${this.#rto}) <= maxRtoMs (${this.#maxRto})`,
      );
    }
  }

  /** Smoothed round-trip time in ms, undefined before the first sample. */
  get srttMs(): number | undefined {
    return this.#srtt;
  }

  /** Smallest sample seen in ms, undefined before the first one. */
  get minRttMs(): number | undefined {
    return this.#minRtt;
  }

  /** The retransmission timeout in ms, backoff included. */
  get rtoMs(): number {
    return Math.min(this.#rto * 2 ** this.#backoff, this.#maxRto);
  }

  /** Takes an RTT sample in ms (RFC 6298 section 2). */
  sample(rtt: number): void {
    this.#minRtt = Math.min(this.#minRtt ?? rtt, rtt);
    if (this.#srtt === undefined) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    const rto = this.#srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.#rttvar);
    this.#rto = Math.min(this.#maxRto, Math.max(this.#minRto, rto));
  }

  /** The timer expired: doubles the RTO, unless it is already at `maxRtoMs` (RFC 6298 5.5). */
  backOff(): void {
    if (this.rtoMs < this.#maxRto) this.#backoff++;
  }

  /** New data was acknowledged, so the path works: drops the backoff (RFC 6298 section 5). */
  resetBackoff(): void {
    this.#backoff = 0;
  }
}
