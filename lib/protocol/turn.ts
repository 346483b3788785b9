/**
 * TURN's wire format (RFC 8656 on RFC 8489's STUN messages), for a client: the 20-byte header
 * (method, class, magic cookie, transaction id), the attributes a TURN client sends and reads
 * (USERNAME, REALM, NONCE, MESSAGE-INTEGRITY, ERROR-CODE, LIFETIME, REQUESTED-TRANSPORT,
 * XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, CHANNEL-NUMBER, DATA), the long-term
 * credential key, and ChannelData framing. Pure functions: bytes ↔ messages, no I/O, so that
 * what a TURN server (or anyone spoofing one) sends can be fuzzed.
 *
 * Self-contained on purpose: `stun.ts` (Binding, FINGERPRINT) is written beside it; the two share
 * the header and the XOR address form and may be merged. Unknown attributes are skipped (a
 * comprehension-required one in a response is no reason for a client to fail), FINGERPRINT
 * included; every length is checked, and a malformed message throws {@linkcode TurnCodecError}.
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
import { hmac } from "@noble/hashes/hmac.js";
import { md5, sha1 } from "@noble/hashes/legacy.js";
import type { Endpoint } from "./endpoint.ts";

/** The STUN magic cookie. */
export const MAGIC_COOKIE = 0x2112a442;
/** REQUESTED-TRANSPORT for UDP. */
export const UDP_TRANSPORT = 17;
/** Channel numbers a client may bind (RFC 8656 §12). */
export const MIN_CHANNEL = 0x4000;
export const MAX_CHANNEL = 0x4fff;
const HEADER = 20;
const INTEGRITY_LENGTH = 24; // attribute header + 20-byte HMAC-SHA1

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
export type TurnClass = "request" | "indication" | "success" | "error";

const METHODS: Record<TurnMethod, number> = {
  binding: 0x001,
  allocate: 0x003,
  refresh: 0x004,
  send: 0x006,
  data: 0x007,
  "create-permission": 0x008,
  "channel-bind": 0x009,
};
const CLASSES: Record<TurnClass, number> = { request: 0, indication: 1, success: 2, error: 3 };

const ATTR = {
  username: 0x0006,
  integrity: 0x0008,
  errorCode: 0x0009,
  channel: 0x000c,
  lifetime: 0x000d,
  peer: 0x0012,
  data: 0x0013,
  realm: 0x0014,
  nonce: 0x0015,
  relayed: 0x0016,
  requestedTransport: 0x0019,
  mapped: 0x0020,
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
  if (message.transactionId.length !== 12) throw new RangeError("transaction id must be 12 bytes");
  const id = message.transactionId;
  const parts: Uint8Array[] = [];
  const a = message.attributes;
  const text = (type: number, value: string, max: number) => {
    const bytes = encoder.encode(value);
    if (bytes.length > max) throw new RangeError(`attribute 0x${type.toString(16)} too long`);
    parts.push(attribute(type, bytes));
  };
  if (a.requestedTransport !== undefined) {
    parts.push(attribute(ATTR.requestedTransport, new Uint8Array([a.requestedTransport, 0, 0, 0])));
  }
  if (a.lifetime !== undefined) parts.push(attribute(ATTR.lifetime, u32(a.lifetime)));
  if (a.channel !== undefined) {
    if (!(a.channel >= MIN_CHANNEL && a.channel <= MAX_CHANNEL)) {
      throw new RangeError(`channel 0x${a.channel.toString(16)} is not in 0x4000..0x4fff`);
    }
    parts.push(attribute(ATTR.channel, new Uint8Array([a.channel >> 8, a.channel & 0xff, 0, 0])));
  }
  if (a.peer) parts.push(attribute(ATTR.peer, xorAddress(a.peer, id)));
  if (a.relayed) parts.push(attribute(ATTR.relayed, xorAddress(a.relayed, id)));
  if (a.mapped) parts.push(attribute(ATTR.mapped, xorAddress(a.mapped, id)));
  if (a.data) parts.push(attribute(ATTR.data, a.data));
  if (a.errorCode) {
    const { code, reason } = a.errorCode;
    if (!(code >= 300 && code <= 699)) throw new RangeError(`error code ${code} not in 300..699`);
    const r = encoder.encode(reason);
    const body = new Uint8Array(4 + r.length);
    body[2] = Math.floor(code / 100);
    body[3] = code % 100;
    body.set(r, 4);
    parts.push(attribute(ATTR.errorCode, body));
  }
  if (a.username !== undefined) text(ATTR.username, a.username, 512);
  if (a.realm !== undefined) text(ATTR.realm, a.realm, 763);
  if (a.nonce !== undefined) text(ATTR.nonce, a.nonce, 763);
  const bodyLength = parts.reduce((n, p) => n + p.length, 0);
  const total = HEADER + bodyLength + (key ? INTEGRITY_LENGTH : 0);
  if (total - HEADER > 0xffff) throw new RangeError("message too long");
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint16(0, messageType(message.method, message.cls));
  view.setUint16(2, total - HEADER);
  view.setUint32(4, MAGIC_COOKIE);
  out.set(id, 8);
  let at = HEADER;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  if (key) {
    view.setUint16(at, ATTR.integrity);
    view.setUint16(at + 2, 20);
    out.set(hmac(sha1, key, out.subarray(0, at)), at + 4);
  }
  return out;
}

