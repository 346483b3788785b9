import assert from "node:assert/strict";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { Messages } from "../../lib/peer/messages.ts";
import { randomUid } from "../../lib/protocol/chat_message.ts";
import { MemoryLog, type StoredMessage } from "../../lib/store/message_log.ts";

function setup(log = new MemoryLog()) {
  const events: PeerEvent[] = [];
  const messages = new Messages({ me: "alice", log, emit: (e) => events.push(e) });
  return { events, messages, log };
}

/** A log that keeps (is persistent) and records what it is told. */
class RecordingLog extends MemoryLog {
  override readonly persistent = true;
  readonly settled: [string, string, string, string | undefined][] = [];
  failWrites = false;
  override addOutgoing(msg: Parameters<MemoryLog["addOutgoing"]>[0]): void {
    if (this.failWrites) throw new Error("Cannot write to history h.sqlite: disk full");
    super.addOutgoing(msg);
  }
  override addIncoming(msg: Parameters<MemoryLog["addIncoming"]>[0]): boolean {
    if (this.failWrites) throw new Error("Cannot write to history h.sqlite: disk full");
    return super.addIncoming(msg);
  }
  override settle(peer: string, uid: string, o: { state: string; reason?: string }): void {
    this.settled.push([peer, uid, o.state, o.reason]);
  }
}

/** Lets the current task end, as the peer's does after handing a message to a link. */
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("a sent message gets a session id, a uid and its time; its fate names both", async () => {
  const { events, messages } = setup();
  const before = Date.now();
  const a = messages.send("bob", "hi", false);
  const b = messages.send("carol", "all", true);
  await nextTask();
  assert.equal(a.id, 1);
  assert.equal(b.id, 2);
  assert.match(a.uid!, /^[0-9a-f]{32}$/);
  assert.notEqual(a.uid, b.uid);
  assert.ok(a.time! >= before && a.time! <= Date.now());
  assert.deepEqual(events[0], {
    event: "sent",
    to: "bob",
    id: 1,
    text: "hi",
    uid: a.uid,
    time: new Date(a.time!).toISOString(),
  });
  assert.equal(events[1].event === "sent" && events[1].group, true);
  messages.delivered("bob", 1, "direct");
  messages.undelivered("carol", 2, "no connection to carol within 30 s");
  messages.delivered("bob", 1, "direct"); // settled already: nothing more
  assert.deepEqual(events.slice(2), [
    { event: "delivered", to: "bob", id: 1, uid: a.uid },
    {
      event: "undelivered",
      to: "carol",
      id: 2,
      reason: "no connection to carol within 30 s",
      uid: b.uid,
    },
  ]);
});

Deno.test("a received message is reported once per (sender, uid); an old sender's gets a uid", () => {
  const { events, messages } = setup();
  const uid = randomUid();
  const msg = { group: false, id: 4, text: "yo", uid, time: 1_000 };
  messages.received("bob", msg, "relay");
  messages.received("bob", { ...msg, id: 1 }, "direct"); // resent after bob restarted
  messages.received("carol", msg, "direct"); // another sender's uid is another message
  messages.received("bob", { group: true, id: 5, text: "old" }, "direct");
  assert.deepEqual(events.map((e) => e.event === "message" && `${e.from}:${e.text}:${e.to}`), [
    "bob:yo:alice",
    "carol:yo:alice",
    "bob:old:*",
  ]);
  assert.deepEqual(events[0], {
    event: "message",
    from: "bob",
    to: "alice",
    text: "yo",
    id: 4,
    path: "relay",
    uid,
    time: "1970-01-01T00:00:01.000Z",
  });
  const old = events[2];
  assert.ok(old.event === "message" && /^[0-9a-f]{32}$/.test(old.uid));
});

Deno.test("closing: with a persistent log, unsettled messages stay pending, and say so", () => {
  const log = new RecordingLog();
  const { events, messages } = setup(log);
  const a = messages.send("bob", "one", false);
  messages.undelivered("bob", a.id, "bob went away");
  const b = messages.send("bob", "two", false);
  messages.closing();
  messages.undelivered("bob", b.id, "the client closed");
  assert.deepEqual(log.settled, [["bob", a.uid, "undelivered", "bob went away"]]);
  const last = events.at(-1);
  assert.ok(last?.event === "undelivered");
  assert.equal(
    last.reason,
    "the client closed; it stays pending and is sent again at the next start",
  );
});

Deno.test("closing without a history: the message is given up as before", () => {
  const { events, messages } = setup();
  const a = messages.send("bob", "one", false);
  messages.closing();
  messages.undelivered("bob", a.id, "the client closed");
  assert.ok(events.at(-1)?.event === "undelivered");
  assert.equal((events.at(-1) as { reason: string }).reason, "the client closed");
});

Deno.test("a resumed message keeps its uid and time and gets a new session id", () => {
  const { events, messages } = setup();
  messages.send("bob", "first", false);
  const stored: StoredMessage = {
    uid: randomUid(),
    peer: "bob",
    outgoing: true,
    group: false,
    time: 5_000,
    text: "from the last run",
    state: "sending",
  };
  const msg = messages.resume(stored);
  assert.deepEqual(msg, {
    group: false,
    text: "from the last run",
    uid: stored.uid,
    time: 5000,
    id: 2,
  });
  assert.deepEqual(events.at(-1), {
    event: "sent",
    to: "bob",
    id: 2,
    text: "from the last run",
    uid: stored.uid,
    time: "1970-01-01T00:00:05.000Z",
    resumed: true,
  });
});

