/**
 * NAT traversal toward one remote peer, as a pure state machine: no sockets, no timers. The caller
 * injects a clock and `send` callbacks, feeds it the (already authenticated) probes, probe acks
 * and traffic that arrive directly from the peer, and calls {@linkcode PathFinder.poll} at
 * {@linkcode PathFinder.nextDeadline}. It decides which candidate endpoints to probe and when,
 * which path to use (direct to an endpoint, or the coordinator's relay), when a direct path is dead,
 * and when to ask the coordinator for a new introduction. One instance per remote peer, all of them
 * sharing the UDP socket used with the coordinator: that shared socket is what makes the mapping
 * the coordinator observed (the `public` candidate the peer receives) valid for our probes too.
 *
 * Rules:
 * - **Candidates.** An introduction gives the peer's `lan` endpoint (the one it claimed at login,
 *   reachable when both peers share a LAN) and its `public` one (its NAT mapping as the coordinator
 *   saw it). A valid probe from any other endpoint teaches a `prflx` (peer-reflexive) candidate:
 *   the peer's NAT mapped its socket to another port toward us (a symmetric NAT, or an open NAT
 *   that had to shift the port). Introductions hold at most {@linkcode MAX_CANDIDATES} endpoints;
 *   at most {@linkcode MAX_PRFLX} prflx candidates are kept (the oldest goes first).
 * - **Priority.** A working `lan` endpoint beats `public`, which beats `prflx`; any direct path beats
 *   the relay. A candidate works once a probe sent to it is acknowledged; if it ranks above the
 *   current path, the path switches to it at once (`onPath`).
 * - **Priming.** An "open" NAT (no input filter, like the lab's `open` router) that receives the
 *   peer's probe *before* we have sent anything to the peer creates an `[UNREPLIED]` conntrack entry
 *   for that tuple, so our own later packets to the peer are mapped to a *different* public port
 *   and the port the coordinator observed (the one the peer probes) leads nowhere. So a search
 *   starts by sending each `public` candidate a probe with TTL 2, then (`primeDelayMs / 2` later)
 *   one with TTL 3, and only `primeDelayMs` (100 ms) after the start the normal probes. TTL 2 gets
 *   through our router, creating our mapping toward the peer, and dies in the next router, so it
 *   never reaches the peer's NAT early; TTL 3 does the same for the outer router of a double NAT
 *   (home router behind a carrier NAT), which a TTL 2 probe does not get past. The risk: when the
 *   peer's router is only one router beyond ours (the lab: host, router, core, router), the TTL 3
 *   probe reaches it. That is harmless once the peer has primed (the probe matches the peer's own
 *   mapping and dies there) and harmful before, which is why it goes out half-way through the
 *   delay: both introductions must arrive within about `primeDelayMs / 2` plus the one-way delay
 *   of each other, which is the case when the coordinator sends both at once. (`primeTtls` sets the
 *   rounds; they are spread evenly over `primeDelayMs`.) `lan` candidates are probed at once: they
 *   do not cross our NAT (when the peer's private address happens to be that of another host of
 *   our LAN, that host gets a probe it cannot authenticate, nothing more). `prflx` candidates need
 *   no priming: the peer's probe already got through our NAT. Every search primes again: a new
 *   introduction, or a dead path.
 * - **Search schedule.** Each eligible candidate is probed every `probeIntervalMs` (200 ms) for the
 *   first `fastProbeMs` (3 s), then every `backgroundIntervalMs` (3 s, ±25 % jitter so that
 *   the two peers' probes do not stay in step) while no direct path works, until `backgroundForMs`
 *   (30 s) after the start. A valid probe from a candidate we may use also triggers a probe back
 *   to it at once (at most one per `probeIntervalMs`), which converges faster than waiting for the
 *   next round. With a direct path, only candidates ranked above it are still probed, and only in
 *   the fast phase: upgrading is worth a few probes, not a background load.
 * - **Relay.** With no direct path `relayAfterMs` (3 s) after the first start, the path becomes
 *   `relay` if `relayAvailable` (it stays `none` otherwise). Background probing goes on and a
 *   direct path that validates later replaces the relay.
 * - **Quiet period and re-introduction.** Probing stops `backgroundForMs` after the start. This is
 *   deliberate: every probe to a tuple refreshes the conntrack entries it hits, including an
 *   `[UNREPLIED]` entry that poisons the peer's open NAT, so probing at any rate forever could keep
 *   a pair stuck on the relay forever. After the quiet period (Linux forgets unreplied UDP entries
 *   after 30 s), `reintroduceAfterMs` (90 s) after the start, `onNeedIntroduction()` asks for a new
 *   introduction, and the search starts over with fresh mappings on both sides. This repeats every
 *   `reintroduceAfterMs` while there is no direct path: bounded, and a pair of peers that cannot
 *   go direct (see below) costs a few dozen probes per cycle.
 * - **Keepalive.** On a direct path the chosen endpoint is probed every `keepaliveMs` (5 s), which
 *   keeps NAT mappings with a 10 s idle timeout alive on both sides (the peer does the same, and
 *   the acks flow both ways too). Proof of life is an ack of a probe to the endpoint, or a probe or
 *   authenticated traffic from it: a conntrack NAT that lets the peer's packets from that endpoint
 *   in also lets ours out to it.
 * - **Dead path.** From the first send on the path left unanswered (a keepalive probe, or traffic
 *   reported by {@linkcode PathFinder.onTrafficSent}), if nothing is heard within
 *   `suspectAfterMs` (1 s) the endpoint is probed every `probeIntervalMs`; after `deadAfterMs`
 *   (3 s) the path is declared dead: the path becomes `relay` (or `none`), `onNeedIntroduction()`
 *   is called (the mappings may have changed: router reboot, `conntrack -F`, new public address),
 *   and a new search of all known candidates starts, with priming. An idle path is thus found dead
 *   at most `keepaliveMs + deadAfterMs` (8 s) after it broke; during a conversation whose sends
 *   are reported, `deadAfterMs` after the first unanswered one.
 * - **Transaction ids.** Each probe carries a random 32-bit txid; the last
 *   {@linkcode MAX_PENDING_PROBES} are remembered with their target and send time for 5 s. An ack
 *   counts only if its txid is one of them (each at most once), and gives an RTT sample for the
 *   target (smoothed as in RFC 6298, exposed per candidate and for the path).
 *
 * Which NAT pairs get a direct path (NATs behaving like Linux conntrack, as in the lab):
 * - **home ↔ home, home ↔ open, open ↔ open**: direct via `public`, by simultaneous probing from
 *   both sides (hole punching); endpoint-independent, port-preserving mapping makes the port the
 *   coordinator saw the one used toward the peer. With an open NAT it relies on priming (above).
 * - **same LAN**: direct via `lan` (no hairpinning needed).
 * - **public host or full-cone NAT ↔ anything but symmetric**: direct via `public`.
 * - **public host or full-cone NAT ↔ symmetric**: direct: the symmetric side's probes arrive from a
 *   port only its probes reveal; we learn it as `prflx`, ack to it (the symmetric side then
 *   validates our `public`) and probe it (we validate the `prflx`).
 * - **home or open ↔ symmetric**: relay. Our probes go to the symmetric side's coordinator-observed
 *   port, which is not the port it uses toward us, and its probes come from a port we never sent
 *   to, which an address-and-port-dependent filter drops; an open Linux NAT does not forward them
 *   either (they reach the router itself), so no prflx is ever learned. No port prediction is
 *   attempted.
 * - **symmetric ↔ symmetric**: relay.
 * - **both behind the same carrier NAT**: direct only via `lan` or if the carrier NAT hairpins.
 *
 * Callbacks are invoked after the state is updated, except `sendProbe` and `sendProbeAck`, which
 * are called mid-update and so must neither throw nor call back into the finder synchronously.
 * `onPath` and `onNeedIntroduction` may call back (e.g. `start()` from `onNeedIntroduction`).
 *
 * @example
 * ```ts
 * const finder = new PathFinder({
 *   now: () => Date.now(),
 *   sendProbe: (to, txid, { ttl }) => wire.sendProbe(to, txid, ttl),
 *   sendProbeAck: (to, txid) => wire.sendProbeAck(to, txid),
 *   onPath: (path) => console.log("path", path),
 *   onNeedIntroduction: () => coordinator.requestIntroduction("bob"),
 *   relayAvailable: true,
 * });
 * finder.start([
 *   { kind: "lan", endpoint: { host: "10.0.0.7", port: 4000 } },
 *   { kind: "public", endpoint: { host: "203.0.113.9", port: 4000 } },
 * ]);
 * // Feed finder.onProbe / onProbeAck / onAuthenticatedTraffic from the socket, and call
 * // finder.poll() whenever finder.nextDeadline() passes.
 * ```
 * @module
 */
