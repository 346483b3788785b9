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

/** Waits until `what` holds, `ms` at most. */
async function until(what: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what() && Date.now() < deadline) await sleep(10);
}

/**
 * A stand-in coordinator on loopback: accepts every login (`logins`: when each came) and lists
 * nobody, at once or, with `holdLists`, when told (`answerList`).
 */
async function standInCoordinator(options: { holdLists: boolean }) {
  const udp = await UdpSocket.bind({ host: "127.0.0.1" });
  const client = await UdpSocket.bind({ host: "127.0.0.1" });
  const waiting: net.Socket[] = [];
  const tcp = net.createServer((socket) => {
    socket.on("error", () => {});
    if (options.holdLists) waiting.push(socket);
    else socket.end("end\n");
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
    // No heartbeat tick comes within a test: only the reaction to `Bye` can log us in again.
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
    logins,
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

Deno.test("Bye: the client logs in again within a retry interval, once per heartbeat interval", async () => {
  const c = await standInCoordinator({ holdLists: false });
  try {
    await c.presence.login();
    assert.equal(c.logins.length, 1);
    const at = Date.now();
    c.bye();
    await until(() => c.states.length === 2, 5000);
    assert.deepEqual(c.states, ["lost", "back"]);
    assert.equal(c.logins.length, 2);
    assert.ok(c.logins[1] - at < 1000, `logged in again ${c.logins[1] - at} ms after Bye`);
    // Another Bye within the heartbeat interval: lost, and left to the heartbeat ticks.
    c.bye();
    await until(() => c.states.length === 3, 5000);
    await sleep(300); // three retry intervals
    assert.deepEqual(c.states, ["lost", "back", "lost"]);
    assert.equal(c.logins.length, 2);
  } finally {
    await c.close();
  }
});

Deno.test("Bye during a login: no second login alongside it, no lost/back", async () => {
  const c = await standInCoordinator({ holdLists: true });
  try {
    const login = c.presence.login();
    await until(() => c.fetching() > 0, 5000);
    c.bye();
    await sleep(300); // three retry intervals: a second login would have begun
    c.answerList();
    await login;
    assert.equal(c.logins.length, 1);
    assert.deepEqual(c.states, []);
  } finally {
    await c.close();
  }
});

Deno.test("stopping while the list is fetched ends the login: no heartbeat, no event", async () => {
  const c = await standInCoordinator({ holdLists: true });
  try {
    const login = c.presence.login();
    await until(() => c.fetching() > 0, 5000);
    c.presence.logout();
    // Rejects at once (the fetch is aborted), and leaves no interval behind: the test's
    // sanitizer would report a heartbeat started after the stop.
    await assert.rejects(login, /shutting down/);
    assert.deepEqual(c.states, []);
  } finally {
    await c.close();
  }
});
