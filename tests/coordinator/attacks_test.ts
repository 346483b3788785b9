/**
 * Issue 18's attacks on the coordinator, each on real sockets on loopback against a real
 * `Coordinator` (and real `Peer`s where a user's view matters): a held-open list service, names
 * hoarded, a login sent again and again, lookalike names, forged logouts and heartbeats from the
 * owner's own address, and a swarm of names on one address pushing relayed traffic at one user.
 * Each asserts the figures that the attack changed (connections served, fetches that succeed,
 * names held, relayed bytes and packets); docs/SECURITY.md quotes them before and after.
 */
import assert from "node:assert/strict";
import net from "node:net";
import type { Coordinator } from "../../lib/coordinator.ts";
import { Peer } from "../../lib/peer.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { encodeFrame } from "../../lib/protocol/frame.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { RawUdp as Udp, withCoordinator } from "../support/raw_udp.ts";
import { sleep } from "../support/wait.ts";

/** Fetches the list from `host` (its local address); resolves with what came before the close. */
function fetchFrom(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: host });
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on("data", (d: Uint8Array) => text += new TextDecoder().decode(d));
    socket.on("error", () => {});
    socket.on("close", () => resolve(text));
  });
}

/** A connection that reads nothing back and never closes its side: a slowloris. */
function hold(host: string, port: number): { connected: Promise<void>; destroy: () => void } {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: host, allowHalfOpen: true });
  socket.on("error", () => {});
  const connected = new Promise<void>((resolve) => socket.on("connect", () => resolve()));
  return { connected, destroy: () => socket.destroy() };
}

function key(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
}

function secret(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
}

/** Logs a raw client in as `name` (with a key and `sec`); resolves once it is online. */
async function logIn(c: Coordinator, u: Udp, name: string, sec = secret()): Promise<void> {
  const before = u.texts.filter((t) => t.startsWith("Accept,")).length;
  u.send(`login,${name},${u.endpoint},${key()},${sec}`);
  await u.untilCount((t) => t.startsWith("Accept,"), before + 1);
  await fetchFrom(u.host, c.tcpPort);
  assert.equal(c.registry.get(name)?.state, "online", `${name} is online`);
}

Deno.test("attack: 128 addresses × 8 held list connections; a new user still logs in", async () => {
  await withCoordinator({}, async (c) => {
    const held: ReturnType<typeof hold>[] = [];
    const user = await Udp.open("127.0.9.1", c.udpPort);
    try {
      for (let a = 0; a < 128; a++) {
        for (let i = 0; i < 8; i++) held.push(hold(`127.0.8.${a + 1}`, c.tcpPort));
      }
      await Promise.all(held.map((h) => h.connected));
      await sleep(300);
      const open = c.listConnections;
      user.send(`login,newcomer,${user.endpoint},${key()},${secret()}`);
      await user.untilCount((t) => t.startsWith("Accept,"));
      const list = await fetchFrom(user.host, c.tcpPort);
      const online = c.registry.get("newcomer")?.state === "online";
      console.log(`${open} of 1,024 held connections open; newcomer online: ${online}`);
      // Before issue 18: held open for 20 s, and the newcomer's fetch was closed without a list.
      // Now each is closed once its list is out.
      assert.ok(open < 64, `${open} of 1,024 held connections still open`);
      assert.match(list, /newcomer,127\.0\.9\.1:/, "the newcomer got the list");
      assert.ok(online);
    } finally {
      for (const h of held) h.destroy();
      await user.close();
    }
  });
});

Deno.test("attack: eight slow connections from one address; its own fetches still succeed", async () => {
  await withCoordinator({}, async (c) => {
    const slow = [1, 2, 3, 4, 5, 6, 7, 8].map(() => hold("127.0.9.2", c.tcpPort));
    try {
      let ok = 0;
      for (let i = 0; i < 11; i++) {
        if ((await fetchFrom("127.0.9.2", c.tcpPort)).endsWith("end\nversion,0")) ok++;
      }
      // Before issue 18: 0 of 11 while the eight were held (the issue saw 9 of 11 fail).
      assert.equal(ok, 11, `${ok} of 11 fetches got the list`);
    } finally {
      for (const s of slow) s.destroy();
    }
  });
});

