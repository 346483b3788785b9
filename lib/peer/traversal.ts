/**
 * NAT traversal toward one remote peer, as a pure state machine: no sockets, no timers. The caller
 * injects a clock and `send` callbacks, feeds it the (already authenticated) probes, probe acks
 * and traffic that arrive directly from the peer, and calls {@linkcode PathFinder.poll} at
 * {@linkcode PathFinder.nextDeadline}. It decides which candidate endpoints to probe and when,
 * which path to use (direct to an endpoint, or the coordinator's relay), when a direct path is dead,
 * and when to ask the coordinator for a new introduction. One instance per remote peer, all of them
 * sharing the UDP socket used with the coordinator (the *main* socket, numbered 0): that shared
 * socket is what makes the mapping the coordinator observed (the `public` candidate the peer
 * receives) valid for our probes too. A birthday search (below) adds extra sockets, numbered by
 * the host; a candidate, and a direct path, is an endpoint of the peer *and* one of our sockets.
 *
 * Rules:
 * - **Candidates.** An introduction gives the peer's `lan` endpoint (the one it claimed at login,
 *   reachable when both peers share a LAN) and its `public` one (its NAT mapping as the coordinator
 *   saw it), and those it announced (docs/PROTOCOL.md §1.7): `v6`, a global IPv6 address of its
 *   socket (no NAT, perhaps a stateful firewall that our own probes open), and `mapped`, an
 *   endpoint its router mapped to its socket on request (PCP, NAT-PMP, UPnP). A valid probe from any other endpoint teaches a `prflx` (peer-reflexive) candidate:
 *   the peer's NAT mapped its socket to another port toward us (a symmetric NAT, or an open NAT
 *   that had to shift the port). Introductions hold at most {@linkcode MAX_CANDIDATES} endpoints;
 *   at most {@linkcode MAX_PRFLX} prflx candidates are kept (the oldest goes first).
 * - **Priority.** A working `lan` endpoint beats `v6`, which beats `public` and `mapped` (equal:
 *   neither replaces the other), which beat `prflx`, which beats `turn`; any of them beats the
 *   coordinator's relay. IPv6 comes before IPv4 because no NAT stands on its way: its path does not
 *   depend on a mapping that can change or expire. A candidate works once a probe sent to it is
 *   acknowledged; if it ranks above the current path, the path switches to it at once (`onPath`).
 * - **Priming.** An "open" NAT (no input filter, like the lab's `open` router) that receives the
 *   peer's probe *before* we have sent anything to the peer creates an `[UNREPLIED]` conntrack entry
 *   for that tuple, so our own later packets to the peer are mapped to a *different* public port
 *   and the port the coordinator observed (the one the peer probes) leads nowhere. So a search
 *   starts by sending each `public` (and `mapped`) candidate a probe with TTL 2, then
 *   (`primeDelayMs / 2` later) one with TTL 3, and only `primeDelayMs` (100 ms) after the start
 *   the normal probes. TTL 2 gets
 *   through our router, creating our mapping toward the peer, and dies in the next router, so it
 *   never reaches the peer's NAT early; TTL 3 does the same for the outer router of a double NAT
 *   (home router behind a carrier NAT), which a TTL 2 probe does not get past. The risk: when the
 *   peer's router is only one router beyond ours (the lab: host, router, core, router), the TTL 3
 *   probe reaches it. That is harmless once the peer has primed (the probe matches the peer's own
 *   mapping and dies there) and harmful before, which is why it goes out half-way through the
 *   delay: both introductions must arrive within about `primeDelayMs / 2` plus the one-way delay
 *   of each other, which is the case when the coordinator sends both at once. (`primeTtls` sets the
 *   rounds; they are spread evenly over `primeDelayMs`.) `lan` candidates are probed at once:
 *   they do not cross our NAT (when the peer's private address happens to be that of another host
 *   of our LAN, that host gets a probe it cannot authenticate, nothing more). Nor do `v6` ones: no
 *   NAT maps them, and a stateful firewall's state comes from our first probe whatever the peer's
 *   firewall does with it. `prflx` candidates need
 *   no priming: the peer's probe already got through our NAT. Every search primes again: a new
 *   introduction (unless primed early, below), or a dead path.
 * - **Early priming** (the first message of a new pair, without the 100 ms). Before it sends
 *   `connect`, a client sends the peer's listed endpoint (its `public` one) an empty datagram with
 *   the lowest priming TTL (`Links.earlyPrime`). The first introduction of a pair needs both
 *   sides' `connect` (docs/PROTOCOL.md §1.4), so by the time the coordinator sends it, both NATs
 *   hold a mapping toward the other: no probe sent after the introduction can arrive first, and
 *   that holds by causality, whatever the delays. {@linkcode PathFinder.start} with `primed` (the
 *   endpoints primed so, for an introduction with a new token, i.e. a new consent: both asked)
 *   then skips the priming rounds: the normal probes go at once. The first of them maps every NAT
 *   layer on its way, as a TTL 3 probe would, and may reach the peer's NAT, which is primed. What
 *   is left to timing: behind two NATs, the peer's first probe may reach our *outer* NAT before
 *   ours left it. A filtering one (the lab's `cgnat`) drops it, and the next probe of either side
 *   gets through; an unfiltered one (an open carrier NAT) would keep an `[UNREPLIED]` entry and
 *   move our port, which the classic schedule's 50 ms before TTL 3 made unlikely. A
 *   re-introduction (same token: only one side asked) primes as above.
 * - **Search schedule.** Each eligible candidate is probed every `probeIntervalMs` (200 ms) for the
 *   first `fastProbeMs` (3 s), then every `backgroundIntervalMs` (3 s, ±25 % jitter so that
 *   the two peers' probes do not stay in step) while no direct path works, until `backgroundForMs`
 *   (30 s) after the start. A valid probe from a candidate we may use also triggers a probe back
 *   to it at once (at most one per `probeIntervalMs`, but always for the first probe heard from
 *   it: ours may have been dropped by a NAT that had no mapping yet), which converges faster than
 *   waiting for the next round. With a direct path, only candidates ranked above it are still probed, and only in
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
 * - **Birthday search** (Tailscale's "birthday paradox"; {@linkcode PathFinder.startBirthday}),
 *   for a pair with a symmetric NAT (H: a new random public port per destination, and a filter)
 *   on one side and an endpoint-independent NAT (E: home or open) or none on the other. H's host
 *   opens K extra sockets ({@linkcode BIRTHDAY_SOCKETS}, 256) and H probes E's `public` endpoint
 *   from each (role `sockets`): K mappings hardIP:P1..PK, each letting in E's public endpoint
 *   only. E probes N distinct random ports (1024) of H's public address from its main socket
 *   (role `spray`), each opening E's own filter to hardIP:port. When a sprayed port is some Pi,
 *   E's probe reaches socket i and H's ack gets back (or H's probe from socket i gets in, if E
 *   sprayed Pi first): H's path is E's endpoint from socket i, E's is hardIP:Pi, learned as
 *   prflx. Odds: 1 − (1 − K/64512)^N, 98.3 % by default. H probes in two rounds: the first with
 *   the lowest priming TTL (2), which creates the mappings without reaching E's NAT (an open NAT
 *   would take an unsolicited probe for itself, and the `[UNREPLIED]` entry would divert E's
 *   later spray to that port, as with priming above), all K at once: they die in H's own network,
 *   and every sprayed probe that arrives before a mapping exists is wasted; the second with the
 *   default TTL, `secondRoundAfterMs` (3 s) after the start, when E's spray is over: it gets in
 *   for every port E sprayed before H's mapping of it existed. Probes that reach the peer go at
 *   most `probesPerSecond` (500) in any second: E's N in 2.05 s, H's second round in 0.5 s. With
 *   all K mappings up, each sprayed probe hits with odds K/64512: the median hit comes after
 *   175 probes, 0.35 s (docs/NAT.md, "The birthday search's arithmetic"). A search ends
 *   when the path becomes direct (by any candidate) or after `windowMs` (15 s), and the extra
 *   sockets go back through `releaseSockets`, all but the one a direct path uses, which goes back
 *   when the path stops using it (dead, or replaced: the main socket beats an extra one of the
 *   same kind). It runs alongside the normal search, which goes on unchanged (relay after
 *   `relayAfterMs`, upgrade when the birthday succeeds). Keepalives and dead-path detection work
 *   the same through an extra socket; a dead path falls back to the relay and asks for an
 *   introduction, with which a new search may start. The first round dies before an outer NAT
 *   when H is behind two, so only the second round works then. E's spray waits for proof that H
 *   holds the address it aims at: a valid probe from that address, or one through the relay
 *   ({@linkcode PathFinder.onRelayedProbe}; H's link sends it when its search starts); one
 *   proof, one spray, and none without a proof within the window.
 * - **Quota.** Every probe to an endpoint that has not answered, and every birthday probe, is
 *   charged to a {@linkcode ProbeQuota} (shared by a client's finders; docs/PROTOCOL.md §2.1):
 *   32 per such endpoint and 512 in all in any 10 minutes, 2048 birthday probes. A probe it
 *   refuses is not sent (the schedule goes on as if it had been); a birthday search it stops
 *   ends.
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
 * - **home or open ↔ symmetric**: direct with a birthday search (above), otherwise relay. Measured
 *   in the virtual network of the tests (20 ms one way, sockets opened 30 ms after the
 *   introduction; 1000 seeds per case, with the first round and the spray both at 200 a second):
 *   direct for 98.2 % (home, either side first) to 98.4 %, 98.1 % with an open NAT, against
 *   98.3 % predicted; both sides direct within 1.5 s of the introduction for half of them,
 *   3.4–3.6 s for 90 %. With the first round at once and the spray at 500 a second (home, 1000
 *   seeds): 98.8 % direct, within 0.43 s for half, 1.15 s for 90 %, 1.9 s for 99 %, 2.1 s at
 *   most. A failed search leaves the pair on the relay until the next introduction (90 s on),
 *   which may start another. Without one, the normal search cannot succeed: our probes go to the symmetric
 *   side's coordinator-observed port, which is not the port it uses toward us, and its probes
 *   come from a port we never sent to, which an address-and-port-dependent filter drops; an open
 *   Linux NAT does not forward them either (they reach the router itself), so no prflx is ever
 *   learned.
 * - **symmetric ↔ symmetric**: relay. A birthday search would not help: each sprayed probe
 *   leaves the sprayer's NAT from a new random port, which the other side's mappings (each bound
 *   to one remote endpoint) filter. Do not start one.
 * - **both behind the same carrier NAT**: direct only via `lan` or if the carrier NAT hairpins.
 *
 * Callbacks are invoked after the state is updated, except `sendProbe` and `sendProbeAck`, which
 * are called mid-update and so must neither throw nor call back into the finder synchronously.
 * `onPath`, `onNeedIntroduction` and `releaseSockets` may call back (e.g. `start()` from
 * `onNeedIntroduction`).
 *
 * @example
 * ```ts
 * const finder = new PathFinder({
 *   now: () => realClock.now(),
 *   sendProbe: (to, txid, { ttl, socket }) => wire.sendProbe(socket, to, txid, ttl),
 *   sendProbeAck: (to, txid, socket) => wire.sendProbeAck(socket, to, txid),
 *   onPath: (path) => console.log("path", path),
 *   onNeedIntroduction: () => coordinator.requestIntroduction("bob"),
 *   releaseSockets: (ids) => wire.close(ids),
 *   relayAvailable: true,
 * });
 * finder.start([
 *   { kind: "lan", endpoint: { host: "10.0.0.7", port: 4000 } },
 *   { kind: "public", endpoint: { host: "203.0.113.9", port: 4000 } },
 * ]);
 * // We are behind a home NAT and the peer behind a symmetric one:
 * finder.startBirthday({ role: "spray" });
 * // Feed finder.onProbe / onProbeAck / onAuthenticatedTraffic from the sockets, with the id of
 * // the socket each arrived on, and call finder.poll() whenever finder.nextDeadline() passes.
 * ```
 * @module
 */
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import {
  BIRTHDAY_SOCKETS,
  type BirthdayOptions,
  type BirthdayPlan,
  BirthdaySearch,
  planBirthday,
  type SocketsBirthdayOptions,
  type SprayBirthdayOptions,
  SprayProof,
} from "./birthday.ts";
import { MAX_PENDING_PROBES, ProbeTransactions } from "./probe_transactions.ts";
import { ProbeQuota } from "./probe_quota.ts";
import { SearchSchedule } from "./search_schedule.ts";

