/**
 * Parsing of the command line's `NAME@HOST[:PORT]` argument (`p2p chat`, `p2p nat`), and
 * {@linkcode UsageError}, the mistake on the command line every `lib/cli/` module throws.
 *
 * @example
 * ```ts
 * splitTarget("alice@127.0.0.1:7000"); // { username: "alice", host: "127.0.0.1", port: 7000 }
 * ```
 * @module
 */
import { lookup } from "node:dns/promises";
import { isIP, isIPv6 } from "node:net";
import type { Endpoint } from "../protocol/endpoint.ts";
import { normalizeUsername, usernameProblem } from "../protocol/username.ts";

/** The port STUN servers listen on unless told otherwise (RFC 8489). */
export const STUN_PORT = 3478;

/** The port `p2p serve` listens on unless told otherwise. */
export const DEFAULT_PORT = 7000;

/** A mistake on the command line: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Splits `NAME@HOST[:PORT]` (HOST may be `[v6]`). Throws {@linkcode UsageError}. */
export function splitTarget(text: string): { username: string; host: string; port: number } {
  const at = text.lastIndexOf("@");
  if (at < 0) throw new UsageError(`"${text}" is not NAME@HOST[:PORT]: missing "@"`);
  // As typed: a decomposed é (some keyboards, pasted text) is the same name as a composed one.
  const username = normalizeUsername(text.slice(0, at));
  const problem = usernameProblem(username);
  if (problem) throw new UsageError(`Cannot use "${username}" as a name: ${problem}`);
  const rest = text.slice(at + 1);
  let host = rest;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    // Brackets mean an IPv6 literal: never hand what is inside them to DNS.
    const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(rest);
    if (!v6 || !isIPv6(v6[1])) {
      throw new UsageError(`"${text}" is not NAME@HOST[:PORT]: expected [IPv6 address] as HOST`);
    }
    host = v6[1];
    portText = v6[2];
  } else if (rest.split(":").length === 2) {
    [host, portText] = rest.split(":");
  }
  if (host === "") throw new UsageError(`"${text}" is not NAME@HOST[:PORT]: the host is empty`);
  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^[0-9]{1,5}$/.test(portText) || port < 1 || port > 65535) {
      throw new UsageError(`"${text}": port "${portText}" is not a number from 1 to 65535`);
    }
  }
  return { username, host, port };
}

/** Parses `NAME@HOST[:PORT]` and resolves HOST to an address (IPv4 preferred). */
export async function resolveServer(text: string): Promise<{ username: string; server: Endpoint }> {
  const { username, host, port } = splitTarget(text);
  if (isIP(host)) return { username, server: { host, port } };
  try {
    const { address } = await lookup(host, { family: 4 }).catch(() => lookup(host));
    return { username, server: { host: address, port } };
  } catch (err) {
    throw new UsageError(`Cannot resolve "${host}": ${(err as Error).message}`);
  }
}

/**
 * Resolves each `--stun HOST[:PORT]` (default port 3478; `[v6]` for an IPv6 literal), IPv4
 * preferred. Throws {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * await stunServers(["127.0.0.1", "[::1]:3479"]);
 * // [{ host: "127.0.0.1", port: 3478 }, { host: "::1", port: 3479 }]
 * ```
 */
export async function stunServers(values: readonly string[]): Promise<Endpoint[]> {
  const servers: Endpoint[] = [];
  for (const text of values) {
    const target = /:[0-9]*$/.test(text) && !text.endsWith("]") ? text : `${text}:${STUN_PORT}`;
    try {
      servers.push((await resolveServer(`stun@${target}`)).server);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      throw new UsageError(`--stun ${text}: ${err.message}`);
    }
  }
  return servers;
}
