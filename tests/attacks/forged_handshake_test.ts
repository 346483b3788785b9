/**
 * Attack: forged first handshake messages (issue 18). An attacker who knows only a victim's
 * address and the name of someone it talks to sends HS1 frames under that name. Before the
 * handshake MACs each one cost the victim a key exchange (about 1.4 ms) and a 105-byte HS2 to the
 * named peer; 200 a second broke a real peer's reconnect. Now they are dropped for one HMAC.
 *
 * The forged frames are built by hand (header, then 64 random bytes: a Noise message 1 with a
 * payload to the old code, a message with two wrong MACs to the new), so this file runs against
 * both.
 */
import assert from "node:assert/strict";
import { Coordinator } from "../../lib/coordinator.ts";
import { UdpSocket } from "../../lib/net/udp.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import type { Peer } from "../../lib/peer.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { P2pProcess } from "../support/proc.ts";
import { type Collector, sleep } from "../support/wait.ts";
import { startPeer } from "../support/peers.ts";

const HS1 = 0x12;
const HS2 = 0x13;

/** An HS1 frame claiming to be from `name`: header and 64 random bytes. */
function forgedHs1(name: string): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const frame = new Uint8Array(2 + nameBytes.length + 64);
  frame[0] = HS1;
  frame[1] = nameBytes.length;
  frame.set(nameBytes, 2);
  crypto.getRandomValues(frame.subarray(2 + nameBytes.length));
  return frame;
}

/** Sends `count` forged HS1s to `to`, `perTick` every `tickMs`. */
async function flood(
  socket: UdpSocket,
  to: Endpoint,
  name: string,
  count: number,
  perTick: number,
  tickMs: number,
): Promise<void> {
  for (let sent = 0; sent < count; sent += perTick) {
    for (let i = 0; i < Math.min(perTick, count - sent); i++) socket.send(forgedHs1(name), to);
    await sleep(tickMs);
  }
}

/**
 * Counts the HS2 frames sockets bound to `port` send, by wrapping the socket class's send: all of
 * them, and the distinct ones (each distinct HS2 is a key exchange; repeats are copies).
 */
async function countHs2From(
  port: () => number,
): Promise<{ frames: number; bytes: number; distinct: Set<string>; restore(): void }> {
  const probe = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
  const proto = Object.getPrototypeOf(probe) as UdpSocket;
  await probe.close();
  const original = proto.send;
  const count = {
    frames: 0,
    bytes: 0,
    distinct: new Set<string>(),
    restore: () => {
      proto.send = original;
    },
  };
  proto.send = function (this: UdpSocket, data, to, options) {
    if (data[0] === HS2 && this.local.port === port()) {
      count.frames++;
      count.bytes += data.length;
      count.distinct.add(data.join(","));
    }
    return original.call(this, data, to, options);
  };
  return count;
}

async function fate(events: Collector<PeerEvent>, id: number | undefined, timeoutMs: number) {
  assert.ok(id !== undefined, "the message was refused");
  return await events.waitFor(
    (e) => (e.event === "delivered" || e.event === "undelivered") && e.id === id,
    timeoutMs,
    `fate of #${id}`,
  );
}

