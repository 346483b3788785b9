/**
 * When a reliable channel (`reliable.ts`) deems its segments lost, and its timers:
 * - **RACK** (RFC 8985, simplified): a segment is lost when a transmission sent after its latest
 *   copy is known to have arrived and it is overdue by the latest echoed RTT plus a reordering
 *   allowance of min RTT / 4, which grows by that step up to one min RTT whenever an echo shows
 *   that a resend was needless. Unlike a duplicate-ACK threshold this works with windows of 1-3
 *   segments, which random loss makes common, and detects lost retransmissions too.
 * - **Silence**: since when the peer has acknowledged nothing new while data awaits
 *   acknowledgement; the channel gives up after `giveUpAfterMs` of it.
 * - **Tail loss probe** (RFC 8985 section 7, simplified): due 2·SRTT into a silence, unless the
 *   retransmission timer fires first; at most one per silence.
 * - **Retransmission timer** (RFC 6298): armed by the first transmission, restarted when new data
 *   is acknowledged, with the {@linkcode RttEstimator}'s backed-off RTO.
 *
 * Separate from the channel because it only reads segments' states and send times and keeps
 * deadlines: which segments to send, and the congestion window, are the channel's business.
 *
 * @example
 * ```ts
 * import { OUTSTANDING } from "./flight.ts";
 * import { LossDetector } from "./loss_detection.ts";
 * import { RttEstimator } from "./rtt.ts";
 *
 * const rtt = new RttEstimator({ initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 2000 });
 * const loss = new LossDetector(rtt);
 * loss.onTransmit(0); // segment 0 (tx 0) sent at 0
 * loss.onTransmit(0); // segment 1 (tx 1) sent at 0
 * rtt.sample(100);
 * loss.onAck(-1, { tx: 1, rttMs: 100, needless: false }); // segment 1 arrived, 0 did not
 * const segments = [{ state: OUTSTANDING, tx: 0, sentAt: 0 }];
 * loss.detect(110, segments); // []: not overdue before 100 + 100 / 4
 * loss.detect(125, segments); // [segments[0]]
 * ```
 * @module
 */
import { type OutSegment, OUTSTANDING } from "./flight.ts";
import type { RttEstimator } from "./rtt.ts";

/** Largest reordering allowance for loss detection, in quarters of the min RTT. */
const MAX_REORDER_QUARTERS = 4;

/** What loss detection reads of a segment. */
export type SentSegment = Pick<OutSegment, "state" | "tx" | "sentAt">;

/** The copy an ACK echoes, when its segment was not acknowledged before. */
export interface EchoSample {
  /** Its transmission number. */
  tx: number;
  /** Its round-trip time in ms. */
  rttMs: number;
  /** Whether its segment was sent again after it: the resend was needless. */
  needless: boolean;
}

/**
 * RACK loss detection, the tail loss probe, the retransmission timer and the silence of one
 * send stream.
 *
 * @example
 * ```ts
 * import { LossDetector } from "./loss_detection.ts";
 * import { RttEstimator } from "./rtt.ts";
 *
 * const rtt = new RttEstimator({ initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 2000 });
 * const loss = new LossDetector(rtt);
 * loss.onTransmit(5);
 * console.log(loss.rtoDeadline, loss.silentSince); // 1005 5
 * ```
 */
export class LossDetector {
  readonly #rtt: RttEstimator;
  /** RACK: order of the latest-sent transmission known to have arrived, and an RTT for it. */
  #rackTx = -1;
  #rackRtt: number | undefined;
  /** Reordering allowance in quarters of the min RTT; grows when a resend proves needless. */
  #reorderQuarters = 1;
  #lossDeadline: number | undefined;
  /** Since when the peer has acknowledged nothing new while data awaits acknowledgement. */
  #silentSince: number | undefined;
  /** When to send a tail loss probe; undefined while one is out or none is due. */
  #probeDeadline: number | undefined;
  #rtoDeadline: number | undefined;

  /** Creates a detector that takes RTTs and the RTO from `rtt`. */
  constructor(rtt: RttEstimator) {
    this.#rtt = rtt;
  }

  /** When a segment not yet deemed lost will be overdue, if one may be. */
  get lossDeadline(): number | undefined {
    return this.#lossDeadline;
  }

  /** Start of the current silence; undefined when no data awaits acknowledgement. */
  get silentSince(): number | undefined {
    return this.#silentSince;
  }

  /** When the tail loss probe is due, if one is. */
  get probeDeadline(): number | undefined {
    return this.#probeDeadline;
  }

