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
