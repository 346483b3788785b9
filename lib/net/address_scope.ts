/**
 * What an IP address is good for, as far as telling strangers about it goes: public, private (a
 * LAN, a carrier NAT's range, IPv6 ULA), loopback, or unusable (unspecified, link-local,
 * multicast). The coordinator's candidate policy judges announced endpoints with it, and a chat
 * client picks the global IPv6 address it announces. Pure functions, no I/O.
 *
 * @example
 * ```ts
 * addressScope("2001:db8::7"); // "public"
 * addressScope("fd00::1"); // "private"
 * ```
 * @module
 */
import { isIPv4 } from "node:net";

/** What an address is good for, as far as passing it to strangers goes. */
export type AddressScope = "public" | "private" | "loopback" | "unusable";

/**
 * The {@linkcode AddressScope} of a literal IPv4 or IPv6 address (an IPv4-mapped IPv6 one is
 * judged by its IPv4 address).
 *
 * @example
 * ```ts
 * addressScope("10.1.2.3"); // "private"
 * addressScope("fe80::1"); // "unusable"
 * ```
 */
export function addressScope(host: string): AddressScope {
  if (isIPv4(host)) return v4Scope(host.split(".").map(Number));
  const text = canonicalV6(host);
  if (text === undefined) return "unusable";
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (mapped) {
    const hi = parseInt(mapped[1], 16);
    const lo = parseInt(mapped[2], 16);
    return v4Scope([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  }
  if (text === "::1") return "loopback";
  const first = text.startsWith("::") ? 0 : parseInt(text.split(":")[0], 16);
  if (text === "::" || (first & 0xffc0) === 0xfe80 || (first & 0xff00) === 0xff00) {
    return "unusable";
  }
  if ((first & 0xfe00) === 0xfc00) return "private";
  return "public";
}

function v4Scope([a, b]: number[]): AddressScope {
  if (a === 127) return "loopback";
  if (a === 0 || a >= 224 || (a === 169 && b === 254)) return "unusable";
  if (
    a === 10 || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168) ||
    (a === 100 && (b & 0xc0) === 64)
  ) {
    return "private";
  }
  return "public";
}

/** The canonical text of an IPv6 address (lower case, `::` compressed), or undefined. */
function canonicalV6(host: string): string | undefined {
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}
