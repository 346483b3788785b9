/**
 * The NAT test's codec: `whoami` (padded) and its answer `You,<endpoint>`, which the coordinator
 * gives on its main port and on its second port, and the {@linkcode NatKind} a client concludes
 * from the two answers and reports with `nat`. Pure functions, no I/O: each caller (`p2p nat`,
 * the chat client) keeps its own socket, retries and timeouts. The seed codec (`./seed.ts`) reads
 * and writes these lines with the rest of the coordinator's messages.
 *
 * @example
 * ```ts
 * import { encodeWhoami, parseWhoamiAnswer, secondPort } from "./whoami.ts";
 *
 * const server = { host: "192.0.2.10", port: 7000 };
 * const request = encodeWhoami(); // send it to `server` and to `secondPort(server)`
 * parseWhoamiAnswer(new TextEncoder().encode("You,203.0.113.5:4000"));
 * // { host: "203.0.113.5", port: 4000 }
 * ```
 * @module
 */
import { type Endpoint, EndpointError, parseEndpoint } from "./endpoint.ts";

/**
 * How a client's NAT maps one socket: `easy` (the same public endpoint for every destination, or
 * no NAT) or `hard` (a new public port per destination: a symmetric NAT). The client finds out
 * with `whoami` on the coordinator's two ports and reports it with `nat`, so that introductions
 * can tell each side how to punch (birthday probing needs one easy and one hard side).
 */
export type NatKind = "easy" | "hard";

/** Whether `text` names a {@linkcode NatKind}. */
export function isNatKind(text: string): text is NatKind {
  return text === "easy" || text === "hard";
}

/**
 * Longest `whoami` request: clients pad it (`whoami,<padding>`) so that the answer, `You` with
 * their endpoint, is never longer than the question (no amplification).
 */
export const MAX_WHOAMI = 64;

/** The padded request as text: as long as the longest answer (`You,[IPv6]:port`). */
export const WHOAMI_REQUEST = "whoami," + "-".repeat(MAX_WHOAMI - "whoami,".length);

/**
 * Whether `text` is a `whoami` request: `whoami`, or `whoami,<padding>` of printable ASCII but commas,
 * {@linkcode MAX_WHOAMI} bytes in all at most.
 */
export function isWhoamiRequest(text: string): boolean {
  return text === "whoami" || (text.length <= MAX_WHOAMI && /^whoami,[!-+\--~]*$/.test(text));
}

/**
 * The `whoami` request's bytes: padded (`whoami,----…`, 64 bytes) so that the coordinator's
 * answer is never longer than the question, which keeps it from amplifying spoofed requests.
 *
 * @example
 * ```ts
 * import { encodeWhoami } from "./whoami.ts";
 *
 * encodeWhoami().length; // 64
 * ```
 */
export function encodeWhoami(): Uint8Array {
  return new TextEncoder().encode(WHOAMI_REQUEST);
}

/**
 * The coordinator's second UDP port, the one that only answers `whoami`: `altPort` when given,
 * else the main port + 1 (the coordinator's default).
 *
 * @example
 * ```ts
 * import { secondPort } from "./whoami.ts";
 *
 * secondPort({ host: "192.0.2.10", port: 7000 }); // { host: "192.0.2.10", port: 7001 }
 * ```
 */
export function secondPort(server: Endpoint, altPort?: number): Endpoint {
  return { host: server.host, port: altPort ?? server.port + 1 };
}

/**
 * The endpoint a `You` answer reports, or `undefined` when the datagram is anything else
 * (another message, malformed text, binary data). Never throws on any input.
 *
 * @example
 * ```ts
 * import { parseWhoamiAnswer } from "./whoami.ts";
 *
 * parseWhoamiAnswer(new TextEncoder().encode("You,[2001:db8::7]:4000"));
 * // { host: "2001:db8::7", port: 4000 }
 * parseWhoamiAnswer(new TextEncoder().encode("Accept,7000")); // undefined
 * ```
 */
export function parseWhoamiAnswer(data: Uint8Array): Endpoint | undefined {
  let text: string;
  try {
    text = decoder.decode(data);
  } catch {
    return undefined; // not UTF-8
  }
  if (!text.startsWith("You,")) return undefined;
  try {
    return parseEndpoint(text.slice(4));
  } catch (err) {
    if (err instanceof EndpointError) return undefined;
    throw err;
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });
