/**
 * IP endpoints as the seed protocol writes them: `a.b.c.d:port` or `[v6]:port`.
 *
 * Pure functions, no I/O.
 *
 * @example
 * ```ts
 * const ep = parseEndpoint("192.0.2.1:4000");
 * formatEndpoint(ep); // "192.0.2.1:4000"
 * ```
 * @module
 */
import { isIPv4, isIPv6 } from "node:net";

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
