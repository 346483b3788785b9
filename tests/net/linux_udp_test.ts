import assert from "node:assert/strict";
import { LinuxUdp, procAddress, socketInode } from "../../lib/net/linux_udp.ts";
import { UdpSocket } from "../../lib/net/udp.ts";
import { Collector } from "../support/wait.ts";

/** Whether this machine gives sockets a descriptor through libc (Linux, glibc, `-A`). */
function hasNative(): boolean {
  if (Deno.build.os !== "linux") return false;
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    return LinuxUdp.find(probe.addr as Deno.NetAddr) !== undefined;
  } finally {
    probe.close();
  }
}
const native = hasNative();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("procAddress writes an address as /proc/net/udp{,6} does (little-endian words)", () => {
  assert.equal(procAddress("127.0.0.1", 7000), "0100007F:1B58");
  assert.equal(procAddress("0.0.0.0", 53), "00000000:0035");
  assert.equal(procAddress("::", 7000), `${"0".repeat(32)}:1B58`);
  assert.equal(procAddress("::1", 1), `${"0".repeat(24)}01000000:0001`);
  assert.equal(
    procAddress("2001:db8::5", 443),
    "B80D0120000000000000000005000000:01BB",
  );
});

Deno.test("socketInode takes the one socket at an address, and none of two", () => {
  const head =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  " +
    "timeout inode ref pointer drops";
  const row = (sl: number, local: string, inode: number) =>
    `  ${sl}: ${local} 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 ` +
    `${inode} 2 0000000000000000 0`;
  const table = [head, row(1, "0100007F:1B58", 111), row(2, "00000000:1B59", 222), ""].join("\n");
  assert.equal(socketInode(table, "0100007F:1B58"), "111");
  assert.equal(socketInode(table, "00000000:1B59"), "222");
  assert.equal(socketInode(table, "0100007F:1B59"), undefined);
  const reused = [head, row(1, "0100007F:1B58", 111), row(2, "0100007F:1B58", 333)].join("\n");
  assert.equal(socketInode(reused, "0100007F:1B58"), undefined, "SO_REUSEPORT: not guessed");
});

Deno.test({
  name: "Linux: the receive buffer asked for is granted (up to rmem_max) and holds a burst",
  ignore: !native,
  fn: async () => {
    const rmemMax = Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_max"));
    const ask = 2 * 1024 * 1024;
    const receiver = await UdpSocket.bind({
      host: "127.0.0.1",
      backend: "deno",
      receiveBufferBytes: ask,
    });
    const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      // Linux doubles what it grants (its bookkeeping), and grants at most rmem_max.
      const granted = receiver.receiveBuffer!;
      assert.equal(granted, 2 * Math.min(ask, rmemMax));
      const sending = LinuxUdp.find(sender.addr as Deno.NetAddr);
      assert.ok(sending, "the sender's descriptor is found");
      let got = 0;
      receiver.onMessage(() => got++);
      // Sent with sendto(2) in one turn: the receiver reads none of them until the turn ends, so
      // all must fit in its buffer at once (~830 bytes each on loopback). The system's default
      // buffer (208 KiB) holds 256: a burst past that shows the buffer grew, whatever rmem_max is.
      const burst = Math.min(1_500, Math.floor(granted / 900));
      assert.ok(burst > 256, `a buffer of ${granted} bytes is no larger than the default`);
      for (let i = 0; i < burst; i++) {
        assert.ok(sending.send(new Uint8Array(120), receiver.local), `send ${i}`);
      }
      const deadline = Date.now() + 5_000;
      while (got < burst && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(got, burst, "every datagram of the burst was kept");
    } finally {
      sender.close();
      await receiver.close();
    }
  },
});

Deno.test({
  name: "Linux: an IPv6 socket sends straight to IPv6 and IPv4 peers; other sends go through Deno",
  ignore: !native,
  fn: async () => {
    const errors = new Collector<string>();
    const dual = await UdpSocket.bind({
      host: "::",
      backend: "deno",
      onError: (err) => errors.push(err.message),
    });
    const v6 = await UdpSocket.bind({ host: "::1", backend: "deno" });
    const v4 = await UdpSocket.bind({ host: "127.0.0.1", backend: "deno" });
    const got = new Collector<string>();
    // The sender's port, as the receivers saw it: the datagrams left from dual's own socket.
    v6.onMessage((data, from) => got.push(`v6 ${decoder.decode(data)} ${from.host} ${from.port}`));
    v4.onMessage((data, from) => got.push(`v4 ${decoder.decode(data)} ${from.host} ${from.port}`));
    try {
      assert.ok(dual.receiveBuffer !== undefined, "the dual-stack socket's descriptor is found");
      dual.send(encoder.encode("a"), v6.local);
      dual.send(encoder.encode("b"), v4.local);
      // A view into a larger buffer sends its own bytes (the contacts fan-out cuts datagrams so).
      dual.send(encoder.encode("xxdyy").subarray(2, 3), v4.local);
      assert.equal(dual.inFlight, 0, "all went with sendto(2)");
      await got.waitFor((m) => m === `v6 a ::1 ${dual.local.port}`);
      await got.waitFor((m) => m === `v4 b 127.0.0.1 ${dual.local.port}`);
      await got.waitFor((m) => m === `v4 d 127.0.0.1 ${dual.local.port}`);
      // Port 0 is no destination sendto(2) is asked for: Deno sends it, and says it failed.
      dual.send(encoder.encode("c"), { host: "::1", port: 0 });
      assert.equal(dual.inFlight, 1, "handed to Deno");
      // Behind it, a view goes through Deno too, and Deno sends the view's bytes only.
      dual.send(encoder.encode("xxeyy").subarray(2, 3), v4.local);
      assert.equal(dual.inFlight, 2, "queued behind it");
      await got.waitFor((m) => m === `v4 e 127.0.0.1 ${dual.local.port}`);
      await errors.waitFor(() => true, 5_000, "the failed send's error").catch(() => {});
      assert.equal(errors.items.length, 1, "the failed send was reported");
      assert.equal(dual.inFlight, 0);
    } finally {
      await dual.close();
      await v6.close();
      await v4.close();
    }
  },
});

Deno.test({
  name: "Linux: a closed socket has no descriptor to report",
  ignore: !native,
  fn: async () => {
    const socket = await UdpSocket.bind({ host: "127.0.0.1", backend: "deno" });
    assert.ok(socket.receiveBuffer! > 0);
    await socket.close();
    assert.equal(socket.receiveBuffer, undefined);
  },
});
