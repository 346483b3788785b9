/**
 * A coordinator on `::` serves both families on one socket (Linux dual-stack): IPv4 clients are
 * seen, written and counted as dotted IPv4 (never `::ffff:…`), IPv6 ones as `[v6]:port`, over UDP
 * and over TCP (the list). Loopback only.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { Coordinator } from "../../lib/coordinator.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { parseOnlineList } from "../../lib/protocol/seed.ts";
import { sleep } from "../support/wait.ts";

/** A UDP client of either family, keeping what it receives as text. */
async function client(host: string, server: number) {
  const socket = dgram.createSocket({ type: host.includes(":") ? "udp6" : "udp4" });
  await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
  const texts: string[] = [];
  socket.on("message", (m: Uint8Array) => texts.push(new TextDecoder().decode(m)));
  const to = host.includes(":") ? "::1" : "127.0.0.1";
  return {
    texts,
    port: socket.address().port,
    send: (text: string) => socket.send(new TextEncoder().encode(text), server, to),
    until: async (pred: (t: string) => boolean) => {
      for (let i = 0; i < 300 && !texts.some(pred); i++) await sleep(10);
      assert.ok(texts.some(pred), `got ${JSON.stringify(texts)}`);
      return texts.find(pred)!;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** Fetches the list over TCP from `host`, as a login's admission does. */
function fetchList(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect({
      host: host.includes(":") ? "::1" : "127.0.0.1",
      port,
      localAddress: host,
    });
    socket.on("data", (d: Uint8Array) => text += new TextDecoder().decode(d));
    socket.on("error", reject);
    socket.on("close", () => resolve(text));
  });
}

const key = () => encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
const secret = encodeBase64url(new Uint8Array(16).fill(7));

Deno.test("coordinator on :: serves IPv4 and IPv6 clients, IPv4 written as IPv4", async () => {
  const c = await Coordinator.start({ host: "::", port: 0, log: () => {} });
  const v4 = await client("127.0.0.61", c.udpPort);
  const v6 = await client("::1", c.udpPort);
  try {
    v4.send(`login,alice,127.0.0.61:${v4.port},${key()},${secret}`);
    await v4.until((t) => t.startsWith("Accept,"));
    await fetchList("127.0.0.61", c.tcpPort);
    v6.send(`login,bob,[::1]:${v6.port},${key()},${secret}`);
    await v6.until((t) => t.startsWith("Accept,"));
    const list = parseOnlineList(await fetchList("::1", c.tcpPort));
    assert.deepEqual(list.entries.map((e) => [e.username, e.endpoint]).sort(), [
      ["alice", { host: "127.0.0.61", port: v4.port }],
      ["bob", { host: "::1", port: v6.port }],
    ]);
    // Presence, whoami, STUN: the IPv4 client is IPv4 in every text.
    await v4.until((t) => t.includes(`+bob,[::1]:${v6.port}`));
    v4.send("whoami," + "-".repeat(57));
    assert.equal(await v4.until((t) => t.startsWith("You,")), `You,127.0.0.61:${v4.port}`);
    v6.send("whoami," + "-".repeat(57));
    assert.equal(await v6.until((t) => t.startsWith("You,")), `You,[::1]:${v6.port}`);
    assert.deepEqual(c.registry.get("alice")?.observed, { host: "127.0.0.61", port: v4.port });
    // Introductions across families carry each side's own endpoint.
    v4.send("connect,alice,bob");
    await v6.until((t) => t.startsWith("Knock,alice,"));
    v6.send("connect,bob,alice");
    assert.match(
      await v6.until((t) => t.startsWith("Introduce,alice,")),
      /^Introduce,alice,127\.0\.0\.61:/,
    );
    assert.match(await v4.until((t) => t.startsWith("Introduce,bob,")), /^Introduce,bob,\[::1\]:/);
  } finally {
    await v4.close();
    await v6.close();
    await c.close();
  }
});

Deno.test("coordinator on ::: UDP and TCP key an IPv4 client alike (admission, names per address)", async () => {
  const c = await Coordinator.start({
    host: "::",
    port: 0,
    log: () => {},
    limits: { namesPerAddress: 1 },
  });
  const first = await client("127.0.0.62", c.udpPort);
  const second = await client("127.0.0.62", c.udpPort);
  try {
    first.send(`login,carol,127.0.0.62:${first.port},${key()},${secret}`);
    await first.until((t) => t.startsWith("Accept,"));
    await fetchList("127.0.0.62", c.tcpPort);
    second.send(`login,dave,127.0.0.62:${second.port},${key()},${secret}`);
    assert.match(await second.until((t) => t.startsWith("Reject,")), /too many names/);
  } finally {
    await first.close();
    await second.close();
    await c.close();
  }
});
