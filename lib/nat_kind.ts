/**
 * Finding out how our NAT maps one UDP socket, as `p2p nat` (`./nat_check.ts`) and the chat
 * client (`./peer.ts`) both do: ask the coordinator's main port and its second port (which
 * answers nothing but `whoami`) where they see us, and compare. The same public endpoint for both
 * destinations is an `easy` NAT (or none); a different one, a `hard` (symmetric) NAT.
 *
 * Pure functions, no I/O: each caller keeps its own socket, retries and timeouts.
 *
 * @example
 * ```ts
 * import { encodeWhoami, natKindOf, parseWhoamiAnswer, secondPort } from "./nat_kind.ts";
 *
 * const server = { host: "192.0.2.10", port: 7000 };
 * const request = encodeWhoami(); // send it to `server` and to `secondPort(server)`
 * const main = parseWhoamiAnswer(new TextEncoder().encode("You,203.0.113.5:4000"));
 * const alt = parseWhoamiAnswer(new TextEncoder().encode("You,203.0.113.5:4001"));
 * natKindOf(main!, alt!); // "hard": a new public port per destination
 * ```
 * @module
 */
import { type Endpoint, sameEndpoint } from "./protocol/endpoint.ts";
import {
  decodeText,
  encodeClientMessage,
  type NatKind,
  parseServerMessage,
  SeedProtocolError,
} from "./protocol/seed.ts";

/**
 * The `whoami` request's bytes: padded (`whoami,----…`, 64 bytes) so that the coordinator's
 * answer is never longer than the question, which keeps it from amplifying spoofed requests.
 *
 * @example
 * ```ts
 * import { encodeWhoami } from "./nat_kind.ts";
 *
 * encodeWhoami().length; // 64
 * ```
 */
export function encodeWhoami(): Uint8Array {
  return new TextEncoder().encode(encodeClientMessage({ type: "whoami" }));
}

/**
 * The coordinator's second UDP port, the one that only answers `whoami`: `altPort` when given,
 * else the main port + 1 (the coordinator's default).
 *
 * @example
 * ```ts
 * import { secondPort } from "./nat_kind.ts";
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
 * import { parseWhoamiAnswer } from "./nat_kind.ts";
 *
 * parseWhoamiAnswer(new TextEncoder().encode("You,[2001:db8::7]:4000"));
 * // { host: "2001:db8::7", port: 4000 }
 * parseWhoamiAnswer(new TextEncoder().encode("Accept,7000")); // undefined
 * ```
 */
export function parseWhoamiAnswer(data: Uint8Array): Endpoint | undefined {
  try {
    const msg = parseServerMessage(decodeText(data));
    return msg.type === "you" ? msg.endpoint : undefined;
  } catch (err) {
    if (err instanceof SeedProtocolError) return undefined;
    throw err;
  }
}

/**
 * What kind of NAT the two answers show: `easy` when the coordinator's main port (`main`) and its
 * second port (`alt`) saw the same public endpoint — one mapping for every destination, or no NAT
 * — and `hard` (a symmetric NAT: a new public port per destination) when they did not.
 *
 * @example
 * ```ts
 * import { natKindOf } from "./nat_kind.ts";
 *
 * const seen = { host: "203.0.113.5", port: 4000 };
 * natKindOf(seen, seen); // "easy"
 * natKindOf(seen, { ...seen, port: 4001 }); // "hard"
 * ```
 */
export function natKindOf(main: Endpoint, alt: Endpoint): NatKind {
  return sameEndpoint(main, alt) ? "easy" : "hard";
}
