import assert from "node:assert/strict";
import {
  DGRAM_RECEIVE_BYTES,
  normalizeHost,
  type UdpBackend,
  UdpSocket,
} from "../../lib/net/udp.ts";
import { PROBE_SIZES } from "../../lib/peer/path_mtu.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { Collector } from "../support/wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

for (const backend of ["dgram", "deno"] as UdpBackend[]) {
  Deno.test(`${backend}: datagrams both ways, with the sender's endpoint; close waits for sends`, async () => {
    const a = await UdpSocket.bind({ host: "127.0.0.1", backend });
    const b = await UdpSocket.bind({ host: "127.0.0.1", backend: "dgram" });
    const got = new Collector<string>();
    const from = new Collector<Endpoint>();
    b.onMessage((data, sender) => {
      got.push(decoder.decode(data));
      from.push(sender);
    });
    try {
      const local = a.local;
      assert.equal(local.host, "127.0.0.1");
      assert.ok(local.port > 0);
      // 200: within what b's receive buffer holds (~256 small datagrams) while it cannot read.
      for (let i = 0; i < 200; i++) a.send(encoder.encode(`m${i}`), b.local);
      // On Linux the deno backend sends with sendto(2) itself: out at once, nothing to count.
      const sentAtOnce = backend === "deno" && a.receiveBuffer !== undefined;
      assert.equal(a.inFlight, sentAtOnce ? 0 : 200, "counted until out");
      await a.close();
      assert.equal(a.inFlight, 0, "close waited for every send");
      a.send(encoder.encode("late"), b.local); // ignored
      await got.waitFor((m) => m === "m199");
      // sendto(2) sends each one in order, before send() returns.
      if (sentAtOnce) {
        assert.deepEqual(got.items.slice(0, 200), [...Array(200).keys()].map((i) => `m${i}`));
      }
      assert.deepEqual(from.items[0], local);
      assert.ok(!got.items.includes("late"));
    } finally {
      await a.close();
      await b.close();
    }
  });

  Deno.test(`${backend}: whenInFlightAtMost calls back once the queue has run low`, async () => {
    const a = await UdpSocket.bind({ host: "127.0.0.1", backend });
    const sink = await UdpSocket.bind({ host: "127.0.0.1" });
    try {
      let calls = 0;
      let seen = -1;
      const low = Promise.withResolvers<void>();
      for (let i = 0; i < 500; i++) a.send(new Uint8Array(100), sink.local);
      a.whenInFlightAtMost(50, () => {
        calls++;
        seen = a.inFlight;
        low.resolve();
      });
      await low.promise;
      assert.ok(seen <= 50, `${seen} in flight`);
      await a.close();
      assert.equal(calls, 1);
      // Already low: in a turn of the event loop of its own, after what is waiting (not a
      // microtask, which would let a sender's slices run back to back).
      let soon = false;
      const b = await UdpSocket.bind({ host: "127.0.0.1", backend });
      b.whenInFlightAtMost(0, () => soon = true);
      assert.ok(!soon);
      await Promise.resolve();
      assert.ok(!soon, "not in a microtask");
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.ok(soon);
      await b.close();
    } finally {
      await a.close();
      await sink.close();
    }
  });
}

