import assert from "node:assert/strict";
import { generateKeyPair, type KeyPair } from "../../lib/crypto/noise.ts";
import { Link, type LinkEvents, type LinkTransport } from "../../lib/peer/link.ts";
import type { ChatMessage } from "../../lib/protocol/chat_message.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { decodeFrame } from "../../lib/protocol/frame.ts";
import { Collector } from "../support/wait.ts";

const AT = { alice: { host: "192.0.2.1", port: 1000 }, bob: { host: "192.0.2.2", port: 2000 } };
type Name = keyof typeof AT;

/**
 * Two links joined by an in-memory wire that records every datagram, like a capture between the
 * routers. `tamper` may rewrite or drop datagrams in flight.
 */
function pair(
  options: {
    wrongKeyForAlice?: boolean;
    drop?: (from: Name, bytes: Uint8Array) => boolean;
    /** While true, datagrams wait (`parked`) until `unpark` hands them over, in one go. */
    park?: () => boolean;
  } = {},
) {
  const keys: Record<Name, KeyPair> = { alice: generateKeyPair(), bob: generateKeyPair() };
  const wire: { from: Name; bytes: Uint8Array }[] = [];
  const events: Record<Name, Collector<string>> = { alice: new Collector(), bob: new Collector() };
  /** How many file segments each side had sent when each of its events was reported. */
  const fileSentAt = new Map<string, number>();
  const report = (me: Name, event: string) => {
    fileSentAt.set(`${me} ${event}`, links[me].fileChannel.stats.dataSent);
    events[me].push(event);
  };
  const received: Record<Name, ChatMessage[]> = { alice: [], bob: [] };
  const links = {} as Record<Name, Link>;
  const parked: { from: Name; to: Name; bytes: Uint8Array }[] = [];
  /** Hands the parked datagrams over, in order, within one turn of the event loop. */
  const unpark = () => {
    for (const d of parked.splice(0)) links[d.to].receive(decodeFrame(d.bytes), AT[d.from]);
  };
  const deliver = (from: Name, bytes: Uint8Array) => {
    wire.push({ from, bytes });
    if (options.drop?.(from, bytes)) return;
    const to: Name = from === "alice" ? "bob" : "alice";
    if (options.park?.()) return void parked.push({ from, to, bytes });
    setTimeout(() => links[to].receive(decodeFrame(bytes), AT[from]), 1);
  };
  for (const me of ["alice", "bob"] as const) {
    const peer: Name = me === "alice" ? "bob" : "alice";
    const transport: LinkTransport = {
      sendTo: (frame, to: Endpoint) => {
        if (to.host === AT[peer].host) deliver(me, frame);
      },
      sendViaRelay: () => {},
      openSockets: () => Promise.reject(new Error("no extra sockets here")),
      closeSockets: () => {},
      localNat: () => undefined,
      requestIntroduction: () => {},
    };
    const linkEvents: LinkEvents = {
      onMessage: (msg) => {
        received[me].push(msg);
        events[me].push(`message ${msg.id}`);
      },
      onDelivered: (id) => report(me, `delivered ${id}`),
      onFileSettled: (id, reason) => report(me, `file ${id} ${reason ?? "settled"}`),
      onUndelivered: (id, reason) => events[me].push(`undelivered ${id} ${reason}`),
      onPath: (path) => events[me].push(`path ${path.kind}`),
    };
    const instanceId = me === "alice" ? 1 : 2;
    links[me] = new Link({
      me,
      peer,
      staticKeyPair: keys[me],
      instanceId,
      verifyKey: () => true,
      transport,
      events: linkEvents,
    });
  }
  const token = crypto.getRandomValues(new Uint8Array(16));
  const introduce = () => {
    for (const me of ["alice", "bob"] as const) {
      const peer: Name = me === "alice" ? "bob" : "alice";
      const key = me === "bob" && options.wrongKeyForAlice
        ? generateKeyPair().publicKey
        : keys[peer].publicKey;
      links[me].introduce({ candidates: [{ kind: "public", endpoint: AT[peer] }], key, token });
    }
  };
  const close = () => {
    for (const l of Object.values(links)) l.close("test over");
  };
  return { links, wire, fileSentAt, events, received, introduce, close, unpark };
}

const SECRET = "TOP SECRET: the eagle lands at dawn";

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("a link handshakes, carries messages both ways, and nothing on the wire is plaintext", async () => {
  const p = pair();
  try {
    p.introduce();
    p.links.alice.send({ group: false, id: 1, text: SECRET });
    p.links.bob.send({ group: false, id: 7, text: SECRET + " (reply)" });
    await p.events.alice.waitFor((e) => e === "delivered 1");
    await p.events.bob.waitFor((e) => e === "delivered 7");
    assert.deepEqual(p.received.bob, [{ group: false, id: 1, text: SECRET }]);
    assert.equal(p.received.alice[0].text, SECRET + " (reply)");
    assert.ok(p.links.alice.secured && p.links.bob.secured);
    // The wire saw probes, the handshake and data — and never the text.
    const types = new Set(p.wire.map((d) => decodeFrame(d.bytes).type));
    for (const t of ["probe", "probe-ack", "hs1", "hs2", "hs3", "data"]) {
      assert.ok(types.has(t as never), t);
    }
    const needle = new TextEncoder().encode("eagle");
    assert.ok(p.wire.every((d) => !contains(d.bytes, needle)), "plaintext on the wire");
  } finally {
    p.close();
  }
});

