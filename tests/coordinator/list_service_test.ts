import assert from "node:assert/strict";
import { AddressBudget } from "../../lib/coordinator/address_budget.ts";
import { type Limits, resolveLimits } from "../../lib/coordinator/limits.ts";
import { type ListConnection, ListService } from "../../lib/coordinator/list_service.ts";
import { PresenceOutbox } from "../../lib/coordinator/presence_outbox.ts";
import { Registry } from "../../lib/coordinator/registry.ts";
import { ServerLog } from "../../lib/coordinator/server_log.ts";
import { createStats } from "../../lib/coordinator/stats.ts";
import { FakeClock } from "../support/fake_clock.ts";

const decoder = new TextDecoder();

/**
 * A TCP connection stand-in: the test feeds its input and reads what the service wrote. A
 * `stalled` one is a client that does not read: no write to it ever completes.
 */
class FakeConn implements ListConnection {
  readonly remoteAddr: Deno.NetAddr;
  written = "";
  writeClosed = false;
  closed = false;
  readonly #stalled: boolean;
  readonly #input: (Uint8Array | null)[] = [];
  #reader: { resolve: (n: number | null) => void; reject: (e: Error) => void } | undefined;
  #buffer: Uint8Array | undefined;
  #writer: ((e: Error) => void) | undefined;

  constructor(hostname: string, options: { stalled?: boolean } = {}) {
    this.remoteAddr = { transport: "tcp", hostname, port: 50_000 };
    this.#stalled = options.stalled ?? false;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    this.#buffer = buffer;
    const { promise, resolve, reject } = Promise.withResolvers<number | null>();
    this.#reader = { resolve, reject };
    this.#feed();
    return promise;
  }

  write(data: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    if (this.#stalled) return new Promise((_, reject) => this.#writer = reject);
    // A few bytes at a time, as a slow reader's socket would take them.
    const n = Math.min(data.length, 7);
    this.written += decoder.decode(data.subarray(0, n));
    return Promise.resolve(n);
  }

  closeWrite(): Promise<void> {
    this.writeClosed = true;
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) throw new Deno.errors.BadResource("closed twice");
    this.closed = true;
    this.#reader?.reject(new Deno.errors.BadResource("closed"));
    this.#writer?.(new Deno.errors.BadResource("closed"));
  }

  /** The client sends `data`, or closes its side (`null`). */
  send(data: Uint8Array | null): void {
    this.#input.push(data);
    this.#feed();
  }

