/**
 * The messages a chat client has sent and not yet settled (delivered or reported undelivered):
 * their ids, and {@linkcode Outgoing.drain} for whoever must wait for all of them (the chat front
 * end before it quits, tests).
 *
 * @example
 * ```ts
 * const outgoing = new Outgoing();
 * const id = outgoing.add();
 * const drained = outgoing.drain();
 * outgoing.settle(id); // drained resolves
 * ```
 * @module
 */

/** Unsettled message ids, and the waiters for none. */
export class Outgoing {
  readonly #unsettled = new Set<number>();
  readonly #waiters: (() => void)[] = [];
  #nextId = 1;

  /** A new message: its id (from 1). */
  add(): number {
    const id = this.#nextId++;
    this.#unsettled.add(id);
    return id;
  }

  /** Message `id` was delivered or reported undelivered. */
  settle(id: number): void {
    this.#unsettled.delete(id);
    if (this.#unsettled.size === 0) this.release();
  }

  /** Resolves when every message added so far is settled (or {@linkcode Outgoing.release}). */
  drain(): Promise<void> {
    if (this.#unsettled.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Lets every waiter go (the client closes). */
  release(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }
}
