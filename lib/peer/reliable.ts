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
 *   now: () => performance.now(),
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
  MAX_SACK_RANGES,
  type SackRange,
  type Segment,
  SegmentError,
  unwrapSeq,
} from "../protocol/segment.ts";

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
/** Smallest allowed receive window; senders assume it until the peer's first ACK. */
export const MIN_RECEIVE_WINDOW = 8;
/** Largest receive window (the ACK field is 16 bits). */
export const MAX_RECEIVE_WINDOW = 0xffff;

/** Initial congestion window in segments. */
const INITIAL_CWND = 8;
/** Largest reordering allowance for loss detection, in quarters of the min RTT. */
const MAX_REORDER_QUARTERS = 4;
/** How many old stream ids a receiver remembers in order to ignore their late segments. */
const RETIRED_STREAMS = 16;
/** Segments sent when the retransmission timer expires, whatever `cwnd` (RFC 9002 6.2.4). */
const PROBES = 2;
/** Clock granularity G of RFC 6298 in ms. */
const CLOCK_GRANULARITY_MS = 1;

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
  /** Give-ups: the peer was silent for `giveUpAfterMs` or a message outlived `maxDeliveryMs`. */
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

const OUTSTANDING = 0;
const LOST = 1;
const ACKED = 2;

interface OutSegment {
  seq: number;
  payload: Uint8Array;
  end: boolean;
  state: typeof OUTSTANDING | typeof LOST | typeof ACKED;
  /** Time of the latest transmission (a probe's second copy aside). */
  sentAt: number;
  /** Its transmission number: order among all transmissions of the stream. */
  tx: number;
  /** Transmission numbers of every copy sent, to forget them once the segment is acknowledged. */
  copies: number[];
}

/** A copy of an unacknowledged segment, found by the transmission number an ACK echoes. */
interface Copy {
  seg: OutSegment;
  sentAt: number;
}

