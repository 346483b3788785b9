/**
 * Contacts against the real coordinator, over real loopback sockets: real `Peer`s, a raw-socket
 * extension client standing in for a stranger who reads every byte it is sent, and a seed-only
 * client.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { Coordinator, type CoordinatorOptions } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { encodeListRequest } from "../../lib/protocol/seed.ts";
import { startPeer, type TestPeer } from "../support/peers.ts";
import { fetchListRaw, SeedClient, seedLogin } from "../support/seed_client.ts";
import { sleep } from "../support/wait.ts";

const encoder = new TextEncoder();
const KEY = encodeBase64url(Uint8Array.from({ length: 32 }, (_, i) => i * 8 + 3));
const SECRET = encodeBase64url(Uint8Array.from({ length: 16 }, (_, i) => 255 - i * 7));

interface World {
  coordinator: Coordinator;
  configDir: string;
  start: (name: string, extra?: { public?: boolean }) => Promise<TestPeer>;
}

async function world(options: CoordinatorOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    log: () => {},
    ...options,
  });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-contacts-test-" });
  const peers: TestPeer[] = [];
  try {
    await fn({
      coordinator,
      configDir,
      start: async (name, extra = {}) => {
        const p = await startPeer(coordinator, configDir, name, extra);
        peers.push(p);
        return p;
      },
    });
  } finally {
    for (const { peer } of peers) await peer.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
}

const is = <K extends PeerEvent["event"]>(event: K, user?: string) => (e: PeerEvent) =>
  e.event === event && (user === undefined || (e as { user?: string }).user === user);

/** alice asks bob, bob accepts: both see `contact-added` with the other's fingerprint. */
async function befriend(alice: TestPeer, bob: TestPeer): Promise<void> {
  alice.peer.addContact(bob.peer.username, "hi, it's alice");
  const request = await bob.events.waitFor(is("contact-request", "alice"), 3000, "request");
  assert.deepEqual(request, {
    event: "contact-request",
    user: "alice",
    fingerprint: alice.peer.fingerprint,
    note: "hi, it's alice",
  });
  bob.peer.acceptContact("alice");
  const added = await alice.events.waitFor(is("contact-added", "bob"), 3000, "added");
  assert.deepEqual(added, {
    event: "contact-added",
    user: "bob",
    fingerprint: bob.peer.fingerprint,
  });
  await bob.events.waitFor(is("contact-added", "alice"), 3000, "added at bob");
}

Deno.test("contacts mode: only contacts see each other and chat; carol, a stranger, learns nothing", async () => {
  await world({ presence: "contacts" }, async ({ coordinator, start }) => {
    const alice = await start("alice");
    const bob = await start("bob");
    // A stranger with a key, on raw sockets: it keeps every byte it is sent.
    const carol = await SeedClient.open({ host: "127.0.0.1", port: coordinator.udpPort });
    try {
      carol.send(`login,carol,${carol.endpoint},${KEY},${SECRET}`);
      const accept = await carol.next((t) => t.startsWith("Accept,"));
      const list = await fetchListRaw(
        Number(accept.split(",")[1]),
        "127.0.0.1",
        encoder.encode(encodeListRequest({ username: "carol", secret: SECRET })),
      );
      // Its own list: itself alone, with its own version.
      assert.equal(list, `carol,${carol.endpoint};end\nversion,0`);

      await sleep(300);
      assert.deepEqual(alice.peer.who(), [], "strangers do not see each other");
      assert.deepEqual(bob.peer.who(), []);

      await befriend(alice, bob);
      await alice.events.waitFor(is("online", "bob"), 3000, "bob online at alice");
      await bob.events.waitFor(is("online", "alice"), 3000, "alice online at bob");
      assert.deepEqual(alice.peer.who().map((u) => u.user), ["bob"]);

      // They chat directly, as before.
      const id = alice.peer.send("bob", "hello, contact");
      await alice.events.waitFor((e) => e.event === "delivered" && e.id === id, 5000, "delivered");
      const got = await bob.events.waitFor(is("message"), 3000, "message");
      assert.equal(got.event === "message" && got.path, "direct");

      // A connect to either is answered exactly as one to a name nobody holds.
      carol.send("connect,carol,alice");
      assert.equal(
        await carol.next((t) => t.startsWith("Unavailable,alice")),
        "Unavailable,alice,alice is not online",
      );
      carol.send("connect,carol,nobody");
      assert.equal(
        await carol.next((t) => t.startsWith("Unavailable,nobody")),
        "Unavailable,nobody,nobody is not online",
      );

      // bob leaves and comes back: alice hears both, carol nothing.
      await bob.peer.close();
      await alice.events.waitFor(is("offline", "bob"), 3000, "bob offline");
      const bob2 = await start("bob");
      const backAt = alice.events.count(is("online", "bob"));
      await alice.events.waitFor(
        () => alice.events.count(is("online", "bob")) > backAt - 1 && alice.peer.who().length === 1,
        3000,
        "bob back",
      );
      await bob2.events.waitFor(is("online", "alice"), 3000, "alice online at the new bob");
      await sleep(300);
      const leaked = carol.received.filter((t) => /alice|bob/.test(t));
      assert.deepEqual(leaked, [], "carol was sent nothing about alice or bob");

      // The record: bob is a contact, online; the coordinator has one pair.
      const { contacts } = alice.peer.contacts();
      assert.deepEqual(contacts.map((c) => [c.user, c.online]), [["bob", true]]);
      assert.equal(coordinator.contacts.pairs, 1);
    } finally {
      await carol.close();
    }
  });
});