  /** When the retransmission timer expires, if it runs. */
  get rtoDeadline(): number | undefined {
    return this.#rtoDeadline;
  }

  /** A DATA copy is sent at `now`: starts the timer and a silence if they are not running. */
  onTransmit(now: number): void {
    this.#rtoDeadline ??= now + this.#rtt.rtoMs;
    if (this.#silentSince === undefined) {
      this.#silentSince = now;
      this.#armTailProbe(now);
    }
  }

  /**
   * Takes what an ACK shows to have arrived: `latestTx`, the latest transmission of a segment
   * sent once that it newly acknowledges (-1 if none), and the echoed copy if its segment was
   * not acknowledged before. Call after giving that copy's RTT to the estimator.
   */
  onAck(latestTx: number, echo: EchoSample | undefined): void {
    if (echo !== undefined) {
      // The echo names the copy that arrived, so this RTT is exact even for a resent segment
      // (no Karn's rule needed) and never spans the loss of earlier ACKs.
      this.#rackRtt = echo.rttMs;
      latestTx = Math.max(latestTx, echo.tx);
      // The segment was resent after the copy that arrived: the resend was needless, most likely
      // because that copy was reordered, so allow more reordering before calling a segment lost.
      if (echo.needless) {
        this.#reorderQuarters = Math.min(this.#reorderQuarters + 1, MAX_REORDER_QUARTERS);
      }
    }
    if (this.#rackRtt !== undefined) this.#rackTx = Math.max(this.#rackTx, latestTx);
  }

  /**
   * New data was acknowledged at `now`: the timer restarts and a new silence begins if data
   * still awaits acknowledgement (`pending`), else both stop.
   */
  onProgress(now: number, pending: boolean): void {
    this.#rtoDeadline = pending ? now + this.#rtt.rtoMs : undefined;
    this.#silentSince = pending ? now : undefined;
    this.#probeDeadline = undefined;
    if (pending) this.#armTailProbe(now);
  }

  /**
   * Returns the outstanding `segments` that are lost at `now`, and sets the loss deadline to
   * when the next of the others will be overdue: those sent no later than the latest
   * transmission known to have arrived, once overdue by the RACK RTT plus the reordering
   * allowance.
   */
  detect<S extends SentSegment>(now: number, segments: Iterable<S>): S[] {
    this.#lossDeadline = undefined;
    const lost: S[] = [];
    if (this.#rackRtt === undefined) return lost;
    const allowance = (this.#rtt.minRttMs ?? this.#rackRtt) * this.#reorderQuarters / 4;
    for (const seg of segments) {
      if (seg.state !== OUTSTANDING || seg.tx > this.#rackTx) continue;
      const due = seg.sentAt + this.#rackRtt + allowance;
      if (now >= due) lost.push(seg);
      else this.#lossDeadline = Math.min(this.#lossDeadline ?? due, due);
    }
    return lost;
  }

  /** The tail loss probe was sent (or found nothing to send): none until the next silence. */
  onTailProbe(): void {
    this.#probeDeadline = undefined;
  }

  /**
   * The retransmission timer expired at `now` and the estimator has backed off: every
   * outstanding segment is deemed lost, so no loss or probe deadline remains; the timer restarts
   * if data still awaits acknowledgement (`pending`).
   */
  onTimeout(now: number, pending: boolean): void {
    this.#lossDeadline = undefined;
    this.#probeDeadline = undefined;
    this.#rtoDeadline = pending ? now + this.#rtt.rtoMs : undefined;
  }

  /** Starts over for a new stream; the RTT estimates and the reordering allowance are kept. */
  reset(): void {
    this.#rackTx = -1;
    this.#rackRtt = undefined;
    this.#silentSince = undefined;
    this.#lossDeadline = undefined;
    this.#probeDeadline = undefined;
    this.#rtoDeadline = undefined;
  }

  /**
   * Arms the tail loss probe for 2·SRTT after `now`, when a silence starts, unless the timer
   * fires first. With a window of 1-3 segments no later segment may be acknowledged to reveal a
   * loss, and the RTO's floor is many RTTs.
   */
  #armTailProbe(now: number): void {
    const srtt = this.#rtt.srttMs;
    const at = srtt === undefined ? undefined : now + 2 * srtt;
    const beforeRto = at !== undefined && this.#rtoDeadline !== undefined && at < this.#rtoDeadline;
    this.#probeDeadline = beforeRto ? at : undefined;
  }
}
