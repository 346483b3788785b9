/**
 * Reliable, ordered, exactly-once delivery of whole messages over a lossy, reordering,
 * duplicating datagram transport, as a pure state machine: no sockets, no timers. The caller
 * injects a clock and a `send` callback, feeds received segments to
 * {@linkcode ReliableChannel.receive}, and calls {@linkcode ReliableChannel.poll} at
 * {@linkcode ReliableChannel.nextDeadline}. One channel per remote peer carries both directions:
 * it sends our messages as one stream and receives the peer's stream. Segment layout:
 * `lib/protocol/segment.ts`.
 *
 * Rules:
 * - **Segmentation.** A message (at most `maxMessageSize` bytes, default 1 MiB) is cut into DATA
 *   segments of at most `maxSegmentSize` bytes (default 1100) each; the last one has the END flag.
 *   Sequence numbers count segments, start at 0 in each stream and wrap modulo 2^32 on the wire.
 *   Every copy sent, first or resent, also carries its own transmission number `tx` (from 0).
 *   `resize` changes the size for the segments cut from then on; when a segment in flight is
 *   larger than the new size, the stream is given up at once (see there).
 * - **Acknowledgement.** The receiver answers every DATA segment at once (no delayed ACK: chat
 *   traffic is sparse, so an ACK per segment costs little and gives the sender prompt RTT samples
 *   and loss information) with the cumulative ack, up to 4 SACK ranges (the one holding the segment
 *   just received first, as in RFC 2018), its receive window, and the echo: the `tx` of the copy
 *   that triggered the ACK.
 * - **Delivery.** The receiver delivers whole messages in order as soon as they are contiguous,
 *   then acks. A message is reported delivered only when the *cumulative* ack covers its last
 *   segment, i.e. the peer has handed it to its application; SACKs never count as delivery.
 * - **RTT.** An ACK whose echo names a copy of a segment not acknowledged before gives an exact
 *   sample: the RTT of that copy (as TCP timestamps do, RFC 7323 section 4). Resends give samples
 *   too, so Karn's rule is not needed, and a segment covered late by a cumulative ack after its
 *   own ACK was lost gives none, so lost ACKs do not inflate SRTT.
 * - **Retransmission.** RFC 6298 timer: SRTT/RTTVAR, RTO = SRTT + 4·RTTVAR clamped to
 *   [`minRtoMs`, `maxRtoMs`] (200 ms, 2 s), initially `initialRtoMs` (1 s), doubled on each expiry
 *   up to `maxRtoMs`. Any ACK that acknowledges new data restarts the timer and drops the backoff
 *   (RFC 6298 section 5): the peer is alive, and since every ACK measures the RTT, the RTO cannot
 *   lag behind an RTT that grew. On expiry every unacknowledged segment is deemed lost, `cwnd`
 *   drops to 1, and two probes go out whatever `cwnd` (RFC 9002 section 6.2.4): the first
 *   unacknowledged segment and the next lost one, else a new one, else a second copy of the first.
 *   At 36 % loss each way a copy and its ACK both get through only 41 % of the time; two probes
 *   leave an expiry unanswered 35 % of the time instead of 59 %. The ceiling is low so that about
 *   15 expiries fit in `giveUpAfterMs` (30 s): a live peer at that loss then looks silent for 30 s
 *   about once in 10^7 stalls (0.35^15), against once in 10^4 with a 5 s ceiling.
 * - **Loss detection.** From ACKs as in RACK (RFC 8985), simplified: a segment is lost when a
 *   transmission sent after its latest copy is known to have arrived (the echoed copy, or a
 *   segment sent only once that the ACK covers) and it is overdue by the latest echoed RTT plus a
 *   reordering allowance of min RTT / 4, which grows by that step up to one min RTT whenever the
 *   echo shows that a resend was needless (an earlier copy of the segment arrived).
 * - **Tail loss probe.** RFC 8985 section 7, simplified: when the peer has acknowledged nothing
 *   new for 2·SRTT (counted as for give-up, below) and the RTO is not due before, one probe goes
 *   out whatever `cwnd`: a new segment if the peer's window allows, else another copy of the last
 *   one sent. Its ACK lets RACK find what was lost before it. With the windows of 1-3 segments
 *   that heavy loss brings, there is often no later segment to reveal a loss, and the RTO's floor
 *   is many RTTs on a short path. At most one probe per silence.
 * - **Flow and congestion control.** New segments are sent only while `seq < cumAck + window` (the
 *   window the peer advertised; 8 segments, the smallest a receiver may advertise, until the first
 *   ACK) and, probes aside, while fewer than `cwnd` segments are in the network (the first
 *   unacknowledged segment, once deemed lost, is resent at once regardless). `cwnd` is plain AIMD
 *   counted in segments: it starts at 8, grows by one per acknowledged segment up to `ssthresh`
 *   and by 1/cwnd above it, halves once per window of data when loss is detected, and drops to 1
 *   when the timer expires. It is capped at the peer's window.
 * - **Give-up.** The peer is deemed unreachable when it has acknowledged nothing new for
 *   `giveUpAfterMs` (default 30 s) while data awaits acknowledgement: the silence counts from the
 *   last ACK that acknowledged a segment not acknowledged before, or from the first transmission
 *   after the channel was idle (so on a dead link a message is given up 30 s after it was first
 *   sent). ACKs that repeat what is known do not count: they show that the peer is up, not that
 *   our data reaches it. Separately, a message not delivered `maxDeliveryMs` (default ten times
 *   `giveUpAfterMs`, 5 min) after its first transmission is given up although the peer is alive:
 *   one it never acknowledges, while acknowledging others, must not be retried forever. (Such a
 *   hole also stops all progress once the peer's window is full, after which silence applies.)
 *   Either way every message not yet delivered (in flight or queued) is reported undelivered, as
 *   later ones cannot be delivered before it, and the channel starts a new stream with a fresh
 *   random 32-bit stream id. "Undelivered" means "not confirmed": if only the ACKs were lost, the
 *   peer may have the message.
 * - **New streams.** A receiver that sees DATA of an unknown stream whose `base` (the sender's
 *   lowest unacknowledged seq) is 0 adopts it: it drops the old stream's buffered segments and
 *   partial message and remembers the old id as retired. This is also what a sender restart looks
 *   like. Late DATA of a retired stream is answered with a RESET (below), which its sender, having
 *   moved on, ignores.
 * - **Reset.** A receiver answers with an ACK carrying the RESET flag when it cannot continue a
 *   stream: the stream is retired, unknown with `base` > 0 (the receiver restarted and lost what
 *   it had acknowledged), has `base` beyond the receiver's cumulative ack (the same, detected
 *   later), or a message exceeds its `maxMessageSize`. A sender that gets a RESET for its current
 *   stream gives up like above and starts a new stream.
 *
 * Callbacks are invoked after the channel's state is updated, except `send`, which is called
 * mid-update and so must neither throw nor call back into the channel synchronously. If another
 * callback throws, the exception propagates to the caller; events not yet reported stay queued and
 * are reported by the next call to `send`, `receive`, `poll` or `close`.
 *
 * @example
 * ```ts
 * const ch = new ReliableChannel({
 *   now: () => realClock.now(),
 *   send: (segment) => console.log("hand to the transport:", segment), // e.g. encrypt and send
 *   onMessage: (data) => console.log(new TextDecoder().decode(data)),
 *   onDelivered: (id) => console.log(`message ${id} delivered`),
 *   onUndelivered: (id, reason) => console.log(`message ${id} not delivered: ${reason}`),
 * });
 * ch.send(new TextEncoder().encode("hello"));
 * // Pass each segment from the peer to ch.receive(), and call ch.poll() at ch.nextDeadline().
 * ch.close();
 * ```
 * @module
 */
