/**
 * Which announced candidates (`candidates`, docs/PROTOCOL.md §1.6) the coordinator passes on in
 * introductions. A client chooses what it announces, so an attacker could name any endpoint and
 * make its peers probe there: probes are small, authenticated and capped per endpoint by the
 * peers' probe quota (§2.1), but they should at least never be aimed at a peer's own machine or
 * its LAN. So an endpoint on a loopback address passes only from a user the coordinator itself
 * sees on loopback (tests, a coordinator on the same host), one on a private address only from a
 * user it sees on a private one (a coordinator on a LAN), and unspecified, link-local and
 * multicast ones never. Separate from the UDP service because it is policy, not parsing or I/O.
 *
 * @example
 * ```ts
 * const observed = { host: "198.51.100.7", port: 4000 };
 * passableCandidates([
 *   { kind: "v6", endpoint: { host: "2001:db8::7", port: 4000 } },
 *   { kind: "mapped", endpoint: { host: "127.0.0.1", port: 22 } },
 * ], observed); // only the v6 one
 * ```
 * @module
 */
import { isIPv4 } from "node:net";
import type { AnnouncedCandidate } from "../protocol/candidates.ts";
import type { Endpoint } from "../protocol/endpoint.ts";

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

/**
 * The candidates of `list` the coordinator passes on for a user it sees at `observed` (see the
 * module comment), in their order.
 */
export function passableCandidates(
  list: readonly AnnouncedCandidate[],
  observed: Endpoint,
): AnnouncedCandidate[] {
  const own = addressScope(observed.host);
  return list.filter((c) => {
    const scope = addressScope(c.endpoint.host);
    return scope === "public" || (scope !== "unusable" && scope === own);
  });
}