import { type Endpoint, formatEndpoint, sameEndpoint } from "./protocol/endpoint.ts";

/** Where a candidate endpoint comes from; also its rank, best first. */
export type CandidateKind = "lan" | "public" | "prflx";

/** An endpoint of the remote peer worth probing. */
export interface Candidate {
  kind: CandidateKind;
  endpoint: Endpoint;
}

/** The path our packets to the peer take. */
export type Path =
  | { kind: "none" }
  | { kind: "direct"; endpoint: Endpoint; via: CandidateKind }
  | { kind: "relay" };

/** Per-probe options for {@linkcode PathFinderOptions.sendProbe}. */
export interface ProbeOptions {
  /**
   * IP TTL for this probe; undefined means the socket's default. Set only on priming probes,
   * which must leave our NAT but not reach the peer's. The TTL has to be in force when the
   * datagram actually leaves the socket, which with `node:dgram` is after `send` returns.
   */
  ttl?: number;
}

/** Options of {@linkcode PathFinder}. Times are in milliseconds. */
export interface PathFinderOptions {
  /** Current time in milliseconds. */
  now: () => number;
  /** Sends a probe with this txid to `to`, directly (never through the relay). */
  sendProbe: (to: Endpoint, txid: number, options: ProbeOptions) => void;
  /** Sends an ack of the probe `txid` to `to` (where the probe came from), directly. */
  sendProbeAck: (to: Endpoint, txid: number) => void;
  /** Called on every change of path, with the new path. */
  onPath: (path: Path) => void;
  /**
   * Asks the coordinator to introduce the two peers again; the introduction should reach both
   * at about the same time, each then calling {@linkcode PathFinder.start}.
   */
  onNeedIntroduction: () => void;
  /** Whether the coordinator can relay for this peer; without it the fallback path is `none`. */
  relayAvailable: boolean;
  /** Random u32 for txids and jitter; default `crypto.getRandomValues`. */
  random?: () => number;
  /** Interval between probes to a candidate in the fast phase and when suspecting; default 200. */
  probeIntervalMs?: number;
  /** Length of the fast phase of a search; default 3000. */
  fastProbeMs?: number;
  /** Mean interval of background probing, ±25 % jitter; default 3000. */
  backgroundIntervalMs?: number;
  /** Time from the start of a search after which probing stops; default 30 000. */
  backgroundForMs?: number;
  /** Time from the start of a search until a new introduction is requested; default 90 000. */
  reintroduceAfterMs?: number;
  /** Time without a direct path after the first start until the relay is used; default 3000. */
  relayAfterMs?: number;
  /** Interval of keepalive probes on a direct path; default 5000. */
  keepaliveMs?: number;
  /** Time an unanswered send waits before the path is probed fast; default 1000. */
  suspectAfterMs?: number;
  /** Time an unanswered send waits before the path is declared dead; default 3000. */
  deadAfterMs?: number;
  /** TTLs of the priming rounds, sent in this order; default `[2, 3]`; `[]` disables priming. */
  primeTtls?: number[];
  /** Delay from the start of a search to the first normal probe of `public` candidates; 100. */
  primeDelayMs?: number;
}

