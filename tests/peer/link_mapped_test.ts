// A router's mapping makes the birthday search pointless: the hard side opens no sockets for one
// when it is mapped itself or when its peer announced a mapped endpoint.
import assert from "node:assert/strict";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import type { Candidate } from "../../lib/peer/traversal.ts";
import type { LinkTransport } from "../../lib/peer/link.ts";
import { Links } from "../../lib/peer/links.ts";
import { ProbeQuota } from "../../lib/peer/probe_quota.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** A hard-NAT link introduced to an easy peer; how many sockets it asked for. */
function hardSide(options: { mapped: boolean; candidates: Candidate[] }): number {
  const clock = new FakeClock();
  let opened = 0;
  const transport: LinkTransport = {
    sendTo: () => {},
    sendViaRelay: () => {},
    openSockets: (count) => {
      opened += count;
      return Promise.reject(new Error("not in this test"));
    },
    closeSockets: () => {},
    localNat: () => "hard",
    mapped: () => options.mapped,
    requestIntroduction: () => {},
  };
  const links = new Links({
    me: "hard",
    staticKeyPair: generateKeyPair(),
    instanceId: 1,
    clock,
    quota: new ProbeQuota(),
    wiring: () => ({
      verifyKey: () => true,
      transport,
      events: { onMessage() {}, onDelivered() {}, onUndelivered() {}, onPath() {} },
    }),
  });
  links.open("easy").introduce({
    candidates: options.candidates,
    key: generateKeyPair().publicKey,
    token: crypto.getRandomValues(new Uint8Array(16)),
    nat: "easy",
  });
  clock.advance(1000);
  links.closeAll("done");
  return opened;
}

const PUBLIC: Candidate = { kind: "public", endpoint: { host: "198.51.100.7", port: 4000 } };

Deno.test("link: no birthday search when we are mapped or the peer announced a mapping", () => {
  assert.ok(hardSide({ mapped: false, candidates: [PUBLIC] }) > 0, "unmapped: a search");
  assert.equal(hardSide({ mapped: true, candidates: [PUBLIC] }), 0, "we are mapped");
  const theirs: Candidate = { kind: "mapped", endpoint: { host: "198.51.100.7", port: 41000 } };
  assert.equal(hardSide({ mapped: false, candidates: [PUBLIC, theirs] }), 0, "they are mapped");
});
