/**
 * Path-MTU search for a link's bulk data, in the style of RFC 8899 (DPLPMTUD), as a pure state
 * machine: no sockets, no timers. The caller injects a clock and a `sendProbe` callback, passes
 * the peer's acknowledgements to {@linkcode PathMtuSearch.onAck}, and calls
 * {@linkcode PathMtuSearch.poll} at {@linkcode PathMtuSearch.nextDeadline}.
 *
 * Why: a file moves at a cost per datagram (a send, a seal, an open, a receive, a segment, an
 * ACK share), so datagrams larger than the 1,200 bytes that are safe on every path cut the CPU a
 * megabyte costs several times over (docs/FILES.md "Efficiency"). Chat stays at 1,200 bytes.
 *
 * Rules:
 * - Datagrams start at {@linkcode BASE_DATAGRAM} (1,200). A search sends one padded probe of the
 *   next size of the ladder ({@linkcode PROBE_SIZES}); the peer's ACK confirms that size, which
 *   is used at once, and the next size is probed. A probe unanswered for `probeTimeoutMs` is sent
 *   again (a new id), at most `maxProbes` times; then that size is deemed too large and the search
 *   ends at the largest size confirmed.
 * - The search starts when bulk data first wants to go (`start`), not for every link: chat-only
 *   links never probe.
 * - A black hole (the bulk stream's retransmission timer expired while datagrams above the base
 *   went out: `onBlackHole`) drops to the base size at once. Heavy loss of them (`onSegments`: of
 *   the last {@linkcode LOSS_SAMPLE} segments sent above the base, a tenth or more had to be sent
 *   again — a datagram the kernel cut into fragments is lost when any one of them is) is only a
 *   suspicion: a full receive socket buffer loses large datagrams just as well (16 KiB ones fill
 *   Linux's default 208 KiB buffer thirteen at a time), and that is congestion, which the windows
 *   answer, not the size. So the size in use is confirmed first (RFC 8899 §4.4): a probe of that
 *   size, sent up to `maxProbes` times; answered, the size stays; unanswered, it is a black hole.
 *   (Falling back on loss alone put a loopback transfer back at 1,200 bytes in most runs: its
 *   ramp overflows the buffer.) The first sample after a size change is not judged either: the
 *   larger datagrams of a stream in full flow overflow the receiver's socket buffer until the
 *   congestion window adapts. After a fall-back the search runs again at once, from the
 *   bottom of the ladder: a timeout or a loss burst from congestion (a receiver that did not get
 *   a core for a while) must not cost a whole transfer its large datagrams, and a path that really
 *   shrank fails the probes. A second fall-back within `retryAfterMs` of the first waits that long
 *   before searching. A search that ended below the top of the ladder runs again after
 *   `raiseAfterMs` (paths change).
 * - A new path (`reset`) forgets what was confirmed: the base again, and a new search at the next
 *   `start`.
 *
 * Sizes are whole UDP payloads. Above the interface's MTU the kernel fragments IPv4 datagrams;
 * whether that passes is what the probe finds out (docs/FILES.md "Larger datagrams").
 *
 * @example
 * ```ts
 * const search = new PathMtuSearch({
 *   now: () => Date.now(),
 *   sendProbe: (id, size) => console.log(`probe ${id}: ${size} bytes`),
 *   onSize: (size) => console.log(`datagrams of up to ${size} bytes`),
 * });
 * search.start(); // probe 1: 1452 bytes
 * search.onAck(1); // datagrams of up to 1452 bytes; probe 2: 8192 bytes
 * ```
 * @module
 */

/** Datagrams safe on every path (tunnels and PPPoE included): where a search starts. */
export const BASE_DATAGRAM = 1200;
/**
 * The sizes a search tries, in order: a 1,500-byte Ethernet MTU less IPv6 and UDP headers (IPv4
 * gets 20 bytes more), jumbo frames, and 16 KiB (loopback and paths that pass fragments).
 */
export const PROBE_SIZES: readonly number[] = [1452, 8192, 16384];
/** Default wait for a probe's ACK, ms. */
const PROBE_TIMEOUT_MS = 1000;
/** Default probes of one size before it is deemed too large (RFC 8899 MAX_PROBES). */
const MAX_PROBES = 3;
/** Default wait before a search that stopped below the top runs again, ms (RFC 8899: 600 s). */
const RAISE_AFTER_MS = 600_000;
/** Default wait before searching again after a second black hole within it, ms. */
const RETRY_AFTER_MS = 60_000;
/** Segments above the base size over which the loss of large datagrams is judged. */
export const LOSS_SAMPLE = 128;
/** The share of those segments sent again that means the large datagrams do not get through. */
const MAX_LOSS = 0.1;

