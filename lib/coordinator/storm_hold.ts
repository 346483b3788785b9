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
 * It only decides how long lines may still wait ({@linkcode StormHold.holdMs}); the fan-out tells
 * it of logins and lines, and the outbox asks it before a flush. Separate from the fan-out
 * (plain state) because it reads a clock.
 *
 * @example
 * ```ts
 * import { realClock } from "../clock.ts";
 *
 * const hold = new StormHold({ clock: realClock });
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
  /** The span the rate is measured over, in ms; default {@linkcode STORM_HOLD_DEFAULTS}. */
  windowMs?: number;
  /** Longest a line is held, in ms; default {@linkcode STORM_HOLD_DEFAULTS}. */
  maxHoldMs?: number;
}

/**
 * Defaults of {@linkcode StormHoldOptions}: 500 logins/s over 100 ms (50 logins), twice the joins
 * of the load benchmark's churn, and under what a storm brings even on a busy machine (list
 * fetches, where logins are admitted, ran at 490–1,260/s in its storms); a line waits 2 s at most.
 */
export const STORM_HOLD_DEFAULTS = { rate: 500, windowMs: 100, maxHoldMs: 2_000 } as const;

/** Whether lines are to wait, and how long; see the module comment. */
export class StormHold {
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #maxHoldMs: number;
  /** When the latest logins came, a ring of as many as make the rate over the window. */
  readonly #logins: number[];
  #next = 0;
  /** When the oldest line still waiting was queued; undefined when none waits. */
  #oldest: number | undefined;

  constructor(options: StormHoldOptions) {
    this.#clock = options.clock;
    this.#windowMs = options.windowMs ?? STORM_HOLD_DEFAULTS.windowMs;
    this.#maxHoldMs = options.maxHoldMs ?? STORM_HOLD_DEFAULTS.maxHoldMs;
    const rate = options.rate ?? STORM_HOLD_DEFAULTS.rate;
    const count = Math.max(2, Math.ceil(rate * this.#windowMs / 1000));
    this.#logins = new Array(count).fill(-Infinity);
  }

  /** A user logged in (was admitted). */
  login(): void {
    this.#logins[this.#next] = this.#clock.now();
    this.#next = (this.#next + 1) % this.#logins.length;
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
   * How many ms lines may still wait: until the rate falls below the threshold if no more logins
   * come (the storm's end), but no line longer than `maxHoldMs`; 0 when there is no storm.
   */
  holdMs(): number {
    if (this.#oldest === undefined) return 0;
    // The oldest of the last `count` logins: the rate holds as long as it is within the window.
    const stormEnds = this.#logins[this.#next] + this.#windowMs;
    const wait = Math.min(stormEnds, this.#oldest + this.#maxHoldMs) - this.#clock.now();
    return wait > 0 ? wait : 0;
  }
}