Deno.test("tampered and replayed frames are dropped and counted; the conversation goes on", async () => {
  const p = pair();
  try {
    p.introduce();
    p.links.alice.send({ group: false, id: 1, text: "one" });
    await p.events.alice.waitFor((e) => e === "delivered 1");
    const data = p.wire.filter((d) => d.from === "alice" && decodeFrame(d.bytes).type === "data");
    const last = data.at(-1)!.bytes;
    const before = { ...p.links.bob.stats };
    // Flip one bit at a time in the sealed part: every copy is rejected.
    const headerLength = 2 + last[1];
    for (let i = headerLength; i < last.length; i += 7) {
      const bad = last.slice();
      bad[i] ^= 0x04;
      p.links.bob.receive(decodeFrame(bad), AT.alice);
    }
    // Replays of every data frame alice sent are ignored.
    for (const d of data) p.links.bob.receive(decodeFrame(d.bytes.slice()), AT.alice);
    const flips = Math.ceil((last.length - headerLength) / 7);
    assert.equal(p.links.bob.stats.undecryptable - before.undecryptable, flips + data.length);
    assert.deepEqual(p.received.bob.map((m) => m.text), ["one"], "nothing extra delivered");
    // A forged probe (wrong MAC) is dropped too.
    const probe = p.wire.find((d) => decodeFrame(d.bytes).type === "probe")!.bytes.slice();
    probe[probe.length - 1] ^= 1;
    p.links.bob.receive(decodeFrame(probe), AT.alice);
    assert.equal(p.links.bob.stats.badProbes, before.badProbes + 1);
    // And the session still works.
    p.links.alice.send({ group: false, id: 2, text: "two" });
    await p.events.alice.waitFor((e) => e === "delivered 2");
    assert.deepEqual(p.received.bob.map((m) => m.text), ["one", "two"]);
  } finally {
    p.close();
  }
});

Deno.test("a handshake proving another key than the introduced one is abandoned", async () => {
  const p = pair({ wrongKeyForAlice: true });
  try {
    p.introduce();
    p.links.alice.send({ group: false, id: 1, text: "hello?" });
    const deadline = Date.now() + 4000;
    while (p.links.bob.stats.keyMismatches === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(p.links.bob.stats.keyMismatches > 0, "bob must refuse alice's unexpected key");
    assert.equal(p.links.bob.secured, false);
    assert.deepEqual(p.received.bob, []);
  } finally {
    p.close();
  }
});

Deno.test("chat goes first: no new file data leaves while a chat message is on its way", async () => {
  const p = pair();
  try {
    p.introduce();
    p.links.alice.send({ group: false, id: 1, text: "hello" });
    await p.events.alice.waitFor((e) => e === "delivered 1");
    const sent = () => p.links.alice.fileChannel.stats.dataSent;
    const start = sent();
    p.links.alice.send({ group: false, id: 2, text: "chat first" });
    const file = p.links.alice.sendFile(new Uint8Array(64 * 1024));
    await p.events.alice.waitFor((e) => e === `file ${file} settled`);
    assert.equal(p.fileSentAt.get("alice delivered 2"), start, "held until the chat was confirmed");
    assert.ok(sent() > start, "then the file data (settled above)");
  } finally {
    p.close();
  }
});

Deno.test("chat goes first for 100 ms at most: a chat message not confirmed does not stall files", async () => {
  let silent = false; // bob's answers lost: alice's chat message stays unconfirmed
  const p = pair({ drop: (from) => silent && from === "bob" });
  try {
    p.introduce();
    p.links.alice.send({ group: false, id: 1, text: "hello" });
    await p.events.alice.waitFor((e) => e === "delivered 1");
    silent = true;
    const t0 = performance.now();
    const sent = () => p.links.alice.fileChannel.stats.dataSent;
    const start = sent();
    p.links.alice.send({ group: false, id: 2, text: "lost answer" });
    p.links.alice.sendFile(new Uint8Array(16 * 1024));
    while (sent() === start) await new Promise((r) => setTimeout(r, 5));
    const waited = performance.now() - t0;
    assert.ok(waited >= 95, `file data went after ${waited.toFixed(0)} ms, before the hold ended`);
    assert.ok(waited < 5000, `file data waited ${waited.toFixed(0)} ms`);
  } finally {
    p.close();
  }
});

Deno.test("a chat frame read behind file data is handled first; the file data in a later turn", async () => {
  let parking = false;
  const p = pair({ park: () => parking });
  try {
    p.introduce();
    p.links.alice.send({ group: false, id: 1, text: "hello" });
    await p.events.alice.waitFor((e) => e === "delivered 1");
    parking = true;
    p.links.alice.sendFile(new Uint8Array(2000)); // two segments, before the chat message
    p.links.alice.send({ group: false, id: 2, text: "behind the file" });
    const acks = () => p.links.bob.fileChannel.stats.acksSent;
    const before = acks();
    parking = false;
    p.unpark(); // bob reads both file segments, then the chat frame, in one turn
    assert.equal(p.received.bob.at(-1)?.text, "behind the file", "chat handled at once");
    assert.equal(acks(), before, "the file segments not yet");
    await p.events.alice.waitFor((e) => e.startsWith("file "));
    assert.equal(acks(), before + 1, "then handled and acknowledged");
  } finally {
    p.close();
  }
});
