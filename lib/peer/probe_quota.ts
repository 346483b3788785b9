/**
 * How many probes a client sends to addresses that have not shown they want them, as a pure
 * budget (times come from the caller's clock). An introduction names the endpoints to probe, and
 * the requester chooses what it claims: without limits one `connect` made a client probe a
 * bystander's address 107 times, and five names claiming a symmetric NAT made it spray 5,424
 * probes at as many ports (issue 18). So (docs/NAT.md, "Limits"):
 *
 * - **Per endpoint.** An endpoint (with the local socket) that has not answered — no valid probe,
 *   ack or authenticated traffic from it in the last {@linkcode QUOTA_WINDOW_MS} — gets at most
 *   {@linkcode PER_ENDPOINT_PROBES} probes in any such window, across introductions: one search's
 *   worth (fast phase, priming, background until 30 s), not one per introduction.
 * - **In total.** At most {@linkcode UNANSWERED_PROBES} such probes in any window, to all
 *   endpoints together, by every link that shares the quota.
 * - **Birthday sprays.** At most {@linkcode SPRAY_PROBES} sprayed probes in any window (two full
 *   sprays), by every link that shares the quota.
 *
 * An endpoint that answers is probed freely (keepalives, dead-path checks) while its last answer
 * is less than a window old. The clients's links share one quota, so extra names buy an
 * attacker nothing.
 *
 * @example
 * ```ts
 * import { ProbeQuota } from "./probe_quota.ts";
 *
 * const quota = new ProbeQuota();
 * quota.probe("0/192.0.2.7:4000", 0); // true, until 32 in 10 minutes
 * quota.answered("0/192.0.2.7:4000", 50); // from now on, no limit for it
 * quota.spray(100); // true, until 2048 in 10 minutes
 * ```
 * @module
 */

/** The window of every budget (ms). */
export const QUOTA_WINDOW_MS = 600_000;
/** Probes to one endpoint that has not answered, per window. */
export const PER_ENDPOINT_PROBES = 32;
/** Probes to endpoints that have not answered, all together, per window. */
export const UNANSWERED_PROBES = 512;
/** Birthday probes sprayed per window. */
export const SPRAY_PROBES = 2048;
/** Endpoints remembered (the oldest goes first). */
const MAX_ENDPOINTS = 256;

/** Times of the events of one window, oldest first. */
class Window {
  #times: number[] = [];
  count(now: number): number {
    let drop = 0;
    while (drop < this.#times.length && this.#times[drop] <= now - QUOTA_WINDOW_MS) drop++;
    if (drop > 0) this.#times.splice(0, drop);
    return this.#times.length;
  }
  add(now: number): void {
    this.#times.push(now);
  }
}

/** The budget of probes to endpoints that have not answered, and of birthday sprays. */
export class ProbeQuota {
  readonly #endpoints = new Map<string, { sent: Window; answeredAt: number | undefined }>();
  readonly #unanswered = new Window();
  readonly #spray = new Window();
  readonly #limits: { perEndpoint: number; unanswered: number; spray: number };

  /** A quota with the default limits, or others (tests). */
  constructor(
    limits: Partial<{ perEndpoint: number; unanswered: number; spray: number }> = {},
  ) {
    this.#limits = {
      perEndpoint: limits.perEndpoint ?? PER_ENDPOINT_PROBES,
      unanswered: limits.unanswered ?? UNANSWERED_PROBES,
      spray: limits.spray ?? SPRAY_PROBES,
    };
  }

  /**
   * Whether a probe to `endpoint` (a key naming it and the local socket) may go at `now`; if so,
   * it is counted.
   */
  probe(endpoint: string, now: number): boolean {
    const e = this.#entry(endpoint);
    if (e.answeredAt !== undefined && now - e.answeredAt < QUOTA_WINDOW_MS) return true;
    if (e.sent.count(now) >= this.#limits.perEndpoint) return false;
    if (this.#unanswered.count(now) >= this.#limits.unanswered) return false;
    e.sent.add(now);
    this.#unanswered.add(now);
    return true;
  }

  /** `endpoint` answered at `now`: probes to it are not limited for a window. */
  answered(endpoint: string, now: number): void {
    this.#entry(endpoint).answeredAt = now;
  }

  /** Whether one more sprayed probe may go at `now`; if so, it is counted. */
  spray(now: number): boolean {
    if (this.#spray.count(now) >= this.#limits.spray) return false;
    this.#spray.add(now);
    return true;
  }

  #entry(endpoint: string) {
    let e = this.#endpoints.get(endpoint);
    if (e === undefined) {
      e = { sent: new Window(), answeredAt: undefined };
      this.#endpoints.set(endpoint, e);
      if (this.#endpoints.size > MAX_ENDPOINTS) {
        this.#endpoints.delete(this.#endpoints.keys().next().value!);
      }
    }
    return e;
  }
}
