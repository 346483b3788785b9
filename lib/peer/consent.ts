/**
 * Whom a chat client agrees to talk to (docs/PROTOCOL.md §1.4). The coordinator introduces two
 * users only when both asked; a user asks for someone it writes to, and for someone who knocked
 * (asked for it) when its policy accepts them: `anyone` (the default: any online user can start
 * a conversation, at most `strangersBurst` new ones at once and `strangersPerMinute` a minute
 * after that, so that a busy room's first messages all get through but a flood does not) or
 * `known` (only users whose key is pinned, i.e. we talked before, or whom we wrote to this
 * session).
 *
 * I/O-free: the caller passes the clock's time, the pinned keys come through `pinned`, and the
 * caller sends `connect` when a decision says so.
 *
 * @example
 * ```ts
 * const consent = new Consent({ policy: "known", pinned: (user) => known.get(user)?.publicKey });
 * consent.want("bob"); // we wrote to bob
 * consent.decide("carol", carolKey, Date.now()); // { accepted: false, reason: "…" }
 * ```
 * @module
 */
import { equalBytes } from "../bytes.ts";
import { TokenBucket } from "../token_bucket.ts";

/** Who may start a conversation with us. */
export type AcceptPolicy = "anyone" | "known";

/** The accept policies, as `--accept` takes them. */
export const ACCEPT_POLICIES: readonly AcceptPolicy[] = ["anyone", "known"];

/** Options for {@linkcode Consent}. */
export interface ConsentOptions {
  policy: AcceptPolicy;
  /** The key pinned for a user (we talked before), if any. */
  pinned: (user: string) => Uint8Array | undefined;
  /** New users (not pinned, not written to) accepted at once at most; default 30. */
  strangersBurst?: number;
  /** New users accepted per minute once the burst is spent; default 10. */
  strangersPerMinute?: number;
}

/** A decision on a request to talk. */
export type Decision = { accepted: true } | { accepted: false; reason: string };

/** Our consents: users we asked for, users we accepted, and the budget for strangers. */
export class Consent {
  readonly #o: Required<ConsentOptions>;
  /** Users we consented to this session (we wrote to them, or accepted their request). */
  readonly #consented = new Set<string>();
  /** Strangers we may still accept; made at the first stranger's request. */
  #strangers: TokenBucket | undefined;

  constructor(options: ConsentOptions) {
    // `??`, not a spread over defaults: an option given as undefined still gets its default.
    this.#o = {
      ...options,
      strangersBurst: options.strangersBurst ?? 30,
      strangersPerMinute: options.strangersPerMinute ?? 10,
    };
  }

  /** The policy in force. */
  get policy(): AcceptPolicy {
    return this.#o.policy;
  }

  /** We want to talk to `user` (we wrote to them): that is our consent. */
  want(user: string): void {
    this.#consented.add(user);
  }

  /** Whether we consented to `user` this session. */
  consented(user: string): boolean {
    return this.#consented.has(user);
  }

  /**
   * Decides on `user`'s request to talk (a knock with its `key`, or traffic from it without a
   * key) at time `now` (ms), and remembers an acceptance.
   */
  decide(user: string, key: Uint8Array | undefined, now: number): Decision {
    if (this.#consented.has(user)) return { accepted: true };
    const pinned = this.#o.pinned(user);
    if (pinned && (key === undefined || equalBytes(pinned, key))) {
      this.#consented.add(user);
      return { accepted: true };
    }
    if (this.#o.policy === "known") {
      return {
        accepted: false,
        reason: pinned
          ? `${user}'s key differs from the one pinned when you talked before`
          : `you accept only known users (--accept known); write to ${user} to talk`,
      };
    }
    this.#strangers ??= new TokenBucket({
      burst: this.#o.strangersBurst,
      rate: this.#o.strangersPerMinute,
      intervalMs: 60_000,
    }, now);
    if (!this.#strangers.take(now)) {
      return {
        accepted: false,
        reason: `too many new users asked to talk (more than ${this.#o.strangersBurst} at once, ` +
          `then ${this.#o.strangersPerMinute} a minute)`,
      };
    }
    this.#consented.add(user);
    return { accepted: true };
  }
}
