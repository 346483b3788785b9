import assert from "node:assert/strict";
import {
  EARLY_FLUSH_BYTES,
  LOW_WATER,
  PAUSE_PER_DATAGRAM_MS,
  PresenceOutbox,
  SLICE,
} from "../../lib/coordinator/presence_outbox.ts";
import { ContactFanout } from "../../lib/coordinator/contact_fanout.ts";
import { Registry, type User } from "../../lib/coordinator/registry.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

const decoder = new TextDecoder();

/** A socket stand-in: records sends, which stay in flight until the test completes them. */
class FakeSocket {
  readonly sent: { text: string; to: Endpoint }[] = [];
  inFlight = 0;
  #low: { count: number; fn: () => void } | undefined;

  send = (bytes: Uint8Array, to: Endpoint): void => {
    this.sent.push({ text: decoder.decode(bytes), to });
    this.inFlight++;
  };

  whenInFlightAtMost = (count: number, fn: () => void): void => {
    if (this.inFlight <= count) queueMicrotask(fn);
    else this.#low = { count, fn };
  };

  /** `n` sends go out (all of them by default). */
  complete(n = this.inFlight): void {
    for (let i = 0; i < n; i++) {
      this.inFlight--;
      if (this.#low && this.inFlight <= this.#low.count) {
        const { fn } = this.#low;
        this.#low = undefined;
        fn();
      }
    }
  }

  /** The sends since `from`, as `<host> <text>`. */
  since(from: number): string[] {
    return this.sent.slice(from).map((s) => `${s.to.host} ${s.text}`);
  }
}

/** An outbox on a fake clock and socket, with a registry to admit users through. */
function setup(
  options: {
    batchMs?: number;
    afterTurn?: boolean;
    fanout?: (registry: Registry) => ContactFanout<User>;
  } = {},
) {
  const { batchMs = 250, afterTurn, fanout } = options;
  const clock = new FakeClock();
  const socket = new FakeSocket();
  const registry = new Registry({ now: () => clock.now(), peerTimeoutMs: 45_000 });
  const outbox = new PresenceOutbox({
    clock,
    socket,
    batchMs,
    afterTurn,
    isCurrent: (user) => registry.get(user.name) === user,
    fanout: fanout?.(registry),
  });
  let next = 0;
  /** Logs users in (with keys unless `seed`), one address each, and admits them together. */
  const join = (names: string[], options: { seed?: boolean } = {}): User[] => {
    const users = names.map((name) => {
      const n = next++;
      const at = { host: `10.${n >> 16}.${(n >> 8) & 255}.${n & 255}`, port: 4000 };
      const ext = options.seed ? undefined : { key: `k${name}`, secret: `s${name}` };
      const result = registry.login(name, at, at, ext);
      assert.equal(result.kind, "pending");
      return registry.admitFrom(at.host).admitted[0];
    });
    outbox.admit(users);
    return users;
  };
  const leave = (user: User): void => {
    assert.equal(registry.logout(user.name, user.observed, user.secret).kind, "removed");
    outbox.leave(user);
    outbox.schedule();
  };
  return { clock, socket, registry, outbox, join, leave };
}

