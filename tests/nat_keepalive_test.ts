// Keepalives through real Linux NATs (tests/lab/netlab.ts): with both routers forgetting idle
// UDP mappings after 10 s, a chat left idle for a minute still delivers its next message on the
// direct path, without the coordinator's relay. Long (over a minute), hence its own file, which
// `deno test --parallel` runs alongside tests/nat_matrix_test.ts. Needs root; skipped with the
// reason otherwise, unless P2P_LAB=require (then it fails).
import assert from "node:assert/strict";
import {
  addRelayCounters,
  exchange,
  labGate,
  readRelayCounters,
  startChat,
  withPair,
} from "./support/lab_chat.ts";
import { sleep } from "./support/wait.ts";

const { ignore, requireLab } = await labGate("NAT keepalive");

/** Idle time: six times the routers' UDP timeout. */
const IDLE_MS = 60_000;
const UDP_TIMEOUT_S = 10;

Deno.test({
  name: `nat: home ↔ home, ${UDP_TIMEOUT_S} s NAT timeouts: after ${
    IDLE_MS / 1000
  } s idle a message still goes direct`,
  ignore,
}, async () => {
  requireLab();
  await withPair("home/home", async (s) => {
    const [ra, rb] = s.routers;
    for (const r of s.routers) await s.lab.setUdpTimeout(r, UDP_TIMEOUT_S);
    await addRelayCounters(s);
    const chat = await startChat(s, { keepalive: 2 });
    assert.equal((await exchange(chat.alice, chat.bob, "before the idle minute")).path, "direct");
    assert.equal((await exchange(chat.bob, chat.alice, "reply before it")).path, "direct");
    const pathEvents = () =>
      [chat.alice, chat.bob].map((p) => p.events.count((e) => e.event === "path"));
    const pathsBefore = pathEvents();

    await sleep(IDLE_MS);

    // The mapping each router holds toward the other peer is alive, on the short timeout: only
    // the traffic of the idle minute (keepalives) can have kept it.
    for (const [router, self, other] of [[ra, s.a, s.b], [rb, s.b, s.a]] as const) {
      const entries = (await s.lab.listConntrack(router)).filter((l) =>
        l.startsWith("udp") && l.includes(`src=${self.ip} dst=${other.publicIp} `)
      );
      assert.equal(entries.length, 1, `${router.name}: mapping toward ${other.name}: ${entries}`);
      const timeout = Number(entries[0].split(/\s+/)[2]);
      assert.ok(timeout <= UDP_TIMEOUT_S, `${router.name}: entry timeout ${timeout} s`);
    }
    assert.deepEqual(pathEvents(), pathsBefore, "the path never changed while idle");

    assert.equal((await exchange(chat.alice, chat.bob, "after the idle minute")).path, "direct");
    assert.equal((await exchange(chat.bob, chat.alice, "reply after it")).path, "direct");
    assert.deepEqual(await readRelayCounters(s), { relay: 0, relayed: 0 });
  });
});
