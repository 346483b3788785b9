/**
 * A {@linkcode Clock} that moves only when a test says so: `advance(ms)` fires every timer that
 * falls due on the way, in order of due time (then of creation), each seeing `now()` at its own
 * due time.
 */
import type { Clock, TimerId } from "../../lib/clock.ts";

interface Timer {
  id: number;
  due: number;
  fn: () => void;
  /** Set for intervals: the period. */
  every?: number;
}

/** A hand-driven clock. */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();

  /** Starts at `start` ms (an arbitrary but realistic epoch by default). */
  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    return this.#add(fn, ms);
  }

  clearTimeout(id: TimerId | undefined): void {
    if (typeof id === "number") this.#timers.delete(id);
  }

  setInterval(fn: () => void, ms: number): TimerId {
    return this.#add(fn, ms, Math.max(1, ms));
  }

  clearInterval(id: TimerId | undefined): void {
    this.clearTimeout(id);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer due by then. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (let next = this.#next(until); next; next = this.#next(until)) {
      this.#now = Math.max(this.#now, next.due);
      if (next.every !== undefined) next.due += next.every;
      else this.#timers.delete(next.id);
      next.fn();
    }
    this.#now = until;
  }

  /** Fires whatever is due now (timers set with 0 ms). */
  tick(): void {
    this.advance(0);
  }

  #add(fn: () => void, ms: number, every?: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.#now + Math.max(0, ms), fn, every });
    return id;
  }

  #next(until: number): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers.values()) {
      if (t.due <= until && (!best || t.due < best.due || (t.due === best.due && t.id < best.id))) {
        best = t;
      }
    }
    return best;
  }
}
