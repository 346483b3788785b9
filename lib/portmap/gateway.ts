/**
 * Where to ask for a port mapping: the default IPv4 gateway. On Linux it is read from
 * `/proc/net/route` ({@linkcode parseProcNetRoute} is the pure part); other systems get a reason
 * instead, and port mapping is skipped there.
 *
 * @example
 * ```ts
 * import { defaultGateway } from "./gateway.ts";
 *
 * const found = await defaultGateway();
 * console.log("gateway" in found ? found.gateway : found.reason);
 * ```
 * @module
 */

/** The default gateway, or why it is not known. */
export type GatewayLookup = { gateway: string } | { reason: string };

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/**
 * The gateway of the default route with the lowest metric in the text of `/proc/net/route`, or
 * undefined when there is none.
 *
 * @example
 * ```ts
 * const text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n" +
 *   "eth0\t00000000\t0100010A\t0003\t0\t0\t0\t00000000\n";
 * parseProcNetRoute(text); // "10.1.0.1"
 * ```
 */
export function parseProcNetRoute(text: string): string | undefined {
  let best: { gateway: string; metric: number } | undefined;
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [, destination, gatewayHex, flagsHex, , , metricText, mask] = f;
    const flags = parseInt(flagsHex, 16);
    if (destination !== "00000000" || mask !== "00000000") continue;
    if ((flags & RTF_UP) === 0 || (flags & RTF_GATEWAY) === 0) continue;
    if (!/^[0-9A-Fa-f]{8}$/.test(gatewayHex)) continue;
    const n = parseInt(gatewayHex, 16);
    // The kernel prints the address in host order: little-endian on every Linux we run on.
    const gateway = [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join(".");
    const metric = Number(metricText);
    if (gateway === "0.0.0.0" || !Number.isFinite(metric)) continue;
    if (best === undefined || metric < best.metric) best = { gateway, metric };
  }
  return best?.gateway;
}

/**
 * Finds the default IPv4 gateway (Linux: `/proc/net/route`).
 *
 * @example
 * ```ts
 * const found = await defaultGateway();
 * ```
 */
export async function defaultGateway(): Promise<GatewayLookup> {
  if (Deno.build.os !== "linux") {
    return { reason: `finding the default gateway is not supported on ${Deno.build.os}` };
  }
  let text: string;
  try {
    text = await Deno.readTextFile("/proc/net/route");
  } catch (err) {
    return { reason: `cannot read /proc/net/route: ${(err as Error).message}` };
  }
  const gateway = parseProcNetRoute(text);
  return gateway ? { gateway } : { reason: "no default IPv4 route (no gateway to ask)" };
}
