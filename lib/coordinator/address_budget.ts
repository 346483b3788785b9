/**
 * What each address may spend: datagrams of any kind, and the costly requests (logins, list
 * fetches, introductions, `whoami`) that share the logins budget — two {@linkcode RateLimiter}s
 * keyed by {@linkcode addressKey}, whose refusals are logged as limits. Shared by the UDP and the
 * list service, which spend from the same logins budget.
 *
 * @example
 * ```ts
 * const budget = new AddressBudget({ clock: realClock, limits: resolveLimits(), log });
 * if (budget.allowRequest("192.0.2.1", "login")) {
 *   // answer the login
 * }
 * ```
 * @module
 */
import type { Clock } from "../clock.ts";
import { addressKey, type Limits, RateLimiter } from "./limits.ts";
import type { ServerLog } from "./server_log.ts";

/** Options for {@linkcode AddressBudget}. */
export interface AddressBudgetOptions {
  clock: Clock;
  limits: Readonly<Limits>;
  log: ServerLog;
}

/** Per-address rate limits on datagrams and on costly requests. */
export class AddressBudget {
  readonly #limits: Readonly<Limits>;
  readonly #log: ServerLog;
  readonly #datagrams: RateLimiter;
  readonly #requests: RateLimiter;

  constructor(options: AddressBudgetOptions) {
    const { clock, limits } = options;
    const now = () => clock.now();
    const maxKeys = limits.maxAddresses;
    this.#limits = limits;
    this.#log = options.log;
    this.#datagrams = new RateLimiter({ now, perSecond: limits.datagramsPerSecond, maxKeys });
    this.#requests = new RateLimiter({ now, perSecond: limits.loginsPerSecond, maxKeys });
  }

  /** Spends one of the host's datagrams; logs when none is left. */
  allowDatagram(host: string): boolean {
    if (this.#datagrams.allow(addressKey(host))) return true;
    this.#log.limited(
      "datagrams-per-address",
      `${host} sent more than ${this.#limits.datagramsPerSecond} datagrams/s; dropped`,
    );
    return false;
  }

  /** Spends one of the host's logins (the costly requests, `what`); logs when none is left. */
  allowRequest(host: string, what: string): boolean {
    if (this.#requests.allow(addressKey(host))) return true;
    this.#log.limited(
      "logins-per-address",
      `${host} sent more than ${this.#limits.loginsPerSecond} logins/s; ignored its ${what}`,
    );
    return false;
  }

  /** Forgets the addresses whose budgets have refilled (memory stays bounded). */
  sweep(): void {
    this.#datagrams.sweep();
    this.#requests.sweep();
  }
}
