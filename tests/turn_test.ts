/**
 * TURN on loopback: a real coturn started here, a coordinator that hands out credentials for
 * it (`turn` option, as `p2p serve --turn` gives), and two clients kept off the direct path (the
 * path finder's `directCandidates: false` test hook). They talk over `turn`, with the
 * coordinator's relay carrying nothing but the two TURN candidates; with a secret the TURN
 * server does not share, they say so and talk over the coordinator's relay.
 */
import assert from "node:assert/strict";
import { Coordinator } from "../lib/coordinator.ts";
import type { PeerEvent } from "../lib/peer/events.ts";
import { startCoturn } from "./support/coturn.ts";
import { startPeer, type TestPeer } from "./support/peers.ts";

const offDirect = { pathOptions: { directCandidates: false } };

async function pair(turnSecret: string, uri: string) {
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    mailbox: false,
    turn: { uri, secret: new TextEncoder().encode(turnSecret) },
  });
  const config = await Deno.makeTempDir({ prefix: "p2p-turn-" });
  const alice = await startPeer(coordinator, config, "alice", offDirect);
  const bob = await startPeer(coordinator, config, "bob", offDirect);
  const close = async () => {
    await alice.peer.close();
    await bob.peer.close();
    await coordinator.close();
    await Deno.remove(config, { recursive: true });
  };
  return { coordinator, alice, bob, close };
}

const isPath = (user: string, path: string) => (e: PeerEvent) =>
  e.event === "path" && e.user === user && e.path === path;

async function chat(from: TestPeer, to: TestPeer, text: string): Promise<void> {
  const id = from.peer.send(to.peer.username, text);
  await to.events.waitFor((e) => e.event === "message" && e.text === text, 15_000, text);
  await from.events.waitFor((e) => e.event === "delivered" && e.id === id, 15_000, "delivered");
}

Deno.test("two clients off the direct path chat over TURN, not the coordinator's relay", async () => {
  const turn = await startCoturn();
  const { coordinator, alice, bob, close } = await pair(turn.secret, turn.uri);
  try {
    await chat(alice, bob, "hello over turn");
    await alice.events.waitFor(isPath("bob", "turn"), 10_000, "alice's turn path");
    await bob.events.waitFor(isPath("alice", "turn"), 10_000, "bob's turn path");
    for (const e of [...alice.events.items, ...bob.events.items]) {
      assert.ok(
        !(e.event === "path" && e.path === "relay"),
        `used the relay: ${JSON.stringify(e)}`,
      );
    }
    await chat(bob, alice, "and back");
    assert.ok(alice.events.items.some((e) => e.event === "turn" && e.state === "ready"));
    // The coordinator relayed only the TURN candidates (one per allocation and introduction).
    assert.ok(coordinator.stats.relayed <= 4, `relayed ${coordinator.stats.relayed} frames`);
    assert.equal(coordinator.turn?.issued, 2);
  } finally {
    await close();
    await turn.stop();
  }
});

Deno.test("with the wrong TURN secret, clients say so and chat over the coordinator's relay", async () => {
  const turn = await startCoturn();
  const { alice, bob, close } = await pair("not-" + turn.secret, turn.uri);
  try {
    await chat(alice, bob, "hello over the relay");
    const failed = await alice.events.waitFor(
      (e) => e.event === "turn" && e.state === "failed",
      10_000,
      "the TURN failure",
    );
    assert.match(
      (failed as { reason: string }).reason,
      /refused our credentials \(401 .*\); using the coordinator's relay/,
    );
    await alice.events.waitFor(isPath("bob", "relay"), 10_000, "alice's relay path");
  } finally {
    await close();
    await turn.stop();
  }
});
