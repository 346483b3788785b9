/**
 * The segments of a reliable channel's send stream (`reliable.ts`) from the lowest one not
 * cumulatively acknowledged to the last one sent: their states (outstanding in the network,
 * deemed lost, selectively acknowledged), how many are in each, and every copy sent of each under
 * its own transmission number, which the peer echoes in its ACKs.
 *
 * Separate from the channel because this is bookkeeping only: it sends nothing and decides
 * nothing; the channel asks it which segment to send, and the loss detector which are lost.
 *
 * @example
 * ```ts
 * import { Flight } from "./flight.ts";
 *
 * const flight = new Flight(42);
 * const seg = flight.add(new Uint8Array([1]), true, 0); // seq 0, transmission 0
 * flight.acknowledge(1, []); // { acked: 1, latestTx: 0 }: the stream is empty again
 * console.log(seg.seq, flight.una, flight.size); // 0 1 0
 * ```
 * @module
 */

/** In the network as far as we know. */
export const OUTSTANDING = 0;
/** Deemed lost: to be sent again. */
export const LOST = 1;
/** Selectively or cumulatively acknowledged. */
export const ACKED = 2;

/** A DATA segment of the send stream. */
export interface OutSegment {
  readonly seq: number;
  readonly payload: Uint8Array;
  /** Whether it is the last segment of its message (the END flag). */
  readonly end: boolean;
  state: typeof OUTSTANDING | typeof LOST | typeof ACKED;
  /** Time of the latest transmission (a probe's second copy aside). */
  sentAt: number;
  /** Its transmission number: order among all transmissions of the stream. */
  tx: number;
  /** Transmission numbers of every copy sent, to forget them once the segment is acknowledged. */
  copies: number[];
}

/** A copy of an unacknowledged segment, found by the transmission number an ACK echoes. */
export interface Copy {
  seg: OutSegment;
  sentAt: number;
}

/** A range of seqs `[start, end)`, unwrapped. */
export interface SeqRange {
  start: number;
  end: number;
}

/**
 * The unacknowledged segments of one send stream and the copies sent of them.
 *
 * @example
 * ```ts
 * import { Flight, LOST } from "./flight.ts";
 *
 * const flight = new Flight(7);
 * const seg = flight.add(new Uint8Array(10), false, 0);
 * flight.markLost(seg);
 * console.log(seg.state === LOST, flight.inFlight, flight.lost); // true 0 1
 * flight.resend(seg, 300); // transmission 1
 * ```
 */
export class Flight {
  #streamId: number;
  /** Lowest seq not cumulatively acknowledged; `#segments[i].seq === #una + i`. */
  #una = 0;
  /** Seq of the next new segment. */
  #next = 0;
  #segments: OutSegment[] = [];
  #inFlight = 0;
  #lost = 0;
  /** Transmissions so far; the next one gets this number. */
  #txCount = 0;
  /** Copies of the segments not yet acknowledged, by transmission number. */
  #copies = new Map<number, Copy>();

  /** Creates an empty stream with id `streamId` (a u32). */
  constructor(streamId: number) {
    this.#streamId = streamId;
  }

  /** Id of the stream. */
  get streamId(): number {
    return this.#streamId;
  }

  /** Lowest seq not cumulatively acknowledged. */
  get una(): number {
    return this.#una;
  }

  /** Seq of the next new segment. */
  get next(): number {
    return this.#next;
  }

  /** Segments presumed in the network: outstanding. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Segments deemed lost and not sent again yet. */
  get lost(): number {
    return this.#lost;
  }

  /** Transmissions so far in this stream. */
  get txCount(): number {
    return this.#txCount;
  }

  /** Segments from `una` to the last one sent, whatever their state. */
  get size(): number {
    return this.#segments.length;
  }

  /** The segments from `una` on, in seq order. */
  get segments(): readonly OutSegment[] {
    return this.#segments;
  }

