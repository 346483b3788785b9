/**
 * Comparing byte arrays, in the two ways the code needs: plainly (public data: keys, frames we
 * already sent) and in constant time (a MAC an attacker may be guessing byte by byte).
 *
 * @example
 * ```ts
 * import { constantTimeEqual, equalBytes } from "./bytes.ts";
 *
 * equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])); // true
 * constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])); // false
 * ```
 * @module
 */

/** Whether `a` and `b` hold the same bytes. Stops at the first difference: not for secrets. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Whether `a` and `b` hold the same bytes, taking the same time wherever they differ (the
 * lengths are not secret), so that a forger cannot learn a MAC one byte at a time.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
