/**
 * Parsers of option values on the command line (ports, durations, seconds, `--bind`), each
 * throwing a {@linkcode UsageError} that names the option and says what it takes.
 *
 * @example
 * ```ts
 * durationOption("14d", "--mailbox-ttl"); // 1209600000
 * bindOption("[::]:4000"); // { host: "::", port: 4000 }
 * ```
 * @module
 */
import { isIP } from "node:net";
import type { Endpoint } from "../protocol/endpoint.ts";
import { UsageError } from "./target.ts";

/** `--bind ADDR[:PORT]` (`[v6]:PORT` for IPv6); no port, or 0, means any free port. */
export function bindOption(text: string): Endpoint {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:\[\]]+)(?::(\d+))?$/.exec(text);
  const port = Number(m?.[2] ?? 0);
  if (!m || !isIP(m[1]) || port > 65535) {
    throw new UsageError(
      `--bind must be ADDR[:PORT], e.g. 0.0.0.0:4000 or [::]:4000, not "${text}"`,
    );
  }
  return { host: m[1], port };
}

/** A port number, `name` the option's; 0 (any free port) only if `allowZero`. */
export function portOption(text: string, name: string, allowZero: boolean): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n > 65535 || (!allowZero && n === 0)) {
    throw new UsageError(`${name} must be a port number from ${allowZero ? 0 : 1} to 65535`);
  }
  return n;
}

/** A duration: a number with a unit (`d`, `h`, `m`, `s`, `ms`); in milliseconds. */
export function durationOption(text: string, name: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(text);
  const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const ms = m ? Number(m[1]) * units[m[2] as keyof typeof units] : 0;
  if (!(ms >= 1)) {
    throw new UsageError(`${name} must be a duration such as 14d, 12h or 30s, not "${text}"`);
  }
  return ms;
}

/**
 * A size in bytes: a whole number with an optional unit K, M, G or T (powers of 1024).
 *
 * @example
 * ```ts
 * sizeOption("4G", "--max-file-size"); // 4294967296
 * ```
 */
export function sizeOption(text: string, name: string): number {
  const m = /^([0-9]+)([KMGT]?)i?B?$/i.exec(text);
  const units: Record<string, number> = {
    "": 1,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
    T: 1024 ** 4,
  };
  const n = m ? Number(m[1]) * units[m[2].toUpperCase()] : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new UsageError(`${name} must be a size such as 1048576, 500M or 4G, not "${text}"`);
  }
  return n;
}

/** A positive number of seconds (fractions allowed). */
export function secondsOption(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a positive number`);
  return n;
}

/**
 * `--metrics HOST:PORT` (`[v6]:PORT`), or `PORT` alone for 127.0.0.1: where the metrics are
 * served. The host is never implied to be a public one: a bare port binds to loopback.
 *
 * @example
 * ```ts
 * metricsOption("9464"); // { host: "127.0.0.1", port: 9464 }
 * metricsOption("[::1]:9464"); // { host: "::1", port: 9464 }
 * ```
 */
export function metricsOption(text: string): Endpoint {
  if (/^[0-9]+$/.test(text)) {
    return { host: "127.0.0.1", port: portOption(text, "--metrics", true) };
  }
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\[\]]+):(\d+)$/.exec(text);
  if (!m || !isIP(m[1]) || Number(m[2]) > 65535) {
    throw new UsageError(
      `--metrics must be HOST:PORT or PORT, e.g. 127.0.0.1:9464 or [::1]:9464, not "${text}"`,
    );
  }
  return { host: m[1], port: Number(m[2]) };
}

/**
 * Whether `host` is a loopback address (127.0.0.0/8, ::1).
 *
 * @example
 * ```ts
 * isLoopback("127.0.0.1"); // true
 * ```
 */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === "::1" || /^::ffff:127\./i.test(host);
}
