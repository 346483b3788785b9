/**
 * The coordinator's limits: the configurable numbers ({@linkcode Limits}), per-address token
 * buckets ({@linkcode RateLimiter}), connection slots per address and in total
 * ({@linkcode ConnectionSlots}) and a log that cannot be flooded ({@linkcode LogThrottle}). Plain
 * state with an injected clock, no I/O.
 *
 * @example
 * ```ts
 * const limits = resolveLimits({ loginsPerSecond: 5 });
 * const logins = new RateLimiter({ now: () => Date.now(), perSecond: limits.loginsPerSecond });
 * logins.allow(addressKey("192.0.2.1")); // true until the address has spent its burst
 * ```
 * @module
 */
import { isIPv6 } from "node:net";
import { BucketMap, TokenBucket, type TokenBucketOptions } from "../token_bucket.ts";

/** What the coordinator holds and accepts; see docs/PROTOCOL.md §3. */
export interface Limits {
  /** Online users at once; a login beyond is refused with `Reject,the server is full`. */
  maxUsers: number;
  /** Logins waiting for their list fetch; beyond, the oldest waiting login is forgotten. */
  maxPending: number;
  /** Logins, list fetches and introductions per address per second (burst: twice as many). */
  loginsPerSecond: number;
  /** Datagrams per address per second, of any kind (burst: twice as many). */
  datagramsPerSecond: number;
  /** TCP connections open at once from one address. */
  tcpPerAddress: number;
  /** TCP connections open at once in total. */
  maxTcp: number;
  /** A TCP connection idle this long is closed; none lives longer than four times this. */
  tcpIdleMs: number;
  /** Longest datagram accepted; longer ones are dropped unanswered. */
  maxDatagramBytes: number;
  /** Longest text message (UDP) and most bytes read from a TCP connection. */
  maxLineBytes: number;
  /** Addresses whose rates are tracked at once (memory bound); beyond, the oldest is forgotten. */
  maxAddresses: number;
  /** Names online at once from one address; a login for one more is refused. */
  namesPerAddress: number;
  /**
   * Distinct names one address may bring online in any 24 hours; a login for one more is refused.
   * (Names owned by keys will count their registrations here.)
   */
  newNamesPerAddressPerDay: number;
  /** Bytes per second one user may have relayed, to everyone together (burst: 8 s worth). */
  relayBytesPerUser: number;
  /** Packets per second one user may have relayed, to everyone together (burst: 4 s worth). */
  relayPacketsPerUser: number;
  /** Bytes per second the users of one address may have relayed together (burst: 8 s worth). */
  relayBytesPerAddress: number;
  /** Packets per second the users of one address may have relayed together (burst: 4 s worth). */
  relayPacketsPerAddress: number;
}

/** The defaults: sized for a Raspberry Pi-class box serving a community of about 10,000. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxUsers: 20_000,
  maxPending: 4_096,
  loginsPerSecond: 20,
  datagramsPerSecond: 400,
  tcpPerAddress: 8,
  maxTcp: 1_024,
  tcpIdleMs: 5_000,
  maxDatagramBytes: 1_500,
  maxLineBytes: 512,
  maxAddresses: 65_536,
  // A household or an office behind one NAT has a few dozen people online at once, and far
  // fewer new names a day; a hoarder has thousands.
  namesPerAddress: 64,
  newNamesPerAddressPerDay: 256,
  // One user relays no more than one introduced pair may (chat is small); an address no more
  // than two users, and no more packets than its datagram limit.
  relayBytesPerUser: 64 * 1024,
  relayPacketsPerUser: 200,
  relayBytesPerAddress: 128 * 1024,
  relayPacketsPerAddress: 400,
});

/** Largest `maxLineBytes`: the text codec refuses longer messages anyway. */
export const MAX_LINE_LIMIT = 512;

/**
 * Fills in defaults and checks every value. Throws `RangeError` naming the bad one.
 *
 * @example
 * ```ts
 * resolveLimits({ maxUsers: 500 }).maxUsers; // 500
 * ```
 */