Deno.test("deno: the handler's data is lent (one receive buffer); a TTL is refused", async () => {
  const a = await UdpSocket.bind({ host: "127.0.0.1", backend: "deno" });
  const b = await UdpSocket.bind({ host: "127.0.0.1" });
  const kept: Uint8Array[] = [];
  const got = new Collector<string>();
  a.onMessage((data) => {
    kept.push(data);
    got.push(decoder.decode(data));
  });
  try {
    b.send(encoder.encode("first"), a.local);
    await got.waitFor((m) => m === "first");
    b.send(encoder.encode("again"), a.local);
    await got.waitFor((m) => m === "again");
    assert.equal(kept[0].buffer, kept[1].buffer, "the same buffer, reused");
    assert.throws(() => a.send(new Uint8Array(1), b.local, { ttl: 2 }), TypeError);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("dgram: each datagram comes in a buffer of DGRAM_RECEIVE_BYTES, not Deno's 64 KiB", async () => {
  // What a file transfer's receiver keeps per datagram until V8 collects it (docs/FILES.md "RSS").
  // This fails if a Deno upgrade changes what node:dgram's setRecvBufferSize does.
  assert.equal(DGRAM_RECEIVE_BYTES, Math.max(...PROBE_SIZES), "p2p's largest datagram fits");
  const a = await UdpSocket.bind({ host: "127.0.0.1" });
  const b = await UdpSocket.bind({ host: "127.0.0.1" });
  const got = new Collector<Uint8Array>();
  b.onMessage((data) => got.push(data));
  try {
    // The first receive was under way before the size was set: it may still have 64 KiB.
    a.send(new Uint8Array(1), b.local);
    await got.waitFor(() => got.items.length === 1);
    a.send(new Uint8Array(DGRAM_RECEIVE_BYTES).fill(7), b.local);
    // A longer one is cut short, except on Windows, which drops it with a receive error.
    const cuts = Deno.build.os !== "windows";
    if (cuts) a.send(new Uint8Array(DGRAM_RECEIVE_BYTES + 100).fill(8), b.local);
    await got.waitFor(() => got.items.length === (cuts ? 3 : 2));
    const [whole, cut] = got.items.slice(1);
    assert.equal(whole.length, DGRAM_RECEIVE_BYTES, "the largest datagram arrives whole");
    assert.equal(whole[DGRAM_RECEIVE_BYTES - 1], 7);
    assert.equal(whole.buffer.byteLength, DGRAM_RECEIVE_BYTES);
    if (cuts) assert.equal(cut.length, DGRAM_RECEIVE_BYTES, "a longer one is cut short");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("dgram: a datagram leaves during send(), not on a later tick", async () => {
  // The deno backend's sends leave at once: a dgram send made just before one must arrive first.
  // (node:dgram looked up an IP address on the next tick, and sent only then.)
  const dgramSide = await UdpSocket.bind({ host: "127.0.0.1" });
  const denoSide = await UdpSocket.bind({ host: "127.0.0.1", backend: "deno" });
  const sink = await UdpSocket.bind({ host: "127.0.0.1" });
  const got = new Collector<string>();
  sink.onMessage((data) => got.push(decoder.decode(data)));
  try {
    denoSide.send(encoder.encode("warm"), sink.local); // its first send sets up on a later tick
    dgramSide.send(encoder.encode("warm"), sink.local);
    await got.waitFor(() => got.items.length === 2);
    for (let i = 0; i < 10; i++) {
      dgramSide.send(encoder.encode(`dgram ${i}`), sink.local);
      denoSide.send(encoder.encode(`deno ${i}`), sink.local);
    }
    await got.waitFor(() => got.items.length === 22);
    const order = got.items.slice(2);
    const expected = Array.from({ length: 10 }, (_, i) => [`dgram ${i}`, `deno ${i}`]).flat();
    assert.deepEqual(order, expected);
  } finally {
    await dgramSide.close();
    await denoSide.close();
    await sink.close();
  }
});

Deno.test("a taken port is refused by both backends", async () => {
  const a = await UdpSocket.bind({ host: "127.0.0.1" });
  try {
    for (const backend of ["dgram", "deno"] as UdpBackend[]) {
      await assert.rejects(UdpSocket.bind({ host: "127.0.0.1", port: a.local.port, backend }));
    }
  } finally {
    await a.close();
  }
});

Deno.test("normalizeHost strips the IPv4-mapped prefix only", () => {
  assert.equal(normalizeHost("::ffff:192.0.2.1"), "192.0.2.1");
  assert.equal(normalizeHost("::ffff:c000:201"), "::ffff:c000:201");
  assert.equal(normalizeHost("2001:db8::1"), "2001:db8::1");
  assert.equal(normalizeHost("192.0.2.1"), "192.0.2.1");
});

/** Whether tcpdump can capture here (root, and installed: CI installs it). */
async function canCapture(): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  try {
    const out = await new Deno.Command("tcpdump", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "dgram: a datagram sent just before a low-TTL one keeps the default TTL (tcpdump on lo)",
  ignore: !(await canCapture()),
  fn: async () => {
    const a = await UdpSocket.bind({ host: "127.0.0.1", backend: "dgram" });
    const b = await UdpSocket.bind({ host: "127.0.0.1", backend: "dgram" });
    const got = new Collector<string>();
    b.onMessage((data) => got.push(decoder.decode(data)));
    const dump = new Deno.Command("tcpdump", {
      args: [
        "-i",
        "lo",
        "-n",
        "-v",
        "-l",
        "-c",
        "3",
        // This pair only: another program on the machine may use b's port number elsewhere.
        `udp and src host 127.0.0.1 and src port ${a.local.port} and dst host 127.0.0.1 and ` +
        `dst port ${b.local.port}`,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      await new Promise((r) => setTimeout(r, 1000)); // tcpdump is listening
      // In one turn, as a chat does when it primes right after sending a frame.
      a.send(encoder.encode("plain-before"), b.local);
      a.send(encoder.encode("low-ttl"), b.local, { ttl: 2 });
      a.send(encoder.encode("plain-after"), b.local);
      await got.waitFor((m) => m === "plain-after");
      const text = new TextDecoder().decode((await dump.output()).stdout);
      const ttls = [...text.matchAll(/\bttl (\d+)/g)].map((m) => Number(m[1]));
      assert.deepEqual(ttls, [64, 2, 64], text);
      assert.deepEqual(got.items, ["plain-before", "low-ttl", "plain-after"]);
    } finally {
      try {
        dump.kill();
      } catch { /* already exited */ }
      await dump.status;
      await a.close();
      await b.close();
    }
  },
});

Deno.test("deno: sends queued in Deno go out before later ones, and are counted until out", async () => {
  const errors: string[] = [];
  const a = await UdpSocket.bind({
    host: "127.0.0.1",
    backend: "deno",
    onError: (err) => errors.push(err.message),
  });
  const b = await UdpSocket.bind({ host: "127.0.0.1", backend: "dgram" });
  const got = new Collector<string>();
  b.onMessage((data) => got.push(decoder.decode(data)));
  try {
    // Port 0 is no destination: Deno takes it (and fails it), so it waits in Deno's queue, and
    // so do the sends after it until it is out; then (on Linux) sendto(2) sends the rest.
    a.send(encoder.encode("nowhere"), { host: "127.0.0.1", port: 0 });
    for (let i = 0; i < 100; i++) a.send(encoder.encode(`m${i}`), b.local);
    assert.equal(a.inFlight, 101, "behind one in Deno's queue, every send waits there");
    const low = Promise.withResolvers<number>();
    a.whenInFlightAtMost(0, () => low.resolve(a.inFlight));
    assert.equal(await low.promise, 0);
    for (let i = 100; i < 200; i++) a.send(encoder.encode(`m${i}`), b.local);
    await got.waitFor((m) => m === "m199");
    const names = (from: number, to: number) =>
      [...Array(to - from).keys()].map((i) => `m${from + i}`);
    // Deno's queue sends a burst in any order (last first, here); all before the later sends.
    assert.deepEqual(got.items.slice(0, 100).sort(), names(0, 100).sort());
    if (a.receiveBuffer !== undefined) {
      assert.deepEqual(got.items.slice(100, 200), names(100, 200), "sendto(2): in order");
    }
    assert.equal(errors.length, 1, "the send to port 0 was reported");
  } finally {
    await a.close();
    await b.close();
  }
});
