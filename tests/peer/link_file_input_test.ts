/**
 * A peer with a session that floods us with file segments faster than the link hands them on
 * (FILE_SLICE per turn): what waits is capped at the file channel's receive window.
 */
import assert from "node:assert/strict";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import { Handshake, type HandshakeFrame } from "../../lib/peer/handshake.ts";
import { FILE_CHANNEL, Link } from "../../lib/peer/link.ts";
import { decodeFrame, frameHeader, FrameType } from "../../lib/protocol/frame.ts";
import { encodeSegment } from "../../lib/protocol/segment.ts";
import { Collector } from "../support/wait.ts";

/** The file channel's receive window in segments (link.ts FILE_RECEIVE_WINDOW). */
const WINDOW = 1024;

Deno.test("file segments flooding in faster than handled: a receive window's worth waits, the rest is dropped and counted", async () => {
  const keys = { alice: generateKeyPair(), bob: generateKeyPair() };
  const token = crypto.getRandomValues(new Uint8Array(16));
  const relayed = new Collector<Uint8Array>();
  const files = new Collector<Uint8Array>();
  const alice = new Link({
    me: "alice",
    peer: "bob",
    staticKeyPair: keys.alice,
    instanceId: 1,
    verifyKey: () => true,
    transport: {
      sendTo: () => {},
      sendViaRelay: (frame) => relayed.push(frame),
      openSockets: () => Promise.reject(new Error("no extra sockets here")),
      closeSockets: () => {},
      localNat: () => undefined,
      requestIntroduction: () => {},
    },
    pathOptions: { directCandidates: false, relayAfterMs: 1 },
    events: {
      onMessage: () => {},
      onDelivered: () => {},
      onUndelivered: () => {},
      onPath: () => {},
      onFileFrame: (data) => files.push(data.slice()),
    },
  });
  try {
    // Bob, driven by hand through the relay: a handshake, then whatever he likes to send.
    const bob = new Handshake({
      me: "bob",
      peer: "alice",
      staticKeyPair: keys.bob,
      instanceId: 2,
      verifyKey: () => true,
    });
    bob.introduce(keys.alice.publicKey, token);
    alice.introduce({ candidates: [], key: keys.bob.publicKey, token });
    const hs1 = await relayed.waitFor((f) => decodeFrame(f).type === "hs1");
    alice.receive(decodeFrame(bob.receive(decodeFrame(hs1) as HandshakeFrame).send!), "relay");
    const hs3 = await relayed.waitFor((f) => decodeFrame(f).type === "hs3");
    const { session } = bob.receive(decodeFrame(hs3) as HandshakeFrame).established!;
    // 1,500 one-segment file frames in one turn: more than any window lets an honest sender have
    // in flight.
    const header = frameHeader(FrameType.DATA, "bob");
    const flood = 1_500;
    for (let seq = 0; seq < flood; seq++) {
      const segment = encodeSegment({
        type: "data",
        streamId: 7,
        seq,
        base: 0,
        tx: seq,
        end: true,
        payload: Uint8Array.of(seq >> 8, seq & 0xff),
      });
      const sealed = session.seal([Uint8Array.of(FILE_CHANNEL), segment], header, {
        prefix: header,
      });
      alice.receive(decodeFrame(sealed), "relay");
    }
    assert.equal(alice.stats.fileSegmentsDropped, flood - WINDOW);
    // What waited is handed on in the following turns, in order.
    await files.waitFor(() => files.items.length === WINDOW, 10_000, `${WINDOW} file frames`);
    const last = files.items.at(-1)!;
    assert.deepEqual(last, Uint8Array.of((WINDOW - 1) >> 8, (WINDOW - 1) & 0xff));
  } finally {
    alice.close("test over");
  }
});
