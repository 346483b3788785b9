import assert from "node:assert/strict";
import net from "node:net";
import { Coordinator, type CoordinatorOptions } from "../../lib/coordinator.ts";
import { PAUSE_PER_DATAGRAM_MS } from "../../lib/coordinator/presence_outbox.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { formatCompactEndpoint, parseEndpoint } from "../../lib/protocol/endpoint.ts";
import { encodeFrame } from "../../lib/protocol/frame.ts";
import { encodeClientMessage, parseOnlineList } from "../../lib/protocol/seed.ts";
import { runP2p, startServe } from "../support/proc.ts";
import { fetchListRaw, SeedClient, seedLogin } from "../support/seed_client.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { RawUdp as Raw, withCoordinator as withCoordinatorOf } from "../support/raw_udp.ts";
import { sleep } from "../support/wait.ts";

function withCoordinator(
  fn: (c: Coordinator, log: string[]) => Promise<void>,
  peerTimeoutMs = 45_000,
  options: CoordinatorOptions = {},
): Promise<void> {
  return withCoordinatorOf({ peerTimeoutMs, ...options }, fn);
}

/**
 * A TCP connection to the list service from `host`. With `hold`, our side stays open after the
 * list (as a slow or malicious client's would) until the server closes it or we `destroy` it.
 */
function connectFrom(
  host: string,
  port: number,
  options: { send?: Uint8Array; hold?: boolean } = {},
): { text: () => string; closed: Promise<void>; destroy: () => void } {
  let text = "";
  const socket = net.connect(
    { host: "127.0.0.1", port, localAddress: host, allowHalfOpen: options.hold ?? false },
    () => {
      if (options.send) socket.write(options.send);
    },
  );
  socket.on("data", (d: Uint8Array) => text += new TextDecoder().decode(d));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  return { text: () => text, closed, destroy: () => socket.destroy() };
}

