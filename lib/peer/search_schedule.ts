/**
 * When the path finder (`traversal.ts`) does what a search for a direct path is made of: the
 * priming rounds (low TTLs, spread over `primeDelayMs`), the probe rounds (every
 * `probeIntervalMs` for `fastProbeMs`, then every `backgroundIntervalMs` ±25 % until
 * `backgroundForMs`), the switch to the relay (`relayAfterMs` after the first start) and the
 * requests for a new introduction (every `reintroduceAfterMs`). The finder asks what is due and
 * acts on its candidates; the rules are in its module documentation.
 *
 * Separate from the finder because the timetable of a search is arithmetic on times alone, while
 * the finder decides what each round probes and which path results.
 *
 * @example
 * ```ts
 * import { SearchSchedule } from "./search_schedule.ts";
 *
 * const schedule = new SearchSchedule({
 *   probeIntervalMs: 200,
 *   fastProbeMs: 3000,
 *   backgroundIntervalMs: 3000,
 *   backgroundForMs: 30_000,
 *   reintroduceAfterMs: 90_000,
 *   relayAfterMs: 3000,
 *   primeDelayMs: 100,
 *   primeTtls: [2, 3],
 *   random: () => crypto.getRandomValues(new Uint32Array(1))[0],
 * });
 * schedule.begin(0);
 * schedule.takePrimes(0); // [2]; TTL 3 is due at 50
 * schedule.roundDue(0); // true: lan and prflx candidates go at once
 * ```
 * @module
 */

/** Timings of a search, in ms, and the priming TTLs; see `PathFinderOptions`. */
export interface SearchTimings {
  probeIntervalMs: number;
  fastProbeMs: number;
  backgroundIntervalMs: number;
  backgroundForMs: number;
  reintroduceAfterMs: number;
  relayAfterMs: number;
  primeDelayMs: number;
  /** TTLs of the priming rounds, in order; empty: no priming. */
  primeTtls: readonly number[];
}

/** Options of {@linkcode SearchSchedule}. */
export interface SearchScheduleOptions extends SearchTimings {
  /** Random u32, for the jitter of background rounds. */
  random: () => number;
}

/**
 * The timetable of the current search.
 *
 * @example
 * ```ts
 * import { SearchSchedule } from "./search_schedule.ts";
 *
 * const schedule = new SearchSchedule({
 *   probeIntervalMs: 200,
 *   fastProbeMs: 3000,
 *   backgroundIntervalMs: 3000,
 *   backgroundForMs: 30_000,
 *   reintroduceAfterMs: 90_000,
 *   relayAfterMs: 3000,
 *   primeDelayMs: 100,
 *   primeTtls: [],
 *   random: () => 0,
 * });
 * schedule.begin(0);
 * schedule.endRound(0, false);
 * schedule.nextDeadline(); // 200: the next probe round
 * ```
 */
export class SearchSchedule {
  readonly #t: SearchTimings;
  readonly #random: () => number;
  #start = 0;
  /** `public` candidates get normal probes from then on (after priming). */
  #normalFrom = 0;
  #primes: { at: number; ttl: number }[] = [];
  #nextRoundAt: number | undefined;
  #relayAt: number | undefined;
  #reintroduceAt: number | undefined;

  /** Creates a schedule with nothing due until {@linkcode SearchSchedule.begin}. */
  constructor(options: SearchScheduleOptions) {
    const { random, ...timings } = options;
    this.#t = { ...timings, primeTtls: [...timings.primeTtls] };
    this.#random = random;
  }

  /** The lowest priming TTL, for a birthday search's first round; undefined without priming. */
  get lowestPrimeTtl(): number | undefined {
    return this.#t.primeTtls.length > 0 ? Math.min(...this.#t.primeTtls) : undefined;
  }

