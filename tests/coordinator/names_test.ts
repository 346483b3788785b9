/**
 * Names owned by keys against a real coordinator on loopback (docs/PROTOCOL.md §1.3): the first
 * key to bring a name online owns it, other keys and seed-only logins are refused, and the owner
 * takes its name over from a stale session by proving its key — with proofs that cannot be
 * replayed, moved or forged. Clients are raw sockets speaking the wire text, each on a loopback
 * address of its own, so every datagram (and every proof) is exactly what the test wrote.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { join } from "node:path";
import type { Coordinator } from "../../lib/coordinator.ts";
import { keyProof } from "../../lib/crypto/key_proof.ts";
import { generateKeyPair, type KeyPair } from "../../lib/crypto/noise.ts";
import { decodeBase64url, encodeBase64url } from "../../lib/protocol/base64url.ts";
import { formatCompactEndpoint, parseEndpoint } from "../../lib/protocol/endpoint.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { Peer } from "../../lib/peer.ts";
import { RawUdp, withCoordinator } from "../support/raw_udp.ts";
import { Collector, sleep } from "../support/wait.ts";

/** One identity (key pair) logging in from one raw socket with one secret. */
class Client {
  readonly secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
  constructor(
    readonly udp: RawUdp,
    readonly name: string,
    readonly keys: KeyPair,
  ) {}

  static async open(
    c: Coordinator,
    host: string,
    name: string,
    keys: KeyPair = generateKeyPair(),
  ): Promise<Client> {
    return new Client(await RawUdp.open(host, c.udpPort), name, keys);
  }

  get key(): string {
    return encodeBase64url(this.keys.publicKey);
  }

  login(): string {
    return `login,${this.name},${this.udp.endpoint},${this.key},${this.secret}`;
  }

  /** The login that answers `challenge` (`Challenge,<serverKey>,<nonce>`) with a proof by `by`. */
  proofLogin(challenge: string, by: KeyPair = this.keys): string {
    const [, serverKey, nonce] = challenge.split(",");
    const mac = keyProof({
      privateKey: by.secretKey,
      publicKey: decodeBase64url(serverKey)!,
      purpose: "login",
      nonce: decodeBase64url(nonce)!,
      name: this.name,
      binding: this.secret,
    });
    return `${this.login()},${nonce},${encodeBase64url(mac)}`;
  }

  /** Sends `text` and waits for the answer (the first datagram after it, presence aside). */
  async ask(text: string): Promise<string> {
    const before = this.udp.received.length;
    const answer = (t: string[]) => t.slice(before).find((d) => !d.startsWith("Presence,"));
    this.udp.send(text);
    await this.udp.until((t) => answer(t) !== undefined);
    return answer(this.udp.texts)!;
  }

  /** Fetches the list from this client's address (which admits its pending login). */
  fetchList(c: Coordinator): Promise<string> {
    return new Promise((resolve, reject) => {
      let text = "";
      const socket = net.connect({
        host: "127.0.0.1",
        port: c.tcpPort,
        localAddress: this.udp.host,
      });
      socket.on("data", (d: Uint8Array) => text += new TextDecoder().decode(d));
      socket.on("error", reject);
      socket.on("close", () => resolve(text));
    });
  }

  /** Logs in (Accept) and fetches the list: online. */
  async comeOnline(c: Coordinator): Promise<void> {
    assert.match(await this.ask(this.login()), /^Accept,/);
    await this.fetchList(c);
  }

  /** Takes the name over: challenge, proof, Accept, list. Returns the proof login sent. */
  async takeOver(c: Coordinator): Promise<string> {
    const challenge = await this.ask(this.login());
    assert.match(challenge, /^Challenge,/);
    const proof = this.proofLogin(challenge);
    assert.match(await this.ask(proof), /^Accept,/);
    await this.fetchList(c);
    return proof;
  }

  close(): Promise<void> {
    return this.udp.close();
  }
}