/** Waits until `pred()` holds, polling; fails after `ms`. */
async function until(pred: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms`);
    await sleep(10);
  }
}

function extLogin(name: string, endpoint: string): string {
  const key = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
  return `login,${name},${endpoint},${key},${secretOf(name)}`;
}

/** The secret {@linkcode extLogin} logs `name` in with, which its heartbeats and logout carry. */
function secretOf(name: string): string {
  const bytes = new TextEncoder().encode(name.padEnd(16, "-")).slice(0, 16);
  return encodeBase64url(bytes);
}

/** The compact form of an endpoint written `a.b.c.d:port`, as batched presence lines carry it. */
function compact(endpoint: string): string {
  return formatCompactEndpoint(parseEndpoint(endpoint));
}

/** Logs a raw client in (login, Accept, list fetch from its own address); returns the list. */
async function rawLogin(c: Coordinator, client: Raw, text: string): Promise<string> {
  const before = client.received.length;
  client.send(text);
  await client.until((t) => t.slice(before).some((x) => x.startsWith("Accept,")));
  const conn = connectFrom(client.endpoint.split(":")[0], c.tcpPort);
  await conn.closed;
  return conn.text();
}

Deno.test("a client written from the seed's text does the whole seed flow", async () => {
  await withCoordinator(async (c, log) => {
    const server = { host: "127.0.0.1", port: c.udpPort };
    const alice = await SeedClient.open(server);
    const bob = await SeedClient.open(server);
    try {
      alice.send(`login,alice,${alice.endpoint}`);
      assert.equal(await alice.next((t) => t.startsWith("Accept")), `Accept,${c.tcpPort}`);
      assert.equal(await fetchListRaw(c.tcpPort), `alice,${alice.endpoint};end`);

      const list = await seedLogin(bob, "bob");
      assert.equal(list, `alice,${alice.endpoint};bob,${bob.endpoint};end`);
      // Every *other* online user hears of the login, with the endpoint the server observed.
      assert.equal(await alice.next((t) => t.startsWith("login,")), `login,bob,${bob.endpoint}`);
      assert.ok(await bob.nothing((t) => t.startsWith("login,bob")), "bob must not hear himself");

      bob.send(`logout,bob,${bob.endpoint}`);
      assert.equal(await alice.next((t) => t.startsWith("logout,")), `logout,bob,${bob.endpoint}`);
      assert.equal(await fetchListRaw(c.tcpPort), `alice,${alice.endpoint};end`);
      assert.ok(log.some((l) => l.startsWith("login alice ")));
      assert.ok(log.some((l) => l.startsWith("login bob ")));
      assert.ok(log.some((l) => l.startsWith("logout bob ")));
    } finally {
      await alice.close();
      await bob.close();
    }
  });
});

Deno.test("the list and broadcasts carry the observed endpoint, not the claimed one", async () => {
  await withCoordinator(async (c) => {
    const server = { host: "127.0.0.1", port: c.udpPort };
    const alice = await SeedClient.open(server);
    const bob = await SeedClient.open(server);
    try {
      await seedLogin(alice, "alice");
      bob.send("login,bob,10.9.8.7:1234"); // a private address behind a NAT
      const accept = await bob.next((t) => t.startsWith("Accept"));
      const list = await fetchListRaw(Number(accept.split(",")[1]));
      assert.match(list, new RegExp(`bob,${bob.endpoint};end$`));
      assert.equal(await alice.next((t) => t.startsWith("login,")), `login,bob,${bob.endpoint}`);
      assert.deepEqual(c.registry.get("bob")?.claimed, { host: "10.9.8.7", port: 1234 });
    } finally {
      await alice.close();
      await bob.close();
    }
  });
});

Deno.test("a login is not broadcast until its list fetch proves the address", async () => {
  await withCoordinator(async (c) => {
    const server = { host: "127.0.0.1", port: c.udpPort };
    const alice = await SeedClient.open(server);
    const bob = await SeedClient.open(server);
    try {
      await seedLogin(alice, "alice");
      bob.send(`login,bob,${bob.endpoint}`);
      await bob.next((t) => t.startsWith("Accept"));
      assert.ok(await alice.nothing((t) => t.startsWith("login,bob")), "no broadcast yet");
      await fetchListRaw(c.tcpPort);
      await alice.next((t) => t === `login,bob,${bob.endpoint}`);
    } finally {
      await alice.close();
      await bob.close();
    }
  });
});

Deno.test("bad input is answered or dropped and the server keeps serving", async () => {
  await withCoordinator(async (c, log) => {
    const server = { host: "127.0.0.1", port: c.udpPort };
    const alice = await SeedClient.open(server);
    const mallory = await SeedClient.open(server);
    const carol = await SeedClient.open(server);
    try {
      await seedLogin(alice, "alice");
      const bad: (string | Uint8Array)[] = [
        "login,,127.0.0.1:5",
        "login,alice-the-great,no-endpoint",
        "login,a,127.0.0.1:99999",
        "login,a,b,c,d and some more",
        "login,end,127.0.0.1:5000",
        "login,x\u0007y,127.0.0.1:5000",
        "x".repeat(1000), // over the 512-byte line limit, under the datagram limit
        "heartbeat and nothing else!!",
        new Uint8Array([0x41, 0xff, 0xfe, 0x2c, ...new Array(30).fill(0x41)]),
      ];
      for (const b of bad) {
        mallory.send(b);
        const reply = await mallory.next(() => true);
        assert.match(reply, /^Error,/, `reply to ${JSON.stringify(b)}`);
        const length = typeof b === "string" ? new TextEncoder().encode(b).length : b.length;
        assert.ok(new TextEncoder().encode(reply).length <= length, "no amplification");
      }
      // Input too short to be answered without amplifying it is dropped silently.
      for (const b of ["", "hello", "login", "a,b"]) mallory.send(b);
      assert.ok(await mallory.nothing(() => true));
      // A datagram over the datagram limit is dropped unread and unanswered.
      mallory.send("x".repeat(2000));
      assert.ok(await mallory.nothing(() => true));
      assert.ok(log.some((l) => l.startsWith("limit max-datagram reached: 2000-byte datagram")));
      // A peer frame (binary) is never answered: no reflection.
      mallory.send(new Uint8Array([0x01, 0x00, 0, 0, 0, 1]));
      assert.ok(await mallory.nothing(() => true));

      // Garbage on the TCP port: the server sends the list and closes, nothing else.
      const garbage = crypto.getRandomValues(new Uint8Array(60_000));
      assert.equal(
        await fetchListRaw(c.tcpPort, "127.0.0.1", garbage),
        `alice,${alice.endpoint};end`,
      );

      // A duplicate name from another endpoint is rejected.
      mallory.send(`login,alice,${mallory.endpoint}`);
      // (The full reason is longer than mallory's request: a short one is sent instead.)
      assert.equal(await mallory.next(() => true), "Reject,name in use");
      // The owner logging in again just refreshes.
      alice.send(`login,alice,${alice.endpoint}`);
      assert.match(await alice.next((t) => t.startsWith("Accept")), /^Accept,/);

      // A forged logout is ignored and logged.
      mallory.send(`logout,alice,${alice.endpoint}`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(c.registry.get("alice")?.state, "online");
      assert.ok(log.some((l) => l.startsWith("ignored forged logout for alice")));

      // A Chinese name works end to end; then a normal login still works.
      assert.equal(
        await seedLogin(carol, "张伟"),
        `alice,${alice.endpoint};张伟,${carol.endpoint};end`,
      );
      assert.equal(await alice.next((t) => t.startsWith("login,")), `login,张伟,${carol.endpoint}`);
      const late = await SeedClient.open(server);
      try {
        assert.match(await seedLogin(late, "dave"), /dave,127\.0\.0\.1:\d+;end$/);
      } finally {
        await late.close();
      }
      assert.ok(c.stats.malformed >= bad.length);
    } finally {
      await alice.close();
      await mallory.close();
      await carol.close();
    }
  });
});

Deno.test("heartbeats keep a user online; silence expires it with a logout broadcast", async () => {
  const clock = new FakeClock();
  await withCoordinator(
    async (c, log) => {
      const server = { host: "127.0.0.1", port: c.udpPort };
      const alice = await SeedClient.open(server);
      const bob = await SeedClient.open(server);
      try {
        await seedLogin(alice, "alice");
        await seedLogin(bob, "bob");
        // Bob heartbeats every 200 ms for 1.2 s of the coordinator's time, alice stays silent.
        for (let t = 0; t < 1200; t += 200) {
          bob.send("heartbeat,bob");
          assert.equal(await bob.next((t) => t.startsWith("Alive")), `Alive,${bob.endpoint}`);
          // Silent for more than 800 ms at the first sweep after that (they run every 200 ms).
          assert.equal(log.some((l) => l.startsWith("expired alice")), t >= 1000, `at ${t} ms`);
          clock.advance(200);
        }
        assert.equal(
          await bob.next((t) => t.startsWith("logout,")),
          `logout,alice,${alice.endpoint}`,
        );
        assert.equal(c.registry.get("bob")?.state, "online");
        assert.ok(log.some((l) => l.startsWith("expired alice")));
        // A forgotten user's heartbeat is told to log in again.
        alice.send("heartbeat,alice");
        assert.equal(await alice.next((t) => t.startsWith("Expired")), "Expired,alice");
      } finally {
        await alice.close();
        await bob.close();
      }
    },
    800,
    { clock },
  );
});

Deno.test("a taken port is reported, not crashed on", async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    await assert.rejects(
      Coordinator.start({ host: "127.0.0.1", port: 0, tcpPort: port }),
      (e: Error & { code?: string }) => e.code === "EADDRINUSE" || e.name === "AddrInUse",
    );
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

Deno.test("extension clients get presence batched; seed-only clients one message per datagram", async () => {
  await withCoordinator(
    async (c) => {
      const ext = await Raw.open("127.0.0.2", c.udpPort);
      const seed = await Raw.open("127.0.0.3", c.udpPort);
      const joiners = await Promise.all(
        Array.from({ length: 40 }, () => SeedClient.open({ host: "127.0.0.1", port: c.udpPort })),
      );
      try {
        await rawLogin(c, ext, extLogin("ext", ext.endpoint));
        await rawLogin(c, seed, `login,seed,${seed.endpoint}`);
        const before = {
          ext: ext.received.length,
          seed: seed.received.length,
          sent: c.stats.presenceSent,
        };
        // Forty logins from one address are admitted by one list fetch: one change of 40 users.
        joiners.forEach((j, i) => j.send(`login,j${i},${j.endpoint}`));
        await Promise.all(joiners.map((j) => j.next((t) => t.startsWith("Accept,"))));
        const list = await fetchListRaw(c.tcpPort);
        assert.equal(list.split(";").length, 43, "ext, seed, 40 joiners and end");
        await seed.until((t) => t.length - before.seed >= 40);
        await ext.until((t) => t.length > before.ext);
        await sleep(200); // nothing more is coming
        const extNew = ext.texts.slice(before.ext);
        assert.equal(extNew.length, 1, "one datagram for forty changes");
        assert.ok(ext.received.at(-1)!.length <= 1400);
        // ext joined at version 1 (its own login), heard of seed's (2), and now of 3 to 42: each
        // as a compact line, with the observed endpoint in 8 base64url characters.
        const [header, ...lines] = extNew[0].split("\n");
        assert.equal(header, "Presence,2,42");
        // 127.0.0.1 is 7f 00 00 01: "fwAA", then 01 and the port's two bytes.
        const port = Number(joiners[0].endpoint.split(":")[1]);
        const tail = encodeBase64url(new Uint8Array([1, port >> 8, port & 255]));
        assert.ok(lines.includes(`+j0,fwAA${tail}`), `+j0,fwAA${tail} in ${lines.join(" ")}`);
        assert.deepEqual(
          lines.sort(),
          joiners.map((j, i) => `+j${i},${compact(j.endpoint)}`).sort(),
        );
        // The seed-only client gets the seed's messages, one per datagram, no header.
        assert.deepEqual(
          seed.texts.slice(before.seed).sort(),
          joiners.map((j, i) => `login,j${i},${j.endpoint}`).sort(),
        );
        assert.equal(c.stats.presenceSent - before.sent, 41);
        // A logout: `-name` for the one, the seed's `logout,name,endpoint` for the other.
        joiners[7].send(`logout,j7,${joiners[7].endpoint}`);
        await ext.until((t) => t.length > before.ext + 1);
        await seed.until((t) => t.length > before.seed + 40);
        assert.equal(ext.texts.at(-1), "Presence,42,43\n-j7");
        assert.equal(seed.texts.at(-1), `logout,j7,${joiners[7].endpoint}`);
      } finally {
        await Promise.all([ext.close(), seed.close(), ...joiners.map((j) => j.close())]);
      }
    },
    45_000,
    { limits: { loginsPerSecond: 100 } },
  ); // forty logins from one address, at once
});

/** The `Presence,<from>,<to>` ranges of the datagrams `client` received, in order of `from`. */
function ranges(client: Raw): [number, number][] {
  return client.texts
    .filter((t) => t.startsWith("Presence,"))
    .map((t) => t.split("\n")[0].split(",").slice(1).map(Number) as [number, number])
    .sort((a, b) => a[0] - b[0]);
}

/** Every presence line `client` received (headers left out). */
function presenceLines(client: Raw): string[] {
  return client.texts.filter((t) => t.startsWith("Presence,")).flatMap((t) =>
    t.split("\n").slice(1)
  );
}

Deno.test("the list ends with its presence version, unless a seed client has the address", async () => {
  await withCoordinator(async (c) => {
    const alice = await Raw.open("127.0.0.24", c.udpPort);
    const seed = await Raw.open("127.0.0.25", c.udpPort);
    const carol = await Raw.open("127.0.0.25", c.udpPort); // behind the seed client's NAT
    try {
      // Version 1 is alice's own login: her list has it.
      const list = await rawLogin(c, alice, extLogin("alice", alice.endpoint));
      assert.equal(list, `alice,${alice.endpoint};end\nversion,1`);
      assert.deepEqual(parseOnlineList(list).version, 1);
      // A seed client's list is the seed's, to the byte.
      const seedList = await rawLogin(c, seed, `login,seed,${seed.endpoint}`);
      assert.equal(seedList, `alice,${alice.endpoint};seed,${seed.endpoint};end`);
      // An extension client at the seed client's address gets the seed's list too.
      const carolList = await rawLogin(c, carol, extLogin("carol", carol.endpoint));
      assert.ok(carolList.endsWith(`carol,${carol.endpoint};end`), carolList);
      // Fetching again while online (a resync): the list as it is now, at the current version.
      const again = connectFrom("127.0.0.24", c.tcpPort);
      await again.closed;
      assert.equal(parseOnlineList(again.text()).version, 3);
      assert.equal(parseOnlineList(again.text()).entries.length, 3);
      // Once the seed client is gone, its address gets versions too.
      seed.send(`logout,seed,${seed.endpoint}`);
      await alice.until(() => presenceLines(alice).includes("-seed"));
      const after = connectFrom("127.0.0.25", c.tcpPort);
      await after.closed;
      assert.equal(parseOnlineList(after.text()).version, 4);
    } finally {
      await Promise.all([alice.close(), seed.close(), carol.close()]);
    }
  });
});

Deno.test("batched presence datagrams carry ranges that tile, and Alive says how far", async () => {
  await withCoordinator(
    async (c) => {
      const alice = await Raw.open("127.0.0.26", c.udpPort);
      const joiners = await Promise.all(
        Array.from({ length: 100 }, () => Raw.open("127.0.0.27", c.udpPort)),
      );
      try {
        await rawLogin(c, alice, extLogin("alice", alice.endpoint));
        alice.send(`heartbeat,alice,${secretOf("alice")}`);
        await alice.until((t) => t.some((x) => x.startsWith("Alive,")));
        assert.equal(alice.texts.find((x) => x.startsWith("Alive,")), `Alive,${alice.endpoint},1`);
        // A hundred logins admitted by one fetch: versions 2 to 101, more than one datagram.
        joiners.forEach((j, i) => j.send(`login,j${i},${j.endpoint}`));
        await Promise.all(joiners.map((j) => j.until((t) => t.length > 0)));
        await connectFrom("127.0.0.27", c.tcpPort).closed;
        // Then a few more changes, one flush each: logouts of three of them.
        for (const i of [3, 50, 99]) {
          joiners[i].send(`logout,j${i},${joiners[i].endpoint}`);
          await alice.until(() => presenceLines(alice).includes(`-j${i}`));
        }
        const got = ranges(alice);
        assert.ok(got.length >= 5, `${got.length} datagrams: ${JSON.stringify(got)}`);
        assert.equal(got[0][0], 1, "from the version of alice's list");
        got.slice(1).forEach(([from], i) => assert.equal(from, got[i][1], JSON.stringify(got)));
        assert.equal(got.at(-1)![1], 104);
        assert.ok(alice.received.every((d) => d.length <= 1400));
        const lines = presenceLines(alice);
        assert.deepEqual(
          lines.filter((l) => l.startsWith("+j")).sort(),
          joiners.map((j, i) => `+j${i},${compact(j.endpoint)}`).sort(),
        );
        assert.deepEqual(lines.filter((l) => l.startsWith("-j")), ["-j3", "-j50", "-j99"]);
        // Everything up to 104 has been handed to the socket: Alive says so.
        const before = alice.received.length;
        alice.send(`heartbeat,alice,${secretOf("alice")}`);
        await alice.until((t) => t.slice(before).some((x) => x.startsWith("Alive,")));
        assert.equal(alice.texts.at(-1), `Alive,${alice.endpoint},104`);
        // Seed-only clients get neither headers nor versions.
        const j0 = joiners[0];
        const j0Before = j0.received.length;
        j0.send("heartbeat,j0");
        await j0.until((t) => t.slice(j0Before).some((x) => x.startsWith("Alive,")));
        assert.equal(j0.texts.at(-1), `Alive,${j0.endpoint}`);
        assert.ok(!j0.texts.some((t) => t.startsWith("Presence,")));
      } finally {
        await Promise.all([alice.close(), ...joiners.map((j) => j.close())]);
      }
    },
    45_000,
    // A hundred logins from one address, at once (and names: no name quota in the way).
    { limits: { loginsPerSecond: 200, namesPerAddress: 1_000 } },
  );
});

Deno.test("two datagrams' worth of changes cut the pause short; fewer wait for it", async () => {
  // On a clock that moves only when told, a pause lasts until the test ends it.
  const clock = new FakeClock();
  await withCoordinator(
    async (c) => {
      const watcher = await Raw.open("127.0.0.42", c.udpPort);
      const first = await Raw.open("127.0.0.43", c.udpPort);
      const few = await Promise.all(
        Array.from({ length: 5 }, () => Raw.open("127.0.0.44", c.udpPort)),
      );
      const storm = await Promise.all(
        Array.from({ length: 200 }, () => Raw.open("127.0.0.45", c.udpPort)),
      );
      const late = await Raw.open("127.0.0.46", c.udpPort);
      /** Logs `clients` in as `<prefix><i>` (extension clients), all admitted by one list fetch. */
      const logIn = async (clients: Raw[], prefix: string) => {
        clients.forEach((j, i) => j.send(extLogin(`${prefix}${i}`, j.endpoint)));
        await Promise.all(
          clients.map((j) => j.until((t) => t.some((x) => x.startsWith("Accept,")))),
        );
        await connectFrom(clients[0].endpoint.split(":")[0], c.tcpPort).closed;
      };
      try {
        await rawLogin(c, watcher, extLogin("watcher", watcher.endpoint)); // version 1
        // After a quiet spell a change goes out at once (version 2); a pause begins.
        await rawLogin(c, first, extLogin("first", first.endpoint));
        await watcher.until(() => ranges(watcher).length === 1);
        // That flush sent one datagram: a 20 µs pause, which this clock never ends on its own.
        // Five logins, about 80 bytes of lines (versions 3 to 7): they wait for the pause.
        await logIn(few, "few");
        assert.equal(c.registry.get("few4")?.state, "online");
        await sleep(200);
        assert.deepEqual(ranges(watcher), [[1, 2]], "nothing before the pause ends");
        assert.equal(c.backlog, 1, "the changes wait, unsent");
        // Two hundred more (versions 8 to 207): some 4,000 bytes of lines, over two datagrams'
        // worth. The flush starts at once, though the pause has not ended.
        const started = performance.now();
        const sentBefore = c.stats.presenceSent;
        await logIn(storm, "joiner");
        await watcher.until(() => ranges(watcher).at(-1)?.[1] === 207, 10_000);
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 10_000, `${elapsed} ms`);
        const got = ranges(watcher);
        got.slice(1).forEach(([from], i) => assert.equal(from, got[i][1], JSON.stringify(got)));
        assert.equal(got.length, 1 + 3, "the first change, then 205 lines in three datagrams");
        assert.deepEqual(
          presenceLines(watcher).slice(1).sort(),
          [
            ...few.map((j, i) => `+few${i},${compact(j.endpoint)}`),
            ...storm.map((j, i) => `+joiner${i},${compact(j.endpoint)}`),
          ].sort(),
        );
        // The pause after that flush is 20 µs per datagram it sent. One more login waits for it,
        // and goes out once it has ended, not before.
        const pause = (c.stats.presenceSent - sentBefore) * PAUSE_PER_DATAGRAM_MS;
        await rawLogin(c, late, extLogin("late", late.endpoint));
        clock.advance(pause - 0.01);
        await sleep(200);
        assert.equal(ranges(watcher).length, 4, "the next change waits for the pause");
        assert.equal(c.backlog, 1);
        clock.advance(0.02);
        await watcher.until(() => ranges(watcher).at(-1)?.[1] === 208);
        assert.deepEqual(ranges(watcher).at(-1), [207, 208]);
        assert.equal(c.backlog, 0);
      } finally {
        await Promise.all([watcher, first, late, ...few, ...storm].map((x) => x.close()));
      }
    },
    45_000,
    // Two hundred logins and a fetch from one address (and names: no name quota in the way).
    { clock, limits: { loginsPerSecond: 200, namesPerAddress: 1_000 } },
  );
});

Deno.test("whoami is answered only when the answer is no longer than the request, on both ports", async () => {
  await withCoordinator(async (c) => {
    assert.ok(c.altPort !== undefined);
    const main = await Raw.open("127.0.0.28", c.udpPort);
    const alt = await Raw.open("127.0.0.28", c.altPort);
    try {
      for (const client of [main, alt]) {
        const padded = encodeClientMessage({ type: "whoami" });
        client.send(padded);
        await client.until((t) => t.length === 1);
        assert.equal(client.texts[0], `You,${client.endpoint}`);
        assert.ok(client.received[0].length <= padded.length);
        // Shorter than `You,127.0.0.28:<port>`: no answer (the bare 6-byte form included).
        for (const short of ["whoami", "whoami\n", "whoami,--", "whoami," + "-".repeat(10)]) {
          client.send(short);
        }
        client.send("whoami," + "-".repeat(20)); // 27 bytes: long enough
        await client.until((t) => t.length === 2);
        await sleep(200);
        assert.deepEqual(client.texts, [`You,${client.endpoint}`, `You,${client.endpoint}`]);
      }
      // The alternate port answers nothing else, not even an error.
      alt.send(`login,x,${alt.endpoint}`);
      alt.send("whoami,é" + "-".repeat(30));
      await sleep(200);
      assert.equal(alt.received.length, 2);
    } finally {
      await Promise.all([main.close(), alt.close()]);
    }
  });
});

Deno.test("a forged login gets one small answer, and nothing else ever", async () => {
  await withCoordinator(
    async (c, log) => {
      const victim = await Raw.open("127.0.0.5", c.udpPort);
      const alice = await Raw.open("127.0.0.6", c.udpPort);
      const bob = await Raw.open("127.0.0.7", c.udpPort);
      try {
        await rawLogin(c, alice, extLogin("alice", alice.endpoint));
        // A login "from" the victim's address (the forger spoofed it): the victim never fetches.
        const forged = `login,mallory,${victim.endpoint}`;
        victim.send(forged);
        await victim.until((t) => t.length === 1);
        assert.equal(victim.texts[0], `Accept,${c.tcpPort}`);
        assert.ok(victim.received[0].length <= new TextEncoder().encode(forged).length);
        // Heartbeats for it would be answered with an Alive longer than themselves: not answered.
        for (let i = 0; i < 5; i++) victim.send("heartbeat,mallory");
        // Life goes on: joins, leaves, an expiry sweep, a shutdown. None of it reaches the victim.
        await rawLogin(c, bob, `login,bob,${bob.endpoint}`);
        await alice.until(() => presenceLines(alice).includes(`+bob,${compact(bob.endpoint)}`));
        bob.send(`logout,bob,${bob.endpoint}`);
        await alice.until(() => presenceLines(alice).includes("-bob"));
        assert.ok(!alice.texts.some((t) => t.includes("mallory")), "others never hear of it");
        // The pending login is forgotten after pendingTimeoutMs (at the next sweep).
        await until(() => log.some((l) => l.startsWith("forgot login mallory")), 3000);
        assert.equal(c.registry.get("mallory"), undefined);
        await c.close();
        await sleep(100);
        assert.equal(victim.received.length, 1, `victim got ${JSON.stringify(victim.texts)}`);
        assert.ok(alice.texts.includes("Bye,the server is shutting down"));
      } finally {
        await Promise.all([victim.close(), alice.close(), bob.close()]);
      }
    },
    45_000,
    { pendingTimeoutMs: 300 },
  );
});

Deno.test("logins beyond the per-address rate are dropped unanswered, and logged", async () => {
  await withCoordinator(
    async (c, log) => {
      const flood = await Raw.open("127.0.0.8", c.udpPort);
      const other = await Raw.open("127.0.0.9", c.udpPort);
      try {
        for (let i = 0; i < 100; i++) flood.send(`login,f${i},${flood.endpoint}`);
        await until(() => c.stats.datagrams === 100, 3000);
        await flood.until((t) => t.length >= 10);
        await sleep(50); // nothing more is coming
        const accepts = flood.texts.filter((t) => t.startsWith("Accept,")).length;
        assert.equal(accepts, 10, "the burst, and no refill: the coordinator's time stood still");
        assert.ok(log.some((l) => l.startsWith("limit logins-per-address reached: 127.0.0.8 ")));
        // Another address is not affected.
        assert.match(
          await rawLogin(c, other, `login,other,${other.endpoint}`),
          /other,127\.0\.0\.9/,
        );
      } finally {
        await Promise.all([flood.close(), other.close()]);
      }
    },
    45_000,
    { clock: new FakeClock(), limits: { loginsPerSecond: 5 } },
  );
});

Deno.test("datagrams beyond the per-address rate are dropped; relayed frames are the relay's", async () => {
  const clock = new FakeClock();
  await withCoordinator(
    async (c, log) => {
      const alice = await Raw.open("127.0.0.10", c.udpPort);
      const bob = await Raw.open("127.0.0.11", c.udpPort);
      try {
        await rawLogin(c, alice, extLogin("alice", alice.endpoint));
        await rawLogin(c, bob, extLogin("bob", bob.endpoint));
        const before = alice.received.length;
        const received = c.stats.datagrams;
        for (let i = 0; i < 200; i++) alice.send(`heartbeat,alice,${secretOf("alice")}`);
        await until(() => c.stats.datagrams === received + 200, 3000);
        await alice.until((t) => t.length >= before + 19);
        await sleep(50); // nothing more is coming
        const alive = alice.texts.slice(before).filter((t) => t.startsWith("Alive,")).length;
        assert.equal(alive, 2 * 10 - 1, "the burst of 20, less alice's login; no refill");
        assert.ok(
          log.some((l) => l.startsWith("limit datagrams-per-address reached: 127.0.0.10 ")),
        );
        assert.equal(c.registry.get("alice")?.state, "online");
        // Introduced users relay through us within the relay's own budget, not the datagram limit.
        clock.advance(1000); // the bucket refills
        // Both consent (docs/PROTOCOL.md §1.4): bob is knocked, and his own connect introduces.
        alice.send("connect,alice,bob");
        await bob.until((t) => t.some((x) => x.startsWith("Knock,alice,")));
        bob.send("connect,bob,alice");
        await bob.until((t) => t.some((x) => x.startsWith("Introduce,alice,")));
        const inner = new Uint8Array([0x15, 5, ...new TextEncoder().encode("alice"), 1, 2, 3]);
        for (let i = 0; i < 100; i++) alice.send(encodeFrame({ type: "relay", to: "bob", inner }));
        await bob.until((t) => t.length >= 100 + 2, 5000);
        assert.equal(c.stats.relayed, 100);
      } finally {
        await Promise.all([alice.close(), bob.close()]);
      }
    },
    45_000,
    { clock, limits: { datagramsPerSecond: 10 } },
  );
});

// Behaviour changed by issue 18: the list service used to keep a connection open until its
// client closed it (or it went idle), so that connections held open hit the caps; now it closes
// each once the list is written, and the caps evict instead of refusing (list_service_test.ts).
Deno.test("the list service closes each connection once its list is written, held open or not", async () => {
  await withCoordinator(
    async (c, log) => {
      const logged = (prefix: string) => () => log.some((l) => l.startsWith(prefix));
      // Connections from one address whose clients never close their side, one after another:
      // more than the caps.
      const held: ReturnType<typeof connectFrom>[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          const h = connectFrom("127.0.0.12", c.tcpPort, { hold: true });
          held.push(h);
          // The (empty) list, with its version (no seed-only client has this address), and
          // the server's close.
          await until(() => h.text() === "end\nversion,0", 3000);
          await until(() => c.listConnections === 0, 3000);
        }
        // Input beyond the line limit is not read; the list still comes.
        const chatty = connectFrom("127.0.0.12", c.tcpPort, { send: new Uint8Array(5000) });
        await chatty.closed;
        assert.equal(chatty.text(), "end\nversion,0");
        assert.ok(logged("limit max-line reached: 127.0.0.12 sent more than 100 bytes")());
      } finally {
        for (const h of held) h.destroy();
      }
    },
    45_000,
    { limits: { tcpPerAddress: 2, maxTcp: 3, tcpIdleMs: 300, maxLineBytes: 100 } },
  );
});

Deno.test("maxUsers refuses logins beyond it; maxPending forgets the oldest waiting login", async () => {
  await withCoordinator(
    async (c, log) => {
      const clients = await Promise.all(
        ["127.0.0.15", "127.0.0.16", "127.0.0.17", "127.0.0.18"].map((h) => Raw.open(h, c.udpPort)),
      );
      const [alice, p1, p2, p3] = clients;
      try {
        await rawLogin(c, alice, `login,alice,${alice.endpoint}`);
        // Three pending logins, two places: the first is forgotten.
        for (const [i, p] of [p1, p2, p3].entries()) {
          p.send(`login,p${i + 1},${p.endpoint}`);
          await p.until((t) => t.length === 1);
        }
        assert.equal(c.registry.get("p1"), undefined);
        assert.equal(c.registry.pendingCount, 2);
        assert.ok(log.some((l) => l.startsWith("limit max-pending reached: 2 logins waiting")));
        // p2 fetches its list: online. Now the server (2 users) is full for p3.
        const conn = connectFrom("127.0.0.17", c.tcpPort);
        await conn.closed;
        assert.equal(c.registry.onlineCount, 2);
        const refused = connectFrom("127.0.0.18", c.tcpPort);
        await refused.closed;
        assert.equal(c.registry.get("p3"), undefined);
        assert.ok(
          log.some((l) => l.startsWith("limit max-users reached: 2 users online; refused p3")),
        );
        p3.send(`login,p3,${p3.endpoint}`);
        await p3.until((t) => t.some((x) => x.startsWith("Reject,")));
        assert.match(p3.texts.at(-1)!, /^Reject,(the server is )?full$/);
      } finally {
        await Promise.all(clients.map((x) => x.close()));
      }
    },
    45_000,
    { limits: { maxUsers: 2, maxPending: 2 } },
  );
});

Deno.test("nat is taken only from the name's owner and passed on in introductions", async () => {
  await withCoordinator(async (c) => {
    const alice = await Raw.open("127.0.0.19", c.udpPort);
    const bob = await Raw.open("127.0.0.20", c.udpPort);
    const mallory = await Raw.open("127.0.0.21", c.udpPort);
    try {
      await rawLogin(c, alice, extLogin("alice", alice.endpoint));
      await rawLogin(c, bob, extLogin("bob", bob.endpoint));
      alice.send("nat,alice,hard");
      mallory.send("nat,alice,easy");
      mallory.send("nat,bob,hard");
      await sleep(100);
      assert.equal(c.registry.get("alice")?.nat, "hard");
      assert.equal(c.registry.get("bob")?.nat, undefined);
      assert.equal(mallory.received.length, 0, "nat is never answered");
      bob.send("connect,bob,alice");
      await alice.until((t) => t.some((x) => x.startsWith("Knock,bob,")));
      alice.send("connect,alice,bob"); // her consent: now both are introduced
      await bob.until((t) => t.some((x) => x.startsWith("Introduce,alice,")));
      assert.match(bob.texts.find((x) => x.startsWith("Introduce,alice,"))!, /,hard$/);
      await alice.until((t) => t.some((x) => x.startsWith("Introduce,bob,")));
      assert.doesNotMatch(
        alice.texts.find((x) => x.startsWith("Introduce,bob,"))!,
        /,(hard|easy)$/,
      );
    } finally {
      await Promise.all([alice.close(), bob.close(), mallory.close()]);
    }
  });
});

Deno.test("close() says Bye to online users only, and may be called twice", async () => {
  const c = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  const alice = await Raw.open("127.0.0.22", c.udpPort);
  const pending = await Raw.open("127.0.0.23", c.udpPort);
  try {
    await rawLogin(c, alice, `login,alice,${alice.endpoint}`);
    pending.send(`login,pending,${pending.endpoint}`);
    await pending.until((t) => t.length === 1);
    await Promise.all([c.close(), c.close("again")]);
    await alice.until((t) => t.includes("Bye,the server is shutting down"));
    await sleep(100);
    assert.deepEqual(pending.texts, [`Accept,${c.tcpPort}`]);
    assert.equal(alice.texts.filter((t) => t.startsWith("Bye,")).length, 1);
  } finally {
    await c.close();
    await Promise.all([alice.close(), pending.close()]);
  }
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`p2p serve on ${signal}: tells the online users, closes, exits 0`, async () => {
    const { proc, port } = await startServe();
    const alice = await SeedClient.open({ host: "127.0.0.1", port });
    try {
      await seedLogin(alice, "alice");
      proc.kill(signal);
      assert.equal(
        await alice.next((t) => t.startsWith("Bye,")),
        "Bye,the server is shutting down",
      );
      const status = await proc.wait(10_000);
      assert.equal(status.code, 0);
      assert.ok(proc.stderr.items.some((l) => l.includes("said goodbye to 1 user(s)")));
      assert.ok(proc.stderr.items.some((l) => l.endsWith("coordinator stopped")));
    } finally {
      await alice.close();
      await proc.dispose();
    }
  });
}

Deno.test("p2p serve takes its limits from the command line, and refuses bad ones", async () => {
  for (const bad of [["--max-users", "0"], ["--max-line", "600"], ["--tcp-idle", "x"]]) {
    const { code, stderr } = await runP2p(["serve", "--port", "0", ...bad]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(bad[0] === "--max-line" ? "maxLineBytes is 600" : bad[0]));
  }
  const { proc, port } = await startServe(["--max-users", "1", "--batch-ms", "50"]);
  const alice = await SeedClient.open({ host: "127.0.0.1", port });
  const bob = await SeedClient.open({ host: "127.0.0.1", port });
  try {
    assert.ok(proc.stderr.items.some((l) => l.endsWith("up to 1 users")));
    await seedLogin(alice, "alice");
    bob.send(`login,bob,${bob.endpoint}`);
    assert.match(await bob.next((t) => t.startsWith("Reject,")), /full$/);
    await proc.stderr.waitFor((l) => l.includes("limit max-users reached: 1 users online"));
  } finally {
    await Promise.all([alice.close(), bob.close()]);
    proc.kill("SIGTERM");
    await proc.dispose();
  }
});

Deno.test("a seed-only user that logs in again with a key gets no version it could not use", async () => {
  await withCoordinator(async (c) => {
    const bob = await Raw.open("127.0.0.40", c.udpPort);
    const carol = await Raw.open("127.0.0.41", c.udpPort);
    try {
      assert.ok(!(await rawLogin(c, bob, `login,bob,${bob.endpoint}`)).includes("version"));
      // The same endpoint again, now with a key: still a member sent plain seed lines.
      await rawLogin(c, bob, extLogin("bob", bob.endpoint));
      await rawLogin(c, carol, extLogin("carol", carol.endpoint));
      await bob.until((t) => t.some((x) => x.startsWith("login,carol,")));
      const before = bob.received.length;
      bob.send("heartbeat,bob");
      await bob.until((t) => t.slice(before).some((x) => x.startsWith("Alive,")));
      assert.ok(!bob.texts.some((t) => t.startsWith("Presence,")), "no headers");
      // A version here would tell it that it is behind after every change, forever.
      assert.equal(bob.texts.at(-1), `Alive,${bob.endpoint}`);
    } finally {
      await Promise.all([bob.close(), carol.close()]);
    }
  });
});

Deno.test("p2p serve takes its name and relay quotas from the command line", async () => {
  for (const option of ["--names-per-ip", "--relay-bytes-per-ip", "--relay-packets-per-user"]) {
    const { code, stderr } = await runP2p(["serve", "--port", "0", option, "0"]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`${option} must be a whole number of at least 1`));
  }
  const { proc, port } = await startServe(["--names-per-ip", "1", "--relay-bytes-per-user", "1"]);
  const alice = await SeedClient.open({ host: "127.0.0.1", port });
  const bob = await SeedClient.open({ host: "127.0.0.1", port });
  try {
    await seedLogin(alice, "alice");
    bob.send(`login,bob,${bob.endpoint}`); // the same address (127.0.0.1) as alice
    assert.match(await bob.next((t) => t.startsWith("Reject,")), /too many names/);
    await proc.stderr.waitFor((l) => l.includes("limit names-per-address reached: 127.0.0.1"));
  } finally {
    await Promise.all([alice.close(), bob.close()]);
    proc.kill("SIGTERM");
    await proc.dispose();
  }
});