Deno.test("attack: 2,000 forged HS1s at 200/s: no key exchange for them; a session and a reconnect carry on", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-attack-" });
  const attacker = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
  const peers: Peer[] = [];
  let bobPort = 0;
  const hs2 = await countHs2From(() => bobPort);
  try {
    const start = async (name: string) => {
      const started = await startPeer(coordinator, configDir, name);
      peers.push(started.peer);
      return started;
    };
    // alice's name sorts first: she initiates, bob answers HS1s (the victim).
    const bob = await start("bob");
    bobPort = bob.peer.observed!.port;
    const alice = await start("alice");
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    assert.equal(
      (await fate(alice.events, alice.peer.send("bob", "before"), 10_000)).event,
      "delivered",
    );
    const hs2Before = hs2.frames;
    const exchangesBefore = hs2.distinct.size;

    // The flood: 2,000 forged HS1s from "alice" over 10 s, while alice keeps talking to bob and
    // then restarts (a new process instance: a new handshake, under the flood).
    const flooding = flood(attacker, bob.peer.observed!, "alice", 2000, 20, 100);
    const during: (number | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      during.push(alice.peer.send("bob", `during ${i}`));
    }
    for (const id of during) {
      assert.equal(
        (await fate(alice.events, id, 15_000)).event,
        "delivered",
        "a message in the session",
      );
    }
    await alice.peer.close();
    const alice2 = await start("alice");
    await alice2.events.waitFor((e) => e.event === "online" && e.user === "bob");
    const reconnect = await fate(alice2.events, alice2.peer.send("bob", "after a restart"), 20_000);
    await flooding;
    const sentHs2 = hs2.frames - hs2Before;
    const exchanges = hs2.distinct.size - exchangesBefore;
    console.log(
      `forged HS1: 2000; bob sent ${sentHs2} HS2 (${hs2.bytes} bytes in all) from ${exchanges} ` +
        `key exchange(s); reconnect ${reconnect.event}; ` +
        `bob's counters ${JSON.stringify(bob.peer.stats())}`,
    );
    assert.equal(reconnect.event, "delivered", "the reconnect under the flood");
    // The restarted alice's handshake needs one key exchange (two if an introduction crossed it);
    // the flood gets none. Its HS2 is repeated for each repeated HS1 while bob's path still points
    // at the old alice (about 3 s on loopback, as before this issue): copies, not key exchanges.
    assert.ok(exchanges <= 2, `bob made ${exchanges} key exchanges during the flood`);
    assert.ok(sentHs2 <= 12, `bob sent ${sentHs2} HS2s during the flood`);
    assert.ok(bob.peer.stats().badMacs >= 2000, "every forged HS1 was dropped and counted");
  } finally {
    hs2.restore();
    for (const p of peers) await p.close();
    await attacker.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});

/** CPU seconds (user + system) process `pid` has used. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5) (utime, stime), counted after the name: indexes 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

Deno.test("attack: 5,000 forged HS1s cost a chat process little CPU, and messages still arrive", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const attacker = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
  const chat = (name: string) =>
    new P2pProcess([
      "chat",
      `${name}@127.0.0.1:${coordinator.udpPort}`,
      "--json",
      "--bind",
      "127.0.0.1",
    ]);
  const bob = chat("bob");
  const alice = chat("alice");
  try {
    const ready = await bob.event((e) => e.event === "ready", 20_000);
    const [host, port] = String(ready.endpoint).split(":");
    await alice.event((e) => e.event === "online" && e.user === "bob", 20_000);
    await alice.write("/msg bob hello");
    await alice.event((e) => e.event === "delivered", 15_000);
    await sleep(500); // let bob settle after start-up
    // What bob spends idle (timers, heartbeats) over 5 s, to subtract from the 10 s flood.
    const idleFrom = await cpuSeconds(bob.child.pid);
    await sleep(5000);
    const idle = 2 * (await cpuSeconds(bob.child.pid) - idleFrom);
    const before = await cpuSeconds(bob.child.pid);
    // 500 a second, slow enough for the old code to read them all (not to drop them unread).
    await flood(attacker, { host, port: Number(port) }, "alice", 5000, 50, 100);
    await sleep(500); // what is queued is read
    const cpu = Math.max(0, await cpuSeconds(bob.child.pid) - before - idle);
    await alice.write("/msg bob after the flood");
    const after = await alice.event(
      (e) => (e.event === "delivered" || e.event === "undelivered") && e.id === 2,
      15_000,
    );
    await bob.event((e) => e.event === "message" && e.text === "after the flood", 5000);
    console.log(
      `bob's CPU for 5000 forged HS1s: ${cpu.toFixed(2)} s beyond ${idle.toFixed(2)} s idle (${
        (cpu / 5).toFixed(3)
      } s per 1000)`,
    );
    assert.equal(after.event, "delivered");
    // Before: about 1.4 s per 1,000 (a key exchange each). Now an HMAC each.
    assert.ok(cpu / 5 < 0.25, `${(cpu / 5).toFixed(3)} CPU seconds per 1,000 forged HS1s`);
  } finally {
    await alice.dispose();
    await bob.dispose();
    await attacker.close();
    await coordinator.close();
  }
});
