import assert from "node:assert/strict";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import { Link, type LinkTransport } from "../../lib/peer/link.ts";
import type { PathFinderOptions } from "../../lib/peer/traversal.ts";
import { BASE_DATAGRAM } from "../../lib/peer/path_mtu.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { decodeFrame } from "../../lib/protocol/frame.ts";
import { Collector } from "../support/wait.ts";

const AT = { alice: { host: "192.0.2.1", port: 1000 }, bob: { host: "192.0.2.2", port: 2000 } };
type Name = keyof typeof AT;

/**
 * Two links on an in-memory wire that drops every datagram above `wire.limit` bytes (a path MTU),
 * or every one when `wire.direct` is false, and records the sizes of the DATA datagrams alice
 * sends; the relay between them drops datagrams above 1,500 bytes, as the coordinator does.
 */
function pair(options: { pathOptions?: Partial<PathFinderOptions> } = {}) {
  const keys = { alice: generateKeyPair(), bob: generateKeyPair() };
  const wire = {
    limit: Infinity,
    direct: true,
    aliceData: [] as number[],
    relayed: [] as number[],
  };
  const files = new Collector<Uint8Array>();
  const settled = new Collector<string>();
  const secured = new Collector<string>();
  const paths = new Collector<string>();
  const links = {} as Record<Name, Link>;
  for (const me of ["alice", "bob"] as const) {
    const peer: Name = me === "alice" ? "bob" : "alice";
    const transport: LinkTransport = {
      sendTo: (frame, to: Endpoint) => {
        if (to.host !== AT[peer].host || frame.length > wire.limit || !wire.direct) return;
        if (me === "alice" && decodeFrame(frame).type === "data") wire.aliceData.push(frame.length);
        setTimeout(() => links[peer].receive(decodeFrame(frame), AT[me]), 1);
      },
      sendViaRelay: (frame) => {
        if (me === "alice") wire.relayed.push(frame.length);
        if (frame.length > 1_500) return; // the coordinator's maxDatagramBytes
        setTimeout(() => links[peer].receive(decodeFrame(frame), "relay"), 1);
      },
      openSockets: () => Promise.reject(new Error("no extra sockets here")),
      closeSockets: () => {},
      localNat: () => undefined,
      requestIntroduction: () => {},
    };
    links[me] = new Link({
      me,
      peer,
      staticKeyPair: keys[me],
      instanceId: me === "alice" ? 1 : 2,
      verifyKey: () => true,
      transport,
      pathOptions: options.pathOptions,
      events: {
        onMessage: () => {},
        onDelivered: () => {},
        onUndelivered: () => {},
        onPath: (path) => paths.push(`${me} ${path.kind === "direct" ? path.via : path.kind}`),
        onFileFrame: (data) => files.push(data.slice()),
        onFileSettled: (id, reason) => settled.push(`${id} ${reason ?? "ok"}`),
        onSecured: (reset) => secured.push(reset ? `${me} reset` : me),
      },
    });
  }
  const token = crypto.getRandomValues(new Uint8Array(16));
  for (const me of ["alice", "bob"] as const) {
    const peer: Name = me === "alice" ? "bob" : "alice";
    const key = keys[peer].publicKey;
    links[me].introduce({ candidates: [{ kind: "public", endpoint: AT[peer] }], key, token });
  }
  const close = () => {
    for (const l of Object.values(links)) l.close("test over");
  };
  return { links, wire, files, settled, secured, paths, keys, token, close };
}

/** A 64 KiB file frame whose bytes say which one it is. */
function frame(n: number): Uint8Array {
  return new Uint8Array(64 * 1024).fill(n);
}

async function sendAll(p: ReturnType<typeof pair>, from: number, count: number): Promise<void> {
  for (let n = from; n < from + count; n++) p.links.alice.sendFile(frame(n));
  for (let n = from; n < from + count; n++) {
    const got = await p.files.waitFor((f) => f[0] === n, 10_000);
    assert.deepEqual(got, frame(n));
  }
}

