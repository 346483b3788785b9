import assert from "node:assert/strict";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { Conversations } from "../../lib/ui/conversations.ts";

const U = "00".repeat(16);
const T = new Date().toISOString();

const msg = (from: string, text: string): PeerEvent => ({
  event: "message",
  uid: U,
  time: T,
  from,
  to: "alice",
  text,
  id: 1,
  path: "direct",
});

Deno.test("in the everyone view nothing is marked or unread", () => {
  const talk = new Conversations();
  assert.equal(talk.note(msg("bob", "hi")), false);
  assert.deepEqual(talk.unread(), []);
  assert.equal(talk.lastFrom, "bob");
});

Deno.test("in a conversation, others' messages are marked and counted unread until opened", () => {
  const talk = new Conversations();
  talk.open("bob");
  assert.equal(talk.note(msg("bob", "1")), false);
  assert.equal(talk.note(msg("carol", "2")), true);
  assert.equal(talk.note(msg("carol", "3")), true);
  assert.equal(talk.note(msg("dave", "4")), true);
  // What we send to others is marked too, but is not unread.
  assert.equal(talk.note({ event: "sent", uid: U, time: T, to: "dave", id: 9, text: "x" }), true);
  assert.equal(talk.note({ event: "online", user: "erin", endpoint: "192.0.2.1:1" }), false);
  assert.deepEqual(talk.unread(), [["carol", 2], ["dave", 1]]);
  assert.equal(talk.unreadFrom("carol"), 2);
  assert.equal(talk.lastFrom, "dave");
  const backlog = talk.open("carol");
  assert.deepEqual(backlog.map((e) => e.event === "message" && e.text), ["2", "3"]);
  assert.equal(talk.target, "carol");
  assert.deepEqual(talk.unread(), [["dave", 1]]);
  assert.deepEqual(talk.open(undefined), []);
  assert.equal(talk.target, undefined);
  assert.deepEqual(talk.unread(), [["dave", 1]], "the everyone view does not read them all");
});

Deno.test("the backlog of a contact is bounded", () => {
  const talk = new Conversations();
  talk.open("bob");
  for (let i = 0; i < 250; i++) talk.note(msg("carol", String(i)));
  assert.equal(talk.unreadFrom("carol"), 200);
  assert.equal(talk.open("carol")[0].event === "message" && talk.target, "carol");
});

Deno.test("names resolve case-insensitively when that is unambiguous", () => {
  const talk = new Conversations();
  assert.equal(talk.resolve("BOB", ["bob", "carol"]), "bob");
  assert.equal(talk.resolve("bob", ["bob", "Bob"]), "bob", "an exact match wins");
  assert.equal(talk.resolve("BOB", ["bob", "Bob"]), "BOB", "ambiguous: as typed");
  assert.equal(talk.resolve("zed", ["bob"]), "zed");
  talk.note(msg("Dave", "hi"));
  assert.equal(talk.resolve("dave", []), "Dave", "who wrote to us counts, online or not");
});

Deno.test("elsewhere asks without counting: a backlog shown again changes nothing", () => {
  const talk = new Conversations();
  talk.open("bob");
  const e = msg("carol", "hi");
  assert.equal(talk.elsewhere(e), true);
  assert.deepEqual(talk.unread(), []);
  talk.note(e);
  talk.note(msg("bob", "latest"));
  const backlog = talk.open("carol");
  for (const old of backlog) assert.equal(talk.elsewhere(old), false);
  assert.equal(talk.lastFrom, "bob");
});
