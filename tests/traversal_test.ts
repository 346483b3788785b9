import assert from "node:assert/strict";
import type { Endpoint } from "../lib/protocol/endpoint.ts";
import {
  type Candidate,
  describePath,
  MAX_CANDIDATES,
  MAX_PENDING_PROBES,
  MAX_PRFLX,
  type Path,
  PathFinder,
  type PathFinderOptions,
} from "../lib/traversal.ts";
import {
  type NatKind,
  prng,
  type VirtualHost,
  VirtualNetwork,
  type VirtualRouter,
} from "./support/virtual_nat.ts";

// ---- Part 1: the state machine alone, with a fake clock and a scripted peer ----

interface SentProbe {
  at: number;
  to: Endpoint;
  txid: number;
  ttl: number | undefined;
}

/** A PathFinder whose callbacks record into arrays, with a hand-driven clock. */
class Fake {
  now = 0;
  readonly probes: SentProbe[] = [];
  readonly acks: { at: number; to: Endpoint; txid: number }[] = [];
  readonly paths: { at: number; path: Path }[] = [];
  readonly intros: number[] = [];
  readonly pf: PathFinder;
  onIntro: () => void = () => {};

  constructor(options: Partial<PathFinderOptions> = {}, seed = 7) {
    const rand = prng(seed);
    this.pf = new PathFinder({
      now: () => this.now,
      random: () => Math.floor(rand() * 2 ** 32),
      sendProbe: (to, txid, { ttl }) => this.probes.push({ at: this.now, to, txid, ttl }),
      sendProbeAck: (to, txid) => this.acks.push({ at: this.now, to, txid }),
      onPath: (path) => this.paths.push({ at: this.now, path }),
      onNeedIntroduction: () => {
        this.intros.push(this.now);
        this.onIntro();
      },
      relayAvailable: true,
      ...options,
    });
  }

  /** Polls at every deadline up to `until`, then sets the clock to `until`. */
  advance(until: number): void {
    for (let i = 0;; i++) {
      assert.ok(i < 100_000, "the finder keeps asking to be polled");
      const at = this.pf.nextDeadline();
      if (at === undefined || at > until) break;
      this.now = Math.max(this.now, at);
      this.pf.poll();
    }
    this.now = until;
  }

  probesTo(ep: Endpoint): SentProbe[] {
    return this.probes.filter((p) => p.to.host === ep.host && p.to.port === ep.port);
  }

  /** Acks the last probe sent to `ep`, from `ep` unless `from` is given. */
  ackLast(ep: Endpoint, from: Endpoint = ep): void {
    const probe = this.probesTo(ep).at(-1);
    assert.ok(probe, `no probe was sent to ${ep.host}:${ep.port}`);
    this.pf.onProbeAck(from, probe.txid);
  }
}

const LAN: Endpoint = { host: "10.0.0.7", port: 4000 };
const PUB: Endpoint = { host: "203.0.113.9", port: 4000 };
const OTHER: Endpoint = { host: "203.0.113.9", port: 5123 };
const CANDIDATES: Candidate[] = [
  { kind: "lan", endpoint: LAN },
  { kind: "public", endpoint: PUB },
];

Deno.test("schedule: lan at once, public primed with TTL 2 then 3, then probes fast then slow", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  assert.deepEqual(f.probes.map((p) => [p.at, p.to.host, p.ttl]), [
    [0, PUB.host, 2],
    [0, LAN.host, undefined],
  ]);
  f.advance(3000);
  const pub = f.probesTo(PUB);
  assert.deepEqual(pub.slice(0, 4).map((p) => [p.at, p.ttl]), [
    [0, 2],
    [50, 3],
    [100, undefined],
    [300, undefined],
  ]);
  // Fast phase: every 200 ms from 100 ms to 2900 ms.
  const fast = pub.filter((p) => p.ttl === undefined);
  assert.deepEqual(fast.map((p) => p.at), Array.from({ length: 15 }, (_, i) => 100 + 200 * i));
  assert.deepEqual(f.paths, [{ at: 3000, path: { kind: "relay" } }]);
  // Background: 2.25..3.75 s apart until 30 s, then quiet until the re-introduction at 90 s.
  f.advance(89_999);
  const background = f.probesTo(PUB).filter((p) => p.at > 3000).map((p) => p.at);
  assert.ok(background.length >= 7 && background.length <= 12, `${background.length} probes`);
  let last = 2900;
  for (const at of background) {
    assert.ok(at - last >= 2250 && at - last <= 3750, `gap ${at - last} ms`);
    assert.ok(at <= 30_000);
    last = at;
  }
  assert.equal(f.probesTo(LAN).filter((p) => p.at > 3000).length, background.length);
  assert.deepEqual(f.intros, []);
  f.advance(90_000);
  assert.deepEqual(f.intros, [90_000]);
  f.advance(180_000);
  assert.deepEqual(f.intros, [90_000, 180_000], "requests repeat while no introduction comes");
});

