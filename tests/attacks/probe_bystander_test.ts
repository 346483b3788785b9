/**
 * Attack: an introduced user claims a bystander's address as its LAN endpoint, and keeps the
 * introductions coming (issue 18). Before the probe quota one `connect` made the victim probe the
 * bystander 107 times (2.9 KB), and again with every new introduction while the requester stayed
 * online. Now an endpoint that never answers gets at most 32 probes in any 10 minutes.
 *
 * The victim first sends the attacker a message, so the test holds whatever rule decides who
 * may be introduced: the victim asked too.
 */
import assert from "node:assert/strict";
import { Coordinator } from "../../lib/coordinator.ts";
import { encodeKey } from "../../lib/crypto/identity.ts";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { UdpSocket } from "../../lib/net/udp.ts";
import type { Peer } from "../../lib/peer.ts";
import { startPeer } from "../support/peers.ts";
import { fetchListRaw, SeedClient } from "../support/seed_client.ts";
import { sleep } from "../support/wait.ts";

/** Seconds the attack lasts: several introductions, each of which used to restart the search. */
const ATTACK_S = 30;

Deno.test("attack: a claimed bystander endpoint gets at most 32 probes, however many introductions", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-attack-" });
  const bystander = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
  const received = { packets: 0, bytes: 0 };
  bystander.onMessage((data) => {
    received.packets++;
    received.bytes += data.length;
  });
  const mallory = await SeedClient.open({ host: "127.0.0.1", port: coordinator.udpPort });
  let victim: Peer | undefined;
  try {
    const started = await startPeer(coordinator, configDir, "alice");
    victim = started.peer;
    const events = started.events;
    // mallory logs in with a key, claiming the bystander's endpoint as its own LAN endpoint.
    const key = encodeKey(generateKeyPair().publicKey);
    const secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
    const b = bystander.local;
    mallory.send(`login,mallory,${b.host}:${b.port},${key},${secret}`);
    const accept = await mallory.next((t) => t.startsWith("Accept,"));
    await fetchListRaw(Number(accept.split(",")[1]));
    await events.waitFor((e) => e.event === "online" && e.user === "mallory");
    victim.send("mallory", "hello?");
    // mallory asks for an introduction every 3 s and stays online, never answering a probe.
    for (let t = 0; t < ATTACK_S; t += 3) {
      mallory.send(`connect,mallory,alice`);
      mallory.send(`heartbeat,mallory,${secret}`);
      await sleep(3000);
    }
    const introductions = mallory.received.filter((t) => t.startsWith("Introduce,")).length;
    console.log(
      `${introductions} introductions in ${ATTACK_S} s; the bystander got ${received.packets} ` +
        `packets, ${received.bytes} bytes`,
    );
    assert.ok(introductions >= 5, `only ${introductions} introductions: the attack did not run`);
    // 32 probes of 27 bytes (type, name length, "alice", txid, MAC) at most.
    assert.ok(received.packets <= 32, `${received.packets} packets to the bystander`);
    assert.ok(received.bytes <= 32 * 27, `${received.bytes} bytes to the bystander`);
  } finally {
    await victim?.close();
    await mallory.close();
    await bystander.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("attack: two names claiming one bystander endpoint share the victim's 32 probes", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-attack-" });
  const bystander = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
  let packets = 0;
  bystander.onMessage(() => packets++);
  const names = ["m1", "m2"];
  const attackers = await Promise.all(
    names.map(() => SeedClient.open({ host: "127.0.0.1", port: coordinator.udpPort })),
  );
  let victim: Peer | undefined;
  try {
    const started = await startPeer(coordinator, configDir, "alice", {
      // A search in 2 s instead of 30: each name alone would get 32 probes to the bystander.
      pathOptions: { probeIntervalMs: 20, fastProbeMs: 1000, backgroundForMs: 2000 },
    });
    victim = started.peer;
    const events = started.events;
    const b = bystander.local;
    for (const [i, name] of names.entries()) {
      const key = encodeKey(generateKeyPair().publicKey);
      const secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
      attackers[i].send(`login,${name},${b.host}:${b.port},${key},${secret}`);
      const accept = await attackers[i].next((t) => t.startsWith("Accept,"));
      await fetchListRaw(Number(accept.split(",")[1]));
      await events.waitFor((e) => e.event === "online" && e.user === name);
      victim.send(name, "hello?");
      attackers[i].send(`connect,${name},alice`);
    }
    await sleep(4000);
    for (const [i, name] of names.entries()) {
      assert.ok(
        attackers[i].received.some((t) => t.startsWith("Introduce,")),
        `${name} was never introduced: the attack did not run`,
      );
    }
    console.log(`two names: the bystander got ${packets} packets`);
    // Both links charge the client's one quota: 32 in all, not 32 per name.
    assert.equal(packets, 32);
  } finally {
    await victim?.close();
    for (const a of attackers) await a.close();
    await bystander.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});