/** Counters of a {@linkcode PathFinder}; they only grow. */
export interface PathFinderStats {
  /** Probes sent with the default TTL. */
  probesSent: number;
  /** Priming probes sent (low TTL). */
  primingProbesSent: number;
  /** Probe acks sent. */
  acksSent: number;
  /** Valid probes received. */
  probesReceived: number;
  /** Acks received for a probe we sent recently. */
  acksReceived: number;
  /** Acks received for an unknown, already acknowledged or expired txid, ignored. */
  staleAcks: number;
  /** Peer-reflexive candidates learned. */
  prflxLearned: number;
  /** Changes of path reported through `onPath`. */
  pathChanges: number;
  /** Direct paths declared dead. */
  pathsLost: number;
  /** Calls of `onNeedIntroduction`. */
  introductionsRequested: number;
}

/** A snapshot of one candidate, for diagnostics and tests. */
export interface CandidateInfo {
  kind: CandidateKind;
  endpoint: Endpoint;
  /** Smoothed round-trip time of probes to it, undefined before the first ack. */
  rttMs: number | undefined;
  /** When a probe to it was last acknowledged. */
  lastAckAt: number | undefined;
  /** When anything valid last came from it or a probe to it was acknowledged. */
  lastHeardAt: number | undefined;
}