Deno.test("schedule: without a relay the path stays none; without priming all go at once", () => {
  const f = new Fake({ relayAvailable: false, primeTtls: [] });
  f.pf.start(CANDIDATES);
  assert.deepEqual(f.probes.map((p) => [p.at, p.to.host, p.ttl]), [
    [0, LAN.host, undefined],
    [0, PUB.host, undefined],
  ]);
  f.advance(60_000);
  assert.deepEqual(f.paths, []);
  assert.equal(f.pf.path.kind, "none");
  assert.equal(f.pf.stats.primingProbesSent, 0);
});

Deno.test("priority: lan beats public beats prflx; upgrades switch at once", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  f.advance(150);
  f.now = 160;
  f.ackLast(PUB);
  assert.deepEqual(f.pf.path, { kind: "direct", endpoint: PUB, via: "public" });
  assert.equal(f.pf.rttMs, 60);
  // Better candidates are still probed in the fast phase, worse ones and the path are not.
  f.advance(400);
  assert.ok(f.probesTo(LAN).some((p) => p.at === 300));
  assert.ok(!f.probesTo(PUB).some((p) => p.at > 160));
  f.now = 410;
  f.ackLast(LAN);
  assert.deepEqual(f.pf.path, { kind: "direct", endpoint: LAN, via: "lan" });
  // A probe from a new endpoint is answered and learned, but prflx does not beat lan.
  f.pf.onProbe(OTHER, 77);
  assert.deepEqual(f.acks.at(-1), { at: 410, to: OTHER, txid: 77 });
  assert.equal(f.pf.candidates.at(-1)?.kind, "prflx");
  assert.equal(f.probesTo(OTHER).length, 0, "no point probing a worse candidate");
  assert.deepEqual(f.paths.map((p) => describePath(p.path)), [
    "direct 203.0.113.9:4000 (public)",
    "direct 10.0.0.7:4000 (lan)",
  ]);
  assert.equal(f.pf.stats.pathChanges, 2);
});

Deno.test("direct beats relay, and a path found later replaces the relay", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  f.advance(10_000);
  assert.equal(f.pf.path.kind, "relay");
  f.ackLast(PUB);
  assert.deepEqual(f.paths.map((p) => p.path.kind), ["relay", "direct"]);
  // No background probing of the lan candidate on a direct path; keepalives are answered.
  const before = f.probesTo(LAN).length;
  for (let t = 10_000; t < 40_000; t += 1000) {
    f.advance(t);
    f.ackLast(PUB);
  }
  assert.equal(f.probesTo(LAN).length, before);
  assert.equal(f.pf.path.kind, "direct");
});

Deno.test("txids: only recent, unanswered probes of ours count; RTT is smoothed", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  f.advance(100);
  const probe = f.probesTo(PUB).at(-1)!;
  f.pf.onProbeAck(PUB, (probe.txid + 1) >>> 0);
  assert.equal(f.pf.stats.staleAcks, 1);
  assert.equal(f.pf.path.kind, "none");
  f.now = 5101; // more than 5 s after the probe
  f.pf.onProbeAck(PUB, probe.txid);
  assert.equal(f.pf.stats.staleAcks, 2);
  assert.equal(f.pf.path.kind, "none");
  // Acked once: the second copy is stale.
  f.advance(5300);
  const fresh = f.probesTo(PUB).at(-1)!;
  f.now = fresh.at + 80;
  f.pf.onProbeAck(PUB, fresh.txid);
  f.pf.onProbeAck(PUB, fresh.txid);
  assert.equal(f.pf.stats.staleAcks, 3);
  assert.equal(f.pf.stats.acksReceived, 1);
  assert.equal(f.pf.rttMs, 80);
  // The next keepalive (5 s after the last probe) answered in 160 ms: SRTT moves by 1/8.
  f.advance(fresh.at + 5000);
  const keepalive = f.probesTo(PUB).at(-1)!;
  assert.equal(keepalive.at, fresh.at + 5000);
  f.now = keepalive.at + 160;
  f.pf.onProbeAck(PUB, keepalive.txid);
  assert.equal(f.pf.rttMs, 90);
  assert.equal(f.pf.candidates.find((c) => c.kind === "public")?.rttMs, 90);
});

