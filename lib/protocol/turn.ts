/**
 * TURN's wire format (RFC 8656 on RFC 8489's STUN messages), for a client: the 20-byte header
 * (method, class, magic cookie, transaction id), the attributes a TURN client sends and reads
 * (USERNAME, REALM, NONCE, MESSAGE-INTEGRITY, ERROR-CODE, LIFETIME, REQUESTED-TRANSPORT,
 * XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, CHANNEL-NUMBER, DATA), the long-term
 * credential key, and ChannelData framing. Pure functions: bytes ↔ messages, no I/O, so that
 * what a TURN server (or anyone spoofing one) sends can be fuzzed.
 *
 * Built on `stun.ts`, the one STUN message layer: the header, the attribute framing, FINGERPRINT
 * (checked when present), MESSAGE-INTEGRITY and the XOR address form are its; this module maps
 * TURN's methods and attributes onto it. Unknown attributes are skipped (a comprehension-required
 * one in a response is no reason for a client to fail); every length is checked, and a malformed
 * message throws {@linkcode TurnCodecError}.
 *
 * @example
 * ```ts
 * const request = encodeTurnMessage({
 *   method: "allocate",
 *   cls: "request",
 *   transactionId: newTransactionId(),
 *   attributes: { requestedTransport: UDP_TRANSPORT },
 * });
 * const back = decodeTurnMessage(request);
 * ```
 * @module
 */
import { md5 } from "@noble/hashes/legacy.js";
import type { Endpoint } from "./endpoint.ts";
import {
  Attr,
  decodeAddress,
  decodeStun,
  encodeAddress,
  encodeStun,
  errorCode,
  HEADER_LENGTH,
  integrityMatches,
  integrityOffset,
  MAGIC_COOKIE,
  MAX_MESSAGE_BYTES,
  type StunAttribute,
  type StunClass,
  StunError,
  type StunMessage,
} from "./stun.ts";

export { MAGIC_COOKIE };
export { formatIp, ipBytes } from "../net/ip_bytes.ts";
/** REQUESTED-TRANSPORT for UDP. */
export const UDP_TRANSPORT = 17;
/** Channel numbers a client may bind (RFC 8656 §12). */
export const MIN_CHANNEL = 0x4000;
export const MAX_CHANNEL = 0x4fff;

/** The TURN methods (and STUN's Binding). */
export type TurnMethod =
  | "binding"
  | "allocate"
  | "refresh"
  | "send"
  | "data"
  | "create-permission"
  | "channel-bind";

/** A message's class. */
export type TurnClass = StunClass;

const METHODS: Record<TurnMethod, number> = {
  binding: 0x001,
  allocate: 0x003,
  refresh: 0x004,
  send: 0x006,
  data: 0x007,
  "create-permission": 0x008,
  "channel-bind": 0x009,
};

const ATTR = {
  username: Attr.USERNAME,
  integrity: Attr.MESSAGE_INTEGRITY,
  errorCode: Attr.ERROR_CODE,
  channel: 0x000c,
  lifetime: 0x000d,
  peer: 0x0012,
  data: 0x0013,
  realm: 0x0014,
  nonce: 0x0015,
  relayed: 0x0016,
  requestedTransport: 0x0019,
  mapped: Attr.XOR_MAPPED_ADDRESS,
} as const;

/** The attributes this codec knows; each at most once (the first wins when decoding). */
export interface TurnAttributes {
  username?: string;
  realm?: string;
  nonce?: string;
  errorCode?: { code: number; reason: string };
  /** Seconds. */
  lifetime?: number;
  requestedTransport?: number;
  relayed?: Endpoint;
  mapped?: Endpoint;
  peer?: Endpoint;
  channel?: number;
  data?: Uint8Array;
}

/** A STUN/TURN message. */
export interface TurnMessage {
  method: TurnMethod;
  cls: TurnClass;
  /** 12 bytes. */
  transactionId: Uint8Array;
  attributes: TurnAttributes;
}

/** A decoded message, and where its MESSAGE-INTEGRITY is (to check it with the key). */
export interface DecodedTurnMessage extends TurnMessage {
  /** Offset of the MESSAGE-INTEGRITY attribute, if the message has one. */
  integrityAt?: number;
}

/** Bytes that are not a valid STUN/TURN message or ChannelData frame; says why. */
export class TurnCodecError extends Error {
  override name = "TurnCodecError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A random 12-byte transaction id. */
export function newTransactionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(12));
}

/**
 * The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2; the
 * strings as given, no SASLprep: ours are ASCII).
 *
 * @example
 * ```ts
 * const key = longTermKey("1700000000:alice", "p2p", "c2VjcmV0…");
 * ```
 */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return md5(encoder.encode(`${username}:${realm}:${password}`));
}

/**
 * Encodes a message; with `key`, appends MESSAGE-INTEGRITY (HMAC-SHA1 over the message, its
 * length counting the integrity attribute). Throws `RangeError` on a value out of range.
 *
 * @example
 * ```ts
 * encodeTurnMessage({ method: "refresh", cls: "request", transactionId: newTransactionId(),
 *   attributes: { lifetime: 0 } });
 * ```
 */
