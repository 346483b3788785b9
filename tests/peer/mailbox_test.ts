import assert from "node:assert/strict";
import { realClock } from "../../lib/clock.ts";
import { Mailbox } from "../../lib/coordinator/mailbox.ts";
import { ServerLog } from "../../lib/coordinator/server_log.ts";
import { encodeKey } from "../../lib/crypto/identity.ts";
import { generateKeyPair, type KeyPair } from "../../lib/crypto/noise.ts";
import { type MailboxTrust, PeerMailbox } from "../../lib/peer/mailbox.ts";

/** Pins as KeyTrust keeps them: a new key is pinned, a different one refused. */
function pins(): MailboxTrust & { map: Map<string, Uint8Array> } {
  const map = new Map<string, Uint8Array>();
  return {
    map,
    pinned: (peer) => map.get(peer),
    verify: (peer, key) => {
      const known = map.get(peer);
      if (!known) map.set(peer, key);
      return !known || encodeKey(known) === encodeKey(key);
    },
  };
}

function recorder() {
  const log: string[] = [];
  const seen = new Set<string>();
  return {
    log,
    events: {
      onMessage: (m: { from: string; uid: string; text: string }) => {
        if (seen.has(m.from + m.uid)) return;
        seen.add(m.from + m.uid);
        log.push(`message ${m.from} ${m.uid} ${m.text}`);
      },
      onDeposited: (to: string, uid: string, first: boolean) =>
        log.push(`deposited ${to} ${uid}${first ? " first" : ""}`),
      onUndelivered: (to: string, uid: string, reason: string) =>
        log.push(`undelivered ${to} ${uid} ${reason}`),
      onReceipt: (from: string, uids: string[]) => log.push(`receipt ${from} ${uids.join(" ")}`),
      onHeld: (from: string, count: number) => log.push(`held ${from} ${count}`),
      onError: (message: string) => log.push(`error ${message}`),
    },
  };
}

async function withMailbox(
  fn: (
    make: (me: string) => { mailbox: PeerMailbox; log: string[]; trust: ReturnType<typeof pins> },
    keys: Map<string, KeyPair>,
  ) => Promise<void>,
): Promise<void> {
  const keys = new Map([["alice", generateKeyPair()], ["bob", generateKeyPair()]]);
  const server = Mailbox.open({
    host: "127.0.0.1",
    port: 0,
    clock: realClock,
    log: new ServerLog({ clock: realClock, write: () => {}, stats: { limited: 0 } }),
    serverKey: generateKeyPair(),
    keyOf: (name) => keys.get(name)?.publicKey,
  });
  const made: PeerMailbox[] = [];
  try {
    await fn((me) => {
      const r = recorder();
      const trust = pins();
      const mailbox = new PeerMailbox({
        me,
        identity: keys.get(me)!,
        host: "127.0.0.1",
        trust,
        events: r.events,
      });
      mailbox.setPort(server.port, 0);
      made.push(mailbox);
      return { mailbox, log: r.log, trust };
    }, keys);
  } finally {
    for (const m of made) m.close();
    await server.close();
  }
}

Deno.test("peer mailbox: a first message is sealed to the coordinator's key, fetched once, and answered by a receipt", async () => {
  await withMailbox(async (make, keys) => {
    const alice = make("alice");
    await Promise.all(
      [1, 2, 3].map((i) =>
        alice.mailbox.deposit("bob", { uid: `u${i}`, time: i, text: `hi ${i}` })
      ),
    );
    assert.deepEqual(alice.log, ["deposited bob u1 first", "deposited bob u2", "deposited bob u3"]);
    assert.deepEqual(alice.trust.map.get("bob"), keys.get("bob")!.publicKey);
    const bob = make("bob");
    await bob.mailbox.fetch();
    assert.deepEqual(bob.log, [
      "message alice u1 hi 1",
      "message alice u2 hi 2",
      "message alice u3 hi 3",
    ]);
    await bob.mailbox.fetch();
    assert.equal(bob.log.length, 3);
    await alice.mailbox.fetch();
    assert.deepEqual(alice.log.slice(3), ["receipt bob u1 u2 u3"]);
    await alice.mailbox.deposit("nobody", { uid: "u9", time: 0, text: "?" });
    assert.equal(alice.log.at(-1), "undelivered nobody u9 unknown user");
  });
});

Deno.test("peer mailbox: mail from a changed key waits in the mailbox until the key is trusted", async () => {
  await withMailbox(async (make) => {
    const alice = make("alice");
    await alice.mailbox.deposit("bob", { uid: "u1", time: 0, text: "new phone, same alice" });
    const bob = make("bob");
    bob.trust.map.set("alice", generateKeyPair().publicKey); // the key bob pinned before
    await bob.mailbox.fetch();
    assert.deepEqual(bob.log, ["held alice 1"]);
    bob.trust.map.delete("alice"); // bob checked and trusted the new key
    await bob.mailbox.fetch();
    assert.deepEqual(bob.log.slice(1), ["message alice u1 new phone, same alice"]);
  });
});

Deno.test("peer mailbox: without a mailbox port nothing is attempted and the sender is told", async () => {
  const r = recorder();
  const mailbox = new PeerMailbox({
    me: "alice",
    identity: generateKeyPair(),
    host: "127.0.0.1",
    trust: pins(),
    events: r.events,
  });
  assert.equal(mailbox.available, false);
  await mailbox.deposit("bob", { uid: "u1", time: 0, text: "x" });
  assert.deepEqual(r.log, [
    "undelivered bob u1 the mailbox failed: the coordinator has no mailbox",
  ]);
});
