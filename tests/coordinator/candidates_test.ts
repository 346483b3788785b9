/**
 * Announced candidates at the coordinator: kept only from the name's owner with its secret,
 * filtered by the policy, never answered, and passed on in `Introduce` only to clients that
 * announced too (older clients refuse the field).
 */
import assert from "node:assert/strict";
import net from "node:net";
import type { Coordinator } from "../../lib/coordinator.ts";
import { passableCandidates } from "../../lib/coordinator/candidate_policy.ts";
import { addressScope } from "../../lib/net/address_scope.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { RawUdp as Raw, withCoordinator } from "../support/raw_udp.ts";
import { sleep } from "../support/wait.ts";

Deno.test("candidate policy: public passes; loopback and private only from their own kind", () => {
  assert.equal(addressScope("203.0.113.5"), "public");
  assert.equal(addressScope("2001:db8::7"), "public");
  assert.equal(addressScope("2001:DB8:0::7"), "public");
  assert.equal(addressScope("127.0.0.2"), "loopback");
  assert.equal(addressScope("::1"), "loopback");
  assert.equal(addressScope("::ffff:127.0.0.1"), "loopback");
  assert.equal(addressScope("::ffff:203.0.113.5"), "public");
  for (const host of ["10.1.2.3", "172.20.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "fc12::"]) {
    assert.equal(addressScope(host), "private", host);
  }
  for (const host of ["0.0.0.0", "169.254.1.1", "224.0.0.1", "255.255.255.255", "::", "fe80::1"]) {
    assert.equal(addressScope(host), "unusable", host);
  }
  assert.equal(addressScope("ff02::1"), "unusable");
  const list = ["203.0.113.5", "2001:db8::7", "::1", "127.0.0.1", "10.0.0.1", "fe80::1"].map((
    host,
  ) => ({ kind: "mapped" as const, endpoint: { host, port: 4000 } }));
  const hosts = (observed: string) =>
    passableCandidates(list, { host: observed, port: 1 }).map((c) => c.endpoint.host);
  assert.deepEqual(hosts("198.51.100.1"), ["203.0.113.5", "2001:db8::7"]);
  assert.deepEqual(hosts("127.0.0.9"), ["203.0.113.5", "2001:db8::7", "::1", "127.0.0.1"]);
  assert.deepEqual(hosts("192.168.0.9"), ["203.0.113.5", "2001:db8::7", "10.0.0.1"]);
});

function secretOf(name: string): string {
  return encodeBase64url(new TextEncoder().encode(name.padEnd(16, "-")).slice(0, 16));
}

function extLogin(name: string, endpoint: string): string {
  const key = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
  return `login,${name},${endpoint},${key},${secretOf(name)}`;
}

/** Logs a raw client in: login, Accept, then the list fetch from its own address. */
async function rawLogin(c: Coordinator, client: Raw, text: string): Promise<void> {
  const before = client.received.length;
  client.send(text);
  await client.until((t) => t.slice(before).some((x) => x.startsWith("Accept,")));
  await new Promise<void>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port: c.tcpPort, localAddress: client.host });
    socket.on("data", () => {});
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
}

/** `a` asks for `b` (who consents); returns the latest Introduce each got, as text. */
async function introduce(a: Raw, an: string, b: Raw, bn: string): Promise<[string, string]> {
  const got = (r: Raw, name: string) => r.texts.findLast((x) => x.startsWith(`Introduce,${name},`));
  const [beforeA, beforeB] = [a.received.length, b.received.length];
  a.send(`connect,${an},${bn}`);
  const news = (x: string) => x.startsWith(`Knock,${an},`) || x.startsWith(`Introduce,${an},`);
  await b.until((t) => t.slice(beforeB).some(news));
  // The first time, b consents; a consented pair is introduced at either's request.
  if (b.texts.slice(beforeB).some((x) => x.startsWith("Knock,"))) b.send(`connect,${bn},${an}`);
  await a.until((t) => t.slice(beforeA).some((x) => x.startsWith(`Introduce,${bn},`)));
  await b.until((t) => t.slice(beforeB).some((x) => x.startsWith(`Introduce,${an},`)));
  return [got(a, bn)!, got(b, an)!];
}

Deno.test("candidates: the owner's are kept and passed on, only to clients that announced", async () => {
  await withCoordinator({ peerTimeoutMs: 45_000 }, async (c, log) => {
    const alice = await Raw.open("127.0.0.31", c.udpPort);
    const bob = await Raw.open("127.0.0.32", c.udpPort);
    const mallory = await Raw.open("127.0.0.33", c.udpPort);
    try {
      await rawLogin(c, alice, extLogin("alice", alice.endpoint));
      await rawLogin(c, bob, extLogin("bob", bob.endpoint));
      const announce = `candidates,alice,${secretOf("alice")},v6=[2001:db8::7]:4000;` +
        `mapped=203.0.113.5:41000;mapped=[fe80::1]:4000`;
      alice.send(announce);
      mallory.send(`candidates,bob,${secretOf("bob")},mapped=203.0.113.66:1`); // not bob's socket
      alice.send(`candidates,alice,${secretOf("bob")},mapped=203.0.113.66:1`); // not her secret
      await sleep(100);
      assert.deepEqual(c.registry.get("alice")?.candidates, [
        { kind: "v6", endpoint: { host: "2001:db8::7", port: 4000 } },
        { kind: "mapped", endpoint: { host: "203.0.113.5", port: 41000 } },
      ]);
      assert.equal(c.registry.get("bob")?.candidates, undefined);
      assert.equal(mallory.received.length, 0, "candidates are never answered");
      assert.ok(!alice.texts.some((t) => t.startsWith("Error")), "nor refused aloud");
      assert.equal(log.filter((l) => l.includes("ignored candidates")).length, 2);
      // Bob never announced: he might be an older client, so he gets no candidates.
      let [toAlice, toBob] = await introduce(alice, "alice", bob, "bob");
      assert.match(toBob, /^Introduce,alice,127\.0\.0\.31:\d+,127\.0\.0\.31:\d+,[^,]+,[^,]+$/);
      assert.match(toAlice, /^Introduce,bob,[^=]+$/);
      // Once he announces (even nothing), he does.
      bob.send(`candidates,bob,${secretOf("bob")}`);
      await sleep(100);
      assert.deepEqual(c.registry.get("bob")?.candidates, []);
      [toAlice, toBob] = await introduce(alice, "alice", bob, "bob");
      assert.match(toBob, /,v6=\[2001:db8::7\]:4000;mapped=203\.0\.113\.5:41000$/);
      assert.match(toAlice, /^Introduce,bob,[^=]+$/, "bob has none to pass on");
      // An empty announcement withdraws them.
      alice.send(`candidates,alice,${secretOf("alice")}`);
      await sleep(100);
      [, toBob] = await introduce(alice, "alice", bob, "bob");
      assert.doesNotMatch(toBob, /=/);
    } finally {
      await Promise.all([alice.close(), bob.close(), mallory.close()]);
    }
  });
});