export function encodeTurnMessage(message: TurnMessage, key?: Uint8Array): Uint8Array {
  const id = message.transactionId;
  const parts: StunAttribute[] = [];
  const a = message.attributes;
  const add = (type: number, value: Uint8Array) => parts.push({ type, value });
  const text = (type: number, value: string, max: number) => {
    const bytes = encoder.encode(value);
    if (bytes.length > max) throw new RangeError(`attribute 0x${type.toString(16)} too long`);
    add(type, bytes);
  };
  if (a.requestedTransport !== undefined) {
    add(ATTR.requestedTransport, new Uint8Array([a.requestedTransport, 0, 0, 0]));
  }
  if (a.lifetime !== undefined) add(ATTR.lifetime, u32(a.lifetime));
  if (a.channel !== undefined) {
    if (!(a.channel >= MIN_CHANNEL && a.channel <= MAX_CHANNEL)) {
      throw new RangeError(`channel 0x${a.channel.toString(16)} is not in 0x4000..0x4fff`);
    }
    add(ATTR.channel, new Uint8Array([a.channel >> 8, a.channel & 0xff, 0, 0]));
  }
  const xor = { xor: { transactionId: id } };
  if (a.peer) add(ATTR.peer, encodeAddress(a.peer, xor));
  if (a.relayed) add(ATTR.relayed, encodeAddress(a.relayed, xor));
  if (a.mapped) add(ATTR.mapped, encodeAddress(a.mapped, xor));
  if (a.data) add(ATTR.data, a.data);
  if (a.errorCode) {
    const { code, reason } = a.errorCode;
    if (!(code >= 300 && code <= 699)) throw new RangeError(`error code ${code} not in 300..699`);
    add(ATTR.errorCode, errorCode(code, reason));
  }
  if (a.username !== undefined) text(ATTR.username, a.username, 512);
  if (a.realm !== undefined) text(ATTR.realm, a.realm, 763);
  if (a.nonce !== undefined) text(ATTR.nonce, a.nonce, 763);
  return encodeStun({
    method: METHODS[message.method],
    class: message.cls,
    transactionId: id,
    classic: false,
    attributes: parts,
  }, { integrityKey: key });
}

/**
 * Whether `bytes` look like a STUN message (first two bits 0, the magic cookie), as opposed to
 * ChannelData or anything else sharing the socket.
 */
export function isTurnMessage(bytes: Uint8Array): boolean {
  return bytes.length >= HEADER_LENGTH && (bytes[0] & 0xc0) === 0 &&
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4) === MAGIC_COOKIE;
}

/**
 * Decodes a STUN/TURN message. Throws {@linkcode TurnCodecError} on anything malformed: a short
 * header, a length that does not match, a truncated attribute, a bad address or UTF-8.
 *
 * @example
 * ```ts
 * const msg = decodeTurnMessage(bytes);
 * if (msg.cls === "error") console.log(msg.attributes.errorCode);
 * ```
 */
export function decodeTurnMessage(bytes: Uint8Array): DecodedTurnMessage {
  if (bytes.length < HEADER_LENGTH) {
    throw new TurnCodecError(`${bytes.length} bytes: shorter than a header`);
  }
  if (new DataView(bytes.buffer, bytes.byteOffset).getUint32(4) !== MAGIC_COOKIE) {
    throw new TurnCodecError("no STUN magic cookie");
  }
  let stun: StunMessage;
  try {
    stun = decodeStun(bytes, { maxBytes: MAX_MESSAGE_BYTES });
  } catch (err) {
    if (err instanceof StunError) throw new TurnCodecError(err.message);
    throw err;
  }
  const method = (Object.keys(METHODS) as TurnMethod[]).find((k) => METHODS[k] === stun.method);
  if (method === undefined) throw new TurnCodecError(`unknown method 0x${hex(stun.method)}`);
  const { transactionId } = stun;
  const attributes: TurnAttributes = {};
  const message: DecodedTurnMessage = { method, cls: stun.class, transactionId, attributes };
  const seen = new Set<number>();
  for (const { type, value } of stun.attributes) {
    if (type === ATTR.integrity) {
      if (value.length !== 20) throw new TurnCodecError("MESSAGE-INTEGRITY is not 20 bytes");
      message.integrityAt = integrityOffset(stun);
      // Only FINGERPRINT (checked by decodeStun) may follow it (RFC 8489 §14.5).
      break;
    }
    if (!seen.has(type)) {
      seen.add(type);
      readAttribute(type, value, transactionId, attributes);
    }
  }
  return message;
}

/**
 * Checks the MESSAGE-INTEGRITY of a decoded message with `key` (constant time). False when the
 * message has none.
 *
 * @example
 * ```ts
 * const msg = decodeTurnMessage(bytes);
 * if (!checkIntegrity(bytes, msg, key)) throw new Error("forged");
 * ```
 */
export function checkIntegrity(
  bytes: Uint8Array,
  message: DecodedTurnMessage,
  key: Uint8Array,
): boolean {
  const at = message.integrityAt;
  return at !== undefined && integrityMatches(bytes, at, key);
}

