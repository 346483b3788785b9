/**
 * One community on three coordinators and one real nats-server on loopback (docs/CLUSTER.md):
 * lists converge, messages flow across coordinators, the relay forwards one hop, a name is unique,
 * a forged or malformed member message changes nothing, kill -9 of a member and a restart of NATS
 * heal, and NATS refuses a member without credentials.
 */
import assert from "node:assert/strict";
import { Coordinator } from "../lib/coordinator.ts";
import type { PeerEvent } from "../lib/peer/events.ts";
import { encodeBase64url } from "../lib/protocol/base64url.ts";
import { clusterSubject, encodeClusterMessage } from "../lib/protocol/cluster.ts";
import { encodeFrame } from "../lib/protocol/frame.ts";
import { encodeClientMessage } from "../lib/protocol/seed.ts";
import { connect } from "@nats-io/transport-node";
import { createUser } from "@nats-io/nkeys";
import { TestNats } from "./support/nats.ts";
import { startPeer, type TestPeer } from "./support/peers.ts";
import { runP2p, startServe } from "./support/proc.ts";
import { RawUdp } from "./support/raw_udp.ts";
import { fetchListRaw } from "./support/seed_client.ts";
import { type Collector, sleep } from "./support/wait.ts";

const COMMUNITY = "test";
/** Short beats and timeouts, so that faults heal within a test's patience. */
const TIMING = { beatMs: 200, memberTimeoutMs: 1500, batchMs: 5 };

/** Whether `events` last said `user` is online (true) or offline (false); undefined: never. */
function lastSeen(events: Collector<PeerEvent>, user: string): boolean | undefined {
  for (let i = events.items.length - 1; i >= 0; i--) {
    const e = events.items[i];
    if (e.event === "online" && e.user === user) return true;
    if (e.event === "offline" && e.user === user) return false;
  }
  return undefined;
}