Deno.test("an ack from another endpoint validates the probed one and teaches a prflx", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  f.advance(100);
  f.ackLast(PUB, OTHER);
  assert.deepEqual(f.pf.path, { kind: "direct", endpoint: PUB, via: "public" });
  assert.deepEqual(f.pf.candidates.map((c) => c.kind), ["lan", "public", "prflx"]);
  assert.equal(f.pf.stats.prflxLearned, 1);
});

Deno.test("a probe from a usable candidate triggers a probe back, at most one per interval", () => {
  const f = new Fake({ primeTtls: [] });
  f.pf.start(CANDIDATES);
  f.now = 50;
  f.pf.onProbe(PUB, 1);
  f.pf.onProbe(OTHER, 2);
  f.now = 60;
  f.pf.onProbe(OTHER, 3);
  assert.deepEqual(f.probesTo(OTHER).map((p) => p.at), [50]);
  assert.deepEqual(f.probesTo(PUB).map((p) => p.at), [0], "PUB was probed at 0, under 200 ms ago");
  assert.deepEqual(f.acks.map((a) => a.txid), [1, 2, 3]);
  // The prflx validates: direct via prflx.
  f.ackLast(OTHER);
  assert.deepEqual(f.pf.path, { kind: "direct", endpoint: OTHER, via: "prflx" });
});

Deno.test("keepalive every 5 s; unanswered: probed fast after 1 s, dead after 3 s", () => {
  const f = new Fake();
  f.onIntro = () => f.pf.start(CANDIDATES); // the coordinator answers at once (re-entrantly)
  f.pf.start(CANDIDATES);
  f.advance(100);
  f.ackLast(PUB);
  f.ackLast(LAN);
  // Answer keepalives for 20 s.
  for (let t = 5100; t <= 20_100; t += 5000) {
    f.advance(t);
    assert.equal(f.probesTo(LAN).at(-1)!.at, t);
    f.ackLast(LAN);
  }
  f.advance(31_000);
  const late = f.probesTo(LAN).filter((p) => p.at > 20_100).map((p) => p.at);
  assert.deepEqual(late.slice(0, 7), [25_100, 26_100, 26_300, 26_500, 26_700, 26_900, 27_100]);
  assert.deepEqual(f.paths.map((p) => [p.at, p.path.kind]), [
    [100, "direct"],
    [100, "direct"],
    [28_100, "relay"],
  ]);
  assert.equal(f.pf.stats.pathsLost, 1);
  // An introduction was requested and the search restarted with priming.
  assert.deepEqual(f.intros, [28_100]);
  assert.ok(f.probesTo(PUB).some((p) => p.at === 28_100 && p.ttl === 2));
});

Deno.test("traffic from the path keeps it alive, even with keepalives unanswered", () => {
  const f = new Fake({ relayAvailable: false });
  f.pf.start(CANDIDATES);
  f.advance(100);
  f.ackLast(PUB);
  // Traffic both ways every second for a minute; the keepalive probes are never acked.
  for (let t = 1000; t <= 60_000; t += 1000) {
    f.advance(t);
    f.pf.onTrafficSent();
    f.pf.onAuthenticatedTraffic(PUB);
  }
  assert.equal(f.pf.stats.pathsLost, 0);
  // Traffic from an unknown endpoint is no proof: 3 s after the unanswered keepalive, dead.
  f.advance(61_000);
  assert.equal(f.probesTo(PUB).at(-1)?.at, 60_100, "keepalives went on");
  f.pf.onAuthenticatedTraffic(OTHER);
  f.advance(64_000);
  assert.deepEqual(f.paths.map((p) => [p.at, p.path.kind]), [[100, "direct"], [63_100, "none"]]);
  assert.equal(f.pf.candidates.length, 2, "traffic does not teach prflx candidates");
});

Deno.test("unanswered traffic kills the path in 3 s, before the next keepalive", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  f.advance(100);
  f.ackLast(PUB);
  f.advance(1000);
  f.pf.onTrafficSent();
  f.advance(1500);
  f.pf.onTrafficSent(); // does not move the deadline
  f.advance(5000);
  const after = f.probesTo(PUB).filter((p) => p.at > 100 && p.at <= 4000).map((p) => p.at);
  assert.deepEqual(after, [2000, 2200, 2400, 2600, 2800, 3000, 3200, 3400, 3600, 3800, 4000]);
  assert.deepEqual(f.paths.map((p) => [p.at, p.path.kind]), [[100, "direct"], [4000, "relay"]]);
  // onTrafficSent means nothing without a direct path.
  f.pf.onTrafficSent();
  f.advance(20_000);
  assert.equal(f.pf.stats.pathsLost, 1);
});

