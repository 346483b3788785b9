/**
 * Issue 18's unwanted-introduction attacks, on loopback with a real coordinator and real chat
 * clients; the attacker speaks the coordinator protocol on raw sockets. Each loopback address
 * (127.0.0.x) stands for a public address of its own. Figures measured before and after the
 * consent rules (docs/PROTOCOL.md §1.4) are in the assertion messages.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { Coordinator } from "../lib/coordinator.ts";
import type { PeerEvent } from "../lib/peer/events.ts";
import type { Peer, PeerOptions } from "../lib/peer.ts";
import { encodeBase64url } from "../lib/protocol/base64url.ts";
import { encodeFrame } from "../lib/protocol/frame.ts";
import { FakeClock } from "./support/fake_clock.ts";
import { type Collector, sleep } from "./support/wait.ts";
import { startPeer } from "./support/peers.ts";

/** An HS1's body with MACs nobody checked: what a forger who holds no introduction can send. */
const FORGED_HS1 = {
  payload: new Uint8Array(32),
  mac1: new Uint8Array(16),
  mac2: new Uint8Array(16),
};

/** A raw UDP socket on a loopback address of its choice, counting what reaches it. */
class Raw {
  readonly texts: string[] = [];
  /** Peer frames (first byte below 0x20) that reached us, from anyone. */
  frames = 0;
  bytes = 0;
  readonly #socket: dgram.Socket;
  readonly #server: number;

  private constructor(socket: dgram.Socket, server: number) {
    this.#socket = socket;
    this.#server = server;
    socket.on("message", (msg: Uint8Array) => {
      this.bytes += msg.length;
      if (msg[0] < 0x20) this.frames++;
      else this.texts.push(new TextDecoder().decode(msg));
    });
  }

