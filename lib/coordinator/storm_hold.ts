/**
 * Holding contacts-mode presence lines through a login storm (docs/PROTOCOL.md §3.1,
 * docs/LOAD.md "Holding lines through a storm"). In contacts mode no two members share a
 * datagram, so a flush costs one datagram for every member with a line waiting; in a storm each
 * member gets a line now and then (a contact logging in), and flushing every few hundred ms gives
 * it a datagram for nearly every line. While logins arrive faster than a rate, lines wait; the
 * moment the rate falls (the storm is over), everything waiting goes out, so presence is right
 * soon after the storm, with one datagram per member for the whole storm. A sustained high rate
 * still delivers: no line waits longer than `maxHoldMs`.
 *
 * Admissions (list fetches) come in bursts: judged over 100 ms only, the hold let go several
 * times per storm, after 150–230 ms each, when fewer than 50 came in 100 ms. So the rate begins a storm over
 * `windowMs` but keeps it going over the longer `spanMs`; and since a longer span would delay the
 * end as much, the end is told by the registry's pending logins instead: none left (every login
 * accepted has fetched its list) and no admission for `endMs` is the storm's end. In a storm's
 * first `spanMs` the span's rate is not there yet, and a pause there let go of it: then, while
 * logins are pending, the storm goes on until `spanMs` passes with no admission, whatever the rate.
 *
 * The cap is long enough for a whole community to log in within one hold (the storm after a
 * restart: 10,000 users took 4.4–6.7 s on the 2-core machine of docs/LOAD.md), so that each member
 * gets one datagram for it; a line held that long is as late as presence already is elsewhere (a
 * user who vanishes stays listed for the peer timeout, 45 s by default).
 *
 * It only decides how long lines may still wait ({@linkcode StormHold.holdMs}); the fan-out tells
 * it of logins and lines, and the outbox asks it before a flush. Separate from the fan-out
 * (plain state) because it reads a clock.
 *
 * @example
 * ```ts
 * import { realClock } from "../clock.ts";
 *
 * let pending = 0; // the registry's pending logins
 * const hold = new StormHold({ clock: realClock, pending: () => pending });
 * hold.login(); // each admission
 * hold.waiting(); // a line is waiting
 * hold.holdMs(); // 0: one login is no storm; lines go out as usual
 * ```
 * @module
 */
import type { Clock } from "../clock.ts";

/** Options for {@linkcode StormHold}. */
export interface StormHoldOptions {
  clock: Clock;
  /** Logins per second from which lines are held; default {@linkcode STORM_HOLD_DEFAULTS}. */
  rate?: number;
  /** The span the rate is measured over to begin a storm, in ms. */
  windowMs?: number;
  /**
   * The longer span over which the rate keeps a storm going once it began, in ms: admissions come
   * in bursts, and a storm's pauses must not end it.
   */
  spanMs?: number;
  /** Longest a line is held, in ms; default {@linkcode STORM_HOLD_DEFAULTS}. */
  maxHoldMs?: number;
  /**
   * Logins accepted whose list has not been fetched yet (the registry's pending logins): a storm
   * is over once none is left and no login was admitted for `endMs`, without waiting for the
   * rate over `spanMs` to fall; while some are left in the storm's first `spanMs`, it goes on until
   * no login was admitted for `spanMs`. None: the rate alone decides.
   */
  pending?: () => number;
  /** With `pending`: the pause in admissions, none pending, that ends a storm, in ms. */
  endMs?: number;
}

/**
 * Defaults of {@linkcode StormHoldOptions}: a storm begins at 500 logins/s over 100 ms (50
 * logins), twice the joins of the load benchmark's churn, and under what a storm brings even on a
 * busy machine (list fetches, where logins are admitted, ran at 490–1,260/s in its storms); it
 * goes on while the rate over 400 ms stays at 500/s (admissions paused for 150–230 ms within
 * storms) or, in its first 400 ms, logins are pending and one was admitted within 400 ms, and
 * ends 50 ms after the last admission once no login is pending; a line waits 8 s at most (a whole
 * community's storm at 10,000 users: see the module comment).
 */
export const STORM_HOLD_DEFAULTS = {
  rate: 500,
  windowMs: 100,
  spanMs: 400,
  maxHoldMs: 8_000,
  endMs: 50,
} as const;

