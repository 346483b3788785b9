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
 *     scripts/deno run -A scripts/lab.ts demo                # coordinator + two chats, in tmux
 *
 * The lab outlives the command: its namespaces are named `p2plab-<node>` (`--prefix` changes it).
 * @module
 */

import { Lab } from "../tests/lab/netlab.ts";
import { buildTopology } from "../tests/lab/topology.ts";
import { ensureCached } from "../tests/support/lab_chat.ts";

const USAGE = `usage: lab.ts [--prefix P] COMMAND
  up                     build the standard topology (see docs/LAB.md)
  down                   delete every namespace of the lab
  status                 list nodes and their IPv4 addresses
  exec NODE CMD...       run CMD inside NODE (e.g. exec a1 ip route)
  loss NODE PERCENT      random loss on NODE's packets (0 removes it)
  udp-timeout NODE SEC   set NODE's conntrack UDP timeouts
  flush NODE             delete NODE's conntrack entries (NAT mappings)
  conntrack NODE         list NODE's conntrack entries
  demo                   build the lab if needed, run a coordinator on srv and chats for alice
                         (a1, behind home router ra) and bob (b1, behind home router rb) in a
                         tmux session to type into (without tmux: print the commands)`;

/** Builds the topology documented in docs/LAB.md and returns a printable summary. */
async function up(prefix: string): Promise<string> {
  const lab = await Lab.create({ prefix });
  try {
    const t = await buildTopology(lab);
    const lines = [t.srv, t.srv2, t.peer].map((h) => `${h.name.padEnd(5)} public     ${h.ip}`);
    for (const r of [t.ra, t.rb, t.ro, t.rs, t.cg, t.rc]) {
      const via = r.upstream ? ` (behind ${r.upstream.name})` : "";
      lines.push(
        `${r.name.padEnd(5)} ${r.kind.padEnd(10)} wan ${r.wanIp} lan ${r.lanSubnet}${via}`,
      );
    }
    for (const h of [t.a1, t.a2, t.b1, t.o1, t.s1, t.c1]) {
      lines.push(
        `${h.name.padEnd(5)} host       ${h.ip} behind ${h.router.name}, public ${h.publicIp}`,
      );
    }
    return lines.join("\n");
  } catch (e) {
    await lab.teardown();
    throw e;
  }
}

const ROOT = new URL("../", import.meta.url).pathname;
const DEMO_SESSION = "p2p-demo";

/**
 * Starts a coordinator on `srv` and two chats, alice on `a1` and bob on `b1` (two home NATs),
 * each in a pane of a tmux session, or prints the commands when tmux is missing.
 */
async function demo(prefix: string): Promise<number> {
  if (!(await Lab.attach(prefix)).nodes.some((n) => n.name === "srv")) {
    console.log(await up(prefix));
  }
  // The chats run without internet: main.ts and its packages must be cached beforehand.
  await ensureCached();
  const keys = await Deno.makeTempDir({ prefix: "p2p-lab-demo-" });
  const run = (node: string, args: string) =>
    `ip netns exec ${prefix}${node} env XDG_CONFIG_HOME=${keys} XDG_DATA_HOME=${keys}/data ` +
    `XDG_STATE_HOME=${keys}/state DENO_NO_UPDATE_CHECK=1 ` +
    `${Deno.execPath()} run -A ${ROOT}main.ts ${args}`;
  const serve = run("srv", "serve --host 0.0.0.0 --port 7000");
  const alice = run("a1", "chat alice@198.51.100.2:7000");
  const bob = run("b1", "chat bob@198.51.100.2:7000");
  const lab = `scripts/deno run -A scripts/lab.ts${
    prefix === "p2plab-" ? "" : ` --prefix ${prefix}`
  }`;
  const down = `${lab} down; rm -r ${keys}`;
  const stop = `tmux kill-session -t ${DEMO_SESSION}; ${down}`;
  let tmux: Deno.CommandOutput | undefined;
  try {
    const step = (args: string[]) => new Deno.Command("tmux", { args, stdout: "null" }).output();
    tmux = await step(["new-session", "-d", "-s", DEMO_SESSION, "-x", "200", "-y", "50", serve]);
    if (tmux.success) {
      await step(["split-window", "-t", DEMO_SESSION, "-h", `sleep 1; ${alice}`]);
      await step(["split-window", "-t", DEMO_SESSION, "-v", `sleep 1.5; ${bob}`]);
      await step(["select-layout", "-t", DEMO_SESSION, "tiled"]);
    }
  } catch {
    // No tmux: the commands are printed below.
  }
  if (tmux?.success) {
    console.log(`tmux session '${DEMO_SESSION}': coordinator, alice and bob, one pane each.
  attach:  tmux attach -t ${DEMO_SESSION}   (panes: Ctrl-b + arrow; detach: Ctrl-b d)
  try:     /msg bob hello   in alice's pane, then /who
  stop:    ${stop}`);
    return 0;
  }
  console.log(
    `Without tmux (or with a session '${DEMO_SESSION}' already running), run each in a terminal:
  ${serve}
  ${alice}
  ${bob}
then type /msg bob hello in alice's. Stop: Ctrl-C each, then ${down}`,
  );
  return 0;
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
  if (cmd === "demo") return await demo(prefix);
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