export function resolveLimits(partial: Partial<Limits> = {}): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(partial) as [keyof Limits, number | undefined][]) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw new RangeError(`Unknown limit "${key}"`);
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new RangeError(`Limit ${key} must be a positive number, not ${value}`);
    }
    limits[key] = value;
  }
  if (limits.maxLineBytes > MAX_LINE_LIMIT) {
    throw new RangeError(
      `Limit maxLineBytes is ${limits.maxLineBytes}, above the protocol's ${MAX_LINE_LIMIT} bytes`,
    );
  }
  return limits;
}

/**
 * The key an address is rate-limited under: an IPv4 address itself, an IPv6 address's /64 (one
 * subscriber usually holds a whole /64, so per-address limits on single IPv6 addresses would be
 * free to dodge).
 *
 * @example
 * ```ts
 * addressKey("2001:db8::1"); // "2001:db8:0:0::/64"
 * addressKey("192.0.2.1"); // "192.0.2.1"
 * ```
 */
export function addressKey(host: string): string {
  if (!isIPv6(host)) return host;
  const [head, tail] = host.includes("::") ? host.split("::") : [host, undefined];
  const left = head === "" ? [] : head.split(":");
  let groups = left;
  if (tail !== undefined) {
    const right = tail === "" ? [] : tail.split(":");
    // An embedded IPv4 tail takes two groups' room.
    const rightGroups = right.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
    groups = [...left, ...new Array(Math.max(0, 8 - left.length - rightGroups)).fill("0")];
  }
  return groups.slice(0, 4).map((g) => (g.replace(/^0+(?=.)/, "") || "0").toLowerCase()).join(":") +
    "::/64";
}

/** Options for {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Clock in milliseconds. */
  now: () => number;
  /** Sustained rate per key. */
  perSecond: number;
  /** Most a key may spend at once; default twice `perSecond`. */
  burst?: number;
  /** Keys tracked at once; beyond, the oldest is forgotten. Default 65,536. */
  maxKeys?: number;
}

/** A token bucket per key (address), in bounded memory. */
export class RateLimiter {
  readonly #now: () => number;
  readonly #buckets: BucketMap<TokenBucket>;

  constructor(options: RateLimiterOptions) {
    this.#now = options.now;
    const shape = {
      burst: Math.max(1, options.burst ?? 2 * options.perSecond),
      rate: options.perSecond,
    };
    this.#buckets = new BucketMap({
      create: (now) => new TokenBucket(shape, now),
      maxKeys: options.maxKeys ?? 65_536,
    });
  }

  /** Keys tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Spends `cost` of `key`'s budget if it has that much; says whether it had. */
  allow(key: string, cost = 1): boolean {
    const now = this.#now();
    return this.#buckets.obtain(key, now).take(now, cost);
  }

  /** Forgets keys whose buckets have refilled: remembering them changes nothing. */
  sweep(): void {
    this.#buckets.sweep(this.#now());
  }
}

/** What {@linkcode ConnectionSlots.open} did. */
export type SlotVerdict<T> =
  | { kind: "ok" }
  /**
   * Admitted in place of `evicted`, the oldest connection of `from` (the same address when it
   * was at its cap, `"address"`; the address holding the most when all were taken, `"total"`):
   * the caller closes it.
   */
  | { kind: "evicted"; evicted: T; from: string; because: "address" | "total" }
  /** Every slot is taken, and this address holds as many as any other. */
  | { kind: "refused" };

/**
 * Open connections per key (address) and in total, against a cap for each, that a flood of slow
 * connections cannot hold shut: a key at its cap gives up its oldest connection to its newest,
 * and when every slot is taken a key holding fewer than another gets the oldest slot of the key
 * holding the most. So one address can starve neither others nor its own new fetches; a full
 * house refuses only the addresses that already hold the most. Each operation costs O(perKey).
 *
 * @example
 * ```ts
 * const slots = new ConnectionSlots<string>({ perKey: 2, total: 100 });
 * slots.open("192.0.2.1", "first"); // { kind: "ok" }
 * slots.close("192.0.2.1", "first");
 * ```
 */
export class ConnectionSlots<T> {
  readonly #perKey: number;
  readonly #total: number;
  /** Each key's connections, oldest first. */
  readonly #byKey = new Map<string, Set<T>>();
  /** `#holding[n]`: the keys holding exactly n connections, in the order they came to. */
  readonly #holding: Set<string>[];
  #count = 0;