Deno.test("attack: one address hoards names; it holds at most 64 at once, 256 new a day", async () => {
  // Rates raised so that the test takes seconds; the name limits are the defaults.
  const limits = { loginsPerSecond: 10_000, datagramsPerSecond: 10_000 };
  await withCoordinator({ limits }, async (c, log) => {
    const hoarder = await Udp.open("127.0.9.3", c.udpPort);
    const neighbour = await Udp.open("127.0.9.4", c.udpPort);
    try {
      let n = 0;
      let admitted = 0;
      let mostAtOnce = 0;
      // Five rounds: a hundred new names (seed logins, one socket), a fetch, then logouts.
      for (let round = 0; round < 5; round++) {
        const names = Array.from({ length: 100 }, () => `h${n++}`);
        const answer = (t: string) => t.startsWith("Accept,") || t.startsWith("Reject,");
        const answered = hoarder.texts.filter(answer).length;
        for (const name of names) hoarder.send(`login,${name},${hoarder.endpoint}`);
        await hoarder.untilCount(answer, answered + 100);
        await fetchFrom(hoarder.host, c.tcpPort);
        const online = names.filter((name) => c.registry.get(name)?.state === "online");
        admitted += online.length;
        mostAtOnce = Math.max(mostAtOnce, c.registry.onlineCount);
        for (const name of online) hoarder.send(`logout,${name},${hoarder.endpoint}`);
        await waitFor(() => c.registry.onlineCount === 0);
      }
      console.log(`${mostAtOnce} names online at once, ${admitted} brought online in all`);
      // Before issue 18: 100 at once, 500 in all.
      assert.equal(mostAtOnce, 64, "names online at once from one address");
      assert.equal(admitted, 256, "new names from one address in a day");
      assert.ok(hoarder.texts.some((t) => t.startsWith("Reject,too many")));
      assert.ok(log.some((l) => l.startsWith("limit names-per-address reached: 127.0.9.3")));
      assert.ok(log.some((l) => l.startsWith("limit new-names-per-address-per-day reached")));
      // Another address is not affected.
      await logIn(c, neighbour, "neighbour");
    } finally {
      await Promise.all([hoarder.close(), neighbour.close()]);
    }
  });
});

Deno.test("attack: a login sent every 500 ms without a fetch neither holds a name nor lasts", async () => {
  const configDir = await Deno.makeTempDir({ prefix: "p2p-attack-test-" });
  // A pending timeout of 1 s instead of 10 s, so that the test takes seconds.
  await withCoordinator({ pendingTimeoutMs: 1_000 }, async (c, log) => {
    const squatter = await Udp.open("127.0.9.5", c.udpPort);
    const squat = () => {
      squatter.send(`login,bob,${squatter.endpoint}`);
      squatter.send(`login,carol,${squatter.endpoint}`);
    };
    squat();
    const timer = setInterval(squat, 500);
    let bob: Peer | undefined;
    try {
      await squatter.untilCount((t) => t.startsWith("Accept,"), 2);
      await sleep(600);
      // The real bob logs in: before issue 18, "name in use" for as long as the squatter went
      // on. Now a pending login that has not fetched its list within a quarter of the pending
      // timeout gives way to another.
      bob = await Peer.start({
        server: { host: "127.0.0.1", port: c.udpPort },
        username: "bob",
        configDir,
        bind: { host: "127.0.0.1", port: 0 }, // its list fetch comes from 127.0.0.1
        onEvent: () => {},
      });
      assert.equal(c.registry.get("bob")?.state, "online");
      assert.equal(c.registry.get("bob")?.observed.host, "127.0.0.1");
      // Sent again every 500 ms, carol's login is forgotten a pending timeout after it first
      // came (before issue 18: never, each copy refreshed it).
      await waitFor(() => log.some((l) => l.startsWith("forgot login carol")), 3_000);
    } finally {
      clearInterval(timer);
      await bob?.close();
      await squatter.close();
      await Deno.remove(configDir, { recursive: true });
    }
  });
});

