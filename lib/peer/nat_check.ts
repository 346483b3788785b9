/**
 * `p2p nat`: asks the coordinator, on two of its UDP ports, which public endpoint it sees for one
 * local socket, and explains what that means for direct connections.
 *
 * @example
 * ```ts
 * const report = await checkNat({ server: { host: "198.51.100.10", port: 7000 } });
 * console.log(report.summary);
 * ```
 * @module
 */
import { encodeWhoami, type NatKind, parseWhoamiAnswer, secondPort } from "../protocol/whoami.ts";
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import { type Clock, realClock } from "../clock.ts";
import { localAddressFor, UdpSocket } from "../net/udp.ts";

/** Options for {@linkcode checkNat}. */
export interface NatCheckOptions {
  server: Endpoint;
  /** The coordinator's second port; default `server.port + 1`. */
  altPort?: number;
  /** How long to wait for each answer; default 2 s (each request is sent 3 times). */
  timeoutMs?: number;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
}

/** What {@linkcode checkNat} found. */
export interface NatReport {
  local: string;
  /** Our endpoint as the coordinator's main port saw it. */
  public?: string;
  /** As its second port saw it. */
  publicAlt?: string;
  mapping: "none" | "endpoint-independent" | "endpoint-dependent" | "unknown";
  /** What a chat client behind this NAT reports to the coordinator (`nat`), when known. */
  kind?: NatKind;
  /** What it means, in words. */
  summary: string;
}

/** Runs the check. Rejects only if the local socket cannot be opened. */
export async function checkNat(options: NatCheckOptions): Promise<NatReport> {
  const clock = options.clock ?? realClock;
  const socket = await UdpSocket.bind({
    host: options.server.host.includes(":") ? "::" : "0.0.0.0",
  });
  const local = { host: localAddressFor(options.server), port: socket.local.port };
  const answers = new Map<number, Endpoint>();
  socket.onMessage((data, from) => {
    const seen = from.host === options.server.host ? parseWhoamiAnswer(data) : undefined;
    if (seen) answers.set(from.port, seen);
  });
  const ports = [options.server.port, secondPort(options.server, options.altPort).port];
  const whoami = encodeWhoami();
  try {
    for (let i = 0; i < 3 && answers.size < 2; i++) {
      for (const port of ports) {
        if (!answers.has(port)) socket.send(whoami, { host: options.server.host, port });
      }
      await new Promise<void>((r) => clock.setTimeout(r, (options.timeoutMs ?? 2000) / 3));
    }
  } finally {
    await socket.close();
  }
  const [main, alt] = ports.map((p) => answers.get(p));
  const report: NatReport = {
    local: formatEndpoint(local),
    public: main && formatEndpoint(main),
    publicAlt: alt && formatEndpoint(alt),
    mapping: "unknown",
    kind: main && alt ? natKindOf(main, alt) : undefined,
    summary: "",
  };
  if (!main) {
    report.summary =
      `No answer from ${formatEndpoint(options.server)}: is the coordinator running ` +
      `there, and is UDP allowed out?`;
  } else if (sameEndpoint(main, local)) {
    report.mapping = "none";
    report.kind = "easy";
    report.summary = "No NAT: the coordinator sees your own address. Others can reach you " +
      "directly unless a firewall drops unsolicited traffic.";
  } else if (!alt) {
    report.summary = `Behind a NAT (public endpoint ${formatEndpoint(main)}); the coordinator's ` +
      `second port did not answer, so the kind of NAT is unknown.`;
  } else if (report.kind === "easy") {
    report.mapping = "endpoint-independent";
    report.summary = `Behind a NAT that keeps one public endpoint (${formatEndpoint(main)}) for ` +
      `every destination: hole punching works, so you get direct connections with peers on ` +
      `most home routers.`;
  } else {
    report.mapping = "endpoint-dependent";
    report.summary = `Behind a symmetric NAT: a new public port for every destination ` +
      `(${formatEndpoint(main)}, then ${formatEndpoint(alt)}). Peers on ordinary home routers ` +
      `can often still be reached directly; with another symmetric NAT your chats go through ` +
      `the coordinator's relay (still end-to-end encrypted).`;
  }
  return report;
}

/**
 * What kind of NAT the two answers show: `easy` when the coordinator's main port (`main`) and its
 * second port (`alt`) saw the same public endpoint — one mapping for every destination, or no NAT
 * — and `hard` (a symmetric NAT: a new public port per destination) when they did not.
 *
 * @example
 * ```ts
 * import { natKindOf } from "./nat_check.ts";
 *
 * const seen = { host: "203.0.113.5", port: 4000 };
 * natKindOf(seen, seen); // "easy"
 * natKindOf(seen, { ...seen, port: 4001 }); // "hard"
 * ```
 */
export function natKindOf(main: Endpoint, alt: Endpoint): NatKind {
  return sameEndpoint(main, alt) ? "easy" : "hard";
}