  constructor(options: { perKey: number; total: number }) {
    this.#perKey = Math.max(1, Math.floor(options.perKey));
    this.#total = Math.max(1, Math.floor(options.total));
    this.#holding = Array.from({ length: this.#perKey + 1 }, () => new Set<string>());
  }

  /** Connections open now. */
  get count(): number {
    return this.#count;
  }

  /** Connections `key` holds now. */
  held(key: string): number {
    return this.#byKey.get(key)?.size ?? 0;
  }

  /** Takes a slot for `item` from `key`, evicting another connection if need be (see above). */
  open(key: string, item: T): SlotVerdict<T> {
    const held = this.held(key);
    let verdict: SlotVerdict<T> = { kind: "ok" };
    if (held >= this.#perKey) {
      verdict = this.#evictOldest(key, "address");
    } else if (this.#count >= this.#total) {
      let most = this.#perKey;
      while (most > 0 && this.#holding[most].size === 0) most--;
      if (most <= held) return { kind: "refused" };
      verdict = this.#evictOldest(this.#holding[most].values().next().value!, "total");
    }
    let set = this.#byKey.get(key);
    if (set === undefined) this.#byKey.set(key, set = new Set());
    this.#move(key, set.size, set.size + 1);
    set.add(item);
    this.#count++;
    return verdict;
  }

  /** Frees `item`'s slot; an item not open (closed, or evicted already) is ignored. */
  close(key: string, item: T): void {
    const set = this.#byKey.get(key);
    if (!set?.delete(item)) return;
    this.#move(key, set.size + 1, set.size);
    if (set.size === 0) this.#byKey.delete(key);
    this.#count--;
  }

  #evictOldest(key: string, because: "address" | "total"): SlotVerdict<T> {
    const evicted: T = this.#byKey.get(key)!.values().next().value!;
    this.close(key, evicted);
    return { kind: "evicted", evicted, from: key, because };
  }

  #move(key: string, from: number, to: number): void {
    if (from > 0) this.#holding[from].delete(key);
    if (to > 0) this.#holding[to].add(key);
  }
}

/** Options for {@linkcode LogThrottle}. */
export interface LogThrottleOptions {
  now: () => number;
  log: (line: string) => void;
  /** Lines of one kind that may be written at once; default 10. */
  burst?: number;
  /** Then one line of that kind per this long; default 1 s. */
  everyMs?: number;
}

/** A kind's bucket, and the lines it held back since the last flush. */
interface Quota {
  bucket: TokenBucket;
  suppressed: number;
}

/**
 * A log that input cannot flood: each kind of line (say, "malformed datagram") may be written in
 * a burst, then at a steady trickle; what is held back is counted and reported by
 * {@linkcode flush}.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * const log = new LogThrottle({ now: () => 0, log: (l) => lines.push(l), burst: 1 });
 * log.line("malformed", "dropped datagram from 192.0.2.1:5: bad");
 * log.line("malformed", "dropped datagram from 192.0.2.1:5: bad"); // held back
 * log.flush(); // lines[1] === "suppressed 1 more malformed line(s)"
 * ```
 */
export class LogThrottle {
  readonly #o: Required<LogThrottleOptions>;
  readonly #shape: TokenBucketOptions;
  readonly #quotas = new Map<string, Quota>();

  constructor(options: LogThrottleOptions) {
    this.#o = { burst: 10, everyMs: 1_000, ...options };
    this.#shape = { burst: this.#o.burst, rate: 1, intervalMs: this.#o.everyMs };
  }

  /** Writes `text` unless lines of `kind` are over their quota; then counts it. */
  line(kind: string, text: string): void {
    const now = this.#o.now();
    let quota = this.#quotas.get(kind);
    if (quota === undefined) {
      quota = { bucket: new TokenBucket(this.#shape, now), suppressed: 0 };
      this.#quotas.set(kind, quota);
    }
    if (quota.bucket.take(now)) {
      this.#o.log(text);
    } else {
      quota.suppressed++;
    }
  }

  /** Reports, one line per kind, how many lines were held back since the last flush. */
  flush(): void {
    for (const [kind, quota] of this.#quotas) {
      if (quota.suppressed > 0) {
        this.#o.log(`suppressed ${quota.suppressed} more ${kind} line(s)`);
        quota.suppressed = 0;
      }
    }
  }
}
