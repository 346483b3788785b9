import assert from "node:assert/strict";
import { Coordinator, type CoordinatorOptions } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { encodeWhoami } from "../../lib/protocol/whoami.ts";
import { UdpSocket } from "../../lib/net/udp.ts";
import { Peer, type PeerOptions } from "../../lib/peer.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { encodeServerMessage } from "../../lib/protocol/seed.ts";
import { SeedClient, seedLogin } from "../support/seed_client.ts";
import { startPeer } from "../support/peers.ts";
import { type Collector, sleep } from "../support/wait.ts";

type Ev = PeerEvent;

const encoder = new TextEncoder();

/** A coordinator on loopback, peers that record their events, and cleanup of both. */
async function world(
  fn: (w: {
    coordinator: Coordinator;
    start: (
      name: string,
      extra?: Partial<PeerOptions>,
    ) => Promise<{ peer: Peer; events: Collector<Ev> }>;
    configDir: string;
  }) => Promise<void>,
  options: CoordinatorOptions = {},
): Promise<void> {
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    log: () => {},
    ...options,
  });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-peer-test-" });
  const peers: Peer[] = [];
  try {
    await fn({
      coordinator,
      configDir,
      start: async (name, extra = {}) => {
        const started = await startPeer(coordinator, configDir, name, extra);
        peers.push(started.peer);
        return started;
      },
    });
  } finally {
    for (const p of peers) await p.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
}

async function delivered(events: Collector<Ev>, id: number | undefined, timeoutMs = 5000) {
  assert.ok(id !== undefined, "the message was refused");
  const e = await events.waitFor(
    (e) => (e.event === "delivered" || e.event === "undelivered") && e.id === id,
    timeoutMs,
    `fate of #${id}`,
  );
  assert.equal(e.event, "delivered", JSON.stringify(e));
}

Deno.test("three peers: lists converge; encrypted messages go directly in every direction, once each", async () => {
  await world(async ({ coordinator, start }) => {
    const names = ["alice", "bob", "carol"];
    const all = [];
    for (const name of names) all.push(await start(name));
    for (const { peer, events } of all) {
      await events.waitFor((e) => e.event === "ready");
      for (const other of names.filter((n) => n !== peer.username)) {
        await events.waitFor(
          (e) => e.event === "online" && e.user === other,
          3000,
          `${other} online`,
        );
      }
      assert.deepEqual(
        peer.who().map((u) => u.user).sort(),
        names.filter((n) => n !== peer.username),
      );
    }
    for (const from of all) {
      for (const to of all.filter((p) => p !== from)) {
        const text = `${from.peer.username}→${to.peer.username} 你好`;
        const id = from.peer.send(to.peer.username, text);
        await delivered(from.events, id);
        const sent = from.events.items.find((e) => e.event === "sent" && e.id === id);
        assert.ok(sent?.event === "sent" && /^[0-9a-f]{32}$/.test(sent.uid));
        const got = await to.events.waitFor((e) => e.event === "message" && e.text === text);
        // The receiver sees the sender's lasting uid and send time.
        assert.deepEqual(got, {
          event: "message",
          from: from.peer.username,
          to: to.peer.username,
          text,
          id: (got as { id: number }).id,
          path: "direct",
          uid: sent.uid,
          time: sent.time,
        });
      }
    }
    for (const { events } of all) {
      assert.equal(events.count((e) => e.event === "message"), 2, "each message exactly once");
      assert.ok(events.items.some((e) => e.event === "path" && e.path === "direct"));
    }
    // Direct means direct: the coordinator relayed nothing.
    assert.equal(coordinator.stats.relayed, 0);
    assert.deepEqual(
      all[0].peer.who().map((u) => u.path),
      ["direct", "direct"],
    );
  });
});

Deno.test("long messages are split and reassembled; /all reaches everyone as a group message", async () => {
  await world(async ({ start }) => {
    const a = await start("alice");
    const b = await start("bob");
    const c = await start("carol");
    await a.events.waitFor((e) => e.event === "online" && e.user === "carol");
    const long = "长".repeat(30_000) + "x".repeat(5_000); // 95 KB of UTF-8
    await delivered(a.events, a.peer.send("bob", long), 15_000);
    const got = await b.events.waitFor((e) => e.event === "message" && e.from === "alice");
    assert.equal(got.event === "message" && got.text, long);

    const ids = a.peer.sendAll("hello everyone");
    assert.equal(ids.length, 2);
    for (const id of ids) await delivered(a.events, id);
    for (const other of [b, c]) {
      const m = await other.events.waitFor((e) =>
        e.event === "message" && e.text === "hello everyone"
      );
      assert.equal(m.event === "message" && m.to, "*");
    }
    assert.equal(a.events.count((e) => e.event === "sent" && e.group === true), 2);
  });
});