import {
  type AckSegment,
  DATA_HEADER_SIZE,
  type DataSegment,
  decodeSegment,
  encodeSegment,
  type Segment,
  SegmentError,
  unwrapSeq,
} from "../protocol/segment.ts";
import { CongestionControl, MIN_RECEIVE_WINDOW } from "./congestion.ts";
import { ACKED, Flight, LOST, type OutSegment, OUTSTANDING } from "./flight.ts";
import { LossDetector } from "./loss_detection.ts";
import { Outbox } from "./outbox.ts";
import { ReceiveStream } from "./receive_stream.ts";
import { RttEstimator } from "./rtt.ts";

export { MIN_RECEIVE_WINDOW };

/** Default largest encoded segment in bytes: with encryption and framing a datagram stays < 1200. */
export const DEFAULT_MAX_SEGMENT_SIZE = 1100;
/** Smallest allowed `maxSegmentSize`: room for the largest ACK (49 bytes) and a DATA payload. */
export const MIN_SEGMENT_SIZE = 64;
/** Default largest message in bytes (1 MiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 1 << 20;
/** Default time in ms the peer may acknowledge nothing new before pending messages are given up. */
export const DEFAULT_GIVE_UP_AFTER_MS = 30_000;
/** Default `maxDeliveryMs`, in multiples of `giveUpAfterMs` (5 min with the default 30 s). */
export const DEFAULT_MAX_DELIVERY_FACTOR = 10;
/**
 * Default ceiling of the retransmission timeout in ms, backoff included: low enough that about 15
 * timer expiries fit in the default `giveUpAfterMs` (see the module documentation).
 */
