/**
 * `p2p nat`: asks the coordinator, on two of its UDP ports, and any STUN servers given
 * (`--stun`), which public endpoint each sees for one local socket, and explains what that means
 * for direct connections.
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
import { StunAsker } from "./stun_client.ts";

/** Options for {@linkcode checkNat}. */
export interface NatCheckOptions {
  /** The coordinator (asked with `whoami` on its two ports); optional with `stun`. */
  server?: Endpoint;
  /** The coordinator's second port; default `server.port + 1`. */
  altPort?: number;
  /** STUN servers to ask as well (`--stun`): each is one more destination to compare. */
  stun?: Endpoint[];
  /** How long to wait for each answer; default 2 s (each request is sent 3 times). */
  timeoutMs?: number;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
}

/** What one STUN server said. */
export interface StunReport {
  server: string;
  /** Our endpoint as it saw it; missing when it did not answer. */
  public?: string;
}

/** What {@linkcode checkNat} found. */
export interface NatReport {
  local: string;
  /** Our endpoint as the coordinator's main port saw it (without a coordinator: the first STUN server that answered). */
  public?: string;
  /** As its second port saw it. */
  publicAlt?: string;
  /** What each STUN server saw (only with `stun`). */
  stun?: StunReport[];
  mapping: "none" | "endpoint-independent" | "endpoint-dependent" | "unknown";
  /** What a chat client behind this NAT reports to the coordinator (`nat`), when known. */
  kind?: NatKind;
  /** What it means, in words. */
  summary: string;
}

/**
 * Runs the check: `whoami` to the coordinator's two ports and a Binding request to each STUN
 * server, all from one socket, three tries each. Every answer is one destination's view of the
 * same socket: all the same, one mapping for every destination; any two differ, a symmetric NAT.
 * Rejects only if the local socket cannot be opened, or `RangeError` with neither a server nor a
 * STUN server.
 */
export async function checkNat(options: NatCheckOptions): Promise<NatReport> {
  const clock = options.clock ?? realClock;
  const stun = options.stun ?? [];
  const first = options.server ?? stun[0];
  if (first === undefined) throw new RangeError("Cannot check the NAT: no server to ask");
  const socket = await UdpSocket.bind({ host: first.host.includes(":") ? "::" : "0.0.0.0" });
  const local = { host: localAddressFor(first), port: socket.local.port };
  const whoamiPorts = options.server
    ? [options.server.port, secondPort(options.server, options.altPort).port]
    : [];
  const answers = new Map<number, Endpoint>();
  const asker = new StunAsker();
  const stunSeen = new Map<string, Endpoint>();
  socket.onMessage((data, from) => {
    const seen = asker.answer(data, from);
    if (seen) stunSeen.set(formatEndpoint(from), seen);
    else if (from.host === options.server?.host) {
      const you = parseWhoamiAnswer(data);
      if (you) answers.set(from.port, you);
    }
  });
  const whoami = encodeWhoami();
  const done = () => answers.size === whoamiPorts.length && stunSeen.size === stun.length;
  try {
    for (let i = 0; i < 3 && !done(); i++) {
      for (const port of whoamiPorts) {
        if (!answers.has(port)) socket.send(whoami, { host: options.server!.host, port });
      }
      for (const server of stun) {
        if (!stunSeen.has(formatEndpoint(server))) socket.send(asker.request(server), server);
      }
      await new Promise<void>((r) => clock.setTimeout(r, (options.timeoutMs ?? 2000) / 3));
    }
  } finally {
    await socket.close();
  }
  const [main, alt] = whoamiPorts.map((p) => answers.get(p));
  const stunReports = stun.map((server) => {
    const seen = stunSeen.get(formatEndpoint(server));
    return { server: formatEndpoint(server), ...(seen ? { public: formatEndpoint(seen) } : {}) };
  });
  // Every view of the socket, the coordinator's first: the same family as the socket only.
  const views = [main, alt, ...stun.map((s) => stunSeen.get(formatEndpoint(s)))]
    .filter((v): v is Endpoint => v !== undefined);
  const seen = views[0];
  const report: NatReport = {
    local: formatEndpoint(local),
    public: seen && formatEndpoint(seen),
    publicAlt: alt && formatEndpoint(alt),
    ...(options.stun ? { stun: stunReports } : {}),
    mapping: "unknown",
    kind: views.length >= 2
      ? natKindOf(seen, views.find((v) => !sameEndpoint(v, seen)) ?? seen)
      : undefined,
    summary: "",
  };
  const asked = [
    ...(options.server ? [formatEndpoint(options.server)] : []),
    ...stun.map((s) => `STUN ${formatEndpoint(s)}`),
  ].join(", ");
  if (!seen) {
    report.summary = `No answer from ${asked}: is ${
      options.server ? "the coordinator" : "the STUN server"
    } running there, and is UDP allowed out?`;
  } else if (sameEndpoint(seen, local)) {
    report.mapping = "none";
    report.kind = "easy";
    report.summary =
      `No NAT: ${
        main ? "the coordinator" : "the STUN server"
      } sees your own address. Others can reach you directly unless a firewall drops unsolicited ` +
      `traffic.`;
  } else if (views.length < 2) {
    report.summary = `Behind a NAT (public endpoint ${formatEndpoint(seen)}); ${
      options.server && stun.length === 0
        ? "the coordinator's second port did not answer"
        : "only one server answered"
    }, so the kind of NAT is unknown.`;
  } else if (report.kind === "easy") {
    report.mapping = "endpoint-independent";
    report.summary = `Behind a NAT that keeps one public endpoint (${formatEndpoint(seen)}) for ` +
      `every destination: hole punching works, so you get direct connections with peers on ` +
      `most home routers.`;
  } else {
    const other = views.find((v) => !sameEndpoint(v, seen))!;
    report.mapping = "endpoint-dependent";
    report.summary = `Behind a symmetric NAT: a new public port for every destination ` +
      `(${formatEndpoint(seen)}, then ${formatEndpoint(other)}). Peers on ordinary home routers ` +
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