/** Most candidates one introduction may hold. */
export const MAX_CANDIDATES = 8;
/** Most peer-reflexive candidates kept. */
export const MAX_PRFLX = 8;
/** Most probes whose txid is remembered (enough for the fast phase with every candidate). */
export const MAX_PENDING_PROBES = 256;
/** How long an ack is accepted after its probe was sent. */
const PROBE_LIFETIME_MS = 5000;

const RANK: Record<CandidateKind, number> = { lan: 0, public: 1, prflx: 2 };
const NONE: Path = { kind: "none" };
const RELAY: Path = { kind: "relay" };

interface CandidateState {
  kind: CandidateKind;
  endpoint: Endpoint;
  srtt: number | undefined;
  lastProbeAt: number | undefined;
  lastAckAt: number | undefined;
  lastHeardAt: number | undefined;
}

interface PendingProbe {
  endpoint: Endpoint;
  sentAt: number;
}

type Timings = Required<
  Pick<
    PathFinderOptions,
    | "probeIntervalMs"
    | "fastProbeMs"
    | "backgroundIntervalMs"
    | "backgroundForMs"
    | "reintroduceAfterMs"
    | "relayAfterMs"
    | "keepaliveMs"
    | "suspectAfterMs"
    | "deadAfterMs"
    | "primeDelayMs"
  >
>;

/** Finds and keeps a path to one remote peer. */
export class PathFinder {
  /** Counters; see {@linkcode PathFinderStats}. */
  readonly stats: PathFinderStats = {
    probesSent: 0,
    primingProbesSent: 0,
    acksSent: 0,
    probesReceived: 0,
    acksReceived: 0,
    staleAcks: 0,
    prflxLearned: 0,
    pathChanges: 0,
    pathsLost: 0,
    introductionsRequested: 0,
  };
  readonly #opts: PathFinderOptions;
  readonly #t: Timings;
  readonly #primeTtls: number[];
  readonly #random: () => number;
  #candidates: CandidateState[] = [];
  #pending = new Map<number, PendingProbe>();
  #path: Path = NONE;
  #running = false;
  #events: (() => void)[] = [];

  // The current search.
  #searchStart = 0;
  /** `public` candidates get normal probes from then on (after priming). */
  #normalFrom = 0;
  #primes: { at: number; ttl: number }[] = [];
  #nextRoundAt: number | undefined;
  #relayAt: number | undefined;
  #reintroduceAt: number | undefined;

  // Liveness of a direct path.
  #lastPathProbeAt = 0;
  /** Time of the first send on the path not followed by any proof of life. */
  #awaitingSince: number | undefined;

  /** Creates a finder; it does nothing but answer probes until {@linkcode start}. */
  constructor(options: PathFinderOptions) {
    this.#opts = options;
    this.#t = {
      probeIntervalMs: options.probeIntervalMs ?? 200,
      fastProbeMs: options.fastProbeMs ?? 3000,
      backgroundIntervalMs: options.backgroundIntervalMs ?? 3000,
      backgroundForMs: options.backgroundForMs ?? 30_000,
      reintroduceAfterMs: options.reintroduceAfterMs ?? 90_000,
      relayAfterMs: options.relayAfterMs ?? 3000,
      keepaliveMs: options.keepaliveMs ?? 5000,
      suspectAfterMs: options.suspectAfterMs ?? 1000,
      deadAfterMs: options.deadAfterMs ?? 3000,
      primeDelayMs: options.primeDelayMs ?? 100,
    };
    for (const [name, value] of Object.entries(this.#t)) {
      const min = name === "primeDelayMs" ? 0 : 1;
      if (!(Number.isFinite(value) && value >= min)) {
        throw new RangeError(`Invalid ${name} ${value}: must be a finite number >= ${min}`);
      }
    }
    if (this.#t.suspectAfterMs >= this.#t.deadAfterMs) {
      throw new RangeError(
        `Invalid suspectAfterMs ${this.#t.suspectAfterMs}: must be below deadAfterMs ${this.#t.deadAfterMs}`,
      );
    }
    this.#primeTtls = [...(options.primeTtls ?? [2, 3])];
    for (const ttl of this.#primeTtls) {
      if (!(Number.isInteger(ttl) && ttl >= 1 && ttl <= 255)) {
        throw new RangeError(`Invalid priming TTL ${ttl}: must be an integer in 1..255`);
      }
    }
    this.#random = options.random ?? (() => crypto.getRandomValues(new Uint32Array(1))[0]);
  }

