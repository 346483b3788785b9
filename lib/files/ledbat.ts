/**
 * How much file data may be outstanding on a link: a delay-based controller in the spirit of
 * LEDBAT (RFC 6817), so that a transfer fills an idle path but backs off as soon as it makes a
 * queue, before loss — keepalives and chat share the path and must never starve. Pure state, no
 * clock of its own: the caller passes each delay sample in.
 *
 * The sample is the time from handing a chunk to the link until the peer's reliable channel
 * confirmed it. Its minimum over the last few minutes is the base delay (the path and the
 * chunk's own serialization); the minimum of the last few samples is the current delay (RFC 6817
 * 4.3's filter: one chunk held up by a preempted process is jitter, not a queue); what the current
 * delay exceeds the base by is queuing we caused, along the path or in our own channel. The
 * target follows the path: a multiple of the base delay, within bounds, since a chat round trip
 * is about the base delay plus that queue. The window grows while queuing stays under the target
 * and shrinks in proportion above it: `window += gain × (target − queuing) / target × acked ×
 * chunk / window`, as LEDBAT does. A chunk given up (`onLoss`) halves the window, as TCP would.
 *
 * @example
 * ```ts
 * const cc = new DelayController({ chunkBytes: 16384 });
 * cc.onDelivered({ delayMs: 3, bytes: 16384, now: 1000 });
 * cc.windowBytes; // bytes of chunks allowed to be outstanding
 * ```
 * @module
 */

/** Options of {@linkcode DelayController}. */
export interface DelayControllerOptions {
  /** Bytes of one chunk: the step of the window. */
  chunkBytes: number;
  /**
   * Most queuing delay aimed at, ms; default 10 (LEDBAT's ceiling is 100; chat wants less). Below
   * it the target follows the path: `targetFraction` × the base delay, at least `minTargetMs`.
   */
  targetMs?: number;
  /** The target as a multiple of the base delay; default 2. */
  targetFraction?: number;
  /** Least target, ms; default 1. */
  minTargetMs?: number;
  /**
   * Samples whose minimum is the current delay; default 4 (RFC 6817 4.3's filter): one chunk
   * held up by a busy event loop or a preempted process is jitter, not a queue.
   */
  currentSamples?: number;
  /** Gain; default 1. */
  gain?: number;
  /** Smallest window, bytes; default 2 chunks. */
  minBytes?: number;
  /**
   * Largest window, bytes; default 2 MiB: the file channel's receive window holds ~1.1 MB, so
   * more would only wait in our own outbox (and be sent again after a crash of the receiver).
   */
  maxBytes?: number;
  /** Initial window, bytes; default 8 chunks. */
  initialBytes?: number;
}

/** Base-delay history: the minimum of each minute, for this many minutes (RFC 6817 2.4.2). */
const BASE_MINUTES = 4;

/** The window of a delay-based (LEDBAT-like) controller, in bytes. */
export class DelayController {
  readonly #chunk: number;
  readonly #maxTarget: number;
  readonly #fraction: number;
  readonly #minTarget: number;
  readonly #currentSamples: number;
  /** The latest samples, newest last: their minimum is the current delay. */
  #current: number[] = [];
  readonly #gain: number;
  readonly #min: number;
  readonly #max: number;
  #window: number;
  /** Minimum delay of each of the last minutes, newest last, with the minute it belongs to. */
  #base: { minute: number; min: number }[] = [];

  constructor(options: DelayControllerOptions) {
    this.#chunk = options.chunkBytes;
    this.#maxTarget = options.targetMs ?? 10;
    this.#fraction = options.targetFraction ?? 2;
    this.#minTarget = Math.min(options.minTargetMs ?? 1, this.#maxTarget);
    this.#currentSamples = options.currentSamples ?? 4;
    this.#gain = options.gain ?? 1;
    this.#min = options.minBytes ?? 2 * this.#chunk;
    this.#max = options.maxBytes ?? 2 << 20;
    this.#window = options.initialBytes ?? 8 * this.#chunk;
  }

  /** Bytes of chunks that may be outstanding now. */
  get windowBytes(): number {
    return Math.floor(this.#window);
  }

  /** The base delay in ms (undefined before the first sample). */
  get baseDelayMs(): number | undefined {
    return this.#base.length === 0 ? undefined : Math.min(...this.#base.map((b) => b.min));
  }

  /** The queuing delay aimed at now, ms: a multiple of the base delay, within its bounds. */
  get targetMs(): number {
    const base = this.baseDelayMs ?? 0;
    return Math.min(this.#maxTarget, Math.max(this.#minTarget, base * this.#fraction));
  }

  /** A chunk of `bytes` was confirmed `delayMs` after it was handed to the link, at `now` ms. */
  onDelivered(sample: { delayMs: number; bytes: number; now: number }): void {
    const minute = Math.floor(sample.now / 60_000);
    const last = this.#base.at(-1);
    if (last?.minute === minute) last.min = Math.min(last.min, sample.delayMs);
    else {
      this.#base.push({ minute, min: sample.delayMs });
      while (this.#base.length > BASE_MINUTES) this.#base.shift();
    }
    this.#current.push(sample.delayMs);
    if (this.#current.length > this.#currentSamples) this.#current.shift();
    const queuing = Math.min(...this.#current) - this.baseDelayMs!;
    const target = this.targetMs;
    const offTarget = (target - queuing) / target;
    const step = this.#gain * offTarget * sample.bytes * this.#chunk / this.#window;
    // Never more than one chunk a sample up (slow start aside, as RFC 6817 caps the growth).
    this.#window = Math.max(
      this.#min,
      Math.min(this.#max, this.#window + Math.min(step, this.#chunk)),
    );
  }

  /** A chunk was given up by the channel: halve. */
  onLoss(): void {
    this.#window = Math.max(this.#min, this.#window / 2);
  }
}
