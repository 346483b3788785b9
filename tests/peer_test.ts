import assert from "node:assert/strict";
import { Coordinator } from "../lib/coordinator.ts";
import type { PeerEvent } from "../lib/events.ts";
import { Peer } from "../lib/peer.ts";
import { SeedClient, seedLogin } from "./support/seed_client.ts";
import { Collector } from "./support/wait.ts";

Deno.test("three peers: lists converge and messages flow directly in every direction", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const server = { host: "127.0.0.1", port: coordinator.udpPort };
  const names = ["alice", "bob", "carol"];
  const events = new Map(names.map((n) => [n, new Collector<PeerEvent>()]));
  const peers: Peer[] = [];
  try {
    for (const name of names) {
      peers.push(
        await Peer.start({
          server,
          username: name,
          bind: { host: "127.0.0.1", port: 0 },
          onEvent: events.get(name)!.push,
        }),
      );
    }
    for (const peer of peers) {
      const log = events.get(peer.username)!;
      await log.waitFor((e) => e.event === "ready");
      for (const other of names.filter((n) => n !== peer.username)) {
        await log.waitFor((e) => e.event === "online" && e.user === other, 3000, `${other} online`);
      }
      assert.deepEqual(
        peer.who().map((u) => u.user).sort(),
        names.filter((n) => n !== peer.username),
      );
    }
    // Stop the coordinator: chat between peers must not need it.
    const framesBefore = coordinator.stats.datagrams;
    for (const from of peers) {
      for (const to of names.filter((n) => n !== from.username)) {
        const id = from.send(to, `${from.username}→${to} 你好`);
        assert.ok(id !== undefined);
        await events.get(from.username)!.waitFor(
          (e) => e.event === "delivered" && e.to === to && e.id === id,
          3000,
          `delivery ${from.username}→${to}`,
        );
        await events.get(to)!.waitFor(
          (e) =>
            e.event === "message" && e.from === from.username &&
            e.text === `${from.username}→${to} 你好`,
        );
      }
    }
    // Direct means direct: the coordinator saw none of those frames (heartbeats are 10 s apart).
    assert.equal(coordinator.stats.frames, 0);
    assert.ok(coordinator.stats.datagrams - framesBefore <= 3);
    // Each message arrived exactly once.
    for (const name of names) {
      assert.equal(events.get(name)!.count((e) => e.event === "message"), 2);
    }
    // Sending to someone offline is an error event, not a crash.
    assert.equal(peers[0].send("nobody", "hi"), undefined);
    await events.get("alice")!.waitFor((e) =>
      e.event === "error" && /nobody is not online/.test(e.message)
    );
    // Leaving is seen by the others.
    await peers.pop()!.close();
    await events.get("alice")!.waitFor((e) => e.event === "offline" && e.user === "carol");
    await events.get("bob")!.waitFor((e) => e.event === "offline" && e.user === "carol");
  } finally {
    for (const p of peers) await p.close();
    await coordinator.close();
  }
});

Deno.test("a message to a peer that never acknowledges is reported undelivered", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const server = { host: "127.0.0.1", port: coordinator.udpPort };
  const a = new Collector<PeerEvent>();
  // A seed-only client: online, but it does not speak our frames, so it never acks.
  const mute = await SeedClient.open(server);
  const alice = await Peer.start({
    server,
    username: "alice",
    onEvent: a.push,
    retryMs: 50,
    attempts: 4,
  });
  try {
    await seedLogin(mute, "mute");
    await a.waitFor((e) => e.event === "online" && e.user === "mute");
    const id = alice.send("mute", "anyone there?");
    const e = await a.waitFor((e) => e.event === "undelivered" && e.id === id);
    assert.deepEqual(e, {
      event: "undelivered",
      to: "mute",
      id,
      reason: "no acknowledgement after 4 tries",
    });
    // It did receive our four copies: retransmission happened.
    assert.equal(mute.received.filter((t) => t.includes("anyone there?")).length, 4);
  } finally {
    await alice.close();
    await mute.close();
    await coordinator.close();
  }
});