  /**
   * Starts a search at `now`: priming rounds spread over `primeDelayMs`, a probe round at once
   * (for candidates that need no priming), and a re-introduction `reintroduceAfterMs` later.
   * With `earlyPrimed` (both sides primed before the introduction: "Early priming" in
   * `traversal.ts`) there are no priming rounds, and `public` candidates get normal probes at once.
   */
  begin(now: number, options: { earlyPrimed?: boolean } = {}): void {
    const t = this.#t;
    this.#start = now;
    const ttls = options.earlyPrimed ? [] : t.primeTtls;
    const step = ttls.length > 0 ? t.primeDelayMs / ttls.length : 0;
    this.#primes = ttls.map((ttl, i) => ({ at: now + i * step, ttl }));
    this.#normalFrom = ttls.length > 0 ? now + t.primeDelayMs : now;
    this.#nextRoundAt = now;
    this.#reintroduceAt = now + t.reintroduceAfterMs;
  }

  /** Schedules the switch to the relay `relayAfterMs` after `now` (the first start). */
  armRelay(now: number): void {
    this.#relayAt = now + this.#t.relayAfterMs;
  }

  /** A direct path came up: neither the relay nor a new introduction is needed. */
  onDirect(): void {
    this.#relayAt = undefined;
    this.#reintroduceAt = undefined;
  }

  /** Removes and returns the TTLs of the priming rounds due at `now`, in order. */
  takePrimes(now: number): number[] {
    const ttls: number[] = [];
    while (this.#primes.length > 0 && this.#primes[0].at <= now) {
      ttls.push(this.#primes.shift()!.ttl);
    }
    return ttls;
  }

  /** Whether a probe round is due at `now`; call {@linkcode endRound} after it. */
  roundDue(now: number): boolean {
    return this.#nextRoundAt !== undefined && this.#nextRoundAt <= now;
  }

  /** Whether `now` is in the fast phase, the first `fastProbeMs` of the search. */
  inFastPhase(now: number): boolean {
    return now < this.#start + this.#t.fastProbeMs;
  }

  /** Whether `public` candidates, primed by now, get normal probes at `now`. */
  primed(now: number): boolean {
    return now >= this.#normalFrom;
  }

  /**
   * The round at `now` is done: schedules the next one, if any. Background rounds only serve to
   * get off the relay (or out of `none`), so there are none while `direct`.
   */
  endRound(now: number, direct: boolean): void {
    this.#nextRoundAt = this.#nextRound(now, direct);
  }

  /** Whether the switch to the relay is due at `now`; it is then done with. */
  takeRelay(now: number): boolean {
    if (this.#relayAt === undefined || this.#relayAt > now) return false;
    this.#relayAt = undefined;
    return true;
  }

  /**
   * Whether a new introduction is to be requested at `now`: when due, without a `direct` path;
   * the next one is then due `reintroduceAfterMs` later.
   */
  takeReintroduction(now: number, direct: boolean): boolean {
    if (this.#reintroduceAt === undefined || this.#reintroduceAt > now) return false;
    if (direct) {
      this.#reintroduceAt = undefined;
      return false;
    }
    this.#reintroduceAt = now + this.#t.reintroduceAfterMs;
    return true;
  }

  /** The earliest time something is due; undefined when nothing is. */
  nextDeadline(): number | undefined {
    const times = [this.#primes[0]?.at, this.#nextRoundAt, this.#relayAt, this.#reintroduceAt]
      .filter((t): t is number => t !== undefined);
    return times.length === 0 ? undefined : Math.min(...times);
  }

  /** Cancels everything. */
  stop(): void {
    this.#primes = [];
    this.#nextRoundAt = undefined;
    this.#relayAt = undefined;
    this.#reintroduceAt = undefined;
  }

  #nextRound(now: number, direct: boolean): number | undefined {
    const t = this.#t;
    if (now < this.#normalFrom) return this.#normalFrom;
    const next = now + t.probeIntervalMs;
    if (next < this.#start + t.fastProbeMs) return next;
    if (direct) return undefined;
    const jitter = 0.75 + 0.5 * ((this.#random() >>> 0) / 2 ** 32);
    const background = Math.max(next, now + t.backgroundIntervalMs * jitter);
    return background <= this.#start + t.backgroundForMs ? background : undefined;
  }
}