export { BIRTHDAY_SOCKETS, MAX_PENDING_PROBES };
export type { BirthdayOptions, SocketsBirthdayOptions, SprayBirthdayOptions };

/**
 * Where a candidate endpoint comes from; also its rank, best first (`public` and `mapped` rank
 * alike). `turn`: through a TURN server, either the peer's relayed address (reached from our main
 * socket) or an endpoint of the peer reached through our own allocation (socket
 * {@linkcode PathFinderOptions.turnSocket}): below every direct kind, above the coordinator's
 * relay.
 */
export type CandidateKind = "lan" | "v6" | "public" | "mapped" | "prflx" | "turn";

/** An endpoint of the remote peer worth probing, and the local socket to probe it from. */
export interface Candidate {
  kind: CandidateKind;
  endpoint: Endpoint;
  /** The local socket: 0 (the default) is the main one, shared with the coordinator. */
  socket?: number;
}

/** The path our packets to the peer take. */
export type Path =
  | { kind: "none" }
  | { kind: "direct"; endpoint: Endpoint; via: CandidateKind; socket: number }
  | { kind: "relay" };

/** Per-probe options for {@linkcode PathFinderOptions.sendProbe}. */
export interface ProbeOptions {
  /**
   * IP TTL for this probe; undefined means the socket's default. Set only on priming probes,
   * which must leave our NAT but not reach the peer's. The TTL has to be in force when the
   * datagram actually leaves the socket, which with `node:dgram` is after `send` returns.
   */
  ttl?: number;
  /** The local socket to send from: 0 is the main one, others are a birthday search's. */
  socket: number;
}