function names(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

Deno.test("a change after a quiet spell goes out at once; the next waits for a pause in proportion", () => {
  const { clock, socket, outbox, join } = setup();
  const members = join(names("m", 100));
  assert.equal(socket.sent.length, 0, "nobody else to tell");
  // The first change since the quiet start: out at once, one datagram to each of the 100.
  join(["a"]);
  assert.equal(socket.sent.length, 100);
  assert.deepEqual(new Set(socket.sent.map((s) => s.to.host)).size, 100);
  assert.ok(socket.sent.every((s) => s.text.startsWith("Presence,100,101\n+a,")));
  // 100 datagrams: a 2 ms pause. A change within it waits for it to end.
  const pause = 100 * PAUSE_PER_DATAGRAM_MS;
  join(["b"]);
  assert.equal(socket.sent.length, 100);
  assert.equal(outbox.backlog, 1);
  clock.advance(pause - 0.01);
  assert.equal(socket.sent.length, 100, "not before the pause ends");
  clock.advance(0.02);
  assert.equal(socket.sent.length, 100 + 101, "the 100 and a");
  assert.equal(outbox.backlog, 0);
  assert.ok(socket.since(100).every((s) => s.endsWith("Presence,101,102\n+b,CgAAZQ-g")));
  // Changes that pile up in a pause share its flush's datagrams.
  join(["c"]);
  join(["d"]);
  clock.advance(101 * PAUSE_PER_DATAGRAM_MS + 0.01);
  const third = socket.since(201);
  // One datagram each for both changes (to the 100, a and b), and d's login for c.
  assert.equal(third.length, members.length + 3);
  assert.ok(third.some((s) => s.includes("Presence,102,104\n+c,")), third[0]);
});

Deno.test("a flush after a storm hold goes out when it ends, and owes its pause", () => {
  let holdMs = 0;
  /** Contacts mode, everyone a contact of everyone, with a storm hold the test turns on and off. */
  class HeldFanout extends ContactFanout<User> {
    override holdMs(): number {
      return holdMs;
    }
  }
  const { clock, socket, join } = setup({
    fanout: (registry) =>
      new HeldFanout({
        audience: (user) => registry.online().filter((other) => other !== user),
        listed: () => false,
      }),
  });
  join(names("m", 100));
  join(["a"]); // out at once; a 2 ms pause begins
  assert.equal(socket.sent.length, 100);
  holdMs = 50;
  join(["b"]); // held
  holdMs = 0;
  clock.advance(50); // the hold is over: b goes out, and its 2.02 ms pause is owed in full
  assert.equal(socket.sent.length, 100 + 101);
  join(["c"]);
  clock.advance(2.02 - 0.01);
  assert.equal(socket.sent.length, 201, "the pause after b's flush");
  clock.advance(0.02);
  assert.equal(socket.sent.length, 201 + 102);
});

Deno.test("the pause never exceeds batchMs", () => {
  const { clock, socket, join } = setup({ batchMs: 1 });
  join(names("m", 200));
  join(["a"]); // 200 datagrams: 4 ms of pause, but at most 1
  const sent = socket.sent.length;
  join(["b"]);
  clock.advance(0.99);
  assert.equal(socket.sent.length, sent);
  clock.advance(0.02);
  assert.equal(socket.sent.length, sent + 201);
});

Deno.test("two datagrams' worth of changes cut the pause short; fewer wait for it", () => {
  const { clock, socket, outbox, join } = setup();
  const [watcher] = join(["watcher"]);
  join(["first"]); // out at once; a pause begins
  assert.equal(socket.sent.length, 1);
  // Long names make the sums easy: each login line is 1 + 1 + 40 + 1 + 8 bytes, newline included.
  const long = (i: number) => `${"x".repeat(36)}${String(i).padStart(4, "0")}`;
  const lineBytes = 51;
  const under = Math.floor((EARLY_FLUSH_BYTES - 1) / lineBytes);
  for (let i = 0; i < under; i++) join([long(i)]);
  assert.equal(socket.sent.length, 1, `${under * lineBytes} bytes wait for the pause`);
  assert.equal(outbox.backlog, 1);
  join([long(under)]); // now at least two datagrams' worth: at once
  assert.ok((under + 1) * lineBytes >= EARLY_FLUSH_BYTES);
  const flushed = socket.sent.length;
  assert.ok(flushed > 1);
  const toWatcher = socket.sent.slice(1).filter((s) => s.to === watcher.observed);
  assert.equal(toWatcher.length, 3, "the lines of versions 3 and on, in three datagrams");
  assert.match(toWatcher[0].text, /^Presence,2,/);
  assert.match(toWatcher[2].text, new RegExp(`,${2 + under + 1}\\n`));
  // The pause's timer was cancelled, not left to flush again.
  clock.advance(250);
  assert.equal(socket.sent.length, flushed);
  assert.equal(clock.pending, 0);
});

Deno.test("a flush goes out in rounds: no member gets its second datagram before all got a first", () => {
  const { clock, socket, join } = setup();
  const early = join(names("m", 30));
  const seed = join(names("s", 10), { seed: true });
  join(["first"]);
  clock.advance(250);
  const start = socket.sent.length;
  join(names("joiner-", 150)); // 150 changes: 3 batched datagrams, 150 seed ones
  socket.complete(); // more than a slice
  const sends = socket.sent.slice(start);
  const per = new Map<string, number[]>(); // member's host → the indexes of its sends
  sends.forEach((s, i) => per.set(s.to.host, [...(per.get(s.to.host) ?? []), i]));
  for (const m of early) assert.equal(per.get(m.observed.host)?.length, 3, m.name);
  for (const m of seed) assert.equal(per.get(m.observed.host)?.length, 150, m.name);
  // Round r: every member still due a datagram gets its r-th before anyone gets an r+1-th.
  const rounds = [...per.values()];
  for (let r = 1; r < 150; r++) {
    const lastOfRound = Math.max(...rounds.filter((x) => x.length > r - 1).map((x) => x[r - 1]));
    const firstOfNext = Math.min(...rounds.filter((x) => x.length > r).map((x) => x[r]));
    assert.ok(lastOfRound < firstOfNext, `round ${r}`);
  }
});

Deno.test("a flush goes out in slices, each once the socket's queue has run low", async () => {
  const { socket, outbox, join } = setup();
  const members = join(names("m", 2 * SLICE + 500));
  join(["a"]); // one datagram for each member
  assert.equal(socket.sent.length, SLICE, "one slice");
  assert.equal(outbox.backlog, SLICE + 500);
  socket.complete(SLICE - LOW_WATER - 1);
  assert.equal(socket.sent.length, SLICE, "the queue is not low yet");
  socket.complete(1);
  assert.equal(socket.sent.length, 2 * SLICE, "the next slice");
  socket.complete();
  assert.equal(socket.sent.length, members.length, "and the rest");
  assert.equal(outbox.backlog, 0);
  await Promise.resolve();
  assert.equal(socket.sent.length, members.length, "nothing twice");
});

Deno.test("Alive's version: the last flush handed to the socket in full, or the member's list", () => {
  const { clock, socket, outbox, join } = setup();
  const members = join(names("m", SLICE + 1));
  const [first] = members;
  assert.equal(outbox.handedTo(first), SLICE + 1, "its list's version");
  join(["a"]); // version SLICE + 2: one slice out, one datagram still to go
  assert.equal(outbox.handedTo(first), SLICE + 1, "not all handed over yet");
  socket.complete();
  assert.equal(outbox.handedTo(first), SLICE + 2);
  const [late] = join(["late"]); // flushes after the pause; its list is at SLICE + 3
  assert.equal(outbox.handedTo(late), SLICE + 3);
  assert.equal(outbox.handedTo(first), SLICE + 2);
  clock.advance(250);
  socket.complete();
  assert.equal(outbox.handedTo(first), SLICE + 3);
});

Deno.test("members who left meanwhile, or whose name was taken over, are not told", () => {
  const { socket, registry, outbox, join, leave } = setup();
  const members = join(names("m", SLICE + 10));
  const stay = members[SLICE + 9];
  join(["a"]); // the last 10 members are after the first slice
  const gone = members[SLICE + 1];
  leave(gone);
  const taken = members[SLICE + 2];
  leave(taken);
  const [again] = join([taken.name]); // the same name, a new user at a new address
  assert.equal(registry.get(taken.name), again);
  socket.complete();
  const told = socket.sent.filter((s) => s.text.includes("+a,")).map((s) => s.to.host);
  assert.ok(!told.includes(gone.observed.host), "gone");
  assert.ok(!told.includes(taken.observed.host), "taken over");
  assert.ok(told.includes(stay.observed.host));
  assert.equal(told.length, SLICE + 10 - 2);
  assert.equal(outbox.backlog, 1, "the leaves and the new login wait for the pause");
});

Deno.test("close() stops the outbox: a waiting flush and the rest of a flush are dropped", () => {
  const { clock, socket, outbox, join } = setup();
  join(names("m", SLICE + 5));
  join(["a"]);
  join(["b"]); // waits for the pause
  outbox.close();
  socket.complete();
  clock.advance(1_000);
  assert.equal(socket.sent.length, SLICE);
  assert.equal(clock.pending, 0);
});

Deno.test("whenHanded: once the changes recorded so far are handed to the socket for everyone", () => {
  const { clock, socket, outbox, join } = setup();
  join(names("m", SLICE + 1));
  const calls: string[] = [];
  outbox.whenHanded(() => calls.push("idle"));
  assert.deepEqual(calls, ["idle"], "nothing waiting: at once");
  join(["a"]); // one slice out, one datagram still to go
  outbox.whenHanded(() => calls.push("a"));
  join(["b"]); // waits for the pause after a's flush
  outbox.whenHanded(() => calls.push("b"));
  assert.deepEqual(calls, ["idle"]);
  socket.complete();
  assert.deepEqual(calls, ["idle", "a"], "a's flush is out; b's has not started");
  clock.advance(250);
  assert.deepEqual(calls, ["idle", "a"], "b's flush is one slice in");
  socket.complete();
  assert.deepEqual(calls, ["idle", "a", "b"]);
});

Deno.test("whenHanded: a change nobody is left to be told of is handed at once", () => {
  const { clock, outbox, join, leave } = setup();
  const [m1, m2] = join(["m1", "m2"]);
  const [a] = join(["a"]); // out at once; a pause begins
  leave(a); // waits for it
  const calls: string[] = [];
  outbox.whenHanded(() => calls.push("a left"));
  leave(m2);
  assert.deepEqual(calls, [], "m1 is still to be told");
  leave(m1); // the last member: the fan-out drops what it would have been told
  assert.deepEqual(calls, ["a left"]);
  clock.advance(250);
  assert.deepEqual(calls, ["a left"]);
});

Deno.test("afterTurn: a flush after a quiet spell waits for the end of the turn, no longer", () => {
  const { clock, socket, join } = setup({ afterTurn: true });
  join(names("m", 10));
  join(["m10"]); // the 10 others are to hear of it
  assert.equal(socket.sent.length, 0, "not in the turn that made the change");
  clock.advance(0);
  assert.equal(socket.sent.length, 10, "the next turn");
});
