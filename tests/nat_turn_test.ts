// TURN in the NAT lab (tests/lab/netlab.ts): two symmetric NATs, which no direct path crosses; a
// real coturn on a public host of the lab; a real `p2p serve --turn` handing out its credentials,
// and real `p2p chat` processes. Both sides reach a `turn` path, messages are delivered both ways,
// and once on it the coordinator relays nothing more (nft counters on its host). Needs root;
// skipped with the reason otherwise, unless P2P_LAB=require.
import assert from "node:assert/strict";
import {
  addRelayCounters,
  exchange,
  labGate,
  readRelayCounters,
  startChat,
  waitForPath,
  withPair,
} from "./support/lab_chat.ts";
import { startCoturn } from "./support/coturn.ts";

const { ignore, requireLab } = await labGate("NAT TURN");

Deno.test({
  name: "nat: symmetric ↔ symmetric talk over coturn (path turn), not the coordinator's relay",
  ignore,
}, async () => {
  requireLab();
  await withPair("symmetric/symmetric", async (s) => {
    const host = await s.lab.addPublicHost("turn");
    const secret = crypto.randomUUID();
    const secretFile = `${s.configHome}/turn-secret`;
    await Deno.writeTextFile(secretFile, secret + "\n");
    const coturn = await startCoturn({
      host: host.ip,
      port: 3478,
      secret,
      prefix: ["ip", "netns", "exec", host.netns],
      checkBinding: false, // its address is the lab's, out of reach from here
    });
    let passed = false;
    try {
      await addRelayCounters(s);
      const { alice, bob } = await startChat(s, {
        serveArgs: ["--turn", coturn.uri, "--turn-secret-file", secretFile],
      });
      await exchange(alice, bob, "hello through coturn");
      await waitForPath(alice, "bob", "turn", 30_000);
      await waitForPath(bob, "alice", "turn", 30_000);
      for (const chat of [alice, bob]) {
        const ready = chat.events.items.find((e) => e.event === "turn");
        assert.equal(ready?.state, "ready", JSON.stringify(ready));
        assert.match(String(ready?.relayed), new RegExp(`^${host.ip.replaceAll(".", "\\.")}:`));
      }
      const before = await readRelayCounters(s);
      for (let i = 0; i < 3; i++) {
        assert.equal((await exchange(alice, bob, `a→b ${i}`)).path, "turn");
        assert.equal((await exchange(bob, alice, `b→a ${i}`)).path, "turn");
      }
      assert.deepEqual(
        await readRelayCounters(s),
        before,
        "the coordinator relayed on a turn path",
      );
      passed = true;
    } finally {
      const log = await coturn.stop();
      if (!passed) console.error(`coturn's log:\n${log.slice(-3000)}`);
    }
  });
});
