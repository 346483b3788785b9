/**
 * When a chat client fetches the online list again (a resync, without logging in again), decided
 * from the versions in the coordinator's `Alive` answers and nothing else: no sockets, timers from
 * an injected clock. {@linkcode Presence} does the fetching.
 *
 * - Behind an `Alive`'s version: the missing changes may still be on their way (reordered), so
 *   the watch waits a grace second, and resyncs if we are still behind then.
 * - Versions forgotten (the view waits for a list): resync at once.
 * - A version we heard of that the coordinator has not reached a while later was never its own: a
 *   forged datagram (UDP source addresses can be spoofed) claimed it, and would make us ignore
 *   the real ones that follow. Every version is forgotten, and the list fetched again.
 * - At most one resync per heartbeat interval.
 *
 * @example
 * ```ts
 * const watch = new ResyncWatch({ view, keepaliveMs: 10_000, canResync: () => true,
 *   resync: () => fetchAgain() });
 * watch.onAlive(42); // from each `Alive,<endpoint>,42`
 * ```
 * @module
 */
import { type Clock, realClock, type TimerId } from "../clock.ts";
import type { PresenceView } from "./presence_view.ts";

/** How long we may be behind the `Alive` version before fetching the list again (reordering). */
export const RESYNC_GRACE_MS = 1000;
/**
 * How long an honest coordinator may take to confirm (in `Alive`) a version it has sent us, at
 * least: a flush is sent in a few seconds even to 10,000 users. Twice the heartbeat if longer.
 */
export const CONFIRM_MS = 5000;

/** Options for {@linkcode ResyncWatch}. */
export interface ResyncWatchOptions {
  /** The online list the versions are about. */
  view: Pick<PresenceView<unknown>, "mode" | "newest" | "behind" | "reset">;
  /** The heartbeat interval: resyncs are at least this far apart. */
  keepaliveMs: number;
  /** Whether a resync may start now (none under way, not logging in or out…). */
  canResync: () => boolean;
  /** Fetches the list again. */
  resync: () => void;
  /** Reports a version the coordinator never confirmed. */
  onError?: (message: string) => void;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
}

/** Decides on resyncs from `Alive` versions. */
export class ResyncWatch {
  readonly #o: ResyncWatchOptions;
  readonly #clock: Clock;
  /** Waiting to see whether we are still behind an `Alive`'s version. */
  #grace: TimerId | undefined;
  #lastResync = -Infinity;
  /** The newest version we had heard of, and when: a later `Alive` must confirm it. */
  #mark: { at: number; newest: number } | undefined;

  constructor(options: ResyncWatchOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
  }

  /**
   * The coordinator has sent us every change up to `version`. If we do not have them all, some
   * may still be on their way (reordered): if a second later we still lack them, they were lost,
   * and we fetch the list again.
   */
  onAlive(version: number): void {
    this.#checkConfirmed(version);
    const view = this.#o.view;
    // Versions forgotten (above): the list is all we can trust.
    if (view.mode === "waiting") return this.#resyncNow();
    if (this.#grace !== undefined || !view.behind(version)) return;
    this.#grace = this.#clock.setTimeout(() => {
      this.#grace = undefined;
      if (view.behind(version)) this.#resyncNow();
    }, RESYNC_GRACE_MS);
  }

  /** A fresh login: versions from before it may be another coordinator's (it restarted). */
  reset(): void {
    this.close();
    this.#mark = undefined;
  }

  /** Stops the grace timer. */
  close(): void {
    this.#clock.clearTimeout(this.#grace);
    this.#grace = undefined;
  }

  #checkConfirmed(version: number): void {
    const now = this.#clock.now();
    const mark = this.#mark;
    if (mark !== undefined && now - mark.at < Math.max(CONFIRM_MS, 2 * this.#o.keepaliveMs)) {
      return;
    }
    if (mark !== undefined && version < mark.newest) {
      this.#o.onError?.(
        `presence version ${mark.newest} was never confirmed by the coordinator (it is at ` +
          `${version}): fetching the online list again`,
      );
      this.#o.view.reset();
    }
    this.#mark = { at: now, newest: this.#o.view.newest };
  }

  /** At most one resync per heartbeat interval; a refused one waits for the next `Alive`. */
  #resyncNow(): void {
    const now = this.#clock.now();
    if (!this.#o.canResync() || now - this.#lastResync < this.#o.keepaliveMs) return;
    this.#lastResync = now;
    this.#o.resync();
  }
}
