import assert from "node:assert/strict";
import { demuxDatagram } from "../../lib/peer/demux.ts";
import { encodeFrame } from "../../lib/protocol/frame.ts";
import { encodeServerMessage } from "../../lib/protocol/seed.ts";
import { encodeBindingRequest } from "../../lib/protocol/stun.ts";

const server = { host: "198.51.100.10", port: 7000 };
const alt = { host: "198.51.100.10", port: 7001 };
const stranger = { host: "203.0.113.9", port: 5555 };
const text = (s: string) => new TextEncoder().encode(s);
const data = encodeFrame({ type: "data", from: "bob", payload: new Uint8Array(30) });
const seen = { host: "192.0.2.7", port: 4000 };

Deno.test("demux: the coordinator's lines, all of them or none", () => {
  const got = demuxDatagram(text("Presence,1,2\n+carol,127.0.0.1:5\n"), server, { server });
  assert.equal(got?.kind, "coordinator");
  assert.deepEqual(got.kind === "coordinator" && got.messages.map((m) => m.type), [
    "presence",
    "online",
  ]);
  const bad = demuxDatagram(text("Presence,1,2\n+carol,127.0.0.1:5\nnonsense"), server, { server });
  assert.equal(bad?.kind, "malformed");
  // Text from anyone else is dropped.
  assert.equal(demuxDatagram(text("Alive,1.2.3.4:5"), stranger, { server }), undefined);
});

Deno.test("demux: the whoami answer counts only from the second port", () => {
  const you = text(encodeServerMessage({ type: "you", endpoint: seen }));
  assert.deepEqual(demuxDatagram(you, alt, { server }), { kind: "whoami", seen });
  assert.equal(demuxDatagram(text("nonsense"), alt, { server }), undefined);
  assert.equal(demuxDatagram(you, stranger, { server }), undefined);
});

Deno.test("demux: frames, direct and relayed; the coordinator's name and the inner one must agree", () => {
  const direct = demuxDatagram(data, stranger, { server });
  assert.ok(direct?.kind === "frame" && direct.frame.type === "data");
  assert.equal(direct.via, stranger);
  const relayed = encodeFrame({ type: "relayed", from: "bob", inner: data });
  const viaRelay = demuxDatagram(relayed, server, { server });
  assert.ok(viaRelay?.kind === "frame" && viaRelay.frame.from === "bob");
  assert.equal(viaRelay.via, "relay");
  // Not from the coordinator, or naming someone else, or nested: dropped.
  assert.equal(demuxDatagram(relayed, stranger, { server }), undefined);
  const lying = encodeFrame({ type: "relayed", from: "carol", inner: data });
  assert.equal(demuxDatagram(lying, server, { server }), undefined);
  const nested = encodeFrame({ type: "relayed", from: "bob", inner: relayed });
  assert.equal(demuxDatagram(nested, server, { server }), undefined);
  // A RELAY request is for the coordinator, never for us; a malformed frame is dropped.
  const relay = encodeFrame({ type: "relay", to: "alice", inner: data });
  assert.equal(demuxDatagram(relay, server, { server }), undefined);
  assert.equal(demuxDatagram(data.subarray(0, 3), stranger, { server }), undefined);
});

Deno.test("demux: an extra socket of a birthday search takes direct frames only", () => {
  const opts = { server, extraSocket: true };
  const got = demuxDatagram(data, stranger, opts);
  assert.ok(got?.kind === "frame" && got.via === stranger);
  assert.equal(demuxDatagram(text("Alive,1.2.3.4:5"), server, opts), undefined);
  const relayed = encodeFrame({ type: "relayed", from: "bob", inner: data });
  assert.equal(demuxDatagram(relayed, server, opts), undefined);
});

Deno.test("demux: STUN from anyone is STUN (the NAT detector judges it); never a frame", () => {
  const stun = encodeBindingRequest({ transactionId: new Uint8Array(12) });
  for (const from of [server, stranger]) {
    assert.deepEqual(demuxDatagram(stun, from, { server }), { kind: "stun", data: stun });
  }
  assert.equal(demuxDatagram(stun, stranger, { server, extraSocket: true }), undefined);
  assert.equal(demuxDatagram(data, stranger, { server })?.kind, "frame");
});
