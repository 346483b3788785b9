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

Deno.test({
  name: "nat: symmetric ↔ symmetric, after bob quits and the coordinator restarts, alice reaches " +
    "the new bob through the relay at once",
  ignore,
}, async () => {
  requireLab();
  await withPair("symmetric/symmetric", async (s) => {
    const env = {
      XDG_CONFIG_HOME: s.configHome,
      XDG_DATA_HOME: `${s.configHome}/data`,
      XDG_STATE_HOME: `${s.configHome}/state`,
    };
    const { server, alice, bob } = await startChat(s);
    assert.equal((await exchange(alice, bob, "hello")).path, "relay");
    await bob.closeStdin();
    assert.equal((await bob.wait()).code, 0);
    await alice.event((e) => e.event === "offline" && e.user === "bob", 20_000, "bob offline");
    // The coordinator dies (no Bye) and comes back: it has forgotten the pair's relay permit.
    server.kill("SIGKILL");
    await server.wait();
    const again = new LabProcess(s.lab, s.srv, "serve-again", [
      "serve",
      "--host",
      "0.0.0.0",
      "--port",
      String(SERVER_PORT),
    ], env);
    s.processes.push(again);
    await again.stderr.waitFor((l) => l.includes(` UDP ${SERVER_PORT}`), 30_000, "serve again");
    const bob2 = new LabProcess(s.lab, s.b, "bob", [
      "chat",
      `bob@${s.srv.ip}:${SERVER_PORT}`,
      "--json",
      "--keepalive",
      "2",
    ], env);
    s.processes.push(bob2);
    await bob2.event((e) => e.event === "ready", 30_000, "bob ready");
    await alice.event(
      (e) => e.event === "online" && e.user === "bob" && Number(e.at) > bob2.startedAt,
      30_000,
      "bob online again",
    );
    // Alice's link to bob still stands on the old session and the forgotten permit: seeing bob
    // online again, it asks for a fresh introduction, so the message goes through the relay now
    // instead of waiting 30 s and going to the mailbox.
    const sent = await exchange(alice, bob2, "welcome back", 20_000);
    assert.equal(sent.message.via, undefined);
  });
});