  /** The segment at `una`, which holds up delivery; undefined when all are acknowledged. */
  get head(): OutSegment | undefined {
    return this.#segments[0];
  }

  /** The first segment deemed lost. */
  firstLost(): OutSegment | undefined {
    return this.#segments.find((s) => s.state === LOST);
  }

  /** The last segment not acknowledged. */
  lastUnacked(): OutSegment | undefined {
    return this.#segments.findLast((s) => s.state !== ACKED);
  }

  /** The unacknowledged segment copy sent as transmission `tx`, if any. */
  copy(tx: number): Copy | undefined {
    return this.#copies.get(tx);
  }

  /** Appends a new segment at `next` and records its first transmission at `now`. */
  add(payload: Uint8Array, end: boolean, now: number): OutSegment {
    const seg: OutSegment = {
      seq: this.#next++,
      payload,
      end,
      state: OUTSTANDING,
      sentAt: 0,
      tx: 0,
      copies: [],
    };
    this.#segments.push(seg);
    this.#transmit(seg, now);
    return seg;
  }

  /** Records the transmission at `now` of a segment deemed lost; it is outstanding again. */
  resend(seg: OutSegment, now: number): void {
    this.#lost--;
    this.#transmit(seg, now);
  }

  /**
   * Records an extra copy of `seg` sent at `now` (a probe), which changes neither its state nor
   * its send time; returns the copy's transmission number.
   */
  addCopy(seg: OutSegment, now: number): number {
    const tx = this.#txCount++;
    seg.copies.push(tx);
    this.#copies.set(tx, { seg, sentAt: now });
    return tx;
  }

  /** Deems an outstanding segment lost. */
  markLost(seg: OutSegment): void {
    seg.state = LOST;
    this.#inFlight--;
    this.#lost++;
  }

  /** Deems every outstanding segment lost (the retransmission timer expired). */
  markAllLost(): void {
    for (const seg of this.#segments) {
      if (seg.state === OUTSTANDING) this.markLost(seg);
    }
  }

  /**
   * Marks the segments below `cum` and in `ranges` acknowledged and moves `una` up to `cum`
   * (which must not exceed `next`). Returns how many were newly acknowledged, and the latest
   * transmission among them of a segment sent only once (-1 if none): that copy is known to have
   * arrived, whereas which copy of a resent segment arrived is unknown.
   */
  acknowledge(cum: number, ranges: readonly SeqRange[]): { acked: number; latestTx: number } {
    let acked = 0;
    let latestTx = -1;
    const mark = (seg: OutSegment): void => {
      if (seg.state === ACKED) return;
      if (seg.state === OUTSTANDING) this.#inFlight--;
      else this.#lost--;
      seg.state = ACKED;
      acked++;
      for (const tx of seg.copies) this.#copies.delete(tx);
      if (seg.copies.length === 1) latestTx = Math.max(latestTx, seg.tx);
    };
    for (let seq = this.#una; seq < cum; seq++) mark(this.#segments[seq - this.#una]);
    for (const r of ranges) {
      for (let seq = Math.max(r.start, this.#una); seq < r.end; seq++) {
        mark(this.#segments[seq - this.#una]);
      }
    }
    if (cum > this.#una) {
      this.#segments.splice(0, cum - this.#una);
      this.#una = cum;
    }
    return { acked, latestTx };
  }

  /** Forgets everything and starts stream `streamId` at seq 0. */
  reset(streamId: number): void {
    this.#streamId = streamId;
    this.#next = 0;
    this.#una = 0;
    this.#segments = [];
    this.#inFlight = 0;
    this.#lost = 0;
    this.#txCount = 0;
    this.#copies.clear();
  }

  #transmit(seg: OutSegment, now: number): void {
    seg.state = OUTSTANDING;
    seg.sentAt = now;
    this.#inFlight++;
    seg.tx = this.addCopy(seg, now);
  }
}
