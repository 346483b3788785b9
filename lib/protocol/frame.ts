/**
 * Peer-to-peer frames: the binary datagrams peers send each other (and that the relay carries).
 * Every frame starts with a type byte below 0x20, which no text message of the coordinator's
 * protocol starts with, so one socket can tell the two apart by the first byte.
 * Layouts are in docs/PROTOCOL.md. Pure functions, no I/O.
 *
 * @example
 * ```ts
 * const bytes = encodeFrame({ type: "msg", from: "alice", id: 7, text: "hi" });
 * decodeFrame(bytes); // { type: "msg", from: "alice", id: 7, text: "hi" }
 * ```
 * @module
 */

/** Frame type bytes. */
export const FrameType = {
  MSG: 0x01,
  ACK: 0x02,
} as const;

/** A decoded peer frame. */
export type Frame =
  | { type: "msg"; from: string; id: number; text: string }
  | { type: "ack"; from: string; id: number };

/** Thrown by {@linkcode decodeFrame} on malformed input; the message says why. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** True when a datagram is a peer frame rather than coordinator text. */
export function isFrame(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] < 0x20;
}

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the text, not a marker to drop (round trips stay exact).
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function header(type: number, from: string, extra: number): { buf: Uint8Array; at: number } {
  const name = encoder.encode(from);
  if (name.length > 255) {
    throw new FrameError(
      `Cannot encode frame: sender name is ${name.length} bytes, the limit is 255`,
    );
  }
  const buf = new Uint8Array(2 + name.length + extra);
  buf[0] = type;
  buf[1] = name.length;
  buf.set(name, 2);
  return { buf, at: 2 + name.length };
}

/**
 * Encodes a frame. Throws {@linkcode FrameError} when the sender name is over 255 bytes or the id
 * is not a 32-bit unsigned integer (it would be silently wrapped otherwise).
 */
export function encodeFrame(frame: Frame): Uint8Array {
  if (!Number.isInteger(frame.id) || frame.id < 0 || frame.id > 0xffff_ffff) {
    throw new FrameError(`Cannot encode frame: id ${frame.id} is not a 32-bit unsigned integer`);
  }
  switch (frame.type) {
    case "msg": {
      const text = encoder.encode(frame.text);
      const { buf, at } = header(FrameType.MSG, frame.from, 4 + text.length);
      new DataView(buf.buffer).setUint32(at, frame.id);
      buf.set(text, at + 4);
      return buf;
    }
    case "ack": {
      const { buf, at } = header(FrameType.ACK, frame.from, 4);
      new DataView(buf.buffer).setUint32(at, frame.id);
      return buf;
    }
  }
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new FrameError(`Cannot decode frame: ${what} is not valid UTF-8`);
  }
}

/** Decodes a frame. Throws {@linkcode FrameError} (and nothing else) on malformed input. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length < 2) {
    throw new FrameError(`Cannot decode frame: ${bytes.length} bytes is too short`);
  }
  const nameEnd = 2 + bytes[1];
  if (bytes.length < nameEnd + 4) {
    throw new FrameError(`Cannot decode frame: ${bytes.length} bytes is too short for its header`);
  }
  const from = utf8(bytes.subarray(2, nameEnd), "sender name");
  const id = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(nameEnd);
  switch (bytes[0]) {
    case FrameType.MSG:
      return { type: "msg", from, id, text: utf8(bytes.subarray(nameEnd + 4), "message text") };
    case FrameType.ACK:
      if (bytes.length !== nameEnd + 4) throw new FrameError("Cannot decode ack: trailing bytes");
      return { type: "ack", from, id };
    default:
      throw new FrameError(`Cannot decode frame: unknown type 0x${bytes[0].toString(16)}`);
  }
}
