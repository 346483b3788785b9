/**
 * The coordinator's relay policy: which pairs of users may send each other frames through the
 * coordinator (only pairs it introduced, while both stay online) and how much: token buckets of
 * bytes and of packets per pair, and, so that many names or many pairs cannot multiply that, per
 * sending user (to everyone together) and per sending address (all its users together). Plain
 * state with an injected clock; the coordinator does the I/O.
 *
 * A pair's budget outlives a logout: the bucket of a forgotten pair is remembered until it would
 * have refilled anyway, and a new introduction takes it back, so that logging out and in again
 * does not buy a fresh burst.
 *
 * @example
 * ```ts
 * const relay = new RelayPolicy({ now: () => Date.now() });
 * relay.introduce("alice", "bob");
 * relay.allow("alice", "bob", 300, "192.0.2.1"); // "ok"
 * relay.allow("alice", "carol", 300, "192.0.2.1"); // "not-introduced"
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
  /** What one sending user may relay to everyone together; default unlimited. */
  perUser?: RelayRate;
  /** What the users of one sending address may relay together; default unlimited. */
  perAddress?: RelayRate;
  /**
   * Most buckets of forgotten pairs remembered at once (the oldest go first); default 10,000.
   * Each is dropped anyway once it would have refilled (within 8 s with the defaults).
   */
  maxRemembered?: number;
}

/**
 * A sustained rate of bytes and of packets; the burst is 8 seconds' worth of bytes and 4 seconds'
 * worth of packets, as with the per-pair defaults.
 */
export interface RelayRate {
  bytesPerSecond: number;
  packetsPerSecond: number;
}

/**
 * Why a relayed frame was or was not forwarded: `over-budget` is the pair's budget,
 * `user-over-budget` the sender's, `address-over-budget` its address's.
 */
export type RelayVerdict =
  | "ok"
  | "not-introduced"
  | "over-budget"
  | "user-over-budget"
  | "address-over-budget";

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

/**
 * A bucket of bytes and one of packets per key (a user, an address), in bounded memory: a key
 * whose buckets have refilled is forgotten (remembering it changes nothing), and beyond `maxKeys`
 * the key spent from least recently goes first.
 */
class KeyedBuckets {
  readonly #rate: RelayRate;
  readonly #burstBytes: number;
  readonly #burstPackets: number;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(rate: RelayRate, maxKeys: number) {
    this.#rate = rate;
    this.#burstBytes = 8 * rate.bytesPerSecond;
    this.#burstPackets = 4 * rate.packetsPerSecond;
    this.#maxKeys = maxKeys;
  }

  /** Whether `key` has room for a frame of `bytes` now. */
  has(key: string, bytes: number, now: number): boolean {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return bytes <= this.#burstBytes && this.#burstPackets >= 1;
    this.#refill(bucket, now);
    return bucket.bytes >= bytes && bucket.packets >= 1;
  }

  /** Charges `key` for a frame of `bytes` that {@linkcode has} found room for. */
  spend(key: string, bytes: number, now: number): void {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = { bytes: this.#burstBytes, packets: this.#burstPackets, at: now };
    }
    this.#buckets.delete(key); // most recently spent from last
    this.#buckets.set(key, bucket);
    bucket.bytes -= bytes;
    bucket.packets -= 1;
  }

  /** Forgets the keys whose buckets have refilled. */
  sweep(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      this.#refill(bucket, now);
      if (bucket.bytes >= this.#burstBytes && bucket.packets >= this.#burstPackets) {
        this.#buckets.delete(key);
      }
    }
  }

  #refill(bucket: Bucket, now: number): void {
    const elapsed = Math.max(0, now - bucket.at) / 1000;
    bucket.at = Math.max(bucket.at, now);
    bucket.bytes = Math.min(this.#burstBytes, bucket.bytes + elapsed * this.#rate.bytesPerSecond);
    bucket.packets = Math.min(
      this.#burstPackets,
      bucket.packets + elapsed * this.#rate.packetsPerSecond,
    );
  }
}

/** Introduced pairs and their relay budgets. */
export class RelayPolicy {
  readonly #o: Required<Omit<RelayPolicyOptions, "perUser" | "perAddress">>;
  readonly #perUser: KeyedBuckets | undefined;
  readonly #perAddress: KeyedBuckets | undefined;
  readonly #pairs = new Map<string, Bucket>();
  readonly #byUser = new Map<string, Set<string>>();
  /** Buckets of forgotten pairs that are not full yet, oldest first. */
  readonly #remembered = new Map<string, Remembered>();
  /** Frames forwarded (and their bytes) and refused, by reason. */
  readonly stats = {
    forwarded: 0,
    forwardedBytes: 0,
    notIntroduced: 0,
    overBudget: 0,
    userOverBudget: 0,
    addressOverBudget: 0,
  };

  constructor(options: RelayPolicyOptions) {
    const { perUser, perAddress, ...rest } = options;
    this.#o = {
      bytesPerSecond: 64 * 1024,
      burstBytes: 512 * 1024,
      packetsPerSecond: 200,
      burstPackets: 800,
      maxRemembered: 10_000,
      ...rest,
    };
    this.#perUser = perUser && new KeyedBuckets(perUser, 65_536);
    this.#perAddress = perAddress && new KeyedBuckets(perAddress, 65_536);
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

  /**
   * Whether `from`, at `address` (its address key; needed when there is a per-address budget),
   * may relay a frame of `bytes` to `to` now; charges the pair, the sender and its address if so.
   */
  allow(from: string, to: string, bytes: number, address = ""): RelayVerdict {
    const bucket = this.#pairs.get(pairKey(from, to));
    if (!bucket) {
      this.stats.notIntroduced++;
      return "not-introduced";
    }
    const now = this.#o.now();
    this.#refill(bucket, now);
    if (bucket.bytes < bytes || bucket.packets < 1) {
      this.stats.overBudget++;
      return "over-budget";
    }
    if (this.#perUser && !this.#perUser.has(from, bytes, now)) {
      this.stats.userOverBudget++;
      return "user-over-budget";
    }
    if (this.#perAddress && !this.#perAddress.has(address, bytes, now)) {
      this.stats.addressOverBudget++;
      return "address-over-budget";
    }
    bucket.bytes -= bytes;
    bucket.packets -= 1;
    this.#perUser?.spend(from, bytes, now);
    this.#perAddress?.spend(address, bytes, now);
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

  /** Forgets the senders and addresses whose budgets have refilled (memory stays bounded). */
  sweep(): void {
    const now = this.#o.now();
    this.#perUser?.sweep(now);
    this.#perAddress?.sweep(now);
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
