// Real packets through real Linux NATs: checks the NAT behaviours the messenger relies on.
// Needs root; skipped with the reason otherwise, unless P2P_LAB=require (then it fails).
import assert from "node:assert/strict";
import { type Host, Lab, type PublicHost, routerRuleset } from "./lab/netlab.ts";
import { buildTopology } from "./lab/topology.ts";
import { UdpProbe } from "./lab/udp_tool.ts";

const reason = await Lab.available();
const ignore = reason !== null && Deno.env.get("P2P_LAB") !== "require";
if (ignore) console.warn(`NAT lab tests skipped: ${reason} (set P2P_LAB=require to fail instead)`);

function requireLab(): void {
  if (reason !== null) throw new Error(`NAT lab required (P2P_LAB=require) but ${reason}`);
}

/** Polls `read` until `ok` holds (or fails with the last value): packets take a moment. */
async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 3000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function netnsList(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]);
}

Deno.test({ name: "netlab: NAT behaviours with real packets", ignore }, async (t) => {
  requireLab();
  const lab = await Lab.create();
  const probes: UdpProbe[] = [];
  const probe = async (node: Host | PublicHost, port: number, echo = false): Promise<UdpProbe> => {
    const p = await UdpProbe.start(lab, node, { port, echo });
    probes.push(p);
    return p;
  };
  try {
    const { srv, srv2, peer, ra, rb, ro, rs, cg, rc, a1, a2, b1, o1, s1, c1 } = await buildTopology(
      lab,
    );

    await t.step("addresses follow the documented plan", () => {
      assert.equal(srv.ip, "198.51.100.2");
      assert.equal(srv2.ip, "198.51.100.6");
      assert.equal(ra.wanIp, "203.0.113.2");
      assert.equal(ra.lanIp, "10.1.0.1");
      assert.equal(a1.ip, "10.1.0.2");
      assert.equal(a2.ip, "10.1.0.3");
      assert.equal(cg.lanSubnet, "100.64.5.0/24");
      assert.equal(rc.wanIp, "100.64.5.2");
      assert.equal(rc.publicIp, cg.wanIp);
      assert.equal(c1.ip, "192.168.1.2");
      assert.equal(c1.publicIp, cg.wanIp);
    });

    const echo = await probe(srv, 7000, true);
    await probe(srv2, 7000, true);

    await t.step("home: port-preserving, same mapping for every destination", async () => {
      const p = await probe(a1, 40001);
      await p.send(srv.ip, 7000, "one");
      await p.send(srv2.ip, 7000, "two");
      const replies = [await p.receive(3000), await p.receive(3000)];
      for (const r of replies) assert.deepEqual(r?.seen, { ip: ra.publicIp, port: 40001 });
      assert.deepEqual(new Set(replies.map((r) => r?.ip)), new Set([srv.ip, srv2.ip]));
    });

    await t.step("home: unsolicited packets to a mapped port are dropped", async () => {
      // a1:40001 is mapped to ra:40001 towards srv:7000 and srv2:7000 (previous step).
      const p = probes.find((x) => x.port === 40001)!;
      const stranger = await probe(peer, 9001);
      await lab.addCounter(ra, "stranger", `ip saddr ${peer.ip} udp dport 40001`);
      await stranger.send(ra.publicIp, 40001, "unsolicited");
      await waitFor("stranger at ra", () => lab.readCounter(ra, "stranger"), (c) => c.packets > 0);
      await echo.send(ra.publicIp, 40001, "from srv"); // the mapped destination gets through
      const d = await p.receive(3000);
      assert.deepEqual([d?.ip, d?.port, d?.data], [srv.ip, 7000, "from srv"]);
      assert.deepEqual(await p.collect(300), [], "the stranger's packet was dropped at ra");
      // NAT alone never forwards it; the firewall also keeps it from leaving a conntrack entry.
      const left = (await lab.listConntrack(ra)).filter((l) => l.includes(`src=${peer.ip} `));
      assert.deepEqual(left, []);
    });

    await t.step(
      "home: hosts on one LAN reach each other, not via the public address",
      async () => {
        const p1 = probes.find((x) => x.port === 40001)!;
        const p2 = await probe(a2, 40011);
        await p2.send(a1.ip, 40001, "lan");
        const d = await p1.receive(3000);
        assert.equal(d?.ip, a2.ip, "LAN traffic is not translated");
        await p2.send(ra.publicIp, 40001, "hairpin");
        assert.equal(await p1.receive(500), null, "no hairpinning");
      },
    );

    await t.step("home: a second host on the same source port gets another port", async () => {
      const p1 = await probe(a1, 5000);
      const p2 = await probe(a2, 5000);
      await p1.send(srv.ip, 7000, "first");
      assert.deepEqual((await p1.receive(3000))?.seen, { ip: ra.publicIp, port: 5000 });
      await p2.send(srv.ip, 7000, "second");
      const r = await p2.receive(3000);
      assert.equal(r?.seen?.ip, ra.publicIp);
      assert.notEqual(r?.seen?.port, 5000);
    });

    await t.step("symmetric: a new public port per destination", async () => {
      const p = await probe(s1, 40002);
      await p.send(srv.ip, 7000, "one");
      const r1 = await p.receive(3000);
      await p.send(srv2.ip, 7000, "two");
      const r2 = await p.receive(3000);
      await p.send(srv.ip, 7000, "again");
      const r3 = await p.receive(3000);
      assert.equal(r1?.seen?.ip, rs.publicIp);
      assert.equal(r2?.seen?.ip, rs.publicIp);
      assert.notEqual(r1?.seen?.port, r2?.seen?.port);
      assert.equal(r3?.seen?.port, r1?.seen?.port, "a mapping is kept per destination");
    });

    await t.step("double NAT: cgnat + home works outward, port preserved", async () => {
      const p = await probe(c1, 40003);
      await p.send(srv.ip, 7000, "out");
      const r = await p.receive(3000);
      assert.deepEqual(r?.seen, { ip: cg.wanIp, port: 40003 });
      const inner = (await lab.listConntrack(rc)).find((l) => l.includes("sport=40003"));
      assert.match(inner ?? "", new RegExp(`dst=${rc.wanIp.replaceAll(".", "\\.")} sport=7000`));
    });

    await t.step("open: an early inbound packet moves the mapping for that peer", async () => {
      // The usual order: register with the server, then the peer's punch arrives first.
      const remote = await probe(peer, 9000);
      const local = await probe(o1, 40004);
      await local.send(srv.ip, 7000, "register");
      assert.deepEqual((await local.receive(3000))?.seen, { ip: ro.publicIp, port: 40004 });
      await remote.send(ro.publicIp, 40004, "early");
      const entries = await waitFor(
        "conntrack entry of the early packet at ro",
        () => lab.listConntrack(ro),
        (ls) => ls.some((l) => l.includes(`src=${peer.ip} `) && l.includes("dport=40004")),
      );
      const entry = entries.find((l) => l.includes(`src=${peer.ip} `));
      assert.match(entry ?? "", /\[UNREPLIED\]/, "the early packet left an UNREPLIED entry");
      await local.send(peer.ip, 9000, "late");
      const d = await remote.receive(3000);
      assert.equal(d?.ip, ro.publicIp);
      assert.notEqual(d?.port, 40004, "the kernel picked another port to avoid the clash");
      await remote.send(ro.publicIp, 40004, "to the advertised port");
      await remote.send(ro.publicIp, d!.port, "to the observed port");
      assert.equal((await local.receive(3000))?.data, "to the observed port");
      assert.deepEqual(await local.collect(300), [], "the advertised port leads nowhere");
    });

    await t.step("home: the same early packet is dropped, so the punch works", async () => {
      const remote = probes.find((x) => x.port === 9000)!;
      const local = await probe(b1, 40005);
      await local.send(srv.ip, 7000, "register");
      assert.deepEqual((await local.receive(3000))?.seen, { ip: rb.publicIp, port: 40005 });
      await lab.addCounter(rb, "early", `ip saddr ${peer.ip} udp dport 40005`);
      await remote.send(rb.publicIp, 40005, "early");
      await waitFor("early packet at rb", () => lab.readCounter(rb, "early"), (c) => c.packets > 0);
      const entries = (await lab.listConntrack(rb)).filter((l) => l.includes(`src=${peer.ip} `));
      assert.deepEqual(entries, [], "dropped before conntrack confirmed an entry");
      await local.send(peer.ip, 9000, "late");
      const d = await remote.receive(3000);
      assert.deepEqual([d?.ip, d?.port], [rb.publicIp, 40005]);
      await remote.send(rb.publicIp, 40005, "through");
      const back = await local.receive(3000);
      assert.deepEqual([back?.ip, back?.port, back?.data], [peer.ip, 9000, "through"]);
    });

    await t.step("TTL 2 opens the sender's mapping and dies at the core", async () => {
      const p = await probe(a1, 40006);
      await lab.addCounter(lab.core, "ttl", "udp dport 40006");
      await lab.addCounter(rb, "ttl", "udp dport 40006");
      await p.send(rb.publicIp, 40006, "short", { ttl: 2 });
      await waitFor(
        "TTL-2 packet at core",
        () => lab.readCounter(lab.core, "ttl"),
        (c) => c.packets === 1,
      );
      const mapping = (await lab.listConntrack(ra)).find((l) => l.includes("sport=40006"));
      assert.match(mapping ?? "", new RegExp(`dst=${rb.publicIp.replaceAll(".", "\\.")} `));
      assert.equal((await lab.readCounter(rb, "ttl")).packets, 0, "it died at the core");
      await p.send(rb.publicIp, 40006, "long");
      await waitFor(
        "normal packet at rb",
        () => lab.readCounter(rb, "ttl"),
        (c) => c.packets === 1,
      );
    });

    await t.step("loss: 50% drops roughly half, 0% none", async () => {
      const p = await probe(a2, 40007);
      await lab.addCounter(srv2, "loss", "udp sport 40007 udp dport 7000");
      const count = async (): Promise<number> => (await lab.readCounter(srv2, "loss")).packets;
      await lab.setLoss(ra, 50);
      await p.send(srv2.ip, 7000, "x", { count: 200 });
      // A marker sent with loss off, after the burst on the same path, tells when it is all in.
      await lab.setLoss(ra, 0);
      await lab.addCounter(srv2, "marker", "udp sport 40007 udp dport 7001");
      await p.send(srv2.ip, 7001, "marker");
      await waitFor("marker at srv2", () => lab.readCounter(srv2, "marker"), (c) => c.packets > 0);
      const lossy = await count();
      assert.ok(lossy > 60 && lossy < 140, `${lossy} of 200 got through at 50% loss`);
      await p.send(srv2.ip, 7000, "y", { count: 50 });
      await waitFor("lossless burst at srv2", count, (n) => n === lossy + 50);
    });

    await t.step("UDP timeout and flush remove mappings", async () => {
      const p = await probe(a2, 40008);
      await lab.setUdpTimeout(ra, 5);
      await p.send(srv.ip, 7000, "t");
      assert.ok(await p.receive(3000));
      const entry = (await lab.listConntrack(ra)).find((l) => l.includes("sport=40008"));
      const timeout = Number(entry?.split(/\s+/)[2]);
      assert.ok(timeout >= 1 && timeout <= 5, `timeout ${timeout} s in: ${entry}`);
      await lab.flushConntrack(ra);
      assert.deepEqual((await lab.listConntrack(ra)).filter((l) => l.startsWith("udp")), []);
      await echo.send(ra.publicIp, 40008, "after flush");
      assert.equal(await p.receive(500), null, "the mapping is gone: inbound is unsolicited");
    });
  } finally {
    await Promise.all(probes.map((p) => p.close()));
    await lab.teardown();
  }
});

