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
 * coordinator vouches for it. Handshake frames end in MACs keyed to the introduction's token
 * (HS1: `mac1` and `mac2`, HS2 and HS3: `mac1`), so that a peer spends no key exchange on a
 * stranger's frame; COOKIE answers an HS1 under load (docs/PROTOCOL.md §2.3).
 *
 * @example
 * ```ts
 * const bytes = encodeFrame({ type: "data", from: "alice", payload: new Uint8Array([1, 2]) });
 * decodeFrame(bytes).type; // "data"
 * ```
 * @module
 */

import type { Endpoint } from "./endpoint.ts";
import { formatIp, ipBytes } from "../net/ip_bytes.ts";

/** Frame type bytes. */
export const FrameType = {
  PROBE: 0x10,
  PROBE_ACK: 0x11,
  HS1: 0x12,
  HS2: 0x13,
  HS3: 0x14,
  DATA: 0x15,
  COOKIE: 0x16,
  RELAY: 0x18,
  RELAYED: 0x19,
  TURN_CANDIDATE: 0x1a,
} as const;

/** Length of a probe's truncated HMAC-SHA256. */
export const PROBE_MAC_LENGTH = 16;
/** Length of each MAC that ends a handshake frame (`mac1`, `mac2`) and of a COOKIE's MAC. */
export const HANDSHAKE_MAC_LENGTH = 16;
/** Length of the cookie a COOKIE frame carries. */
export const COOKIE_LENGTH = 16;

/** A handshake frame type. */
export type HandshakeType = "hs1" | "hs2" | "hs3";

/** A frame to encode. */
export type OutFrame =
  | { type: "probe" | "probe-ack"; from: string; txid: number; mac: Uint8Array }
  | { type: "hs1"; from: string; payload: Uint8Array; mac1: Uint8Array; mac2: Uint8Array }
  | { type: "hs2" | "hs3"; from: string; payload: Uint8Array; mac1: Uint8Array }
  | { type: "data"; from: string; payload: Uint8Array }
  | { type: "cookie"; from: string; cookie: Uint8Array; mac: Uint8Array }
  | { type: "relay"; to: string; inner: Uint8Array }
  | { type: "relayed"; from: string; inner: Uint8Array }
  | { type: "turn-candidate"; from: string; endpoint: Endpoint; mac: Uint8Array };

/**
 * A decoded frame. Handshake and data frames also carry their `header` (type, name length and
 * name: the associated data that DATA encryption authenticates) and the `raw` datagram; a
 * handshake frame's `payload` is the Noise message alone, and `signed` the bytes its `mac1`
 * covers (header and Noise message; `mac2` covers those and `mac1`).
 */
export type Frame =
  | { type: "probe" | "probe-ack"; from: string; txid: number; mac: Uint8Array }
  | {
    type: "hs1";
    from: string;
    payload: Uint8Array;
    mac1: Uint8Array;
    mac2: Uint8Array;
    signed: Uint8Array;
    header: Uint8Array;
    raw: Uint8Array;
  }
  | {
    type: "hs2" | "hs3";
    from: string;
    payload: Uint8Array;
    mac1: Uint8Array;
    signed: Uint8Array;
    header: Uint8Array;
    raw: Uint8Array;
  }
  | { type: "data"; from: string; payload: Uint8Array; header: Uint8Array; raw: Uint8Array }
  | { type: "cookie"; from: string; cookie: Uint8Array; mac: Uint8Array }
  | { type: "relay"; to: string; inner: Uint8Array }
  | { type: "relayed"; from: string; inner: Uint8Array }
  /** The sender's relayed address on its TURN server; `signed`: what `mac` covers. */
  | {
    type: "turn-candidate";
    from: string;
    endpoint: Endpoint;
    mac: Uint8Array;
    signed: Uint8Array;
  };

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
  "cookie": FrameType.COOKIE,
  "relay": FrameType.RELAY,
  "relayed": FrameType.RELAYED,
  "turn-candidate": FrameType.TURN_CANDIDATE,
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

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The bytes a handshake frame's `mac1` covers: its header and Noise message, as the frame will
 * start. Throws {@linkcode FrameError} as {@linkcode frameHeader} does.
 *
 * @example
 * ```ts
 * const signed = handshakeSigned("hs1", "alice", noiseMessage);
 * const mac1 = hmac(sha256, token, signed).subarray(0, HANDSHAKE_MAC_LENGTH);
 * ```
 */
export function handshakeSigned(
  type: HandshakeType,
  from: string,
  payload: Uint8Array,
): Uint8Array {
  return concat(frameHeader(TYPE_OF[type], from), payload);
}

function checkLength(what: string, bytes: Uint8Array, length: number): void {
  if (bytes.length !== length) {
    throw new FrameError(`Cannot encode ${what}: it is ${bytes.length} bytes, not ${length}`);
  }
}

