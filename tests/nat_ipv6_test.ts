// IPv6 and STUN in the NAT lab (tests/lab/netlab.ts with `ipv6`): routed /64s behind the routers, no
// NAT66, and a stateful firewall on each router that drops unsolicited inbound traffic, as home
// routers do. Then the messenger: two dual-stack peers go direct over IPv6 (their simultaneous
// probes open both firewalls), and an IPv4-only peer still goes direct to a dual-stack one over
// IPv4. The coordinator listens on `::` (both families on one socket). Needs root; skipped with
// the reason otherwise, unless P2P_LAB=require (then it fails). And `p2p nat --stun` against a
// real coturn on the lab's internet, from behind a home and a symmetric NAT.
import assert from "node:assert/strict";
import { type Host, Lab, type PublicHost } from "./lab/netlab.ts";
import { UdpProbe } from "./lab/udp_tool.ts";
import {
  ensureCached,
  exchange,
  labGate,
  LabProcess,
  lastPath,
  SERVER_PORT,
} from "./support/lab_chat.ts";

const { ignore, requireLab } = await labGate("IPv6 lab");
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Whether a program is missing from PATH. */
async function toolMissing(tool: string): Promise<boolean> {
  const r = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
    .output();
  return !r.success;
}

/** A fresh lab (random number in the default prefix family, as lab_chat.ts does), torn down after. */
async function withLab(fn: (lab: Lab) => Promise<void>): Promise<void> {
  const n = 100_000 + crypto.getRandomValues(new Uint32Array(1))[0] % 900_000_000;
  const lab = await Lab.create({ prefix: `p2pl${Deno.pid}x${n}-` });
  try {
    await fn(lab);
  } finally {
    await lab.teardown();
  }
}

Deno.test({
  name: "lab IPv6: routed /64s without NAT, and each router's firewall drops the unsolicited",
  ignore,
}, async () => {
  requireLab();
  await withLab(async (lab) => {
    const srv = await lab.addPublicHost("srv", { ipv6: true });
    const ra = await lab.addRouter("ra", { kind: "home", ipv6: true });
    const rb = await lab.addRouter("rb", { kind: "home", ipv6: true });
    const a = await lab.addHost("a", ra);
    const b = await lab.addHost("b", rb);
    assert.equal(srv.ip6, "2001:db8:ff00:0::2");
    assert.equal(ra.lanPrefix6, "2001:db8:1::/64");
    assert.equal(a.ip6, "2001:db8:1::2");
    assert.equal(b.ip6, "2001:db8:2::2");
    const probes: UdpProbe[] = [];
    const probe = async (node: Host | PublicHost, port: number) => {
      const p = await UdpProbe.start(lab, node, { port, ipv6: true });
      probes.push(p);
      return p;
    };
    try {
      const server = await probe(srv, 7000);
      const pa = await probe(a, 4000);
      const pb = await probe(b, 5000);
      // Out and back: the server sees a's own address (no NAT66).
      await pa.send(srv.ip6!, 7000, "hello v6");
      assert.equal((await server.receive(3000))?.ip, a.ip6);
      await server.send(a.ip6!, 4000, "reply");
      assert.equal((await pa.receive(3000))?.data, "reply");
      // IPv4 from the same socket is still masqueraded as before.
      await pa.send(srv.ip, 7000, "hello v4");
      assert.equal((await server.receive(3000))?.ip, `::ffff:${ra.publicIp}`);
      // Unsolicited traffic is dropped: the server's to b at rb, b's to a at ra ...
      await server.send(b.ip6!, 5000, "unsolicited from srv");
      assert.equal(await pb.receive(500), null, "rb dropped the server's datagram");
      await pb.send(a.ip6!, 4000, "unsolicited from b");
      assert.equal(await pa.receive(500), null, "ra dropped b's datagram");
      // ... but b's datagram opened rb for a: a's answer gets in, and opens ra for b. Punched.
      await pa.send(b.ip6!, 5000, "punch");
      assert.equal((await pb.receive(3000))?.data, "punch");
      await pb.send(a.ip6!, 4000, "through");
      assert.equal((await pa.receive(3000))?.data, "through");
    } finally {
      for (const p of probes) await p.close();
    }
  });
});

