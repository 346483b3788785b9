import assert from "node:assert/strict";
import { Delivery, MAX_TEXT_BYTES } from "../../lib/peer/delivery.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { Messages } from "../../lib/peer/messages.ts";
import type { ChatMessage } from "../../lib/protocol/chat_message.ts";
import { MemoryLog, type StoredMessage } from "../../lib/store/message_log.ts";

/** A log whose pending messages are given (the last run's). */
class PendingLog extends MemoryLog {
  constructor(readonly left: StoredMessage[]) {
    super();
  }
  override pending(): StoredMessage[] {
    return this.left;
  }
}

function pendingTo(peer: string, text: string): StoredMessage {
  const uid = crypto.randomUUID().replaceAll("-", "");
  return { uid, peer, outgoing: true, group: false, time: 1, text, state: "sending" };
}

/** A Delivery over fakes that record where each message went. */
function setup(o: { online?: string[]; mailbox?: boolean; pending?: StoredMessage[] } = {}) {
  const events: PeerEvent[] = [];
  const online = new Set(o.online ?? []);
  const linked: [string, string][] = [];
  const deposited: [string, string][] = [];
  const wanted: string[] = [];
  const closed: [string, string][] = [];
  const changed = new Set<string>();
  let phase: "login" | "ready" | "closed" = "login";
  const mailbox = {
    available: o.mailbox ?? false,
    setPort: (_port: number, _waiting: number) => {
      mailbox.available = true;
    },
    deposit: (to: string, mail: { text: string }) => {
      deposited.push([to, mail.text]);
      return Promise.resolve();
    },
  };
  // deno-lint-ignore prefer-const
  let delivery: Delivery;
  const messages = new Messages({
    me: "alice",
    log: new PendingLog(o.pending ?? []),
    emit: (e) => events.push(e),
    divert: (peer, msg) => delivery.divert(peer, msg),
  });
  const links = {
    open: (user: string) => ({ send: (msg: ChatMessage) => linked.push([user, msg.text]) }),
    close: (user: string, reason: string) => {
      closed.push([user, reason]);
      // What a link does when closed with messages in it: gives them up.
      messages.undelivered(user, 1, reason);
    },
  } as unknown as ConstructorParameters<typeof Delivery>[0]["links"];
  delivery = new Delivery({
    me: "alice",
    online: (user) => online.has(user),
    phase: () => phase,
    trust: { hasChanged: (user) => changed.has(user) },
    door: { want: (user) => wanted.push(user) },
    links,
    messages,
    mailbox,
    emit: (e) => events.push(e),
  });
  const errors = () => events.flatMap((e) => e.event === "error" ? [e.message] : []);
  const setPhase = (p: typeof phase) => phase = p;
  return {
    delivery,
    events,
    errors,
    online,
    linked,
    deposited,
    wanted,
    closed,
    changed,
    setPhase,
    mailbox,
  };
}

Deno.test("delivery: online goes by link, offline to the mailbox, or is refused without one", () => {
  const t = setup({ online: ["bob"], mailbox: true });
  t.setPhase("ready");
  assert.equal(t.delivery.send("bob", "hi", false), 1);
  assert.equal(t.delivery.send("carol", "later", false), 2);
  assert.deepEqual(t.linked, [["bob", "hi"]]);
  assert.deepEqual(t.wanted, ["bob"]);
  assert.deepEqual(t.deposited, [["carol", "later"]]);
  // A group copy never goes to a mailbox.
  assert.equal(t.delivery.send("carol", "all", true), undefined);
  assert.match(t.errors()[0], /^Cannot send to carol: carol is not online$/);

  const none = setup({ online: [] });
  none.setPhase("ready");
  assert.equal(none.delivery.send("dave", "hi", false), undefined);
  assert.deepEqual(none.errors(), ["Cannot send to dave: dave is not online"]);
});