/** Options of {@linkcode PathFinder}. Times are in milliseconds. */
export interface PathFinderOptions {
  /** Current time in milliseconds. */
  now: () => number;
  /** Sends a probe with this txid to `to`, directly (never through the relay). */
  sendProbe: (to: Endpoint, txid: number, options: ProbeOptions) => void;
  /**
   * Sends an ack of the probe `txid` to `to` (where the probe came from), directly, from
   * `socket`, the local socket the probe arrived on.
   */
  sendProbeAck: (to: Endpoint, txid: number, socket: number) => void;
  /** Called on every change of path, with the new path. */
  onPath: (path: Path) => void;
  /**
   * Asks the coordinator to introduce the two peers again; the introduction should reach both
   * at about the same time, each then calling {@linkcode PathFinder.start}.
   */
  onNeedIntroduction: () => void;
  /**
   * Hands extra sockets given to {@linkcode PathFinder.startBirthday} back to the host, which may
   * close them: all of them once the search ends, but the one a direct path uses, which is handed
   * back when the path stops using it. Required to start a birthday search with sockets.
   */
  releaseSockets?: (sockets: number[]) => void;
  /** Whether the coordinator can relay for this peer; without it the fallback path is `none`. */
  relayAvailable: boolean;
  /**
   * The socket id that stands for our TURN allocation, if we have one: what arrives on it comes
   * through the TURN server, and candidates learned on it are `turn` ones.
   */
  turnSocket?: number;
  /**
   * Probe the introduction's direct candidates (`lan`, `v6`, `public`, `mapped`); default true.
   * False is a test hook: it forces a pair off the direct path, onto TURN or the relay, on
   * loopback.
   */
  directCandidates?: boolean;
  /** Random u32 for txids, jitter and sprayed ports; default `crypto.getRandomValues`. */
  random?: () => number;
  /**
   * The budget of probes to endpoints that have not answered and of birthday probes
   * (`probe_quota.ts`); share one between the finders of a client. Default: one of its own.
   */
  quota?: ProbeQuota;
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
  /** Delay from the start of a search to the first normal probe of `public`/`mapped` ones; 100. */
  primeDelayMs?: number;
}

/** The default TTLs of the priming rounds; the lowest is that of early priming too. */
export const DEFAULT_PRIME_TTLS: readonly number[] = [2, 3];

