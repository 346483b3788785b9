import assert from "node:assert/strict";
import { describeEvent, sanitize } from "../../lib/ui/terminal.ts";

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

Deno.test("a history line shows its date, who wrote to whom, and how it fared", () => {
  const base = {
    event: "history" as const,
    source: "backlog" as const,
    uid: "00".repeat(16),
    time: new Date(2026, 11, 7, 9, 5).toISOString(),
  };
  assert.equal(
    describeEvent({ ...base, from: "alice", to: "bob", text: "hi", state: "delivered" }),
    "(backlog 2026-12-07 09:05) you → bob: hi  ✓",
  );
  assert.equal(
    describeEvent({ ...base, from: "alice", to: "bob", text: "hi", state: "sending" }),
    "(backlog 2026-12-07 09:05) you → bob: hi  (pending)",
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
    "(search 2026-12-07 09:05) you → bob: hi  ✗ not delivered: bob did not accept your request to talk",
  );
  assert.equal(
    describeEvent({ ...base, from: "bob", to: "*", group: true, text: "yo", state: "received" }),
    "(backlog 2026-12-07 09:05) [all] bob: yo",
  );
});
