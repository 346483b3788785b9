/**
 * A client told `Bye` (lib/peer/presence.ts): it reports the coordinator lost and logs in again
 * within a login retry interval, not at its next heartbeat; at most once per heartbeat interval.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { UdpSocket } from "../../lib/net/udp.ts";
import { Presence } from "../../lib/peer/presence.ts";
import { parseServerMessage } from "../../lib/protocol/seed.ts";
import { sleep } from "../support/wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("Bye: the client logs in again within a retry interval, once per heartbeat interval", async () => {
  // A stand-in coordinator on loopback: accepts every login, lists nobody.
  const udp = await UdpSocket.bind({ host: "127.0.0.1" });
  const client = await UdpSocket.bind({ host: "127.0.0.1" });
  const tcp = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.end("end\n");
  });
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  const logins: number[] = [];
  udp.onMessage((data, from) => {
    if (!decoder.decode(data).startsWith("login,")) return;
    logins.push(Date.now());
    udp.send(encoder.encode(`Accept,${tcpPort}`), from);
  });
  const states: string[] = [];
  const presence = new Presence({
    send: (data, to) => client.send(data, to),
    server: udp.local,
    username: "me",
    claimed: client.local,
    // No heartbeat tick comes within the test: only the reaction to `Bye` can log us in again.
    keepaliveMs: 60_000,
    retryMs: 100,
    onOnline: () => {},
    onOffline: () => {},
    onCoordinator: (state) => states.push(state),
  });
  client.onMessage((data) =>
    presence.handleDatagram(decoder.decode(data).split("\n").map(parseServerMessage))
  );
  const bye = () => udp.send(encoder.encode("Bye,restarting"), client.local);
  const until = async (what: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!what() && Date.now() < deadline) await sleep(10);
  };
  try {
    await presence.login();
    assert.equal(logins.length, 1);
    const at = Date.now();
    bye();
    await until(() => states.length === 2, 5000);
    assert.deepEqual(states, ["lost", "back"]);
    assert.equal(logins.length, 2);
    assert.ok(logins[1] - at < 1000, `logged in again ${logins[1] - at} ms after Bye`);
    // Another Bye within the heartbeat interval: lost, and left to the heartbeat ticks.
    bye();
    await until(() => states.length === 3, 5000);
    await sleep(300); // three retry intervals
    assert.deepEqual(states, ["lost", "back", "lost"]);
    assert.equal(logins.length, 2);
  } finally {
    presence.logout();
    await client.close();
    await udp.close();
    await new Promise((resolve) => tcp.close(resolve));
  }
});

/** A stand-in coordinator that accepts every login and answers the list fetch when told. */
async function slowListCoordinator() {
  const udp = await UdpSocket.bind({ host: "127.0.0.1" });
  const client = await UdpSocket.bind({ host: "127.0.0.1" });
  const waiting: net.Socket[] = [];
  const tcp = net.createServer((socket) => {
    socket.on("error", () => {});
    waiting.push(socket);
  });
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  let logins = 0;
  udp.onMessage((data, from) => {
    if (!decoder.decode(data).startsWith("login,")) return;
    logins++;
    udp.send(encoder.encode(`Accept,${tcpPort}`), from);
  });
  const states: string[] = [];
  const presence = new Presence({
    send: (data, to) => client.send(data, to),
    server: udp.local,
    username: "me",
    claimed: client.local,
    keepaliveMs: 60_000,
    retryMs: 100,
    onOnline: () => {},
    onOffline: () => {},
    onCoordinator: (state) => states.push(state),
  });
  client.onMessage((data) =>
    presence.handleDatagram(decoder.decode(data).split("\n").map(parseServerMessage))
  );
  return {
    presence,
    states,
    logins: () => logins,
    fetching: () => waiting.length,
    answerList: () => waiting.splice(0).forEach((socket) => socket.end("end\n")),
    bye: () => udp.send(encoder.encode("Bye,restarting"), client.local),
    async close() {
      presence.logout();
      waiting.splice(0).forEach((socket) => socket.destroy());
      await client.close();
      await udp.close();
      await new Promise((resolve) => tcp.close(resolve));
    },
  };
}

Deno.test("Bye during a login: no second login alongside it, no lost/back", async () => {
  const c = await slowListCoordinator();
  try {
    const login = c.presence.login();
    while (c.fetching() === 0) await sleep(10);
    c.bye();
    await sleep(300); // three retry intervals: a second login would have begun
    c.answerList();
    await login;
    assert.equal(c.logins(), 1);
    assert.deepEqual(c.states, []);
  } finally {
    await c.close();
  }
});

Deno.test("stopping while the list is fetched ends the login: no heartbeat, no event", async () => {
  const c = await slowListCoordinator();
  try {
    const login = c.presence.login();
    while (c.fetching() === 0) await sleep(10);
    c.presence.logout();
    // Rejects at once (the fetch is aborted), and leaves no interval behind: the test's
    // sanitizer would report a heartbeat started after the stop.
    await assert.rejects(login, /shutting down/);
    assert.deepEqual(c.states, []);
  } finally {
    await c.close();
  }
});
