import assert from "node:assert/strict";
import net from "node:net";
import { Coordinator } from "../../lib/coordinator.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { UdpSocket } from "../../lib/net/udp.ts";
import { Peer } from "../../lib/peer.ts";
import { fetchList, LoginError, Presence } from "../../lib/peer/presence.ts";
import {
  type Endpoint,
  formatCompactEndpoint,
  parseEndpoint,
} from "../../lib/protocol/endpoint.ts";
import { parseServerMessage } from "../../lib/protocol/seed.ts";
import { Collector, sleep } from "../support/wait.ts";

const decoder = new TextDecoder();

/**
 * A UDP relay between one client and the coordinator that can drop what the coordinator sends
 * (`drop` sees each datagram's text; peer frames pass untouched). It logs what passes.
 */
class Proxy {
  /** Text datagrams the client sent, and the coordinator's that were forwarded or dropped. */
  readonly up: string[] = [];
  readonly down: string[] = [];
  readonly dropped: string[] = [];
  drop: (text: string) => boolean = () => false;
  #client: Endpoint | undefined;

  private constructor(readonly front: UdpSocket, readonly back: UdpSocket, server: Endpoint) {
    front.onMessage((data, from) => {
      this.#client = from;
      if (data[0] >= 0x20) this.up.push(decoder.decode(data));
      back.send(data, server);
    });
    back.onMessage((data, from) => {
      if (from.port !== server.port || this.#client === undefined) return;
      const text = data[0] >= 0x20 ? decoder.decode(data) : "";
      if (text !== "" && this.drop(text)) {
        this.dropped.push(text);
        return;
      }
      if (text !== "") this.down.push(text);
      front.send(data, this.#client);
    });
  }

  static async start(server: Endpoint): Promise<Proxy> {
    const front = await UdpSocket.bind({ host: "127.0.0.1" });
    const back = await UdpSocket.bind({ host: "127.0.0.1" });
    return new Proxy(front, back, server);
  }

  /** Drops the first datagram the coordinator sends whose text contains `fragment`. */
  dropFirst(fragment: string): void {
    this.drop = (text) => {
      if (!text.includes(fragment)) return false;
      this.drop = () => false;
      return true;
    };
  }

  /** Sends the client a datagram as if from the coordinator (as a forger spoofing it could). */
  inject(text: string): void {
    if (this.#client) this.front.send(new TextEncoder().encode(text), this.#client);
  }

  async close(): Promise<void> {
    await this.front.close();
    await this.back.close();
  }
}

/** A coordinator, one client ("dave") behind a lossy proxy, others direct; cleanup of all. */
async function world(
  fn: (w: {
    coordinator: Coordinator;
    proxy: Proxy;
    dave: { peer: Peer; events: Collector<PeerEvent> };
    start: (name: string) => Promise<Peer>;
  }) => Promise<void>,
): Promise<void> {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const configDir = await Deno.makeTempDir({ prefix: "p2p-resync-test-" });
  const proxy = await Proxy.start({ host: "127.0.0.1", port: coordinator.udpPort });
  const peers: Peer[] = [];
  const start = async (name: string, server = { host: "127.0.0.1", port: coordinator.udpPort }) => {
    const events = new Collector<PeerEvent>();
    const peer = await Peer.start({
      server,
      username: name,
      bind: { host: "127.0.0.1", port: 0 },
      configDir,
      keepaliveMs: 300,
      onEvent: events.push,
    });
    peers.push(peer);
    return { peer, events };
  };
  try {
    const dave = await start("dave", proxy.front.local);
    await fn({ coordinator, proxy, dave, start: async (name) => (await start(name)).peer });
  } finally {
    for (const p of peers) await p.close();
    await proxy.close();
    await coordinator.close();
    await Deno.remove(configDir, { recursive: true });
  }
}

const names = (peer: Peer) => peer.who().map((u) => u.user).sort();
const logins = (proxy: Proxy) => proxy.up.filter((t) => t.startsWith("login,dave,")).length;

Deno.test("a lost presence datagram is noticed at the next heartbeat and the list fetched again", async () => {
  await world(async ({ coordinator, proxy, dave, start }) => {
    const alice = await start("alice");
    await dave.events.waitFor((e) => e.event === "online" && e.user === "alice");

    // carol's arrival is lost on its way to dave.
    proxy.dropFirst("\n+carol,");
    const fetches = coordinator.stats.listFetches;
    const carol = await start("carol");
    const deadline = Date.now() + 3000;
    while (proxy.dropped.length === 0 && Date.now() < deadline) await sleep(20);
    assert.equal(proxy.dropped.length, 1, "the datagram announcing carol was sent");
    assert.match(proxy.dropped[0], /^Presence,\d+,\d+\n/, "presence datagrams are versioned");
    assert.deepEqual(names(dave.peer), ["alice"]);
    // Its next Alive says dave is behind; a second later it fetches the list, and carol is there.
    await dave.events.waitFor((e) => e.event === "online" && e.user === "carol", 5000, "carol");
    assert.deepEqual(names(dave.peer), ["alice", "carol"]);
    // What was lost said it as a compact line: carol's endpoint in 8 base64url characters.
    const at = parseEndpoint(dave.peer.who().find((u) => u.user === "carol")!.endpoint);
    assert.ok(proxy.dropped[0].split("\n").includes(`+carol,${formatCompactEndpoint(at)}`));
    assert.equal(coordinator.stats.listFetches, fetches + 2, "carol's login and dave's resync");
    assert.equal(logins(proxy), 1, "dave did not log in again");

    // A lost departure too: dave would keep carol forever.
    proxy.dropFirst("\n-carol");
    await carol.close();
    await dave.events.waitFor((e) => e.event === "offline" && e.user === "carol", 5000, "offline");
    assert.deepEqual(names(dave.peer), ["alice"]);
    assert.equal(proxy.dropped.length, 2);
    assert.ok(proxy.dropped[1].split("\n").includes("-carol"), proxy.dropped[1]);
    assert.equal(coordinator.stats.listFetches, fetches + 3);

    // Caught up: no more fetches, heartbeat after heartbeat.
    await sleep(2000);
    assert.equal(coordinator.stats.listFetches, fetches + 3);
    assert.equal(logins(proxy), 1);
    assert.deepEqual(names(alice), ["dave"]);
  });
});

Deno.test("a forged presence datagram is found out (never confirmed) and the list fetched again", async () => {
  await world(async ({ coordinator, proxy, dave, start }) => {
    await start("carol");
    await dave.events.waitFor((e) => e.event === "online" && e.user === "carol");
    // Someone spoofing the coordinator's address claims a far version and that carol left: dave
    // would ignore every real datagram after it, and never find itself behind.
    const seen = dave.events.items.length;
    const after = (e: PeerEvent) => dave.events.items.indexOf(e) >= seen;
    proxy.inject("Presence,0,9007199254740991\n-carol");
    await dave.events.waitFor((e) => e.event === "offline" && e.user === "carol");
    const fetches = coordinator.stats.listFetches;
    // The coordinator's Alives never reach that version: a few seconds on, dave forgets every
    // version, says so, and fetches the list.
    const back = (e: PeerEvent) => e.event === "online" && e.user === "carol" && after(e);
    await dave.events.waitFor(back, 15_000, "carol back");
    assert.ok(
      dave.events.items.some((e) => e.event === "error" && /never confirmed/.test(e.message)),
    );
    assert.equal(coordinator.stats.listFetches, fetches + 1);
    assert.equal(logins(proxy), 1, "dave did not log in again");
    // And it is versioned again: a lost datagram is still noticed.
    proxy.dropFirst("\n+erin,");
    await start("erin");
    await dave.events.waitFor((e) => e.event === "online" && e.user === "erin", 5000, "erin");
    assert.equal(proxy.dropped.length, 1, "erin's arrival was dropped, then found by a resync");
    assert.equal(coordinator.stats.listFetches, fetches + 3, "erin's login and dave's resync");
  });
});

Deno.test("nothing lost: versions keep pace and no list is fetched again", async () => {
  await world(async ({ coordinator, proxy, dave, start }) => {
    const others = [];
    for (const name of ["alice", "bob", "carol", "erin"]) others.push(await start(name));
    await others[1].close();
    await dave.events.waitFor((e) => e.event === "offline" && e.user === "bob");
    await sleep(2000); // several Alives, and the grace period after each
    assert.deepEqual(names(dave.peer), ["alice", "carol", "erin"]);
    assert.equal(coordinator.stats.listFetches, 5, "one per login, no resync");
    assert.equal(proxy.dropped.length, 0);
    assert.ok(proxy.down.some((t) => /^Alive,[^,]+,\d+$/.test(t)), "Alive carries a version");
    assert.ok(proxy.down.some((t) => t.startsWith("Presence,")), "datagrams carry a header");
  });
});

/** A list service that writes `parts` (with pauses between them), then closes or not. */
async function listService(
  parts: string[],
  fn: (at: Endpoint) => Promise<void>,
  close = true,
): Promise<void> {
  const sockets: net.Socket[] = [];
  const server = net.createServer(async (socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    for (const part of parts) {
      socket.write(part);
      await sleep(30);
    }
    if (close) socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await fn({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

Deno.test("fetchList reads to the close: the version after `end` may come in a later segment", async () => {
  await listService(["alice,127.0.0.1:5;end", "\nversion,1", "2"], async (at) => {
    assert.deepEqual(await fetchList(at), {
      entries: [{ username: "alice", endpoint: { host: "127.0.0.1", port: 5 } }],
      version: 12,
    });
  });
  await listService(["alice,127.0.0.1:5;", "end"], async (at) => {
    assert.deepEqual(await fetchList(at), {
      entries: [{ username: "alice", endpoint: { host: "127.0.0.1", port: 5 } }],
    });
  });
});

Deno.test("fetchList fails with LoginError: bad list, timeout, abort", async () => {
  await listService(["alice,127.0.0.1:5;en"], async (at) => {
    await assert.rejects(fetchList(at), LoginError);
  });
  await listService(["end"], async (at) => {
    await assert.rejects(fetchList(at, { timeoutMs: 200 }), /timed out/);
    const abort = new AbortController();
    const fetching = fetchList(at, { signal: abort.signal });
    abort.abort();
    await assert.rejects(fetching, /shutting down/);
  }, false);
});

Deno.test("fetchList: an aborted signal fails at once", async () => {
  const abort = new AbortController();
  abort.abort();
  await assert.rejects(
    fetchList({ host: "127.0.0.1", port: 9 }, { signal: abort.signal }),
    LoginError,
  );
});

/**
 * A fake coordinator on loopback and a {@linkcode Presence} logged in to it. The coordinator
 * accepts logins, answers heartbeats with `Alive` at version `alive` (and, with `aliveEveryMs`,
 * sends one that often anyway), and serves the `n`th list fetch (from 0: the login's) with
 * `list(n)`, resyncs after `delayMs`; `undefined` closes the connection without a list.
 */
async function fakeCoordinator(
  options: {
    alive: number;
    list: (n: number) => string | undefined;
    keepaliveMs: number;
    delayMs?: number;
    aliveEveryMs?: number;
  },
  fn: (w: { online: string[]; fetches: { start: number; end: number }[] }) => Promise<void>,
): Promise<void> {
  const udp = await UdpSocket.bind({ host: "127.0.0.1" });
  const client = await UdpSocket.bind({ host: "127.0.0.1" });
  const encoder = new TextEncoder();
  const alive = encoder.encode(`Alive,127.0.0.1:1,${options.alive}`);
  const fetches: { start: number; end: number }[] = [];
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer(async (socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    const fetch = { start: Date.now(), end: Infinity };
    const list = options.list(fetches.push(fetch) - 1);
    if (fetches.length > 1) await sleep(options.delayMs ?? 0); // resyncs only
    fetch.end = Date.now();
    if (list === undefined) socket.destroy();
    else socket.end(list);
  });
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  udp.onMessage((data, from) => {
    const text = decoder.decode(data);
    if (text.startsWith("login,")) udp.send(encoder.encode(`Accept,${tcpPort}`), from);
    if (text.startsWith("heartbeat,")) udp.send(alive, from);
  });
  const online: string[] = [];
  const presence = new Presence({
    send: (data, to) => client.send(data, to),
    server: udp.local,
    username: "me",
    claimed: client.local,
    keepaliveMs: options.keepaliveMs,
    onOnline: (name) => online.push(name),
    onOffline: () => {},
  });
  client.onMessage((data) =>
    presence.handleDatagram(decoder.decode(data).split("\n").map(parseServerMessage))
  );
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    await presence.login();
    if (options.aliveEveryMs) {
      timer = setInterval(() => udp.send(alive, client.local), options.aliveEveryMs);
    }
    await fn({ online, fetches });
  } finally {
    clearInterval(timer);
    presence.logout();
    for (const s of sockets) s.destroy();
    await client.close();
    await udp.close();
    await new Promise((resolve) => tcp.close(resolve));
  }
}

Deno.test("a failed resync waits for the next chance; caught up, no more fetches", async () => {
  // Lists at version 5 (the login's), then none at all (a failed resync), then 10 with bob.
  const lists = [
    "me,127.0.0.1:1;end\nversion,5",
    undefined,
    "me,127.0.0.1:1;bob,127.0.0.1:2;end\nversion,10",
  ];
  const list = (n: number) => lists[Math.min(n, 2)];
  await fakeCoordinator({ alive: 10, list, keepaliveMs: 250 }, async ({ online, fetches }) => {
    const deadline = Date.now() + 8000;
    while (online.length === 0 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(online, ["bob"]);
    assert.equal(fetches.length, 3, "the login's list, a failed resync, a good one");
    await sleep(1500);
    assert.equal(fetches.length, 3, "caught up: no more resyncs");
  });
});

Deno.test("resyncs: at most one per heartbeat interval, and one at a time", async () => {
  // A coordinator whose Alive (every 100 ms) is always ahead of its lists.
  const list = () => "me,127.0.0.1:1;end\nversion,5";
  const spacing = (fetches: { start: number }[]) =>
    fetches.slice(2).map((f, i) => f.start - fetches[i + 1].start);
  await fakeCoordinator(
    { alive: 10, list, keepaliveMs: 1500, aliveEveryMs: 100 },
    async ({ fetches }) => {
      await sleep(3600);
      assert.ok(fetches.length >= 3, `resyncs: ${fetches.length - 1}`);
      for (const gap of spacing(fetches)) assert.ok(gap >= 1450, `resyncs ${gap} ms apart`);
    },
  );
  await fakeCoordinator(
    { alive: 10, list, keepaliveMs: 500, aliveEveryMs: 100, delayMs: 1500 },
    async ({ fetches }) => {
      await sleep(3600);
      assert.ok(fetches.length >= 2, `resyncs: ${fetches.length - 1}`);
      // Each resync starts after the previous one ended.
      for (let i = 2; i < fetches.length; i++) assert.ok(fetches[i].start >= fetches[i - 1].end);
    },
  );
});
