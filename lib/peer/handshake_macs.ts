/**
 * The MACs that let a peer refuse a stranger's handshake frame before any key exchange
 * (docs/PROTOCOL.md §2.3), after WireGuard's (§5.4.4–5.4.7 of its paper), with the introduction's
 * token as the key both sides already share:
 *
 * - `mac1` of every handshake frame: HMAC-SHA256(token, header ‖ Noise message), truncated;
 * - `mac2` of an HS1: HMAC-SHA256(cookie, header ‖ Noise message ‖ mac1), or zeros without a
 *   cookie;
 * - a cookie: HMAC-SHA256(secret, source), where the secret is the responder's own, rotating,
 *   and the source the address (and local socket) the HS1 came from;
 * - a COOKIE frame's MAC: HMAC-SHA256(token, its header ‖ cookie ‖ the `mac1` of the HS1 it
 *   answers), so that nobody without the token can hand an initiator a cookie, and a cookie
 *   answers one HS1 only.
 *
 * Pure functions; every MAC is truncated to {@linkcode HANDSHAKE_MAC_LENGTH} bytes and compared
 * in constant time.
 *
 * @example
 * ```ts
 * import { handshakeMac1, validMac1 } from "./handshake_macs.ts";
 *
 * const token = crypto.getRandomValues(new Uint8Array(16));
 * const signed = new Uint8Array([0x12, 1, 0x61, 9, 9]); // an HS1's header and Noise message
 * const mac1 = handshakeMac1(token, signed);
 * validMac1([token], signed, mac1); // the token that checked it out
 * ```
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual } from "../bytes.ts";
import { COOKIE_LENGTH, HANDSHAKE_MAC_LENGTH } from "../protocol/frame.ts";

const encoder = new TextEncoder();

/** HMAC-SHA256 of the concatenated parts, truncated to `length` bytes. */
function mac(key: Uint8Array, parts: Uint8Array[], length = HANDSHAKE_MAC_LENGTH): Uint8Array {
  const h = hmac.create(sha256, key);
  for (const p of parts) h.update(p);
  return h.digest().subarray(0, length);
}

/** The `mac1` of a handshake frame whose header and Noise message are `signed`. */
export function handshakeMac1(token: Uint8Array, signed: Uint8Array): Uint8Array {
  return mac(token, [signed]);
}

/**
 * The token among `tokens` under which `mac1` is the MAC of `signed`, or undefined. Tries them
 * all, so that the time taken does not tell which one matched.
 */
export function validMac1(
  tokens: readonly Uint8Array[],
  signed: Uint8Array,
  mac1: Uint8Array,
): Uint8Array | undefined {
  let found: Uint8Array | undefined;
  for (const token of tokens) {
    if (constantTimeEqual(handshakeMac1(token, signed), mac1)) found ??= token;
  }
  return found;
}

/** An HS1's `mac2` with `cookie`; zeros without one. */
export function handshakeMac2(
  cookie: Uint8Array | undefined,
  signed: Uint8Array,
  mac1: Uint8Array,
): Uint8Array {
  return cookie ? mac(cookie, [signed, mac1]) : new Uint8Array(HANDSHAKE_MAC_LENGTH);
}

/** The cookie of `source` under `secret`. */
export function cookieFor(secret: Uint8Array, source: string): Uint8Array {
  return mac(secret, [encoder.encode(source)], COOKIE_LENGTH);
}

/** The MAC of a COOKIE frame with this `header` and `cookie`, answering the HS1 with `hs1Mac1`. */
export function cookieReplyMac(
  token: Uint8Array,
  header: Uint8Array,
  cookie: Uint8Array,
  hs1Mac1: Uint8Array,
): Uint8Array {
  return mac(token, [header, cookie, hs1Mac1]);
}