async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms`);
    await sleep(5);
  }
}

const OWNED = "Reject,name belongs to another key";

Deno.test("names: another key, and a seed-only login, are refused a registered name", async () => {
  await withCoordinator({}, async (c, log) => {
    const alice = await Client.open(c, "127.0.0.2", "alice");
    const thief = await Client.open(c, "127.0.0.3", "alice");
    try {
      await alice.comeOnline(c);
      assert.equal(c.owners.ownerOf("alice"), alice.key);
      // Online or not, the name is alice's key's.
      assert.equal(await thief.ask(thief.login()), OWNED);
      alice.udp.send(`logout,alice,${alice.udp.endpoint},${alice.secret}`);
      await until(() => c.registry.get("alice") === undefined);
      assert.equal(await thief.ask(thief.login()), OWNED);
      // (The seed's short login gets the short form of the reason: no amplification.)
      assert.equal(await thief.ask(`login,alice,${thief.udp.endpoint}`), "Reject,other key");
      assert.ok(log.some((l) => l.includes("rejected login alice") && l.includes("another key")));
      // A free name still goes to whoever comes first, seed-only clients included.
      assert.match(await thief.ask(`login,bob,${thief.udp.endpoint}`), /^Accept,/);
      // The owner logs in again as before.
      await alice.comeOnline(c);
      assert.equal(c.registry.get("alice")?.state, "online");
    } finally {
      await alice.close();
      await thief.close();
    }
  });
});

Deno.test("names: two keys pending for a free name: the first admitted owns it", async () => {
  await withCoordinator({}, async (c) => {
    const a = await Client.open(c, "127.0.0.2", "dora");
    const b = await Client.open(c, "127.0.0.3", "dora");
    try {
      assert.match(await a.ask(a.login()), /^Accept,/);
      // A pending login proves nothing yet: it gives way to another endpoint only when stale.
      await sleep(2600);
      assert.match(await b.ask(b.login()), /^Accept,/);
      await b.fetchList(c);
      assert.equal(c.owners.ownerOf("dora"), b.key);
      assert.equal(await a.ask(a.login()), OWNED);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("names: the owner takes over a stale session at once; the others see the move", async () => {
  await withCoordinator({}, async (c, log) => {
    const keys = generateKeyPair();
    const old = await Client.open(c, "127.0.0.2", "alice", keys);
    const carol = await Client.open(c, "127.0.0.4", "carol");
    const fresh = await Client.open(c, "127.0.0.3", "alice", keys);
    try {
      await old.comeOnline(c);
      await carol.comeOnline(c);
      // The old session is alive (just logged in): without a proof, the new one is challenged.
      const loginBytes = new TextEncoder().encode(fresh.login()).length;
      const challenge = await fresh.ask(fresh.login());
      const [verb, serverKey, nonce] = challenge.split(",");
      assert.equal(verb, "Challenge");
      assert.equal(serverKey, encodeBase64url(c.store.keyPair.publicKey));
      assert.equal(decodeBase64url(nonce)?.length, 16);
      assert.ok(challenge.length < loginBytes, "no amplification");
      assert.match(await fresh.ask(fresh.proofLogin(challenge)), /^Accept,/);
      await fresh.fetchList(c);
      const alice = c.registry.get("alice")!;
      assert.equal(`${alice.observed.host}:${alice.observed.port}`, fresh.udp.endpoint);
      assert.equal(alice.secret, fresh.secret);
      const moved = `+alice,${formatCompactEndpoint(parseEndpoint(fresh.udp.endpoint))}`;
      await carol.udp.until((t) => t.some((d) => d.split("\n").includes(moved)));
      assert.ok(log.some((l) => l.includes("alice proved its key") && l.includes("took over")));
      // The old session is told, and its secret is worth nothing now: its heartbeat is answered
      // `Replaced` (not `Expired`, which would make a running client log in and take turns).
      await old.udp.until((t) => t.includes("Replaced,alice"));
      assert.equal(await old.ask(`heartbeat,alice,${old.secret}`), "Replaced,alice");
      assert.match(await old.ask(old.login()), /^Challenge,/);
    } finally {
      await old.close();
      await carol.close();
      await fresh.close();
    }
  });
});

Deno.test("names: a replayed, moved or forged proof is refused and logged", async () => {
  await withCoordinator({}, async (c, log) => {
    const keys = generateKeyPair();
    const first = await Client.open(c, "127.0.0.2", "alice", keys);
    const second = await Client.open(c, "127.0.0.3", "alice", keys);
    const third = await Client.open(c, "127.0.0.4", "alice", keys);
    const mallory = await Client.open(c, "127.0.0.5", "alice");
    try {
      await first.comeOnline(c);
      const captured = await second.takeOver(c);
      await third.takeOver(c);
      const holder = () => c.registry.get("alice")!.secret;
      assert.equal(holder(), third.secret);

      // The captured proof, played again from where it was sent: the nonce was used.
      assert.equal(
        await second.ask(captured),
        "Reject,proof of key refused: the challenge was answered already",
      );
      // ... and from elsewhere: the nonce was issued to another endpoint.
      const elsewhere = captured.replace(second.udp.endpoint, mallory.udp.endpoint);
      assert.equal(
        await mallory.ask(elsewhere),
        "Reject,proof of key refused: not a challenge of ours for this login",
      );
      // A made-up nonce, random MAC bytes, a proof made with another key.
      const challenge = await second.ask(second.login());
      const [, , nonce] = challenge.split(",");
      const random = () => encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
      assert.equal(
        await second.ask(`${second.login()},${random()},${random()}`),
        "Reject,proof of key refused: not a challenge of ours for this login",
      );
      assert.equal(
        await second.ask(`${second.login()},${nonce},${random()}`),
        "Reject,proof of key refused: it was not made with the key's private half",
      );
      assert.equal(
        await second.ask(second.proofLogin(challenge, mallory.keys)),
        "Reject,proof of key refused: it was not made with the key's private half",
      );
      // The nonce those wrong answers used is still good for the real one (a wrong MAC uses
      // nothing up); answered once, it is spent.
      assert.match(await second.ask(second.proofLogin(challenge)), /^Accept,/);
      assert.equal(holder(), second.secret);
      assert.ok(log.filter((l) => l.includes("refused login alice")).length >= 5);
    } finally {
      for (const client of [first, second, third, mallory]) await client.close();
    }
  });
});

Deno.test("names: registrations and the coordinator's key survive a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "p2p-names-" });
  try {
    let key = "";
    const owner = generateKeyPair();
    await withCoordinator({ dataDir }, async (c) => {
      const alice = await Client.open(c, "127.0.0.2", "alice", owner);
      await alice.comeOnline(c);
      key = encodeBase64url(c.store.keyPair.publicKey);
      await alice.close();
    });
    assert.equal(Deno.statSync(join(dataDir, "coordinator.db")).mode! & 0o777, 0o600);
    await withCoordinator({ dataDir }, async (c) => {
      assert.equal(encodeBase64url(c.store.keyPair.publicKey), key);
      const thief = await Client.open(c, "127.0.0.3", "alice");
      const alice = await Client.open(c, "127.0.0.2", "alice", owner);
      assert.equal(await thief.ask(thief.login()), OWNED);
      await alice.comeOnline(c);
      await thief.close();
      await alice.close();
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("names: an unused registration lapses after the time to live", async () => {
  await withCoordinator({ nameTtlMs: 300 }, async (c) => {
    const alice = await Client.open(c, "127.0.0.2", "alice");
    const other = await Client.open(c, "127.0.0.3", "alice");
    try {
      await alice.comeOnline(c);
      alice.udp.send(`logout,alice,${alice.udp.endpoint},${alice.secret}`);
      await until(() => c.registry.get("alice") === undefined);
      assert.equal(await other.ask(other.login()), OWNED);
      await sleep(400);
      await other.comeOnline(c);
      assert.equal(c.owners.ownerOf("alice"), other.key);
    } finally {
      await alice.close();
      await other.close();
    }
  });
});

Deno.test("names: two running clients of one key do not take turns: the replaced one stops", async () => {
  await withCoordinator({}, async (c, log) => {
    const configDir = await Deno.makeTempDir({ prefix: "p2p-names-twice-" });
    const server = { host: "127.0.0.1", port: c.udpPort };
    const events = { first: new Collector<PeerEvent>(), second: new Collector<PeerEvent>() };
    const start = (which: "first" | "second") =>
      Peer.start({
        server,
        username: "alice",
        configDir,
        keepaliveMs: 200,
        onEvent: events[which].push,
      });
    const first = await start("first");
    let second: Peer | undefined;
    try {
      second = await start("second"); // the same identity, a second process: takes over
      await events.first.waitFor((e) =>
        e.event === "error" && /another client with your key/.test(e.message)
      );
      // Many heartbeats later, the name has not gone back and forth.
      await sleep(1500);
      assert.equal(c.stats.takeovers, 1);
      assert.equal(`${c.registry.get("alice")!.observed.port}`, second.observed?.port.toString());
      assert.equal(log.filter((l) => l.includes("alice proved its key")).length, 1);
    } finally {
      await first.close();
      await second?.close();
      await Deno.remove(configDir, { recursive: true });
    }
  });
});
