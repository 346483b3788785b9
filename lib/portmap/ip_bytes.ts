/**
 * IP addresses as the port-mapping protocols carry them: 4 bytes (NAT-PMP) or 16 bytes with IPv4
 * as IPv4-mapped IPv6 (PCP, RFC 6887 §5). Pure functions, shared by the two codecs.
 *
 * @example
 * ```ts
 * import { addressFromBytes16, addressToBytes16 } from "./ip_bytes.ts";
 *
 * addressFromBytes16(addressToBytes16("203.0.113.5")); // "203.0.113.5"
 * ```
 * @module
 */

/** An address that cannot be read or written. */
export class AddressError extends Error {
  override name = "AddressError";
}

/**
 * Four bytes of a dotted-quad IPv4 address.
 *
 * @example
 * ```ts
 * ipv4ToBytes("10.0.0.1"); // Uint8Array [10, 0, 0, 1]
 * ```
 */
export function ipv4ToBytes(ip: string): Uint8Array {
  const parts = ip.split(".");
  const bytes = parts.map((p) => /^\d{1,3}$/.test(p) ? Number(p) : NaN);
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw new AddressError(`'${ip}' is not an IPv4 address (expected a.b.c.d)`);
  }
  return new Uint8Array(bytes);
}

/**
 * Sixteen bytes of an IPv4 (as `::ffff:a.b.c.d`) or IPv6 address.
 *
 * @example
 * ```ts
 * addressToBytes16("::1")[15]; // 1
 * ```
 */
export function addressToBytes16(ip: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!ip.includes(":")) {
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(ipv4ToBytes(ip), 12);
    return out;
  }
  const halves = ip.split("::");
  if (halves.length > 2) throw new AddressError(`'${ip}' is not an IPv6 address (two '::')`);
  const words = (text: string): number[] => {
    if (text === "") return [];
    const groups = text.split(":");
    const last = groups[groups.length - 1];
    const tail = last.includes(".") ? [...ipv4ToBytes(groups.pop()!)] : [];
    const values = groups.map((g) => /^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN);
    if (tail.length) values.push((tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3]);
    if (values.some(Number.isNaN)) throw new AddressError(`'${ip}' is not an IPv6 address`);
    return values;
  };
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  const fill = 8 - head.length - rest.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) {
    throw new AddressError(`'${ip}' is not an IPv6 address (wrong number of groups)`);
  }
  const all = [...head, ...new Array(halves.length === 2 ? fill : 0).fill(0), ...rest];
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/**
 * The text of 16 address bytes: dotted quad for IPv4-mapped ones, else RFC 5952 IPv6.
 *
 * @example
 * ```ts
 * addressFromBytes16(addressToBytes16("2001:db8::1")); // "2001:db8::1"
 * ```
 */
export function addressFromBytes16(bytes: Uint8Array): string {
  if (bytes.length !== 16) {
    throw new AddressError(`an address field is 16 bytes, not ${bytes.length}`);
  }
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return [...bytes.subarray(12)].join(".");
  }
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero groups becomes "::" (the first one on a tie).
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(":");
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/**
 * Whether 16 address bytes hold an IPv4-mapped address.
 *
 * @example
 * ```ts
 * isIpv4Mapped(addressToBytes16("192.0.2.1")); // true
 * ```
 */
export function isIpv4Mapped(bytes: Uint8Array): boolean {
  return bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
}
