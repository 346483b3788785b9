/**
 * How many names one address may hold: online at once, and new in any 24 hours. Plain state with
 * an injected clock, no I/O; the registry asks it before a login and tells it who comes and goes.
 *
 * Both count names admitted by a list fetch only (the address proved it receives there): a forger
 * who spoofs someone's address must not use up that address's quota. A name counts as new for an
 * address once per rolling day, however often it comes and goes; when names are owned by keys,
 * their registrations are what this day quota will count.
 *
 * Memory is bounded: at most `maxRemembered` (name, address) records are kept for the day quota;
 * beyond, the address heard from least recently is forgotten first.
 *
 * @example
 * ```ts
 * const quota = new NameQuota({ now: () => Date.now(), perAddress: 64, perAddressPerDay: 256 });
 * quota.refusal("192.0.2.1", "alice"); // undefined: allowed
 * quota.admit("192.0.2.1", "alice"); // online, and counted for the day
 * quota.leave("192.0.2.1"); // offline again; still counted for the day
 * ```
 * @module
 */

/** Options for {@linkcode NameQuota}. */
export interface NameQuotaOptions {
  /** Clock in milliseconds. */
  now: () => number;
  /** Names online at once per address. */
  perAddress: number;
  /** Distinct names an address may bring online per `dayMs`. */
  perAddressPerDay: number;
  /** The rolling window of the day quota; default 24 hours. */
  dayMs?: number;
  /** Most (address, name) records kept for the day quota; default 262,144. */
  maxRemembered?: number;
}

/** Which quota a name would break. */
export type NameQuotaLimit = "names-per-address" | "new-names-per-address-per-day";

const DAY_MS = 24 * 60 * 60 * 1000;

/** Names per address, online now and new per rolling day. */
export class NameQuota {
  readonly #now: () => number;
  readonly #perAddress: number;
  readonly #perDay: number;
  readonly #dayMs: number;
  readonly #maxRemembered: number;
  /** Names online per address. */
  readonly #online = new Map<string, number>();
  /** Per address, least recently used first: each name it brought online, and when (oldest first). */
  readonly #days = new Map<string, Map<string, number>>();
  #remembered = 0;

  constructor(options: NameQuotaOptions) {
    this.#now = options.now;
    this.#perAddress = options.perAddress;
    this.#perDay = options.perAddressPerDay;
    this.#dayMs = options.dayMs ?? DAY_MS;
    this.#maxRemembered = options.maxRemembered ?? 262_144;
  }

  /** Names online from `key` now. */
  onlineAt(key: string): number {
    return this.#online.get(key) ?? 0;
  }

  /** Distinct names `key` brought online within the last day. */
  newToday(key: string): number {
    return this.#day(key)?.size ?? 0;
  }

  /** Records kept for the day quota (the memory it holds). */
  get remembered(): number {
    return this.#remembered;
  }

  /** The quota `name`, not online yet, would break by coming online from `key`; else undefined. */
  refusal(key: string, name: string): NameQuotaLimit | undefined {
    if (this.onlineAt(key) >= this.#perAddress) return "names-per-address";
    const day = this.#day(key);
    if (day && !day.has(name) && day.size >= this.#perDay) return "new-names-per-address-per-day";
    return undefined;
  }

  /** `name` came online from `key`: counted online, and for the day unless it was already. */
  admit(key: string, name: string): void {
    this.arrive(key);
    let day = this.#day(key);
    if (day === undefined) day = new Map();
    this.#days.delete(key); // most recently used last
    this.#days.set(key, day);
    if (day.has(name)) return;
    day.set(name, this.#now());
    this.#remembered++;
    while (this.#remembered > this.#maxRemembered) {
      const [oldest, names] = this.#days.entries().next().value!;
      this.#days.delete(oldest);
      this.#remembered -= names.size;
    }
  }

  /** A name online elsewhere moved to `key` (its NAT mapping changed): counted online only. */
  arrive(key: string): void {
    this.#online.set(key, this.onlineAt(key) + 1);
  }

  /** A name online from `key` went offline, or moved away. */
  leave(key: string): void {
    const n = this.onlineAt(key) - 1;
    if (n > 0) this.#online.set(key, n);
    else this.#online.delete(key);
  }

  /** Forgets the day records that are more than a day old (memory stays bounded). */
  sweep(): void {
    for (const key of [...this.#days.keys()]) this.#day(key);
  }

  /** `key`'s day records, without those more than a day old. */
  #day(key: string): Map<string, number> | undefined {
    const day = this.#days.get(key);
    if (day === undefined) return undefined;
    const since = this.#now() - this.#dayMs;
    for (const [name, at] of day) {
      if (at > since) break;
      day.delete(name);
      this.#remembered--;
    }
    if (day.size === 0) this.#days.delete(key);
    return day.size === 0 ? undefined : day;
  }
}