export const DEFAULT_MAX_RTO_MS = 2000;
/** Default receive window in segments. */
export const DEFAULT_RECEIVE_WINDOW = 64;
/** Largest receive window (the ACK field is 16 bits). */
export const MAX_RECEIVE_WINDOW = 0xffff;

/** Segments sent when the retransmission timer expires, whatever `cwnd` (RFC 9002 6.2.4). */
const PROBES = 2;

function checkSegmentSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_SEGMENT_SIZE) {
    throw new RangeError(
      `Invalid maxSegmentSize ${size}: must be an integer >= ${MIN_SEGMENT_SIZE}`,
    );
  }
  return size;
}

/** Options of {@linkcode ReliableChannel}. */
export interface ReliableChannelOptions {
  /** Current time in milliseconds. */
  now: () => number;
  /** Hands an encoded segment to the transport. Must not throw or call into the channel. */
  send: (segment: Uint8Array) => void;
  /** Receives each of the peer's messages once, whole and in order. */
  onMessage: (data: Uint8Array) => void;
  /** Reports that the peer has received the message `id` returned by `send`. */
  onDelivered: (id: number) => void;
  /**
   * Reports that the message `id` was given up; `reason` says why. Not confirmed is not proof of
   * loss: if only the peer's ACKs were lost, it may have the message.
   */
  onUndelivered: (id: number, reason: string) => void;
  /** Largest encoded segment in bytes, at least {@linkcode MIN_SEGMENT_SIZE}; default 1100. */
  maxSegmentSize?: number;
  /** Largest message in bytes, sent or received; default 1 MiB. */
  maxMessageSize?: number;
  /**
   * Ms the peer may acknowledge nothing new while data awaits acknowledgement before every
   * pending message is given up (the peer is deemed unreachable); default 30 000.
   */
  giveUpAfterMs?: number;
  /**
   * Ms from a message's first transmission until it is given up even though the peer keeps
   * acknowledging other data; default {@linkcode DEFAULT_MAX_DELIVERY_FACTOR} × `giveUpAfterMs`.
   */
  maxDeliveryMs?: number;
  /** Segments buffered beyond the cumulative ack, 8..65535; default 64. */
  receiveWindow?: number;
  /** Retransmission timeout before the first RTT sample in ms; default 1000. */
  initialRtoMs?: number;
  /** Lower bound of the retransmission timeout in ms; default 200. */
  minRtoMs?: number;
  /** Upper bound of the retransmission timeout in ms, backoff included; default 2000. */
  maxRtoMs?: number;
  /** Returns a random u32 for a new stream id; default `crypto.getRandomValues`. */
  newStreamId?: () => number;
  /**
   * Acknowledge every `ackEvery`th in-order DATA segment rather than each (default 1: each, as
   * chat wants). Bulk streams (the file channel) take more (16: about one ACK per file chunk),
   * fewer ACKs to encrypt, send, receive and decrypt. A segment that ends a message, fills or leaves a hole, or repeats one is
   * still acknowledged at once; the others wait at most `ackDelayMs` (default 2).
   */
  ackEvery?: number;
  /** Longest wait of a delayed ACK, ms; default 2. */
  ackDelayMs?: number;
  /**
   * While this returns true, no new segment is sent (resends of lost ones still are): a stream
   * of lower priority (the file channel) gives way to another. Call `poll` when it turns false.
   */
  holdNew?: () => boolean;
}

