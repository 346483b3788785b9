/**
 * Parsing of the command line's `NAME@HOST[:PORT]` argument (`p2p chat`, `p2p nat`), and
 * {@linkcode UsageError}, the mistake on the command line every `lib/cli/` module throws.
 *
 * @example
 * ```ts
 * splitTarget("alice@127.0.0.1:7000"); // { username: "alice", host: "127.0.0.1", port: 7000 }
 * splitTargets("alice@c1:7000,c2"); // { username: "alice", servers: [c1:7000, c2:7000] }
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
  const { username, rest } = splitName(text);
  return { username, ...splitHost(text, rest) };
}

/**
 * Splits `NAME@HOST[:PORT][,HOST[:PORT]…]`: the coordinators of one community (docs/CLUSTER.md),
 * tried in turn. Throws {@linkcode UsageError}.
 */
export function splitTargets(
  text: string,
): { username: string; servers: { host: string; port: number }[] } {
  const { username, rest } = splitName(text);
  return { username, servers: rest.split(",").map((part) => splitHost(text, part)) };
}

function splitName(text: string): { username: string; rest: string } {
  const at = text.lastIndexOf("@");
  if (at < 0) throw new UsageError(`"${text}" is not NAME@HOST[:PORT]: missing "@"`);
  // As typed: a decomposed é (some keyboards, pasted text) is the same name as a composed one.
  const username = normalizeUsername(text.slice(0, at));
  const problem = usernameProblem(username);
  if (problem) throw new UsageError(`Cannot use "${username}" as a name: ${problem}`);
  return { username, rest: text.slice(at + 1) };
}

/** `HOST[:PORT]` of `text` (quoted in errors). */
function splitHost(text: string, rest: string): { host: string; port: number } {
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
  return { host, port };
}

/** Parses `NAME@HOST[:PORT]` and resolves HOST to an address (IPv4 preferred). */
export async function resolveServer(text: string): Promise<{ username: string; server: Endpoint }> {
  const { username, host, port } = splitTarget(text);
  return { username, server: await resolveHost(host, port) };
}

/**
 * Parses `NAME@HOST[:PORT][,HOST[:PORT]…]` and resolves each HOST: the first server, and the
 * others of the community to fall back on.
 */
export async function resolveServers(
  text: string,
): Promise<{ username: string; server: Endpoint; fallbacks: Endpoint[] }> {
  const { username, servers } = splitTargets(text);
  const resolved: Endpoint[] = [];
  for (const { host, port } of servers) resolved.push(await resolveHost(host, port));
  return { username, server: resolved[0], fallbacks: resolved.slice(1) };
}

async function resolveHost(host: string, port: number): Promise<Endpoint> {
  if (isIP(host)) return { host, port };
  try {
    const { address } = await lookup(host, { family: 4 }).catch(() => lookup(host));
    return { host: address, port };
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
