import assert from "node:assert/strict";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import type { LinkTransport } from "../../lib/peer/link.ts";
import { EARLY_PRIME_VALID_MS, Links } from "../../lib/peer/links.ts";
import { PER_ENDPOINT_PROBES, ProbeQuota } from "../../lib/peer/probe_quota.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** An address that never answers, which several names claim as their LAN endpoint. */
const BYSTANDER: Endpoint = { host: "192.0.2.77", port: 5000 };

/** A client's links on a fake clock, recording where probes go and what is reported. */
function links() {
  const clock = new FakeClock();
  const toBystander = { count: 0 };
  const reports: string[] = [];
  const transport: LinkTransport = {
    sendTo: (_frame, to) => {
      if (to.host === BYSTANDER.host && to.port === BYSTANDER.port) toBystander.count++;
    },
    sendViaRelay: () => {},
    openSockets: () => Promise.reject(new Error("no extra sockets here")),
    closeSockets: () => {},
    localNat: () => undefined,
    requestIntroduction: () => {},
  };
  const all = new Links({
    me: "victim",
    staticKeyPair: generateKeyPair(),
    instanceId: 1,
    clock,
    quota: new ProbeQuota(),
    wiring: (peer) => ({
      verifyKey: () => true,
      transport,
      events: {
        onMessage() {},
        onDelivered: (id) => reports.push(`${peer} delivered ${id}`),
        onUndelivered: (id, reason) => reports.push(`${peer} undelivered ${id}: ${reason}`),
        onPath() {},
      },
    }),
  });
  const introduce = (peer: string) =>
    all.open(peer).introduce({
      candidates: [
        { kind: "lan", endpoint: BYSTANDER },
        { kind: "public", endpoint: { host: "203.0.113.66", port: 4000 } },
      ],
      key: generateKeyPair().publicKey,
      token: crypto.getRandomValues(new Uint8Array(16)),
    });
  return { all, clock, toBystander, reports, introduce };
}

Deno.test("links: two links of one client share its probe quota", () => {
  const { all, clock, toBystander, introduce } = links();
  // One search probes the bystander 25 times: two names with a budget each would make it 50.
  introduce("m1");
  introduce("m2");
  for (let t = 0; t < 40; t++) clock.advance(1000);
  assert.equal(toBystander.count, PER_ENDPOINT_PROBES, "one budget for both names");
  all.closeAll("test over");
});

Deno.test("links: one link per peer, made on first need; paths, stats and closing", () => {
  const { all, reports } = links();
  assert.equal(all.get("bob"), undefined);
  assert.equal(all.pathTo("bob"), "none");
  const bob = all.open("bob");
  assert.equal(all.open("bob"), bob, "the same link again");
  assert.equal(all.get("bob"), bob);
  all.open("carol");
  assert.deepEqual(all.indirect(), ["bob", "carol"], "no direct path yet");
  assert.deepEqual(all.stats(), {
    badProbes: 0,
    badHandshakes: 0,
    keyMismatches: 0,
    badMacs: 0,
    replays: 0,
    cookiesSent: 0,
    handshakesLimited: 0,
    undecryptable: 0,
    badMessages: 0,
    fileSegmentsDropped: 0,
  });
  bob.send({ group: false, id: 1, text: "hi" });
  all.get("carol")!.send({ group: false, id: 2, text: "hi" });
  all.close("bob", "bob cannot be introduced");
  assert.equal(all.get("bob"), undefined);
  assert.deepEqual(reports, ["bob undelivered 1: bob cannot be introduced"]);
  all.closeAll("the client closed");
  assert.equal(all.get("carol"), undefined);
  assert.deepEqual(reports.slice(1), ["carol undelivered 2: the client closed"]);
});

Deno.test("links: early priming skips the priming delay of a new consent, only when fresh and matching", () => {
  const clock = new FakeClock();
  const sent: { peer: string; at: number; to: string; ttl: number | undefined }[] = [];
  const all = new Links({
    me: "alice",
    staticKeyPair: generateKeyPair(),
    instanceId: 1,
    clock,
    quota: new ProbeQuota(),
    wiring: (peer) => ({
      verifyKey: () => true,
      transport: {
        sendTo: (_frame, to, ttl) =>
          sent.push({ peer, at: clock.now(), to: `${to.host}:${to.port}`, ttl }),
        sendViaRelay: () => {},
        openSockets: () => Promise.reject(new Error("no extra sockets here")),
        closeSockets: () => {},
        localNat: () => undefined,
        requestIntroduction: () => {},
      },
      events: { onMessage() {}, onDelivered() {}, onUndelivered() {}, onPath() {} },
    }),
  });
  const pub = (port: number): Endpoint => ({ host: "203.0.113.66", port });
  const intro = (port: number, token: Uint8Array) => ({
    candidates: [{ kind: "public" as const, endpoint: pub(port) }],
    key: generateKeyPair().publicKey,
    token,
  });
  /** The TTLs `peer` sent within the next 60 ms, in order (undefined: a normal probe). */
  const ttlsOf = (peer: string): (number | undefined)[] => {
    const from = clock.now();
    clock.advance(60);
    return sent.filter((s) => s.peer === peer && s.at >= from && s.at < from + 60).map((s) =>
      s.ttl
    );
  };

  assert.equal(all.earlyPrime("bob", pub(4000)), 2, "the lowest priming TTL");
  clock.advance(30);
  const token = crypto.getRandomValues(new Uint8Array(16));
  all.introduce("bob", intro(4000, token));
  assert.deepEqual(ttlsOf("bob"), [undefined], "a normal probe at once");
  // A re-introduction (the same token: only one side asked) primes from the start again.
  assert.equal(all.earlyPrime("bob", pub(4000)), 2);
  all.introduce("bob", intro(4000, token));
  assert.deepEqual(ttlsOf("bob"), [2, 3], "no normal probe within the 100 ms delay");

  // Primed too long ago, or toward another endpoint than the introduced one: the classic start.
  all.earlyPrime("carol", pub(5000));
  clock.advance(EARLY_PRIME_VALID_MS + 1);
  all.introduce("carol", intro(5000, crypto.getRandomValues(new Uint8Array(16))));
  assert.deepEqual(ttlsOf("carol"), [2, 3]);
  all.earlyPrime("dave", pub(6000));
  all.introduce("dave", intro(6001, crypto.getRandomValues(new Uint8Array(16))));
  assert.deepEqual(ttlsOf("dave"), [2, 3]);
  all.closeAll("test over");

  const unprimed = new Links({
    me: "alice",
    staticKeyPair: generateKeyPair(),
    instanceId: 1,
    clock,
    quota: new ProbeQuota(),
    pathOptions: { primeTtls: [] },
    wiring: () => {
      throw new Error("no link is made");
    },
  });
  assert.equal(unprimed.earlyPrime("bob", pub(4000)), undefined, "priming is off");
});
