/**
 * The coordinator's relay policy: which pairs of users may send each other frames through the
 * coordinator (only pairs it introduced, while both stay online) and how much (a token bucket of
 * bytes and of packets per pair). Plain state with an injected clock; the coordinator does the I/O.
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
}

/** Why a relayed frame was or was not forwarded. */
export type RelayVerdict = "ok" | "not-introduced" | "over-budget";

interface Bucket {
  bytes: number;
  packets: number;
  at: number;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

/** Introduced pairs and their relay budgets. */
export class RelayPolicy {
  readonly #o: Required<RelayPolicyOptions>;
  readonly #pairs = new Map<string, Bucket>();
  readonly #byUser = new Map<string, Set<string>>();
  /** Frames forwarded (and their bytes) and refused, by reason. */
  readonly stats = { forwarded: 0, forwardedBytes: 0, notIntroduced: 0, overBudget: 0 };

  constructor(options: RelayPolicyOptions) {
    this.#o = {
      bytesPerSecond: 64 * 1024,
      burstBytes: 512 * 1024,
      packetsPerSecond: 200,
      burstPackets: 800,
      ...options,
    };
  }

  /** Records that `a` and `b` were introduced; a fresh pair starts with a full bucket. */
  introduce(a: string, b: string): void {
    const key = pairKey(a, b);
    if (this.#pairs.has(key)) return;
    this.#pairs.set(key, {
      bytes: this.#o.burstBytes,
      packets: this.#o.burstPackets,
      at: this.#o.now(),
    });
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
    const now = this.#o.now();
    const elapsed = Math.max(0, now - bucket.at) / 1000;
    // A clock that steps back must not make the same time count twice when it comes back.
    bucket.at = Math.max(bucket.at, now);
    bucket.bytes = Math.min(this.#o.burstBytes, bucket.bytes + elapsed * this.#o.bytesPerSecond);
    bucket.packets = Math.min(
      this.#o.burstPackets,
      bucket.packets + elapsed * this.#o.packetsPerSecond,
    );
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

  /** Forgets every pair `user` is in (it logged out or expired). */
  forget(user: string): void {
    for (const other of this.#byUser.get(user) ?? []) {
      this.#pairs.delete(pairKey(user, other));
      this.#byUser.get(other)?.delete(user);
    }
    this.#byUser.delete(user);
  }

  /** Number of introduced pairs. */
  get size(): number {
    return this.#pairs.size;
  }
}
