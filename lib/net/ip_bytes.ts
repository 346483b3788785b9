/**
 * IP addresses as wire formats carry them: text ↔ 4 or 16 bytes ({@linkcode ipBytes},
 * {@linkcode formatIp}: STUN and TURN address attributes, the peer's `turn-candidate` frame), and
 * the 16-byte field of the port-mapping protocols, where IPv4 travels as IPv4-mapped IPv6 (PCP,
 * RFC 6887 §5; {@linkcode addressToBytes16}, {@linkcode addressFromBytes16}) or as 4 bytes
 * (NAT-PMP, {@linkcode ipv4ToBytes}). One parser and one RFC 5952 printer for every codec, so
 * that an address reads and prints the same whichever protocol carries it. Pure functions, no I/O.
 *
 * @example
 * ```ts
 * formatIp(ipBytes("2001:DB8:0:0:0:0:0:1")); // "2001:db8::1"
 * addressFromBytes16(addressToBytes16("203.0.113.5")); // "203.0.113.5"
 * ```
 * @module
 */

/**
 * An address that cannot be read or written; a `RangeError`, as an address out of the set of
 * addresses is a value out of range.
 */
export class AddressError extends RangeError {
  override name = "AddressError";
}

/**
 * Four bytes of a dotted-quad IPv4 address (each part 1 to 3 digits, at most 255). Throws
 * {@linkcode AddressError} on anything else.
 *
 * @example
 * ```ts
 * ipv4ToBytes("10.0.0.1"); // Uint8Array [10, 0, 0, 1]
 * ```
 */
export function ipv4ToBytes(ip: string): Uint8Array {
  const bytes = v4Bytes(ip);
  if (!bytes) throw new AddressError(`'${ip}' is not an IPv4 address (expected a.b.c.d)`);
  return bytes;
}

/** The four bytes of a dotted quad, or undefined. */
function v4Bytes(ip: string): Uint8Array | undefined {
  const bytes = ip.split(".").map((p) => /^\d{1,3}$/.test(p) ? Number(p) : NaN);
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255))) return undefined;
  return new Uint8Array(bytes);
}

/**
 * An IP address's bytes: 4 for dotted-quad IPv4, 16 for IPv6 (with `::`, and a dotted quad as its
 * last 32 bits, as in `::ffff:192.0.2.1`). Throws {@linkcode AddressError} on anything else, a
 * zone (`%eth0`) included.
 *
 * @example
 * ```ts
 * ipBytes("::1").length; // 16
 * ipBytes("192.0.2.1"); // Uint8Array [192, 0, 2, 1]
 * ```
 */
export function ipBytes(host: string): Uint8Array {
  if (!host.includes(":")) {
    const bytes = v4Bytes(host);
    if (bytes) return bytes;
    const what = /^[\d.]+$/.test(host) ? "an IPv4" : "an IP";
    throw new AddressError(`"${host}" is not ${what} address`);
  }
  const bad = (why: string) => new AddressError(`"${host}" is not an IPv6 address${why}`);
  const halves = host.split("::");
  if (halves.length > 2) throw bad(" (two '::')");
  const groups = (text: string, last: boolean): number[] => {
    if (text === "") return [];
    const parts = text.split(":");
    const dotted = last && parts[parts.length - 1].includes(".") ? parts.pop()! : undefined;
    const values = parts.map((g) => /^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN);
    if (dotted !== undefined) {
      const v4 = v4Bytes(dotted);
      if (!v4) throw bad("");
      values.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    }
    if (values.some(Number.isNaN)) throw bad("");
    return values;
  };
  const head = groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1], true) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) throw bad(" (wrong number of groups)");
  const all = [...head, ...new Array(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/**
 * An IP address's text from its 4 or 16 bytes: dotted IPv4, or RFC 5952 IPv6 (lower case, the
 * longest run of two or more zero groups as `::`, the first one on a tie; an IPv4-mapped address
 * in hex, as the WHATWG URL serializer writes it).
 *
 * @example
 * ```ts
 * formatIp(ipBytes("2001:db8:0:0:1:0:0:1")); // "2001:db8::1:0:0:1"
 * ```
 */
export function formatIp(ip: Uint8Array): string {
  if (ip.length === 4) return ip.join(".");
  if (ip.length !== 16) throw new AddressError(`an IP address is 4 or 16 bytes, not ${ip.length}`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((ip[i] << 8) | ip[i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(":");
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/**
 * Sixteen bytes of an IPv4 (as `::ffff:a.b.c.d`) or IPv6 address. Throws
 * {@linkcode AddressError}.
 *
 * @example
 * ```ts
 * addressToBytes16("::1")[15]; // 1
 * ```
 */
export function addressToBytes16(ip: string): Uint8Array {
  if (ip.includes(":")) return ipBytes(ip);
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(ipv4ToBytes(ip), 12);
  return out;
}

/**
 * The text of 16 address bytes: dotted quad for IPv4-mapped ones, else RFC 5952 IPv6. Throws
 * {@linkcode AddressError} when there are not 16.
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
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return formatIp(mapped ? bytes.subarray(12) : bytes);
}
