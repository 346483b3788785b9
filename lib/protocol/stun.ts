/**
 * STUN (RFC 8489) as far as a Binding server and client need it, and the classic RFC 3489 form
 * older clients still send (no magic cookie; `stun` of Debian's stun-client): the header, the
 * attributes, MAPPED-ADDRESS and XOR-MAPPED-ADDRESS (IPv4 and IPv6), SOFTWARE, FINGERPRINT
 * (CRC-32 xor 0x5354554e), MESSAGE-INTEGRITY (HMAC-SHA1), ERROR-CODE and UNKNOWN-ATTRIBUTES. It is
 * the one STUN message layer: TURN's codec (`turn.ts`) encodes and decodes its messages with
 * {@linkcode encodeStun} and {@linkcode decodeStun} and its addresses with
 * {@linkcode encodeAddress} and {@linkcode decodeAddress}. The coordinator answers Binding
 * requests on its UDP port with {@linkcode answerBinding}; a client asks any STUN server where it
 * sees us with {@linkcode encodeBindingRequest} and {@linkcode parseBindingAnswer}. A STUN
 * message starts with a byte 0x00 or 0x01 (the two top bits of its type are zero, and Binding is
 * method 1), which neither the coordinator's text nor a peer frame (0x10–0x19) starts with, so one
 * socket tells the three apart by the first byte. Separate from the seed codec: a binary format of
 * its own, with its own rules. Pure functions, no I/O; checked against RFC 5769's test vectors.
 *
 * @example
 * ```ts
 * const txid = crypto.getRandomValues(new Uint8Array(12));
 * const request = encodeBindingRequest({ transactionId: txid });
 * // The server, seeing it from 192.0.2.1:32853:
 * const answer = answerBinding(request, { host: "192.0.2.1", port: 32853 }, { software: "p2p" });
 * parseBindingAnswer(answer!, txid); // { host: "192.0.2.1", port: 32853 }
 * ```
 * @module
 */
import { equalBytes } from "../bytes.ts";
import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { formatIp, ipBytes } from "../net/ip_bytes.ts";
import type { Endpoint } from "./endpoint.ts";

/** The magic cookie of RFC 5389 and later; classic RFC 3489 messages have random bytes there. */
export const MAGIC_COOKIE = 0x2112a442;
/** Length of the STUN header. */
export const HEADER_LENGTH = 20;
/** Longest STUN message either side reads (a datagram that fits any path's MTU). */
export const MAX_STUN_BYTES = 1280;
/** The Binding method. */
export const BINDING = 0x001;
/** The longest message the header's 16-bit length can describe (TURN's DATA can fill it). */
export const MAX_MESSAGE_BYTES = HEADER_LENGTH + 0xffff;

/** Attribute types this module knows. */
export const Attr = {
  MAPPED_ADDRESS: 0x0001,
  /** RFC 3489/5780: asks the server to answer from another address or port. */
  CHANGE_REQUEST: 0x0003,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  XOR_MAPPED_ADDRESS: 0x0020,
  /** ICE (RFC 8445): a connectivity check's priority, and its nomination. */
  PRIORITY: 0x0024,
  USE_CANDIDATE: 0x0025,
  /** RFC 5780: asks the server to answer to another port (a reflection: never honoured). */
  RESPONSE_PORT: 0x0027,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
  ICE_CONTROLLED: 0x8029,
  ICE_CONTROLLING: 0x802a,
} as const;

/** The four classes of a STUN message. */
export type StunClass = "request" | "indication" | "success" | "error";

/** One attribute, its value without padding. */
export interface StunAttribute {
  type: number;
  value: Uint8Array;
}

/** A decoded STUN message. */
export interface StunMessage {
  method: number;
  class: StunClass;
  /**
   * 12 bytes; a classic (RFC 3489) message has no magic cookie and a 16-byte id (the cookie's 4
   * bytes and these 12).
   */
  transactionId: Uint8Array;
  /** True for an RFC 3489 message: no magic cookie, no XOR-MAPPED-ADDRESS, no FINGERPRINT. */
  classic: boolean;
  attributes: StunAttribute[];
}

