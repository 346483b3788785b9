/**
 * TURN REST credentials (the `use-auth-secret` scheme of coturn, also used by Synapse and
 * Galene): the coordinator and the TURN server share a secret; the coordinator hands a client
 * `username = <expiry>:<name>` (expiry in Unix seconds) and `password = base64(HMAC-SHA1(secret,
 * username))`, which the TURN server checks without asking anyone, and refuses after the expiry.
 * Also the `turn:HOST:PORT` URI the coordinator names its TURN server by. Pure functions.
 *
 * @example
 * ```ts
 * const secret = new TextEncoder().encode("s3cret");
 * const c = turnCredentials({ secret, name: "alice", nowMs: 0, ttlMs: 3_600_000 });
 * // { username: "3600:alice", password: "…", expiresAtMs: 3600000 }
 * parseTurnUri("turn:192.0.2.7:3478"); // { host: "192.0.2.7", port: 3478 }
 * ```
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { encodeBase64 } from "./turn.ts";

/** How long credentials are valid by default: one hour. */
export const DEFAULT_TURN_TTL_MS = 3_600_000;

/** Credentials for one client on the TURN server. */
export interface TurnCredentials {
  /** `<expiry>:<name>`, expiry in Unix seconds. */
  username: string;
  /** base64(HMAC-SHA1(secret, username)): 28 characters. */
  password: string;
  /** When the TURN server stops accepting them, in milliseconds since the epoch. */
  expiresAtMs: number;
}

/** Options of {@linkcode turnCredentials}. */
export interface TurnCredentialsOptions {
  /** The secret shared with the TURN server (its `static-auth-secret`). */
  secret: Uint8Array;
  /** The user they are for (logged by the TURN server; not a secret). */
  name: string;
  /** Now, in milliseconds since the epoch. */
  nowMs: number;
  /** How long they are valid; default {@linkcode DEFAULT_TURN_TTL_MS}. */
  ttlMs?: number;
}

/**
 * Makes TURN REST credentials for `name`, valid `ttlMs` from `nowMs`.
 *
 * @example
 * ```ts
 * turnCredentials({ secret: new Uint8Array(32), name: "bob", nowMs: Date.now() });
 * ```
 */
export function turnCredentials(options: TurnCredentialsOptions): TurnCredentials {
  const expiry = Math.floor((options.nowMs + (options.ttlMs ?? DEFAULT_TURN_TTL_MS)) / 1000);
  const username = `${expiry}:${options.name}`;
  const password = encodeBase64(hmac(sha1, options.secret, new TextEncoder().encode(username)));
  return { username, password, expiresAtMs: expiry * 1000 };
}

/** A TURN server's address as a `turn:` URI names it. */
export interface TurnServerAddress {
  /** An IPv4 address, an IPv6 address (without brackets) or a DNS name. */
  host: string;
  port: number;
}

/** A `turn:` URI that cannot be read. */
export class TurnUriError extends Error {
  override name = "TurnUriError";
}

const URI = /^turn:(?:\[([0-9A-Fa-f:.]+)\]|([0-9A-Za-z.-]+))(?::([0-9]{1,5}))?$/;
const DNS_NAME = /^(?=.{1,253}$)([0-9A-Za-z]([0-9A-Za-z-]{0,61}[0-9A-Za-z])?\.?)+$/;

/**
 * Reads `turn:HOST[:PORT]` (RFC 7065, UDP only: no `turns:`, no `?transport=`); the port
 * defaults to 3478. Throws {@linkcode TurnUriError} saying what is wrong.
 *
 * @example
 * ```ts
 * parseTurnUri("turn:[2001:db8::1]:3478"); // { host: "2001:db8::1", port: 3478 }
 * ```
 */
export function parseTurnUri(text: string): TurnServerAddress {
  const m = URI.exec(text);
  if (!m) {
    throw new TurnUriError(
      `"${text.slice(0, 80)}" is not a TURN URI: expected turn:HOST:PORT, e.g. turn:192.0.2.7:3478`,
    );
  }
  const host = m[1] ?? m[2];
  if (m[2] !== undefined && !DNS_NAME.test(host)) {
    throw new TurnUriError(`"${text.slice(0, 80)}": "${host}" is not a host name or address`);
  }
  const port = m[3] === undefined ? 3478 : Number(m[3]);
  if (port < 1 || port > 65535) {
    throw new TurnUriError(`"${text.slice(0, 80)}": port ${port} is not in 1..65535`);
  }
  return { host, port };
}

/**
 * Writes a `turn:` URI (IPv6 in brackets).
 *
 * @example
 * ```ts
 * formatTurnUri({ host: "::1", port: 3478 }); // "turn:[::1]:3478"
 * ```
 */
export function formatTurnUri(address: TurnServerAddress): string {
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `turn:${host}:${address.port}`;
}
