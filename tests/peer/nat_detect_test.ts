import assert from "node:assert/strict";
import { NatDetector } from "../../lib/peer/nat_detect.ts";
import type { NatKind } from "../../lib/protocol/whoami.ts";
import { encodeWhoami } from "../../lib/protocol/whoami.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

const server = { host: "198.51.100.10", port: 7000 };
const observed = { host: "203.0.113.5", port: 4000 };

function setup(indirect: string[] = []) {
  const clock = new FakeClock();
  const sent: { to: Endpoint; at: number }[] = [];
  const log: string[] = [];
  const nat = new NatDetector({
    server,
    send: (data, to) => {
      assert.deepEqual(data, encodeWhoami());
      sent.push({ to, at: clock.now() });
    },
    connect: (peer) => log.push(`connect ${peer}`),
    onDetected: (kind: NatKind) => log.push(`nat ${kind}`),
    indirect: () => indirect,
    clock,
  });
  return { clock, sent, log, nat, start: clock.now() };
}

Deno.test("NAT detection: three whoamis a second apart to port + 1, then introductions go ahead", () => {
  const { clock, sent, log, nat, start } = setup();
  nat.detect();
  nat.connect("bob");
  assert.deepEqual(log, [], "held until the NAT kind is known");
  clock.advance(10_000);
  assert.deepEqual(sent.map((s) => [s.to.port, s.at - start]), [[7001, 0], [7001, 1000], [
    7001,
    2000,
  ]]);
  assert.deepEqual(log, ["connect bob"]);
  assert.equal(nat.kind, undefined);
  nat.connect("carol");
  assert.deepEqual(log, ["connect bob", "connect carol"], "no longer held");
});

Deno.test("NAT detection: the answer sets the kind, reports it, redoes indirect introductions, then the held ones", () => {
  const { clock, log, nat } = setup(["dave", "bob"]);
  nat.detect();
  nat.connect("bob");
  clock.advance(500);
  nat.answer(observed, { ...observed, port: 4001 });
  assert.equal(nat.kind, "hard");
  assert.deepEqual(log, ["nat hard", "connect dave", "connect bob"], "bob only once");
  clock.advance(10_000);
  assert.equal(log.length, 3, "no more probes or connects");
  // A late answer (no request out) changes nothing.
  nat.answer(observed, observed);
  assert.equal(nat.kind, "hard");
  // Detected again (a new coordinator): easy this time.
  nat.detect();
  nat.answer(observed, observed);
  assert.equal(nat.kind, "easy");
});

Deno.test("NAT detection: no answer is taken before the main port has seen us; close stops probing", () => {
  const { clock, sent, nat } = setup();
  nat.detect();
  nat.answer(undefined, observed);
  assert.equal(nat.kind, undefined);
  nat.close();
  clock.advance(10_000);
  assert.equal(sent.length, 1);
  assert.equal(clock.pending, 0);
});
