/**
 * Which fresh HS1s a responder spends a key exchange on, as a state machine without I/O (one per
 * link, with the injected clock). An HS1 gets here only once its `mac1` proved that the sender
 * holds the introduction's token; this bounds what a holder can cost (docs/PROTOCOL.md §2.3):
 *
 * - **Not under load.** A link may start {@linkcode KEY_EXCHANGE_BURST} key exchanges at once,
 *   then one per {@linkcode KEY_EXCHANGE_INTERVAL_MS}. A legitimate initiator starts one per
 *   introduction (it repeats the same HS1 once a second, which costs no key exchange).
 * - **Under load** (that budget spent), WireGuard-style: an HS1 that came directly is answered
 *   with a stateless cookie, HMAC(secret, source address and socket), at most
 *   {@linkcode COOKIE_REPLIES_PER_SECOND} a second; the initiator's next HS1 carries `mac2`
 *   keyed to it, and one with a valid `mac2` gets its key exchange, at most one per source per
 *   {@linkcode PER_SOURCE_INTERVAL_MS}. A flood from forged source addresses never gets one: the
 *   cookies go to those addresses. The real peer, at its real address, gets through.
 * - **Through the relay**, the coordinator vouches for the sender's name, and a cookie would prove
 *   nothing more: under load such an HS1 is dropped, so one introduced user costs at most the
 *   link's budget.
 *
 * The secret changes every {@linkcode COOKIE_SECRET_MS}; a cookie of the previous secret is still
 * taken, so a cookie is good for 2–4 minutes.
 *
 * @example
 * ```ts
 * import { CookieGate } from "./cookie_gate.ts";
 *
 * const gate = new CookieGate();
 * gate.admit("0/192.0.2.7:4000", signed, mac1, mac2); // "exchange", until the budget is spent
 * ```
 * @module
 */
import { constantTimeEqual } from "../bytes.ts";
import { type Clock, realClock } from "../clock.ts";
import { TokenBucket } from "../token_bucket.ts";
import { cookieFor, handshakeMac2 } from "./handshake_macs.ts";

/** Key exchanges a link may start at once before it is under load. */
export const KEY_EXCHANGE_BURST = 3;
/** One more key exchange is allowed this often (ms). */
export const KEY_EXCHANGE_INTERVAL_MS = 2000;
/** Under load, one key exchange per source with a valid cookie this often (ms). */
export const PER_SOURCE_INTERVAL_MS = 1000;
/** Most cookie replies a link sends in a second (a burst of as many). */
export const COOKIE_REPLIES_PER_SECOND = 5;
/** The cookie secret changes this often (ms). */
export const COOKIE_SECRET_MS = 120_000;
/** Sources remembered for the per-source interval. */
const MAX_SOURCES = 32;

/** What to do with a fresh HS1 whose `mac1` is valid. */
export type Admission =
  /** Run the key exchange. */
  | { kind: "exchange" }
  /** Send this cookie back to the source, nothing more. */
  | { kind: "cookie"; cookie: Uint8Array }
  /** Drop it. */
  | { kind: "drop" };

/** Counters of a {@linkcode CookieGate}. */
export interface CookieGateStats {
  /** Cookie replies handed out. */
  cookiesSent: number;
  /** Fresh HS1s dropped under load (relayed, too frequent, or beyond the cookie rate). */
  handshakesLimited: number;
}

/** The responder's admission of fresh HS1s on one link. */
export class CookieGate {
  readonly stats: CookieGateStats = { cookiesSent: 0, handshakesLimited: 0 };
  readonly #clock: Clock;
  readonly #exchanges: TokenBucket;
  readonly #replies: TokenBucket;
  /** Current secret first, then the previous one; made when first needed. */
  #secrets: Uint8Array[] = [];
  #secretAt = -Infinity;
  /** Last key exchange per source under load, oldest first. */
  #sources = new Map<string, number>();

  /** A gate with a full budget; `clock` defaults to {@linkcode realClock}. */
  constructor(clock: Clock = realClock) {
    this.#clock = clock;
    const now = clock.now();
    this.#exchanges = new TokenBucket(
      { burst: KEY_EXCHANGE_BURST, rate: 1, intervalMs: KEY_EXCHANGE_INTERVAL_MS },
      now,
    );
    this.#replies = new TokenBucket(
      { burst: COOKIE_REPLIES_PER_SECOND, rate: 1, intervalMs: 1000 / COOKIE_REPLIES_PER_SECOND },
      now,
    );
  }

  /**
   * Decides on a fresh HS1 (its `mac1` valid, not a repeat) from `source`, or through the relay
   * when `source` is undefined; `signed`, `mac1` and `mac2` are the frame's.
   */
  admit(
    source: string | undefined,
    signed: Uint8Array,
    mac1: Uint8Array,
    mac2: Uint8Array,
  ): Admission {
    const now = this.#clock.now();
    if (this.#exchanges.take(now)) return { kind: "exchange" };
    if (source !== undefined) {
      const secrets = this.#currentSecrets(now);
      let cookieValid = false;
      for (const secret of secrets) {
        const expected = handshakeMac2(cookieFor(secret, source), signed, mac1);
        cookieValid = constantTimeEqual(expected, mac2) || cookieValid;
      }
      if (cookieValid) {
        const last = this.#sources.get(source);
        if (last === undefined || now - last >= PER_SOURCE_INTERVAL_MS) {
          this.#sources.delete(source);
          this.#sources.set(source, now);
          if (this.#sources.size > MAX_SOURCES) {
            this.#sources.delete(this.#sources.keys().next().value!);
          }
          return { kind: "exchange" };
        }
      } else if (this.#replies.take(now)) {
        this.stats.cookiesSent++;
        return { kind: "cookie", cookie: cookieFor(secrets[0], source) };
      }
    }
    this.stats.handshakesLimited++;
    return { kind: "drop" };
  }

  #currentSecrets(now: number): Uint8Array[] {
    if (now - this.#secretAt >= COOKIE_SECRET_MS) {
      const fresh = crypto.getRandomValues(new Uint8Array(32));
      // After a long quiet spell the old secret is older than two periods: drop it.
      const keep = now - this.#secretAt < 2 * COOKIE_SECRET_MS ? this.#secrets.slice(0, 1) : [];
      this.#secrets = [fresh, ...keep];
      this.#secretAt = now;
    }
    return this.#secrets;
  }
}
