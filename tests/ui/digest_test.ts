import assert from "node:assert/strict";
import { Digest } from "../../lib/ui/digest.ts";

const U = "00".repeat(16);
const T = new Date().toISOString();

Deno.test("/all is one line, and its deliveries one more when all are settled", () => {
  const d = new Digest();
  d.beginGroup("hello");
  assert.deepEqual(
    d.take({ event: "sent", uid: U, time: T, to: "bob", id: 1, text: "hello", group: true }),
    [],
  );
  assert.deepEqual(
    d.take({ event: "sent", uid: U, time: T, to: "carol", id: 2, text: "hello", group: true }),
    [],
  );
  assert.equal(d.endGroup(), "[all] you → bob, carol: hello  (#1–#2, sending…)");
  assert.deepEqual(d.take({ event: "delivered", uid: U, to: "bob", id: 1 }), []);
  assert.deepEqual(d.take({ event: "delivered", uid: U, to: "carol", id: 2 }), [
    { summary: "✓ [all] delivered to bob, carol", kind: "delivered" },
  ]);
  // A plain message is shown as it is.
  const sent = { event: "sent", uid: U, time: T, to: "bob", id: 3, text: "x" } as const;
  assert.deepEqual(d.take(sent), [{ event: sent }]);
});

Deno.test("a failure in a group is shown at once; the summary names who has it", () => {
  const d = new Digest();
  d.beginGroup("hi");
  d.take({ event: "sent", uid: U, time: T, to: "bob", id: 1, text: "hi", group: true });
  d.take({ event: "sent", uid: U, time: T, to: "carol", id: 2, text: "hi", group: true });
  d.endGroup();
  assert.deepEqual(d.take({ event: "delivered", uid: U, to: "carol", id: 2 }), []);
  const failed = { event: "undelivered", uid: U, to: "bob", id: 1, reason: "gone" } as const;
  assert.deepEqual(d.take(failed), [
    { event: failed },
    { summary: "✓ [all] delivered to carol", kind: "delivered" },
  ]);
  d.beginGroup("nobody");
  assert.equal(d.endGroup(), undefined);
});

Deno.test("path notices: a relay notice only with messages on their way, never the same twice", () => {
  const d = new Digest();
  const relay = { event: "path", user: "bob", path: "relay" } as const;
  const direct = { event: "path", user: "bob", path: "direct", endpoint: "192.0.2.1:4" } as const;
  assert.deepEqual(d.take(relay), [], "nothing sent: no news");
  assert.deepEqual(d.take(direct), [{ event: direct }]);
  assert.deepEqual(d.take(direct), []);
  d.take({ event: "sent", uid: U, time: T, to: "bob", id: 1, text: "x" });
  assert.deepEqual(d.take(relay), [{ event: relay }]);
  assert.deepEqual(d.take(relay), []);
  d.take({ event: "delivered", uid: U, to: "bob", id: 1 });
  assert.deepEqual(d.take(direct), [{ event: direct }]);
  assert.deepEqual(d.take(relay), [], "settled: the peer going away is no news");
});
