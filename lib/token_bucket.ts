/**
 * Token buckets: a budget that refills with elapsed time up to a burst, and is spent a cost at a
 * time. Every rate limit in p2p is one ({@linkcode TokenBucket}), or one per key in bounded memory
 * ({@linkcode BucketMap}). Pure state: the caller passes the time, in milliseconds.
 *
 * A clock that steps back adds nothing and takes nothing away; when it comes forward again, the
 * time already counted is not counted twice.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./token_bucket.ts";
 *
 * const bucket = new TokenBucket({ burst: 2, rate: 1, intervalMs: 1000 }, 0);
 * bucket.take(0); // true
 * bucket.take(0); // true
 * bucket.take(0); // false: the burst is spent
 * bucket.take(1000); // true: one token refilled in a second
 * ```
 * @module
 */

/** The shape of a {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Most tokens held, and how many a new bucket holds. */
  burst: number;
  /** Tokens added every `intervalMs`. */
  rate: number;
  /** The period `rate` is given for, in ms; default 1000 (a rate per second). */
  intervalMs?: number;
}

/**
 * One token bucket: `burst` tokens at once, then `rate` more every `intervalMs`.
 *
 * @example
 * ```ts
 * const strangers = new TokenBucket({ burst: 30, rate: 10, intervalMs: 60_000 }, 0);
 * strangers.level(0); // 30
 * strangers.take(0, 30); // true
 * strangers.level(6_000); // 1
 * ```
 */
export class TokenBucket {
  /** Most tokens held. */
  readonly burst: number;
  /** Tokens added every {@linkcode intervalMs}. */
  readonly rate: number;
  /** The period of {@linkcode rate}, in ms. */
  readonly intervalMs: number;
  #tokens: number;
  /** The time `#tokens` is as of. */
  #at: number;

  /** A full bucket at `now` (ms). */
  constructor(options: TokenBucketOptions, now: number) {
    this.burst = options.burst;
    this.rate = options.rate;
    this.intervalMs = options.intervalMs ?? 1000;
    this.#tokens = this.burst;
    this.#at = now;
  }

  /** The tokens it holds at `now`; changes nothing. */
  level(now: number): number {
    const refill = (Math.max(0, now - this.#at) / this.intervalMs) * this.rate;
    return Math.min(this.burst, this.#tokens + refill);
  }

  /** Whether it holds its whole burst at `now` (then a new bucket would be no different). */
  full(now: number): boolean {
    return this.level(now) >= this.burst;
  }

  /**
   * When it will be full if nothing more is taken: its own time (`now`, or later if the clock
   * stepped back) when it is full already.
   */
  fullAt(now: number): number {
    const at = Math.max(this.#at, now);
    return at + (this.burst - this.level(now)) / this.rate * this.intervalMs;
  }

  /** Adds what the time up to `now` refilled, and returns the level. */
  refill(now: number): number {
    this.#tokens = this.level(now);
    // A clock that steps back must not make the same time count twice when it comes back.
    this.#at = Math.max(this.#at, now);
    return this.#tokens;
  }

  /** Refills up to `now`, then spends `cost` if it holds that much; says whether it did. */
  take(now: number, cost = 1): boolean {
    if (this.refill(now) < cost) return false;
    this.#tokens -= cost;
    return true;
  }
}

/** What a {@linkcode BucketMap} holds per key: a bucket, or several kept together. */
export interface Refilling {
  /** Whether it is full at `now`, so that forgetting it changes nothing. */
  full(now: number): boolean;
}

/** Options for {@linkcode BucketMap}. */
export interface BucketMapOptions<B extends Refilling> {
  /** Makes a new key's (full) bucket at `now`. */
  create: (now: number) => B;
  /** Keys held at once; beyond, the first in order is forgotten. */
  maxKeys: number;
  /**
   * The order keys are forgotten in: `"created"` (the oldest bucket first, the default) or
   * `"used"` (the one {@linkcode BucketMap.obtain}ed least recently first).
   */
  order?: "created" | "used";
}

/**
 * A bucket per key (an address, a user) in bounded memory: at most `maxKeys`, and
 * {@linkcode sweep} forgets those that have refilled, since a new one would be no different.
 *
 * @example
 * ```ts
 * const perAddress = new BucketMap({
 *   create: (now) => new TokenBucket({ burst: 20, rate: 10 }, now),
 *   maxKeys: 65_536,
 * });
 * perAddress.obtain("192.0.2.1", 0).take(0); // true
 * perAddress.sweep(2_000); // 192.0.2.1 has refilled: forgotten
 * perAddress.size; // 0
 * ```
 */
export class BucketMap<B extends Refilling> {
  readonly #create: (now: number) => B;
  readonly #maxKeys: number;
  readonly #byUse: boolean;
  readonly #buckets = new Map<string, B>();

  constructor(options: BucketMapOptions<B>) {
    this.#create = options.create;
    this.#maxKeys = options.maxKeys;
    this.#byUse = options.order === "used";
  }

  /** Keys held now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** `key`'s bucket, if it has one; does not count as a use. */
  get(key: string): B | undefined {
    return this.#buckets.get(key);
  }

  /** `key`'s bucket, made at `now` if it has none (forgetting the first key if at the cap). */
  obtain(key: string, now: number): B {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = this.#create(now);
      this.#buckets.set(key, bucket);
    } else if (this.#byUse) {
      this.#buckets.delete(key); // most recently used last
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  /** Forgets the keys whose buckets are full at `now`. */
  sweep(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.full(now)) this.#buckets.delete(key);
    }
  }
}