Deno.test("attack: lookalike names are refused with a reason; Chinese names still work", async () => {
  const configDir = await Deno.makeTempDir({ prefix: "p2p-attack-test-" });
  await withCoordinator({}, async (c) => {
    const peers: Peer[] = [];
    // Peers on 127.0.0.1: their list fetches come from there.
    const start = async (name: string) => {
      const peer = await Peer.start({
        server: { host: "127.0.0.1", port: c.udpPort },
        username: name,
        configDir,
        bind: { host: "127.0.0.1", port: 0 },
        onEvent: () => {},
      });
      peers.push(peer);
    };
    try {
      await start("alice");
      // Cyrillic а, fullwidth, mathematical letters: all look like alice.
      for (const lookalike of ["\u0430lice", "\uff41\uff4c\uff49\uff43\uff45", "\u{1d41a}lice"]) {
        await assert.rejects(
          start(lookalike),
          new RegExp(`the coordinator says name "${lookalike}" looks like "alice" who is online`),
        );
        assert.equal(c.registry.get(lookalike), undefined);
      }
      // Chinese names, similar ones included, are names like any other.
      await start("张伟");
      await start("张伟伟");
      await start("alicé"); // another letter, not a lookalike
      assert.deepEqual(
        c.registry.online().map((u) => u.name).sort(),
        ["alice", "alicé", "张伟", "张伟伟"].sort(),
      );
      // A seed client is refused too (told in short: the answer to an unproven address is no
      // longer than its request); the holder of a name logs in again under it as before (its
      // Accept was lost, say): its own name is no lookalike of itself.
      const raw = await Udp.open("127.0.9.12", c.udpPort);
      try {
        raw.send(`login,\u0430lice,${raw.endpoint}`);
        await raw.untilCount((t) => t.startsWith("Reject,"));
        assert.equal(raw.texts[0], "Reject,in use");
        assert.equal(c.registry.get("\u0430lice"), undefined);
        const login = `login,dave,${raw.endpoint},${key()},${secret()}`;
        raw.send(login);
        await raw.untilCount((t) => t.startsWith("Accept,"));
        raw.send(login);
        await raw.untilCount((t) => t.startsWith("Accept,"), 2);
        assert.equal(c.registry.get("dave")?.state, "pending");
      } finally {
        await raw.close();
      }
    } finally {
      for (const p of peers) await p.close();
      await Deno.remove(configDir, { recursive: true });
    }
  });
});

Deno.test("attack: a logout or heartbeat forged from the owner's own endpoint is ignored", async () => {
  await withCoordinator({ peerTimeoutMs: 1_500 }, async (c, log) => {
    const alice = await Udp.open("127.0.9.13", c.udpPort, { shared: true });
    const thief = await Udp.open("127.0.9.14", c.udpPort);
    await logIn(c, alice, "alice");
    // The forger sends from alice's very address and port (raw-socket spoofing, in effect).
    const forger = await Udp.open("127.0.9.13", c.udpPort, { port: alice.port, shared: true });
    try {
      forger.send(`logout,alice,${alice.endpoint}`);
      forger.send(`logout,alice,${alice.endpoint},${secret()}`);
      await sleep(300);
      // Before issue 18: alice was logged out, and the thief took her name.
      assert.equal(c.registry.get("alice")?.state, "online", "alice was logged out");
      assert.equal(log.filter((l) => l.startsWith("ignored forged logout")).length, 2);
      thief.send(`login,alice,${thief.endpoint}`);
      await thief.untilCount((t) => t.startsWith("Reject,"));
      // Alice goes silent (crashed); forged heartbeats cannot keep her name alive.
      const beats = setInterval(() => forger.send("heartbeat,alice"), 200);
      try {
        await waitFor(() => c.registry.get("alice") === undefined, 4_000);
      } finally {
        clearInterval(beats);
      }
      assert.ok(log.some((l) => l.startsWith("ignored heartbeat for alice from 127.0.9.13:")));
      assert.ok(log.some((l) => l.startsWith("expired alice")));
      // Alive or Expired never answered a forged heartbeat (the owner would log in again).
      const answers = [...alice.texts, ...forger.texts];
      assert.ok(!answers.some((t) => t.startsWith("Alive,") || t.startsWith("Expired,")));
    } finally {
      await Promise.all([alice.close(), forger.close(), thief.close()]);
    }
  });
});

