// Port mapping through real routers (tests/lab/netlab.ts): Debian's miniupnpd (NAT-PMP and PCP)
// in a lab router, and `p2p chat` processes that ask it for a mapping of their chat port, announce
// the mapped endpoint, and so go direct where they would otherwise meet on the relay. Also: a
// router that answers nothing costs a short wait and nothing else, and the mapping is deleted
// when the chat exits. Needs root; skipped with the reason otherwise, unless P2P_LAB=require.
import assert from "node:assert/strict";
import type { Miniupnpd } from "./lab/netlab.ts";
import {
  addRelayCounters,
  type ChatEvent,
  exchange,
  labGate,
  type LabProcess,
  readRelayCounters,
  SERVER_PORT,
  startChat,
  waitForPath,
  withPair,
} from "./support/lab_chat.ts";

const { ignore, requireLab } = await labGate("Port mapping");
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The chat's `port-mapping` event that names an endpoint. */
function mapped(chat: LabProcess, timeoutMs = 10_000): Promise<ChatEvent> {
  return chat.event(
    (e) => e.event === "port-mapping" && typeof e.endpoint === "string",
    timeoutMs,
    "port-mapping with an endpoint",
  );
}

/** Waits until miniupnpd holds no redirect any more (the chat deleted its mapping). */
async function waitForNoRedirects(upnp: Miniupnpd, timeoutMs: number): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  let rules = await upnp.redirects();
  while (rules.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    rules = await upnp.redirects();
  }
  return rules;
}

for (const protocol of ["pcp", "upnp"] as const) {
  Deno.test({
    name:
      `portmap: symmetric ↔ symmetric, ${protocol} on one router: direct to the mapped endpoint`,
    ignore,
  }, async () => {
    requireLab();
    await withPair("symmetric/symmetric", async (s) => {
      const [ra] = s.routers;
      // miniupnpd serves PCP first; without NAT-PMP/PCP, only UPnP-IGD is left.
      const upnp = await s.lab.startMiniupnpd(ra, { stunHost: s.srv, natpmp: protocol === "pcp" });
      await addRelayCounters(s);
      const chat = await startChat(s);
      const m = await mapped(chat.alice);
      const host = String(m.endpoint).split(":")[0];
      assert.equal(host, ra.publicIp, "mapped on the router's public address");
      assert.equal(m.protocol, protocol);
      assert.equal((await upnp.redirects()).length, 1, "miniupnpd holds one redirect");

      const started = performance.now();
      await exchange(chat.alice, chat.bob, "hello through the mapping");
      const atBob = await waitForPath(chat.bob, "alice", "direct", 10_000);
      await waitForPath(chat.alice, "bob", "direct", 10_000);
      const tookMs = performance.now() - started;
      console.log(`symmetric ↔ symmetric, ${protocol}: direct in ${Math.round(tookMs)} ms`);
      assert.equal(atBob.endpoint, m.endpoint, "bob reaches alice at her mapped endpoint");
      const before = await readRelayCounters(s);
      assert.equal((await exchange(chat.alice, chat.bob, "direct a→b")).path, "direct");
      assert.equal((await exchange(chat.bob, chat.alice, "direct b→a")).path, "direct");
      assert.deepEqual(await readRelayCounters(s), before, "the relay carried none of it");

      // At exit, the chat deletes its mapping.
      await chat.alice.closeStdin();
      await chat.alice.wait(15_000);
      assert.deepEqual(await waitForNoRedirects(upnp, 2_000), [], "mapping deleted at exit");
      await upnp.stop();
    });
  });
}

