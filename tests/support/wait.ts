/** Test helpers: collect things as they arrive and wait for one to match, with a deadline. */

/** A list that can be waited on. */
export class Collector<T> {
  readonly items: T[] = [];
  #waiters: (() => void)[] = [];

  push = (item: T): void => {
    this.items.push(item);
    for (const w of this.#waiters.splice(0)) w();
  };

  /** Resolves with the first item (from the start) matching `pred`; rejects after `timeoutMs`. */
  async waitFor(pred: (item: T) => boolean, timeoutMs = 5000, what = "item"): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const found = this.items.find(pred);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; have: ${JSON.stringify(this.items)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  count(pred: (item: T) => boolean): number {
    return this.items.filter(pred).length;
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
