/**
 * Which announced candidates (`candidates`, docs/PROTOCOL.md §1.7) the coordinator passes on in
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
import { addressScope } from "../net/address_scope.ts";
import type { AnnouncedCandidate } from "../protocol/candidates.ts";
import type { Endpoint } from "../protocol/endpoint.ts";

/**
 * The candidates of `list` the coordinator passes on for a user it sees at `observed` (see the
 * module comment), in their order.
 *
 * @example
 * ```ts
 * user.candidates = passableCandidates(msg.candidates, user.observed);
 * ```
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