/** Counters of a {@linkcode ReliableChannel}; they only grow. */
export interface ReliableStats {
  /** Messages accepted by `send`. */
  messagesSent: number;
  /** Messages reported delivered. */
  messagesDelivered: number;
  /** Messages reported undelivered. */
  messagesUndelivered: number;
  /** Messages handed to `onMessage`. */
  messagesReceived: number;
  /** DATA segments sent for the first time. */
  dataSent: number;
  /** DATA segments sent again (loss detected from ACKs or the timer, probes). */
  retransmitted: number;
  /** Retransmission timer expiries. */
  timeouts: number;
  /** Tail loss probes sent. */
  tailProbes: number;
  /** Times loss detected from ACKs made the congestion window shrink. */
  lossEvents: number;
  /** ACK segments sent, RESETs included. */
  acksSent: number;
  /** Received DATA segments that had already been received. */
  duplicates: number;
  /** Received DATA segments beyond the receive window, dropped. */
  outOfWindow: number;
  /** Received segments that did not decode, dropped. */
  malformed: number;
  /** Received ACKs for a stream other than our current one, ignored. */
  staleAcks: number;
  /** Received ACKs acknowledging data never sent or echoing a copy never sent, ignored. */
  invalidAcks: number;
  /** New peer streams adopted by the receiver. */
  streamsAdopted: number;
  /** RESETs sent: peer DATA of a stream this receiver does not accept. */
  resetsSent: number;
  /** RESETs received for our current stream. */
  resetsReceived: number;
  /**
   * Give-ups: the peer was silent for `giveUpAfterMs`, a message outlived `maxDeliveryMs`, or a
   * segment in flight outgrew the size {@linkcode ReliableChannel.resize} set.
   */
  giveUps: number;
}

/** A snapshot of the sending side, for diagnostics and tests. */
export interface SendState {
  /** Id of the current send stream. */
  streamId: number;
  /** Segments sent and not yet cumulatively acknowledged (limited by `peerWindow`). */
  unacked: number;
  /** Segments presumed in the network: not acknowledged, not deemed lost (limited by `cwnd`). */
  inFlight: number;
  /** Congestion window in segments. */
  cwnd: number;
  /** Receive window last advertised by the peer, in segments. */
  peerWindow: number;
  /** Current retransmission timeout in ms. */
  rtoMs: number;
  /** Smoothed round-trip time in ms, undefined before the first sample. */
  srttMs: number | undefined;
  /** Messages accepted by `send` and not yet reported delivered or undelivered. */
  pendingMessages: number;
}

/**
 * One peer's reliable message channel: see the module documentation for the rules. It wires
 * together the parts that each hold one concern: the {@linkcode Outbox} (messages, cut into
 * segment payloads), the {@linkcode Flight} (segments and copies sent), the
 * {@linkcode CongestionControl} (how many may go), the {@linkcode RttEstimator} (RTO), the
 * {@linkcode LossDetector} (which are lost, and the timers), and the {@linkcode ReceiveStream}
 * (the peer's messages, and the ACKs for them).
 *
 * @example
 * ```ts
 * const toA: Uint8Array[] = [];
 * const toB: Uint8Array[] = [];
 * const common = { now: () => realClock.now(), onUndelivered: () => {} };
 * const a = new ReliableChannel({
 *   ...common,
 *   send: (segment) => toB.push(segment),
 *   onMessage: () => {},
 *   onDelivered: (id) => console.log(`a: message ${id} delivered`),
 * });
 * const b = new ReliableChannel({
 *   ...common,
 *   send: (segment) => toA.push(segment),
 *   onMessage: (data) => console.log(`b: ${new TextDecoder().decode(data)}`),
 *   onDelivered: () => {},
 * });
 * a.send(new TextEncoder().encode("hi"));
 * for (const segment of toB.splice(0)) b.receive(segment); // b: hi
 * for (const segment of toA.splice(0)) a.receive(segment); // a: message 1 delivered
 * ```
 */
export class ReliableChannel {
  /** Counters; see {@linkcode ReliableStats}. */
  readonly stats: ReliableStats = {
    messagesSent: 0,
    messagesDelivered: 0,
    messagesUndelivered: 0,
    messagesReceived: 0,
    dataSent: 0,
    retransmitted: 0,
    timeouts: 0,
    tailProbes: 0,
    lossEvents: 0,
    acksSent: 0,
    duplicates: 0,
    outOfWindow: 0,
    malformed: 0,
    staleAcks: 0,
    invalidAcks: 0,
    streamsAdopted: 0,
    resetsSent: 0,
    resetsReceived: 0,
    giveUps: 0,
  };