Deno.test("probes before start are answered and learned; start keeps the best kind", () => {
  const f = new Fake();
  f.pf.onProbe(PUB, 5);
  assert.deepEqual(f.acks, [{ at: 0, to: PUB, txid: 5 }]);
  assert.deepEqual(f.probes, [], "nothing is probed before start");
  assert.equal(f.pf.nextDeadline(), undefined);
  assert.deepEqual(f.pf.candidates.map((c) => c.kind), ["prflx"]);
  f.pf.start([...CANDIDATES, { kind: "prflx", endpoint: LAN }, { kind: "public", endpoint: PUB }]);
  assert.deepEqual(f.pf.candidates.map((c) => [c.kind, c.endpoint.host]), [
    ["lan", LAN.host],
    ["public", PUB.host],
  ]);
  assert.equal(f.pf.candidates[1].lastHeardAt, 0, "what was known about the endpoint is kept");
});

Deno.test("restart keeps the path; a new ranking of its endpoint relabels it", () => {
  const f = new Fake({ primeTtls: [] });
  f.pf.start([{ kind: "public", endpoint: PUB }]);
  f.pf.onProbe(OTHER, 1);
  f.ackLast(OTHER);
  assert.deepEqual(f.pf.path, { kind: "direct", endpoint: OTHER, via: "prflx" });
  f.now = 1000;
  f.pf.start([{ kind: "public", endpoint: OTHER }]);
  assert.deepEqual(f.paths.map((p) => p.path), [
    { kind: "direct", endpoint: OTHER, via: "prflx" },
    { kind: "direct", endpoint: OTHER, via: "public" },
  ]);
  // PUB was dropped by the new introduction; an ack for an old probe to it does nothing.
  assert.deepEqual(f.pf.candidates.map((c) => c.endpoint.port), [OTHER.port]);
  f.ackLast(PUB);
  assert.equal(f.pf.path.kind, "direct");
  assert.equal(f.pf.stats.pathChanges, 2);
});

Deno.test("bounds: candidates, prflx and remembered txids", () => {
  const f = new Fake({ probeIntervalMs: 20 });
  const many = Array.from({ length: MAX_CANDIDATES + 1 }, (_, i): Candidate => ({
    kind: "public",
    endpoint: { host: "203.0.113.9", port: 1000 + i },
  }));
  assert.throws(() => f.pf.start(many), /9 distinct candidates, at most 8/);
  f.pf.start(many.slice(0, MAX_CANDIDATES));
  for (let i = 0; i < 20; i++) f.pf.onProbe({ host: "192.0.2.1", port: 2000 + i }, i);
  const prflx = f.pf.candidates.filter((c) => c.kind === "prflx");
  assert.equal(prflx.length, MAX_PRFLX);
  assert.equal(prflx[0].endpoint.port, 2012, "the oldest go first");
  assert.equal(f.pf.stats.prflxLearned, 20);
  // 16 candidates probed every 20 ms: the first probes are forgotten after 256 more.
  const first = f.probes.find((p) => p.ttl === undefined)!;
  f.advance(first.at + 400);
  assert.ok(f.probes.length > MAX_PENDING_PROBES + 16);
  f.pf.onProbeAck(first.to, first.txid);
  assert.equal(f.pf.stats.staleAcks, 1);
  f.ackLast(f.probes.at(-1)!.to);
  assert.equal(f.pf.stats.acksReceived, 1);
});

Deno.test("bounds: a peer that never answers costs a bounded number of probes", () => {
  const f = new Fake();
  f.onIntro = () => f.pf.start(CANDIDATES);
  f.pf.start(CANDIDATES);
  f.advance(900_000);
  // 10 cycles of 90 s: each primes, probes fast for 3 s, slowly until 30 s, then is quiet.
  assert.equal(f.intros.length, 10);
  assert.ok(f.probes.length <= 10 * 70, `${f.probes.length} probes in 15 minutes`);
  const lastMinute = f.probes.filter((p) => p.at >= 840_000 && p.at < 900_000);
  assert.equal(lastMinute.length, 0, "quiet between 30 s and 90 s of each cycle");
});

Deno.test("stop forgets everything but still answers probes; start works again", () => {
  const f = new Fake();
  f.pf.start(CANDIDATES);
  f.advance(100);
  f.ackLast(PUB);
  f.pf.stop();
  assert.equal(f.pf.path.kind, "none");
  assert.equal(f.pf.nextDeadline(), undefined);
  assert.deepEqual(f.pf.candidates, []);
  const sent = f.probes.length;
  f.advance(60_000);
  assert.equal(f.probes.length, sent);
  f.pf.onProbe(PUB, 9);
  assert.equal(f.acks.at(-1)?.txid, 9);
  f.pf.start(CANDIDATES);
  assert.ok(f.probes.length > sent);
  f.advance(63_001);
  assert.equal(f.pf.path.kind, "relay", "the relay timer runs again after a restart");
});