Deno.test("file data grows to the largest probed datagram the path carries", async () => {
  const p = pair();
  try {
    await p.secured.waitFor((n) => n === "alice");
    await sendAll(p, 1, 3);
    await sendAll(p, 4, 3);
    assert.equal(p.links.alice.pathMtu.size, 16_384);
    assert.equal(Math.max(...p.wire.aliceData), 16_384, "data and the top probe fill 16 KiB");
    assert.deepEqual(p.links.alice.pathMtu.stats, {
      probesSent: 3,
      probesAcked: 3,
      sizesFailed: 0,
      blackHoles: 0,
    });
    assert.equal(p.links.bob.pathMtu.stats.probesSent, 0, "the receiver of files never probes");
  } finally {
    p.close();
  }
});

Deno.test("on a 1,500-byte path the search stops at 1,452 and the data gets through", async () => {
  const p = pair();
  p.wire.limit = 1472; // IPv4 over Ethernet
  try {
    await p.secured.waitFor((n) => n === "alice");
    await sendAll(p, 1, 2);
    assert.equal(p.links.alice.pathMtu.size, 1452);
    assert.ok(p.wire.aliceData.every((n) => n <= 1452));
    assert.equal(p.wire.aliceData.filter((n) => n === 1452).length > 40, true, "data at 1,452");
  } finally {
    p.close();
  }
});

Deno.test("a black hole: back to 1,200 at once, the stream in flight given up at once, later frames arrive", async () => {
  const p = pair(); // giveUpAfterMs 30 s: the frames in flight must not wait for it
  try {
    await p.secured.waitFor((n) => n === "alice");
    await sendAll(p, 1, 3);
    assert.equal(p.links.alice.pathMtu.size, 16_384);
    p.wire.limit = BASE_DATAGRAM; // the path shrinks under the transfer
    const since = Date.now();
    const stalled = p.links.alice.sendFile(frame(9));
    await p.settled.waitFor((s) => s.startsWith(`${stalled} `) && s !== `${stalled} ok`, 10_000);
    assert.ok(Date.now() - since < 5_000, `given up after ${Date.now() - since} ms`);
    assert.equal(
      p.secured.count((s) => s === "alice reset"),
      1,
      "transfers resume from the peer's",
    );
    assert.equal(p.links.alice.pathMtu.size, BASE_DATAGRAM);
    assert.ok(p.links.alice.pathMtu.stats.blackHoles >= 1);
    const mark = p.wire.aliceData.length;
    await sendAll(p, 10, 2);
    assert.ok(p.wire.aliceData.slice(mark).every((n) => n <= BASE_DATAGRAM));
  } finally {
    p.close();
  }
});

Deno.test("the direct path dies mid-transfer: the 16 KiB stream is given up at once, the relay carries the next", async () => {
  const p = pair({ pathOptions: { suspectAfterMs: 100, deadAfterMs: 300 } });
  try {
    await p.secured.waitFor((n) => n === "alice");
    await sendAll(p, 1, 3);
    assert.equal(p.links.alice.pathMtu.size, 16_384);
    p.wire.direct = false;
    const since = Date.now();
    const stalled = p.links.alice.sendFile(frame(9));
    await p.settled.waitFor((s) => s.startsWith(`${stalled} `) && s !== `${stalled} ok`, 10_000);
    assert.ok(Date.now() - since < 5_000, `given up after ${Date.now() - since} ms`);
    await p.paths.waitFor((s) => s === "alice relay");
    await p.paths.waitFor((s) => s === "bob relay");
    const mark = p.wire.relayed.length;
    await sendAll(p, 10, 1);
    assert.ok(p.wire.relayed.slice(mark).every((n) => n <= BASE_DATAGRAM));
  } finally {
    p.close();
  }
});

Deno.test("a relabelled path (the same endpoint and socket) keeps its datagram size", async () => {
  const p = pair();
  try {
    await p.secured.waitFor((n) => n === "alice");
    await sendAll(p, 1, 3);
    assert.equal(p.links.alice.pathMtu.size, 16_384);
    // A new introduction names bob's endpoint as a `lan` candidate: the path is relabelled.
    const key = p.keys.bob.publicKey;
    p.links.alice.introduce({
      candidates: [{ kind: "lan", endpoint: AT.bob }],
      key,
      token: p.token,
    });
    await p.paths.waitFor((s) => s === "alice lan");
    assert.equal(p.links.alice.pathMtu.size, 16_384);
    assert.equal(p.links.alice.pathMtu.stats.probesSent, 3, "no new search");
    const mark = p.wire.aliceData.length;
    await sendAll(p, 4, 1);
    assert.equal(Math.max(...p.wire.aliceData.slice(mark)), 16_384);
  } finally {
    p.close();
  }
});