  readonly #opts: ReliableChannelOptions;
  readonly #maxMessageSize: number;
  readonly #giveUpAfterMs: number;
  readonly #maxDeliveryMs: number;
  readonly #newStreamId: () => number;
  readonly #ackEvery: number;
  readonly #ackDelayMs: number;
  #maxSegmentSize: number;
  /** A delayed ACK: the latest one not sent yet, how many segments it covers, when it is due. */
  #delayedAck: { ack: AckSegment; count: number; due: number } | undefined;
  #closed = false;
  /** Callbacks not yet invoked, in order. */
  #events: (() => void)[] = [];
  /** True while {@linkcode #flush} reports events. */
  #flushing = false;

  readonly #outbox: Outbox;
  readonly #flight: Flight;
  readonly #cc = new CongestionControl();
  readonly #rtt: RttEstimator;
  readonly #loss: LossDetector;
  readonly #receiver: ReceiveStream;

  /** Creates a channel. Throws `RangeError` for invalid options. */
  constructor(options: ReliableChannelOptions) {
    this.#opts = options;
    const maxSegmentSize = options.maxSegmentSize ?? DEFAULT_MAX_SEGMENT_SIZE;
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#giveUpAfterMs = options.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS;
    this.#maxDeliveryMs = options.maxDeliveryMs ??
      DEFAULT_MAX_DELIVERY_FACTOR * this.#giveUpAfterMs;
    const receiveWindow = options.receiveWindow ?? DEFAULT_RECEIVE_WINDOW;
    this.#maxSegmentSize = checkSegmentSize(maxSegmentSize);
    if (!Number.isInteger(this.#maxMessageSize) || this.#maxMessageSize < 0) {
      throw new RangeError(
        `Invalid maxMessageSize ${this.#maxMessageSize}: must be an integer >= 0`,
      );
    }
    if (!(this.#giveUpAfterMs > 0)) {
      throw new RangeError(`Invalid giveUpAfterMs ${this.#giveUpAfterMs}: must be > 0`);
    }
    if (!(this.#maxDeliveryMs > 0)) {
      throw new RangeError(`Invalid maxDeliveryMs ${this.#maxDeliveryMs}: must be > 0`);
    }
    if (
      !Number.isInteger(receiveWindow) || receiveWindow < MIN_RECEIVE_WINDOW ||
      receiveWindow > MAX_RECEIVE_WINDOW
    ) {
      throw new RangeError(
        `Invalid receiveWindow ${receiveWindow}: must be an integer in ${MIN_RECEIVE_WINDOW}..${MAX_RECEIVE_WINDOW}`,
      );
    }
    this.#rtt = new RttEstimator({
      initialRtoMs: options.initialRtoMs ?? 1000,
      minRtoMs: options.minRtoMs ?? 200,
      maxRtoMs: options.maxRtoMs ?? DEFAULT_MAX_RTO_MS,
    });
    this.#loss = new LossDetector(this.#rtt);
    // MIN_SEGMENT_SIZE leaves room for the largest ACK, so only DATA needs the size computed.
    this.#outbox = new Outbox({
      payloadSize: maxSegmentSize - DATA_HEADER_SIZE,
      maxDeliveryMs: this.#maxDeliveryMs,
    });
    this.#receiver = new ReceiveStream(
      { receiveWindow, maxMessageSize: this.#maxMessageSize },
      this.stats,
    );
    this.#ackEvery = options.ackEvery ?? 1;
    this.#ackDelayMs = options.ackDelayMs ?? 2;
    this.#newStreamId = options.newStreamId ??
      (() => crypto.getRandomValues(new Uint32Array(1))[0]);
    this.#flight = new Flight(this.#newStreamId() >>> 0);
  }

  /** Largest encoded segment in bytes, for the segments cut from now on. */
  get maxSegmentSize(): number {
    return this.#maxSegmentSize;
  }

  /**
   * Changes the largest encoded segment (a path-MTU search found a larger or smaller datagram
   * size, `path_mtu.ts`) and returns whether the sending stream was given up for it. Segments are
   * cut at the new size from now on; those already cut keep theirs when resent. One still
   * unacknowledged and larger than `size` would be resent, unanswered, until `giveUpAfterMs` of
   * silence gives the stream up: the path no longer carries it. It cannot be cut anew either
   * (sequence numbers count segments, and the peer may hold later ones, or have delivered its
   * message with the ACK still on its way). So the stream is given up at once, as after that
   * silence but without the wait: its messages are reported undelivered, later ones go on a new
   * stream (counted in `stats.giveUps`). Throws `RangeError` below {@linkcode MIN_SEGMENT_SIZE}.
   *
   * @example
   * ```ts
   * const channel = new ReliableChannel({ now: () => Date.now(), send() {}, onMessage() {},
   *   onDelivered() {}, onUndelivered() {}, maxSegmentSize: 16_000 });
   * channel.resize(1_100); // false: nothing in flight
   * ```
   */
  resize(size: number): boolean {
    this.#maxSegmentSize = checkSegmentSize(size);
    const tooLarge = this.#flight.segments.some((seg) =>
      seg.state !== ACKED && DATA_HEADER_SIZE + seg.payload.length > size
    );
    if (!tooLarge || this.#closed) return false;
    this.stats.giveUps++;
    this.#abandonStream(
      `the path no longer carries segments of the size in flight (now ${size} bytes at most)`,
    );
    this.#flush();
    return true;
  }

  /** True once {@linkcode ReliableChannel.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** A snapshot of the sending side. */
  get sendState(): SendState {
    const flight = this.#flight;
    return {
      streamId: flight.streamId,
      unacked: flight.next - flight.una,
      inFlight: flight.inFlight,
      cwnd: this.#cc.cwnd,
      peerWindow: this.#cc.peerWindow,
      rtoMs: this.#rtt.rtoMs,
      srttMs: this.#rtt.srttMs,
      pendingMessages: this.#outbox.pending,
    };
  }

  /**
   * Queues a message (copied) and sends what the windows allow; returns its local id, later
   * passed to `onDelivered` or `onUndelivered`. Throws `RangeError` when the message exceeds
   * `maxMessageSize` and `Error` when the channel is closed.
   */
  send(data: Uint8Array): number {
    if (this.#closed) throw new Error("Cannot send: the channel is closed");
    if (data.length > this.#maxMessageSize) {
      throw new RangeError(
        `Cannot send: message of ${data.length} bytes exceeds maxMessageSize ${this.#maxMessageSize}`,
      );
    }
    const id = this.#outbox.add(data);
    this.stats.messagesSent++;
    this.#pump(0);
    this.#flush();
    return id;
  }

  /**
   * Processes a segment from the transport. Malformed segments are counted in
   * `stats.malformed` and dropped; this never throws on bad input.
   */
  receive(segment: Uint8Array): void {
    if (this.#closed) return;
    let seg: Segment | undefined;
    try {
      seg = decodeSegment(segment);
    } catch (error) {
      if (!(error instanceof SegmentError)) throw error;
      this.stats.malformed++;
    }
    if (seg?.type === "data") this.#onData(seg);
    else if (seg?.type === "ack") this.#onAck(seg);
    this.#flush();
  }

  /** Runs the timers due at `now()`: give-up, retransmission, loss detection. */
  poll(): void {
    if (this.#closed) return;
    const now = this.#opts.now();
    const loss = this.#loss;
    const silentSince = loss.silentSince;
    if (silentSince !== undefined && now >= silentSince + this.#giveUpAfterMs) {
      this.stats.giveUps++;
      this.#abandonStream(`the peer acknowledged nothing new for ${this.#giveUpAfterMs} ms`);
    }
    const oldest = this.#outbox.oldestDeadline;
    if (oldest !== undefined && now >= oldest) {
      this.stats.giveUps++;
      this.#abandonStream(`not acknowledged within ${this.#maxDeliveryMs} ms`);
    }
    let probes = 0;
    if (loss.rtoDeadline !== undefined && now >= loss.rtoDeadline) {
      this.#onTimeout(now);
      probes = PROBES;
    }
    if (loss.lossDeadline !== undefined && now >= loss.lossDeadline) this.#detectLoss(now);
    if (loss.probeDeadline !== undefined && now >= loss.probeDeadline) this.#sendTailProbe(now);
    if (this.#delayedAck !== undefined && now >= this.#delayedAck.due) this.#sendAck();
    this.#pump(probes);
    this.#flush();
  }

  /** When `poll` should next be called, in `now()` ms; undefined when no timer is running. */
  nextDeadline(): number | undefined {
    if (this.#closed) return undefined;
    const loss = this.#loss;
    const silence = loss.silentSince === undefined
      ? undefined
      : loss.silentSince + this.#giveUpAfterMs;
    const times = [
      silence,
      this.#outbox.oldestDeadline,
      loss.rtoDeadline,
      loss.lossDeadline,
      loss.probeDeadline,
      this.#delayedAck?.due,
    ];
    const due = times.filter((t) => t !== undefined);
    return due.length > 0 ? Math.min(...due) : undefined;
  }

  /**
   * Reports every pending message undelivered ("channel closed") and stops the channel: later
   * `receive` and `poll` calls do nothing, `send` throws.
   */
  close(): void {
    if (!this.#closed) {
      this.#abandonStream("channel closed");
      this.#receiver.reset();
      this.#delayedAck = undefined;
      this.#closed = true;
    }
    this.#flush();
  }

  /**
   * Reports the queued events in order. Not re-entered: a callback that sends (an `onMessage`
   * handler answering) must not report the next message before it has returned, or a filled
   * hole's second message would overtake the first one's handling; the outer loop reports it.
   */
  #flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#events.length > 0) this.#events.shift()!();
    } finally {
      this.#flushing = false;
    }
  }

  // ---- Sending side ----

  /**
   * Sends lost segments again, then new ones, while the windows allow; after a timer expiry,
   * `probes` more whatever `cwnd`. The first unacknowledged segment, which holds up delivery, is
   * resent as soon as it is deemed lost even when `cwnd` is full (as RFC 6675 does on entering
   * recovery): otherwise a halved window would hold it back for a round trip.
   */
  #pump(probes: number): void {
    const flight = this.#flight;
    for (;; probes = Math.max(0, probes - 1)) {
      const open = probes > 0 || this.#cc.cwndOpen(flight.inFlight);
      const head = flight.head;
      if (head?.state === LOST) {
        this.#retransmit(head);
      } else if (open && flight.lost > 0) {
        this.#retransmit(flight.firstLost()!);
      } else if (
        open && this.#mayCutNew()
      ) {
        this.#sendNewSegment();
      } else if (probes > 0 && head?.state === OUTSTANDING) {
        // Nothing else to probe with: a second copy of the head still doubles the odds.
        this.stats.retransmitted++;
        this.#sendCopy(head, this.#opts.now());
      } else {
        break;
      }
    }
  }

  /** Whether a new segment may go: one waits, the peer's window has room, nothing holds it. */
  #mayCutNew(): boolean {
    const flight = this.#flight;
    return this.#outbox.hasUnsent && this.#cc.peerWindowOpen(flight.next - flight.una) &&
      !(this.#opts.holdNew?.() ?? false);
  }

  #retransmit(seg: OutSegment): void {
    this.stats.retransmitted++;
    const now = this.#opts.now();
    this.#flight.resend(seg, now);
    this.#emitData(seg, seg.tx, now);
  }

  #sendNewSegment(): void {
    const { payload, end } = this.#outbox.cut(
      this.#opts.now(),
      this.#flight.next,
      this.#maxSegmentSize - DATA_HEADER_SIZE,
    );
    const now = this.#opts.now();
    const seg = this.#flight.add(payload, end, now);
    this.stats.dataSent++;
    this.#emitData(seg, seg.tx, now);
  }

  /** Sends one more copy of `seg` under a new transmission number. */
  #sendCopy(seg: OutSegment, now: number): void {
    this.#emitData(seg, this.#flight.addCopy(seg, now), now);
  }

  /** Encodes and sends the copy `tx` of `seg`, recorded in the flight, sent at `now`. */
  #emitData(seg: OutSegment, tx: number, now: number): void {
    this.#loss.onTransmit(now);
    this.#opts.send(encodeSegment({
      type: "data",
      streamId: this.#flight.streamId,
      seq: seg.seq >>> 0,
      base: this.#flight.una >>> 0,
      tx: tx >>> 0,
      end: seg.end,
      payload: seg.payload,
    }));
  }

  #onAck(ack: AckSegment): void {
    const flight = this.#flight;
    if (ack.streamId !== flight.streamId) {
      this.stats.staleAcks++;
      return;
    }
    if (ack.reset) {
      this.stats.resetsReceived++;
      this.#abandonStream("the peer rejected the stream (it restarted or lost its receive state)");
      return;
    }
    const una = flight.una;
    const cum = unwrapSeq(ack.cumAck, una);
    const ranges = ack.sacks.map((r) => {
      const start = unwrapSeq(r.start, una);
      return { start, end: start + ((r.end - r.start) >>> 0) };
    });
    const echo = unwrapSeq(ack.echo, flight.txCount);
    if (cum > flight.next || ranges.some((r) => r.end > flight.next) || echo >= flight.txCount) {
      this.stats.invalidAcks++;
      return;
    }
    if (cum >= una) this.#cc.onPeerWindow(ack.window);

    const now = this.#opts.now();
    // The copy whose arrival triggered this ACK, unless its segment was acknowledged before.
    const trigger = flight.copy(echo);
    const { acked, latestTx } = flight.acknowledge(cum, ranges);
    if (trigger !== undefined) {
      const rttMs = now - trigger.sentAt;
      this.#rtt.sample(rttMs);
      this.#loss.onAck(latestTx, { tx: echo, rttMs, needless: echo < trigger.seg.tx });
    } else {
      this.#loss.onAck(latestTx, undefined);
    }
    if (acked > 0) {
      this.#cc.onAcked(acked);
      // Data got through, so the path works: drop the backoff (RFC 6298 section 5). Every ACK
      // measures the RTT, so the RTO cannot lag behind an RTT that grew.
      this.#rtt.resetBackoff();
      this.#loss.onProgress(now, flight.size > 0);
    }
    this.#detectLoss(now);
    for (const id of this.#outbox.delivered(flight.una)) {
      this.stats.messagesDelivered++;
      this.#events.push(() => this.#opts.onDelivered(id));
    }
    this.#pump(0);
  }

  /** RACK loss detection; loss found halves `cwnd` once per window of data. */
  #detectLoss(now: number): void {
    const flight = this.#flight;
    const lost = this.#loss.detect(now, flight.segments);
    for (const seg of lost) flight.markLost(seg);
    if (lost.length > 0 && this.#cc.onLoss(flight.una, flight.next)) this.stats.lossEvents++;
  }

  /**
   * Sends one probe whatever `cwnd`: a new segment if the peer's window allows, else another copy
   * of the last segment sent. Its ACK lets RACK find what was lost before it.
   */
  #sendTailProbe(now: number): void {
    this.#loss.onTailProbe();
    this.stats.tailProbes++;
    const flight = this.#flight;
    if (this.#mayCutNew()) {
      this.#sendNewSegment();
    } else {
      const last = flight.lastUnacked();
      if (last === undefined) return;
      this.stats.retransmitted++;
      this.#sendCopy(last, now);
    }
  }

  /** RFC 6298 section 5: back off, and resend (as `cwnd` allows) all that was in the network. */
  #onTimeout(now: number): void {
    this.stats.timeouts++;
    this.#rtt.backOff();
    this.#flight.markAllLost();
    this.#cc.onTimeout(this.#flight.next);
    this.#loss.onTimeout(now, this.#flight.size > 0);
  }

  /** Gives every pending message up and starts a new stream; RTT estimates are kept. */
  #abandonStream(reason: string): void {
    for (const id of this.#outbox.drain()) {
      this.stats.messagesUndelivered++;
      this.#events.push(() => this.#opts.onUndelivered(id, reason));
    }
    const old = this.#flight.streamId;
    let stream = this.#newStreamId() >>> 0;
    // The receiver must see a different id to start over; a repeat is unlikely but possible.
    if (stream === old) stream = (old + 1) >>> 0;
    this.#flight.reset(stream);
    this.#cc.reset();
    this.#loss.reset();
  }

  // ---- Receiving side ----

  #onData(seg: DataSegment): void {
    const duplicates = this.stats.duplicates;
    const { messages, ack } = this.#receiver.receive(seg);
    for (const message of messages) {
      this.stats.messagesReceived++;
      this.#events.push(() => this.#opts.onMessage(message));
    }
    const count = (this.#delayedAck?.count ?? 0) + 1;
    const now = this.#opts.now();
    const atOnce = ack.reset || seg.end || ack.sacks.length > 0 ||
      this.stats.duplicates > duplicates || count >= this.#ackEvery;
    this.#delayedAck = { ack, count, due: this.#delayedAck?.due ?? now + this.#ackDelayMs };
    if (atOnce) this.#sendAck();
  }

  /** Sends the ACK that waits: the latest, which covers every segment received before it. */
  #sendAck(): void {
    const { ack } = this.#delayedAck!;
    this.#delayedAck = undefined;
    if (ack.reset) this.stats.resetsSent++;
    this.stats.acksSent++;
    this.#opts.send(encodeSegment(ack));
  }
}