Deno.test("options are validated", () => {
  const base = new Fake();
  void base;
  const make = (o: Partial<PathFinderOptions>) => () => new Fake(o);
  assert.throws(make({ keepaliveMs: 0 }), /Invalid keepaliveMs 0/);
  assert.throws(make({ probeIntervalMs: NaN }), /Invalid probeIntervalMs NaN/);
  assert.throws(make({ primeDelayMs: -1 }), /Invalid primeDelayMs -1/);
  assert.throws(make({ suspectAfterMs: 3000 }), /must be below deadAfterMs 3000/);
  assert.throws(make({ primeTtls: [2, 0] }), /Invalid priming TTL 0/);
  assert.throws(make({ primeTtls: [2.5] }), /Invalid priming TTL 2.5/);
  new Fake({ primeDelayMs: 0, primeTtls: [1, 255] });
});

Deno.test("describePath", () => {
  assert.equal(describePath({ kind: "none" }), "none");
  assert.equal(describePath({ kind: "relay" }), "relay");
  assert.equal(
    describePath({ kind: "direct", endpoint: { host: "::1", port: 9 }, via: "prflx" }),
    "direct [::1]:9 (prflx)",
  );
});

// ---- Part 2: two finders across a virtual network of NAT routers ----

const COORD: Endpoint = { host: "198.51.100.1", port: 7000 };
const PORT = 4000;

type Msg =
  | { kind: "probe"; txid: number }
  | { kind: "ack"; txid: number }
  | { kind: "data" }
  | { kind: "hello"; name: Side; introduce: boolean };

type Side = "a" | "b";

interface SimPeer {
  local: Endpoint;
  pf: PathFinder;
  paths: { at: number; path: Path }[];
  intros: number[];
  starts: number[];
  /** Arrival times of data packets. */
  data: number[];
}

interface ScenarioOptions {
  a?: Partial<PathFinderOptions>;
  b?: Partial<PathFinderOptions>;
  /** How much later B's introductions arrive than A's (ms). */
  skewMs?: number;
}

/**
 * Two peers with a PathFinder each and a coordinator, on a virtual network. The coordinator
 * records the source of each peer's `hello` (its NAT mapping) and, when asked, introduces them
 * with `lan` and `public` candidates; relayed traffic is not modelled.
 */
class Scenario {
  readonly peers = {} as Record<Side, SimPeer>;
  readonly observed = new Map<Side, Endpoint>();
  readonly #net: VirtualNetwork;
  readonly #skewMs: number;

  constructor(
    net: VirtualNetwork,
    hosts: Record<Side, VirtualHost>,
    options: ScenarioOptions = {},
  ) {
    this.#net = net;
    this.#skewMs = options.skewMs ?? 0;
    net.listen(COORD, (payload, from) => {
      const msg = payload as Msg;
      if (msg.kind !== "hello") return;
      this.observed.set(msg.name, from);
      if (msg.introduce) this.introduce();
    });
    let seed = 100;
    for (const side of ["a", "b"] as const) {
      const local = { host: hosts[side].ip, port: PORT };
      const rand = prng(seed++);
      const peer: SimPeer = { local, pf: undefined!, paths: [], intros: [], starts: [], data: [] };
      peer.pf = new PathFinder({
        now: () => net.now,
        random: () => Math.floor(rand() * 2 ** 32),
        sendProbe: (to, txid, { ttl }) => net.send(local, to, { kind: "probe", txid }, ttl),
        sendProbeAck: (to, txid) => net.send(local, to, { kind: "ack", txid }),
        onPath: (path) => peer.paths.push({ at: net.now, path }),
        onNeedIntroduction: () => {
          peer.intros.push(net.now);
          net.send(local, COORD, { kind: "hello", name: side, introduce: true });
        },
        relayAvailable: true,
        ...options[side],
      });
      net.listen(local, (payload, from) => {
        const msg = payload as Msg;
        if (msg.kind === "probe") peer.pf.onProbe(from, msg.txid);
        else if (msg.kind === "ack") peer.pf.onProbeAck(from, msg.txid);
        else if (msg.kind === "data") {
          peer.data.push(net.now);
          peer.pf.onAuthenticatedTraffic(from);
        }
      });
      net.drive(() => peer.pf.nextDeadline(), () => peer.pf.poll());
      this.peers[side] = peer;
    }
  }

