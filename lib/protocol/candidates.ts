/**
 * Announced candidates: extra endpoints of a client's main socket that the coordinator cannot
 * observe itself — a global IPv6 address (`v6`) beside the IPv4 mapping it saw, or a mapping a
 * router made on request (`mapped`: PCP, NAT-PMP, UPnP-IGD). The client announces them with
 * `candidates` and the coordinator passes them on in `Introduce` (docs/PROTOCOL.md §1.7). This
 * module is their text form, `<kind>=<endpoint>` joined by `;`, shared by both messages; separate
 * from the seed codec because it is a list with its own bounds. Pure functions, no I/O.
 *
 * @example
 * ```ts
 * const list = parseCandidateList("v6=[2001:db8::7]:4000;mapped=203.0.113.5:4000");
 * // [{ kind: "v6", endpoint: { host: "2001:db8::7", port: 4000 } },
 * //  { kind: "mapped", endpoint: { host: "203.0.113.5", port: 4000 } }]
 * formatCandidateList(list); // "v6=[2001:db8::7]:4000;mapped=203.0.113.5:4000"
 * ```
 * @module
 */
import { type Endpoint, EndpointError, formatEndpoint, parseEndpoint } from "./endpoint.ts";

/**
 * What an announced endpoint is: `v6`, a global IPv6 address of the client's socket (no NAT in
 * front of it, maybe a stateful firewall); `mapped`, a public endpoint its router mapped to the
 * socket on request.
 */
export type AnnouncedKind = "v6" | "mapped";

/** The kinds a client may announce. */
export const ANNOUNCED_KINDS: readonly AnnouncedKind[] = ["v6", "mapped"];

/** One announced endpoint. */
export interface AnnouncedCandidate {
  kind: AnnouncedKind;
  endpoint: Endpoint;
}

/** Most candidates one announcement (and so one introduction) carries. */
export const MAX_ANNOUNCED = 4;

/** Thrown when a candidate list is malformed; the message says what and why. */
export class CandidateListError extends Error {
  override name = "CandidateListError";
}

/** Whether `text` names an {@linkcode AnnouncedKind}. */
export function isAnnouncedKind(text: string): text is AnnouncedKind {
  return (ANNOUNCED_KINDS as readonly string[]).includes(text);
}

/**
 * Parses `<kind>=<endpoint>[;<kind>=<endpoint>]…`: at most {@linkcode MAX_ANNOUNCED} entries,
 * known kinds, no endpoint twice, and a `v6` one on an IPv6 address, which comes back in its
 * canonical text (RFC 5952). The empty text is the empty list. Throws
 * {@linkcode CandidateListError} on bad input.
 *
 * @example
 * ```ts
 * parseCandidateList("mapped=203.0.113.5:41000");
 * // [{ kind: "mapped", endpoint: { host: "203.0.113.5", port: 41000 } }]
 * ```
 */
export function parseCandidateList(text: string): AnnouncedCandidate[] {
  if (text === "") return [];
  const items = text.split(";");
  if (items.length > MAX_ANNOUNCED) {
    throw new CandidateListError(
      `Cannot parse candidates: ${items.length} entries, at most ${MAX_ANNOUNCED}`,
    );
  }
  const list: AnnouncedCandidate[] = [];
  for (const item of items) {
    const eq = item.indexOf("=");
    const kind = eq < 0 ? item : item.slice(0, eq);
    if (eq < 0 || !isAnnouncedKind(kind)) {
      throw new CandidateListError(
        `Cannot parse candidates: "${item.slice(0, 20)}" is not <kind>=<endpoint> with a kind ` +
          `of ${ANNOUNCED_KINDS.join(", ")}`,
      );
    }
    let endpoint: Endpoint;
    try {
      endpoint = parseEndpoint(item.slice(eq + 1));
    } catch (e) {
      if (e instanceof EndpointError) {
        throw new CandidateListError(`Cannot parse candidates: ${e.message}`);
      }
      throw e;
    }
    // One text per address (RFC 5952: lower case, `::` for the longest run of zero groups), so
    // that the probes' source, as the socket writes it, matches the candidate.
    if (endpoint.host.includes(":") && !endpoint.host.includes(".")) {
      endpoint = { ...endpoint, host: new URL(`http://[${endpoint.host}]/`).hostname.slice(1, -1) };
    }
    if (kind === "v6" && !endpoint.host.includes(":")) {
      throw new CandidateListError(
        `Cannot parse candidates: a v6 candidate needs an IPv6 address, not ${endpoint.host}`,
      );
    }
    const text = formatEndpoint(endpoint);
    if (list.some((c) => formatEndpoint(c.endpoint) === text)) {
      throw new CandidateListError(`Cannot parse candidates: ${text} is given twice`);
    }
    list.push({ kind, endpoint });
  }
  return list;
}

/** Formats a candidate list as {@linkcode parseCandidateList} reads it (the empty list as ""). *
 * @example
 * ```ts
 * formatCandidateList([{ kind: "v6", endpoint: { host: "2001:db8::7", port: 4000 } }]);
 * // "v6=[2001:db8::7]:4000"
 * ```
 */
export function formatCandidateList(list: readonly AnnouncedCandidate[]): string {
  return list.map((c) => `${c.kind}=${formatEndpoint(c.endpoint)}`).join(";");
}
