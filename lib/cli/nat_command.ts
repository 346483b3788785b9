/**
 * `p2p nat [HOST[:PORT]] [--stun HOST[:PORT]]…`: asks the coordinator's two ports, and any STUN
 * servers, how our NAT maps one socket (`lib/peer/nat_check.ts`), asks the router for a mapping
 * of that socket's port and deletes it again (`lib/peer/port_mapping.ts`), and prints the report,
 * as text or JSON.
 *
 * @example
 * ```ts
 * const code = await nat(["127.0.0.1:7000", "--json"]);
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { checkNat, checkPortMapping, type PortMappingReport } from "../peer.ts";
import { parseEndpoint } from "../protocol/endpoint.ts";
import { NAT_HELP } from "./help.ts";
import { resolveServer, stunServers, UsageError } from "./target.ts";

/** Runs `p2p nat ARGS`; resolves with the exit code (1 when no public endpoint was seen). */
export async function nat(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      "no-port-mapping": { type: "boolean", default: false },
      stun: { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(NAT_HELP);
    return 0;
  }
  const stun = await stunServers(values.stun);
  if (positionals.length > 1 || (positionals.length === 0 && stun.length === 0)) {
    throw new UsageError("nat takes one argument, HOST[:PORT], or --stun HOST[:PORT] (or both)");
  }
  const server = positionals.length === 1
    ? (await resolveServer(`nat@${positionals[0]}`)).server
    : undefined;
  const report = await checkNat({ server, stun });
  let portMapping: PortMappingReport | undefined;
  if (!values["no-port-mapping"]) {
    portMapping = await checkPortMapping({
      port: parseEndpoint(report.local).port,
      // On loopback (tests) no router is asked: the first server says where we are.
      server: server ?? stun[0],
      publicHost: () => report.public && parseEndpoint(report.public).host,
    });
  }
  if (values.json) console.log(JSON.stringify({ ...report, portMapping }));
  else {
    console.log(`local endpoint:  ${report.local}`);
    console.log(
      `public endpoint: ${report.public ?? "unknown"}` +
        (report.publicAlt && report.publicAlt !== report.public ? ` / ${report.publicAlt}` : ""),
    );
    for (const s of report.stun ?? []) {
      console.log(`STUN ${s.server}: ${s.public ?? "no answer"}`);
    }
    console.log(`mapping:         ${report.mapping}`);
    if (portMapping) console.log(`port mapping:    ${describePortMapping(portMapping)}`);
    console.log(report.summary);
  }
  return report.public ? 0 : 1;
}

function describePortMapping(r: PortMappingReport): string {
  if ("reason" in r) return `none (${r.reason})`;
  const protocol = { pcp: "PCP", natpmp: "NAT-PMP", upnp: "UPnP-IGD" }[r.protocol];
  return `${r.external} by ${protocol}, lifetime ${r.lifetime} s (deleted again)`;
}
