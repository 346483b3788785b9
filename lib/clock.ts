/**
 * Time, as every stateful part of p2p gets it: injected, so that tests drive it by hand
 * (`tests/support/fake_clock.ts`) and the state machines never read the system clock themselves.
 *
 * {@linkcode realClock}'s `now` is monotonic (a changed system clock does not make a timer fire
 * early or a user expire) and in milliseconds on `Date.now()`'s scale, so that a value of 0 still
 * means "long ago" as it always has.
 *
 * @example
 * ```ts
 * import { type Clock, realClock } from "./clock.ts";
 *
 * function later(clock: Clock = realClock): void {
 *   const started = clock.now();
 *   clock.setTimeout(() => console.log(clock.now() - started, "ms later"), 100);
 * }
 * ```
 * @module
 */

/**
 * A timer's handle, for {@linkcode Clock.clearTimeout} and {@linkcode Clock.clearInterval}: the
 * runtime's own, or a fake clock's number.
 */
export type TimerId = ReturnType<typeof setTimeout> | number;

/** The current time and timers. */
export interface Clock {
  /** Milliseconds, monotonic. Only differences between two readings mean anything. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; an undefined or already fired one is ignored. */
  clearTimeout(id: TimerId | undefined): void;
  /** Calls `fn` every `ms` milliseconds until cleared. */
  setInterval(fn: () => void, ms: number): TimerId;
  /** Cancels an interval; an undefined one is ignored. */
  clearInterval(id: TimerId | undefined): void;
}

/** The process's own clock and timers. */
export const realClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout> | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (id) => clearInterval(id as ReturnType<typeof setInterval> | undefined),
};