/** Options of {@linkcode PathMtuSearch}. */
export interface PathMtuOptions {
  /** Current time in ms. */
  now: () => number;
  /** Sends a probe datagram of `size` bytes whose ACK will name `id`. Must not throw. */
  sendProbe: (id: number, size: number) => void;
  /** The usable datagram size changed. */
  onSize: (size: number) => void;
  /** Sizes to try, ascending, each above {@linkcode BASE_DATAGRAM}; default {@linkcode PROBE_SIZES}. */
  sizes?: readonly number[];
  /** Wait for an ACK, ms; default 1000. */
  probeTimeoutMs?: number;
  /** Probes of one size before giving it up; default 3. */
  maxProbes?: number;
  /** Wait before a search that stopped below the top runs again, ms; default 600 000. */
  raiseAfterMs?: number;
  /** Wait before searching again after a second black hole within it, ms; default 60 000. */
  retryAfterMs?: number;
}

/** A bulk stream's counters since it began, as a reliable channel's `stats` has them. */
export interface StreamCounters {
  /** Retransmission timer expiries. */
  timeouts: number;
  /** Segments sent for the first time. */
  dataSent: number;
  /** Segments sent again. */
  retransmitted: number;
}

/** Counters of a {@linkcode PathMtuSearch}, for diagnostics and the bench. */
export interface PathMtuStats {
  probesSent: number;
  probesAcked: number;
  /** Sizes given up after `maxProbes` unanswered probes. */
  sizesFailed: number;
  /** Falls back to the base: a retransmission timeout or heavy loss above the base. */
  blackHoles: number;
}

/** One link's search for the largest datagram the path carries. */
export class PathMtuSearch {
  /** Counters; they only grow. */
  readonly stats: PathMtuStats = { probesSent: 0, probesAcked: 0, sizesFailed: 0, blackHoles: 0 };
  readonly #o: Required<PathMtuOptions>;
  #size = BASE_DATAGRAM;
  /** Index in the ladder of the next size to confirm. */
  #next = 0;
  /** The probe awaiting its ACK. */
  #probe: { id: number; size: number; tries: number; due: number; confirm: boolean } | undefined;
  #lastId = 0;
  /** When a stopped search may run again; undefined: at the next `start`. */
  #idleUntil: number | undefined;
  #wanted = false;
  /** Segments sent, and sent again, above the base size in the current sample. */
  #sample = { sent: 0, resent: 0 };
  /** Whether the first sample since the size changed is over. */
  #warm = false;
  /** When the last fall-back to the base was. */
  #lastFallback = -Infinity;
  /** The bulk stream {@linkcode observe} last saw, and its counters then. */
  #seen: { stream: object; counters: StreamCounters } | undefined;