  #feed(): void {
    if (!this.#reader || this.#input.length === 0) return;
    const next = this.#input.shift()!;
    const reader = this.#reader;
    this.#reader = undefined;
    if (next === null) return reader.resolve(null);
    const n = Math.min(next.length, this.#buffer!.length);
    if (n < next.length) this.#input.unshift(next.subarray(n));
    reader.resolve(n);
  }
}

/** Lets the service's reads and writes run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function setup(partial: Partial<Limits> = {}) {
  const clock = new FakeClock();
  const limits = resolveLimits(partial);
  const lines: string[] = [];
  const stats = createStats();
  const log = new ServerLog({ clock, write: (l) => lines.push(l), stats });
  const registry = new Registry({ now: () => clock.now(), peerTimeoutMs: 45_000 });
  const sent: string[] = [];
  const outbox = new PresenceOutbox({
    clock,
    isCurrent: (user) => registry.get(user.name) === user,
    socket: {
      send: (bytes, to) => sent.push(`${to.host} ${decoder.decode(bytes)}`),
      whenInFlightAtMost: () => {},
    },
  });
  const budget = new AddressBudget({ clock, limits, log });
  const list = new ListService({ clock, registry, outbox, limits, log, stats, budget });
  const logged = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).length;
  return { clock, registry, list, lines, logged, sent, stats };
}

Deno.test("a fetch admits the address's pending logins and writes the list with its version", async () => {
  const { registry, list, lines, sent, stats } = setup();
  const at = (host: string, port: number) => ({ host, port });
  registry.login("alice", at("10.0.0.2", 4000), at("192.0.2.1", 4000), { key: "k", secret: "s" });
  const first = new FakeConn("192.0.2.1");
  list.serve(first);
  await settle();
  assert.equal(first.written, "alice,192.0.2.1:4000;end\nversion,1");
  registry.login("bob", at("10.0.0.3", 4000), at("192.0.2.2", 4000), { key: "k", secret: "s" });
  registry.login("carol", at("10.0.0.4", 4000), at("192.0.2.2", 4001), { key: "k", secret: "s" });
  registry.login("dave", at("10.0.0.5", 4000), at("192.0.2.3", 4000), { key: "k", secret: "s" });
  const conn = new FakeConn("::ffff:192.0.2.2"); // a dual-stack listener's view of an IPv4 peer
  list.serve(conn);
  assert.equal(list.open, 1, "the first was closed once its list was written");
  await settle();
  // Admitted: both logins from the address, in order (versions 2 and 3).
  assert.equal(
    conn.written,
    "alice,192.0.2.1:4000;bob,192.0.2.2:4000;carol,192.0.2.2:4001;end\nversion,3",
  );
  assert.ok(conn.writeClosed);
  assert.equal(registry.get("bob")?.state, "online");
  assert.equal(registry.get("carol")?.listVersion, 3);
  assert.equal(registry.get("dave")?.state, "pending", "another address");
  assert.ok(lines.some((l) => l.startsWith("login bob 192.0.2.2:4000 (claimed 10.0.0.3:4000)")));
  assert.equal(stats.listFetches, 2);
  // Those already online hear of it (the first change after a quiet spell goes out at once).
  assert.deepEqual(sent.map((s) => s.split("\n")[0]), ["192.0.2.1 Presence,1,3"]);
  // Behaviour changed by issue 18: the connection is closed once the list is written, whatever
  // the client does with its side (it used to stay open until the client closed it).
  assert.ok(conn.closed && first.closed);
  assert.equal(list.open, 0);
});

Deno.test("where a seed-only client has the address, the list ends as the seed's does", async () => {
  const { registry, list } = setup();
  const ep = { host: "192.0.2.1", port: 4000 };
  registry.login("seed", ep, ep);
  const conn = new FakeConn("192.0.2.1");
  list.serve(conn);
  await settle();
  assert.equal(conn.written, "seed,192.0.2.1:4000;end");
  const other = new FakeConn("192.0.2.9");
  list.serve(other);
  await settle();
  assert.equal(other.written, "seed,192.0.2.1:4000;end\nversion,1");
});

Deno.test("an idle connection is closed after tcpIdleMs, and none lives past four times that", async () => {
  const { clock, list, logged } = setup({ tcpIdleMs: 1_000 });
  // Clients that do not read the list: the write never completes.
  const idle = new FakeConn("192.0.2.1", { stalled: true });
  list.serve(idle);
  await settle();
  clock.advance(999);
  assert.ok(!idle.closed);
  clock.advance(1);
  assert.ok(idle.closed);
  assert.equal(logged("limit tcp-idle reached: connection from 192.0.2.1 idle for 1000 ms"), 1);
  // A byte every half idle time keeps one from being idle, not from its deadline.
  const trickle = new FakeConn("192.0.2.2", { stalled: true });
  list.serve(trickle);
  for (let t = 0; t < 3_500; t += 500) {
    trickle.send(new Uint8Array(1));
    await settle();
    clock.advance(500);
    assert.ok(!trickle.closed, `at ${t + 500} ms`);
  }
  trickle.send(new Uint8Array(1));
  await settle();
  clock.advance(500);
  assert.ok(trickle.closed);
  assert.equal(logged("limit tcp-idle reached: connection from 192.0.2.2 open for 4000 ms"), 1);
  assert.equal(logged("limit tcp-idle reached: connection from 192.0.2.2 idle"), 0);
  assert.equal(list.open, 0);
  assert.equal(clock.pending, 0, "no timer left behind");
});

// Behaviour changed by issue 18: a connection over a cap used to be refused; now the oldest
// connection of its address, or of the address holding the most, makes way (slow connections
// must not keep anyone's fetches out).
Deno.test("an address at its cap loses its oldest connection to its newest", async () => {
  const { list, logged, stats } = setup({ tcpPerAddress: 2, maxTcp: 10 });
  const slow = [1, 2].map(() => new FakeConn("192.0.2.1", { stalled: true }));
  slow.forEach((c) => list.serve(c));
  const fetch = new FakeConn("192.0.2.1");
  list.serve(fetch);
  assert.ok(slow[0].closed && !slow[1].closed);
  assert.equal(logged("limit tcp-per-address reached: 192.0.2.1 has 2 TCP connections open"), 1);
  await settle();
  assert.equal(fetch.written, "end\nversion,0");
  assert.ok(fetch.closed);
  assert.equal(list.open, 1);
  assert.equal(stats.limited, 1);
});

Deno.test("when every connection is taken, an address holding fewer takes the biggest holder's oldest", async () => {
  const { list, logged } = setup({ tcpPerAddress: 2, maxTcp: 3 });
  const a = [1, 2].map(() => new FakeConn("192.0.2.1", { stalled: true }));
  a.forEach((c) => list.serve(c));
  // IPv6 addresses count per /64.
  const v6 = [1, 2].map((i) => new FakeConn(`2001:db8::${i}`, { stalled: true }));
  list.serve(v6[0]);
  assert.equal(list.open, 3);
  list.serve(v6[1]);
  assert.ok(a[0].closed && !a[1].closed && !v6[0].closed && !v6[1].closed);
  assert.equal(
    logged("limit max-tcp reached: 3 TCP connections open; closed the oldest of 192.0.2.1"),
    1,
  );
  // A new address still gets in, at the expense of the address holding the most.
  const newcomer = new FakeConn("192.0.2.9");
  list.serve(newcomer);
  assert.ok(v6[0].closed && !a[1].closed && !v6[1].closed);
  await settle();
  assert.equal(newcomer.written, "end\nversion,0");
  assert.equal(list.open, 2);
});

Deno.test("when every connection is taken, an address holding as many as any other is refused", () => {
  const { list, logged } = setup({ tcpPerAddress: 3, maxTcp: 4 });
  const held = ["192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2"].map((host) =>
    new FakeConn(host, { stalled: true })
  );
  held.forEach((c) => list.serve(c));
  const more = new FakeConn("192.0.2.2", { stalled: true });
  list.serve(more);
  assert.ok(more.closed && held.every((c) => !c.closed), "it cannot take from its equals");
  assert.equal(logged("limit max-tcp reached: 4 TCP connections open; closed one from"), 1);
  assert.equal(list.open, 4);
  for (const c of held) c.close();
});

Deno.test("input past the line limit is no longer read; the list still comes, then the close", async () => {
  const { list, logged } = setup({ maxLineBytes: 100, tcpIdleMs: 1_000 });
  const chatty = new FakeConn("192.0.2.1");
  chatty.send(new Uint8Array(5000));
  list.serve(chatty);
  await settle();
  assert.equal(chatty.written, "end\nversion,0");
  assert.equal(logged("limit max-line reached: 192.0.2.1 sent more than 100 bytes"), 1);
  assert.ok(chatty.closed);
});

Deno.test("a fetch beyond the address's logins budget is closed without a list", async () => {
  const { registry, list, logged } = setup({ loginsPerSecond: 1 });
  const ep = { host: "192.0.2.1", port: 4000 };
  registry.login("alice", ep, ep, { key: "k", secret: "s" });
  const conns = [1, 2, 3].map(() => new FakeConn("192.0.2.1"));
  conns.forEach((c) => list.serve(c));
  await settle();
  assert.equal(conns[0].written, "alice,192.0.2.1:4000;end\nversion,1");
  assert.equal(conns[1].written, "alice,192.0.2.1:4000;end\nversion,1");
  assert.ok(conns[2].closed);
  assert.equal(conns[2].written, "");
  assert.equal(logged("limit logins-per-address reached: 192.0.2.1 sent more than 1 logins/s"), 1);
});