Deno.test({
  name: "portmap: home ↔ symmetric, miniupnpd on the symmetric router: direct, no birthday search",
  ignore,
}, async () => {
  requireLab();
  await withPair("home/symmetric", async (s) => {
    const [ra, rb] = s.routers;
    await s.lab.startMiniupnpd(rb, { stunHost: s.srv });
    // Every datagram between the two peers' hosts, as it enters their routers (before NAT): a
    // birthday search sends hundreds (1024 sprayed, or 256 sockets twice).
    await s.lab.addCounter(ra, "atob", `ip saddr ${s.a.ip} ip daddr ${rb.publicIp}`);
    await s.lab.addCounter(rb, "btoa", `ip saddr ${s.b.ip} ip daddr ${ra.publicIp}`);
    const chat = await startChat(s);
    const m = await mapped(chat.bob);
    const started = performance.now();
    await exchange(chat.alice, chat.bob, "hello, symmetric bob");
    const atAlice = await waitForPath(chat.alice, "bob", "direct", 10_000);
    await waitForPath(chat.bob, "alice", "direct", 10_000);
    const tookMs = performance.now() - started;
    assert.equal(atAlice.endpoint, m.endpoint, "alice reaches bob at his mapped endpoint");
    assert.equal((await exchange(chat.bob, chat.alice, "direct back")).path, "direct");
    const sent = (await s.lab.readCounter(ra, "atob")).packets +
      (await s.lab.readCounter(rb, "btoa")).packets;
    assert.ok(sent < 150, `${sent} datagrams between the peers: a birthday search ran`);
    console.log(
      `home ↔ symmetric with a mapping: direct in ${Math.round(tookMs)} ms, ${sent} datagrams`,
    );
  });
});

Deno.test({
  name: "portmap: a router that answers nothing: a short wait, then the chat as before (relay)",
  ignore,
}, async () => {
  requireLab();
  await withPair("symmetric/symmetric", async (s) => {
    // No miniupnpd, and not even an ICMP error: requests to ports 5351 and 1900 vanish.
    for (const r of s.routers) {
      await s.lab.exec(r, ["nft", "insert rule ip p2plab input udp dport { 1900, 5351 } drop"], {
        check: true,
      });
    }
    await addRelayCounters(s);
    const chat = await startChat(s);
    const ready = chat.alice.events.items.find((e) => e.event === "ready")!;
    const failed = await chat.alice.event(
      (e) => e.event === "port-mapping" && e.endpoint === undefined,
      10_000,
      "port-mapping failure",
    );
    const waitedMs = failed.at - ready.at;
    // 750 ms each for PCP and NAT-PMP, 1 s for UPnP's SSDP search.
    assert.ok(waitedMs < 4_000, `the attempt took ${Math.round(waitedMs)} ms`);
    assert.match(String(failed.reason), /PCP: no answer.*NAT-PMP: no answer.*UPnP: no SSDP/);
    console.log(`a silent router: port mapping gave up after ${Math.round(waitedMs)} ms`);
    assert.equal((await exchange(chat.alice, chat.bob, "still chatting")).path, "relay");
    assert.equal((await exchange(chat.bob, chat.alice, "yes, relayed")).path, "relay");
    const relay = await readRelayCounters(s);
    assert.ok(relay.relay > 0 && relay.relayed > 0, JSON.stringify(relay));
  });
});

Deno.test({
  name: "portmap: p2p nat reports what the router offers, and deletes the mapping again",
  ignore,
}, async () => {
  requireLab();
  await withPair("symmetric/symmetric", async (s) => {
    const [ra] = s.routers;
    const upnp = await s.lab.startMiniupnpd(ra, { stunHost: s.srv });
    await startChat(s);
    const r = await s.lab.exec(s.a, [
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "nat",
      `${s.srv.ip}:${SERVER_PORT}`,
    ], { env: { NO_COLOR: "1" }, timeoutMs: 30_000 });
    console.log(r.stdout);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `port mapping: +${ra.publicIp.replaceAll(".", "\\.")}:\\d+ by PCP, lifetime \\d+ s`,
      ),
    );
    // Alice's chat holds its own mapping; the one of p2p nat's socket must be gone.
    const natPort = /local endpoint: +[\d.]+:(\d+)/.exec(r.stdout)?.[1];
    const left = (await upnp.redirects()).filter((l) => l.includes(`dport ${natPort} `));
    assert.deepEqual(left, [], "p2p nat leaves no mapping");
  });
});