  /** Creates a search at the base size; nothing is sent before {@linkcode start}. */
  constructor(options: PathMtuOptions) {
    const sizes = options.sizes ?? PROBE_SIZES;
    if (sizes.some((s, i) => !(s > (i === 0 ? BASE_DATAGRAM : sizes[i - 1])))) {
      throw new RangeError(`Invalid probe sizes ${sizes}: must ascend from above ${BASE_DATAGRAM}`);
    }
    this.#o = {
      sizes,
      probeTimeoutMs: PROBE_TIMEOUT_MS,
      maxProbes: MAX_PROBES,
      raiseAfterMs: RAISE_AFTER_MS,
      retryAfterMs: RETRY_AFTER_MS,
      ...options,
    };
  }

  /** The largest datagram to send now, in bytes. */
  get size(): number {
    return this.#size;
  }

  /** Bulk data wants to go: search, unless a search runs, is done, or waits for its timer. */
  start(): void {
    this.#wanted = true;
    if (this.#probe || this.#idleUntil !== undefined) return;
    if (this.#next >= this.#o.sizes.length) return;
    this.#sendProbe(0);
  }

  /** The peer acknowledged probe `id`: its size is confirmed, the next is probed. */
  onAck(id: number): void {
    const probe = this.#probe;
    if (!probe || probe.id !== id) return; // late or unknown: the probe was given up or replaced
    this.stats.probesAcked++;
    this.#probe = undefined;
    if (!probe.confirm) { // a confirmation keeps the size in use, and the search goes on
      this.#next++;
      this.#setSize(probe.size);
    }
    if (this.#next < this.#o.sizes.length) this.#sendProbe(0);
  }

  /**
   * The bulk stream's retransmission timer expired: when datagrams above the base were in use,
   * drop to the base at once and search again: at once after the first fall-back, after
   * `retryAfterMs` when the last one was less than that ago.
   */
  onBlackHole(): void {
    if (this.#size === BASE_DATAGRAM) return; // not the size's fault: congestion, a dead peer
    this.stats.blackHoles++;
    const now = this.#o.now();
    const again = now - this.#lastFallback < this.#o.retryAfterMs;
    this.#lastFallback = now;
    this.#probe = undefined;
    this.#next = 0;
    // Before the size changes: `onSize` may hand bulk data over, which calls `start`.
    this.#idleUntil = again ? now + this.#o.retryAfterMs : undefined;
    this.#setSize(BASE_DATAGRAM);
    if (!again && this.#wanted) this.start();
  }

  /**
   * What the bulk stream `stream` (a reliable channel) counts now: a timeout since the last call
   * is {@linkcode onBlackHole}, the segments sent and resent go to {@linkcode onSegments}. A new
   * stream (another object: a channel replaced) starts from its own counters.
   */
  observe(stream: object, counters: StreamCounters): void {
    const seen = this.#seen;
    this.#seen = { stream, counters: { ...counters } };
    if (seen?.stream !== stream) return;
    if (counters.timeouts > seen.counters.timeouts) this.onBlackHole();
    else {
      this.onSegments(
        counters.dataSent - seen.counters.dataSent,
        counters.retransmitted - seen.counters.retransmitted,
      );
    }
  }

  /**
   * The bulk stream sent `sent` new segments and `resent` copies since the last call: while above
   * the base, a tenth or more sent again over {@linkcode LOSS_SAMPLE} segments is a black hole
   * if a probe of the size in use then goes unanswered.
   */
  onSegments(sent: number, resent: number): void {
    if (this.#size === BASE_DATAGRAM) return;
    this.#sample.sent += sent;
    this.#sample.resent += resent;
    if (this.#sample.sent < LOSS_SAMPLE) return;
    const lossy = this.#warm && this.#sample.resent >= MAX_LOSS * this.#sample.sent;
    this.#sample = { sent: 0, resent: 0 };
    this.#warm = true;
    if (lossy && !this.#probe?.confirm) this.#sendProbe(0, true); // replaces a search probe
  }

  /** The path changed: back to the base size; the next {@linkcode start} searches again. */
  reset(): void {
    this.#probe = undefined;
    this.#next = 0;
    this.#idleUntil = undefined;
    this.#wanted = false;
    this.#setSize(BASE_DATAGRAM);
  }

  /** Runs the timers due now: a probe's retry or give-up, a new search. */
  poll(): void {
    const now = this.#o.now();
    const probe = this.#probe;
    if (probe && now >= probe.due) {
      if (probe.tries < this.#o.maxProbes) {
        this.#sendProbe(probe.tries, probe.confirm);
      } else if (probe.confirm) {
        this.onBlackHole(); // the size in use no longer gets through
      } else {
        // Too large for this path (or the peer does not probe): stop here for a while.
        this.stats.sizesFailed++;
        this.#probe = undefined;
        this.#idleUntil = now + this.#o.raiseAfterMs;
      }
    }
    if (this.#idleUntil !== undefined && now >= this.#idleUntil) {
      this.#idleUntil = undefined;
      if (this.#wanted) this.start();
    }
  }

  /** When {@linkcode poll} should next run; undefined when nothing waits. */
  nextDeadline(): number | undefined {
    return this.#probe?.due ?? (this.#wanted ? this.#idleUntil : undefined);
  }

  /** Sends a probe of the next size of the ladder, or with `confirm` of the size in use. */
  #sendProbe(tries: number, confirm = false): void {
    const size = confirm ? this.#size : this.#o.sizes[this.#next];
    const id = this.#lastId = (this.#lastId + 1) >>> 0;
    const due = this.#o.now() + this.#o.probeTimeoutMs;
    this.#probe = { id, size, tries: tries + 1, due, confirm };
    this.stats.probesSent++;
    this.#o.sendProbe(id, size);
  }

  #setSize(size: number): void {
    if (size === this.#size) return;
    this.#size = size;
    this.#sample = { sent: 0, resent: 0 };
    this.#warm = false;
    this.#o.onSize(size);
  }
}
