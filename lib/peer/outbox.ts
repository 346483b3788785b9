/**
 * The messages a reliable channel (`reliable.ts`) has accepted and not yet reported delivered or
 * undelivered: it cuts them into segment payloads in order, remembers the seq of each message's
 * last segment, reports a message delivered once the cumulative ack passes it, and knows when
 * the oldest one outlives `maxDeliveryMs` after its first transmission.
 *
 * Separate from the channel because segmentation and delivery tracking deal in messages and
 * seqs only: when a segment may go, and whether it arrived, is decided elsewhere.
 *
 * @example
 * ```ts
 * import { Outbox } from "./outbox.ts";
 *
 * const outbox = new Outbox({ payloadSize: 2, maxDeliveryMs: 300_000 });
 * outbox.add(new Uint8Array([1, 2, 3])); // id 1
 * outbox.cut(0, 0); // { payload: [1, 2], end: false }
 * outbox.cut(0, 1); // { payload: [3], end: true }
 * outbox.delivered(2); // [1]: the cumulative ack 2 covers seq 1, its last segment
 * ```
 * @module
 */

/** Options of {@linkcode Outbox}. */
export interface OutboxOptions {
  /** Largest segment payload in bytes, at least 1. */
  payloadSize: number;
  /** Ms from a message's first transmission until it is overdue. */
  maxDeliveryMs: number;
}

interface OutMessage {
  id: number;
  data: Uint8Array;
  /** Bytes of `data` already cut into segments. */
  offset: number;
  /** Seq of the END segment once it has been cut. */
  lastSeq: number;
  /** `maxDeliveryMs` after the first transmission; undefined before it. */
  deadline: number | undefined;
}

/**
 * Pending messages of one channel, in order, and the ids given to them.
 *
 * @example
 * ```ts
 * import { Outbox } from "./outbox.ts";
 *
 * const outbox = new Outbox({ payloadSize: 1000, maxDeliveryMs: 300_000 });
 * outbox.add(new Uint8Array(10));
 * outbox.cut(5, 0);
 * console.log(outbox.oldestDeadline, outbox.drain()); // 300005 [1]
 * ```
 */
export class Outbox {
  readonly #payloadSize: number;
  readonly #maxDeliveryMs: number;
  #nextId = 1;
  /** Messages not yet fully cut into segments; the first may be partly cut. */
  #unsent: OutMessage[] = [];
  /** Messages fully cut, awaiting the cumulative ack of their END segment. */
  #unacked: OutMessage[] = [];

  /** Creates an empty outbox. */
  constructor(options: OutboxOptions) {
    this.#payloadSize = options.payloadSize;
    this.#maxDeliveryMs = options.maxDeliveryMs;
  }

  /** Messages accepted and not yet reported delivered or undelivered. */
  get pending(): number {
    return this.#unacked.length + this.#unsent.length;
  }

  /** Whether some message still has bytes to cut into segments. */
  get hasUnsent(): boolean {
    return this.#unsent.length > 0;
  }

  /** When the oldest pending message outlives `maxDeliveryMs`; undefined before it is sent. */
  get oldestDeadline(): number | undefined {
    return this.#unacked.length > 0 ? this.#unacked[0].deadline : this.#unsent[0]?.deadline;
  }

  /** Queues a copy of `data` and returns its id (1, 2, … for the life of the outbox). */
  add(data: Uint8Array): number {
    const id = this.#nextId++;
    this.#unsent.push({ id, data: data.slice(), offset: 0, lastSeq: -1, deadline: undefined });
    return id;
  }

  /**
   * Cuts the next segment payload, of at most `payloadSize` bytes (default the outbox's), to be
   * sent at `now` as seq `seq`; `end` marks the last of its message. The first cut of a message
   * starts its `maxDeliveryMs`. Requires `hasUnsent`.
   */
  cut(
    now: number,
    seq: number,
    payloadSize: number = this.#payloadSize,
  ): { payload: Uint8Array; end: boolean } {
    const msg = this.#unsent[0];
    const length = Math.min(payloadSize, msg.data.length - msg.offset);
    const payload = msg.data.subarray(msg.offset, msg.offset + length);
    msg.offset += length;
    msg.deadline ??= now + this.#maxDeliveryMs;
    const end = msg.offset === msg.data.length;
    if (end) {
      msg.lastSeq = seq;
      this.#unsent.shift();
      this.#unacked.push(msg);
    }
    return { payload, end };
  }

  /** Removes and returns the ids of the messages whose last seq is below `una`, in order. */
  delivered(una: number): number[] {
    const ids: number[] = [];
    while (this.#unacked.length > 0 && this.#unacked[0].lastSeq < una) {
      ids.push(this.#unacked.shift()!.id);
    }
    return ids;
  }

  /** Removes and returns the ids of every pending message, in order. */
  drain(): number[] {
    const ids = [...this.#unacked, ...this.#unsent].map((m) => m.id);
    this.#unacked = [];
    this.#unsent = [];
    return ids;
  }
}
