/**
 * Offline messages between real peers through a real coordinator's mailbox (in process, real
 * sockets, real SQLite files): deposit while the recipient is offline, delivery in order at its
 * next login, receipts back to the sender; a link that gives up diverts to the mailbox; a sender
 * never talked to seals to the coordinator's key and says so.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Coordinator } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { History } from "../../lib/store/history.ts";
import { encodeKey, loadOrCreateIdentity } from "../../lib/crypto/identity.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { startPeer, type TestPeer } from "../support/peers.ts";
import { fetchListRaw, SeedClient } from "../support/seed_client.ts";

interface World {
  coordinator: Coordinator;
  configDir: string;
  start(
    name: string,
    extra?: { giveUpAfterMs?: number },
  ): Promise<TestPeer & { stop(): Promise<void> }>;
}

async function world(fn: (w: World) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "p2p-mailbox-peer-test-" });
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    log: () => {},
    dataDir: join(root, "server"),
  });
  const configDir = join(root, "config");
  const dataDir = join(root, "data");
  const running = new Set<() => Promise<void>>();
  try {
    await fn({
      coordinator,
      configDir,
      start: async (name, extra = {}) => {
        const history = await History.open({ username: name, configDir, dataDir });
        const started = await startPeer(coordinator, configDir, name, { history, ...extra })
          .catch((e) => {
            history.close();
            throw e;
          });
        const stop = async () => {
          running.delete(stop);
          await started.peer.close();
          history.close();
        };
        running.add(stop);
        return { ...started, stop };
      },
    });
  } finally {
    for (const stop of [...running]) await stop();
    await coordinator.close();
    await Deno.remove(root, { recursive: true });
  }
}

const of = (events: PeerEvent[], kind: string) => events.filter((e) => e.event === kind);

Deno.test("mailbox: messages to an offline user are deposited, delivered in order at login, and receipted", async () => {
  await world(async ({ start, coordinator }) => {
    const bob = await start("bob");
    await bob.stop(); // bob's name and key are registered; he is offline now

    const alice = await start("alice");
    await alice.events.waitFor((e) => e.event === "ready");
    for (let i = 0; i < 5; i++) alice.peer.send("bob", `offline ${i}`);
    await alice.events.waitFor(() => of(alice.events.items, "deposited").length === 5, 10_000);
    const deposited = of(alice.events.items, "deposited") as Extract<
      PeerEvent,
      { event: "deposited" }
    >[];
    // bob was never talked to: the first is sealed to the coordinator's key for him, then pinned
    assert.equal(deposited[0].firstContact, true);
    assert.ok(deposited.slice(1).every((e) => !e.firstContact));
    await alice.peer.drain();
    await alice.stop();
    assert.equal(coordinator.mailbox!.store.waiting("bob"), 5);

    const bob2 = await start("bob");
    await bob2.events.waitFor(() => of(bob2.events.items, "message").length === 5, 10_000);
    const messages = of(bob2.events.items, "message") as Extract<PeerEvent, { event: "message" }>[];
    assert.deepEqual(messages.map((m) => m.text), [0, 1, 2, 3, 4].map((i) => `offline ${i}`));
    assert.ok(messages.every((m) => m.via === "mailbox" && m.from === "alice"));
    assert.deepEqual(messages.map((m) => m.uid), deposited.map((d) => d.uid));
    // acknowledged: nothing waits for bob; his receipt waits for alice
    await bob2.peer.drain();
    for (let i = 0; i < 50 && coordinator.mailbox!.store.waiting("alice") === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(coordinator.mailbox!.store.waiting("bob"), 0);
    assert.equal(coordinator.mailbox!.store.waiting("alice"), 1);
    await bob2.stop();

    const alice2 = await start("alice");
    await alice2.events.waitFor(() => of(alice2.events.items, "delivered").length === 5, 10_000);
    const delivered = of(alice2.events.items, "delivered") as Extract<
      PeerEvent,
      { event: "delivered" }
    >[];
    assert.deepEqual(delivered.map((d) => d.uid), deposited.map((d) => d.uid));
    assert.ok(delivered.every((d) => d.via === "mailbox" && d.to === "bob"));
    // bob logged in again: nothing shown twice
    const bob3 = await start("bob");
    await bob3.events.waitFor((e) => e.event === "ready");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(of(bob3.events.items, "message").length, 0);
  });
});

Deno.test("mailbox: a message the link gives up on is deposited instead of undelivered", async () => {
  await world(async ({ start, coordinator, configDir }) => {
    const bob = await start("bob");
    const alice = await start("alice", { giveUpAfterMs: 1_000 });
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    await bob.stop();
    await alice.events.waitFor((e) => e.event === "offline" && e.user === "bob", 10_000);
    // bob's name comes back online with his key, but nothing answers there (a frozen client)
    const ghost = await SeedClient.open({ host: "127.0.0.1", port: coordinator.udpPort });
    try {
      const key = encodeKey((await loadOrCreateIdentity({ username: "bob", configDir })).publicKey);
      const secret = encodeBase64url(new Uint8Array(16).fill(7));
      ghost.send(`login,bob,${ghost.endpoint},${key},${secret}`);
      await ghost.next((t) => t.startsWith("Accept,"));
      await fetchListRaw(coordinator.tcpPort);
      await alice.events.waitFor((e) => e.event === "online" && e.user === "bob", 10_000);
      // the link tries, gives up after 1 s, and the mailbox takes it
      alice.peer.send("bob", "are you there?");
      const e = await alice.events.waitFor((e) => e.event === "deposited", 10_000);
      assert.equal(e.event === "deposited" && e.to, "bob");
      assert.equal(of(alice.events.items, "undelivered").length, 0);
    } finally {
      await ghost.close();
    }
    const bob2 = await start("bob");
    const m = await bob2.events.waitFor((e) => e.event === "message", 10_000);
    assert.ok(m.event === "message" && m.text === "are you there?" && m.via === "mailbox");
  });
});

Deno.test("mailbox: a message to someone who went offline is deposited at once", async () => {
  await world(async ({ start }) => {
    const bob = await start("bob");
    const alice = await start("alice");
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    alice.peer.send("bob", "hi"); // bob's key is pinned by the handshake
    await alice.events.waitFor((e) => e.event === "delivered", 10_000);
    await bob.stop();
    await alice.events.waitFor((e) => e.event === "offline" && e.user === "bob", 10_000);
    alice.peer.send("bob", "see you later");
    const e = await alice.events.waitFor((e) => e.event === "deposited", 5_000);
    assert.ok(e.event === "deposited" && e.to === "bob" && !e.firstContact);
  });
});

Deno.test("mailbox: a name no key ever registered is refused as unknown user", async () => {
  await world(async ({ start }) => {
    const alice = await start("alice");
    alice.peer.send("nobody", "hello?");
    const e = await alice.events.waitFor((e) => e.event === "undelivered", 10_000);
    assert.ok(e.event === "undelivered" && e.reason === "unknown user", JSON.stringify(e));
  });
});