  /** Both log in at 0 (the coordinator learns their mappings) and are introduced at 100 ms. */
  begin(): void {
    for (const side of ["a", "b"] as const) {
      this.#net.send(this.peers[side].local, COORD, {
        kind: "hello",
        name: side,
        introduce: false,
      });
    }
    this.#net.at(100, () => this.introduce());
  }

  /** The coordinator introduces the peers; A gets it 20 ms later, B `skewMs` after A. */
  introduce(): void {
    const { a, b } = this.peers;
    const candidates = (peer: SimPeer, side: Side): Candidate[] => [
      { kind: "lan", endpoint: peer.local },
      { kind: "public", endpoint: this.observed.get(side)! },
    ];
    const ca = candidates(b, "b");
    const cb = candidates(a, "a");
    this.#net.at(this.#net.now + 20, () => {
      a.starts.push(this.#net.now);
      a.pf.start(ca);
    });
    this.#net.at(this.#net.now + 20 + this.#skewMs, () => {
      b.starts.push(this.#net.now);
      b.pf.start(cb);
    });
  }

  /** Sends a data packet from one peer's socket, as a chat message would go. */
  sendData(from: Side, to: Endpoint): void {
    this.#net.send(this.peers[from].local, to, { kind: "data" });
  }
}

type Kind = NatKind | "public";

/** Peer A behind a router of `ka` (or public), peer B behind one of `kb`. */
function pair(
  ka: Kind,
  kb: Kind,
  options: ScenarioOptions & { udpTimeoutMs?: number; internetHops?: number } = {},
): { net: VirtualNetwork; s: Scenario; ra?: VirtualRouter; rb?: VirtualRouter } {
  const net = new VirtualNetwork({ latencyMs: 20, internetHops: options.internetHops });
  net.addPublicHost(COORD.host);
  const side = (kind: Kind, n: number): [VirtualHost, VirtualRouter | undefined] => {
    if (kind === "public") return [net.addPublicHost(`198.51.100.${10 + n}`), undefined];
    const router = net.addRouter({
      kind,
      wanIp: `203.0.113.${n}`,
      udpTimeoutMs: options.udpTimeoutMs,
    });
    return [net.addHost(router, `10.${n}.0.2`), router];
  };
  const [ha, ra] = side(ka, 1);
  const [hb, rb] = side(kb, 2);
  return { net, s: new Scenario(net, { a: ha, b: hb }, options), ra, rb };
}

function direct(endpoint: Endpoint, via: Candidate["kind"]): Path {
  return { kind: "direct", endpoint, via };
}

function unreplied(router: VirtualRouter, now: number): number {
  return router.entries(now).filter((e) => e.inside === undefined).length;
}

Deno.test("nat: home/home goes direct via public within a few round trips", () => {
  const { net, s } = pair("home", "home");
  s.begin();
  net.run(10_000);
  const { a, b } = s.peers;
  assert.deepEqual(a.pf.path, direct({ host: "203.0.113.2", port: PORT }, "public"));
  assert.deepEqual(b.pf.path, direct({ host: "203.0.113.1", port: PORT }, "public"));
  assert.equal(a.paths.length, 1, "never relayed");
  assert.ok(a.paths[0].at < 400 && b.paths[0].at < 400, `${a.paths[0].at} ${b.paths[0].at}`);
  assert.ok(a.pf.rttMs! >= 40 && a.pf.rttMs! < 60, `rtt ${a.pf.rttMs}`);
});

Deno.test("nat: peers on one LAN go direct via lan", () => {
  const net = new VirtualNetwork();
  net.addPublicHost(COORD.host);
  const router = net.addRouter({ kind: "home", wanIp: "203.0.113.1" });
  const s = new Scenario(net, {
    a: net.addHost(router, "10.1.0.2"),
    b: net.addHost(router, "10.1.0.3"),
  });
  s.begin();
  net.run(10_000);
  assert.deepEqual(s.peers.a.pf.path, direct({ host: "10.1.0.3", port: PORT }, "lan"));
  assert.deepEqual(s.peers.b.pf.path, direct({ host: "10.1.0.2", port: PORT }, "lan"));
  assert.ok(s.peers.a.paths[0].at < 150);
  // B's mapping toward the coordinator could not keep port 4000 (A's has it): no hairpin anyway.
  assert.notEqual(s.observed.get("b")!.port, PORT);
});