/** Options of {@linkcode PathFinder.start}. */
export interface StartOptions {
  /**
   * Endpoints given a priming probe of the lowest TTL from the main socket before this
   * introduction was asked for, by both sides ("Early priming" above). When every `public`
   * candidate on the main socket is one of them, the search starts without the priming delay.
   */
  primed?: Endpoint[];
}

/** Counters of a {@linkcode PathFinder}; they only grow. */
export interface PathFinderStats {
  /** Probes sent with the default TTL, birthday probes excluded. */
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
  /** Birthday searches started. */
  birthdaysStarted: number;
  /** Birthday searches ended by a direct path (rather than by their window). */
  birthdaysSucceeded: number;
  /** Probes sent by birthday searches: sprayed, or from the extra sockets. */
  birthdayProbesSent: number;
  /** Probes not sent: their endpoint had not answered and its quota was spent. */
  probesCapped: number;
  /** Birthday searches ended early: the quota of birthday probes was spent. */
  birthdaysCapped: number;
  /** Sprays that never started: no proof from the peer came within their window. */
  spraysUnproven: number;
}

/** A snapshot of one candidate, for diagnostics and tests. */
export interface CandidateInfo {
  kind: CandidateKind;
  endpoint: Endpoint;
  /** The local socket it is probed from (0: the main one). */
  socket: number;
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
const RANK: Record<CandidateKind, number> = {
  lan: 0,
  v6: 1,
  public: 2,
  mapped: 2,
  prflx: 3,
  turn: 4,
};
/** Kinds whose endpoint is a NAT's mapping: probed only after priming. */
const PRIMED: ReadonlySet<CandidateKind> = new Set(["public", "mapped"]);
const NONE: Path = { kind: "none" };
const RELAY: Path = { kind: "relay" };

interface CandidateState {
  kind: CandidateKind;
  endpoint: Endpoint;
  socket: number;
  srtt: number | undefined;
  lastProbeAt: number | undefined;
  lastAckAt: number | undefined;
  lastHeardAt: number | undefined;
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

/**
 * Finds and keeps a path to one remote peer: the candidates, the path and its liveness are
 * here; the search's timetable is a {@linkcode SearchSchedule}, the txids of probes awaiting an
 * ack are {@linkcode ProbeTransactions}, and a birthday search is a {@linkcode BirthdaySearch}.
 */
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
    birthdaysStarted: 0,
    birthdaysSucceeded: 0,
    birthdayProbesSent: 0,
    probesCapped: 0,
    birthdaysCapped: 0,
    spraysUnproven: 0,
  };
  readonly #opts: PathFinderOptions;
  readonly #t: Timings;
  readonly #random: () => number;
  readonly #txns: ProbeTransactions;
  readonly #quota: ProbeQuota;
  /** The timetable of the current search. */
  readonly #schedule: SearchSchedule;
  #candidates: CandidateState[] = [];
  #path: Path = NONE;
  #running = false;
  #events: (() => void)[] = [];

  // Birthday search.
  /** The endpoint the last introduction gave as `public` (kept even if also given as `lan`). */
  #introducedPublic: Endpoint | undefined;
  #birthday: BirthdaySearch | undefined;
  /** A spray waiting for proof that the peer holds its public address. */
  readonly #spray = new SprayProof();
  /** Extra sockets given by `startBirthday` and not yet handed back. */
  #held = new Set<number>();

