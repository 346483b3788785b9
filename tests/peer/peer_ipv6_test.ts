/**
 * IPv6 between chat clients on loopback: dual-stack sockets (`::`) that announce `[::1]` as their
 * `v6` candidate go direct over IPv6; a client with an IPv4-only socket still goes direct over
 * IPv4 to a dual-stack one. The coordinator is IPv4 (the candidate policy passes loopback
 * candidates because it sees everyone on loopback).
 */
import assert from "node:assert/strict";
import { Coordinator } from "../../lib/coordinator.ts";
import type { Peer } from "../../lib/peer.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { startPeer, type TestPeer } from "../support/peers.ts";

async function world(
  fn: (start: (name: string, v6: boolean) => Promise<TestPeer>) => Promise<void>,
) {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-ipv6-test-" });
  const peers: Peer[] = [];
  try {
    await fn(async (name, v6) => {
      const started = await startPeer(coordinator, configDir, name, {
        bind: { host: v6 ? "::" : "127.0.0.1", port: 0 },
        // NAT detection by the coordinator's STUN answer, at once (it has no second port here).
        stun: [{ host: "127.0.0.1", port: coordinator.udpPort }],
      });
      peers.push(started.peer);
      return started;
    });
  } finally {
    for (const p of peers) await p.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
}

/** Sends `text` from `a` to `b`, waits for delivery, and returns `a`'s last path event to `b`. */
async function talk(a: TestPeer, b: TestPeer, text: string): Promise<string | undefined> {
  const id = a.peer.send(b.peer.username, text);
  await a.events.waitFor((e) => e.event === "delivered" && e.id === id, 10_000, "delivered");
  await b.events.waitFor((e) => e.event === "message" && e.text === text, 10_000, "received");
  const paths = a.events.items.filter((e): e is Extract<PeerEvent, { event: "path" }> =>
    e.event === "path" && e.user === b.peer.username
  );
  return paths.at(-1)?.endpoint;
}

Deno.test("dual-stack peers that announce IPv6 go direct over it", async () => {
  await world(async (start) => {
    const alice = await start("alice", true);
    const bob = await start("bob", true);
    for (const p of [alice, bob]) {
      p.peer.announceCandidate("v6", { host: "::1", port: p.peer.observed!.port });
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.match((await talk(alice, bob, "hello over v6"))!, /^\[::1\]:\d+$/);
    // Both ways, and the other side's path is IPv6 too (it may have upgraded a moment later).
    await talk(bob, alice, "and back");
    await bob.events.waitFor(
      (e) => e.event === "path" && e.user === "alice" && e.endpoint?.startsWith("[::1]") === true,
      5000,
      "bob's path to alice over IPv6",
    );
  });
});

Deno.test("an IPv4-only peer reaches a dual-stack one over IPv4", async () => {
  await world(async (start) => {
    const dual = await start("carol", true);
    const v4only = await start("dave", false);
    dual.peer.announceCandidate("v6", { host: "::1", port: dual.peer.observed!.port });
    await new Promise((r) => setTimeout(r, 100));
    assert.match((await talk(v4only, dual, "hi from v4"))!, /^127\.0\.0\.1:\d+$/);
    assert.match((await talk(dual, v4only, "hi back"))!, /^127\.0\.0\.1:\d+$/);
  });
});
