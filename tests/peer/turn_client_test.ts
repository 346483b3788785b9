import assert from "node:assert/strict";
import { realClock } from "../../lib/clock.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { decodeTurnMessage, encodeTurnMessage, longTermKey } from "../../lib/protocol/turn.ts";
import { turnCredentials } from "../../lib/protocol/turn_credentials.ts";
import { TurnClient, type TurnState } from "../../lib/peer/turn_client.ts";
import { type Coturn, startCoturn } from "../support/coturn.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** A TurnClient on its own loopback UDP socket, talking to `server`. */
class Side {
  readonly states: TurnState[] = [];
  readonly received: { from: Endpoint; text: string }[] = [];
  readonly client: TurnClient;
  readonly #socket: Deno.DatagramConn;
  readonly #done: Promise<void>;

  constructor(server: Coturn, secret: string, name: string) {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#socket = socket;
    const to = { transport: "udp" as const, hostname: server.host, port: server.port };
    const creds = turnCredentials({
      secret: new TextEncoder().encode(secret),
      name,
      nowMs: Date.now(),
    });
    const client = this.client = new TurnClient({
      clock: realClock,
      credentials: creds,
      send: (bytes) => void socket.send(bytes, to).catch(() => {}),
      onState: (s) => this.states.push(s),
      onData: (from, data) => this.received.push({ from, text: new TextDecoder().decode(data) }),
    });
    this.#done = (async () => {
      try {
        for await (const [bytes] of socket) client.receive(bytes);
      } catch { /* closed */ }
    })();
  }

  async until<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.states)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    this.client.close();
    await new Promise((r) => setTimeout(r, 20)); // let the release leave
    this.#socket.close();
    await this.#done;
  }
}