Deno.test("a seed-only client cannot be messaged directly: reported undelivered, with the reason", async () => {
  await world(async ({ coordinator, start }) => {
    const mute = await SeedClient.open({ host: "127.0.0.1", port: coordinator.udpPort });
    try {
      const a = await start("alice");
      await seedLogin(mute, "mute");
      await a.events.waitFor((e) => e.event === "online" && e.user === "mute");
      const id = a.peer.send("mute", "anyone there?");
      const e = await a.events.waitFor((e) => e.event === "undelivered" && e.id === id);
      assert.match((e as { reason: string }).reason, /client without direct messaging/);
      // Sending to someone never seen is refused at once.
      assert.equal(a.peer.send("nobody", "hi"), undefined);
      await a.events.waitFor((e) => e.event === "error" && /nobody is not online/.test(e.message));
    } finally {
      await mute.close();
    }
  });
});

Deno.test("keys are pinned on first use; a changed key stops sending until /trust", async () => {
  await world(async ({ start }) => {
    const a = await start("alice");
    const bobDir = await Deno.makeTempDir({ prefix: "p2p-bob-" });
    const bobDir2 = await Deno.makeTempDir({ prefix: "p2p-bob2-" });
    try {
      const b1 = await start("bob", { configDir: bobDir });
      await a.events.waitFor((e) => e.event === "online" && e.user === "bob");
      await delivered(a.events, a.peer.send("bob", "first"));
      a.peer.showFingerprint("bob");
      const fp = await a.events.waitFor((e) => e.event === "fingerprint" && e.user === "bob");
      assert.equal(fp.event === "fingerprint" && fp.fingerprint, b1.peer.fingerprint);
      assert.match(String((fp as { safety?: string }).safety), /^\d{5}( \d{5}){5}$/);
      await b1.peer.close();
      await a.events.waitFor((e) => e.event === "offline" && e.user === "bob");

      // "bob" comes back with another key (a new machine — or an impostor), once his name's
      // registration has lapsed (this coordinator keeps them 1 ms: see names_test.ts).
      const b2 = await start("bob", { configDir: bobDir2 });
      await a.events.waitFor((e) =>
        e.event === "online" && e.user === "bob" &&
        a.events.count((x) => x.event === "online" && x.user === "bob") === 2
      );
      const queued = a.peer.send("bob", "are you really bob?");
      const warning = await a.events.waitFor((e) => e.event === "key-changed", 8000);
      assert.deepEqual(warning, {
        event: "key-changed",
        user: "bob",
        fingerprint: b2.peer.fingerprint,
        previous: b1.peer.fingerprint,
      });
      // /fingerprint bob now shows the NEW key, marked unaccepted: the one to compare.
      a.peer.showFingerprint("bob");
      const fresh = await a.events.waitFor((e) =>
        e.event === "fingerprint" && e.user === "bob" && e.unaccepted === true
      );
      assert.equal(fresh.event === "fingerprint" && fresh.fingerprint, b2.peer.fingerprint);
      assert.equal(fresh.event === "fingerprint" && fresh.previous, b1.peer.fingerprint);
      // Nothing reaches the new bob, and new messages are refused outright.
      assert.equal(a.peer.send("bob", "more"), undefined);
      await a.events.waitFor((e) => e.event === "error" && /key has changed/.test(e.message));
      assert.equal(b2.events.count((e) => e.event === "message"), 0);

      await a.peer.trust("bob");
      await a.events.waitFor((e) => e.event === "trusted" && e.user === "bob");
      a.peer.showFingerprint("bob");
      await a.events.waitFor((e) =>
        e.event === "fingerprint" && e.fingerprint === b2.peer.fingerprint && !e.unaccepted
      );
      await delivered(a.events, queued, 10_000);
      await b2.events.waitFor((e) => e.event === "message" && e.text === "are you really bob?");
    } finally {
      await Deno.remove(bobDir, { recursive: true });
      await Deno.remove(bobDir2, { recursive: true });
    }
  }, { nameTtlMs: 1 });
});

