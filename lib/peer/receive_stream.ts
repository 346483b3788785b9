/**
 * The receiving side of a reliable channel (`reliable.ts`): it adopts the peer's stream (a new
 * one when its `base` is 0, which is also what a sender restart looks like), rejects what it
 * cannot continue with a RESET, buffers out-of-order segments within the receive window,
 * reassembles whole messages in order, and writes the ACK each DATA segment gets: cumulative
 * ack, up to 4 SACK ranges with the one holding the segment just received first (RFC 2018), the
 * receive window, and the echo of the segment's transmission number.
 *
 * Separate from the sending side because the two directions of a channel share nothing but the
 * transport: this part has no timers and sends only answers.
 *
 * @example
 * ```ts
 * import { ReceiveStream } from "./receive_stream.ts";
 *
 * const counters = { duplicates: 0, outOfWindow: 0, streamsAdopted: 0 };
 * const rx = new ReceiveStream({ receiveWindow: 64, maxMessageSize: 1 << 20 }, counters);
 * const seg = { streamId: 9, base: 0, tx: 0, payload: new Uint8Array([104, 105]) };
 * rx.receive({ type: "data", ...seg, seq: 1, end: true }); // messages: [], SACK [1, 2)
 * rx.receive({ type: "data", ...seg, seq: 0, end: false }); // messages: ["hihi"], cumAck 2
 * ```
 * @module
 */
import {
  type AckSegment,
  type DataSegment,
  MAX_SACK_RANGES,
  type SackRange,
  unwrapSeq,
} from "../protocol/segment.ts";

/** How many old stream ids a receiver remembers in order to ignore their late segments. */
const RETIRED_STREAMS = 16;

/** Options of {@linkcode ReceiveStream}. */
export interface ReceiveStreamOptions {
  /** Segments buffered beyond the cumulative ack; advertised in every ACK. */
  receiveWindow: number;
  /** Largest message in bytes; a longer one makes the stream rejected. */
  maxMessageSize: number;
}

/** Counters a {@linkcode ReceiveStream} increments (a channel's stats). */
export interface ReceiveCounters {
  /** DATA segments that had already been received. */
  duplicates: number;
  /** DATA segments beyond the receive window, dropped. */
  outOfWindow: number;
  /** New peer streams adopted. */
  streamsAdopted: number;
}

/** What a DATA segment yields: the messages it completed, in order, and the answer to send. */
export interface Received {
  messages: Uint8Array[];
  /** An ACK of the current stream, or a RESET (an ACK with the flag) of a rejected one. */
  ack: AckSegment;
}

/**
 * The peer's stream as this side receives it.
 *
 * @example
 * ```ts
 * import { ReceiveStream } from "./receive_stream.ts";
 *
 * const counters = { duplicates: 0, outOfWindow: 0, streamsAdopted: 0 };
 * const rx = new ReceiveStream({ receiveWindow: 64, maxMessageSize: 1 << 20 }, counters);
 * const { ack } = rx.receive({
 *   type: "data", streamId: 9, seq: 3, base: 3, tx: 0, end: true, payload: new Uint8Array(),
 * });
 * console.log(ack.reset); // true: stream 9 is unknown and does not start at 0
 * ```
 */
export class ReceiveStream {
  readonly #receiveWindow: number;
  readonly #maxMessageSize: number;
  readonly #counters: ReceiveCounters;
  #stream: number | undefined;
  /** Next expected seq: everything before it has been received. */
  #next = 0;
  /** Segments received beyond `#next`, by seq. */
  #outOfOrder = new Map<number, DataSegment>();
  /** In-order payloads of the message being reassembled. */
  #partial: Uint8Array[] = [];
  #partialSize = 0;
  #retired: number[] = [];

  /** Creates a receiver that has seen no stream yet; it counts into `counters`. */
  constructor(options: ReceiveStreamOptions, counters: ReceiveCounters) {
    this.#receiveWindow = options.receiveWindow;
    this.#maxMessageSize = options.maxMessageSize;
    this.#counters = counters;
  }

