import assert from "node:assert/strict";
import net from "node:net";
import { Coordinator } from "../lib/coordinator.ts";
import { fetchListRaw, SeedClient, seedLogin } from "./support/seed_client.ts";

async function withCoordinator(
  fn: (c: Coordinator, log: string[]) => Promise<void>,
  peerTimeoutMs = 45_000,
): Promise<void> {
  const log: string[] = [];
  const c = await Coordinator.start({
    host: "127.0.0.1",
    port: 0,
    peerTimeoutMs,
    log: (l) => log.push(l),
  });
  try {
    await fn(c, log);
  } finally {
    await c.close();
  }
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
        "x".repeat(2000),
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
      assert.match(await mallory.next(() => true), /^Reject,.*already in use/);
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
  await withCoordinator(async (c, log) => {
    const server = { host: "127.0.0.1", port: c.udpPort };
    const alice = await SeedClient.open(server);
    const bob = await SeedClient.open(server);
    try {
      await seedLogin(alice, "alice");
      await seedLogin(bob, "bob");
      // Bob heartbeats, alice stays silent.
      const started = Date.now();
      while (Date.now() - started < 1200) {
        bob.send("heartbeat,bob");
        assert.equal(await bob.next((t) => t.startsWith("Alive")), `Alive,${bob.endpoint}`);
        await new Promise((r) => setTimeout(r, 200));
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
  }, 800);
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
