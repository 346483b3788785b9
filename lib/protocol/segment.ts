/**
 * Codec for the segments of the reliable-delivery layer (`lib/reliable.ts`): DATA segments carry a
 * piece of a message, ACK segments acknowledge them. Pure functions, no I/O.
 *
 * All integers are big-endian. Sequence numbers count segments (not bytes), start at 0 in each
 * stream and wrap modulo 2^32; {@linkcode unwrapSeq} recovers the full value.
 *
 * DATA segment: 18-byte header, then the payload (the rest of the segment).
 *
 * ```text
 * offset size field
 *      0    1 type      = 0x01
 *      1    1 flags     bit 0 END: last segment of a message; bits 1-7 must be 0
 *      2    4 stream id  random, chosen by the sender for each new stream
 *      6    4 seq        sequence number of this segment in the stream
 *     10    4 base       the sender's lowest unacknowledged seq when this copy was sent
 *     14    4 tx         transmission number of this copy: counts every DATA segment sent on the
 *                        stream, first sends and resends alike, from 0 (modulo 2^32)
 *     18    n payload    0..n bytes; may be empty only when END is set
 * ```
 *
 * ACK segment: 17-byte header, then `count` SACK ranges of 8 bytes; nothing may follow.
 *
 * ```text
 * offset size field
 *      0    1 type      = 0x02
 *      1    1 flags     bit 0 RESET: the receiver will not accept this stream; bits 1-7 must be 0
 *      2    4 stream id  the stream being acknowledged (the data sender's stream id)
 *      6    4 cum ack    next expected seq: every seq before it has been received
 *     10    2 window     receive window in segments, counted from cum ack
 *     12    4 echo       tx of the DATA segment whose arrival triggered this ACK, so that its
 *                        sender knows which copy arrived (an exact RTT sample, as RFC 7323 RTTM)
 *     16    1 count      number of SACK ranges, 0..4
 *     17  8*k ranges     per range: u32 start, u32 end (exclusive); seqs received beyond cum ack
 * ```
 *
 * @example
 * ```ts
 * const bytes = encodeSegment({
 *   type: "data", streamId: 7, seq: 0, base: 0, tx: 0, end: true, payload: new Uint8Array([104]),
 * });
 * const seg = decodeSegment(bytes); // { type: "data", streamId: 7, seq: 0, ... }
 * ```
 * @module
 */

/** Type byte of a DATA segment. */
export const TYPE_DATA = 0x01;
/** Type byte of an ACK segment. */
export const TYPE_ACK = 0x02;
/** DATA flag: this segment is the last one of its message. */
export const FLAG_END = 0x01;
/** ACK flag: the receiver rejects the stream; the sender must abandon it. */
export const FLAG_RESET = 0x01;
/** Size in bytes of a DATA segment without payload. */
export const DATA_HEADER_SIZE = 18;
/** Size in bytes of an ACK segment without SACK ranges. */
export const ACK_HEADER_SIZE = 17;
/** Size in bytes of one SACK range. */
export const SACK_RANGE_SIZE = 8;
/** Most SACK ranges one ACK may carry. */
export const MAX_SACK_RANGES = 4;
/** Size in bytes of the largest ACK segment. */
export const MAX_ACK_SIZE: number = ACK_HEADER_SIZE + MAX_SACK_RANGES * SACK_RANGE_SIZE;

/** A piece of a message. */
export interface DataSegment {
  /** Discriminant. */
  type: "data";
  /** Random 32-bit id of the sender's current stream. */
  streamId: number;
  /** Sequence number modulo 2^32. */
  seq: number;
  /** The sender's lowest unacknowledged seq (modulo 2^32) when this copy was sent. */
  base: number;
  /** Transmission number of this copy among all DATA sent on the stream, modulo 2^32. */
  tx: number;
  /** True on the last segment of a message. */
  end: boolean;
  /** Message bytes carried by this segment (a copy when decoded). */
  payload: Uint8Array;
}

/** A run of received seqs, `start` inclusive to `end` exclusive, both modulo 2^32. */
export interface SackRange {
  /** First seq of the run. */
  start: number;
  /** Seq just after the run. */
  end: number;
}

