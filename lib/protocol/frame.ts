/**
 * Peer frames: the binary datagrams peers send each other, and the relay wrappers the
 * coordinator forwards. Every frame starts with a type byte below 0x20, which no text message of
 * the coordinator's protocol starts with, so one socket tells the two apart by the first byte.
 * Layouts are in docs/PROTOCOL.md §2. Pure functions, no I/O.
 *
 * ```
 * +------+---------+-------------------+-----------------------
 * | type | namelen | name (UTF-8)      | body
 * | 1 B  | 1 B     | namelen bytes     | to the end of the datagram
 * +------+---------+-------------------+-----------------------
 * ```
 * `name` is the sender, except in RELAY (the recipient) — and in RELAYED it is the sender as the
 * coordinator vouches for it.
 *
 * @example
 * ```ts
 * const bytes = encodeFrame({ type: "data", from: "alice", payload: new Uint8Array([1, 2]) });
 * decodeFrame(bytes).type; // "data"
 * ```
 * @module
 */

/** Frame type bytes. */
export const FrameType = {
  PROBE: 0x10,
  PROBE_ACK: 0x11,
  HS1: 0x12,
  HS2: 0x13,
  HS3: 0x14,
  DATA: 0x15,
  RELAY: 0x18,
  RELAYED: 0x19,
} as const;

/** Length of a probe's truncated HMAC-SHA256. */
export const PROBE_MAC_LENGTH = 16;

/** A frame to encode. */
export type OutFrame =
  | { type: "probe" | "probe-ack"; from: string; txid: number; mac: Uint8Array }
  | { type: "hs1" | "hs2" | "hs3" | "data"; from: string; payload: Uint8Array }
  | { type: "relay"; to: string; inner: Uint8Array }
  | { type: "relayed"; from: string; inner: Uint8Array };

/**
 * A decoded frame. Handshake and data frames also carry their `header` (type, name length and
 * name: the associated data that DATA encryption authenticates) and the `raw` datagram.
 */
export type Frame =
  | { type: "probe" | "probe-ack"; from: string; txid: number; mac: Uint8Array }
  | {
    type: "hs1" | "hs2" | "hs3" | "data";
    from: string;
    payload: Uint8Array;
    header: Uint8Array;
    raw: Uint8Array;
  }
  | { type: "relay"; to: string; inner: Uint8Array }
  | { type: "relayed"; from: string; inner: Uint8Array };

/**
 * Thrown by {@linkcode decodeFrame} on malformed input, and by {@linkcode encodeFrame} and
 * {@linkcode frameHeader} for a frame they cannot encode; the message says why.
 */
export class FrameError extends Error {
  override name = "FrameError";
}

/** True when a datagram is a peer frame rather than coordinator text. */
export function isFrame(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] < 0x20;
}

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the name, not a marker to drop (round trips stay exact).
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const TYPE_OF: Record<OutFrame["type"], number> = {
  "probe": FrameType.PROBE,
  "probe-ack": FrameType.PROBE_ACK,
  "hs1": FrameType.HS1,
  "hs2": FrameType.HS2,
  "hs3": FrameType.HS3,
  "data": FrameType.DATA,
  "relay": FrameType.RELAY,
  "relayed": FrameType.RELAYED,
};

/** The first bytes of a frame: type, name length, name. Throws {@linkcode FrameError}. */
export function frameHeader(type: number, name: string): Uint8Array {
  // The encoder would silently turn a lone surrogate into U+FFFD: another name than the one given.
  if (!name.isWellFormed()) {
    throw new FrameError(
      "Cannot encode frame: the name has a lone surrogate, which UTF-8 cannot encode",
    );
  }
  const bytes = encoder.encode(name);
  if (bytes.length > 255) {
    throw new FrameError(`Cannot encode frame: name is ${bytes.length} bytes, the limit is 255`);
  }
  const header = new Uint8Array(2 + bytes.length);
  header[0] = type;
  header[1] = bytes.length;
  header.set(bytes, 2);
  return header;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Encodes a frame. Throws {@linkcode FrameError} for a name over 255 bytes or with a lone
 * surrogate, a txid that is not a u32, or a MAC of the wrong length.
 */
export function encodeFrame(frame: OutFrame): Uint8Array {
  const type = TYPE_OF[frame.type];
  switch (frame.type) {
    case "probe":
    case "probe-ack": {
      if (!Number.isInteger(frame.txid) || frame.txid < 0 || frame.txid > 0xffff_ffff) {
        throw new FrameError(`Cannot encode ${frame.type}: txid ${frame.txid} is not a u32`);
      }
      if (frame.mac.length !== PROBE_MAC_LENGTH) {
        throw new FrameError(
          `Cannot encode ${frame.type}: MAC is ${frame.mac.length} bytes, not ${PROBE_MAC_LENGTH}`,
        );
      }
      const body = new Uint8Array(4 + PROBE_MAC_LENGTH);
      new DataView(body.buffer).setUint32(0, frame.txid);
      body.set(frame.mac, 4);
      return concat(frameHeader(type, frame.from), body);
    }
    case "relay":
      return concat(frameHeader(type, frame.to), frame.inner);
    case "relayed":
      return concat(frameHeader(type, frame.from), frame.inner);
    default:
      return concat(frameHeader(type, frame.from), frame.payload);
  }
}

/** Decodes a frame. Throws {@linkcode FrameError} (and nothing else) on malformed input. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length < 2) {
    throw new FrameError(`Cannot decode frame: ${bytes.length} bytes is shorter than a header`);
  }
  const nameEnd = 2 + bytes[1];
  if (bytes.length < nameEnd) {
    throw new FrameError(`Cannot decode frame: ${bytes.length} bytes is too short for its name`);
  }
  let name: string;
  try {
    name = decoder.decode(bytes.subarray(2, nameEnd));
  } catch {
    throw new FrameError("Cannot decode frame: the name is not valid UTF-8");
  }
  const body = bytes.subarray(nameEnd);
  switch (bytes[0]) {
    case FrameType.PROBE:
    case FrameType.PROBE_ACK: {
      if (body.length !== 4 + PROBE_MAC_LENGTH) {
        throw new FrameError(
          `Cannot decode probe: body is ${body.length} bytes, expected ${4 + PROBE_MAC_LENGTH}`,
        );
      }
      return {
        type: bytes[0] === FrameType.PROBE ? "probe" : "probe-ack",
        from: name,
        txid: new DataView(body.buffer, body.byteOffset, 4).getUint32(0),
        mac: body.slice(4),
      };
    }
    case FrameType.HS1:
    case FrameType.HS2:
    case FrameType.HS3:
    case FrameType.DATA: {
      const type = (["hs1", "hs2", "hs3", "data"] as const)[bytes[0] - FrameType.HS1];
      return {
        type,
        from: name,
        payload: body,
        header: bytes.subarray(0, nameEnd),
        raw: bytes,
      };
    }
    case FrameType.RELAY:
      return { type: "relay", to: name, inner: body };
    case FrameType.RELAYED:
      return { type: "relayed", from: name, inner: body };
    default:
      throw new FrameError(`Cannot decode frame: unknown type 0x${bytes[0].toString(16)}`);
  }
}
