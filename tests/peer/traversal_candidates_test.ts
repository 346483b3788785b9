/**
 * The path finder with announced candidates (`v6`, `mapped`): when each is probed and how it
 * ranks. The clock is a FakeClock; the peer is scripted by hand.
 */
import assert from "node:assert/strict";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { type Candidate, type Path, PathFinder } from "../../lib/peer/traversal.ts";
import { FakeClock } from "../support/fake_clock.ts";

const LAN: Endpoint = { host: "10.0.0.7", port: 4000 };
const PUB: Endpoint = { host: "203.0.113.9", port: 4000 };
const MAPPED: Endpoint = { host: "203.0.113.9", port: 41000 };
const V6: Endpoint = { host: "2001:db8:1::7", port: 4000 };

interface Sent {
  at: number;
  to: Endpoint;
  txid: number;
  ttl: number | undefined;
}

/** What the path is via: the kind of a direct path's candidate, or the path's kind. */
function via(path: Path): string {
  return path.kind === "direct" ? path.via : path.kind;
}

function setup() {
  const clock = new FakeClock(0);
  const probes: Sent[] = [];
  const paths: Path[] = [];
  let txid = 0;
  const pf = new PathFinder({
    now: () => clock.now(),
    random: () => ++txid,
    sendProbe: (to, id, { ttl }) => probes.push({ at: clock.now(), to, txid: id, ttl }),
    sendProbeAck: () => {},
    onPath: (p) => paths.push(p),
    onNeedIntroduction: () => {},
    relayAvailable: true,
  });
  const to = (ep: Endpoint) => probes.filter((p) => p.to.host === ep.host && p.to.port === ep.port);
  /** Polls at every deadline up to `until`. */
  const advance = (until: number) => {
    for (let at = pf.nextDeadline(); at !== undefined && at <= until; at = pf.nextDeadline()) {
      clock.advance(Math.max(0, at - clock.now()));
      pf.poll();
    }
    clock.advance(until - clock.now());
  };
  const ackLast = (ep: Endpoint) => pf.onProbeAck(ep, to(ep).at(-1)!.txid);
  return { clock, probes, paths, pf, to, advance, ackLast };
}

const ALL: Candidate[] = [
  { kind: "lan", endpoint: LAN },
  { kind: "public", endpoint: PUB },
  { kind: "mapped", endpoint: MAPPED },
  { kind: "v6", endpoint: V6 },
];

Deno.test("announced candidates: v6 is probed at once like lan; mapped is primed like public", () => {
  const t = setup();
  t.pf.start(ALL);
  t.advance(400);
  const times = (ep: Endpoint) => t.to(ep).map((p) => [p.at, p.ttl]);
  assert.deepEqual(times(V6).slice(0, 2), [[0, undefined], [100, undefined]]);
  assert.deepEqual(times(LAN).slice(0, 2), [[0, undefined], [100, undefined]]);
  for (const ep of [PUB, MAPPED]) {
    assert.deepEqual(times(ep), [[0, 2], [50, 3], [100, undefined], [300, undefined]]);
  }
});

Deno.test("announced candidates: v6 beats public and mapped; only lan beats v6", () => {
  const t = setup();
  t.pf.start(ALL);
  t.advance(150);
  t.ackLast(MAPPED);
  assert.deepEqual(t.pf.path, { kind: "direct", endpoint: MAPPED, via: "mapped", socket: 0 });
  // public ranks like mapped: a working public path does not replace it.
  t.ackLast(PUB);
  assert.equal(via(t.pf.path), "mapped");
  // v6 is still probed (it ranks above), and wins once it answers.
  t.advance(400);
  assert.ok(t.to(V6).some((p) => p.at > 150), "v6 is probed while a worse path is up");
  t.ackLast(V6);
  assert.deepEqual(t.pf.path, { kind: "direct", endpoint: V6, via: "v6", socket: 0 });
  // Neither IPv4 candidate is probed any more in the fast phase; lan still is.
  const after = t.clock.now();
  t.advance(1000);
  assert.equal(t.to(PUB).filter((p) => p.at > after).length, 0);
  assert.equal(t.to(MAPPED).filter((p) => p.at > after).length, 0);
  assert.ok(t.to(LAN).some((p) => p.at > after));
  t.ackLast(LAN);
  assert.equal(via(t.pf.path), "lan");
  assert.deepEqual(t.paths.map(via), [
    "mapped",
    "v6",
    "lan",
  ]);
});

Deno.test("announced candidates: a v4-only introduction still goes direct over public", () => {
  const t = setup();
  t.pf.start([{ kind: "public", endpoint: PUB }]);
  t.advance(150);
  t.ackLast(PUB);
  assert.deepEqual(t.pf.path, { kind: "direct", endpoint: PUB, via: "public", socket: 0 });
  // A later introduction that brings a v6 candidate upgrades the path.
  t.pf.start([{ kind: "public", endpoint: PUB }, { kind: "v6", endpoint: V6 }]);
  assert.equal(t.to(V6).length, 1, "probed at once");
  t.ackLast(V6);
  assert.equal(via(t.pf.path), "v6");
});

Deno.test("announced candidates: a dead v6 path falls back to the relay and searches again", () => {
  const t = setup();
  t.pf.start([{ kind: "public", endpoint: PUB }, { kind: "v6", endpoint: V6 }]);
  t.ackLast(V6);
  assert.equal(via(t.pf.path), "v6");
  // Nobody answers from now on: keepalive at 5 s, dead 3 s later.
  t.advance(9000);
  assert.equal(t.pf.path.kind, "relay");
  assert.equal(t.pf.stats.pathsLost, 1);
  // The new search probes both again, v6 at once.
  const lost = t.paths.length;
  assert.ok(t.to(V6).some((p) => p.at >= 8000));
  t.ackLast(PUB);
  assert.equal(via(t.pf.path), "public");
  assert.equal(t.paths.length, lost + 1);
});
