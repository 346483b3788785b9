/**
 * The coordinator under fire: over 100,000 random and mutated datagrams (mutations of valid seed
 * and extension messages and of peer frames) from many addresses, and garbage TCP streams, while
 * two real clients log in and chat — and after. The coordinator must never throw out of its loop,
 * its state must stay within its limits, and the legitimate users must not notice. Once they are
 * online, the fuzz also logs in under their names with their real public keys (which is all an
 * attacker can know), with and without made-up proofs of key: challenged and refused, never
 * taken over.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { Coordinator } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { Peer } from "../../lib/peer.ts";
import { loadOrCreateIdentity } from "../../lib/crypto/identity.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { encodeFrame } from "../../lib/protocol/frame.ts";
import { Collector, sleep } from "../support/wait.ts";

const DATAGRAMS = 100_000;
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_240_611);

/** A small deterministic PRNG (mulberry32), so that a failure can be replayed with FUZZ_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encoder = new TextEncoder();

/**
 * Makes fuzz input: valid messages, mutations of them, and noise. `owned()`: the names online
 * with their real keys, to log in under with those keys (without the private halves).
 */
function generator(
  random: () => number,
  endpoints: string[],
  owned: () => { name: string; key: string }[],
): () => Uint8Array {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const key = () => encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
  const secret = () => encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
  const names = ["f1", "f2", "张伟", "x".repeat(32), "end", " a", "a;b", "ü", "\u0007"];
  const name = () => (random() < 0.5 ? `f${int(5000)}` : pick(names));
  const ep = () => (random() < 0.7 ? pick(endpoints) : pick(["[::1]:5", "1.2.3.4:0", "::", "a:1"]));
  const valid = (): string => {
    const users = owned();
    if (users.length > 0 && random() < 0.2) {
      const user = pick(users);
      return pick([
        () => `login,${user.name},${ep()},${user.key},${secret()}`,
        () => `login,${user.name},${ep()},${user.key},${secret()},${secret()},${secret()}`,
        () => `login,${user.name},${ep()}`,
        () => `login,${user.name},${ep()},${key()},${secret()}`,
      ])();
    }
    return pick([
      () => `login,${name()},${ep()}`,
      () => `login,${name()},${ep()},${key()},${secret()}`,
      () => `login,${name()},${ep()},${key()},${secret()},${secret()},${secret()}`,
      () => `logout,${name()},${ep()}`,
      () => `heartbeat,${name()}`,
      () => `heartbeat,${name()},${secret()}`,
      () => `connect,${name()},${name()}`,
      () => `nat,${name()},${pick(["easy", "hard", "odd"])}`,
      () =>
        `contact,${name()},${secret()},${
          pick(["add", "accept", "decline", "remove", "block", "unblock", "befriend"])
        },${name()}${
          random() < 0.5 ? `,${pick(["hi", "a,b", "x".repeat(150), "\u001b[2J"])}` : ""
        }`,
      () => `listed,${name()},${secret()},${pick(["yes", "no", "maybe"])}`,
      () => "whoami",
      () => `login,${name()},${ep()}\n`,
    ])();
  };
  const frame = (): Uint8Array =>
    random() < 0.5
      ? encodeFrame({
        type: "relay",
        to: name(),
        inner: crypto.getRandomValues(new Uint8Array(int(300))),
      })
      : new Uint8Array([int(0x20), int(40), ...crypto.getRandomValues(new Uint8Array(int(100)))]);
  const mutate = (bytes: Uint8Array): Uint8Array => {
    const out = [...bytes];
    for (let n = 1 + int(4); n > 0; n--) {
      const at = int(out.length + 1);
      switch (int(6)) {
        case 0:
          if (out.length > 0) out[at % out.length] ^= 1 << int(8);
          break;
        case 1:
          out.splice(at, 0, int(256));
          break;
        case 2:
          out.splice(at, 1 + int(8));
          break;
        case 3:
          out.splice(
            at,
            0,
            ...encoder.encode(pick([",", ";", "\n", "\r\n", "\u0000", "\u202e", "😀"])),
          );
          break;
        case 4:
          out.splice(at, 0, ...out.slice(0, int(out.length + 1)));
          break;
        case 5:
          out.length = Math.min(out.length, at);
          break;
      }
    }
    return new Uint8Array(out);
  };
  return () => {
    const r = random();
    if (r < 0.25) return encoder.encode(valid());
    if (r < 0.7) return mutate(encoder.encode(valid()));
    if (r < 0.8) return random() < 0.5 ? frame() : mutate(frame());
    if (r < 0.99) return crypto.getRandomValues(new Uint8Array(int(600)));
    return new Uint8Array(1500 + int(3000)); // over the datagram limit
  };
}