/**
 * Encodes a frame. Throws {@linkcode FrameError} for a name over 255 bytes or with a lone
 * surrogate, a txid that is not a u32, or a MAC or cookie of the wrong length.
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
    case "hs1":
      checkLength("hs1 mac1", frame.mac1, HANDSHAKE_MAC_LENGTH);
      checkLength("hs1 mac2", frame.mac2, HANDSHAKE_MAC_LENGTH);
      return concat(frameHeader(type, frame.from), frame.payload, frame.mac1, frame.mac2);
    case "hs2":
    case "hs3":
      checkLength(`${frame.type} mac1`, frame.mac1, HANDSHAKE_MAC_LENGTH);
      return concat(frameHeader(type, frame.from), frame.payload, frame.mac1);
    case "cookie":
      checkLength("cookie", frame.cookie, COOKIE_LENGTH);
      checkLength("cookie mac", frame.mac, HANDSHAKE_MAC_LENGTH);
      return concat(frameHeader(type, frame.from), frame.cookie, frame.mac);
    case "relay":
      return concat(frameHeader(type, frame.to), frame.inner);
    case "relayed":
      return concat(frameHeader(type, frame.from), frame.inner);
    case "data":
      return concat(frameHeader(type, frame.from), frame.payload);
    case "turn-candidate":
      checkLength("turn-candidate mac", frame.mac, PROBE_MAC_LENGTH);
      return concat(turnCandidateSigned(frame.from, frame.endpoint), frame.mac);
  }
}

/**
 * What a TURN_CANDIDATE's MAC covers: its header (type, sender) and body up to the MAC: the port
 * (u16) and the address (4 or 16 bytes).
 *
 * @example
 * ```ts
 * turnCandidateSigned("alice", { host: "198.51.100.3", port: 49152 }); // 13 bytes
 * ```
 */
export function turnCandidateSigned(from: string, endpoint: Endpoint): Uint8Array {
  let ip: Uint8Array;
  try {
    ip = ipBytes(endpoint.host);
  } catch (err) {
    throw new FrameError(`Cannot encode turn-candidate: ${(err as Error).message}`);
  }
  if (!(Number.isInteger(endpoint.port) && endpoint.port > 0 && endpoint.port <= 65535)) {
    throw new FrameError(`Cannot encode turn-candidate: port ${endpoint.port} is not in 1..65535`);
  }
  const body = new Uint8Array(2 + ip.length);
  body[0] = endpoint.port >> 8;
  body[1] = endpoint.port & 0xff;
  body.set(ip, 2);
  return concat(frameHeader(FrameType.TURN_CANDIDATE, from), body);
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
    case FrameType.HS3: {
      const type = (["hs1", "hs2", "hs3"] as const)[bytes[0] - FrameType.HS1];
      const macs = (type === "hs1" ? 2 : 1) * HANDSHAKE_MAC_LENGTH;
      if (body.length < macs) {
        throw new FrameError(
          `Cannot decode ${type}: body is ${body.length} bytes, shorter than its ${macs} of MACs`,
        );
      }
      const signedEnd = bytes.length - macs;
      const common = {
        from: name,
        payload: bytes.subarray(nameEnd, signedEnd),
        mac1: bytes.slice(signedEnd, signedEnd + HANDSHAKE_MAC_LENGTH),
        signed: bytes.subarray(0, signedEnd),
        header: bytes.subarray(0, nameEnd),
        raw: bytes,
      };
      return type === "hs1"
        ? { type, ...common, mac2: bytes.slice(signedEnd + HANDSHAKE_MAC_LENGTH) }
        : { type, ...common };
    }
    case FrameType.DATA:
      return {
        type: "data",
        from: name,
        payload: body,
        header: bytes.subarray(0, nameEnd),
        raw: bytes,
      };
    case FrameType.COOKIE: {
      if (body.length !== COOKIE_LENGTH + HANDSHAKE_MAC_LENGTH) {
        throw new FrameError(
          `Cannot decode cookie: body is ${body.length} bytes, expected ${
            COOKIE_LENGTH + HANDSHAKE_MAC_LENGTH
          }`,
        );
      }
      return {
        type: "cookie",
        from: name,
        cookie: body.slice(0, COOKIE_LENGTH),
        mac: body.slice(COOKIE_LENGTH),
      };
    }
    case FrameType.RELAY:
      return { type: "relay", to: name, inner: body };
    case FrameType.RELAYED:
      return { type: "relayed", from: name, inner: body };
    case FrameType.TURN_CANDIDATE: {
      const size = body.length - 2 - PROBE_MAC_LENGTH;
      const port = (body[0] << 8) | body[1];
      if ((size !== 4 && size !== 16) || port === 0) {
        throw new FrameError(
          `Cannot decode turn-candidate: body is ${body.length} bytes, not a port, an IPv4 or ` +
            `IPv6 address and a MAC`,
        );
      }
      const end = bytes.length - PROBE_MAC_LENGTH;
      return {
        type: "turn-candidate",
        from: name,
        endpoint: { host: formatIp(body.subarray(2, 2 + size)), port },
        mac: bytes.slice(end),
        signed: bytes.slice(0, end),
      };
    }
    default:
      throw new FrameError(`Cannot decode frame: unknown type 0x${bytes[0].toString(16)}`);
  }
}
