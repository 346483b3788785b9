/**
 * IP endpoints as the seed protocol writes them: `a.b.c.d:port` or `[v6]:port`; and the compact
 * form of batched presence lines, where an IPv4 endpoint is 8 base64url characters.
 *
 * Pure functions, no I/O.
 *
 * @example
 * ```ts
 * const ep = parseEndpoint("192.0.2.1:4000");
 * formatEndpoint(ep); // "192.0.2.1:4000"
 * formatCompactEndpoint(ep); // "wAACAQ-g"
 * ```
 * @module
 */
import { isIPv4, isIPv6 } from "node:net";
import { decodeBase64url, encodeBase64url } from "./base64url.ts";

/** A UDP or TCP endpoint. `host` is a literal IPv4 or IPv6 address (no brackets). */
export interface Endpoint {
  host: string;
  port: number;
}

/** Thrown when an endpoint string cannot be parsed; the message says why. */
export class EndpointError extends Error {
  override name = "EndpointError";
}

/** Parses `a.b.c.d:port` or `[v6]:port`. Throws {@linkcode EndpointError} on bad input. */
export function parseEndpoint(text: string): Endpoint {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") {
      throw new EndpointError(`Cannot parse endpoint "${text}": expected [v6]:port`);
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) {
      throw new EndpointError(`Cannot parse endpoint "${text}": "${host}" is not an IPv6 address`);
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new EndpointError(`Cannot parse endpoint "${text}": missing ":port"`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!isIPv4(host)) {
      throw new EndpointError(`Cannot parse endpoint "${text}": "${host}" is not an IPv4 address`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) {
    throw new EndpointError(`Cannot parse endpoint "${text}": port "${portText}" is not a number`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) {
    throw new EndpointError(
      `Cannot parse endpoint "${text}": port ${port} is out of range 1-65535`,
    );
  }
  return { host, port };
}

/** Formats an endpoint as `a.b.c.d:port` or `[v6]:port`. */
export function formatEndpoint(ep: Endpoint): string {
  return ep.host.includes(":") ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
}

/** True when both endpoints name the same address and port. */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.host === b.host;
}

/**
 * Formats an endpoint compactly, for batched presence lines: an IPv4 endpoint as the base64url
 * form of its 4 address bytes and 2 port bytes (big-endian), 8 characters instead of up to 21;
 * an IPv6 endpoint as {@linkcode formatEndpoint} writes it (its text form is kept as is, so that
 * the same address is always written the same way).
 */
export function formatCompactEndpoint(ep: Endpoint): string {
  if (ep.host.includes(":")) return formatEndpoint(ep);
  const bytes = new Uint8Array(6);
  const parts = ep.host.split(".");
  for (let i = 0; i < 4; i++) bytes[i] = Number(parts[i]);
  bytes[4] = ep.port >> 8;
  bytes[5] = ep.port & 0xff;
  return encodeBase64url(bytes);
}

/**
 * Parses what {@linkcode formatCompactEndpoint} writes: 8 base64url characters (IPv4), or any
 * other form {@linkcode parseEndpoint} reads. Throws {@linkcode EndpointError} on bad input.
 */
export function parseCompactEndpoint(text: string): Endpoint {
  // The shortest IPv4 text is 9 characters; an IPv6 one (`[::1]:80`) can be 8, but starts with `[`.
  if (text.length !== 8 || text.startsWith("[")) return parseEndpoint(text);
  const bytes = decodeBase64url(text);
  if (bytes === null) {
    throw new EndpointError(`Cannot parse endpoint "${text}": not 8 base64url characters`);
  }
  const port = bytes[4] << 8 | bytes[5];
  if (port === 0) throw new EndpointError(`Cannot parse endpoint "${text}": port 0`);
  return { host: bytes.subarray(0, 4).join("."), port };
}
