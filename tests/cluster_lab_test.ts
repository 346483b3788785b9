/**
 * A partition between a cluster member and NATS, in the lab (docs/CLUSTER.md, "Faults"): a
 * nats-server and two coordinators on public hosts of the lab's core, a chat on each; nft in the
 * first coordinator's namespace drops its traffic to and from NATS. Each coordinator keeps serving
 * its own user, says `CLUSTER DOWN`, and the other's user leaves its list; when the rule goes,
 * both lists heal. Needs root (skipped with the reason otherwise, unless P2P_LAB=require).
 */
import { Lab, type PublicHost } from "./lab/netlab.ts";
import { ensureCached, labGate, LabProcess } from "./support/lab_chat.ts";

const { ignore, requireLab } = await labGate("cluster partition");
const NATS_PORT = 4222;
const PORT = 7000;

Deno.test({ name: "cluster lab: a member cut off from NATS, then healed", ignore }, async () => {
  requireLab();
  await ensureCached();
  const lab = await Lab.create();
  const home = await Deno.makeTempDir({ prefix: "p2p-cluster-lab-" });
  const processes: LabProcess[] = [];
  let nats: Deno.ChildProcess | undefined;
  try {
    const natsHost = await lab.addPublicHost("nats");
    const c1 = await lab.addPublicHost("c1");
    const c2 = await lab.addPublicHost("c2");
    const h1 = await lab.addPublicHost("h1");
    const h2 = await lab.addPublicHost("h2");
    const token = crypto.randomUUID();
    const tokenFile = `${home}/nats-token`;
    await Deno.writeTextFile(tokenFile, token);
    nats = lab.spawn(natsHost, [
      "nats-server",
      "-a",
      natsHost.ip,
      "-p",
      String(NATS_PORT),
      "--auth",
      token,
    ], { stdout: "null", stderr: "null" });
    const env = {
      XDG_CONFIG_HOME: home,
      XDG_DATA_HOME: `${home}/data`,
      XDG_STATE_HOME: `${home}/state`,
    };
    const serve = (host: PublicHost, member: string): LabProcess => {
      const p = new LabProcess(lab, host, member, [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        String(PORT),
        "--no-mailbox",
        "--cluster",
        `nats://${natsHost.ip}:${NATS_PORT}`,
        "--community",
        "lab",
        "--member",
        member,
        "--cluster-token-file",
        tokenFile,
        "--member-timeout",
        "3",
      ], { ...env, XDG_STATE_HOME: `${home}/state-${member}` });
      processes.push(p);
      return p;
    };
    const s1 = serve(c1, "c1");
    const s2 = serve(c2, "c2");
    for (const s of [s1, s2]) {
      await s.stderr.waitFor((l) => l.includes(` UDP ${PORT}`), 60_000, "coordinator listening");
    }
    const chat = (user: string, host: PublicHost, server: PublicHost): LabProcess => {
      const p = new LabProcess(lab, host, user, [
        "chat",
        `${user}@${server.ip}:${PORT}`,
        "--json",
        "--keepalive",
        "2",
      ], env);
      processes.push(p);
      return p;
    };
    const alice = chat("alice", h1, c1);
    const bob = chat("bob", h2, c2);
    const online = (p: LabProcess, user: string, after = 0) =>
      p.event((e) => e.at > after && e.event === "online" && e.user === user, 30_000, `${user} on`);
    const offline = (p: LabProcess, user: string, after = 0) =>
      p.event(
        (e) => e.at > after && e.event === "offline" && e.user === user,
        30_000,
        `${user} off`,
      );
    await Promise.all([online(alice, "bob"), online(bob, "alice")]);

    // Cut c1 off from NATS, both ways.
    const cut = performance.now();
    await lab.exec(c1, [
      "nft",
      `add table inet partition; add chain inet partition out { type filter hook output priority 0; }; ` +
      `add chain inet partition in { type filter hook input priority 0; }; ` +
      `add rule inet partition out ip daddr ${natsHost.ip} drop; ` +
      `add rule inet partition in ip saddr ${natsHost.ip} drop`,
    ], { check: true });
    await Promise.all([offline(alice, "bob", cut), offline(bob, "alice", cut)]);
    await s1.stderr.waitFor((l) => l.includes("CLUSTER DOWN"), 30_000, "c1 says NATS is lost");

    // Heal: both see each other again.
    const healed = performance.now();
    await lab.exec(c1, ["nft", "delete table inet partition"], { check: true });
    await Promise.all([online(alice, "bob", healed), online(bob, "alice", healed)]);
  } finally {
    for (const p of processes) await p.dispose();
    try {
      nats?.kill("SIGKILL");
    } catch {
      // gone
    }
    await nats?.status;
    await lab.teardown();
    await Deno.remove(home, { recursive: true });
  }
});
