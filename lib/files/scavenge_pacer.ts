/**
 * Bounds the memory a file transfer holds in dead buffers: after every few MiB of file data it
 * asks V8 for a young-generation collection (a scavenge, 0.05-1.6 ms measured).
 *
 * Why: every datagram sent or received leaves a few `ArrayBuffer`s (the sealed packet and the
 * copies node:dgram makes of it; the datagram and its plaintext), whose memory glibc keeps until
 * a scavenge finds them dead. V8 scavenges when its young generation is full of the small objects
 * that point to them, and `p2p` holds that at 2 × 8 MiB (`V8_FLAGS`, for the coordinator: a
 * smaller one made its old space grow at 10,000 users); a transfer then kept 60-80 MB of dead
 * buffers, above the ~150 MB a chat client may use (issue 14; docs/FILES.md "RSS"). A smaller
 * young generation for chat alone cannot be had where it matters: the compiled executable runs
 * only the flags baked into it, for both roles, and V8 freezes its flags once it starts. So the
 * chat client's file path collects on its own, where the garbage is made.
 *
 * It needs V8's `gc` function, which `--expose-gc` (in `V8_FLAGS`) provides; without it (tests,
 * `deno run main.ts`) it does nothing and memory is as before.
 *
 * @example
 * ```ts
 * const pacer = new ScavengePacer({ everyBytes: 4 << 20 });
 * pacer.add(65_536); // counts a chunk; collects once 4 MiB were counted since the last time
 * ```
 * @module
 */

/** File data between two collections, by default: 4 MiB bounds dead buffers to ~20 MB. */
export const SCAVENGE_EVERY_BYTES = 4 << 20;

/** What {@linkcode ScavengePacer} needs; both have defaults. */
export interface ScavengePacerOptions {
  /** Bytes of file data between two collections; default {@linkcode SCAVENGE_EVERY_BYTES}. */
  everyBytes?: number;
  /** Runs a young-generation collection; default {@linkcode exposedScavenge}'s. */
  collect?: (() => void) | undefined;
}

/**
 * V8's young-generation collection when `--expose-gc` made `gc` global, else undefined.
 *
 * @example
 * ```ts
 * exposedScavenge()?.(); // a scavenge, when p2p runs with its V8 flags
 * ```
 */
export function exposedScavenge(): (() => void) | undefined {
  const gc = (globalThis as { gc?: (options: { type: "minor" }) => void }).gc;
  return gc ? () => gc({ type: "minor" }) : undefined;
}

/** Counts file data and collects after every {@linkcode ScavengePacerOptions.everyBytes}. */
export class ScavengePacer {
  readonly #every: number;
  readonly #collect: (() => void) | undefined;
  #counted = 0;

  constructor(options: ScavengePacerOptions = {}) {
    this.#every = options.everyBytes ?? SCAVENGE_EVERY_BYTES;
    this.#collect = "collect" in options ? options.collect : exposedScavenge();
  }

  /** Counts `bytes` of file data sent or received; collects when enough were counted. */
  add(bytes: number): void {
    if (!this.#collect) return;
    this.#counted += bytes;
    if (this.#counted < this.#every) return;
    this.#counted = 0;
    this.#collect();
  }
}