/** Acknowledgement of the DATA segments of one stream. */
export interface AckSegment {
  /** Discriminant. */
  type: "ack";
  /** The stream being acknowledged. */
  streamId: number;
  /** True when the receiver rejects the stream (it lost its state or saw a protocol violation). */
  reset: boolean;
  /** Next expected seq modulo 2^32; every seq before it has been received. */
  cumAck: number;
  /** How many segments from `cumAck` on the receiver will buffer (0..65535). */
  window: number;
  /** The `tx` of the DATA segment whose arrival triggered this ACK. */
  echo: number;
  /** Up to {@linkcode MAX_SACK_RANGES} runs of seqs received beyond `cumAck`. */
  sacks: SackRange[];
}

/** Any segment. */
export type Segment = DataSegment | AckSegment;

/**
 * Thrown by {@linkcode decodeSegment} for malformed bytes and by {@linkcode encodeSegment} for
 * fields out of range; the message says what and why.
 */
export class SegmentError extends Error {
  /** Always "SegmentError". */
  override name = "SegmentError";
}

/**
 * Maps a 32-bit wire sequence number to the full sequence number nearest to `reference`
 * (within -2^31..2^31-1 of it), so that counters never visibly wrap.
 *
 * @example
 * ```ts
 * unwrapSeq(5, 0xffff_fffe); // 0x1_0000_0005
 * unwrapSeq(0xffff_ffff, 0); // -1 (just before the reference: an old segment)
 * ```
 */
export function unwrapSeq(wire: number, reference: number): number {
  return reference + ((wire - reference) | 0);
}

/**
 * Encodes a segment. Throws {@linkcode SegmentError} when a field is out of range.
 *
 * @example
 * ```ts
 * encodeSegment({
 *   type: "ack", streamId: 7, reset: false, cumAck: 1, window: 64, echo: 0, sacks: [],
 * });
 * ```
 */
export function encodeSegment(seg: Segment): Uint8Array {
  checkU32("stream id", seg.streamId);
  if (seg.type === "data") {
    checkU32("seq", seg.seq);
    checkU32("base", seg.base);
    checkU32("tx", seg.tx);
    if (!seg.end && seg.payload.length === 0) {
      throw new SegmentError("Cannot encode DATA segment: a segment without END needs a payload");
    }
    const out = new Uint8Array(DATA_HEADER_SIZE + seg.payload.length);
    const view = new DataView(out.buffer);
    out[0] = TYPE_DATA;
    out[1] = seg.end ? FLAG_END : 0;
    view.setUint32(2, seg.streamId);
    view.setUint32(6, seg.seq);
    view.setUint32(10, seg.base);
    view.setUint32(14, seg.tx);
    out.set(seg.payload, DATA_HEADER_SIZE);
    return out;
  }
  checkU32("cum ack", seg.cumAck);
  checkU32("echo", seg.echo);
  if (!Number.isInteger(seg.window) || seg.window < 0 || seg.window > 0xffff) {
    throw new SegmentError(`Cannot encode ACK segment: window ${seg.window} is not a u16`);
  }
  if (seg.sacks.length > MAX_SACK_RANGES) {
    throw new SegmentError(
      `Cannot encode ACK segment: ${seg.sacks.length} SACK ranges exceed the maximum of ${MAX_SACK_RANGES}`,
    );
  }
  const out = new Uint8Array(ACK_HEADER_SIZE + seg.sacks.length * SACK_RANGE_SIZE);
  const view = new DataView(out.buffer);
  out[0] = TYPE_ACK;
  out[1] = seg.reset ? FLAG_RESET : 0;
  view.setUint32(2, seg.streamId);
  view.setUint32(6, seg.cumAck);
  view.setUint16(10, seg.window);
  view.setUint32(12, seg.echo);
  out[16] = seg.sacks.length;
  seg.sacks.forEach((range, i) => {
    checkU32("SACK start", range.start);
    checkU32("SACK end", range.end);
    if (!validRange(range)) {
      throw new SegmentError(
        `Cannot encode ACK segment: SACK range ${range.start}-${range.end} is empty or longer than 2^31`,
      );
    }
    view.setUint32(ACK_HEADER_SIZE + i * SACK_RANGE_SIZE, range.start);
    view.setUint32(ACK_HEADER_SIZE + i * SACK_RANGE_SIZE + 4, range.end);
  });
  return out;
}