Deno.test("delivery: refusals name the reason: ourselves, a changed key, too long", () => {
  const t = setup({ online: ["bob"] });
  t.changed.add("bob");
  assert.equal(t.delivery.send("alice", "hi", false), undefined);
  assert.equal(t.delivery.send("bob", "hi", false), undefined);
  t.changed.clear();
  assert.equal(t.delivery.send("bob", "x".repeat(MAX_TEXT_BYTES + 1), false), undefined);
  assert.deepEqual(t.errors(), [
    "Cannot send to alice: that is you",
    "Cannot send to bob: bob's key has changed; compare /fingerprint bob with them, then /trust bob",
    `Cannot send to bob: the message is ${
      MAX_TEXT_BYTES + 1
    } bytes, the limit is ${MAX_TEXT_BYTES}`,
  ]);
  assert.deepEqual(t.linked, []);
});

Deno.test("delivery: a user seen this session and gone is told as offline; nobody online at all", () => {
  const t = setup();
  t.setPhase("ready");
  t.delivery.online("bob");
  assert.equal(t.delivery.send("bob", "hi", false), undefined);
  assert.match(t.errors()[0], /^Cannot send to bob: bob is offline: /);
  assert.deepEqual(t.delivery.sendAll([], "hi"), []);
  assert.equal(t.errors()[1], "Cannot send to everyone: nobody else is online");
});

Deno.test("delivery: last run's pending messages wait for their recipient, or the mailbox", () => {
  const t = setup({
    online: ["bob"],
    pending: [pendingTo("bob", "one"), pendingTo("carol", "two"), pendingTo("carol", "three")],
  });
  t.delivery.ready(); // no mailbox yet: carol's wait
  t.setPhase("ready");
  assert.deepEqual(t.linked, [["bob", "one"]]);
  assert.deepEqual(t.deposited, []);
  t.delivery.mailboxAt(7001, 0); // the first Mailbox: carol's go there
  assert.deepEqual(t.deposited, [["carol", "two"], ["carol", "three"]]);
  t.delivery.online("carol"); // already left: nothing twice
  assert.deepEqual(t.linked, [["bob", "one"]]);
});

Deno.test("delivery: a pending message waits until its recipient comes online", () => {
  const t = setup({ pending: [pendingTo("bob", "one")] });
  t.delivery.ready();
  t.setPhase("ready");
  assert.deepEqual(t.linked, []);
  t.online.add("bob");
  t.delivery.online("bob");
  assert.deepEqual(t.linked, [["bob", "one"]]);
});

Deno.test("delivery: a Mailbox during login is kept until ready", () => {
  const t = setup({ pending: [pendingTo("carol", "two")] });
  t.delivery.mailboxAt(7001, 2);
  assert.equal(t.mailbox.available, false);
  t.setPhase("ready");
  t.delivery.ready();
  assert.equal(t.mailbox.available, true);
  assert.deepEqual(t.deposited, [["carol", "two"]]);
});

Deno.test("delivery: an online user the coordinator will not introduce gets no mailbox copy", () => {
  const t = setup({ online: ["bob"], mailbox: true });
  t.setPhase("ready");
  t.delivery.send("bob", "hi", false);
  t.delivery.unavailable("bob", "bob cannot be introduced");
  assert.deepEqual(t.closed, [["bob", "bob cannot be introduced"]]);
  assert.deepEqual(t.deposited, []);
  assert.deepEqual(t.events.at(-1), {
    event: "undelivered",
    to: "bob",
    id: 1,
    reason: "bob cannot be introduced",
    uid: (t.events[0] as { uid: string }).uid,
  });
  // Offline: nothing to close; a message given up later still goes to the mailbox.
  t.delivery.unavailable("carol", "offline");
  assert.deepEqual(t.closed.length, 1);
  assert.equal(
    t.delivery.divert("bob", { id: 9, uid: "u", time: 1, text: "x", group: false }),
    true,
  );
  assert.deepEqual(t.deposited, [["bob", "x"]]);
});
