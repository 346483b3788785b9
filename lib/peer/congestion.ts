/**
 * Flow and congestion control of a reliable channel's sending side (`reliable.ts`), counted in
 * segments: how many new segments the peer's receive window admits beyond the cumulative ack, and
 * how many may be in the network at once (`cwnd`). `cwnd` is plain AIMD: it starts at
 * {@linkcode INITIAL_CWND}, grows by one per acknowledged segment up to `ssthresh` and by 1/cwnd
 * above it, halves once per window of data when loss is detected, drops to 1 when the
 * retransmission timer expires, and never exceeds the peer's window.
 *
 * Separate from the channel because it is only arithmetic on counts: which segments are in the
 * network, and why, is the channel's business.
 *
 * @example
 * ```ts
 * import { CongestionControl } from "./congestion.ts";
 *
 * const cc = new CongestionControl();
 * cc.onPeerWindow(64);
 * cc.onAcked(4); // slow start: cwnd 12
 * cc.onLoss(10, 20); // true: cwnd 6 until seq 20 is cumulatively acknowledged
 * ```
 * @module
 */

/** Initial congestion window in segments. */
export const INITIAL_CWND = 8;
/** Smallest allowed receive window; senders assume it until the peer's first ACK. */
export const MIN_RECEIVE_WINDOW = 8;

/**
 * The peer's receive window and the congestion window of one send stream.
 *
 * @example
 * ```ts
 * import { CongestionControl } from "./congestion.ts";
 *
 * const cc = new CongestionControl();
 * console.log(cc.cwndOpen(7), cc.cwndOpen(8)); // true false
 * ```
 */
export class CongestionControl {
  #cwnd = INITIAL_CWND;
  #ssthresh = Infinity;
  /** Loss detected while the cumulative ack is below this does not shrink `#cwnd` again. */
  #recoveryPoint = 0;
  #peerWindow = MIN_RECEIVE_WINDOW;

  /** Congestion window in segments; fractional above `ssthresh`. */
  get cwnd(): number {
    return this.#cwnd;
  }

  /** Receive window last advertised by the peer, in segments. */
  get peerWindow(): number {
    return this.#peerWindow;
  }

  /** Whether one more segment may enter the network with `inFlight` already there. */
  cwndOpen(inFlight: number): boolean {
    return inFlight < Math.max(1, Math.floor(this.#cwnd));
  }

  /** Whether the peer's window admits a new segment with `unacked` not cumulatively acked. */
  peerWindowOpen(unacked: number): boolean {
    return unacked < this.#peerWindow;
  }

  /** Takes the window the peer advertised in an ACK that is not older than the last one. */
  onPeerWindow(window: number): void {
    this.#peerWindow = Math.max(1, window);
  }

  /** `count` segments were newly acknowledged: grows `cwnd`, capped at the peer's window. */
  onAcked(count: number): void {
    this.#cwnd += this.#cwnd < this.#ssthresh ? count : count / this.#cwnd;
    this.#cwnd = Math.min(this.#cwnd, this.#peerWindow);
  }

  /**
   * Loss was detected from ACKs while the cumulative ack is `una` and the next new seq `next`:
   * halves `cwnd` unless it was already halved for this window of data. Returns whether it did.
   */
  onLoss(una: number, next: number): boolean {
    if (una < this.#recoveryPoint) return false;
    this.#ssthresh = Math.max(Math.floor(this.#cwnd / 2), 2);
    this.#cwnd = this.#ssthresh;
    this.#recoveryPoint = next;
    return true;
  }

  /** The retransmission timer expired with `next` the next new seq: `cwnd` drops to 1. */
  onTimeout(next: number): void {
    this.#ssthresh = Math.max(Math.floor(this.#cwnd / 2), 2);
    this.#cwnd = 1;
    this.#recoveryPoint = next;
  }

  /** Starts over for a new stream. */
  reset(): void {
    this.#cwnd = INITIAL_CWND;
    this.#ssthresh = Infinity;
    this.#recoveryPoint = 0;
    this.#peerWindow = MIN_RECEIVE_WINDOW;
  }
}