  /** The current path (a copy). */
  get path(): Path {
    return this.#path.kind === "direct"
      ? { ...this.#path, endpoint: { ...this.#path.endpoint } }
      : this.#path;
  }

  /** Smoothed RTT of the direct path; undefined without one or before its first sample. */
  get rttMs(): number | undefined {
    const path = this.#path;
    return path.kind === "direct" ? this.#find(path.endpoint)?.srtt : undefined;
  }

  /** A snapshot of the candidates: introduced ones first, then prflx in the order learned. */
  get candidates(): CandidateInfo[] {
    return this.#candidates.map((c) => ({
      kind: c.kind,
      endpoint: { ...c.endpoint },
      rttMs: c.srtt,
      lastAckAt: c.lastAckAt,
      lastHeardAt: c.lastHeardAt,
    }));
  }

  /**
   * Starts a search with the candidates of an introduction (they replace those of the previous
   * one; prflx candidates and the endpoint of the current direct path are kept). May be called
   * again: each call restarts the schedule, priming included, without changing the current path.
   * An endpoint given twice keeps its best kind. Throws `RangeError` when given more than
   * {@linkcode MAX_CANDIDATES} distinct endpoints.
   *
   * @example
   * ```ts
   * finder.start([{ kind: "public", endpoint: { host: "203.0.113.9", port: 4000 } }]);
   * ```
   */
  start(candidates: Candidate[]): void {
    const introduced: CandidateState[] = [];
    for (const { kind, endpoint } of candidates) {
      const dup = introduced.find((c) => sameEndpoint(c.endpoint, endpoint));
      if (dup) {
        if (RANK[kind] < RANK[dup.kind]) dup.kind = kind;
        continue;
      }
      // Keep what we measured about an endpoint we already knew.
      const known = this.#find(endpoint);
      introduced.push(known ? { ...known, kind } : newCandidate(kind, endpoint));
    }
    if (introduced.length > MAX_CANDIDATES) {
      throw new RangeError(
        `Cannot start: ${introduced.length} distinct candidates, at most ${MAX_CANDIDATES}`,
      );
    }
    const path = this.#path;
    const kept = this.#candidates.filter((c) =>
      (c.kind === "prflx" || (path.kind === "direct" && sameEndpoint(c.endpoint, path.endpoint))) &&
      !introduced.some((n) => sameEndpoint(n.endpoint, c.endpoint))
    );
    this.#candidates = [...introduced, ...kept];
    if (path.kind === "direct") {
      // The introduction may rank the path's endpoint differently (a prflx that is now public).
      const via = this.#find(path.endpoint)!.kind;
      if (via !== path.via) this.#setPath({ ...path, via });
    }
    const now = this.#opts.now();
    if (!this.#running) {
      this.#running = true;
      if (path.kind === "none" && this.#opts.relayAvailable) {
        this.#relayAt = now + this.#t.relayAfterMs;
      }
    }
    this.#beginSearch(now);
    this.#run(now);
    this.#flush();
  }

  /**
   * Handles a valid probe that arrived directly from `from`: acks it to `from`, learns `from` as
   * a prflx candidate if it is not a known one, and probes it back if it could be a better path.
   * Works before {@linkcode start} too (the peer's introduction may arrive before ours).
   *
   * @example
   * ```ts
   * wire.onProbe = (from, txid) => finder.onProbe(from, txid);
   * ```
   */
  onProbe(from: Endpoint, txid: number): void {
    const now = this.#opts.now();
    this.stats.probesReceived++;
    this.stats.acksSent++;
    this.#opts.sendProbeAck(from, txid);
    const c = this.#find(from) ?? this.#learn(from);
    this.#heard(c, now);
    if (
      this.#running && this.#better(c) &&
      (c.lastProbeAt === undefined || now - c.lastProbeAt >= this.#t.probeIntervalMs)
    ) {
      this.#probe(c, now, undefined);
    }
    this.#flush();
  }

  /**
   * Handles a valid probe ack that arrived directly from `from`. It counts only if `txid` is that
   * of a probe we sent in the last 5 s and not yet acknowledged; then the probe's target works,
   * and becomes the path if it ranks above the current one. An ack from another endpoint than
   * the target also teaches `from` as a prflx candidate.
   *
   * @example
   * ```ts
   * wire.onProbeAck = (from, txid) => finder.onProbeAck(from, txid);
   * ```
   */
  onProbeAck(from: Endpoint, txid: number): void {
    const now = this.#opts.now();
    const probe = this.#pending.get(txid);
    if (probe === undefined || now - probe.sentAt > PROBE_LIFETIME_MS) {
      this.stats.staleAcks++;
      this.#pending.delete(txid);
      return;
    }
    this.#pending.delete(txid);
    this.stats.acksReceived++;
    if (!sameEndpoint(from, probe.endpoint)) {
      this.#heard(this.#find(from) ?? this.#learn(from), now);
    }
    const c = this.#find(probe.endpoint);
    if (c === undefined) return; // replaced by a newer introduction meanwhile
    const sample = now - probe.sentAt;
    c.srtt = c.srtt === undefined ? sample : c.srtt + (sample - c.srtt) / 8;
    c.lastAckAt = now;
    this.#heard(c, now);
    if (this.#running && this.#better(c)) {
      this.#lastPathProbeAt = c.lastProbeAt ?? now;
      this.#setPath({ kind: "direct", endpoint: { ...c.endpoint }, via: c.kind });
    }
    this.#flush();
  }

  /**
   * Reports authenticated traffic (not a probe) that arrived directly from `from`: proof that the
   * path through `from` is alive. Do not call it for traffic received through the relay.
   *
   * @example
   * ```ts
   * wire.onData = (from, frame) => finder.onAuthenticatedTraffic(from);
   * ```
   */
  onAuthenticatedTraffic(from: Endpoint): void {
    const c = this.#find(from);
    if (c) this.#heard(c, this.#opts.now());
  }

  /**
   * Reports that traffic expecting an answer (e.g. a reliable-channel segment) was just sent on
   * the direct path. If nothing is heard from the path within `suspectAfterMs` it is probed fast,
   * and it is declared dead after `deadAfterMs`: a broken path is found during a conversation
   * without waiting for the next keepalive. Does nothing without a direct path.
   *
   * @example
   * ```ts
   * if (finder.path.kind === "direct") { socket.send(frame, finder.path.endpoint); finder.onTrafficSent(); }
   * ```
   */
  onTrafficSent(): void {
    if (this.#path.kind === "direct" && this.#awaitingSince === undefined) {
      this.#awaitingSince = this.#opts.now();
    }
  }

  /**
   * Runs what is due at `now()`: keepalives and dead-path detection, priming, probe rounds, the
   * switch to the relay, re-introduction requests.
   *
   * @example
   * ```ts
   * const at = finder.nextDeadline();
   * if (at !== undefined && Date.now() >= at) finder.poll();
   * ```
   */
  poll(): void {
    if (this.#running) this.#run(this.#opts.now());
    this.#flush();
  }

  /**
   * When `poll` should next be called, in `now()` ms; undefined when nothing is scheduled.
   *
   * @example
   * ```ts
   * const at = finder.nextDeadline();
   * if (at !== undefined) setTimeout(() => finder.poll(), Math.max(0, at - Date.now()));
   * ```
   */
  nextDeadline(): number | undefined {
    if (!this.#running) return undefined;
    const times = [this.#primes[0]?.at, this.#nextRoundAt, this.#relayAt, this.#reintroduceAt];
    if (this.#path.kind === "direct") {
      times.push(this.#pathProbeDue());
      if (this.#awaitingSince !== undefined) {
        times.push(this.#awaitingSince + this.#t.deadAfterMs);
      }
    }
    const defined = times.filter((t): t is number => t !== undefined);
    return defined.length === 0 ? undefined : Math.min(...defined);
  }

  /**
   * Stops probing and keepalives and forgets the candidates, the path (without calling
   * `onPath`) and the probes in flight. The finder still answers probes, and may be started again.
   *
   * @example
   * ```ts
   * finder.stop();
   * ```
   */
  stop(): void {
    this.#running = false;
    this.#candidates = [];
    this.#pending.clear();
    this.#path = NONE;
    this.#primes = [];
    this.#nextRoundAt = undefined;
    this.#relayAt = undefined;
    this.#reintroduceAt = undefined;
    this.#awaitingSince = undefined;
  }

  // ---- Internals ----

  #beginSearch(now: number): void {
    const t = this.#t;
    this.#searchStart = now;
    const step = this.#primeTtls.length > 0 ? t.primeDelayMs / this.#primeTtls.length : 0;
    this.#primes = this.#primeTtls.map((ttl, i) => ({ at: now + i * step, ttl }));
    this.#normalFrom = this.#primeTtls.length > 0 ? now + t.primeDelayMs : now;
    this.#nextRoundAt = now; // lan and prflx candidates go at once
    this.#reintroduceAt = now + t.reintroduceAfterMs;
  }

  #run(now: number): void {
    const t = this.#t;
    if (this.#path.kind === "direct") {
      if (this.#awaitingSince !== undefined && now >= this.#awaitingSince + t.deadAfterMs) {
        this.#pathLost(now);
      } else if (now >= this.#pathProbeDue()) {
        this.#probe(this.#find(this.#path.endpoint)!, now, undefined);
      }
    }
    while (this.#primes.length > 0 && this.#primes[0].at <= now) {
      const { ttl } = this.#primes.shift()!;
      for (const c of this.#candidates) {
        if (c.kind === "public" && this.#better(c)) this.#probe(c, now, ttl);
      }
    }
    if (this.#nextRoundAt !== undefined && this.#nextRoundAt <= now) {
      // A background round that was already scheduled when a direct path came up is skipped.
      const upgrade = this.#path.kind !== "direct" || now < this.#searchStart + t.fastProbeMs;
      for (const c of upgrade ? this.#candidates : []) {
        if (this.#better(c) && (c.kind !== "public" || now >= this.#normalFrom)) {
          this.#probe(c, now, undefined);
        }
      }
      this.#nextRoundAt = this.#nextRound(now);
    }
    if (this.#relayAt !== undefined && this.#relayAt <= now) {
      this.#relayAt = undefined;
      if (this.#path.kind === "none") this.#setPath(RELAY);
    }
    if (this.#reintroduceAt !== undefined && this.#reintroduceAt <= now) {
      if (this.#path.kind === "direct") {
        this.#reintroduceAt = undefined;
      } else {
        this.#reintroduceAt = now + t.reintroduceAfterMs;
        this.#requestIntroduction();
      }
    }
  }

  /** When the search round after the one at `now` is due, if any. */
  #nextRound(now: number): number | undefined {
    const t = this.#t;
    if (now < this.#normalFrom) return this.#normalFrom;
    const next = now + t.probeIntervalMs;
    if (next < this.#searchStart + t.fastProbeMs) return next;
    // Background probing only serves to get off the relay (or out of `none`).
    if (this.#path.kind === "direct") return undefined;
    const jitter = 0.75 + 0.5 * ((this.#random() >>> 0) / 2 ** 32);
    const background = Math.max(next, now + t.backgroundIntervalMs * jitter);
    return background <= this.#searchStart + t.backgroundForMs ? background : undefined;
  }

  /** When the direct path's endpoint should next be probed (keepalive or suspicion). */
  #pathProbeDue(): number {
    const t = this.#t;
    const keepalive = this.#lastPathProbeAt + t.keepaliveMs;
    if (this.#awaitingSince === undefined) return keepalive;
    const fast = Math.max(
      this.#awaitingSince + t.suspectAfterMs,
      this.#lastPathProbeAt + t.probeIntervalMs,
    );
    return Math.min(keepalive, fast);
  }

  #pathLost(now: number): void {
    this.stats.pathsLost++;
    this.#awaitingSince = undefined;
    this.#setPath(this.#opts.relayAvailable ? RELAY : NONE);
    this.#requestIntroduction();
    this.#beginSearch(now);
  }

  #requestIntroduction(): void {
    this.stats.introductionsRequested++;
    this.#events.push(() => this.#opts.onNeedIntroduction());
  }

  #probe(c: CandidateState, now: number, ttl: number | undefined): void {
    let txid = this.#random() >>> 0;
    while (this.#pending.has(txid)) txid = this.#random() >>> 0;
    this.#pending.set(txid, { endpoint: c.endpoint, sentAt: now });
    if (this.#pending.size > MAX_PENDING_PROBES) {
      this.#pending.delete(this.#pending.keys().next().value!);
    }
    c.lastProbeAt = now;
    const path = this.#path;
    if (path.kind === "direct" && sameEndpoint(path.endpoint, c.endpoint)) {
      this.#lastPathProbeAt = now;
      this.#awaitingSince ??= now;
    }
    if (ttl === undefined) this.stats.probesSent++;
    else this.stats.primingProbesSent++;
    this.#opts.sendProbe(c.endpoint, txid, ttl === undefined ? {} : { ttl });
  }

  /** Records proof of life from a candidate. */
  #heard(c: CandidateState, now: number): void {
    c.lastHeardAt = now;
    const path = this.#path;
    if (path.kind === "direct" && sameEndpoint(path.endpoint, c.endpoint)) {
      this.#awaitingSince = undefined;
    }
  }

  /** True when a working `c` would be a better path than the current one. */
  #better(c: CandidateState): boolean {
    const path = this.#path;
    return path.kind !== "direct" || RANK[c.kind] < RANK[path.via];
  }

  #find(endpoint: Endpoint): CandidateState | undefined {
    return this.#candidates.find((c) => sameEndpoint(c.endpoint, endpoint));
  }

  /** Adds a prflx candidate, dropping the oldest one (never the path's) beyond the limit. */
  #learn(endpoint: Endpoint): CandidateState {
    const path = this.#path;
    const prflx = this.#candidates.filter((c) => c.kind === "prflx");
    if (prflx.length >= MAX_PRFLX) {
      const victim = prflx.find((c) =>
        !(path.kind === "direct" && sameEndpoint(path.endpoint, c.endpoint))
      )!;
      this.#candidates.splice(this.#candidates.indexOf(victim), 1);
    }
    const c = newCandidate("prflx", { ...endpoint });
    this.#candidates.push(c);
    this.stats.prflxLearned++;
    return c;
  }

  #setPath(path: Path): void {
    if (samePath(this.#path, path)) return;
    const old = this.#path;
    this.#path = path;
    if (path.kind === "direct") {
      this.#relayAt = undefined;
      this.#reintroduceAt = undefined;
      // A relabelled path (same endpoint) keeps its liveness state.
      if (old.kind !== "direct" || !sameEndpoint(old.endpoint, path.endpoint)) {
        this.#awaitingSince = undefined;
      }
    }
    this.stats.pathChanges++;
    const copy = this.path;
    this.#events.push(() => this.#opts.onPath(copy));
  }

  #flush(): void {
    while (this.#events.length > 0) this.#events.shift()!();
  }
}

function samePath(a: Path, b: Path): boolean {
  if (a.kind === "direct" && b.kind === "direct") {
    return a.via === b.via && sameEndpoint(a.endpoint, b.endpoint);
  }
  return a.kind === b.kind;
}

function newCandidate(kind: CandidateKind, endpoint: Endpoint): CandidateState {
  return {
    kind,
    endpoint: { ...endpoint },
    srtt: undefined,
    lastProbeAt: undefined,
    lastAckAt: undefined,
    lastHeardAt: undefined,
  };
}

/**
 * A one-line description of a path for logs, e.g. `direct 203.0.113.9:4000 (public)`.
 *
 * @example
 * ```ts
 * describePath({ kind: "relay" }); // "relay"
 * ```
 */
export function describePath(path: Path): string {
  return path.kind === "direct"
    ? `direct ${formatEndpoint(path.endpoint)} (${path.via})`
    : path.kind;
}