/**
 * A ChannelData frame (RFC 8656 §12.4): channel number, length, data, padded to 4 bytes.
 *
 * @example
 * ```ts
 * encodeChannelData(0x4000, new Uint8Array([1, 2, 3])); // 8 bytes: 40 00 00 03 01 02 03 00
 * ```
 */
export function encodeChannelData(channel: number, data: Uint8Array): Uint8Array {
  if (!(channel >= MIN_CHANNEL && channel <= MAX_CHANNEL)) {
    throw new RangeError(`channel 0x${hex(channel)} is not in 0x4000..0x4fff`);
  }
  if (data.length > 0xffff) throw new RangeError("ChannelData longer than 65535 bytes");
  const out = new Uint8Array(4 + ((data.length + 3) & ~3));
  out[0] = channel >> 8;
  out[1] = channel & 0xff;
  out[2] = data.length >> 8;
  out[3] = data.length & 0xff;
  out.set(data, 4);
  return out;
}

/** Whether `bytes` look like ChannelData (first byte 0x40..0x4f). */
export function isChannelData(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] >= 0x40 && bytes[0] <= 0x4f;
}

/**
 * Decodes a ChannelData frame; the padding is optional (over UDP it may be left out). Throws
 * {@linkcode TurnCodecError} on a wrong channel range or a length past the datagram.
 *
 * @example
 * ```ts
 * decodeChannelData(encodeChannelData(0x4001, new Uint8Array([7]))); // { channel: 0x4001, data }
 * ```
 */
export function decodeChannelData(bytes: Uint8Array): { channel: number; data: Uint8Array } {
  if (!isChannelData(bytes)) throw new TurnCodecError("not a ChannelData frame");
  const channel = (bytes[0] << 8) | bytes[1];
  const length = (bytes[2] << 8) | bytes[3];
  if (4 + length > bytes.length) {
    throw new TurnCodecError(`ChannelData of ${length} bytes in a ${bytes.length}-byte datagram`);
  }
  if (bytes.length > 4 + ((length + 3) & ~3)) {
    throw new TurnCodecError("ChannelData followed by more than its padding");
  }
  return { channel, data: bytes.slice(4, 4 + length) };
}

/**
 * Standard base64 (with padding): how TURN REST passwords are written.
 *
 * @example
 * ```ts
 * encodeBase64(new Uint8Array([255])); // "/w=="
 * ```
 */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function u32(n: number): Uint8Array {
  if (!(Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) {
    throw new RangeError(`${n} is not a 32-bit unsigned integer`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function readAttribute(
  type: number,
  value: Uint8Array,
  id: Uint8Array,
  into: TurnAttributes,
): void {
  const text = (what: string) => {
    try {
      return decoder.decode(value);
    } catch {
      throw new TurnCodecError(`${what} is not UTF-8`);
    }
  };
  const exact = (n: number, what: string) => {
    if (value.length !== n) throw new TurnCodecError(`${what} is ${value.length} bytes, not ${n}`);
  };
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  switch (type) {
    case ATTR.username:
      into.username = text("USERNAME");
      return;
    case ATTR.realm:
      into.realm = text("REALM");
      return;
    case ATTR.nonce:
      into.nonce = text("NONCE");
      return;
    case ATTR.errorCode: {
      if (value.length < 4) throw new TurnCodecError("ERROR-CODE shorter than 4 bytes");
      const code = (value[2] & 0x07) * 100 + value[3];
      if (code < 300 || code > 699 || value[3] > 99) {
        throw new TurnCodecError(`ERROR-CODE ${code} is not in 300..699`);
      }
      let reason: string;
      try {
        reason = decoder.decode(value.subarray(4));
      } catch {
        throw new TurnCodecError("ERROR-CODE reason is not UTF-8");
      }
      into.errorCode = { code, reason };
      return;
    }
    case ATTR.lifetime:
      exact(4, "LIFETIME");
      into.lifetime = view.getUint32(0);
      return;
    case ATTR.requestedTransport:
      exact(4, "REQUESTED-TRANSPORT");
      into.requestedTransport = value[0];
      return;
    case ATTR.channel: {
      exact(4, "CHANNEL-NUMBER");
      into.channel = view.getUint16(0);
      return;
    }
    case ATTR.data:
      into.data = value; // decodeStun made it a copy of its own
      return;
    case ATTR.peer:
      into.peer = xorAddress(value, id, "XOR-PEER-ADDRESS");
      return;
    case ATTR.relayed:
      into.relayed = xorAddress(value, id, "XOR-RELAYED-ADDRESS");
      return;
    case ATTR.mapped:
      into.mapped = xorAddress(value, id, "XOR-MAPPED-ADDRESS");
      return;
  }
}

function xorAddress(value: Uint8Array, id: Uint8Array, what: string): Endpoint {
  const ep = decodeAddress(value, { xor: { transactionId: id }, portZero: true });
  if (ep === undefined) throw new TurnCodecError(`${what} is not an IPv4 or IPv6 address`);
  return ep;
}

function hex(n: number): string {
  return n.toString(16).padStart(4, "0");
}
