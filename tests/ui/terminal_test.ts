import assert from "node:assert/strict";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { COMMAND_HELP } from "../../lib/ui/commands.ts";
import { alignHelp, describeEvent, formatStamp, sanitize } from "../../lib/ui/terminal.ts";

Deno.test("a knock is one line: who asked, its fingerprint, and what we answered", () => {
  assert.equal(
    describeEvent({ event: "knock", user: "carol", fingerprint: "ab12 cd34", accepted: true }),
    "carol (fingerprint ab12 cd34) wants to talk: accepted",
  );
  assert.equal(
    sanitize(describeEvent({
      event: "knock",
      user: "mallory\u001b[2J",
      fingerprint: "ab12 cd34",
      accepted: false,
      reason: "you accept only known users (--accept known); write to mallory to talk",
    })),
    "refused a request to talk from mallory�[2J (fingerprint ab12 cd34): you accept only known " +
      "users (--accept known); write to mallory to talk",
  );
});

Deno.test("time stamps show the date when it is not today", () => {
  const now = new Date(2026, 11, 7, 15, 0);
  assert.equal(formatStamp(new Date(2026, 11, 7, 9, 5), now), "09:05");
  assert.equal(formatStamp(new Date(2026, 11, 6, 23, 59), now), "2026-12-06 23:59");
  assert.equal(formatStamp(new Date(2025, 11, 7, 9, 5), now), "2025-12-07 09:05");
});

Deno.test("a changed key's fingerprint says it is new and not accepted; /who shows unread counts", () => {
  assert.equal(
    describeEvent({
      event: "fingerprint",
      user: "bob",
      fingerprint: "1111 2222",
      safety: "12345",
      unaccepted: true,
      previous: "3333 4444",
    }),
    "bob's fingerprint: 1111 2222 (NEW key, not accepted: /trust it once you have compared it); " +
      "safety number with you: 12345",
  );
  const who: PeerEvent = {
    event: "who",
    users: [
      { user: "bob", endpoint: "192.0.2.1:4000", path: "direct" },
      { user: "carol", endpoint: "192.0.2.2:4000", path: "none" },
    ],
  };
  assert.equal(
    describeEvent(who, { unread: (u) => u === "carol" ? 3 : 0 }),
    "online: bob (192.0.2.1:4000, direct), carol (192.0.2.2:4000, none, 3 unread)",
  );
});

Deno.test("contact events are one line each, saying what to type next", () => {
  assert.equal(
    describeEvent({ event: "contact-request", user: "alice", fingerprint: "ab12", note: "hi" }),
    `alice (fingerprint ab12) asks to be your contact: "hi" — /accept alice or /decline alice`,
  );
  assert.equal(
    describeEvent({ event: "contact-added", user: "bob", fingerprint: "cd34" }),
    "bob (fingerprint cd34) is now your contact",
  );
  assert.equal(
    describeEvent({ event: "contact-removed", user: "bob" }),
    "bob is no longer your contact",
  );
  const today = new Date();
  today.setHours(9, 5, 0, 0);
  assert.equal(
    describeEvent({
      event: "contacts",
      contacts: [
        { user: "bob", fingerprint: "cd34", online: true },
        { user: "carol", fingerprint: "ef56", online: false, lastSeen: today.toISOString() },
        { user: "dave", fingerprint: "0123", online: false },
      ],
      requests: [{ user: "erin", fingerprint: "4567", note: "" }],
    }),
    "contacts: bob (online), carol (last seen 09:05), dave (offline); waiting for your answer: erin",
  );
  assert.equal(
    describeEvent({ event: "contacts", contacts: [], requests: [] }),
    "no contacts yet (/add USER)",
  );
});

Deno.test("a history line shows where it comes from, who wrote to whom, and how it fared", () => {
  const base = {
    event: "history" as const,
    source: "backlog" as const,
    uid: "00".repeat(16),
    time: new Date(2026, 11, 7, 9, 5).toISOString(),
  };
  assert.equal(
    describeEvent({ ...base, from: "alice", to: "bob", text: "hi", state: "delivered" }),
    "(backlog) you → bob: hi  ✓",
  );
  assert.equal(
    describeEvent({ ...base, from: "alice", to: "bob", text: "hi", state: "sending" }),
    "(backlog) you → bob: hi  (pending)",
  );
  assert.equal(
    describeEvent({
      ...base,
      source: "search",
      from: "alice",
      to: "bob",
      text: "hi",
      state: "undelivered",
      reason: "bob did not accept your request to talk",
    }),
    "(search) you → bob: hi  ✗ not delivered: bob did not accept your request to talk",
  );
  assert.equal(
    describeEvent({ ...base, from: "bob", to: "*", group: true, text: "yo", state: "received" }),
    "(backlog) [all] bob: yo",
  );
});

Deno.test("/help shows every command's description in one column", () => {
  const lines = alignHelp(COMMAND_HELP);
  const commands = lines.filter((l) => l.startsWith("/"));
  assert.ok(commands.length >= 10);
  const column = (l: string) => l.search(/ {2}\S/) + 2;
  for (const line of commands) assert.equal(column(line), column(commands[0]), line);
  assert.match(lines.find((l) => l.startsWith("/fingerprint"))!, /^\/fingerprint \[USER\] {2}show/);
  assert.equal(lines.at(-1), COMMAND_HELP.at(-1)); // the Keys line is prose, left as it is
});