/** Runs `p2p serve --host ::` on `srv` and `p2p chat --json` for alice on `a` and bob on `b`. */
async function chatPair(
  lab: Lab,
  srv: PublicHost,
  a: Host,
  b: Host,
  fn: (alice: LabProcess, bob: LabProcess) => Promise<void>,
): Promise<void> {
  await ensureCached();
  const home = await Deno.makeTempDir({ prefix: "p2p-lab-ipv6-" });
  const env = {
    XDG_CONFIG_HOME: home,
    XDG_DATA_HOME: `${home}/data`,
    XDG_STATE_HOME: `${home}/state`,
  };
  const processes: LabProcess[] = [];
  try {
    const serve = new LabProcess(lab, srv, "serve", [
      ...["serve", "--host", "::", "--port", String(SERVER_PORT)],
    ], env);
    processes.push(serve);
    await serve.stderr.waitFor((l) => l.includes(` UDP ${SERVER_PORT}`), 60_000, "serve");
    const chat = (user: string, node: Host) => {
      const p = new LabProcess(lab, node, user, [
        ...["chat", `${user}@${srv.ip}:${SERVER_PORT}`, "--json", "--keepalive", "2"],
      ], env);
      processes.push(p);
      return p;
    };
    const alice = chat("alice", a);
    await alice.event((e) => e.event === "ready", 60_000, "ready");
    const bob = chat("bob", b);
    await Promise.all([
      alice.event((e) => e.event === "online" && e.user === "bob", 60_000, "bob online"),
      bob.event((e) => e.event === "online" && e.user === "alice", 60_000, "alice online"),
    ]);
    await fn(alice, bob);
  } finally {
    for (const p of processes) await p.dispose();
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test({
  name: "nat: dual-stack ↔ dual-stack (home routers with IPv6): direct over IPv6",
  ignore,
}, async () => {
  requireLab();
  await withLab(async (lab) => {
    const srv = await lab.addPublicHost("srv", { ipv6: true });
    const ra = await lab.addRouter("ra", { kind: "home", ipv6: true });
    const rb = await lab.addRouter("rb", { kind: "home", ipv6: true });
    const a = await lab.addHost("a", ra);
    const b = await lab.addHost("b", rb);
    await chatPair(lab, srv, a, b, async (alice, bob) => {
      // Both logged in over IPv4, through their NATs, to a coordinator on `::`.
      const ready = await alice.event((e) => e.event === "ready");
      assert.match(String(ready.endpoint), new RegExp(`^${ra.publicIp.replaceAll(".", "\\.")}:`));
      assert.equal((await exchange(alice, bob, "hello over IPv6")).path, "direct");
      assert.equal((await exchange(bob, alice, "and back over IPv6")).path, "direct");
      // The IPv4 path may come first (primed, it answers at once); IPv6 ranks above it and
      // replaces it as soon as the firewalls let the probes through.
      const overV6 = (host: string) => (e: { event: string; endpoint?: unknown }) =>
        e.event === "path" && String(e.endpoint).startsWith(`[${host}]:`);
      const toBob = await alice.event(overV6(b.ip6!), 10_000, "path to bob over IPv6");
      const toAlice = await bob.event(overV6(a.ip6!), 10_000, "path to alice over IPv6");
      assert.match(String(toBob.endpoint), new RegExp(`^\\[${b.ip6}\\]:\\d+$`));
      assert.match(String(toAlice.endpoint), new RegExp(`^\\[${a.ip6}\\]:\\d+$`));
    });
  });
});

Deno.test({
  name: "nat: IPv4-only ↔ dual-stack: direct over IPv4",
  ignore,
}, async () => {
  requireLab();
  await withLab(async (lab) => {
    const srv = await lab.addPublicHost("srv", { ipv6: true });
    const ra = await lab.addRouter("ra", { kind: "home" });
    const rb = await lab.addRouter("rb", { kind: "home", ipv6: true });
    const a = await lab.addHost("a", ra);
    const b = await lab.addHost("b", rb);
    assert.equal(a.ip6, undefined);
    await chatPair(lab, srv, a, b, async (alice, bob) => {
      assert.equal((await exchange(alice, bob, "hello from IPv4 only")).path, "direct");
      assert.equal((await exchange(bob, alice, "hello from dual-stack")).path, "direct");
      const ip = (host: string) => new RegExp(`^${host.replaceAll(".", "\\.")}:\\d+$`);
      assert.match(String(lastPath(alice, "bob")?.endpoint), ip(rb.publicIp));
      assert.match(String(lastPath(bob, "alice")?.endpoint), ip(ra.publicIp));
    });
  });
});

Deno.test({
  name:
    "lab STUN: p2p nat --stun asks a coturn on the internet, and the coordinator, through a NAT",
  ignore: ignore || (await toolMissing("turnserver")),
}, async () => {
  requireLab();
  await ensureCached();
  await withLab(async (lab) => {
    const srv = await lab.addPublicHost("srv");
    const stun = await lab.addPublicHost("stun");
    const ra = await lab.addRouter("ra", { kind: "home" });
    const rs = await lab.addRouter("rs", { kind: "symmetric" });
    const a = await lab.addHost("a", ra);
    const s = await lab.addHost("s", rs);
    const home = await Deno.makeTempDir({ prefix: "p2p-lab-stun-" });
    const env = { XDG_CONFIG_HOME: home, XDG_STATE_HOME: home, XDG_DATA_HOME: home };
    const processes: LabProcess[] = [];
    const turn = lab.spawn(stun, [
      ...["turnserver", "-n", "--no-cli", "--stun-only", "--listening-ip", stun.ip],
      ...["--listening-port", "3478", "--no-tls", "--no-dtls", "--log-file", "stdout"],
      ...["--pidfile", `${home}/turn.pid`, "--db", `${home}/turndb`],
    ], { stdout: "null", stderr: "null" });
    try {
      const serve = new LabProcess(lab, srv, "serve", [
        ...["serve", "--host", "0.0.0.0", "--port", String(SERVER_PORT)],
      ], env);
      processes.push(serve);
      await serve.stderr.waitFor((l) => l.includes(` UDP ${SERVER_PORT}`), 60_000, "serve");
      const nat = async (node: Host) => {
        const args = ["nat", `${srv.ip}:${SERVER_PORT}`, "--stun", stun.ip, "--json"];
        for (let i = 0;; i++) {
          const r = await lab.exec(node, [Deno.execPath(), "run", "-A", MAIN, ...args], { env });
          const report = JSON.parse(r.stdout);
          // coturn may take a moment to listen.
          if (report.stun[0].public || i === 10) return report;
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
      };
      const behindHome = await nat(a);
      assert.equal(behindHome.stun[0].server, `${stun.ip}:3478`);
      assert.equal(behindHome.stun[0].public, behindHome.public, "the same mapping for coturn");
      assert.match(behindHome.public, new RegExp(`^${ra.publicIp.replaceAll(".", "\\.")}:`));
      assert.equal(behindHome.mapping, "endpoint-independent");
      const sym = await nat(s);
      assert.notEqual(sym.stun[0].public, sym.public, "a new port for coturn");
      assert.equal(sym.mapping, "endpoint-dependent");
      assert.equal(sym.kind, "hard");
    } finally {
      for (const p of processes) await p.dispose();
      turn.kill("SIGTERM");
      await turn.status;
      await Deno.remove(home, { recursive: true });
    }
  });
});