Deno.test("nat: open/open goes direct thanks to priming, and fails without it", () => {
  // B's introduction arrives 40 ms after A's: A's first probes reach B's router before B sent
  // anything toward A.
  const primed = pair("open", "open", { skewMs: 40 });
  primed.s.begin();
  primed.net.run(10_000);
  assert.deepEqual(primed.s.peers.a.pf.path, direct({ host: "203.0.113.2", port: PORT }, "public"));
  assert.deepEqual(primed.s.peers.b.pf.path, direct({ host: "203.0.113.1", port: PORT }, "public"));
  assert.equal(primed.s.peers.a.paths.length, 1);
  assert.equal(unreplied(primed.rb!, primed.net.now), 0);

  const bare = pair("open", "open", { skewMs: 40, a: { primeTtls: [] }, b: { primeTtls: [] } });
  bare.s.begin();
  bare.net.run(29_000);
  for (const side of ["a", "b"] as const) {
    assert.deepEqual(bare.s.peers[side].paths.map((p) => p.path), [{ kind: "relay" }]);
  }
  // A's early probe left an [UNREPLIED] entry in B's router, so B's mapping toward A moved.
  assert.equal(unreplied(bare.rb!, bare.net.now), 1);
  const towardA = bare.rb!.entries(bare.net.now).find((e) =>
    e.inside && e.remote.host === "203.0.113.1"
  );
  assert.ok(towardA && towardA.port !== PORT, "B's probes leave from a shifted port");
});

Deno.test("nat: double NAT needs the TTL 3 priming round", () => {
  // B: home router behind an open carrier-grade router; A: open. B is introduced 40 ms late.
  const build = (primeTtls: number[]) => {
    const net = new VirtualNetwork({ latencyMs: 20, internetHops: 2 });
    net.addPublicHost(COORD.host);
    const ra = net.addRouter({ kind: "open", wanIp: "203.0.113.1" });
    const outer = net.addRouter({ kind: "open", wanIp: "203.0.113.2" });
    const inner = net.addRouter({ kind: "home", wanIp: "100.64.0.2", upstream: outer });
    const s = new Scenario(
      net,
      { a: net.addHost(ra, "10.1.0.2"), b: net.addHost(inner, "10.2.0.2") },
      { skewMs: 40, a: { primeTtls }, b: { primeTtls } },
    );
    s.begin();
    net.run(10_000);
    return { s, outer, net };
  };
  const good = build([2, 3]);
  assert.deepEqual(good.s.peers.a.pf.path, direct({ host: "203.0.113.2", port: PORT }, "public"));
  assert.deepEqual(good.s.peers.b.pf.path, direct({ host: "203.0.113.1", port: PORT }, "public"));
  const ttl2only = build([2]);
  assert.equal(ttl2only.s.peers.a.pf.path.kind, "relay");
  assert.equal(ttl2only.s.peers.b.pf.path.kind, "relay");
  assert.equal(unreplied(ttl2only.outer, ttl2only.net.now), 1);
});

Deno.test("nat: home/symmetric relays after 3 s, probes in the background, then rests", () => {
  const { net, s } = pair("home", "symmetric");
  s.begin();
  net.run(89_000);
  const { a, b } = s.peers;
  assert.deepEqual(a.paths, [{ at: 3120, path: { kind: "relay" } }]);
  assert.deepEqual(b.paths, [{ at: 3120, path: { kind: "relay" } }]);
  const sent = a.pf.stats.probesSent;
  assert.ok(sent >= 40 && sent <= 60, `${sent} probes`);
  assert.equal(a.pf.stats.probesReceived, 0, "the home NAT filters the symmetric side's probes");
  assert.equal(b.pf.stats.probesReceived, 0);
  assert.deepEqual(a.intros, []);
  net.run(91_000);
  assert.deepEqual(a.intros, [90_120], "a new introduction after the quiet period");
  assert.ok(a.starts.length >= 2);
  assert.equal(a.pf.path.kind, "relay");
});

Deno.test("nat: symmetric/symmetric relays", () => {
  const { net, s } = pair("symmetric", "symmetric");
  s.begin();
  net.run(20_000);
  assert.deepEqual(s.peers.a.paths.map((p) => p.path), [{ kind: "relay" }]);
  assert.deepEqual(s.peers.b.paths.map((p) => p.path), [{ kind: "relay" }]);
});

Deno.test("nat: public host/symmetric goes direct via prflx", () => {
  const { net, s } = pair("public", "symmetric");
  s.begin();
  net.run(10_000);
  const { a, b } = s.peers;
  const path = a.pf.path;
  assert.equal(path.kind === "direct" && path.via, "prflx");
  assert.equal(path.kind === "direct" && path.endpoint.host, "203.0.113.2");
  assert.notEqual(path.kind === "direct" && path.endpoint.port, s.observed.get("b")!.port);
  // A's lan and public endpoints are one: it keeps the better kind.
  assert.deepEqual(b.pf.path, direct({ host: "198.51.100.11", port: PORT }, "lan"));
  assert.ok(a.paths[0].at < 400 && b.paths[0].at < 400);
});

