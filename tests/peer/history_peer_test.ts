/**
 * Peers with a real history (SQLite files on disk): what is pending at close goes at the next
 * start, and a message resent after a restart is shown once.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Coordinator } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { History, historyPath } from "../../lib/store/history.ts";
import { startPeer, type TestPeer } from "../support/peers.ts";
import type { Collector } from "../support/wait.ts";

interface World {
  start(name: string): Promise<TestPeer & { history: History; stop(): Promise<void> }>;
  dataDir: string;
}

async function world(fn: (w: World) => Promise<void>): Promise<void> {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const root = await Deno.makeTempDir({ prefix: "p2p-history-peer-test-" });
  const configDir = join(root, "config");
  const dataDir = join(root, "data");
  const running = new Set<() => Promise<void>>();
  try {
    await fn({
      dataDir,
      start: async (name) => {
        const history = await History.open({ username: name, configDir, dataDir });
        const started = await startPeer(coordinator, configDir, name, { history }).catch((e) => {
          history.close();
          throw e;
        });
        const stop = async () => {
          running.delete(stop);
          await started.peer.close();
          history.close();
        };
        running.add(stop);
        return { ...started, history, stop };
      },
    });
  } finally {
    for (const stop of [...running]) await stop();
    await coordinator.close();
    await Deno.remove(root, { recursive: true });
  }
}

function count(events: Collector<PeerEvent>, pred: (e: PeerEvent) => boolean): number {
  return events.items.filter(pred).length;
}

Deno.test("messages pending when the sender closes go at its next start, once", async () => {
  await world(async ({ start }) => {
    let bob = await start("bob");
    let alice = await start("alice");
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    // Sent, and alice stops before bob has them: a first contact needs an introduction and a
    // key exchange first. (A message to someone offline is refused at once, until the mailbox.)
    const ids = [alice.peer.send("bob", "one"), alice.peer.send("bob", "two")];
    assert.ok(ids.every((id) => id !== undefined));
    const sent = alice.events.items.filter((e) => e.event === "sent");
    await alice.stop();
    const kept = alice.events.items.filter((e) => e.event === "undelivered");
    assert.equal(kept.length, 2);
    assert.match(String(kept[0].event === "undelivered" && kept[0].reason), /stays pending/);
    await bob.stop();

    bob = await start("bob");
    alice = await start("alice");
    for (const old of sent) {
      assert.ok(old.event === "sent");
      const resumed = await alice.events.waitFor((e) => e.event === "sent" && e.uid === old.uid);
      assert.ok(resumed.event === "sent" && resumed.resumed === true);
      await alice.events.waitFor((e) => e.event === "delivered" && e.uid === old.uid, 10_000);
    }
    await bob.events.waitFor((e) => e.event === "message" && e.text === "two");
    assert.deepEqual(
      bob.events.items.filter((e) => e.event === "message").map((e) =>
        e.event === "message" && e.text
      ),
      ["one", "two"],
    );
  });
});

Deno.test("a message resent after the sender restarts (its ack lost) is shown once", async () => {
  await world(async ({ start, dataDir }) => {
    const bob = await start("bob");
    let alice = await start("alice");
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    const id = alice.peer.send("bob", "only once");
    await alice.events.waitFor((e) => e.event === "delivered" && e.id === id, 10_000);
    await alice.stop();
    // As if alice had been killed before the acknowledgement reached her history.
    const db = new DatabaseSync(historyPath(dataDir, "alice"));
    db.exec("UPDATE messages SET state = 'sending', path = NULL WHERE outgoing = 1");
    db.close();

    alice = await start("alice");
    const resumed = await alice.events.waitFor((e) => e.event === "sent" && e.resumed === true);
    await alice.events.waitFor(
      (e) => e.event === "delivered" && resumed.event === "sent" && e.uid === resumed.uid,
      10_000,
    );
    assert.equal(count(bob.events, (e) => e.event === "message"), 1, "bob saw it once");
    assert.deepEqual(bob.history.conversation("alice", 10).map((m) => m.text), ["only once"]);
    const [mine] = alice.history.conversation("bob", 10);
    assert.equal(mine.state, "delivered");
    assert.equal(alice.history.pending().length, 0);
  });
});
