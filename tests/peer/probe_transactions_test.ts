import assert from "node:assert/strict";
import { MAX_PENDING_PROBES, ProbeTransactions } from "../../lib/peer/probe_transactions.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";

const EP: Endpoint = { host: "203.0.113.9", port: 4000 };

function counter(): () => number {
  let n = 0;
  return () => n++;
}

Deno.test("transactions: an ack counts once, within 5 s", () => {
  const txns = new ProbeTransactions(counter());
  const a = txns.probe(EP, 0, 100);
  const b = txns.birthdayProbe(EP, 3, 100);
  assert.deepEqual(txns.take(a, 5100), {
    probe: { endpoint: EP, socket: 0, sentAt: 100 },
    birthday: false,
  });
  assert.equal(txns.take(a, 5100), undefined);
  assert.equal(txns.take(b, 5101), undefined, "too late, and forgotten");
  assert.equal(txns.take(12345, 0), undefined);
  const c = txns.probe(EP, 0, 0);
  txns.clear();
  assert.equal(txns.take(c, 0), undefined);
});

Deno.test("transactions: txids are never reused while pending", () => {
  const values = [7, 7, 7, 8];
  const txns = new ProbeTransactions(() => values.shift()!);
  assert.equal(txns.probe(EP, 0, 0), 7);
  assert.equal(txns.birthdayProbe(EP, 1, 0), 8);
});

Deno.test("transactions: the last 256 normal probes are kept; birthday ones apart, for 5 s", () => {
  const txns = new ProbeTransactions(counter());
  const birthday = txns.birthdayProbe(EP, 1, 0);
  const normal = Array.from({ length: MAX_PENDING_PROBES + 1 }, () => txns.probe(EP, 0, 0));
  assert.equal(txns.take(normal[0], 0), undefined, "the oldest went");
  assert.ok(txns.take(normal[1], 0));
  assert.equal(txns.take(birthday, 0)?.birthday, true, "normal probes never push these out");
  const old = txns.birthdayProbe(EP, 1, 0);
  txns.birthdayProbe(EP, 1, 5001); // prunes the expired one
  assert.equal(txns.take(old, 5000), undefined);
});
