/**
 * How many knocks a user may receive (docs/PROTOCOL.md §1.4). Each requester's address (as
 * `addressKey` gives it: an IPv4 address, an IPv6 /64) has a small budget of its own per target,
 * so that any number of names on one address gets one address's share; and each target has a
 * budget across all addresses, so that nobody is knocked on without end. A knock is sent only if
 * both have one, and spends from both; a knock held back spends nothing, so that an address over
 * its share costs the target's budget nothing and cannot starve the others.
 *
 * I/O-free: the caller passes the time. Memory: a bucket per online target, and per (target,
 * address) only while it is refilling.
 *
 * @example
 * ```ts
 * const budget = new KnockBudget({ perAddressBurst: 1 });
 * budget.allow("bob", "192.0.2.1", Date.now()); // true
 * budget.allow("bob", "192.0.2.1", Date.now()); // false: that address spent its share
 * budget.allow("bob", "198.51.100.7", Date.now()); // true: another address has its own
 * ```
 * @module
 */
import { TokenBucket, type TokenBucketOptions } from "../token_bucket.ts";

/** Options for {@linkcode KnockBudget}; every rate is per minute, sustained. */
export interface KnockBudgetOptions {
  /** Knocks one address may send one target at once; default 6 (three wants, each repeated). */
  perAddressBurst?: number;
  /** Knocks one address may send one target per minute; default 6. */
  perAddressPerMinute?: number;
  /** Knocks a target may receive at once, from all addresses together; default 20. */
  burst?: number;
  /** Knocks a target may receive per minute, from all addresses together; default 20. */
  perMinute?: number;
}

interface TargetBudget {
  total: TokenBucket;
  /** By address, least recently used first (a bucket is re-inserted when used). */
  byAddress: Map<string, TokenBucket>;
}

/** Knock budgets per target and per (target, requester's address). */
export class KnockBudget {
  readonly #perAddress: TokenBucketOptions;
  readonly #total: TokenBucketOptions;
  readonly #targets = new Map<string, TargetBudget>();

  constructor(options: KnockBudgetOptions = {}) {
    this.#perAddress = {
      burst: options.perAddressBurst ?? 6,
      rate: options.perAddressPerMinute ?? 6,
      intervalMs: 60_000,
    };
    this.#total = { burst: options.burst ?? 20, rate: options.perMinute ?? 20, intervalMs: 60_000 };
  }

  /**
   * Spends one knock on `target` from `address` (an `addressKey`) at `now` (ms) if both budgets
   * have one; says whether they had.
   */
  allow(target: string, address: string, now: number): boolean {
    let budget = this.#targets.get(target);
    if (!budget) {
      budget = { total: new TokenBucket(this.#total, now), byAddress: new Map() };
      this.#targets.set(target, budget);
    }
    const { byAddress } = budget;
    const mine = byAddress.get(address) ?? new TokenBucket(this.#perAddress, now);
    byAddress.delete(address);
    byAddress.set(address, mine);
    // Buckets refilled to the brim are no different from new ones: drop them, oldest first.
    for (const [key, bucket] of byAddress) {
      if (bucket === mine || !bucket.full(now)) break;
      byAddress.delete(key);
    }
    // Only a knock sent costs anything: what the address's budget holds back must not spend the
    // target's (or one address could starve the rest), nor the reverse.
    if (mine.level(now) < 1 || budget.total.level(now) < 1) return false;
    mine.take(now);
    budget.total.take(now);
    return true;
  }

  /** Forgets a target's budgets (it left; whoever takes the name next starts afresh). */
  forget(target: string): void {
    this.#targets.delete(target);
  }

  /** Per-address buckets held for `target` (memory, for tests). */
  addressesTracked(target: string): number {
    return this.#targets.get(target)?.byAddress.size ?? 0;
  }
}