/** Garbage on the list service: random bytes, slowly or all at once, closed or left open. */
function garbageTcp(host: string, port: number, random: () => number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: host }, () => {
      const size = Math.floor(random() * 100_000);
      socket.write(crypto.getRandomValues(new Uint8Array(Math.min(size, 65_536))));
      if (random() < 0.5) socket.end();
    });
    socket.setTimeout(3000, () => socket.destroy());
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("close", () => resolve());
  });
}

Deno.test("fuzz: 100,000 hostile datagrams and garbage TCP; a real user logs in and chats throughout", async () => {
  const log: string[] = [];
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    log: (l) => log.push(l),
    // High rates so that the parser, not the rate limit, meets the input; small tables.
    limits: { datagramsPerSecond: 1e6, loginsPerSecond: 1e6, maxPending: 2000, maxUsers: 3000 },
  });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-fuzz-" });
  const fuzzers = Array.from(
    { length: 16 },
    (_, i) => Deno.listenDatagram({ transport: "udp", hostname: `127.0.1.${i + 1}`, port: 0 }),
  );
  const peers: Peer[] = [];
  const random = prng(SEED);
  try {
    const server = { host: "127.0.0.1", port: coordinator.udpPort };
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: coordinator.udpPort };
    const endpoints = fuzzers.map((f) =>
      `${(f.addr as Deno.NetAddr).hostname}:${(f.addr as Deno.NetAddr).port}`
    );
    // Their identities exist before they log in: the fuzz knows their public keys.
    const keys = new Map<string, string>();
    for (const name of ["alice", "bob"]) {
      const { publicKey } = await loadOrCreateIdentity({ username: name, configDir });
      keys.set(name, encodeBase64url(publicKey));
    }
    const owned = () =>
      coordinator.registry.online().filter((u) => u.key && keys.get(u.name) === u.key).map((u) => ({
        name: u.name,
        key: u.key!,
      }));
    let ownedNow = owned();
    const next = generator(random, endpoints, () => ownedNow);
    const events = { alice: new Collector<PeerEvent>(), bob: new Collector<PeerEvent>() };
    const start = async (name: "alice" | "bob") => {
      const peer = await Peer.start({
        server,
        username: name,
        configDir,
        bind: { host: "127.0.0.1", port: 0 },
        onEvent: events[name].push,
        keepaliveMs: 500,
      });
      peers.push(peer);
      return peer;
    };
    const memory0 = Deno.memoryUsage().heapUsed;
    const base = coordinator.stats.datagrams;
    const processed = () => coordinator.stats.datagrams - base;

    // The fuzz: bursts from 16 addresses, paced by what the coordinator has taken in, so that
    // it really reads 100,000 of them (a full socket buffer would just drop them), with garbage
    // TCP connections alongside. Half-way, the real users log in and chat.
    const tcp: Promise<void>[] = [];
    let sent = 0;
    let alice: Peer | undefined;
    let bob: Peer | undefined;
    const chat: number[] = [];
    const deadline = Date.now() + 40_000;
    while (processed() < DATAGRAMS && Date.now() < deadline) {
      ownedNow = owned();
      const burst: Promise<number>[] = [];
      for (let k = 0; k < 200; k++, sent++) {
        burst.push(fuzzers[sent % fuzzers.length].send(next(), to).catch(() => 0));
      }
      await Promise.all(burst);
      if (sent % 1000 === 0 && tcp.length < 200) {
        const host = random() < 0.5
          ? `127.0.2.${1 + Math.floor(random() * 50)}`
          : `127.0.1.${1 + (sent % 16)}`;
        tcp.push(garbageTcp(host, coordinator.tcpPort, random));
      }
      if (alice === undefined && processed() > DATAGRAMS / 2) {
        alice = await start("alice");
        bob = await start("bob");
        await events.alice.waitFor((e) => e.event === "online" && e.user === "bob", 10_000);
      }
      if (alice && sent % 10_000 === 0) chat.push(alice.send("bob", `during ${sent}`)!);
      // Let the coordinator catch up before the next burst (bounded: datagrams can be lost).
      for (let wait = 0; processed() < sent - 2000 && wait < 50; wait++) await sleep(1);
    }
    assert.ok(processed() >= DATAGRAMS, `the coordinator read only ${processed()} of ${sent}`);
    await Promise.all(tcp);
    assert.ok(alice && bob, "the real users logged in during the fuzz");
    assert.ok(chat.length >= 3, "and chatted during it");
    for (const id of chat) {
      const fate = await events.alice.waitFor(
        (e) => (e.event === "delivered" || e.event === "undelivered") && e.id === id,
        10_000,
      );
      assert.equal(fate.event, "delivered", JSON.stringify(fate));
    }

    // Their names were challenged and refused, never taken: alice and bob hold them still.
    assert.ok(coordinator.stats.challenges > 100, `${coordinator.stats.challenges} challenges`);
    assert.ok(coordinator.stats.proofsRefused > 100, `${coordinator.stats.proofsRefused} refused`);
    assert.equal(coordinator.stats.takeovers, 0);
    for (const [name, key] of keys) {
      assert.equal(coordinator.owners.ownerOf(name), key);
      assert.equal(coordinator.registry.get(name)?.key, key);
    }

    // Never out of its loop: no internal error, and the parser met the input.
    assert.deepEqual(log.filter((l) => l.startsWith("internal error")), []);
    assert.ok(
      coordinator.stats.malformed > DATAGRAMS / 3,
      `${coordinator.stats.malformed} malformed`,
    );
    // Bounded: its tables stay within their limits, and memory does not run away.
    assert.ok(coordinator.registry.pendingCount <= 2000);
    assert.ok(coordinator.registry.onlineCount <= 3000);
    const grown = (Deno.memoryUsage().heapUsed - memory0) / 2 ** 20;
    assert.ok(grown < 64, `heap grew by ${grown.toFixed(0)} MiB`);
    assert.ok(log.length < 5000, `${log.length} log lines: the log must not be flooded`);

    // After: a fresh login works, and so does chat both ways.
    const carol = new Collector<PeerEvent>();
    const late = await Peer.start({
      server,
      username: "carol",
      configDir,
      bind: { host: "127.0.0.1", port: 0 },
      onEvent: carol.push,
    });
    peers.push(late);
    await carol.waitFor((e) => e.event === "online" && e.user === "alice", 10_000);
    const ids = [
      alice.send("bob", "after"),
      bob.send("alice", "after, back"),
      late.send("alice", "hi from carol"),
    ];
    for (
      const [who, id] of [[events.alice, ids[0]], [events.bob, ids[1]], [carol, ids[2]]] as const
    ) {
      const fate = await who.waitFor(
        (e) => (e.event === "delivered" || e.event === "undelivered") && e.id === id,
        10_000,
      );
      assert.equal(fate.event, "delivered", JSON.stringify(fate));
    }
  } finally {
    for (const p of peers) await p.close();
    for (const f of fuzzers) f.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
});
