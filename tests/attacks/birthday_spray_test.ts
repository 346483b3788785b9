/**
 * Attack: names that claim a symmetric NAT make an easy-NAT victim spray its birthday probes at
 * their address (issue 18: five names made a victim spray 5,424 probes, 148 KB, at 4,973 ports in
 * 22 s). Now a spray waits for the hard side's proof that it holds that address, and a client
 * sprays at most 2,048 probes in 10 minutes whatever the number of names.
 *
 * This runs the victim's real links, made as its client makes them (one `Links`, one probe quota
 * for all), on a fake clock with a transport that records what would be sent instead of sending
 * it: on loopback the spray would go to random ports of a local address, where other programs'
 * sockets listen.
 */
import assert from "node:assert/strict";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import type { LinkTransport } from "../../lib/peer/link.ts";
import { Links } from "../../lib/peer/links.ts";
import { ProbeQuota } from "../../lib/peer/probe_quota.ts";
import { decodeFrame, encodeFrame, frameHeader, FrameType } from "../../lib/protocol/frame.ts";
import { FakeClock } from "../support/fake_clock.ts";

const ATTACKER = "203.0.113.66";

/** The victim's links to `names`, each introduced as behind a symmetric NAT at ATTACKER. */
function victim(names: string[]) {
  const clock = new FakeClock();
  const sent = { probes: 0, bytes: 0, ports: new Set<number>() };
  const all = new Links({
    me: "victim",
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
  const transport: LinkTransport = {
    sendTo: (frame, to) => {
      if (to.host !== ATTACKER) return;
      sent.probes++;
      sent.bytes += frame.length;
      sent.ports.add(to.port);
    },
    sendViaRelay: () => {},
    openSockets: () => Promise.reject(new Error("an easy-NAT victim opens no sockets")),
    closeSockets: () => {},
    localNat: () => "easy",
    requestIntroduction: () => {},
  };
  const links = names.map((peer) => {
    const link = all.open(peer);
    const token = crypto.getRandomValues(new Uint8Array(16));
    link.introduce({
      candidates: [{ kind: "public", endpoint: { host: ATTACKER, port: 4000 } }],
      key: generateKeyPair().publicKey,
      token,
      nat: "hard",
    });
    return { link, peer, token };
  });
  return { clock, sent, links };
}

/** A probe from `name` with a valid MAC, as the attacker (who holds the token) can send. */
function probe(name: string, token: Uint8Array) {
  const header = frameHeader(FrameType.PROBE, name);
  const msg = new Uint8Array([...header, 0, 0, 0, 1]);
  const mac = hmac(sha256, token, msg).subarray(0, 16);
  return decodeFrame(encodeFrame({ type: "probe", from: name, txid: 1, mac }));
}

const NAMES = ["m1", "m2", "m3", "m4", "m5"];

Deno.test("attack: five names claiming a symmetric NAT, no proof: nothing sprayed", () => {
  const { clock, sent, links } = victim(NAMES);
  for (let t = 0; t < 22; t++) clock.advance(1000);
  console.log(`no proof: ${sent.probes} probes (${sent.bytes} bytes) at ${sent.ports.size} ports`);
  for (const { link } of links) link.close("test over");
  // The normal search of each link's one public candidate: 32 probes at most, on one port.
  assert.ok(sent.ports.size <= 1, `${sent.ports.size} ports probed`);
  assert.ok(sent.probes <= 32, `${sent.probes} probes`);
});

Deno.test("attack: five names that send the proof through the relay: 2,048 sprayed probes at most", () => {
  const { clock, sent, links } = victim(NAMES);
  for (const { link, peer, token } of links) link.receive(probe(peer, token), "relay");
  for (let t = 0; t < 22; t++) clock.advance(1000);
  console.log(`proof: ${sent.probes} probes (${sent.bytes} bytes) at ${sent.ports.size} ports`);
  for (const { link } of links) link.close("test over");
  assert.ok(sent.probes <= 2048 + 32, `${sent.probes} probes`);
  assert.ok(sent.bytes <= (2048 + 32) * 28, `${sent.bytes} bytes`); // 28-byte probes
});