  /**
   * Liveness of a direct path: when it was last probed, and the time of the first send on it not
   * followed by any proof of life.
   */
  readonly #live: { lastProbeAt: number; awaitingSince: number | undefined } = {
    lastProbeAt: 0,
    awaitingSince: undefined,
  };

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
    const primeTtls = options.primeTtls ?? DEFAULT_PRIME_TTLS;
    for (const ttl of primeTtls) {
      if (!(Number.isInteger(ttl) && ttl >= 1 && ttl <= 255)) {
        throw new RangeError(`Invalid priming TTL ${ttl}: must be an integer in 1..255`);
      }
    }
    this.#random = options.random ?? (() => crypto.getRandomValues(new Uint32Array(1))[0]);
    this.#txns = new ProbeTransactions(this.#random);
    this.#quota = options.quota ?? new ProbeQuota();
    this.#schedule = new SearchSchedule({ ...this.#t, primeTtls, random: this.#random });
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
    return path.kind === "direct" ? this.#find(path.endpoint, path.socket)?.srtt : undefined;
  }

  /** A snapshot of the candidates: introduced ones first, then learned ones in that order. */
  get candidates(): CandidateInfo[] {
    return this.#candidates.map((c) => ({
      kind: c.kind,
      endpoint: { ...c.endpoint },
      socket: c.socket,
      rttMs: c.srtt,
      lastAckAt: c.lastAckAt,
      lastHeardAt: c.lastHeardAt,
    }));
  }

  /** The role of the birthday search in progress, if any. */
  get birthday(): BirthdayOptions["role"] | undefined {
    return this.#birthday?.role ?? (this.#spray.armed ? "spray" : undefined);
  }

  /**
   * Starts a search with the candidates of an introduction (they replace those of the previous
   * one; learned candidates and that of the current direct path are kept). May be called again:
   * each call restarts the schedule, priming included, without changing the current path or a
   * birthday search in progress. A candidate is an endpoint *and* a socket; one given twice
   * keeps its best kind. With `options.primed` covering every `public` candidate, the search
   * starts without the priming delay ("Early priming" above). Throws `RangeError` when given
   * more than {@linkcode MAX_CANDIDATES} distinct candidates or a socket that is not an integer
   * >= 0.
   *
   * @example
   * ```ts
   * finder.start([{ kind: "public", endpoint: { host: "203.0.113.9", port: 4000 } }]);
   * ```
   */
  start(candidates: Candidate[], options: StartOptions = {}): void {
    const introduced: CandidateState[] = [];
    const probed = this.#opts.directCandidates === false
      ? candidates.filter((c) => c.kind === "turn" || c.kind === "prflx")
      : candidates;
    for (const { kind, endpoint, socket = 0 } of probed) {
      if (!(Number.isInteger(socket) && socket >= 0)) {
        throw new RangeError(`Cannot start: socket ${socket} is not an integer >= 0`);
      }
      const dup = introduced.find((c) => sameEndpoint(c.endpoint, endpoint) && c.socket === socket);
      if (dup) {
        if (RANK[kind] < RANK[dup.kind]) dup.kind = kind;
        continue;
      }
      // Keep what we measured about a candidate we already knew.
      const known = this.#find(endpoint, socket);
      introduced.push(known ? { ...known, kind } : newCandidate(kind, endpoint, socket));
    }
    if (introduced.length > MAX_CANDIDATES) {
      throw new RangeError(
        `Cannot start: ${introduced.length} distinct candidates, at most ${MAX_CANDIDATES}`,
      );
    }
    const path = this.#path;
    const kept = this.#candidates.filter((c) =>
      (c.kind === "prflx" || c.kind === "turn" || c.socket !== 0 ||
        (path.kind === "direct" && onPath(path, c))) &&
      !introduced.some((n) => sameEndpoint(n.endpoint, c.endpoint) && n.socket === c.socket)
    );
    this.#candidates = [...introduced, ...kept];
    const pub = candidates.find((c) => c.kind === "public" && (c.socket ?? 0) === 0);
    this.#introducedPublic = pub && { ...pub.endpoint };
    if (path.kind === "direct") {
      // The introduction may rank the path's endpoint differently (a prflx that is now public).
      const via = this.#find(path.endpoint, path.socket)!.kind;
      if (via !== path.via) this.#setPath({ ...path, via });
    }
    const now = this.#opts.now();
    if (!this.#running) {
      this.#running = true;
      if (path.kind === "none" && this.#opts.relayAvailable) {
        this.#schedule.armRelay(now);
      }
    }
    const publics = introduced.filter((c) => c.kind === "public" && c.socket === 0);
    const earlyPrimed = publics.length > 0 &&
      publics.every((c) => options.primed?.some((p) => sameEndpoint(p, c.endpoint)));
    this.#schedule.begin(now, { earlyPrimed });
    this.#run(now);
    this.#flush();
  }

  /**
   * Starts a birthday search toward the `public` candidate of the last {@linkcode start}, for a
   * peer behind a symmetric NAT while we are behind an endpoint-independent one (`spray`), or
   * the other way round (`sockets`, with the extra sockets the host just opened); see the module
   * documentation. It runs alongside the normal search until a direct path comes up or
   * `windowMs` passes; then the extra sockets are handed back through `releaseSockets`, all but
   * one a direct path uses. A search already in progress ends first (sockets given again are
   * kept). With a direct path already up, nothing is sent (and the sockets are handed back).
   * When both peers asked for an introduction, two may come in a row: check
   * {@linkcode PathFinder.birthday} before opening sockets for a second search toward the same
   * endpoint.
   * Throws `Error` before {@linkcode start} or without a `public` candidate, and `RangeError`
   * on invalid options or a `sockets` role without `releaseSockets`; the host keeps its
   * sockets then.
   *
   * @example
   * ```ts
   * finder.start(introduction.candidates);
   * if (weAreSymmetric) finder.startBirthday({ role: "sockets", sockets: await openSockets(256) });
   * else finder.startBirthday({ role: "spray" });
   * ```
   */
  startBirthday(options: BirthdayOptions): void {
    const plan = planBirthday(options);
    if (plan.role === "sockets" && this.#opts.releaseSockets === undefined) {
      throw new RangeError(
        "Cannot search with extra sockets: no releaseSockets callback to hand them back",
      );
    }
    const target = this.#introducedPublic;
    if (!this.#running || target === undefined) {
      throw new Error(
        "Cannot start a birthday search: no public candidate of the peer; call start() first",
      );
    }
    const now = this.#opts.now();
    this.#birthday = undefined;
    this.#spray.disarm();
    for (const s of plan.sockets) this.#held.add(s);
    if (this.#path.kind !== "direct") {
      if (plan.role === "spray") this.#spray.arm(plan, now);
      else this.#beginBirthday(plan, target, now);
      this.#sprayIfProven(now);
    }
    this.#flush();
  }

  /**
   * Adds the peer's relayed address on its TURN server (sent by the peer, authenticated) as a
   * `turn` candidate on our main socket, and probes it at once if it would be a better path. Kept
   * across introductions, like learned candidates; at most {@linkcode MAX_PRFLX} of them.
   *
   * @example
   * ```ts
   * finder.addTurnCandidate({ host: "198.51.100.3", port: 49152 });
   * ```
   */
  addTurnCandidate(endpoint: Endpoint): void {
    if (this.#find(endpoint, 0)) return;
    const turns = this.#candidates.filter((c) => c.kind === "turn" && c.socket === 0);
    if (turns.length >= MAX_PRFLX) {
      const path = this.#path;
      const victim = turns.find((c) => !(path.kind === "direct" && onPath(path, c)));
      if (!victim) return;
      this.#candidates.splice(this.#candidates.indexOf(victim), 1);
    }
    const c = newCandidate("turn", endpoint, 0);
    this.#candidates.push(c);
    if (this.#running && this.#better(c)) this.#probe(c, this.#opts.now(), undefined);
    this.#flush();
  }

  /**
   * A valid probe from the peer came through the coordinator's relay: proof that it holds its
   * public endpoint now (the coordinator relays only from a user's own observed endpoint), which
   * an armed spray waits for. Nothing is answered or learned: the relay is no path for probes.
   *
   * @example
   * ```ts
   * wire.onRelayedProbe = () => finder.onRelayedProbe();
   * ```
   */
  onRelayedProbe(): void {
    const now = this.#opts.now();
    this.#spray.prove(now);
    this.#sprayIfProven(now);
    this.#flush();
  }

  #beginBirthday(plan: BirthdayPlan, target: Endpoint, now: number): void {
    this.stats.birthdaysStarted++;
    this.#birthday = new BirthdaySearch(plan, {
      target,
      now,
      firstRoundTtl: this.#schedule.lowestPrimeTtl,
      random: this.#random,
    });
    this.#runBirthday(now);
  }

  /**
   * Starts the armed spray once the peer proved it holds its public address (a proof at most a
   * window old, used once); forgets it when its window ends unproven.
   */
  #sprayIfProven(now: number): void {
    const target = this.#introducedPublic;
    const plan = this.#spray.take(now, target !== undefined);
    if (plan === "expired") this.stats.spraysUnproven++;
    else if (plan !== undefined) this.#beginBirthday(plan, target!, now);
  }

  /**
   * Handles a valid probe that arrived directly from `from` on local socket `socket`: acks it
   * from that socket, learns (`from`, `socket`) as a candidate if it is not a known one (prflx,
   * or on an extra socket the kind `from` has on the main one), and probes it back if it could
   * be a better path. Works before {@linkcode start} too (the peer's introduction may arrive
   * before ours). Probes on an extra socket we do not hold (already handed back) are ignored.
   *
   * @example
   * ```ts
   * wire.onProbe = (from, txid, socket) => finder.onProbe(from, txid, socket);
   * ```
   */
  onProbe(from: Endpoint, txid: number, socket = 0): void {
    if (!this.#usable(socket)) return;
    const now = this.#opts.now();
    this.stats.probesReceived++;
    // From the peer's public address (any port: its NAT may map each destination apart): the
    // proof an armed spray waits for.
    if (from.host === this.#introducedPublic?.host) {
      this.#spray.prove(now);
      this.#sprayIfProven(now);
    }
    this.stats.acksSent++;
    this.#opts.sendProbeAck(from, txid, socket);
    const c = this.#find(from, socket) ?? this.#learn(from, socket);
    // The first word from a candidate: our probes to it so far may have met a NAT that had no
    // mapping for them yet (dropped), while its probe shows there is one now; answer at once.
    const firstContact = c.lastHeardAt === undefined;
    this.#heard(c, now);
    if (
      this.#running && this.#better(c) &&
      (firstContact || c.lastProbeAt === undefined ||
        now - c.lastProbeAt >= this.#t.probeIntervalMs)
    ) {
      this.#probe(c, now, undefined);
    }
    this.#flush();
  }

  /**
   * Handles a valid probe ack that arrived directly from `from` on local socket `socket`. It
   * counts only if `txid` is that of a probe we sent in the last 5 s and not yet acknowledged;
   * then the probe's target (endpoint and socket) works, and becomes the path if it ranks above
   * the current one. The target of a birthday probe becomes a candidate then. An ack from
   * another endpoint or socket than the target's also teaches (`from`, `socket`) as a candidate.
   *
   * @example
   * ```ts
   * wire.onProbeAck = (from, txid, socket) => finder.onProbeAck(from, txid, socket);
   * ```
   */
  onProbeAck(from: Endpoint, txid: number, socket = 0): void {
    if (!this.#usable(socket)) return;
    const now = this.#opts.now();
    const answered = this.#txns.take(txid, now);
    if (answered === undefined) {
      this.stats.staleAcks++;
      return;
    }
    const { probe, birthday } = answered;
    this.stats.acksReceived++;
    if (!sameEndpoint(from, probe.endpoint) || socket !== probe.socket) {
      this.#heard(this.#find(from, socket) ?? this.#learn(from, socket), now);
    }
    let c = this.#find(probe.endpoint, probe.socket);
    // A birthday probe hit: its target is a candidate from now on.
    if (c === undefined && birthday && this.#usable(probe.socket)) {
      c = this.#learn(probe.endpoint, probe.socket);
    }
    if (c === undefined) return; // replaced by a newer introduction, or its socket handed back
    const sample = now - probe.sentAt;
    c.srtt = c.srtt === undefined ? sample : c.srtt + (sample - c.srtt) / 8;
    c.lastAckAt = now;
    this.#heard(c, now);
    if (this.#running && this.#better(c)) {
      this.#live.lastProbeAt = c.lastProbeAt ?? now;
      this.#setPath({ kind: "direct", endpoint: { ...c.endpoint }, via: c.kind, socket: c.socket });
    }
    this.#flush();
  }

  /**
   * Reports authenticated traffic (not a probe) that arrived directly from `from` on local
   * socket `socket`: proof that the path through them is alive. Do not call it for traffic
   * received through the relay.
   *
   * @example
   * ```ts
   * wire.onData = (from, frame, socket) => finder.onAuthenticatedTraffic(from, socket);
   * ```
   */
  onAuthenticatedTraffic(from: Endpoint, socket = 0): void {
    const c = this.#find(from, socket);
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
   * const path = finder.path;
   * if (path.kind === "direct") {
   *   sockets[path.socket].send(frame, path.endpoint);
   *   finder.onTrafficSent();
   * }
   * ```
   */
  onTrafficSent(): void {
    if (this.#path.kind === "direct" && this.#live.awaitingSince === undefined) {
      this.#live.awaitingSince = this.#opts.now();
    }
  }

  /**
   * Runs what is due at `now()`: keepalives and dead-path detection, priming, probe rounds,
   * birthday probes, the switch to the relay, re-introduction requests.
   *
   * @example
   * ```ts
   * const at = finder.nextDeadline();
   * if (at !== undefined && realClock.now() >= at) finder.poll();
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
   * if (at !== undefined) setTimeout(() => finder.poll(), Math.max(0, at - realClock.now()));
   * ```
   */
  nextDeadline(): number | undefined {
    if (!this.#running) return undefined;
    const times = [this.#schedule.nextDeadline()];
    if (this.#path.kind === "direct") {
      times.push(this.#pathProbeDue());
      if (this.#live.awaitingSince !== undefined) {
        times.push(this.#live.awaitingSince + this.#t.deadAfterMs);
      }
    }
    const b = this.#birthday;
    if (b) times.push(b.endAt, b.nextDue);
    times.push(this.#spray.until);
    const defined = times.filter((t): t is number => t !== undefined);
    return defined.length === 0 ? undefined : Math.min(...defined);
  }

  /**
   * Stops probing, keepalives and any birthday search, forgets the candidates, the path (without
   * calling `onPath`) and the probes in flight, and hands every extra socket back through
   * `releaseSockets`. The finder still answers probes on the main socket, and may be started
   * again.
   *
   * @example
   * ```ts
   * finder.stop();
   * ```
   */
  stop(): void {
    this.#running = false;
    this.#candidates = [];
    this.#introducedPublic = undefined;
    this.#txns.clear();
    this.#birthday = undefined;
    this.#spray.clear();
    this.#path = NONE;
    this.#schedule.stop();
    this.#live.awaitingSince = undefined;
    this.#flush();
  }

  // ---- Internals ----

  #run(now: number): void {
    const t = this.#t;
    if (this.#path.kind === "direct") {
      if (
        this.#live.awaitingSince !== undefined && now >= this.#live.awaitingSince + t.deadAfterMs
      ) {
        this.#pathLost(now);
      } else if (now >= this.#pathProbeDue()) {
        this.#probe(this.#find(this.#path.endpoint, this.#path.socket)!, now, undefined);
      }
    }
    const schedule = this.#schedule;
    for (const ttl of schedule.takePrimes(now)) {
      for (const c of this.#candidates) {
        if (PRIMED.has(c.kind) && this.#better(c)) this.#probe(c, now, ttl);
      }
    }
    if (schedule.roundDue(now)) {
      // A background round that was already scheduled when a direct path came up is skipped.
      const upgrade = this.#path.kind !== "direct" || schedule.inFastPhase(now);
      for (const c of upgrade ? this.#candidates : []) {
        if (this.#better(c) && (!PRIMED.has(c.kind) || schedule.primed(now))) {
          this.#probe(c, now, undefined);
        }
      }
      schedule.endRound(now, this.#path.kind === "direct");
    }
    this.#sprayIfProven(now);
    this.#runBirthday(now);
    if (schedule.takeRelay(now) && this.#path.kind === "none") this.#setPath(RELAY);
    if (schedule.takeReintroduction(now, this.#path.kind === "direct")) {
      this.#requestIntroduction();
    }
  }

  /** Sends the birthday probes due at `now`, within the rate limit; ends the window. */
  #runBirthday(now: number): void {
    const b = this.#birthday;
    if (b === undefined) return;
    if (b.over(now)) {
      this.#birthday = undefined;
      return;
    }
    for (let p = b.next(now); p !== undefined; p = b.next(now)) {
      if (!this.#quota.spray(now)) {
        this.#birthday = undefined;
        this.stats.birthdaysCapped++;
        return;
      }
      const { to, socket, ttl } = p;
      const txid = this.#txns.birthdayProbe(to, socket, now);
      this.stats.birthdayProbesSent++;
      this.#opts.sendProbe(to, txid, ttl === undefined ? { socket } : { ttl, socket });
    }
  }

  /** When the direct path's endpoint should next be probed (keepalive or suspicion). */
  #pathProbeDue(): number {
    const t = this.#t;
    const keepalive = this.#live.lastProbeAt + t.keepaliveMs;
    if (this.#live.awaitingSince === undefined) return keepalive;
    const fast = Math.max(
      this.#live.awaitingSince + t.suspectAfterMs,
      this.#live.lastProbeAt + t.probeIntervalMs,
    );
    return Math.min(keepalive, fast);
  }

  #pathLost(now: number): void {
    this.stats.pathsLost++;
    this.#live.awaitingSince = undefined;
    this.#setPath(this.#opts.relayAvailable ? RELAY : NONE);
    this.#requestIntroduction();
    this.#schedule.begin(now);
  }

  #requestIntroduction(): void {
    this.stats.introductionsRequested++;
    this.#events.push(() => this.#opts.onNeedIntroduction());
  }

  /**
   * Probes `c` now, if the quota lets a probe go to it; either way the probe counts as done for
   * the schedule (a capped candidate is not retried at once).
   */
  #probe(c: CandidateState, now: number, ttl: number | undefined): void {
    c.lastProbeAt = now;
    const path = this.#path;
    if (path.kind === "direct" && onPath(path, c)) {
      this.#live.lastProbeAt = now;
      this.#live.awaitingSince ??= now;
    }
    if (!this.#quota.probe(quotaKey(c), now)) {
      this.stats.probesCapped++;
      return;
    }
    const txid = this.#txns.probe(c.endpoint, c.socket, now);
    if (ttl === undefined) this.stats.probesSent++;
    else this.stats.primingProbesSent++;
    this.#opts.sendProbe(
      c.endpoint,
      txid,
      ttl === undefined ? { socket: c.socket } : { ttl, socket: c.socket },
    );
  }

  /** Records proof of life from a candidate. */
  #heard(c: CandidateState, now: number): void {
    c.lastHeardAt = now;
    this.#quota.answered(quotaKey(c), now);
    const path = this.#path;
    if (path.kind === "direct" && onPath(path, c)) this.#live.awaitingSince = undefined;
  }

  /**
   * True when a working `c` would be a better path than the current one: a better kind, or the
   * same kind on the main socket instead of an extra one (which can then be handed back).
   */
  #better(c: CandidateState): boolean {
    const path = this.#path;
    return path.kind !== "direct" || RANK[c.kind] < RANK[path.via] ||
      (RANK[c.kind] === RANK[path.via] && c.socket === 0 && path.socket !== 0);
  }

  #find(endpoint: Endpoint, socket: number): CandidateState | undefined {
    return this.#candidates.find((c) => c.socket === socket && sameEndpoint(c.endpoint, endpoint));
  }

  /** Whether packets on `socket` are ours: the main socket, a held one, or a candidate's. */
  #usable(socket: number): boolean {
    return socket === 0 || socket === this.#opts.turnSocket || this.#held.has(socket) ||
      this.#candidates.some((c) => c.socket === socket);
  }

  /**
   * Adds a learned candidate: prflx, except that an endpoint known on the main socket keeps its
   * kind on an extra socket. The oldest prflx (never the path's) goes beyond the limit.
   */
  #learn(endpoint: Endpoint, socket: number): CandidateState {
    const kind: CandidateKind = socket === this.#opts.turnSocket
      ? "turn"
      : socket === 0
      ? "prflx"
      : this.#find(endpoint, 0)?.kind ?? "prflx";
    const path = this.#path;
    const same = this.#candidates.filter((c) => c.kind === kind);
    if ((kind === "prflx" || kind === "turn") && same.length >= MAX_PRFLX) {
      const victim = same.find((c) => !(path.kind === "direct" && onPath(path, c)))!;
      this.#candidates.splice(this.#candidates.indexOf(victim), 1);
    }
    const c = newCandidate(kind, endpoint, socket);
    this.#candidates.push(c);
    if (kind === "prflx") this.stats.prflxLearned++;
    return c;
  }

  #setPath(path: Path): void {
    if (samePath(this.#path, path)) return;
    const old = this.#path;
    this.#path = path;
    if (path.kind === "direct") {
      this.#schedule.onDirect();
      // A relabelled path (same candidate) keeps its liveness state.
      if (old.kind !== "direct" || !samePath({ ...old, via: path.via }, path)) {
        this.#live.awaitingSince = undefined;
      }
      if (this.#birthday) {
        this.#birthday = undefined;
        this.stats.birthdaysSucceeded++;
      }
    }
    this.stats.pathChanges++;
    const copy = this.path;
    this.#events.push(() => this.#opts.onPath(copy));
  }

  /** Hands back the extra sockets neither a birthday search nor the path uses. */
  #releaseUnused(): void {
    const keep = new Set(this.#birthday?.sockets);
    if (this.#path.kind === "direct") keep.add(this.#path.socket);
    const release = [...this.#held].filter((s) => !keep.has(s));
    if (release.length === 0) return;
    for (const s of release) this.#held.delete(s);
    this.#candidates = this.#candidates.filter((c) => !release.includes(c.socket));
    this.#events.push(() => this.#opts.releaseSockets!(release));
  }

  #flush(): void {
    this.#releaseUnused();
    while (this.#events.length > 0) this.#events.shift()!();
  }
}

/** How the quota names a candidate: its local socket and endpoint. */
function quotaKey(c: CandidateState): string {
  return `${c.socket}/${formatEndpoint(c.endpoint)}`;
}

function onPath(path: Extract<Path, { kind: "direct" }>, c: CandidateState): boolean {
  return path.socket === c.socket && sameEndpoint(path.endpoint, c.endpoint);
}

function samePath(a: Path, b: Path): boolean {
  if (a.kind === "direct" && b.kind === "direct") {
    return a.via === b.via && a.socket === b.socket && sameEndpoint(a.endpoint, b.endpoint);
  }
  return a.kind === b.kind;
}

function newCandidate(kind: CandidateKind, endpoint: Endpoint, socket: number): CandidateState {
  return {
    kind,
    endpoint: { ...endpoint },
    socket,
    srtt: undefined,
    lastProbeAt: undefined,
    lastAckAt: undefined,
    lastHeardAt: undefined,
  };
}

/**
 * A one-line description of a path for logs, e.g. `direct 203.0.113.9:4000 (public)`, or
 * `direct 203.0.113.9:4000 (public, socket 7)` on an extra socket.
 *
 * @example
 * ```ts
 * describePath({ kind: "relay" }); // "relay"
 * ```
 */
export function describePath(path: Path): string {
  if (path.kind !== "direct") return path.kind;
  const socket = path.socket === 0 ? "" : `, socket ${path.socket}`;
  return `direct ${formatEndpoint(path.endpoint)} (${path.via}${socket})`;
}
