/**
 * The coordinator's relay policy: which pairs of users may send each other frames through the
 * coordinator (only pairs it introduced, while both stay online) and how much (a token bucket of
 * bytes and of packets per pair). Plain state with an injected clock; the coordinator does the I/O.
 *
 * A pair's budget outlives a logout: the bucket of a forgotten pair is remembered until it would
 * have refilled anyway, and a new introduction takes it back, so that logging out and in again
 * does not buy a fresh burst.
 *
 * @example
 * ```ts
 * const relay = new RelayPolicy({ now: () => Date.now() });
 * relay.introduce("alice", "bob");
 * relay.allow("alice", "bob", 300); // "ok"
 * relay.allow("alice", "carol", 300); // "not-introduced"
 * ```
 * @module
 */

/** Options for {@linkcode RelayPolicy}. */
export interface RelayPolicyOptions {
  now: () => number;
  /** Sustained relayed bytes per second per pair; default 64 KiB/s. */
  bytesPerSecond?: number;
  /** Burst of bytes a pair may relay at once; default 512 KiB. */
  burstBytes?: number;
  /** Sustained relayed packets per second per pair; default 200. */
  packetsPerSecond?: number;
  /** Burst of packets; default 800. */
  burstPackets?: number;
  /**
   * Most buckets of forgotten pairs remembered at once (the oldest go first); default 10,000.
   * Each is dropped anyway once it would have refilled (within 8 s with the defaults).
   */
  maxRemembered?: number;
}

/** Why a relayed frame was or was not forwarded. */
export type RelayVerdict = "ok" | "not-introduced" | "over-budget";

interface Bucket {
  bytes: number;
  packets: number;
  at: number;
}

/** A forgotten pair's bucket, and when it will be full again. */
interface Remembered {
  bucket: Bucket;
  fullAt: number;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

/** Introduced pairs and their relay budgets. */
export class RelayPolicy {
  readonly #o: Required<RelayPolicyOptions>;
  readonly #pairs = new Map<string, Bucket>();
  readonly #byUser = new Map<string, Set<string>>();
  /** Buckets of forgotten pairs that are not full yet, oldest first. */
  readonly #remembered = new Map<string, Remembered>();
  /** Frames forwarded (and their bytes) and refused, by reason. */
  readonly stats = { forwarded: 0, forwardedBytes: 0, notIntroduced: 0, overBudget: 0 };

  constructor(options: RelayPolicyOptions) {
    this.#o = {
      bytesPerSecond: 64 * 1024,
      burstBytes: 512 * 1024,
      packetsPerSecond: 200,
      burstPackets: 800,
      maxRemembered: 10_000,
      ...options,
    };
  }

  /**
   * Records that `a` and `b` were introduced. A fresh pair starts with a full bucket; a pair
   * forgotten not long ago gets its bucket back, as spent.
   */
  introduce(a: string, b: string): void {
    const key = pairKey(a, b);
    if (this.#pairs.has(key)) return;
    const bucket = this.#remembered.get(key)?.bucket ??
      { bytes: this.#o.burstBytes, packets: this.#o.burstPackets, at: this.#o.now() };
    this.#remembered.delete(key);
    this.#pairs.set(key, bucket);
    for (const [user, other] of [[a, b], [b, a]]) {
      let set = this.#byUser.get(user);
      if (!set) this.#byUser.set(user, set = new Set());
      set.add(other);
    }
  }

  /** Whether `from` may relay a frame of `bytes` to `to` now; charges the pair if so. */
  allow(from: string, to: string, bytes: number): RelayVerdict {
    const bucket = this.#pairs.get(pairKey(from, to));
    if (!bucket) {
      this.stats.notIntroduced++;
      return "not-introduced";
    }
    this.#refill(bucket, this.#o.now());
    if (bucket.bytes < bytes || bucket.packets < 1) {
      this.stats.overBudget++;
      return "over-budget";
    }
    bucket.bytes -= bytes;
    bucket.packets -= 1;
    this.stats.forwarded++;
    this.stats.forwardedBytes += bytes;
    return "ok";
  }

  /**
   * Forgets every pair `user` is in (it logged out or expired). Their buckets are remembered
   * until they would have refilled, for a new introduction to take back.
   */
  forget(user: string): void {
    const now = this.#o.now();
    this.#dropRefilled(now);
    for (const other of this.#byUser.get(user) ?? []) {
      const key = pairKey(user, other);
      this.#remember(key, this.#pairs.get(key)!, now);
      this.#pairs.delete(key);
      this.#byUser.get(other)?.delete(user);
    }
    this.#byUser.delete(user);
  }

  /** Number of introduced pairs. */
  get size(): number {
    return this.#pairs.size;
  }

  /** Number of forgotten pairs whose spent budget is remembered. */
  get remembered(): number {
    return this.#remembered.size;
  }

  #refill(bucket: Bucket, now: number): void {
    const elapsed = Math.max(0, now - bucket.at) / 1000;
    // A clock that steps back must not make the same time count twice when it comes back.
    bucket.at = Math.max(bucket.at, now);
    bucket.bytes = Math.min(this.#o.burstBytes, bucket.bytes + elapsed * this.#o.bytesPerSecond);
    bucket.packets = Math.min(
      this.#o.burstPackets,
      bucket.packets + elapsed * this.#o.packetsPerSecond,
    );
  }

  #remember(key: string, bucket: Bucket, now: number): void {
    this.#refill(bucket, now);
    const seconds = Math.max(
      (this.#o.burstBytes - bucket.bytes) / this.#o.bytesPerSecond,
      (this.#o.burstPackets - bucket.packets) / this.#o.packetsPerSecond,
    );
    // A full bucket is what a fresh introduction gives anyway.
    if (seconds <= 0) return;
    if (this.#remembered.size >= this.#o.maxRemembered) {
      const oldest = this.#remembered.keys().next();
      if (oldest.done) return; // maxRemembered is 0: remember nothing
      this.#remembered.delete(oldest.value);
    }
    this.#remembered.set(key, { bucket, fullAt: bucket.at + seconds * 1000 });
  }

  /**
   * Drops remembered buckets that are full by now, from the oldest on, stopping at the first
   * that is not: cheap on every call, and the first call more than one refill from empty (8 s
   * with the defaults) after a pair was forgotten drops its bucket.
   */
  #dropRefilled(now: number): void {
    for (const [key, { fullAt }] of this.#remembered) {
      if (fullAt > now) return;
      this.#remembered.delete(key);
    }
  }
}