Deno.test("a history that cannot write: a new message is sent and said not kept, a received one still shown", async () => {
  const log = new RecordingLog();
  const { events, messages } = setup(log);
  log.failWrites = true;
  const msg = messages.send("bob", "lost?", false);
  await nextTask();
  assert.deepEqual(events.map((e) => e.event), ["error", "sent"]);
  assert.deepEqual(events[0], {
    event: "error",
    message: "Message #1 to bob is sent but not kept in the history: " +
      "Cannot write to history h.sqlite: disk full",
  });
  messages.delivered("bob", msg.id, "direct");
  messages.received(
    "bob",
    { group: false, id: 1, text: "still shown", uid: randomUid(), time: 1 },
    "direct",
  );
  assert.deepEqual(events.slice(2).map((e) => e.event), ["delivered", "error", "message"]);
});

Deno.test("a new message is recorded once the task that sent it ends, then reported `sent`", async () => {
  const trace: string[] = [];
  class TracingLog extends MemoryLog {
    override addOutgoing(msg: Parameters<MemoryLog["addOutgoing"]>[0]): void {
      trace.push(`record ${msg.text}`);
    }
  }
  const messages = new Messages({
    me: "alice",
    log: new TracingLog(),
    emit: (e) => trace.push(`report ${e.event} ${e.event === "sent" ? e.text : ""}`.trim()),
  });
  messages.send("bob", "one", false);
  messages.send("carol", "two", false);
  trace.push("task ends"); // node:dgram hands the datagrams to the kernel now
  await nextTask();
  assert.deepEqual(trace, [
    "task ends",
    "record one",
    "record two",
    "report sent one",
    "report sent two",
  ]);
  // A group copy (`/all`) is recorded and reported at once, after those before it.
  messages.send("bob", "four", false);
  messages.send("bob", "to all", true);
  assert.deepEqual(trace.slice(5), [
    "record four",
    "report sent four",
    "record to all",
    "report sent to all",
  ]);
  trace.splice(5);
  // Closing records at once what is not yet (and leaves no timer behind).
  messages.send("bob", "three", false);
  messages.closing();
  assert.deepEqual(trace.slice(5), ["record three", "report sent three"]);
  messages.release();
});

Deno.test("`sent` waits until the log has written the record; a fate that comes first does not", async () => {
  const trace: string[] = [];
  /** A log that groups its writes, as the history does: written when the test says. */
  class BatchingLog extends MemoryLog {
    override readonly persistent = true;
    readonly #waiting: (() => void)[] = [];
    override addOutgoing(msg: Parameters<MemoryLog["addOutgoing"]>[0]): void {
      trace.push(`queue ${msg.text}`);
    }
    override settle(_peer: string, _uid: string, o: { state: string }): void {
      trace.push(`queue ${o.state}`);
    }
    override flush(): void {
      trace.push("write");
      for (const callback of this.#waiting.splice(0)) callback();
    }
    override flushed(callback: () => void): void {
      this.#waiting.push(callback);
    }
  }
  const log = new BatchingLog();
  const messages = new Messages({
    me: "alice",
    log,
    emit: (e) => trace.push(`report ${e.event} ${"text" in e ? e.text : ""}`.trim()),
  });
  messages.send("bob", "one", false);
  await nextTask();
  assert.deepEqual(trace, ["queue one"]);
  log.flush();
  assert.deepEqual(trace.splice(0), ["queue one", "write", "report sent one"]);
  // Acknowledged before its record was written: `sent`, then `delivered`, both at once.
  const two = messages.send("bob", "two", false);
  await nextTask();
  messages.delivered("bob", two.id, "direct");
  assert.deepEqual(trace.splice(0), [
    "queue two",
    "report sent two",
    "report delivered",
    "queue delivered",
  ]);
  // Closing writes what is queued, so what is reported `sent` is on disk.
  messages.send("bob", "three", false);
  messages.closing();
  assert.deepEqual(trace.splice(0), ["queue three", "write", "report sent three"]);
  messages.release();
});

Deno.test("drain waits for every sent message to be settled", async () => {
  const { messages } = setup();
  const a = messages.send("bob", "one", false);
  let drained = false;
  const done = messages.drain().then(() => drained = true);
  await Promise.resolve();
  assert.equal(drained, false);
  messages.delivered("bob", a.id, "relay");
  await done;
  assert.equal(drained, true);
});

Deno.test("recorded before `sent` and before `message`; `delivered` is reported, then recorded", () => {
  const trace: string[] = [];
  class TracingLog extends MemoryLog {
    override readonly persistent = true;
    override addOutgoing(): void {
      trace.push("record sending");
    }
    override addIncoming(msg: Parameters<MemoryLog["addIncoming"]>[0]): boolean {
      trace.push("record received");
      return super.addIncoming(msg);
    }
    override settle(_peer: string, _uid: string, o: { state: string }): void {
      trace.push(`record ${o.state}`);
    }
  }
  const messages = new Messages({
    me: "alice",
    log: new TracingLog(),
    emit: (e) => trace.push(`report ${e.event}`),
  });
  const a = messages.send("bob", "one", false);
  messages.delivered("bob", a.id, "direct");
  const b = messages.send("bob", "two", false);
  messages.undelivered("bob", b.id, "bob went away");
  messages.received(
    "bob",
    { group: false, id: 1, text: "hi", uid: randomUid(), time: 1 },
    "direct",
  );
  assert.deepEqual(trace, [
    "record sending",
    "report sent",
    "report delivered",
    "record delivered",
    "record sending",
    "report sent",
    "record undelivered",
    "report undelivered",
    "record received",
    "report message",
  ]);
});