  /** Takes a DATA segment; returns the messages it completes and the ACK or RESET to send. */
  receive(seg: DataSegment): Received {
    const messages: Uint8Array[] = [];
    if (seg.streamId !== this.#stream) {
      if (seg.base !== 0 || this.#retired.includes(seg.streamId)) {
        return { messages, ack: this.#reject(seg.streamId, seg.tx) };
      }
      if (this.#stream !== undefined) this.#retire(this.#stream);
      this.reset();
      this.#stream = seg.streamId;
      this.#counters.streamsAdopted++;
    }
    const seq = unwrapSeq(seg.seq, this.#next);
    if (unwrapSeq(seg.base, this.#next) > this.#next) {
      return { messages, ack: this.#reject(seg.streamId, seg.tx) };
    }
    if (seq < this.#next || this.#outOfOrder.has(seq)) {
      this.#counters.duplicates++;
    } else if (seq - this.#next >= this.#receiveWindow) {
      this.#counters.outOfWindow++;
    } else {
      this.#outOfOrder.set(seq, seg);
      let next = this.#outOfOrder.get(this.#next);
      while (next !== undefined) {
        this.#outOfOrder.delete(this.#next++);
        this.#partialSize += next.payload.length;
        if (this.#partialSize > this.#maxMessageSize) {
          return { messages, ack: this.#reject(seg.streamId, seg.tx) };
        }
        this.#partial.push(next.payload);
        if (next.end) messages.push(this.#reassemble());
        next = this.#outOfOrder.get(this.#next);
      }
    }
    return { messages, ack: this.#ack(seg.streamId, seq, seg.tx) };
  }

  /** Drops the buffered segments and the partial message; the stream stays adopted. */
  reset(): void {
    this.#next = 0;
    this.#outOfOrder.clear();
    this.#partial = [];
    this.#partialSize = 0;
  }

  #reassemble(): Uint8Array {
    const message = new Uint8Array(this.#partialSize);
    let offset = 0;
    for (const part of this.#partial) {
      message.set(part, offset);
      offset += part.length;
    }
    this.#partial = [];
    this.#partialSize = 0;
    return message;
  }

  /**
   * The ACK of the current stream; the SACK range holding `latest` goes first (RFC 2018). `echo`
   * is the transmission number of the segment that arrived.
   */
  #ack(streamId: number, latest: number, echo: number): AckSegment {
    const ranges: SackRange[] = [];
    for (const seq of [...this.#outOfOrder.keys()].sort((a, b) => a - b)) {
      const last = ranges.at(-1);
      if (last !== undefined && last.end === seq) last.end++;
      else ranges.push({ start: seq, end: seq + 1 });
    }
    const first = ranges.findIndex((r) => r.start <= latest && latest < r.end);
    if (first > 0) ranges.unshift(...ranges.splice(first, 1));
    return {
      type: "ack",
      streamId,
      reset: false,
      cumAck: this.#next >>> 0,
      window: this.#receiveWindow,
      echo,
      sacks: ranges.slice(0, MAX_SACK_RANGES).map((r) => ({
        start: r.start >>> 0,
        end: r.end >>> 0,
      })),
    };
  }

  /** Retires `streamId` (dropping its state if it is the current one); returns the RESET. */
  #reject(streamId: number, echo: number): AckSegment {
    if (streamId === this.#stream) {
      this.reset();
      this.#stream = undefined;
    }
    this.#retire(streamId);
    return { type: "ack", streamId, reset: true, cumAck: 0, window: 0, echo, sacks: [] };
  }

  #retire(streamId: number): void {
    if (this.#retired.includes(streamId)) return;
    this.#retired.push(streamId);
    if (this.#retired.length > RETIRED_STREAMS) this.#retired.shift();
  }
}