/**
 * Decodes a segment. Throws {@linkcode SegmentError} (and nothing else) on any malformed input.
 *
 * @example
 * ```ts
 * const bytes = new Uint8Array([2, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 64, 0, 0, 0, 3, 0]);
 * const seg = decodeSegment(bytes);
 * if (seg.type === "ack") console.log(seg.cumAck); // 1
 * ```
 */
export function decodeSegment(bytes: Uint8Array): Segment {
  if (bytes.length < 2) {
    throw new SegmentError(`Cannot decode segment: length ${bytes.length} is shorter than 2 bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = bytes[0];
  const flags = bytes[1];
  if (type === TYPE_DATA) {
    if (bytes.length < DATA_HEADER_SIZE) {
      throw new SegmentError(
        `Cannot decode DATA segment: length ${bytes.length} is shorter than the ${DATA_HEADER_SIZE}-byte header`,
      );
    }
    if ((flags & ~FLAG_END) !== 0) {
      throw new SegmentError(`Cannot decode DATA segment: unknown flags 0x${hex(flags)}`);
    }
    const end = (flags & FLAG_END) !== 0;
    if (!end && bytes.length === DATA_HEADER_SIZE) {
      throw new SegmentError("Cannot decode DATA segment: a segment without END needs a payload");
    }
    return {
      type: "data",
      streamId: view.getUint32(2),
      seq: view.getUint32(6),
      base: view.getUint32(10),
      tx: view.getUint32(14),
      end,
      payload: bytes.slice(DATA_HEADER_SIZE),
    };
  }
  if (type === TYPE_ACK) {
    if (bytes.length < ACK_HEADER_SIZE) {
      throw new SegmentError(
        `Cannot decode ACK segment: length ${bytes.length} is shorter than the ${ACK_HEADER_SIZE}-byte header`,
      );
    }
    if ((flags & ~FLAG_RESET) !== 0) {
      throw new SegmentError(`Cannot decode ACK segment: unknown flags 0x${hex(flags)}`);
    }
    const count = bytes[16];
    if (count > MAX_SACK_RANGES) {
      throw new SegmentError(
        `Cannot decode ACK segment: ${count} SACK ranges exceed the maximum of ${MAX_SACK_RANGES}`,
      );
    }
    const expected = ACK_HEADER_SIZE + count * SACK_RANGE_SIZE;
    if (bytes.length !== expected) {
      throw new SegmentError(
        `Cannot decode ACK segment: length ${bytes.length} does not match ${expected} for ${count} SACK ranges`,
      );
    }
    const sacks: SackRange[] = [];
    for (let i = 0; i < count; i++) {
      const range = {
        start: view.getUint32(ACK_HEADER_SIZE + i * SACK_RANGE_SIZE),
        end: view.getUint32(ACK_HEADER_SIZE + i * SACK_RANGE_SIZE + 4),
      };
      if (!validRange(range)) {
        throw new SegmentError(
          `Cannot decode ACK segment: SACK range ${range.start}-${range.end} is empty or longer than 2^31`,
        );
      }
      sacks.push(range);
    }
    return {
      type: "ack",
      streamId: view.getUint32(2),
      reset: (flags & FLAG_RESET) !== 0,
      cumAck: view.getUint32(6),
      window: view.getUint16(10),
      echo: view.getUint32(12),
      sacks,
    };
  }
  throw new SegmentError(`Cannot decode segment: unknown type 0x${hex(type)}`);
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new SegmentError(`Cannot encode segment: ${name} ${value} is not a u32`);
  }
}

/** A range must hold 1..2^31-1 seqs (modulo 2^32), or its direction would be ambiguous. */
function validRange(range: SackRange): boolean {
  const length = (range.end - range.start) >>> 0;
  return length > 0 && length < 0x8000_0000;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
