/**
 * The coordinator's limits: the configurable numbers ({@linkcode Limits}), per-address token
 * buckets ({@linkcode RateLimiter}), connection counting ({@linkcode ConnectionCounter}) and a log
 * that cannot be flooded ({@linkcode LogThrottle}). Plain state with an injected clock, no I/O.
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

interface Bucket {
  tokens: number;
  at: number;
}

/** A token bucket per key (address), in bounded memory. */
export class RateLimiter {
  readonly #now: () => number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    this.#now = options.now;
    this.#rate = options.perSecond;
    this.#burst = Math.max(1, options.burst ?? 2 * options.perSecond);
    this.#maxKeys = options.maxKeys ?? 65_536;
  }

  /** Keys tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Spends `cost` of `key`'s budget if it has that much; says whether it had. */
  allow(key: string, cost = 1): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      const elapsed = Math.max(0, now - bucket.at) / 1000;
      bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#rate);
      bucket.at = now;
    }
    if (bucket.tokens < cost) return false;
    bucket.tokens -= cost;
    return true;
  }

  /** Forgets keys whose buckets have refilled: remembering them changes nothing. */
  sweep(): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.at) / 1000 * this.#rate >= this.#burst) {
        this.#buckets.delete(key);
      }
    }
  }
}

/** Why {@linkcode ConnectionCounter.open} refused. */
export type OpenVerdict = "ok" | "address" | "total";

/**
 * Counts open connections per key and in total, against a cap for each.
 *
 * @example
 * ```ts
 * const tcp = new ConnectionCounter({ perKey: 2, total: 100 });
 * tcp.open("192.0.2.1"); // "ok"
 * tcp.close("192.0.2.1");
 * ```
 */
export class ConnectionCounter {
  readonly #perKey: number;
  readonly #total: number;
  readonly #open = new Map<string, number>();
  #count = 0;

  constructor(options: { perKey: number; total: number }) {
    this.#perKey = options.perKey;
    this.#total = options.total;
  }

  /** Connections open now. */
  get count(): number {
    return this.#count;
  }

  /** Counts a new connection from `key` unless a cap is reached (then says which). */
  open(key: string): OpenVerdict {
    if (this.#count >= this.#total) return "total";
    const n = this.#open.get(key) ?? 0;
    if (n >= this.#perKey) return "address";
    this.#open.set(key, n + 1);
    this.#count++;
    return "ok";
  }

  /** Uncounts a connection that {@linkcode open} accepted. */
  close(key: string): void {
    const n = this.#open.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#open.delete(key);
    else this.#open.set(key, n - 1);
    this.#count--;
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

interface Quota {
  tokens: number;
  at: number;
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
  readonly #quotas = new Map<string, Quota>();

  constructor(options: LogThrottleOptions) {
    this.#o = { burst: 10, everyMs: 1_000, ...options };
  }

  /** Writes `text` unless lines of `kind` are over their quota; then counts it. */
  line(kind: string, text: string): void {
    const now = this.#o.now();
    let quota = this.#quotas.get(kind);
    if (quota === undefined) {
      quota = { tokens: this.#o.burst, at: now, suppressed: 0 };
      this.#quotas.set(kind, quota);
    }
    quota.tokens = Math.min(this.#o.burst, quota.tokens + (now - quota.at) / this.#o.everyMs);
    quota.at = now;
    if (quota.tokens >= 1) {
      quota.tokens--;
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
