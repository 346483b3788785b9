// Offline messages between two home routers, in the NAT lab (tests/lab/netlab.ts): real Linux NATs,
// real `p2p serve` and `p2p chat` processes. bob leaves; alice's message goes to the mailbox on the
// public coordinator (TCP through her router); bob, back, gets it from there, through his; alice,
// back, gets the receipt. Needs root; skipped with the reason otherwise, unless P2P_LAB=require.
import assert from "node:assert/strict";
import type { Host } from "./lab/netlab.ts";
import {
  exchange,
  labGate,
  LabProcess,
  SERVER_PORT,
  startChat,
  withPair,
} from "./support/lab_chat.ts";

const { ignore, requireLab } = await labGate("NAT mailbox");

Deno.test({
  name: "nat: home ↔ home, offline delivery through the coordinator's mailbox",
  ignore,
}, async () => {
  requireLab();
  await withPair("home/home", async (s) => {
    const env = {
      XDG_CONFIG_HOME: s.configHome,
      XDG_DATA_HOME: `${s.configHome}/data`,
      XDG_STATE_HOME: `${s.configHome}/state`,
    };
    const chat = (user: string, node: Host): LabProcess => {
      const p = new LabProcess(s.lab, node, `${user}-again`, [
        "chat",
        `${user}@${s.srv.ip}:${SERVER_PORT}`,
        "--json",
        "--keepalive",
        "2",
      ], env);
      s.processes.push(p);
      return p;
    };
    const { alice, bob } = await startChat(s);
    // They talk once (bob's key is pinned), then bob leaves; alice sees it.
    assert.equal((await exchange(alice, bob, "hello")).path, "direct");
    await bob.closeStdin();
    assert.equal((await bob.wait()).code, 0);
    await alice.event((e) => e.event === "offline" && e.user === "bob", 20_000, "bob offline");

    await alice.write("/msg bob left for you while you were away");
    const deposited = await alice.event((e) => e.event === "deposited", 20_000, "deposited");
    assert.equal(deposited.to, "bob");
    assert.equal(deposited.firstContact, undefined); // bob's key was pinned when both were online
    await alice.closeStdin();
    assert.equal((await alice.wait()).code, 0);

    const bob2 = chat("bob", s.b);
    const message = await bob2.event((e) => e.event === "message", 30_000, "message");
    assert.equal(message.text, "left for you while you were away");
    assert.equal(message.via, "mailbox");
    assert.equal(message.uid, deposited.uid);

    const alice2 = chat("alice", s.a);
    const delivered = await alice2.event((e) => e.event === "delivered", 30_000, "delivered");
    assert.equal(delivered.uid, deposited.uid);
    assert.equal(delivered.via, "mailbox");
  });
});