/**
 * Whether `bytes` look like a STUN message (first two bits 0, the magic cookie), as opposed to
 * ChannelData or anything else sharing the socket.
 */
export function isTurnMessage(bytes: Uint8Array): boolean {
  return bytes.length >= HEADER && (bytes[0] & 0xc0) === 0 &&
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
  if (bytes.length < HEADER) {
    throw new TurnCodecError(`${bytes.length} bytes: shorter than a header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(0);
  if (type & 0xc000) throw new TurnCodecError("not a STUN message: the first two bits are not 0");
  if (view.getUint32(4) !== MAGIC_COOKIE) throw new TurnCodecError("no STUN magic cookie");
  const length = view.getUint16(2);
  if (length % 4 !== 0 || HEADER + length !== bytes.length) {
    throw new TurnCodecError(`length ${length} does not match the ${bytes.length}-byte message`);
  }
  const { method, cls } = splitType(type);
  const transactionId = bytes.slice(8, 20);
  const attributes: TurnAttributes = {};
  const message: DecodedTurnMessage = { method, cls, transactionId, attributes };
  const seen = new Set<number>();
  let at = HEADER;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new TurnCodecError("truncated attribute header");
    const attrType = view.getUint16(at);
    const attrLength = view.getUint16(at + 2);
    const start = at + 4;
    const end = start + attrLength;
    if (end > bytes.length) throw new TurnCodecError(`attribute 0x${hex(attrType)} is truncated`);
    const value = bytes.subarray(start, end);
    if (attrType === ATTR.integrity) {
      if (attrLength !== 20) throw new TurnCodecError("MESSAGE-INTEGRITY is not 20 bytes");
      message.integrityAt = at;
      // Only FINGERPRINT may follow it; what follows is ignored (RFC 8489 §14.5).
      break;
    }
    if (!seen.has(attrType)) {
      seen.add(attrType);
      readAttribute(attrType, value, transactionId, attributes);
    }
    at = start + ((attrLength + 3) & ~3);
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
  if (at === undefined) return false;
  const copy = bytes.slice(0, at);
  // The length field counts up to and including MESSAGE-INTEGRITY.
  new DataView(copy.buffer).setUint16(2, at + INTEGRITY_LENGTH - HEADER);
  const want = hmac(sha1, key, copy);
  const got = bytes.subarray(at + 4, at + 24);
  let diff = 0;
  for (let i = 0; i < 20; i++) diff |= want[i] ^ got[i];
  return diff === 0;
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

function attribute(type: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + ((value.length + 3) & ~3));
  out[0] = type >> 8;
  out[1] = type & 0xff;
  out[2] = value.length >> 8;
  out[3] = value.length & 0xff;
  out.set(value, 4);
  return out;
}

function u32(n: number): Uint8Array {
  if (!(Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) {
    throw new RangeError(`${n} is not a 32-bit unsigned integer`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function messageType(method: TurnMethod, cls: TurnClass): number {
  const m = METHODS[method];
  const c = CLASSES[cls];
  return (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | ((c & 1) << 4) |
    ((c & 2) << 7);
}

function splitType(type: number): { method: TurnMethod; cls: TurnClass } {
  const m = (type & 0x000f) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0f80);
  const c = ((type >> 4) & 1) | ((type >> 7) & 2);
  const method = (Object.keys(METHODS) as TurnMethod[]).find((k) => METHODS[k] === m);
  if (method === undefined) throw new TurnCodecError(`unknown method 0x${hex(m)}`);
  const cls = (Object.keys(CLASSES) as TurnClass[]).find((k) => CLASSES[k] === c)!;
  return { method, cls };
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
      into.data = value.slice();
      return;
    case ATTR.peer:
      into.peer = readXorAddress(value, id, "XOR-PEER-ADDRESS");
      return;
    case ATTR.relayed:
      into.relayed = readXorAddress(value, id, "XOR-RELAYED-ADDRESS");
      return;
    case ATTR.mapped:
      into.mapped = readXorAddress(value, id, "XOR-MAPPED-ADDRESS");
      return;
  }
}

function xorAddress(ep: Endpoint, id: Uint8Array): Uint8Array {
  const ip = ipBytes(ep.host);
  if (!(Number.isInteger(ep.port) && ep.port >= 0 && ep.port <= 65535)) {
    throw new RangeError(`port ${ep.port} is not in 0..65535`);
  }
  const out = new Uint8Array(4 + ip.length);
  out[1] = ip.length === 4 ? 1 : 2;
  const port = ep.port ^ (MAGIC_COOKIE >>> 16);
  out[2] = port >> 8;
  out[3] = port & 0xff;
  const mask = xorMask(id);
  for (let i = 0; i < ip.length; i++) out[4 + i] = ip[i] ^ mask[i];
  return out;
}

function readXorAddress(value: Uint8Array, id: Uint8Array, what: string): Endpoint {
  const family = value[1];
  const size = family === 1 ? 4 : family === 2 ? 16 : 0;
  if (value.length < 4 || size === 0 || value.length !== 4 + size) {
    throw new TurnCodecError(`${what} is not an IPv4 or IPv6 address`);
  }
  const port = ((value[2] << 8) | value[3]) ^ (MAGIC_COOKIE >>> 16);
  const mask = xorMask(id);
  const ip = new Uint8Array(size);
  for (let i = 0; i < size; i++) ip[i] = value[4 + i] ^ mask[i];
  return { host: formatIp(ip), port };
}

function xorMask(id: Uint8Array): Uint8Array {
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint32(0, MAGIC_COOKIE);
  mask.set(id, 4);
  return mask;
}

/** An IP address's bytes (4 or 16); throws `RangeError` on anything else. */
export function ipBytes(host: string): Uint8Array {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    if (bytes.some((b) => b > 255)) throw new RangeError(`"${host}" is not an IPv4 address`);
    return new Uint8Array(bytes);
  }
  const halves = host.split("::");
  if (halves.length > 2 || !/^[0-9a-fA-F:.]+$/.test(host)) {
    throw new RangeError(`"${host}" is not an IP address`);
  }
  const groups = (s: string): number[] => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (g.includes(".")) {
        const b = ipBytes(g);
        out.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else throw new RangeError(`"${host}" is not an IPv6 address`);
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) {
    throw new RangeError(`"${host}" is not an IPv6 address`);
  }
  const all = [...head, ...new Array(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** An IP address's text: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function formatIp(ip: Uint8Array): string {
  if (ip.length === 4) return ip.join(".");
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((ip[i] << 8) | ip[i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hexes = g.map((x) => x.toString(16));
  if (best < 0) return hexes.join(":");
  return `${hexes.slice(0, best).join(":")}::${hexes.slice(best + bestLen).join(":")}`;
}

function hex(n: number): string {
  return n.toString(16).padStart(4, "0");
}
