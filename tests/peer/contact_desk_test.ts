import assert from "node:assert/strict";
import { encodeKey } from "../../lib/crypto/identity.ts";
import { ContactDesk } from "../../lib/peer/contact_desk.ts";
import { ContactRecord } from "../../lib/peer/contacts.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import type { ContactOp } from "../../lib/protocol/seed.ts";

const BOB_KEY = encodeKey(new Uint8Array(32).fill(7));

/** A desk over a real record in a temp folder, and a presence that records what it is told. */
async function withDesk(
  fn: (t: {
    desk: ContactDesk;
    events: PeerEvent[];
    sent: [ContactOp, string, string | undefined][];
    setPhase: (p: "login" | "ready" | "closed") => void;
  }) => Promise<void> | void,
): Promise<void> {
  const configDir = await Deno.makeTempDir({ prefix: "p2p-contact-desk-test-" });
  try {
    const record = await ContactRecord.open({ configDir, username: "alice" });
    const events: PeerEvent[] = [];
    const sent: [ContactOp, string, string | undefined][] = [];
    let phase: "login" | "ready" | "closed" = "login";
    const desk = new ContactDesk({
      me: "alice",
      record,
      presence: {
        contact: (op, target, note) => sent.push([op, target, note]),
        users: new Map([["bob", { host: "127.0.0.1", port: 4000 }]]),
      },
      phase: () => phase,
      emit: (e) => events.push(e),
    });
    await fn({ desk, events, sent, setPhase: (p) => phase = p });
    await desk.flush();
  } finally {
    await Deno.remove(configDir, { recursive: true });
  }
}

Deno.test("contact desk: events heard while logging in follow ready, in order", () =>
  withDesk(({ desk, events, setPhase }) => {
    assert.equal(
      desk.onServerMessage({ type: "request", username: "bob", key: BOB_KEY, note: "hi" }),
      true,
    );
    assert.equal(desk.onServerMessage({ type: "bye", reason: "x" }), false);
    assert.equal(events.length, 0);
    setPhase("ready");
    events.push({ event: "error", message: "ready" }); // stands for `ready`
    desk.ready();
    assert.deepEqual(events.map((e) => e.event), ["error", "contact-request"]);
    desk.onServerMessage({ type: "contact", username: "bob", key: BOB_KEY });
    assert.equal(events.at(-1)?.event, "contact-added");
  }));

Deno.test("contact desk: answers need a request, removal a contact; mistakes say so", () =>
  withDesk(({ desk, events, sent, setPhase }) => {
    setPhase("ready");
    desk.add("alice");
    desk.accept("bob");
    desk.decline("bob");
    desk.remove("bob");
    assert.deepEqual(sent, []);
    assert.deepEqual(events, [
      { event: "error", message: "Cannot add yourself as a contact" },
      { event: "error", message: "No contact request from bob to accept" },
      { event: "error", message: "No contact request from bob to decline" },
      { event: "error", message: "bob is not one of your contacts" },
    ]);
  }));

Deno.test("contact desk: operations go to the coordinator and report what changed", () =>
  withDesk(({ desk, events, sent, setPhase }) => {
    setPhase("ready");
    desk.add("bob", "from\tthe club");
    desk.onServerMessage({ type: "request", username: "bob", key: BOB_KEY, note: "" });
    desk.accept("bob");
    desk.onServerMessage({ type: "contact", username: "bob", key: BOB_KEY });
    assert.equal(desk.list().contacts[0].online, true);
    desk.block("bob", false);
    desk.block("bob", true);
    assert.deepEqual(sent.map(([op, target]) => [op, target]), [
      ["add", "bob"],
      ["accept", "bob"],
      ["block", "bob"],
      ["unblock", "bob"],
    ]);
    assert.equal(sent[0][2], "from the club"); // the note is cleaned before it goes
    assert.deepEqual(events.map((e) => e.event), [
      "contact-request-sent",
      "contact-request",
      "contact-added",
      "contacts",
      "contact-removed",
      "contact-blocked",
      "contact-blocked",
    ]);
  }));