/** Thrown when bytes are not a well-formed STUN message; the message says why. */
export class StunError extends Error {
  override name = "StunError";
}

const CLASS_BITS: Record<StunClass, number> = {
  request: 0x000,
  indication: 0x010,
  success: 0x100,
  error: 0x110,
};
const FINGERPRINT_XOR = 0x5354554e;
/** MESSAGE-INTEGRITY's attribute header and its 20-byte HMAC-SHA1. */
const INTEGRITY_LENGTH = 24;

/** Options of {@linkcode decodeStun}. */
export interface DecodeStunOptions {
  /** Longest message accepted; {@linkcode MAX_STUN_BYTES} unless said (TURN allows more). */
  maxBytes?: number;
}

/** Options of {@linkcode encodeStun}. */
export interface EncodeStunOptions {
  /** End the message with FINGERPRINT (not for classic messages). */
  fingerprint?: boolean;
  /** Add MESSAGE-INTEGRITY (HMAC-SHA1 with this key) after the attributes, before FINGERPRINT. */
  integrityKey?: Uint8Array;
}

/**
 * Whether `bytes` look like a STUN message, cheaply: at least a header, a first byte of 0x00 or
 * 0x01 (a method below 0x80, Binding's among them: never a peer frame's type, 0x10–0x19, nor
 * text), and a length that is a multiple of 4 and matches the datagram. What it lets through
 * still goes through {@linkcode decodeStun}.
 *
 * @example
 * ```ts
 * if (isStun(datagram)) handleStun(datagram);
 * ```
 */
export function isStun(bytes: Uint8Array): boolean {
  if (bytes.length < HEADER_LENGTH || bytes[0] > 0x01) return false;
  const length = bytes[2] << 8 | bytes[3];
  return length % 4 === 0 && length + HEADER_LENGTH === bytes.length;
}

/**
 * Decodes a STUN message. Checks the header, every attribute's length against the message, and
 * FINGERPRINT when present (it must be last and match). Attributes after MESSAGE-INTEGRITY other
 * than FINGERPRINT are dropped, as RFC 8489 §14.5 says. Throws {@linkcode StunError}; a message
 * over `options.maxBytes` ({@linkcode MAX_STUN_BYTES}) is one.
 *
 * @example
 * ```ts
 * const msg = decodeStun(datagram);
 * if (msg.class === "request" && msg.method === BINDING) console.log(msg.attributes.length);
 * ```
 */
