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
import { BucketMap, TokenBucket, type TokenBucketOptions } from "../token_bucket.ts";

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
   * Largest file transfer the relay is for (`--relay-file-limit`), enforced per pair as a
   * volume budget: {@linkcode volumeBurst} bytes at once, refilled over 10 minutes. The relay
   * cannot read file frames, so it limits all the pair's relayed bytes: a transfer up to the
   * limit and chat beside it fit, a bulk transfer stalls. Default 1 MiB; 0: no files (chat's 256 KiB).
   */
  fileLimitBytes?: number;
  /**
   * Most buckets of forgotten pairs remembered at once (the oldest go first); default 10,000.
   * Each is dropped anyway once it would have refilled (within 10 minutes with the defaults: the
   * volume budget refills that slowly).
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

/** The shape of a {@linkcode RelayBudget}: its bytes' bucket and its packets' (and volume's). */
interface RelayShape {
  bytes: TokenBucketOptions;
  packets: TokenBucketOptions;
  volume?: TokenBucketOptions;
}

/** Default `fileLimitBytes`: 1 MiB. */
export const DEFAULT_RELAY_FILE_LIMIT = 1024 * 1024;
/** The period a pair's volume budget refills over. */
const VOLUME_PERIOD_MS = 10 * 60_000;

/**
 * The volume a pair may relay at once with a file limit of `limit` bytes: the file with room for
 * its framing, encryption and acknowledgements (a quarter more), and 256 KiB of chat.
 *
 * @example
 * ```ts
 * volumeBurst(1024 * 1024); // 1572864
 * ```
 */
export function volumeBurst(limit: number): number {
  return Math.ceil(limit * 1.25) + 256 * 1024;
}

/** The shape of a per-user or per-address budget: 8 s worth of bytes at once, 4 s of packets. */
function keyedShape(rate: RelayRate): RelayShape {
  return {
    bytes: { burst: 8 * rate.bytesPerSecond, rate: rate.bytesPerSecond },
    packets: { burst: 4 * rate.packetsPerSecond, rate: rate.packetsPerSecond },
  };
}

/** A bucket of bytes and one of packets (and a pair's volume), always refilled together. */
class RelayBudget {
  readonly #bytes: TokenBucket;
  readonly #packets: TokenBucket;
  readonly #volume: TokenBucket | undefined;

  constructor(shape: RelayShape, now: number) {
    this.#bytes = new TokenBucket(shape.bytes, now);
    this.#packets = new TokenBucket(shape.packets, now);
    this.#volume = shape.volume && new TokenBucket(shape.volume, now);
  }

  /** Refills them up to `now`; says whether a frame of `bytes` fits. */
  fits(bytes: number, now: number): boolean {
    const room = this.#bytes.refill(now);
    const volume = this.#volume?.refill(now) ?? Infinity;
    return this.#packets.refill(now) >= 1 && room >= bytes && volume >= bytes;
  }

  /** Charges a frame of `bytes` that {@linkcode fits} found room for at `now`. */
  spend(bytes: number, now: number): void {
    this.#bytes.take(now, bytes);
    this.#packets.take(now, 1);
    this.#volume?.take(now, bytes);
  }

  /** Refills them up to `now`; says whether all are full. */
  full(now: number): boolean {
    const bytes = this.#bytes.refill(now) >= this.#bytes.burst;
    const volume = !this.#volume || this.#volume.refill(now) >= this.#volume.burst;
    return this.#packets.refill(now) >= this.#packets.burst && bytes && volume;
  }

  /** When all will be full if nothing more is spent. */
  fullAt(now: number): number {
    return Math.max(
      this.#bytes.fullAt(now),
      this.#packets.fullAt(now),
      this.#volume?.fullAt(now) ?? 0,
    );
  }
}

/** A forgotten pair's budget, and when it will be full again. */
interface Remembered {
  budget: RelayBudget;
  fullAt: number;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

/**
 * A {@linkcode RelayBudget} per key (a user, an address), in bounded memory: a key whose budget
 * has refilled is forgotten (remembering it changes nothing), and beyond `maxKeys` the key spent
 * from least recently goes first.
 */
class KeyedBudgets {
  readonly #shape: RelayShape;
  readonly #budgets: BucketMap<RelayBudget>;

  constructor(rate: RelayRate, maxKeys: number) {
    const shape = this.#shape = keyedShape(rate);
    this.#budgets = new BucketMap({
      create: (now) => new RelayBudget(shape, now),
      maxKeys,
      order: "used",
    });
  }

  /** Whether `key` has room for a frame of `bytes` now. */
  has(key: string, bytes: number, now: number): boolean {
    const budget = this.#budgets.get(key);
    if (budget === undefined) {
      return bytes <= this.#shape.bytes.burst && this.#shape.packets.burst >= 1;
    }
    return budget.fits(bytes, now);
  }

  /** Charges `key` for a frame of `bytes` that {@linkcode has} found room for. */
  spend(key: string, bytes: number, now: number): void {
    this.#budgets.obtain(key, now).spend(bytes, now);
  }

  /** Forgets the keys whose budgets have refilled. */
  sweep(now: number): void {
    this.#budgets.sweep(now);
  }
}