/** Whether lines are to wait, and how long; see the module comment. */
export class StormHold {
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #spanMs: number;
  readonly #maxHoldMs: number;
  readonly #endMs: number;
  readonly #pending: (() => number) | undefined;
  /** Logins that make the rate over `windowMs`, and over `spanMs`. */
  readonly #few: number;
  /** When the latest logins came, a ring of as many as make the rate over `spanMs`. */
  readonly #logins: number[];
  #next = 0;
  /** When the oldest line still waiting was queued; undefined when none waits. */
  #oldest: number | undefined;
  /** A storm began (the rate over `windowMs` was reached) and has not ended since. */
  #storming = false;
  /** When the current storm began. */
  #began = -Infinity;

  constructor(options: StormHoldOptions) {
    this.#clock = options.clock;
    this.#windowMs = options.windowMs ?? STORM_HOLD_DEFAULTS.windowMs;
    this.#spanMs = Math.max(this.#windowMs, options.spanMs ?? STORM_HOLD_DEFAULTS.spanMs);
    this.#maxHoldMs = options.maxHoldMs ?? STORM_HOLD_DEFAULTS.maxHoldMs;
    this.#endMs = options.endMs ?? STORM_HOLD_DEFAULTS.endMs;
    this.#pending = options.pending;
    const rate = options.rate ?? STORM_HOLD_DEFAULTS.rate;
    this.#few = Math.max(2, Math.ceil(rate * this.#windowMs / 1000));
    const many = Math.max(this.#few, Math.ceil(rate * this.#spanMs / 1000));
    this.#logins = new Array(many).fill(-Infinity);
  }

  /** A user logged in (was admitted). */
  login(): void {
    const now = this.#clock.now();
    // A storm is over `spanMs` after its last admission at the latest, even if no line came to
    // ask (`holdMs` is where it is noticed): a login after that is no part of it.
    if (this.#ago(1) + this.#spanMs <= now) this.#storming = false;
    this.#logins[this.#next] = now;
    this.#next = (this.#next + 1) % this.#logins.length;
    if (!this.#storming && this.#ago(this.#few) + this.#windowMs > now) {
      this.#storming = true;
      this.#began = now;
    }
  }

  /** A line is waiting (the first since the last {@linkcode taken} starts the hold's clock). */
  waiting(): void {
    this.#oldest ??= this.#clock.now();
  }

  /** Every waiting line was taken for sending. */
  taken(): void {
    this.#oldest = undefined;
  }

  /**
   * How many ms lines may still wait: until the storm ends if no more logins come, but no line
   * longer than `maxHoldMs`; 0 when there is no storm. A storm begins when the rate over
   * `windowMs` is reached, and goes on while it holds or the rate over `spanMs` does; with
   * `pending`, it ends `endMs` after the last admission once no login is pending, and in its first
   * `spanMs` goes on `spanMs` after the last admission while some are.
   */
  holdMs(): number {
    if (this.#oldest === undefined) return 0;
    const now = this.#clock.now();
    // The rate holds as long as the oldest of the last `few` (`many`) logins is within the span.
    const begins = this.#ago(this.#few) + this.#windowMs;
    let stormEnds = this.#storming
      ? Math.max(begins, this.#ago(this.#logins.length) + this.#spanMs)
      : begins;
    if (this.#pending !== undefined) {
      if (this.#pending() === 0) stormEnds = Math.min(stormEnds, this.#ago(1) + this.#endMs);
      // In a storm's first `spanMs` the span's rate is not there yet: with logins still to fetch
      // their lists, a pause in admissions there is no end (one let go of a 2,000-login storm 230
      // ms in). Only there: later, a trickle of logins with a few left pending (clients that went
      // away) would keep lines held for good.
      else if (this.#storming && now < this.#began + this.#spanMs) {
        stormEnds = Math.max(stormEnds, this.#ago(1) + this.#spanMs);
      }
    }
    if (stormEnds <= now) {
      this.#storming = false;
      return 0;
    }
    return Math.max(0, Math.min(stormEnds, this.#oldest + this.#maxHoldMs) - now);
  }

  /** When the `k`-th latest login came (1: the latest). */
  #ago(k: number): number {
    return this.#logins[(this.#next - k + this.#logins.length) % this.#logins.length];
  }
}