export function decodeStun(bytes: Uint8Array, options: DecodeStunOptions = {}): StunMessage {
  const maxBytes = options.maxBytes ?? MAX_STUN_BYTES;
  if (bytes.length > maxBytes) {
    throw new StunError(`Not a STUN message: ${bytes.length} bytes is over ${maxBytes}`);
  }
  if (!isStun(bytes)) {
    throw new StunError("Not a STUN message: bad header (type bits, or length and size differ)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(0);
  const classBits = type & 0x110;
  const method = (type & 0x000f) | (type & 0x00e0) >> 1 | (type & 0x3e00) >> 2;
  const cls = (Object.keys(CLASS_BITS) as StunClass[]).find((c) => CLASS_BITS[c] === classBits)!;
  const classic = view.getUint32(4) !== MAGIC_COOKIE;
  const attributes: StunAttribute[] = [];
  let at = HEADER_LENGTH;
  let integrity = false;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new StunError("Bad STUN message: a truncated attribute");
    const attrType = view.getUint16(at);
    const length = view.getUint16(at + 2);
    const end = at + 4 + length;
    if (end > bytes.length) {
      throw new StunError(
        `Bad STUN message: attribute 0x${hex4(attrType)} of ${length} bytes overruns the message`,
      );
    }
    const value = bytes.slice(at + 4, end);
    if (attrType === Attr.FINGERPRINT) {
      if (classic) throw new StunError("Bad STUN message: FINGERPRINT without the magic cookie");
      if (length !== 4 || end !== bytes.length) {
        throw new StunError("Bad STUN message: FINGERPRINT is not the last 8 bytes");
      }
      if (view.getUint32(at + 4) !== fingerprintOf(bytes.subarray(0, at))) {
        throw new StunError("Bad STUN message: FINGERPRINT does not match");
      }
    }
    if (!integrity || attrType === Attr.FINGERPRINT) attributes.push({ type: attrType, value });
    if (attrType === Attr.MESSAGE_INTEGRITY) integrity = true;
    at = end + pad(length);
  }
  if (at !== bytes.length) throw new StunError("Bad STUN message: the last attribute is unpadded");
  const transactionId = bytes.slice(classic ? 4 : 8, HEADER_LENGTH);
  return { method, class: cls, transactionId, classic, attributes };
}

/**
 * Encodes a STUN message; with `integrityKey`, MESSAGE-INTEGRITY follows the attributes, and with
 * `fingerprint`, a FINGERPRINT attribute ends it (neither for classic messages). Throws
 * `RangeError` on a transaction id of the wrong length, an attribute value over 65,535 bytes, or
 * a message over {@linkcode MAX_MESSAGE_BYTES}.
 *
 * @example
 * ```ts
 * const txid = crypto.getRandomValues(new Uint8Array(12));
 * encodeStun({ method: BINDING, class: "request", transactionId: txid, classic: false,
 *   attributes: [] }, { fingerprint: true }).length; // 28
 * ```
 */
export function encodeStun(msg: StunMessage, options: EncodeStunOptions = {}): Uint8Array {
  const idLength = msg.classic ? 16 : 12;
  if (msg.transactionId.length !== idLength) {
    throw new RangeError(`Cannot encode STUN: the transaction id must be ${idLength} bytes`);
  }
  const fingerprint = (options.fingerprint ?? false) && !msg.classic;
  const key = msg.classic ? undefined : options.integrityKey;
  let size = HEADER_LENGTH + (fingerprint ? 8 : 0) + (key ? INTEGRITY_LENGTH : 0);
  for (const a of msg.attributes) {
    if (a.value.length > 0xffff) {
      throw new RangeError(`Cannot encode STUN: attribute 0x${hex4(a.type)} is over 65535 bytes`);
    }
    size += 4 + a.value.length + pad(a.value.length);
  }
  if (size > MAX_MESSAGE_BYTES) {
    throw new RangeError(`Cannot encode STUN: ${size} bytes is over ${MAX_MESSAGE_BYTES}`);
  }
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  const m = msg.method;
  view.setUint16(0, (m & 0x000f) | (m & 0x0070) << 1 | (m & 0x0f80) << 2 | CLASS_BITS[msg.class]);
  view.setUint16(2, size - HEADER_LENGTH);
  if (!msg.classic) view.setUint32(4, MAGIC_COOKIE);
  bytes.set(msg.transactionId, msg.classic ? 4 : 8);
  let at = HEADER_LENGTH;
  for (const a of msg.attributes) {
    view.setUint16(at, a.type);
    view.setUint16(at + 2, a.value.length);
    bytes.set(a.value, at + 4);
    at += 4 + a.value.length + pad(a.value.length);
  }
  if (key) {
    // The HMAC covers the message up to the attribute, its length counting the attribute; the
    // length field already counts FINGERPRINT too, so it is set to end here while hashing.
    view.setUint16(2, at + INTEGRITY_LENGTH - HEADER_LENGTH);
    view.setUint16(at, Attr.MESSAGE_INTEGRITY);
    view.setUint16(at + 2, 20);
    bytes.set(hmac(sha1, key, bytes.subarray(0, at)), at + 4);
    view.setUint16(2, size - HEADER_LENGTH);
    at += INTEGRITY_LENGTH;
  }
  if (fingerprint) {
    view.setUint16(at, Attr.FINGERPRINT);
    view.setUint16(at + 2, 4);
    view.setUint32(at + 4, fingerprintOf(bytes.subarray(0, at)));
  }
  return bytes;
}

/** The value of the first attribute of this type, if any. */
export function attribute(msg: StunMessage, type: number): Uint8Array | undefined {
  return msg.attributes.find((a) => a.type === type)?.value;
}

/**
 * Where the MESSAGE-INTEGRITY attribute of a message {@linkcode decodeStun} read starts in its
 * bytes, if it has one: the attributes before it are kept in order, so their lengths say.
 *
 * @example
 * ```ts
 * const msg = decodeStun(bytes);
 * const at = integrityOffset(msg);
 * if (at !== undefined && !integrityMatches(bytes, at, key)) throw new Error("forged");
 * ```
 */
export function integrityOffset(msg: StunMessage): number | undefined {
  let at = HEADER_LENGTH;
  for (const a of msg.attributes) {
    if (a.type === Attr.MESSAGE_INTEGRITY) return at;
    at += 4 + padded(a.value.length);
  }
  return undefined;
}

/**
 * Whether the 20-byte MESSAGE-INTEGRITY at offset `at` of `bytes` (see
 * {@linkcode integrityOffset}) is the HMAC-SHA1 with `key` of what precedes it, the length field
 * counting up to and including the attribute (RFC 8489 §14.5). Constant time.
 *
 * @example
 * ```ts
 * integrityMatches(bytes, integrityOffset(decodeStun(bytes))!, key); // true or false
 * ```
 */
export function integrityMatches(bytes: Uint8Array, at: number, key: Uint8Array): boolean {
  if (at + INTEGRITY_LENGTH > bytes.length) return false;
  const copy = bytes.slice(0, at);
  new DataView(copy.buffer).setUint16(2, at + INTEGRITY_LENGTH - HEADER_LENGTH);
  const want = hmac(sha1, key, copy);
  const got = bytes.subarray(at + 4, at + INTEGRITY_LENGTH);
  let diff = 0;
  for (let i = 0; i < 20; i++) diff |= want[i] ^ got[i];
  return diff === 0;
}

/**
 * Encodes an address attribute's value: MAPPED-ADDRESS (plain) or, with `xor`, the XOR form
 * (XOR-MAPPED-ADDRESS, and TURN's XOR-PEER-ADDRESS and XOR-RELAYED-ADDRESS: xored with the magic
 * cookie and, for IPv6, the transaction id). A zone (`%eth0`) is left out: the peer cannot use it.
 * Throws `RangeError` (an `AddressError`) on a host that is not an IP address or a port
 * outside 0..65535.
 */
export function encodeAddress(
  ep: Endpoint,
  options: { xor?: { transactionId: Uint8Array } } = {},
): Uint8Array {
  if (!(Number.isInteger(ep.port) && ep.port >= 0 && ep.port <= 65535)) {
    throw new RangeError(`Cannot encode a STUN address: port ${ep.port} is not in 0..65535`);
  }
  const ip = ipBytes(ep.host.replace(/%.*$/, ""));
  const value = new Uint8Array(4 + ip.length);
  value[1] = ip.length === 4 ? 1 : 2;
  value[2] = ep.port >> 8;
  value[3] = ep.port & 0xff;
  value.set(ip, 4);
  if (options.xor) xorAddress(value, options.xor.transactionId);
  return value;
}

/**
 * Decodes an address attribute's value (see {@linkcode encodeAddress}); undefined when it is
 * malformed (a wrong length or family), or has port 0 unless `portZero` (TURN's XOR-PEER-ADDRESS
 * may: a permission is for an IP address, whatever the port).
 */
export function decodeAddress(
  value: Uint8Array,
  options: { xor?: { transactionId: Uint8Array }; portZero?: boolean } = {},
): Endpoint | undefined {
  const family = value.length === 8 ? 1 : value.length === 20 ? 2 : 0;
  if (family === 0 || value[1] !== family) return undefined;
  const copy = value.slice();
  if (options.xor) xorAddress(copy, options.xor.transactionId);
  const port = copy[2] << 8 | copy[3];
  if (port === 0 && !options.portZero) return undefined;
  return { host: formatIp(copy.subarray(4)), port };
}

/**
 * Builds a Binding request; `padTo` pads it with a SOFTWARE attribute of spaces to at least that
 * many bytes, so that a server that never answers with more than it was sent (ours) can send its
 * whole answer. FINGERPRINT ends it.
 *
 * @example
 * ```ts
 * encodeBindingRequest({ transactionId: txid, padTo: 96 }).length; // 96
 * ```
 */
export function encodeBindingRequest(
  options: { transactionId: Uint8Array; software?: string; padTo?: number },
): Uint8Array {
  const software = options.software ?? "p2p";
  const base = HEADER_LENGTH + 4 + padded(utf8(software).length) + 8;
  const fill = Math.max(0, (options.padTo ?? 0) - base);
  return encodeStun({
    method: BINDING,
    class: "request",
    transactionId: options.transactionId,
    classic: false,
    attributes: [{ type: Attr.SOFTWARE, value: utf8(software + " ".repeat(fill)) }],
  }, { fingerprint: true });
}

/**
 * The endpoint a Binding success answer says the server saw us at (XOR-MAPPED-ADDRESS, else
 * MAPPED-ADDRESS), when `bytes` is one for the request with this transaction id; undefined for
 * anything else (another message, an error answer, a malformed one).
 *
 * @example
 * ```ts
 * const seen = parseBindingAnswer(datagram, txid); // { host: "203.0.113.5", port: 4000 }
 * ```
 */
export function parseBindingAnswer(
  bytes: Uint8Array,
  transactionId: Uint8Array,
): Endpoint | undefined {
  if (!isStun(bytes)) return undefined;
  let msg: StunMessage;
  try {
    msg = decodeStun(bytes);
  } catch {
    return undefined;
  }
  if (msg.method !== BINDING || msg.class !== "success" || msg.classic) return undefined;
  if (!equalBytes(msg.transactionId, transactionId)) return undefined;
  const xored = attribute(msg, Attr.XOR_MAPPED_ADDRESS);
  if (xored) return decodeAddress(xored, { xor: { transactionId } });
  const plain = attribute(msg, Attr.MAPPED_ADDRESS);
  return plain && decodeAddress(plain);
}

/** Options of {@linkcode answerBinding}. */
export interface AnswerOptions {
  /** What SOFTWARE says in the answers that have room for it. */
  software?: string;
}

/**
 * Comprehension-required attributes a Binding request may carry and still get an answer from a
 * server without credentials (RFC 8489 §14: 0x0000–0x7FFF must be understood): the credentials
 * are not checked (the answer tells nothing a stranger could not learn by asking without them),
 * ICE's are meaningless here, and CHANGE-REQUEST only when it asks for no change.
 */
const UNDERSTOOD = new Set<number>([
  Attr.MAPPED_ADDRESS,
  Attr.USERNAME,
  Attr.MESSAGE_INTEGRITY,
  Attr.XOR_MAPPED_ADDRESS,
  Attr.PRIORITY,
  Attr.USE_CANDIDATE,
  0x001c, // MESSAGE-INTEGRITY-SHA256
  0x0014, // REALM
  0x0015, // NONCE
  0x001e, // USERHASH
]);

/**
 * The comprehension-required attributes of `msg` a Binding server without credentials does not
 * understand (see {@linkcode UNDERSTOOD}); RESPONSE-PORT (it would aim the answer at another port)
 * and a CHANGE-REQUEST that asks for a change (we have one address and port) among them.
 */
export function unknownRequired(msg: StunMessage): number[] {
  const unknown: number[] = [];
  for (const { type, value } of msg.attributes) {
    if (type >= 0x8000 || UNDERSTOOD.has(type) || unknown.includes(type)) continue;
    if (type === Attr.CHANGE_REQUEST && value.length === 4 && (value[3] & 0x06) === 0) continue;
    unknown.push(type);
  }
  return unknown;
}

/**
 * The coordinator's answer to a datagram that {@linkcode isStun} accepted, seen from `from`; or
 * undefined: no answer. Only a Binding request is answered (an indication, an answer, another
 * method or a malformed message gets nothing):
 * - a request with comprehension-required attributes we do not understand gets a 420 error
 *   (ERROR-CODE, UNKNOWN-ATTRIBUTES) only when that is no longer than the request;
 * - otherwise a success with XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for a classic request), plus
 *   SOFTWARE and FINGERPRINT when the request is at least as long as that (a client pads its
 *   request to get them). The bare answer, 32 bytes for IPv4 and 44 for IPv6, is sent whatever
 *   the request's size: the one exception to "no answer longer than its request" (the smallest
 *   request is 20 bytes, and standard clients send that), at most 2.2 times, which the caller
 *   rate-limits per address.
 *
 * @example
 * ```ts
 * const answer = answerBinding(datagram, from, { software: "p2p coordinator" });
 * if (answer) socket.send(answer, from);
 * ```
 */
export function answerBinding(
  request: Uint8Array,
  from: Endpoint,
  options: AnswerOptions = {},
): Uint8Array | undefined {
  if (!isStun(request)) return undefined;
  let msg: StunMessage;
  try {
    msg = decodeStun(request);
  } catch {
    return undefined;
  }
  if (msg.method !== BINDING || msg.class !== "request") return undefined;
  const base = { method: BINDING, transactionId: msg.transactionId, classic: msg.classic };
  const unknown = unknownRequired(msg);
  if (unknown.length > 0) {
    const list = new Uint8Array(unknown.length * 2);
    unknown.forEach((t, i) => new DataView(list.buffer).setUint16(i * 2, t));
    const error = encodeStun({
      ...base,
      class: "error",
      attributes: [
        { type: Attr.ERROR_CODE, value: errorCode(420, "Unknown Attribute") },
        { type: Attr.UNKNOWN_ATTRIBUTES, value: list },
      ],
    }, { fingerprint: true });
    return error.length <= request.length ? error : undefined;
  }
  const address = msg.classic ? { type: Attr.MAPPED_ADDRESS, value: encodeAddress(from) } : {
    type: Attr.XOR_MAPPED_ADDRESS,
    value: encodeAddress(from, { xor: { transactionId: msg.transactionId } }),
  };
  const bare = encodeStun({ ...base, class: "success", attributes: [address] });
  if (msg.classic || options.software === undefined) return bare;
  const full = encodeStun({
    ...base,
    class: "success",
    attributes: [address, { type: Attr.SOFTWARE, value: utf8(options.software) }],
  }, { fingerprint: true });
  return full.length <= request.length ? full : bare;
}

/**
 * ERROR-CODE's value: class and number, then the reason phrase.
 *
 * @example
 * ```ts
 * errorCode(420, "Unknown Attribute").length; // 21
 * ```
 */
export function errorCode(code: number, reason: string): Uint8Array {
  const text = utf8(reason);
  const value = new Uint8Array(4 + text.length);
  value[2] = Math.floor(code / 100);
  value[3] = code % 100;
  value.set(text, 4);
  return value;
}

function xorAddress(value: Uint8Array, transactionId: Uint8Array): void {
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint32(0, MAGIC_COOKIE);
  mask.set(transactionId.subarray(0, 12), 4);
  value[2] ^= mask[0];
  value[3] ^= mask[1];
  for (let i = 4; i < value.length; i++) value[i] ^= mask[i - 4];
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, as zlib computes it). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * FINGERPRINT's value for a message whose bytes up to the attribute are `head` (its length field
 * already counting the FINGERPRINT attribute).
 */
function fingerprintOf(head: Uint8Array): number {
  return (crc32(head) ^ FINGERPRINT_XOR) >>> 0;
}

function pad(length: number): number {
  return (4 - length % 4) % 4;
}

function padded(length: number): number {
  return length + pad(length);
}

const encoder = new TextEncoder();
function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}