  static async open(host: string, serverPort: number): Promise<Raw> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
    return new Raw(socket, serverPort);
  }

  get host(): string {
    return this.#socket.address().address;
  }

  get endpoint(): string {
    const { address, port } = this.#socket.address();
    return `${address}:${port}`;
  }

  send(data: string | Uint8Array, to = { host: "127.0.0.1", port: this.#server }): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.#socket.send(bytes, to.port, to.host);
  }

  /** Logs in with a key, claiming `claimed` as its LAN endpoint, and fetches the list. */
  async login(name: string, claimed = this.endpoint): Promise<void> {
    const key = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
    const secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
    this.send(`login,${name},${claimed},${key},${secret}`);
    const accept = await this.next((t) => t.startsWith("Accept,"));
    // The list fetch from our own address admits the login.
    const port = Number(accept.split(",")[1]);
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: this.host });
    socket.on("data", () => {});
    socket.on("error", () => {});
    await new Promise((resolve) => socket.on("close", resolve));
  }

  async next(pred: (text: string) => boolean, ms = 3000): Promise<string> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const found = this.texts.find(pred);
      if (found !== undefined) return found;
      await sleep(10);
    }
    throw new Error(`timed out; got ${JSON.stringify(this.texts)}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

interface World {
  coordinator: Coordinator;
  clock?: FakeClock;
  raw: (host: string) => Promise<Raw>;
  peer: (name: string, extra?: Partial<PeerOptions>) => Promise<{
    peer: Peer;
    events: Collector<PeerEvent>;
    /**
     * Resolves once the peer's NAT detection is over (it gives up after 3 s: this coordinator's
     * second port is not `port + 1`); until then the peer holds back its `connect`s, so a test
     * that finds none must wait for this first.
     */
    settled: () => Promise<void>;
  }>;
}

async function world(fn: (w: World) => Promise<void>, clock?: FakeClock): Promise<void> {
  const coordinator = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    log: () => {},
    clock,
  });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-consent-" });
  const raws: Raw[] = [];
  const peers: Peer[] = [];
  try {
    await fn({
      coordinator,
      clock,
      raw: async (host) => {
        const r = await Raw.open(host, coordinator.udpPort);
        raws.push(r);
        return r;
      },
      peer: async (name, extra = {}) => {
        const started = Date.now();
        const { peer, events } = await startPeer(coordinator, configDir, name, extra);
        peers.push(peer);
        const settled = () => sleep(Math.max(0, started + 3300 - Date.now()));
        return { peer, events, settled };
      },
    });
  } finally {
    for (const p of peers) await p.close();
    for (const r of raws) await r.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
}

Deno.test("attack: an online user's connect makes a victim (--accept known) send nothing anywhere", async () => {
  await world(async ({ raw, peer }) => {
    const victim = await peer("victim", { accept: "known" });
    // The address the attacker wants the victim to spray: a bystander's.
    const bystander = await raw("127.0.0.3");
    const mallory = await raw("127.0.0.1"); // the victim's own public address: LAN claims pass
    await mallory.login("mallory", bystander.endpoint);
    // As a client whose message waits would: connect every 2 s.
    for (let i = 0; i < 3; i++) {
      mallory.send("connect,mallory,victim");
      await sleep(2000);
    }
    const figures = `the victim sent the bystander ${bystander.frames} probes ` +
      `(${bystander.bytes} bytes) and the attacker ${mallory.frames} frames`;
    assert.equal(bystander.bytes, 0, figures);
    assert.equal(mallory.frames, 0, figures);
    assert.deepEqual(mallory.texts.filter((t) => t.startsWith("Introduce,")), []);
    assert.equal(victim.peer.who().find((u) => u.user === "mallory")?.path, "none");
    // The victim was asked once (the knock is repeated only half-way through the want), said no,
    // and was told who asked.
    const knocks = victim.events.items.filter((e) => e.event === "knock");
    assert.equal(knocks.length, 1, JSON.stringify(knocks));
    assert.deepEqual({ ...knocks[0], fingerprint: "" }, {
      event: "knock",
      user: "mallory",
      fingerprint: "",
      accepted: false,
      reason: "you accept only known users (--accept known); write to mallory to talk",
    });
  });
});

Deno.test("attack: with --accept anyone, a requester cannot aim the victim's probes at a bystander", async () => {
  await world(async ({ raw, peer }) => {
    const victim = await peer("victim");
    const bystander = await raw("127.0.0.3");
    const mallory = await raw("127.0.0.8"); // another public address than the victim's
    await mallory.login("mallory", bystander.endpoint);
    mallory.send("connect,mallory,victim");
    // The victim accepts (anyone may start a conversation), and both are introduced...
    await mallory.next((t) => t.startsWith("Introduce,victim,"), 8000);
    await sleep(2000);
    // ...but the victim learnt no LAN endpoint of mallory's: only mallory's own address is probed.
    assert.equal(
      bystander.bytes,
      0,
      `the victim sent the bystander ${bystander.frames} probes (${bystander.bytes} bytes)`,
    );
    assert.ok(mallory.frames > 0, "the victim probes mallory's own endpoint");
    assert.ok(victim.events.items.some((e) => e.event === "knock" && e.accepted));
  });
});

Deno.test("attack: a stranger's request lapses; its messages are undelivered with the reason", async () => {
  const clock = new FakeClock();
  await world(async ({ peer }) => {
    const bob = await peer("bob", { accept: "known" });
    const alice = await peer("alice");
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    const id = alice.peer.send("bob", "hello stranger");
    await bob.events.waitFor((e) => e.event === "knock" && !e.accepted, 8000);
    clock.advance(20_000); // the coordinator's want lapses; alice's next connect hears why
    const fate = await alice.events.waitFor(
      (e) => (e.event === "undelivered" || e.event === "delivered") && e.id === id,
      8000,
    );
    assert.deepEqual(fate, {
      event: "undelivered",
      to: "bob",
      id,
      reason: "bob did not accept your request to talk",
      uid: (fate as { uid: string }).uid,
    });
    assert.equal(bob.events.count((e) => e.event === "message"), 0);
    // Once bob writes to alice himself, they talk both ways.
    const back = bob.peer.send("alice", "hi, it's me");
    await bob.events.waitFor((e) => e.event === "delivered" && e.id === back, 8000);
    const reply = alice.peer.send("bob", "hello again");
    await alice.events.waitFor((e) => e.event === "delivered" && e.id === reply, 8000);
  }, clock);
});

Deno.test("with --accept anyone (the default), a stranger's first message is delivered", async () => {
  await world(async ({ peer }) => {
    const bob = await peer("bob");
    const alice = await peer("alice");
    await alice.events.waitFor((e) => e.event === "online" && e.user === "bob");
    const id = alice.peer.send("bob", "first contact");
    await alice.events.waitFor((e) => e.event === "delivered" && e.id === id, 8000);
    await bob.events.waitFor((e) => e.event === "message" && e.text === "first contact");
    assert.deepEqual(bob.events.items.filter((e) => e.event === "knock"), [
      { event: "knock", user: "alice", fingerprint: alice.peer.fingerprint, accepted: true },
    ]);
  });
});

Deno.test("attack: a 44-byte frame from an address that never logged in makes no connect", async () => {
  await world(async ({ raw, peer }) => {
    const victim = await peer("victim");
    const carol = await raw("127.0.0.1");
    await carol.login("carol");
    await victim.events.waitFor((e) => e.event === "online" && e.user === "carol");
    await victim.settled();
    const forger = await raw("127.0.0.5");
    const hs1 = encodeFrame({ type: "hs1", from: "carol", ...FORGED_HS1 });
    assert.equal(hs1.length, 71); // 44 bytes before handshake frames carried their two MACs
    forger.send(hs1, victim.peer.observed);
    await sleep(1000);
    const asked = carol.texts.filter((t) => /^(Introduce|Knock),victim,/.test(t));
    assert.deepEqual(asked, [], "the victim asked the coordinator for carol");
    assert.equal(victim.peer.stats().unsolicitedFrames, 1);
    assert.equal(forger.bytes, 0);
    // The same frame from carol's own endpoint (a restarted peer, say) is worth asking about:
    // the victim consents, and the coordinator asks carol.
    carol.send(hs1, victim.peer.observed);
    await carol.next((t) => t.startsWith("Knock,victim,"));
    assert.equal(carol.texts.filter((t) => t.startsWith("Introduce,")).length, 0);
  });
});

Deno.test("attack: relayed frames from someone the receiver never accepted are dropped", async () => {
  await world(async ({ coordinator, raw, peer }) => {
    const victim = await peer("victim", { accept: "known" });
    const mallory = await raw("127.0.0.6");
    await mallory.login("mallory");
    await victim.events.waitFor((e) => e.event === "online" && e.user === "mallory");
    await victim.settled();
    // A coordinator that relays for a pair the victim never consented to (an older one).
    coordinator.relay.introduce("mallory", "victim");
    const hs1 = encodeFrame({ type: "hs1", from: "mallory", ...FORGED_HS1 });
    for (let i = 0; i < 20; i++) {
      mallory.send(encodeFrame({ type: "relay", to: "victim", inner: hs1 }));
    }
    await sleep(1000);
    assert.equal(coordinator.stats.relayed, 20);
    assert.equal(mallory.frames, 0, `the victim sent mallory ${mallory.frames} frames`);
    assert.deepEqual(
      mallory.texts.filter((t) => /^(Introduce|Knock),victim,/.test(t)),
      [],
      "the victim asked for an introduction to mallory",
    );
    assert.equal(victim.peer.stats().refusedRelayed, 20);
  });
});

Deno.test("attack: a requester on another public address gets no LAN endpoint", async () => {
  await world(async ({ raw }) => {
    const alice = await raw("127.0.0.1");
    const lan = "192.168.1.20:5000";
    await alice.login("alice", lan);
    const mallory = await raw("127.0.0.7");
    await mallory.login("mallory");
    const bob = await raw("127.0.0.1");
    await bob.login("bob", "192.168.1.21:5000");
    for (const other of [mallory, bob]) {
      const name = other === bob ? "bob" : "mallory";
      other.send(`connect,${name},alice`);
      await alice.next((t) => t.startsWith(`Knock,${name},`));
      alice.send(`connect,alice,${name}`);
    }
    const toMallory = await mallory.next((t) => t.startsWith("Introduce,alice,"));
    assert.equal(toMallory.split(",")[3], alice.endpoint, `mallory got ${toMallory}`);
    const toBob = await bob.next((t) => t.startsWith("Introduce,alice,"));
    assert.equal(toBob.split(",")[3], lan, "behind the same address, the LAN endpoint is given");
  });
});

Deno.test("attack: names on one address knocking a victim do not starve an honest user's knock", async () => {
  await world(async ({ raw }) => {
    // The victim answers nobody but the honest user (as `--accept known` would, or a client whose
    // strangers' budget is spent), so the attackers' wants stay open and keep knocking.
    const victim = await raw("127.0.0.4");
    await victim.login("victim");
    const names: string[] = [];
    const attacker = await raw("127.0.0.5");
    for (let i = 0; i < 24; i++) {
      names.push(`sock${i}`);
      await attacker.login(`sock${i}`);
      await sleep(60); // within the address's login budget (20 a second)
    }
    // Each name connects as a client whose messages wait would: every 2 s.
    let attacking = true;
    const attack = (async () => {
      while (attacking) {
        for (const name of names) {
          attacker.send(`connect,${name},victim`);
          await sleep(40);
        }
        await sleep(1000);
      }
    })();
    const honest = await raw("127.0.0.6");
    try {
      await sleep(1500); // the attackers' first round is out
      await honest.login("honest");
      const started = Date.now();
      let introduced: string | undefined;
      let answered = false;
      for (let tick = 0; !introduced && tick < 80; tick++) {
        if (tick % 20 === 0) honest.send("connect,honest,victim"); // every 2 s, as a client does
        if (!answered && victim.texts.some((t) => t.startsWith("Knock,honest,"))) {
          victim.send("connect,victim,honest");
          answered = true;
        }
        await sleep(100);
        introduced = honest.texts.find((t) => t.startsWith("Introduce,victim,"));
      }
      const knocks = victim.texts.filter((t) => t.startsWith("Knock,sock")).length;
      const figures = `the victim got ${knocks} knocks from the attacker's address, and the ` +
        `honest user ${introduced ? "was introduced" : "was not introduced"} in ` +
        `${Date.now() - started} ms`;
      assert.ok(introduced, figures);
      assert.ok(knocks <= 7, figures); // 6 at once, then 6 a minute, for one address
    } finally {
      attacking = false;
      await attack;
    }
  });
});
