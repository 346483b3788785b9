/**
 * The lab's documented topology (docs/LAB.md): three public hosts, one router of each kind, a home
 * router behind a carrier-grade NAT, and hosts behind them. The NAT tests and `scripts/lab.ts up`
 * both build it here, so that what the tests check is what one can explore by hand.
 *
 * @example
 * ```ts
 * import { Lab } from "./netlab.ts";
 * import { buildTopology } from "./topology.ts";
 *
 * const lab = await Lab.create();
 * const { srv, a1 } = await buildTopology(lab); // alice's host a1 behind home router ra
 * await lab.teardown();
 * ```
 * @module
 */
import type { Host, Lab, PublicHost, Router } from "./netlab.ts";

/** Every node of the documented topology, by name. */
export interface Topology {
  srv: PublicHost;
  srv2: PublicHost;
  peer: PublicHost;
  ra: Router;
  rb: Router;
  ro: Router;
  rs: Router;
  cg: Router;
  rc: Router;
  a1: Host;
  a2: Host;
  b1: Host;
  o1: Host;
  s1: Host;
  c1: Host;
}

/** Adds the documented topology's nodes to `lab`, in the order that gives their addresses. */
export async function buildTopology(lab: Lab): Promise<Topology> {
  const srv = await lab.addPublicHost("srv");
  const srv2 = await lab.addPublicHost("srv2");
  const peer = await lab.addPublicHost("peer");
  const ra = await lab.addRouter("ra", { kind: "home" });
  const rb = await lab.addRouter("rb", { kind: "home" });
  const ro = await lab.addRouter("ro", { kind: "open" });
  const rs = await lab.addRouter("rs", { kind: "symmetric" });
  const cg = await lab.addRouter("cg", { kind: "cgnat" });
  const rc = await lab.addRouter("rc", { kind: "home", upstream: cg, lanSubnet: "192.168.1.0/24" });
  return {
    srv,
    srv2,
    peer,
    ra,
    rb,
    ro,
    rs,
    cg,
    rc,
    a1: await lab.addHost("a1", ra),
    a2: await lab.addHost("a2", ra),
    b1: await lab.addHost("b1", rb),
    o1: await lab.addHost("o1", ro),
    s1: await lab.addHost("s1", rs),
    c1: await lab.addHost("c1", rc),
  };
}
