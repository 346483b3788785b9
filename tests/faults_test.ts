import assert from "node:assert/strict";
import { Coordinator } from "../lib/coordinator.ts";
import type { PeerEvent } from "../lib/peer/events.ts";
import { Peer } from "../lib/peer.ts";
import { P2pProcess, startServe } from "./support/proc.ts";
import { Collector, sleep } from "./support/wait.ts";

Deno.test("the coordinator restarts while two peers chat directly: no loss, and they come back", async () => {
  const configDir = await Deno.makeTempDir({ prefix: "p2p-faults-" });
  let coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const port = coordinator.udpPort;
  const server = { host: "127.0.0.1", port };
  const events = { alice: new Collector<PeerEvent>(), bob: new Collector<PeerEvent>() };
  const start = (name: "alice" | "bob") =>
    Peer.start({ server, username: name, configDir, keepaliveMs: 200, onEvent: events[name].push });
  const alice = await start("alice");
  const bob = await start("bob");
  try {
    await events.alice.waitFor((e) => e.event === "online" && e.user === "bob");
    const first = alice.send("bob", "before the outage");
    await events.alice.waitFor((e) => e.event === "delivered" && e.id === first);

    await coordinator.close();
    await events.alice.waitFor((e) => e.event === "coordinator" && e.state === "lost", 5000);
    // The direct chat does not need the coordinator.
    const during = [alice.send("bob", "during 1"), bob.send("alice", "during 2")];
    await events.alice.waitFor((e) => e.event === "delivered" && e.id === during[0]);
    await events.bob.waitFor((e) => e.event === "delivered" && e.id === during[1]);
    await sleep(300);

    coordinator = await Coordinator.start({ host: "127.0.0.1", port, log: () => {} });
    for (const who of ["alice", "bob"] as const) {
      await events[who].waitFor((e) => e.event === "coordinator" && e.state === "back", 10_000);
    }
    // Both are online again at the new coordinator, and see each other.
    const deadline = Date.now() + 5000;
    while (coordinator.registry.online().length < 2 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(coordinator.registry.online().map((u) => u.name).sort(), ["alice", "bob"]);
    assert.deepEqual(alice.who().map((u) => u.user), ["bob"]);
    assert.deepEqual(bob.who().map((u) => u.user), ["alice"]);
    // One calm line each way: no offline/online pair for bob, who came back where he was, and
    // no re-login error while the coordinator was away.
    await sleep(600); // past the time a missing user is held (2.5 heartbeats)
    assert.equal(events.alice.count((e) => e.event === "offline"), 0);
    assert.equal(events.alice.count((e) => e.event === "online" && e.user === "bob"), 1);
    assert.equal(events.alice.count((e) => e.event === "coordinator" && e.state === "lost"), 1);
    assert.deepEqual(events.alice.items.filter((e) => e.event === "error"), []);
    const after = alice.send("bob", "after");
    await events.alice.waitFor((e) => e.event === "delivered" && e.id === after);
    assert.deepEqual(
      events.bob.items.filter((e) => e.event === "message").map((e) =>
        (e as { text: string }).text
      ),
      ["before the outage", "during 1", "after"],
    );
  } finally {
    await alice.close();
    await bob.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("a suspended client expires, and comes back by itself when resumed", async () => {
  const { proc: serve, port } = await startServe(["--peer-timeout", "1"]);
  const chat = (name: string) =>
    new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json", "--keepalive", "0.3"]);
  const alice = chat("alice");
  const bob = chat("bob");
  try {
    await alice.event((e) => e.event === "online" && e.user === "bob", 15_000);
    bob.kill("SIGSTOP");
    await alice.event((e) => e.event === "offline" && e.user === "bob", 8000);
    bob.kill("SIGCONT");
    // Its next heartbeat gets "Expired"; it logs in again without anyone doing anything.
    const onlineBob = (l: string) => l.includes('"event":"online"') && l.includes('"user":"bob"');
    await alice.stdout.waitFor(
      () => alice.stdout.count(onlineBob) >= 2,
      10_000,
      "bob online again",
    );
    await alice.write("/msg bob welcome back");
    await bob.event((e) => e.event === "message" && e.text === "welcome back", 10_000);
  } finally {
    await alice.dispose();
    await bob.dispose();
    await serve.dispose();
  }
});
