/**
 * A chat client against a real coordinator: its announced candidates (`Peer.announceCandidate`,
 * `withdrawCandidate`), sent after login (even empty: it says we read them in `Introduce`) and on
 * every change; and its NAT detection through a STUN server (`--stun`).
 */
import assert from "node:assert/strict";
import { Coordinator } from "../../lib/coordinator.ts";
import { startPeer } from "../support/peers.ts";
import { sleep } from "../support/wait.ts";

async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms`);
    await sleep(10);
  }
}

Deno.test("a peer announces its candidates after login and on each change", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-announce-test-" });
  const { peer } = await startPeer(coordinator, configDir, "alice");
  try {
    const user = () => coordinator.registry.get("alice");
    await until(() => user()?.candidates !== undefined);
    assert.deepEqual(user()?.candidates, [], "an empty announcement right after login");
    const mapped = { host: "127.0.0.1", port: 41000 };
    peer.announceCandidate("mapped", mapped);
    await until(() => user()?.candidates?.length === 1);
    assert.deepEqual(user()?.candidates, [{ kind: "mapped", endpoint: mapped }]);
    peer.announceCandidate("v6", { host: "::1", port: 41001 });
    peer.announceCandidate("mapped", { host: "127.0.0.1", port: 41002 }); // replaces the first
    await until(() => user()?.candidates?.length === 2);
    assert.deepEqual(peer.announced, [
      { kind: "mapped", endpoint: { host: "127.0.0.1", port: 41002 } },
      { kind: "v6", endpoint: { host: "::1", port: 41001 } },
    ]);
    assert.deepEqual(user()?.candidates, peer.announced);
    peer.withdrawCandidate("mapped");
    await until(() => user()?.candidates?.length === 1);
    assert.deepEqual(user()?.candidates, [{ kind: "v6", endpoint: { host: "::1", port: 41001 } }]);
  } finally {
    await peer.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("NAT detection with --stun: a STUN server's answer decides, with no second port", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-announce-test-" });
  // The coordinator answers STUN on its main port; it has no second port here.
  const stun = [{ host: "127.0.0.1", port: coordinator.udpPort }];
  const { peer } = await startPeer(coordinator, configDir, "carol", { stun });
  const { peer: plain } = await startPeer(coordinator, configDir, "dave");
  try {
    await until(() => peer.nat !== undefined);
    assert.equal(peer.nat, "easy", "loopback: the server sees our own endpoint");
    assert.equal(coordinator.registry.get("carol")?.nat, "easy", "and it was reported");
    assert.ok(coordinator.stats.stunAnswered >= 1);
    await sleep(200);
    assert.equal(plain.nat, undefined, "without --stun nothing answers the second port yet");
  } finally {
    await peer.close();
    await plain.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});