async function until(what: string, pred: () => boolean, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Logs in a raw client with a key (and fetches its list, which admits it); returns it. */
async function rawLogin(port: number, tcpPort: number, name: string): Promise<RawUdp> {
  const raw = await RawUdp.open("127.0.0.1", port);
  const key = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
  raw.send(encodeClientMessage({
    type: "login",
    username: name,
    endpoint: { host: "127.0.0.1", port: raw.port },
    ext: { key, secret: encodeBase64url(crypto.getRandomValues(new Uint8Array(16))) },
  }));
  await raw.until((t) => t.some((x) => x.startsWith("Accept,")));
  await fetchListRaw(tcpPort);
  return raw;
}

Deno.test("cluster: three coordinators over NATS share one community", async (t) => {
  const nats = await TestNats.start();
  const logs: string[] = [];
  /** The other members' whole snapshots each member applied (`onSnapshot`), by member. */
  const snapshots = new Map<string, string[]>();
  const start = (member: string): Promise<Coordinator> =>
    Coordinator.start({
      host: "127.0.0.1",
      port: 0,
      mailbox: false,
      log: (line) => logs.push(`${member}: ${line}`),
      cluster: {
        url: nats.url,
        community: COMMUNITY,
        member,
        token: nats.token,
        ...TIMING,
        onSnapshot: (s) => {
          assert.ok(s.sinceHelloMs >= 0 && s.users >= 0, JSON.stringify(s));
          snapshots.set(member, [...snapshots.get(member) ?? [], s.member]);
        },
      },
    });
  const [a, b, c] = [await start("a"), await start("b"), await start("c")];
  const configDir = await Deno.makeTempDir({ prefix: "p2p-cluster-" });
  const peers: TestPeer[] = [];
  try {
    const alice = await startPeer(a, configDir, "alice");
    const bob = await startPeer(b, configDir, "bob");
    const carol = await startPeer(c, configDir, "carol");
    peers.push(alice, bob, carol);
    const everyone = { alice, bob, carol };
    const converged = () =>
      Object.entries(everyone).every(([me, p]) =>
        Object.keys(everyone).every((other) => other === me || lastSeen(p.events, other) === true)
      );

    await t.step("every client sees the users of every coordinator", async () => {
      await until("lists to converge", converged);
      for (const coordinator of [a, b, c]) {
        assert.equal(coordinator.registry.onlineCount, 3);
        assert.deepEqual(coordinator.clusterStatus()?.connected, true);
        assert.equal(coordinator.clusterStatus()?.members, 2);
      }
      const list = await fetchListRaw(c.tcpPort);
      for (const name of ["alice", "bob", "carol"]) assert.match(list, new RegExp(`${name},`));
      // Each member timed the hop of the other two's logins: applied here, then sent to its client.
      await until(
        "hops timed",
        () => [a, b, c].every((m) => m.clusterStatus()!.hops.sent.count >= 2),
      );
      for (const coordinator of [a, b, c]) {
        const { applied, sent } = coordinator.clusterStatus()!.hops;
        assert.ok(applied.count >= 2 && sent.count <= applied.count, JSON.stringify(applied));
        assert.ok(applied.sum >= 0 && applied.sum <= sent.sum && sent.sum < 10 * sent.count);
      }
    });

    await t.step("a message goes from a user of A to a user of B", async () => {
      const id = alice.peer.send("bob", "hello across coordinators");
      assert.notEqual(id, undefined);
      await bob.events.waitFor(
        (e) =>
          e.event === "message" && e.from === "alice" && e.text === "hello across coordinators",
        10_000,
        "bob gets alice's message",
      );
      await alice.events.waitFor((e) => e.event === "delivered" && e.id === id, 10_000);
      // Decided by the member with the smaller id (a), with bob's side told through B.
      assert.equal(a.relay.stats.forwarded, 0);
    });

    await t.step("a name held on one coordinator is refused on another", async () => {
      // bob's key registered his name on every member: another key (none here) is refused.
      const raw = await RawUdp.open("127.0.0.1", a.udpPort);
      // A seed-only gina on B: her name is held, not owned.
      const gina = await RawUdp.open("127.0.0.1", b.udpPort);
      try {
        raw.send(`login,bob,127.0.0.1:${raw.port}`);
        await raw.until((texts) => texts.some((x) => x.startsWith("Reject,")));
        assert.match(raw.texts.join("\n"), /other key/);
        gina.send(`login,gina,127.0.0.1:${gina.port}`);
        await gina.until((texts) => texts.some((x) => x.startsWith("Accept,")));
        await fetchListRaw(b.tcpPort);
        await until("gina listed on A", () => a.registry.get("gina")?.member === "b");
        raw.send(`login,gina,127.0.0.1:${raw.port}`);
        await raw.until((texts) => texts.some((x) => /^Reject,.*in use/.test(x)));
        // The answer is no longer than the login: the log has the whole reason.
        assert.ok(logs.some((l) => /^a: .*gina.*in use on another server/.test(l)));
      } finally {
        await raw.close();
        await gina.close();
      }
    });

    await t.step("relayed frames cross coordinators in one hop", async () => {
      const dave = await rawLogin(a.udpPort, a.tcpPort, "dave");
      const erin = await rawLogin(b.udpPort, b.tcpPort, "erin");
      try {
        await until("erin listed on A", () => a.registry.get("erin")?.member === "b");
        dave.send(encodeClientMessage({ type: "connect", username: "dave", target: "erin" }));
        await erin.until((texts) => texts.some((x) => x.startsWith("Knock,dave,")));
        erin.send(encodeClientMessage({ type: "connect", username: "erin", target: "dave" }));
        await dave.until((texts) => texts.some((x) => x.startsWith("Introduce,erin,")));
        await erin.until((texts) => texts.some((x) => x.startsWith("Introduce,dave,")));
        const inner = new Uint8Array([0x01, 0x02, 0x03, 0x04]);
        dave.send(encodeFrame({ type: "relay", to: "erin", inner }));
        const want = encodeFrame({ type: "relayed", from: "dave", inner });
        await until(
          "erin gets the relayed frame",
          () =>
            erin.received.some((d) => d.length === want.length && d.every((x, i) => x === want[i])),
        );
      } finally {
        await dave.close();
        await erin.close();
      }
    });

    await t.step("forged and malformed member messages change nothing", async () => {
      const nc = await connect({ servers: `127.0.0.1:${nats.port}`, token: nats.token });
      try {
        const key = encodeBase64url(new Uint8Array(32).fill(7));
        const user = (name: string) => ({
          name,
          observed: { host: "192.0.2.66", port: 6666 },
          claimed: { host: "192.0.2.66", port: 6666 },
          key,
        });
        // "bob" with another key (bob is b's, and his key owns the name on every member), and a
        // "b0b"-style lookalike of alice, from a member nobody admitted them to.
        const forged = encodeClusterMessage({
          t: "presence",
          boot: "evil",
          seq: 1,
          changes: [user("bob"), user("aIice")],
        });
        nc.publish(clusterSubject(COMMUNITY, "presence", "evil"), forged);
        // Bob's entry "from b" but sent by another member on b's subject would need b's
        // credentials when NATS permissions are per member; here: malformed bodies and subjects.
        nc.publish(clusterSubject(COMMUNITY, "presence", "evil"), new TextEncoder().encode("{"));
        nc.publish(`p2p.${COMMUNITY}.nonsense`, new TextEncoder().encode("{}"));
        await nc.flush();
        await until(
          "the forged entries refused",
          () =>
            [a, b, c].every((x) =>
              x.cluster!.stats.refused >= 2 && x.cluster!.stats.malformed >= 1
            ),
        );
        for (const coordinator of [a, b, c]) {
          assert.notEqual(coordinator.registry.get("bob")?.observed.host, "192.0.2.66");
          assert.equal(coordinator.registry.get("aIice"), undefined);
        }
        assert.equal(lastSeen(alice.events, "aIice"), undefined);
      } finally {
        await nc.close();
      }
    });

    await t.step("a want is answered to the asker alone; several at once share one", async () => {
      const nc = await connect({ servers: `127.0.0.1:${nats.port}`, token: nats.token });
      const seen: string[] = [];
      nc.subscribe(`p2p.${COMMUNITY}.>`, {
        callback: (_err, msg) => void seen.push(msg.subject),
      });
      const snapshots = () => seen.filter((s) => /\.(snapshot|to\.\w+)\.[abc]$/.test(s)).sort();
      try {
        nc.publish(clusterSubject(COMMUNITY, "want", "zed"), encodeClusterMessage({ t: "want" }));
        await until("zed's snapshots", () => snapshots().length >= 3);
        await sleep(100); // nothing else comes
        assert.deepEqual(snapshots(), ["a", "b", "c"].map((m) => `p2p.${COMMUNITY}.to.zed.${m}`));
        seen.length = 0;
        for (const asker of ["yan", "zed"]) {
          nc.publish(clusterSubject(COMMUNITY, "want", asker), encodeClusterMessage({ t: "want" }));
        }
        await until("one snapshot each, to everyone", () => snapshots().length >= 3);
        await sleep(100);
        assert.deepEqual(snapshots(), ["a", "b", "c"].map((m) => `p2p.${COMMUNITY}.snapshot.${m}`));
      } finally {
        await nc.close();
      }
    });

    await t.step(
      "kill -9 of a coordinator: its users leave every list, then fail over",
      async () => {
        const tokenFile = await Deno.makeTempFile({ dir: configDir });
        await Deno.writeTextFile(tokenFile, nats.token);
        const { proc, port } = await startServe([
          "--cluster",
          nats.url,
          "--community",
          COMMUNITY,
          "--member",
          "d",
          "--cluster-token-file",
          tokenFile,
          "--no-mailbox",
        ]);
        try {
          const d = { udpPort: port } as Coordinator;
          const frank = await startPeer(d, configDir, "frank", {
            fallbacks: [{ host: "127.0.0.1", port: a.udpPort }],
            keepaliveMs: 300,
          });
          peers.push(frank);
          await until(
            "frank seen on A, B and C",
            () =>
              [alice, bob, carol].every((p) => lastSeen(p.events, "frank") === true) &&
              lastSeen(frank.events, "alice") === true,
          );
          const killed = Date.now();
          proc.kill("SIGKILL");
          await until(
            "frank gone from every list",
            () => [alice, bob, carol].every((p) => lastSeen(p.events, "frank") === false),
            TIMING.memberTimeoutMs + 5000,
          );
          const healedMs = Date.now() - killed;
          assert.ok(healedMs < TIMING.memberTimeoutMs + 3000, `healed in ${healedMs} ms`);
          assert.ok(logs.some((l) => /member d went silent/.test(l)));
          // frank's client finds its coordinator lost and logs in on the next one, A.
          await frank.events.waitFor((e) => e.event === "coordinator" && e.state === "lost");
          await frank.events.waitFor(
            (e) => e.event === "coordinator" && e.state === "back",
            20_000,
            "frank back on A",
          );
          assert.equal(a.registry.get("frank")?.member, undefined);
          await until(
            "frank online again for everyone",
            () => [alice, bob, carol].every((p) => lastSeen(p.events, "frank") === true),
          );
        } finally {
          await proc.dispose();
        }
      },
    );

    await t.step("NATS restarts: members keep serving, then merge again", async () => {
      await nats.stop();
      await until("A to see NATS down", () => a.clusterStatus()?.connected === false);
      // Each coordinator keeps its own user; the others' leave with their silence.
      await until(
        "remote users to expire",
        () => [a, b, c].every((x) => x.registry.online().every((u) => u.member === undefined)),
        TIMING.memberTimeoutMs + 3000,
      );
      assert.ok(logs.some((l) => /CLUSTER DOWN/.test(l)));
      snapshots.clear();
      await nats.restart();
      await until("lists to converge again", converged, 15_000);
      const names = (x: Coordinator) => x.registry.online().map((u) => u.name).sort().join();
      await until(
        "every member to list the same users",
        () => names(a) === names(b) && names(b) === names(c),
      );
      // Back on NATS, each member said `want` to everyone and took the other two's snapshots.
      for (const [me, others] of [["a", "bc"], ["b", "ac"], ["c", "ab"]]) {
        const taken = new Set(snapshots.get(me));
        assert.ok([...others].every((m) => taken.has(m)), `${me} took ${[...taken]}`);
      }
    });
  } finally {
    for (const p of peers) await p.peer.close();
    for (const x of [a, b, c]) await x.close();
    await nats.stop();
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("cluster: each side of a pair on two members gets TURN credentials from its own member", async () => {
  const nats = await TestNats.start();
  const start = (member: string): Promise<Coordinator> =>
    Coordinator.start({
      host: "127.0.0.1",
      port: 0,
      mailbox: false,
      log: () => {},
      cluster: { url: nats.url, community: COMMUNITY, member, token: nats.token, ...TIMING },
      turn: { uri: `turn:127.0.0.1:${member === "a" ? 3478 : 3479}`, secret: new Uint8Array(16) },
    });
  const [a, b] = [await start("a"), await start("b")];
  const dave = await rawLogin(a.udpPort, a.tcpPort, "dave");
  const erin = await rawLogin(b.udpPort, b.tcpPort, "erin");
  try {
    await until("erin listed on A", () => a.registry.get("erin")?.member === "b");
    await until("dave listed on B", () => b.registry.get("dave")?.member === "a");
    dave.send(encodeClientMessage({ type: "connect", username: "dave", target: "erin" }));
    await erin.until((texts) => texts.some((x) => x.startsWith("Knock,dave,")));
    erin.send(encodeClientMessage({ type: "connect", username: "erin", target: "dave" }));
    await dave.until((texts) => texts.some((x) => x.startsWith("Turn,turn:127.0.0.1:3478,")));
    await erin.until((texts) => texts.some((x) => x.startsWith("Turn,turn:127.0.0.1:3479,")));
  } finally {
    await dave.close();
    await erin.close();
    await a.close();
    await b.close();
    await nats.stop();
  }
});

Deno.test("cluster: NATS refuses a member without the right credentials", async () => {
  const nats = await TestNats.start();
  try {
    await assert.rejects(
      Coordinator.start({
        host: "127.0.0.1",
        port: 0,
        mailbox: false,
        log: () => {},
        cluster: { url: nats.url, community: COMMUNITY, token: "wrong" },
      }),
      /refused our credentials/,
    );
  } finally {
    await nats.stop();
  }
});

Deno.test("cluster: a member started while NATS is away serves, joins when it comes, and closes cleanly", async () => {
  const nats = await TestNats.start();
  await nats.stop(); // its port, nobody listening
  const logs: string[] = [];
  const a = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    mailbox: false,
    log: (line) => logs.push(line),
    cluster: { url: nats.url, community: COMMUNITY, member: "a", token: nats.token, ...TIMING },
  });
  try {
    assert.equal(a.clusterStatus()?.connected, false);
    await nats.restart();
    await until("the member reached NATS", () => a.clusterStatus()?.connected === true);
  } finally {
    await a.close();
    await nats.stop();
  }
});

Deno.test("cluster: p2p serve --cluster insists on NATS credentials", async () => {
  const { code, stderr } = await runP2p([
    "serve",
    "--cluster",
    "nats://127.0.0.1:4222",
    "--community",
    "test",
  ]);
  assert.equal(code, 2);
  assert.match(stderr, /--cluster-token-file FILE or --cluster-nkey-file FILE/);
});

Deno.test("cluster: a member may authenticate with an nkey seed", async () => {
  const user = createUser();
  const dir = await Deno.makeTempDir({ prefix: "p2p-nkey-" });
  const config = `${dir}/nats.conf`;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await Deno.writeTextFile(
    config,
    `listen: 127.0.0.1:${port}\nauthorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`,
  );
  const nats = new Deno.Command("nats-server", {
    args: ["-c", config],
    stdout: "null",
    stderr: "null",
  })
    .spawn();
  try {
    await until("nats-server to listen", () => {
      try {
        Deno.listen({ hostname: "127.0.0.1", port }).close();
        return false;
      } catch {
        return true;
      }
    });
    const start = (nkeySeed: string) =>
      Coordinator.start({
        host: "127.0.0.1",
        port: 0,
        mailbox: false,
        log: () => {},
        cluster: { url: `nats://127.0.0.1:${port}`, community: COMMUNITY, nkeySeed },
      });
    const c = await start(new TextDecoder().decode(user.getSeed()));
    assert.equal(c.clusterStatus()?.connected, true);
    await c.close();
    await assert.rejects(start(new TextDecoder().decode(createUser().getSeed())), /credentials/);
  } finally {
    nats.kill("SIGKILL");
    await nats.status;
    await Deno.remove(dir, { recursive: true });
  }
});