Deno.test("contacts mode: a seed-only client sees only the users listed with --public", async () => {
  await world({ presence: "contacts" }, async ({ coordinator, start }) => {
    await start("alice");
    const dave = await start("dave", { public: true });
    await sleep(200); // dave's `listed` datagram
    const erin = await SeedClient.open({ host: "127.0.0.1", port: coordinator.udpPort });
    try {
      const list = await seedLogin(erin, "erin");
      const names = list.replace(/;?end$/, "").split(";").map((e) => e.split(",")[0]).sort();
      assert.deepEqual(names, ["dave", "erin"]);
      // A listed user coming online reaches seed-only clients as the seed's `login`.
      await dave.peer.close();
      assert.match(await erin.next((t) => t.startsWith("logout,")), /^logout,dave,/);
      await start("dave", { public: true });
      assert.match(await erin.next((t) => t.startsWith("login,dave")), /^login,dave,127\.0\.0\.1:/);
      assert.ok(await erin.nothing((t) => t.includes("alice"), 200));
    } finally {
      await erin.close();
    }
  });
});

Deno.test("a request to an offline user waits for its next login, across a coordinator restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "p2p-contacts-data-" });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-contacts-cfg-" });
  const options = {
    host: "127.0.0.1",
    port: 0,
    log: () => {},
    presence: "contacts",
    dataDir,
  } as const;
  try {
    let coordinator = await Coordinator.start(options);
    const alice = await startPeer(coordinator, configDir, "alice");
    alice.peer.addContact("bob", "are you there?");
    await alice.events.waitFor(is("contact-request-sent", "bob"));
    for (let i = 0; i < 50 && coordinator.contacts.requests === 0; i++) await sleep(20);
    assert.equal(coordinator.contacts.requests, 1);
    await alice.peer.close();
    await coordinator.close();

    coordinator = await Coordinator.start(options);
    try {
      const bob = await startPeer(coordinator, configDir, "bob");
      const request = await bob.events.waitFor(is("contact-request", "alice"), 3000, "request");
      assert.equal(request.event === "contact-request" && request.note, "are you there?");
      // Reported after ready, like everything else.
      assert.equal(bob.events.items[0].event, "ready");
      bob.peer.acceptContact("alice");
      for (let i = 0; i < 50 && coordinator.contacts.pairs === 0; i++) await sleep(20);
      // alice was offline when bob accepted: her next login tells her, and shows bob online.
      const alice2 = await startPeer(coordinator, configDir, "alice");
      await alice2.events.waitFor(is("contact-added", "bob"), 3000, "added");
      await alice2.events.waitFor(is("online", "bob"), 3000, "bob online");
      await bob.events.waitFor(is("online", "alice"), 3000, "alice online");
      await alice2.peer.close();
      await bob.events.waitFor(is("offline", "alice"), 3000, "alice offline");
      const { contacts } = bob.peer.contacts();
      assert.equal(contacts[0].user, "alice");
      assert.equal(contacts[0].online, false);
      assert.ok(contacts[0].lastSeen, "last seen is recorded");
      await bob.peer.close();
    } finally {
      await coordinator.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("everyone mode: presence as before; requests still wait for the next login; remove and block", async () => {
  await world({}, async ({ start }) => {
    const alice = await start("alice");
    alice.peer.addContact("bob", "hello");
    await sleep(100);
    const bob = await start("bob");
    // Everyone sees everyone, contacts or not.
    await alice.events.waitFor(is("online", "bob"), 3000, "bob online");
    await bob.events.waitFor(is("contact-request", "alice"), 3000, "request at login");
    bob.peer.acceptContact("alice");
    await alice.events.waitFor(is("contact-added", "bob"), 3000, "added");
    alice.peer.removeContact("bob");
    await alice.events.waitFor(is("contact-removed", "bob"));
    await bob.events.waitFor(is("contact-removed", "alice"), 3000, "removed at bob");
    // bob blocks alice: her new request never reaches him, and she is told nothing.
    bob.peer.blockContact("alice");
    await sleep(100);
    alice.peer.addContact("bob", "again?");
    await sleep(300);
    assert.equal(bob.events.count(is("contact-request", "alice")), 1);
    assert.equal(alice.events.count((e) => e.event === "error"), 0);
  });
});

Deno.test("contacts mode: concurrent named fetches from many addresses each get their own list", async () => {
  await world({ presence: "contacts" }, async ({ coordinator }) => {
    const clients: { udp: dgram.Socket; host: string; name: string; secret: string }[] = [];
    try {
      for (let i = 0; i < 24; i++) {
        const host = `127.2.0.${i + 1}`;
        const udp = dgram.createSocket("udp4");
        await new Promise<void>((resolve) => udp.bind(0, host, () => resolve()));
        const secret = encodeBase64url(
          Uint8Array.from({ length: 16 }, (_, k) => (k * 13 + i) & 0xf0),
        );
        clients.push({ udp, host, name: `user${i}`, secret });
      }
      const accepts = clients.map((c) =>
        new Promise<number>((resolve) =>
          c.udp.once(
            "message",
            (m: Uint8Array) => resolve(Number(new TextDecoder().decode(m).split(",")[1])),
          )
        )
      );
      for (const c of clients) {
        const key = encodeBase64url(
          Uint8Array.from({ length: 32 }, (_, k) => (k + c.name.length) & 0xfc),
        );
        c.udp.send(
          `login,${c.name},${c.host}:${c.udp.address().port},${key},${c.secret}`,
          coordinator.udpPort,
          "127.0.0.1",
        );
      }
      const ports = await Promise.all(accepts);
      const lists = await Promise.all(
        clients.map((c, i) =>
          new Promise<string>((resolve, reject) => {
            let text = "";
            const socket = net.connect({ host: "127.0.0.1", port: ports[i], localAddress: c.host });
            socket.write(encodeListRequest({ username: c.name, secret: c.secret }));
            socket.setTimeout(3000, () => reject(new Error("list fetch timed out")));
            socket.on("data", (d: Uint8Array) => text += new TextDecoder().decode(d));
            socket.on("error", () => {});
            socket.on("close", () => resolve(text));
          })
        ),
      );
      for (const [i, c] of clients.entries()) {
        assert.match(
          lists[i],
          new RegExp(`^${c.name},${c.host.replaceAll(".", "\\.")}:\\d+;end\\nversion,0$`),
        );
      }
    } finally {
      for (const c of clients) c.udp.close();
    }
  });
});