Deno.test("TURN client: two allocations on a real coturn relay data both ways over channels", async () => {
  const server = await startCoturn();
  const a = new Side(server, server.secret, "alice");
  const b = new Side(server, server.secret, "bob");
  try {
    a.client.allocate();
    b.client.allocate();
    const ra = await a.until("alice's allocation", () => a.client.relayed);
    const rb = await b.until("bob's allocation", () => b.client.relayed);
    assert.equal(ra.host, "127.0.0.1");
    a.client.permit(rb.host);
    b.client.permit(ra.host);
    await a.until("alice's permission", () => a.client.permitted(rb.host));
    await b.until("bob's permission", () => b.client.permitted(ra.host));
    // Before and after the channels are bound (Send indication, then ChannelData).
    for (let i = 0; i < 20; i++) {
      assert.ok(a.client.sendTo(rb, new TextEncoder().encode(`hello ${i}`)));
      await new Promise((r) => setTimeout(r, 10));
    }
    await b.until("data at bob", () => b.received.length >= 10 ? true : undefined);
    assert.deepEqual(b.received[0].from, ra);
    assert.ok(b.client.sendTo(ra, new TextEncoder().encode("hi alice")));
    await a.until("data at alice", () => a.received.find((r) => r.text === "hi alice"));
    assert.equal(a.client.stats.ignored + b.client.stats.ignored, 0);
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("TURN client: a wrong secret fails with a reason that says so", async () => {
  const server = await startCoturn();
  const a = new Side(server, "not-the-secret", "alice");
  try {
    a.client.allocate();
    const failed = await a.until("failure", () => {
      const s = a.states.at(-1);
      return s?.kind === "failed" ? s : undefined;
    });
    assert.match(failed.reason, /refused our credentials \(401/);
  } finally {
    await a.close();
    await server.stop();
  }
});

Deno.test("TURN client: retransmits, then fails when the server never answers (fake clock)", () => {
  const clock = new FakeClock();
  const sent: Uint8Array[] = [];
  const states: TurnState[] = [];
  const client = new TurnClient({
    clock,
    credentials: { username: "1:a", password: "p" },
    send: (b) => sent.push(b),
    onState: (s) => states.push(s),
    onData: () => {},
  });
  client.allocate();
  clock.advance(500 + 1000 + 2000 + 4000 + 8000 - 1);
  assert.equal(sent.length, 5);
  assert.equal(states.at(-1)?.kind, "allocating");
  clock.advance(1);
  assert.deepEqual(states.at(-1), {
    kind: "failed",
    reason: "the TURN server did not answer allocate (5 tries)",
  });
});

Deno.test("TURN client: answers with a transaction id it never sent, or forged, are ignored", () => {
  const clock = new FakeClock();
  const sent: Uint8Array[] = [];
  const states: TurnState[] = [];
  const client = new TurnClient({
    clock,
    credentials: { username: "1:a", password: "p" },
    send: (b) => sent.push(b),
    onState: (s) => states.push(s),
    onData: () => {},
  });
  client.allocate();
  const first = decodeTurnMessage(sent[0]);
  // A stranger's success for another transaction: ignored.
  client.receive(encodeTurnMessage({
    method: "allocate",
    cls: "success",
    transactionId: new Uint8Array(12),
    attributes: { relayed: { host: "192.0.2.66", port: 1 } },
  }));
  assert.equal(client.stats.ignored, 1);
  // The server's challenge: the request goes again, signed.
  client.receive(encodeTurnMessage({
    method: "allocate",
    cls: "error",
    transactionId: first.transactionId,
    attributes: { errorCode: { code: 401, reason: "Unauthorized" }, realm: "p2p", nonce: "n1" },
  }));
  const signed = decodeTurnMessage(sent[1]);
  assert.equal(signed.attributes.username, "1:a");
  assert.notEqual(signed.integrityAt, undefined);
  // A success for it without the right integrity: ignored; with it: allocated.
  const success = {
    method: "allocate" as const,
    cls: "success" as const,
    transactionId: signed.transactionId,
    attributes: { relayed: { host: "192.0.2.7", port: 50000 }, lifetime: 600 },
  };
  client.receive(encodeTurnMessage(success, longTermKey("1:a", "p2p", "wrong")));
  assert.equal(states.at(-1)?.kind, "allocating");
  client.receive(encodeTurnMessage(success, longTermKey("1:a", "p2p", "p")));
  assert.deepEqual(client.relayed, { host: "192.0.2.7", port: 50000 });
  client.close();
});

Deno.test("TURN client: a channel per peer endpoint, numbered apart; a forgotten host is cut off", () => {
  const clock = new FakeClock();
  const sent: Uint8Array[] = [];
  const data: string[] = [];
  const client = new TurnClient({
    clock,
    credentials: { username: "1:a", password: "p" },
    send: (b) => sent.push(b),
    onState: () => {},
    onData: (from) => data.push(`${from.host}:${from.port}`),
  });
  const key = longTermKey("1:a", "p2p", "p");
  /** Answers the last request with success (signed), or the challenge for the first one. */
  const answer = (attributes = {}) => {
    const request = decodeTurnMessage(sent.at(-1)!);
    client.receive(encodeTurnMessage(
      { method: request.method, cls: "success", transactionId: request.transactionId, attributes },
      key,
    ));
  };
  client.allocate();
  const first = decodeTurnMessage(sent[0]);
  client.receive(encodeTurnMessage({
    method: "allocate",
    cls: "error",
    transactionId: first.transactionId,
    attributes: { errorCode: { code: 401, reason: "Unauthorized" }, realm: "p2p", nonce: "n" },
  }));
  answer({ relayed: { host: "192.0.2.7", port: 50000 }, lifetime: 600 });
  client.permit("203.0.113.9");
  assert.equal(decodeTurnMessage(sent.at(-1)!).method, "create-permission");
  answer();
  assert.ok(client.permitted("203.0.113.9"));
  const binds: number[] = [];
  for (const port of [4000, 4001]) {
    assert.ok(client.sendTo({ host: "203.0.113.9", port }, new Uint8Array([1])));
    const bind = decodeTurnMessage(sent.at(-2)!); // the ChannelBind, then the Send indication
    assert.equal(bind.method, "channel-bind");
    binds.push(bind.attributes.channel!);
  }
  assert.deepEqual(binds, [0x4000, 0x4001]);
  assert.equal(decodeTurnMessage(sent.at(-1)!).method, "send");
  assert.equal(client.sendTo({ host: "198.51.100.1", port: 1 }, new Uint8Array([1])), false);
  client.forget("203.0.113.9");
  assert.equal(client.sendTo({ host: "203.0.113.9", port: 4000 }, new Uint8Array([1])), false);
  client.receive(encodeTurnMessage({
    method: "data",
    cls: "indication",
    transactionId: new Uint8Array(12),
    attributes: { peer: { host: "203.0.113.9", port: 4000 }, data: new Uint8Array([2]) },
  }));
  assert.deepEqual(data, []);
  client.close();
});