/**
 * One peer's reliable message channel: see the module documentation for the rules.
 *
 * @example
 * ```ts
 * const toA: Uint8Array[] = [];
 * const toB: Uint8Array[] = [];
 * const common = { now: () => performance.now(), onUndelivered: () => {} };
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
  readonly #payloadSize: number;
  readonly #maxMessageSize: number;
  readonly #giveUpAfterMs: number;
  readonly #maxDeliveryMs: number;
  readonly #receiveWindow: number;
  readonly #minRto: number;
  readonly #maxRto: number;
  readonly #newStreamId: () => number;
  #closed = false;
  /** Callbacks not yet invoked, in order. */
  #events: (() => void)[] = [];
  #nextId = 1;

  // Sending side.
  #sndStream: number;
  /** Seq of the next new segment. */
  #sndNext = 0;
  /** Lowest seq not cumulatively acknowledged; `#flight[i].seq === #sndUna + i`. */
  #sndUna = 0;
  #flight: OutSegment[] = [];
  /** Messages not yet fully cut into segments; the first may be partly sent. */
  #unsent: OutMessage[] = [];
  /** Messages fully sent, awaiting the cumulative ack of their END segment. */
  #unacked: OutMessage[] = [];
  #inFlight = 0;
  #lost = 0;
  #cwnd = INITIAL_CWND;
  #ssthresh = Infinity;
  /** Loss detected while `#sndUna` is below this does not shrink `#cwnd` again. */
  #recoveryPoint = 0;
  #peerWindow = MIN_RECEIVE_WINDOW;
  #txCount = 0;
  /** Copies of the segments not yet acknowledged, by transmission number. */
  #copies = new Map<number, Copy>();
  /** RACK: order of the latest-sent transmission known to have arrived, and an RTT for it. */
  #rackTx = -1;
  #rackRtt: number | undefined;
  /** Since when the peer has acknowledged nothing new while data awaits acknowledgement. */
  #silentSince: number | undefined;
  #lossDeadline: number | undefined;
  /** When to send a tail loss probe; undefined while one is out or none is due. */
  #probeDeadline: number | undefined;
  #minRtt: number | undefined;
  /** Reordering allowance in quarters of the min RTT; grows when a resend proves needless. */
  #reorderQuarters = 1;
  #srtt: number | undefined;
  #rttvar = 0;
  /** RTO computed from the RTT estimates, before backoff. */
  #rto: number;
  /** Timer expiries since new data was last acknowledged: the RTO is doubled this many times. */
  #backoff = 0;
  /** Segments the next `#pump` may send beyond `#cwnd`: probes after a timer expiry. */
  #probes = 0;
  #rtoDeadline: number | undefined;

  // Receiving side.
  #rcvStream: number | undefined;
  /** Next expected seq: everything before it has been received. */
  #rcvNext = 0;
  /** Segments received beyond `#rcvNext`, by seq. */
  #outOfOrder = new Map<number, DataSegment>();
  /** In-order payloads of the message being reassembled. */
  #partial: Uint8Array[] = [];
  #partialSize = 0;
  #retired: number[] = [];

  /** Creates a channel. Throws `RangeError` for invalid options. */
  constructor(options: ReliableChannelOptions) {
    this.#opts = options;
    const maxSegmentSize = options.maxSegmentSize ?? DEFAULT_MAX_SEGMENT_SIZE;
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#giveUpAfterMs = options.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS;
    this.#maxDeliveryMs = options.maxDeliveryMs ??
      DEFAULT_MAX_DELIVERY_FACTOR * this.#giveUpAfterMs;
    this.#receiveWindow = options.receiveWindow ?? DEFAULT_RECEIVE_WINDOW;
    this.#minRto = options.minRtoMs ?? 200;
    this.#maxRto = options.maxRtoMs ?? DEFAULT_MAX_RTO_MS;
    this.#rto = options.initialRtoMs ?? 1000;
    if (!Number.isInteger(maxSegmentSize) || maxSegmentSize < MIN_SEGMENT_SIZE) {
      throw new RangeError(
        `Invalid maxSegmentSize ${maxSegmentSize}: must be an integer >= ${MIN_SEGMENT_SIZE}`,
      );
    }
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
      !Number.isInteger(this.#receiveWindow) || this.#receiveWindow < MIN_RECEIVE_WINDOW ||
      this.#receiveWindow > MAX_RECEIVE_WINDOW
    ) {
      throw new RangeError(
        `Invalid receiveWindow ${this.#receiveWindow}: must be an integer in ${MIN_RECEIVE_WINDOW}..${MAX_RECEIVE_WINDOW}`,
      );
    }
    if (!(this.#minRto > 0 && this.#minRto <= this.#rto && this.#rto <= this.#maxRto)) {
      throw new RangeError(
        `Invalid RTO bounds: need 0 < minRtoMs (${this.#minRto}) <= initialRtoMs (${this.#rto}) <= maxRtoMs (${this.#maxRto})`,
      );
    }
    // MIN_SEGMENT_SIZE leaves room for the largest ACK, so only DATA needs the size computed.
    this.#payloadSize = maxSegmentSize - DATA_HEADER_SIZE;
    this.#newStreamId = options.newStreamId ??
      (() => crypto.getRandomValues(new Uint32Array(1))[0]);
    this.#sndStream = this.#newStreamId() >>> 0;
  }

  /** True once {@linkcode ReliableChannel.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** A snapshot of the sending side. */
  get sendState(): SendState {
    return {
      streamId: this.#sndStream,
      unacked: this.#sndNext - this.#sndUna,
      inFlight: this.#inFlight,
      cwnd: this.#cwnd,
      peerWindow: this.#peerWindow,
      rtoMs: this.#backedOffRto(),
      srttMs: this.#srtt,
      pendingMessages: this.#unacked.length + this.#unsent.length,
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
    const id = this.#nextId++;
    this.stats.messagesSent++;
    this.#unsent.push({ id, data: data.slice(), offset: 0, lastSeq: -1, deadline: undefined });
    this.#pump();
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
    if (this.#silentSince !== undefined && now >= this.#silentSince + this.#giveUpAfterMs) {
      this.stats.giveUps++;
      this.#abandonStream(`the peer acknowledged nothing new for ${this.#giveUpAfterMs} ms`);
    }
    const oldest = this.#oldestDeadline();
    if (oldest !== undefined && now >= oldest) {
      this.stats.giveUps++;
      this.#abandonStream(`not acknowledged within ${this.#maxDeliveryMs} ms`);
    }
    if (this.#rtoDeadline !== undefined && now >= this.#rtoDeadline) this.#onTimeout(now);
    if (this.#lossDeadline !== undefined && now >= this.#lossDeadline) this.#detectLoss(now);
    if (this.#probeDeadline !== undefined && now >= this.#probeDeadline) this.#sendTailProbe(now);
    this.#pump();
    this.#flush();
  }

  /** When `poll` should next be called, in `now()` ms; undefined when no timer is running. */
  nextDeadline(): number | undefined {
    if (this.#closed) return undefined;
    const silence = this.#silentSince === undefined
      ? undefined
      : this.#silentSince + this.#giveUpAfterMs;
    const times = [
      silence,
      this.#oldestDeadline(),
      this.#rtoDeadline,
      this.#lossDeadline,
      this.#probeDeadline,
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
      this.#resetReceiveState();
      this.#closed = true;
    }
    this.#flush();
  }

  #flush(): void {
    while (this.#events.length > 0) this.#events.shift()!();
  }

  // ---- Sending side ----

  /**
   * Sends lost segments again, then new ones, while the windows allow; after a timer expiry,
   * `#probes` more whatever `#cwnd`. The first unacknowledged segment, which holds up delivery, is
   * resent as soon as it is deemed lost even when `#cwnd` is full (as RFC 6675 does on entering
   * recovery): otherwise a halved window would hold it back for a round trip.
   */
  #pump(): void {
    for (;; this.#probes = Math.max(0, this.#probes - 1)) {
      const open = this.#probes > 0 || this.#inFlight < Math.max(1, Math.floor(this.#cwnd));
      const head = this.#flight[0];
      if (head?.state === LOST) {
        this.#retransmit(head);
      } else if (open && this.#lost > 0) {
        this.#retransmit(this.#flight.find((s) => s.state === LOST)!);
      } else if (
        open && this.#unsent.length > 0 && this.#sndNext - this.#sndUna < this.#peerWindow
      ) {
        this.#sendNewSegment();
      } else if (this.#probes > 0 && head?.state === OUTSTANDING) {
        // Nothing else to probe with: a second copy of the head still doubles the odds.
        this.stats.retransmitted++;
        this.#sendCopy(head, this.#opts.now());
      } else {
        break;
      }
    }
    this.#probes = 0;
  }

  #retransmit(seg: OutSegment): void {
    this.#lost--;
    this.stats.retransmitted++;
    this.#transmit(seg);
  }

  #sendNewSegment(): void {
    const msg = this.#unsent[0];
    const length = Math.min(this.#payloadSize, msg.data.length - msg.offset);
    const payload = msg.data.subarray(msg.offset, msg.offset + length);
    msg.offset += length;
    msg.deadline ??= this.#opts.now() + this.#maxDeliveryMs;
    const seg: OutSegment = {
      seq: this.#sndNext++,
      payload,
      end: msg.offset === msg.data.length,
      state: OUTSTANDING,
      sentAt: 0,
      tx: 0,
      copies: [],
    };
    if (seg.end) {
      msg.lastSeq = seg.seq;
      this.#unsent.shift();
      this.#unacked.push(msg);
    }
    this.#flight.push(seg);
    this.stats.dataSent++;
    this.#transmit(seg);
  }

  #transmit(seg: OutSegment): void {
    const now = this.#opts.now();
    seg.state = OUTSTANDING;
    seg.sentAt = now;
    this.#inFlight++;
    seg.tx = this.#sendCopy(seg, now);
  }

  /** Sends a copy of `seg` under a new transmission number, which it returns. */
  #sendCopy(seg: OutSegment, now: number): number {
    const tx = this.#txCount++;
    seg.copies.push(tx);
    this.#copies.set(tx, { seg, sentAt: now });
    this.#rtoDeadline ??= now + this.#backedOffRto();
    if (this.#silentSince === undefined) {
      this.#silentSince = now;
      this.#armTailProbe(now);
    }
    this.#opts.send(encodeSegment({
      type: "data",
      streamId: this.#sndStream,
      seq: seg.seq >>> 0,
      base: this.#sndUna >>> 0,
      tx: tx >>> 0,
      end: seg.end,
      payload: seg.payload,
    }));
    return tx;
  }

  #onAck(ack: AckSegment): void {
    if (ack.streamId !== this.#sndStream) {
      this.stats.staleAcks++;
      return;
    }
    if (ack.reset) {
      this.stats.resetsReceived++;
      this.#abandonStream("the peer rejected the stream (it restarted or lost its receive state)");
      return;
    }
    const cum = unwrapSeq(ack.cumAck, this.#sndUna);
    const ranges = ack.sacks.map((r) => {
      const start = unwrapSeq(r.start, this.#sndUna);
      return { start, end: start + ((r.end - r.start) >>> 0) };
    });
    const echo = unwrapSeq(ack.echo, this.#txCount);
    if (cum > this.#sndNext || ranges.some((r) => r.end > this.#sndNext) || echo >= this.#txCount) {
      this.stats.invalidAcks++;
      return;
    }
    if (cum >= this.#sndUna) this.#peerWindow = Math.max(1, ack.window);

    const now = this.#opts.now();
    // The copy whose arrival triggered this ACK, unless its segment was acknowledged before.
    const trigger = this.#copies.get(echo);
    let newlyAcked = 0;
    /** The latest transmission this ACK shows to have arrived. */
    let rackTx = -1;
    const markAcked = (seg: OutSegment): void => {
      if (seg.state === ACKED) return;
      if (seg.state === OUTSTANDING) this.#inFlight--;
      else this.#lost--;
      seg.state = ACKED;
      newlyAcked++;
      for (const tx of seg.copies) this.#copies.delete(tx);
      // Of a segment sent more than once, which copy arrived is unknown (unless it is `trigger`).
      if (seg.copies.length === 1) rackTx = Math.max(rackTx, seg.tx);
    };
    for (let seq = this.#sndUna; seq < cum; seq++) markAcked(this.#flight[seq - this.#sndUna]);
    for (const r of ranges) {
      for (let seq = Math.max(r.start, this.#sndUna); seq < r.end; seq++) {
        markAcked(this.#flight[seq - this.#sndUna]);
      }
    }
    if (cum > this.#sndUna) {
      this.#flight.splice(0, cum - this.#sndUna);
      this.#sndUna = cum;
    }
    if (trigger !== undefined) {
      // The echo names the copy that arrived, so this RTT is exact even for a resent segment
      // (no Karn's rule needed) and never spans the loss of earlier ACKs.
      const rtt = now - trigger.sentAt;
      this.#updateRto(rtt);
      this.#rackRtt = rtt;
      rackTx = Math.max(rackTx, echo);
      // The segment was resent after the copy that arrived: the resend was needless, most likely
      // because that copy was reordered, so allow more reordering before calling a segment lost.
      if (echo < trigger.seg.tx) {
        this.#reorderQuarters = Math.min(this.#reorderQuarters + 1, MAX_REORDER_QUARTERS);
      }
    }
    if (this.#rackRtt !== undefined) this.#rackTx = Math.max(this.#rackTx, rackTx);
    if (newlyAcked > 0) {
      this.#cwnd += this.#cwnd < this.#ssthresh ? newlyAcked : newlyAcked / this.#cwnd;
      this.#cwnd = Math.min(this.#cwnd, this.#peerWindow);
      // Data got through, so the path works: drop the backoff (RFC 6298 section 5). Every ACK
      // measures the RTT, so the RTO cannot lag behind an RTT that grew.
      this.#backoff = 0;
      this.#rtoDeadline = this.#flight.length > 0 ? now + this.#backedOffRto() : undefined;
      this.#silentSince = this.#flight.length > 0 ? now : undefined;
      this.#probeDeadline = undefined;
      if (this.#flight.length > 0) this.#armTailProbe(now);
    }
    this.#detectLoss(now);
    while (this.#unacked.length > 0 && this.#unacked[0].lastSeq < this.#sndUna) {
      const { id } = this.#unacked.shift()!;
      this.stats.messagesDelivered++;
      this.#events.push(() => this.#opts.onDelivered(id));
    }
    this.#pump();
  }

  /**
   * Time-based loss detection after RACK (RFC 8985), simplified: a segment is lost when one sent
   * after it has arrived and it is overdue by more than a reordering allowance: min RTT / 4 at
   * first, growing by that step up to one min RTT each time a resend turns out needless.
   * Unlike a duplicate-ACK threshold this works with windows of 1-3 segments, which random loss
   * makes common, and detects lost retransmissions too.
   */
  #detectLoss(now: number): void {
    this.#lossDeadline = undefined;
    if (this.#rackRtt === undefined) return;
    const allowance = (this.#minRtt ?? this.#rackRtt) * this.#reorderQuarters / 4;
    let found = false;
    for (const seg of this.#flight) {
      if (seg.state !== OUTSTANDING || seg.tx > this.#rackTx) continue;
      const due = seg.sentAt + this.#rackRtt + allowance;
      if (now >= due) {
        seg.state = LOST;
        this.#inFlight--;
        this.#lost++;
        found = true;
      } else {
        this.#lossDeadline = Math.min(this.#lossDeadline ?? due, due);
      }
    }
    if (found && this.#sndUna >= this.#recoveryPoint) {
      this.stats.lossEvents++;
      this.#ssthresh = Math.max(Math.floor(this.#cwnd / 2), 2);
      this.#cwnd = this.#ssthresh;
      this.#recoveryPoint = this.#sndNext;
    }
  }

  /**
   * Called when a silence starts: arms the tail loss probe (RFC 8985 section 7) for 2 SRTT later,
   * unless the RTO fires first. With a window of 1-3 segments, which heavy loss makes common, no
   * later segment may be acknowledged to reveal a loss (RACK), and the RTO's floor is many RTTs.
   */
  #armTailProbe(now: number): void {
    const at = this.#srtt === undefined ? undefined : now + 2 * this.#srtt;
    const beforeRto = at !== undefined && this.#rtoDeadline !== undefined && at < this.#rtoDeadline;
    this.#probeDeadline = beforeRto ? at : undefined;
  }

  /**
   * Sends one probe whatever `#cwnd`: a new segment if the peer's window allows, else another copy
   * of the last segment sent. Its ACK lets RACK find what was lost before it.
   */
  #sendTailProbe(now: number): void {
    this.#probeDeadline = undefined;
    this.stats.tailProbes++;
    if (this.#unsent.length > 0 && this.#sndNext - this.#sndUna < this.#peerWindow) {
      this.#sendNewSegment();
    } else {
      const last = this.#flight.findLast((s) => s.state !== ACKED);
      if (last === undefined) return;
      this.stats.retransmitted++;
      this.#sendCopy(last, now);
    }
  }

  /** RFC 6298 section 2. */
  #updateRto(rtt: number): void {
    this.#minRtt = Math.min(this.#minRtt ?? rtt, rtt);
    if (this.#srtt === undefined) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    const rto = this.#srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.#rttvar);
    this.#rto = Math.min(this.#maxRto, Math.max(this.#minRto, rto));
  }

  #backedOffRto(): number {
    return Math.min(this.#rto * 2 ** this.#backoff, this.#maxRto);
  }

  /** RFC 6298 section 5: back off, and resend (as `#cwnd` allows) all that was in the network. */
  #onTimeout(now: number): void {
    this.stats.timeouts++;
    if (this.#backedOffRto() < this.#maxRto) this.#backoff++;
    for (const seg of this.#flight) {
      if (seg.state === OUTSTANDING) {
        seg.state = LOST;
        this.#inFlight--;
        this.#lost++;
      }
    }
    this.#ssthresh = Math.max(Math.floor(this.#cwnd / 2), 2);
    this.#cwnd = 1;
    this.#recoveryPoint = this.#sndNext;
    this.#probes = PROBES;
    this.#lossDeadline = undefined;
    this.#probeDeadline = undefined;
    this.#rtoDeadline = this.#flight.length > 0 ? now + this.#backedOffRto() : undefined;
  }

  /** When the oldest pending message outlives `maxDeliveryMs`. */
  #oldestDeadline(): number | undefined {
    return this.#unacked.length > 0 ? this.#unacked[0].deadline : this.#unsent[0]?.deadline;
  }

  /** Gives every pending message up and starts a new stream; RTT estimates are kept. */
  #abandonStream(reason: string): void {
    for (const { id } of [...this.#unacked, ...this.#unsent]) {
      this.stats.messagesUndelivered++;
      this.#events.push(() => this.#opts.onUndelivered(id, reason));
    }
    this.#unacked = [];
    this.#unsent = [];
    const old = this.#sndStream;
    this.#sndStream = this.#newStreamId() >>> 0;
    // The receiver must see a different id to start over; a repeat is unlikely but possible.
    if (this.#sndStream === old) this.#sndStream = (old + 1) >>> 0;
    this.#sndNext = 0;
    this.#sndUna = 0;
    this.#flight = [];
    this.#inFlight = 0;
    this.#lost = 0;
    this.#cwnd = INITIAL_CWND;
    this.#ssthresh = Infinity;
    this.#recoveryPoint = 0;
    this.#peerWindow = MIN_RECEIVE_WINDOW;
    this.#txCount = 0;
    this.#copies.clear();
    this.#rackTx = -1;
    this.#rackRtt = undefined;
    this.#silentSince = undefined;
    this.#lossDeadline = undefined;
    this.#probeDeadline = undefined;
    this.#rtoDeadline = undefined;
  }

  // ---- Receiving side ----

  #onData(seg: DataSegment): void {
    if (seg.streamId !== this.#rcvStream) {
      if (seg.base !== 0 || this.#retired.includes(seg.streamId)) {
        this.#rejectStream(seg.streamId, seg.tx);
        return;
      }
      if (this.#rcvStream !== undefined) this.#retire(this.#rcvStream);
      this.#resetReceiveState();
      this.#rcvStream = seg.streamId;
      this.stats.streamsAdopted++;
    }
    const seq = unwrapSeq(seg.seq, this.#rcvNext);
    if (unwrapSeq(seg.base, this.#rcvNext) > this.#rcvNext) {
      this.#rejectStream(seg.streamId, seg.tx);
      return;
    }
    if (seq < this.#rcvNext || this.#outOfOrder.has(seq)) {
      this.stats.duplicates++;
    } else if (seq - this.#rcvNext >= this.#receiveWindow) {
      this.stats.outOfWindow++;
    } else {
      this.#outOfOrder.set(seq, seg);
      let next = this.#outOfOrder.get(this.#rcvNext);
      while (next !== undefined) {
        this.#outOfOrder.delete(this.#rcvNext++);
        this.#partialSize += next.payload.length;
        if (this.#partialSize > this.#maxMessageSize) {
          this.#rejectStream(seg.streamId, seg.tx);
          return;
        }
        this.#partial.push(next.payload);
        if (next.end) this.#deliver();
        next = this.#outOfOrder.get(this.#rcvNext);
      }
    }
    this.#sendAck(seg.streamId, seq, seg.tx);
  }

  #deliver(): void {
    const message = new Uint8Array(this.#partialSize);
    let offset = 0;
    for (const part of this.#partial) {
      message.set(part, offset);
      offset += part.length;
    }
    this.#partial = [];
    this.#partialSize = 0;
    this.stats.messagesReceived++;
    this.#events.push(() => this.#opts.onMessage(message));
  }

  /**
   * ACKs the current stream; the SACK range holding `latest` goes first (RFC 2018). `echo` is the
   * transmission number of the segment that arrived.
   */
  #sendAck(streamId: number, latest: number, echo: number): void {
    const ranges: SackRange[] = [];
    for (const seq of [...this.#outOfOrder.keys()].sort((a, b) => a - b)) {
      const last = ranges.at(-1);
      if (last !== undefined && last.end === seq) last.end++;
      else ranges.push({ start: seq, end: seq + 1 });
    }
    const first = ranges.findIndex((r) => r.start <= latest && latest < r.end);
    if (first > 0) ranges.unshift(...ranges.splice(first, 1));
    this.#emitAck({
      type: "ack",
      streamId,
      reset: false,
      cumAck: this.#rcvNext >>> 0,
      window: this.#receiveWindow,
      echo,
      sacks: ranges.slice(0, MAX_SACK_RANGES).map((r) => ({
        start: r.start >>> 0,
        end: r.end >>> 0,
      })),
    });
  }

  #rejectStream(streamId: number, echo: number): void {
    if (streamId === this.#rcvStream) {
      this.#resetReceiveState();
      this.#rcvStream = undefined;
    }
    this.#retire(streamId);
    this.stats.resetsSent++;
    this.#emitAck({ type: "ack", streamId, reset: true, cumAck: 0, window: 0, echo, sacks: [] });
  }

  #emitAck(ack: AckSegment): void {
    this.stats.acksSent++;
    this.#opts.send(encodeSegment(ack));
  }

  #retire(streamId: number): void {
    if (this.#retired.includes(streamId)) return;
    this.#retired.push(streamId);
    if (this.#retired.length > RETIRED_STREAMS) this.#retired.shift();
  }

  #resetReceiveState(): void {
    this.#rcvNext = 0;
    this.#outOfOrder.clear();
    this.#partial = [];
    this.#partialSize = 0;
  }
}