Deno.test("nat: a dead path is detected, relayed, re-introduced, and direct again", () => {
  const { net, s, rb } = pair("home", "home");
  s.begin();
  net.run(10_000);
  const { a, b } = s.peers;
  assert.equal(a.pf.path.kind, "direct");
  // B's router reboots and comes back with a new public address.
  rb!.flush({ wanIp: "203.0.113.99" });
  net.run(30_000);
  const kinds = a.paths.map((p) => [describePath(p.path)]);
  assert.deepEqual(kinds, [
    ["direct 203.0.113.2:4000 (public)"],
    ["relay"],
    ["direct 203.0.113.99:4000 (public)"],
  ]);
  const lostAt = a.paths[1].at;
  assert.ok(lostAt > 10_000 && lostAt <= 10_000 + 5000 + 3000, `lost at ${lostAt}`);
  assert.ok(a.paths[2].at - lostAt < 1000, `direct again at ${a.paths[2].at}`);
  assert.equal(a.intros[0], lostAt);
  assert.equal(b.pf.path.kind, "direct");
  assert.equal(a.pf.stats.pathsLost, 1);
});

Deno.test("nat: an open NAT poisoned by a flush recovers after the quiet period", () => {
  const run = (options: Partial<PathFinderOptions>) => {
    const { net, s, rb } = pair("home", "open", { a: options, b: options });
    s.begin();
    net.run(10_000);
    assert.equal(s.peers.b.pf.path.kind, "direct");
    // B's router forgets everything and A talks first: [UNREPLIED] in B's router.
    rb!.flush();
    s.sendData("a", { host: "203.0.113.2", port: PORT });
    net.run(10_100);
    assert.equal(unreplied(rb!, net.now), 1);
    net.run(200_000);
    return s.peers;
  };
  const { a, b } = run({});
  assert.deepEqual(b.paths.map((p) => p.path.kind), ["direct", "relay", "direct"]);
  const [, lost, back] = b.paths;
  assert.ok(lost.at <= 10_000 + 8000, `lost at ${lost.at}`);
  // Retries during the search only refresh the poisoned entries; 90 s later they are gone.
  assert.ok(back.at - lost.at > 60_000 && back.at - lost.at < 95_000, `back at ${back.at}`);
  assert.equal(a.pf.path.kind, "direct");
  // Control: background probing that never pauses keeps the poison alive.
  const forever = run({ backgroundForMs: 1e9 });
  assert.deepEqual(forever.b.paths.map((p) => p.path.kind), ["direct", "relay"]);
  assert.equal(forever.a.pf.path.kind, "relay");
});

Deno.test("nat: relay first, direct once the network allows it", () => {
  const { net, s, rb } = pair("home", "home");
  s.begin();
  net.at(50, () => rb!.down = true); // after the logins, before the introduction
  net.at(10_000, () => rb!.down = false);
  net.run(20_000);
  for (const side of ["a", "b"] as const) {
    const paths = s.peers[side].paths;
    assert.deepEqual(paths.map((p) => p.path.kind), ["relay", "direct"]);
    assert.ok(paths[1].at > 10_000 && paths[1].at < 14_000, `${side} direct at ${paths[1].at}`);
  }
});

Deno.test("nat: keepalives hold a 10 s mapping open over a minute of silence", () => {
  const run = (keepaliveMs: number) => {
    const { net, s, ra } = pair("home", "home", {
      udpTimeoutMs: 10_000,
      a: { keepaliveMs },
      b: { keepaliveMs },
    });
    s.begin();
    net.run(1000);
    assert.equal(s.peers.a.pf.path.kind, "direct");
    // B speaks up, unannounced, in the middle of the silence and at its end.
    net.at(16_000, () => s.sendData("b", { host: "203.0.113.1", port: PORT }));
    net.at(61_000, () => s.sendData("b", { host: "203.0.113.1", port: PORT }));
    net.run(61_100);
    const mapping = ra!.entries(net.now).find((e) => e.remote.host === "203.0.113.2");
    return { s, mapping };
  };
  const held = run(5000);
  assert.deepEqual(held.s.peers.a.data, [16_020, 61_020]);
  assert.equal(held.s.peers.a.paths.length, 1);
  assert.equal(held.s.peers.a.pf.stats.pathsLost, 0);
  assert.ok(held.mapping && held.mapping.createdAt < 1000, "the original mapping lived on");
  // Control: with keepalives every 20 s the mapping expires and B's packet is filtered.
  const lapsed = run(20_000);
  assert.ok(!lapsed.s.peers.a.data.includes(16_020));
});
