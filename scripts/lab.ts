/**
 * Builds and drives the NAT lab by hand (root needed). See docs/LAB.md.
 *
 *     scripts/deno run -A scripts/lab.ts up                  # build the standard topology
 *     scripts/deno run -A scripts/lab.ts status              # namespaces and addresses
 *     scripts/deno run -A scripts/lab.ts exec a1 ip route    # run a command in a node
 *     scripts/deno run -A scripts/lab.ts loss ra 20          # 20% loss at ra (0 removes)
 *     scripts/deno run -A scripts/lab.ts udp-timeout ra 10   # conntrack UDP timeouts at ra
 *     scripts/deno run -A scripts/lab.ts flush ra            # drop all of ra's NAT mappings
 *     scripts/deno run -A scripts/lab.ts conntrack ra        # list ra's conntrack entries
 *     scripts/deno run -A scripts/lab.ts down                # delete everything
 *
 * The lab outlives the command: its namespaces are named `p2plab-<node>` (`--prefix` changes it).
 * @module
 */

import { Lab } from "../tests/lab/netlab.ts";

const USAGE = `usage: lab.ts [--prefix P] COMMAND
  up                     build the standard topology (see docs/LAB.md)
  down                   delete every namespace of the lab
  status                 list nodes and their IPv4 addresses
  exec NODE CMD...       run CMD inside NODE (e.g. exec a1 ip route)
  loss NODE PERCENT      random loss on NODE's packets (0 removes it)
  udp-timeout NODE SEC   set NODE's conntrack UDP timeouts
  flush NODE             delete NODE's conntrack entries (NAT mappings)
  conntrack NODE         list NODE's conntrack entries`;

/** Builds the topology documented in docs/LAB.md and returns a printable summary. */
async function up(prefix: string): Promise<string> {
  const lab = await Lab.create({ prefix });
  try {
    const lines: string[] = [];
    const srv = await lab.addPublicHost("srv");
    const srv2 = await lab.addPublicHost("srv2");
    const peer = await lab.addPublicHost("peer");
    for (const h of [srv, srv2, peer]) lines.push(`${h.name.padEnd(5)} public     ${h.ip}`);
    const ra = await lab.addRouter("ra", { kind: "home" });
    const rb = await lab.addRouter("rb", { kind: "home" });
    const ro = await lab.addRouter("ro", { kind: "open" });
    const rs = await lab.addRouter("rs", { kind: "symmetric" });
    const cg = await lab.addRouter("cg", { kind: "cgnat" });
    const rc = await lab.addRouter("rc", {
      kind: "home",
      upstream: cg,
      lanSubnet: "192.168.1.0/24",
    });
    for (const r of [ra, rb, ro, rs, cg, rc]) {
      const via = r.upstream ? ` (behind ${r.upstream.name})` : "";
      lines.push(
        `${r.name.padEnd(5)} ${r.kind.padEnd(10)} wan ${r.wanIp} lan ${r.lanSubnet}${via}`,
      );
    }
    for (
      const [name, router] of [["a1", ra], ["a2", ra], ["b1", rb], ["o1", ro], ["s1", rs], [
        "c1",
        rc,
      ]] as const
    ) {
      const h = await lab.addHost(name, router);
      lines.push(
        `${name.padEnd(5)} host       ${h.ip} behind ${router.name}, public ${h.publicIp}`,
      );
    }
    return lines.join("\n");
  } catch (e) {
    await lab.teardown();
    throw e;
  }
}

async function status(lab: Lab): Promise<string> {
  if (lab.nodes.length === 0) return `no lab is up (prefix '${lab.prefix}')`;
  const out: string[] = [];
  for (const node of [lab.core, ...lab.nodes]) {
    const r = await lab.exec(node, ["ip", "-br", "-4", "addr"], { check: true });
    const addrs = r.stdout.split("\n").filter((l) => l !== "" && !l.startsWith("lo "))
      .map((l) => l.replace(/\s+/g, " ").trim());
    out.push(`${node.name.padEnd(5)} ${node.netns}\n  ${addrs.join("\n  ")}`);
  }
  return out.join("\n");
}

/** Runs the CLI and returns its exit code. */
async function main(argv: string[]): Promise<number> {
  let prefix = "p2plab-";
  const args = [...argv];
  if (args[0] === "--prefix") {
    prefix = args[1] ?? "";
    args.splice(0, 2);
  }
  const [cmd, node, ...rest] = args;
  const reason = await Lab.available();
  if (reason !== null) {
    console.error(`lab: ${reason}`);
    return 1;
  }
  if (cmd === "up") {
    console.log(await up(prefix));
    return 0;
  }
  const lab = await Lab.attach(prefix);
  switch (cmd) {
    case "down":
      await lab.teardown();
      return 0;
    case "status":
      console.log(await status(lab));
      return 0;
    case "exec": {
      if (node === undefined || rest.length === 0) break;
      const child = lab.spawn(lab.node(node), rest, {
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      });
      return (await child.status).code;
    }
    case "loss":
      if (node === undefined || rest.length !== 1) break;
      await lab.setLoss(lab.node(node), Number(rest[0]));
      return 0;
    case "udp-timeout":
      if (node === undefined || rest.length !== 1) break;
      await lab.setUdpTimeout(lab.node(node), Number(rest[0]));
      return 0;
    case "flush":
      if (node === undefined) break;
      await lab.flushConntrack(lab.node(node));
      return 0;
    case "conntrack":
      if (node === undefined) break;
      console.log((await lab.listConntrack(lab.node(node))).join("\n"));
      return 0;
  }
  console.error(USAGE);
  return 2;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`lab: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