Deno.test("a peer that restarts is written to on a fresh stream; while away, it is not", async () => {
  await world(async ({ start }) => {
    const a = await start("alice");
    const b1 = await start("bob");
    await a.events.waitFor((e) => e.event === "online" && e.user === "bob");
    await delivered(a.events, a.peer.send("bob", "before"));
    await b1.peer.close();
    await a.events.waitFor((e) => e.event === "offline" && e.user === "bob");
    // Bob is away: a message to him is refused at once, saying so (no mailbox yet).
    assert.equal(a.peer.send("bob", "while you were away"), undefined);
    await a.events.waitFor((e) => e.event === "error" && /bob is offline/.test(e.message));
    const b2 = await start("bob");
    await a.events.waitFor((e) =>
      e.event === "online" && e.user === "bob" &&
      a.events.count((x) => x.event === "online" && x.user === "bob") === 2
    );
    const id = a.peer.send("bob", "while you were away");
    await delivered(a.events, id, 10_000);
    await b2.events.waitFor((e) => e.event === "message" && e.text === "while you were away");
    // And back the other way on the new session.
    await delivered(b2.events, b2.peer.send("alice", "I'm back"));
    await a.events.waitFor((e) => e.event === "message" && e.text === "I'm back");
  });
});

/**
 * A coordinator on loopback whose second port (`udpPort + 1`, where a peer asks) is a fake that
 * hands each `whoami` to `answer`, and a peer "alice" logged in to it; retried on another port
 * if `udpPort + 1` is taken.
 */
async function withFakeSecondPort(
  answer: (data: Uint8Array, from: Endpoint, socket: UdpSocket) => void,
  fn: (coordinator: Coordinator, alice: Peer) => Promise<void>,
): Promise<void> {
  for (let attempt = 0;; attempt++) {
    const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
    let alt: UdpSocket;
    try {
      alt = await UdpSocket.bind({ host: "127.0.0.1", port: coordinator.udpPort + 1 });
    } catch (err) {
      await coordinator.close();
      if (attempt < 5) continue;
      throw err;
    }
    const configDir = await Deno.makeTempDir({ prefix: "p2p-peer-test-" });
    try {
      alt.onMessage((data, from) => answer(data, from, alt));
      const peer = await Peer.start({
        server: { host: "127.0.0.1", port: coordinator.udpPort },
        username: "alice",
        bind: { host: "127.0.0.1", port: 0 },
        configDir,
        onEvent: () => {},
      });
      try {
        await fn(coordinator, peer);
      } finally {
        await peer.close();
      }
    } finally {
      await alt.close();
      await coordinator.close();
      await Deno.remove(configDir, { recursive: true });
    }
    return;
  }
}

async function natOf(peer: Peer, timeoutMs = 3000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (peer.nat === undefined && Date.now() < deadline) await sleep(20);
  return peer.nat;
}

Deno.test("NAT detection: a padded whoami to port + 1; the answer sets and reports the NAT kind", async () => {
  for (const kind of ["easy", "hard"] as const) {
    const requests: string[] = [];
    // A stranger's `You` (not from the coordinator's second port) must not count.
    const stranger = await UdpSocket.bind({ host: "127.0.0.1" });
    try {
      await withFakeSecondPort((data, from, alt) => {
        requests.push(new TextDecoder().decode(data));
        const forged = { host: "192.0.2.66", port: 6666 };
        stranger.send(encoder.encode(encodeServerMessage({ type: "you", endpoint: forged })), from);
        // As a symmetric NAT would: another public port for the second destination.
        const seen = kind === "easy"
          ? from
          : { ...from, port: from.port === 1 ? 2 : from.port - 1 };
        setTimeout(
          () =>
            alt.send(encoder.encode(encodeServerMessage({ type: "you", endpoint: seen })), from),
          50,
        );
      }, async (coordinator, peer) => {
        assert.equal(await natOf(peer), kind);
        assert.deepEqual(requests, [new TextDecoder().decode(encodeWhoami())]);
        // Reported to the coordinator, which passes it on in introductions.
        const deadline = Date.now() + 3000;
        while (coordinator.registry.get("alice")?.nat !== kind && Date.now() < deadline) {
          await sleep(20);
        }
        assert.equal(coordinator.registry.get("alice")?.nat, kind);
      });
    } finally {
      await stranger.close();
    }
  }
});

Deno.test("NAT detection: no answer from port + 1 leaves the NAT kind unknown after 3 tries", async () => {
  const requests: string[] = [];
  await withFakeSecondPort((data) => {
    requests.push(new TextDecoder().decode(data));
  }, async (coordinator, peer) => {
    await sleep(3300);
    assert.equal(peer.nat, undefined);
    assert.equal(requests.length, 3);
    assert.equal(coordinator.registry.get("alice")?.nat, undefined);
  });
});