Deno.test({ name: "netlab: teardown deletes namespaces and kills processes", ignore }, async () => {
  requireLab();
  const lab = await Lab.create();
  let child: Deno.ChildProcess | undefined;
  try {
    const r = await lab.addRouter("r", { kind: "open" });
    const h = await lab.addHost("h", r);
    child = lab.spawn(h, ["sleep", "60"]);
  } finally {
    await lab.teardown();
  }
  assert.equal((await child.status).signal, "SIGKILL");
  assert.deepEqual((await netnsList()).filter((n) => n.startsWith(lab.prefix)), []);
  await lab.teardown(); // twice is fine
});

Deno.test({ name: "netlab: create removes namespaces of crashed runs", ignore }, async () => {
  requireLab();
  let dead = 4_000_000;
  while (await Deno.stat(`/proc/${dead}`).then(() => true, () => false)) dead--;
  const stale = `p2pl${dead}x1-core`;
  await new Deno.Command("ip", { args: ["netns", "add", stale] }).output();
  const lab = await Lab.create();
  try {
    assert.ok(!(await netnsList()).includes(stale));
  } finally {
    await lab.teardown();
    await new Deno.Command("ip", { args: ["netns", "del", stale], stderr: "null" }).output();
  }
});

Deno.test({ name: "netlab: rejects bad names, kinds and subnets", ignore }, async () => {
  requireLab();
  const lab = await Lab.create();
  try {
    const r = await lab.addRouter("r", { kind: "home", lanSubnet: "192.168.7.0/24" });
    await assert.rejects(lab.addPublicHost("core"), /'core' is the core router/);
    await assert.rejects(lab.addPublicHost("Bad-Name"), /Cannot add node/);
    await assert.rejects(lab.addHost("r", r), /name already used/);
    // deno-lint-ignore no-explicit-any
    await assert.rejects(lab.addRouter("x", { kind: "full-cone" as any }), /unknown kind/);
    await assert.rejects(lab.addRouter("y", { kind: "home", lanSubnet: "8.8.8.0/24" }), /LAN/);
    await assert.rejects(
      lab.addRouter("z", { kind: "home", upstream: r, lanSubnet: "192.168.7.0/24" }),
      /also the LAN of its upstream/,
    );
    await assert.rejects(lab.setLoss(r, 101), /0\.\.100/);
    await assert.rejects(lab.addCounter(r, "c", "udp dport 1; flush ruleset"), /one nft/);
    assert.throws(() => lab.node("nope"), /no node named/);
    assert.match(routerRuleset("symmetric"), /masquerade random,fully-random/);
    assert.doesNotMatch(routerRuleset("open"), /drop/);
  } finally {
    await lab.teardown();
  }
});