Deno.test("attack: five names on one address relaying to one user stay within the address's budget", async () => {
  const clock = new FakeClock();
  await withCoordinator({ clock }, async (c) => {
    const victim = await Udp.open("127.0.9.15", c.udpPort);
    const swarm = await Promise.all([1, 2, 3, 4, 5].map(() => Udp.open("127.0.9.16", c.udpPort)));
    try {
      await logIn(c, victim, "victim");
      for (const [i, s] of swarm.entries()) await logIn(c, s, `m${i}`);
      // Introduced at both sides' request (each consented: PROTOCOL.md §1.4), so that no
      // consent rule stands in the way of the relay budgets under test.
      for (const i of swarm.keys()) victim.send(`connect,victim,m${i}`);
      for (const [i, s] of swarm.entries()) s.send(`connect,m${i},victim`);
      await victim.untilCount((t) => t.startsWith("Introduce,"), 5);
      const inner = new Uint8Array(1000).fill(7);
      const perSecond: number[] = [];
      const frames = swarm.map((_, i) => {
        inner.set([0x15, 2, 0x6d, 0x30 + i]); // a DATA frame from m<i>
        return encodeFrame({ type: "relay", to: "victim", inner });
      });
      // Ten seconds of the coordinator's time; each name sends 160 frames of 1,000 bytes a
      // second, in bursts that the coordinator's socket buffer holds.
      let sent = 0;
      for (let second = 0; second < 10; second++) {
        const forwarded = c.relay.stats.forwarded;
        for (let burst = 0; burst < 8; burst++) {
          const before = c.stats.frames;
          for (const [i, s] of swarm.entries()) for (let k = 0; k < 20; k++) s.send(frames[i]);
          sent += 100;
          await settled(() => c.stats.frames, before + 100);
        }
        perSecond.push(c.relay.stats.forwarded - forwarded);
        clock.advance(1_000);
      }
      assert.ok(c.stats.frames > 0.9 * sent, `${c.stats.frames} of ${sent} frames arrived`);
      const bytes = c.relay.stats.forwardedBytes;
      const packets = c.relay.stats.forwarded;
      // Before issue 18: every pair had its own budget, 5 × (512 KiB + 9 s × 64 KiB/s), some
      // 5.5 MB. Now the address's: 1 MiB and 1,600 packets at once, then 128 KiB/s and 400/s.
      const figures = `${bytes} bytes, ${packets} packets relayed (per second: ${perSecond})`;
      assert.ok(bytes <= 1024 * 1024 + 9 * 128 * 1024, figures);
      assert.ok(packets <= 1_600 + 9 * 400, figures);
      console.log(figures);
      assert.ok(c.relay.stats.addressOverBudget > 0);
    } finally {
      await Promise.all([victim.close(), ...swarm.map((s) => s.close())]);
    }
  });
});

/** Waits until `count()` reaches `target`, or stops growing for 50 ms (datagrams were lost). */
async function settled(count: () => number, target: number): Promise<void> {
  let last = -1;
  let since = Date.now();
  while (count() < target && Date.now() - since < 50) {
    if (count() !== last) [last, since] = [count(), Date.now()];
    await sleep(5);
  }
}

/** Waits until `pred()` holds, polling; fails after `ms`. */
async function waitFor(pred: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms`);
    await sleep(10);
  }
}