/** Introduced pairs and their relay budgets. */
export class RelayPolicy {
  readonly #o: Required<Omit<RelayPolicyOptions, "perUser" | "perAddress">>;
  readonly #pairShape: RelayShape;
  readonly #perUser: KeyedBudgets | undefined;
  readonly #perAddress: KeyedBudgets | undefined;
  readonly #pairs = new Map<string, RelayBudget>();
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
      fileLimitBytes: DEFAULT_RELAY_FILE_LIMIT,
      ...rest,
    };
    const volume = volumeBurst(this.#o.fileLimitBytes);
    this.#pairShape = {
      bytes: { burst: this.#o.burstBytes, rate: this.#o.bytesPerSecond },
      packets: { burst: this.#o.burstPackets, rate: this.#o.packetsPerSecond },
      // Always a volume budget: a limit of 0 means no files over the relay, not no budget.
      volume: { burst: volume, rate: volume, intervalMs: VOLUME_PERIOD_MS },
    };
    this.#perUser = perUser && new KeyedBudgets(perUser, 65_536);
    this.#perAddress = perAddress && new KeyedBudgets(perAddress, 65_536);
  }

  /**
   * Records that `a` and `b` were introduced. A fresh pair starts with a full bucket; a pair
   * forgotten not long ago gets its bucket back, as spent.
   */
  introduce(a: string, b: string): void {
    const key = pairKey(a, b);
    if (this.#pairs.has(key)) return;
    const budget = this.#remembered.get(key)?.budget ??
      new RelayBudget(this.#pairShape, this.#o.now());
    this.#remembered.delete(key);
    this.#pairs.set(key, budget);
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
    const budget = this.#pairs.get(pairKey(from, to));
    if (!budget) {
      this.stats.notIntroduced++;
      return "not-introduced";
    }
    const now = this.#o.now();
    if (!budget.fits(bytes, now)) {
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
    budget.spend(bytes, now);
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
    for (const other of this.#byUser.get(user) ?? []) this.#drop(user, other, now);
    this.#byUser.delete(user);
  }

  /**
   * Forgets the pair of `a` and `b` only (they stopped being contacts): neither may relay to the
   * other until introduced again. Its bucket is remembered as {@linkcode forget} does.
   */
  forgetPair(a: string, b: string): void {
    const now = this.#o.now();
    this.#dropRefilled(now);
    if (this.#pairs.has(pairKey(a, b))) this.#drop(a, b, now);
    this.#byUser.get(a)?.delete(b);
  }

  /** Drops the introduced pair of `user` and `other`, remembering its bucket. */
  #drop(user: string, other: string, now: number): void {
    const key = pairKey(user, other);
    this.#remember(key, this.#pairs.get(key)!, now);
    this.#pairs.delete(key);
    this.#byUser.get(other)?.delete(user);
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

  #remember(key: string, budget: RelayBudget, now: number): void {
    // A full budget is what a fresh introduction gives anyway.
    if (budget.full(now)) return;
    if (this.#remembered.size >= this.#o.maxRemembered) {
      const oldest = this.#remembered.keys().next();
      if (oldest.done) return; // maxRemembered is 0: remember nothing
      this.#remembered.delete(oldest.value);
    }
    this.#remembered.set(key, { budget, fullAt: budget.fullAt(now) });
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
