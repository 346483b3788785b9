/**
 * One community on several coordinators (`p2p serve --cluster nats://… --community NAME`,
 * docs/CLUSTER.md): this member's side of the cluster, between its rooms and NATS.
 *
 * - **Out.** The users this coordinator admitted, moved or lost are published as `presence`
 *   messages, numbered and stamped with their publish time: at once after a quiet spell (in the
 *   same turn, ahead of our own clients' datagrams), else batched (one publish per `batchMs`);
 *   a `beat` every `beatMs` says we live and where our numbering is; a `want` is answered with
 *   our whole `snapshot`, to the asker alone (to everyone when several ask at once).
 * - **In.** We subscribe to the broadcasts and to the messages addressed to us, no others'.
 *   Other members' messages are decoded ({@linkcode decodeClusterMessage}) and fed to
 *   {@linkcode ClusterView}; the users it lists are vetted by the registry as we would have
 *   admitted them ({@linkcode Registry.addRemote}) and told to our clients through the presence
 *   outbox, batched as any change.
 * - **Introductions and relay.** The member that decides a pair is the one with the smaller id of
 *   the two users' members: a `connect` to a user of a member with a smaller id is sent there;
 *   `Introduce`, `Knock` and `Unavailable` for a remote user go to its member (`deliver`), and
 *   relayed frames for one go to its member (`relay`), one hop as DERP does.
 * - **Faults.** Lost NATS is logged loudly; our users are served as ever and other members' users
 *   expire with their silence; when NATS is back we say `want` and everyone resends its snapshot.
 *
 * The NATS connection is `cluster_nats.ts`; this module decides nothing about time by itself
 * (the injected clock drives the beats, batching and expiry).
 *
 * @example
 * ```ts
 * const cluster = await Cluster.start({ url: "nats://127.0.0.1:4222", community: "demo",
 *   member: "a", token: "secret" }, rooms);
 * cluster.status(); // { connected: true, members: 0, lagMs: 0, remoteUsers: 0 }
 * ```
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";
import {
  checkToken,
  type ClusterChange,
  type ClusterMessage,
  ClusterProtocolError,
  clusterSubject,
  type ClusterSubjectKind,
  type ClusterUser,
  decodeClusterMessage,
  encodeClusterMessage,
  MAX_CLUSTER_ENTRIES,
  parseClusterSubject,
} from "../protocol/cluster.ts";
import { encodeFrame } from "../protocol/frame.ts";
import type { ServerMessage } from "../protocol/seed.ts";
import { encodeServerMessage } from "../protocol/seed.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { ClusterView } from "./cluster_view.ts";
import { Histogram, type HistogramSnapshot, HOP_BUCKETS_SECONDS } from "./histogram.ts";
import { type NatsLink, openNatsLink } from "./cluster_nats.ts";
import { addressKey } from "./limits.ts";
import type { PresenceOutbox } from "./presence_outbox.ts";
import type { Registry, User } from "./registry.ts";
import type { RelayPolicy } from "./relay.ts";
import type { ServerLog } from "./server_log.ts";
import type { Introductions } from "./introductions.ts";

/** How a coordinator joins a cluster (`p2p serve --cluster`). */
export interface ClusterOptions {
  /** `nats://HOST:PORT`. */
  url: string;
  /** The community: every member naming the same NATS and community shares its users. */
  community: string;
  /** This member's id, unique in the community (default: a random one per run). */
  member?: string;
  /** NATS token (`--cluster-token-file`). */
  token?: string;
  /** NATS nkey seed (`--cluster-nkey-file`). */
  nkeySeed?: string;
  /** How often we say we live; default 1000 ms. */
  beatMs?: number;
  /** A member silent this long is dropped with its users; default 5000 ms. */
  memberTimeoutMs?: number;
  /** Longest wait before our presence changes are published; default 10 ms. */
  batchMs?: number;
  /**
   * Called with each hop as it is timed (benchmarks and tests; the histograms in
   * {@linkcode ClusterStatus.hops} are kept either way).
   */
  onHop?: (hop: ClusterHop) => void;
  /**
   * Called when a whole snapshot of another member has been applied here (benchmarks and tests:
   * how soon a member that starts lists everyone).
   */
  onSnapshot?: (snapshot: ClusterSnapshotApplied) => void;
}

/** A member's whole snapshot, applied here (see {@linkcode ClusterOptions.onSnapshot}). */
export interface ClusterSnapshotApplied {
  /** The member whose users it lists. */
  member: string;
  /** How many users it lists. */
  users: number;
  /** From our last `want` to everyone (we started, or NATS came back) to now, in ms. */
  sinceHelloMs: number;
}

/**
 * One timing of the cluster's presence path, in ms: `published` at the origin, from the first
 * change of a presence message to its publish; `applied` and `sent` at a receiver, from the
 * origin's publish (its `at`, read against our clock) to the change listed here, and to the
 * datagram carrying it handed to the socket for every client here.
 */
export interface ClusterHop {
  stage: "published" | "applied" | "sent";
  ms: number;
  /** The users the presence message names. */
  names: string[];
  /** The member that published it. */
  member: string;
}

/** What the metrics show of the cluster (`--metrics`). */
export interface ClusterStatus {
  /** Whether the NATS connection is up. */
  connected: boolean;
  /** Other members heard from (not counting this one). */
  members: number;
  /** Longest silence of another member (ms): how stale our copy of its users may be. */
  lagMs: number;
  /** Users the other members hold, as they told us. */
  remoteUsers: number;
  /** Other members' presence messages, publish → applied here and → sent to our clients (s). */
  hops: { applied: HistogramSnapshot; sent: HistogramSnapshot };
}

/** The rooms of this coordinator the cluster works with. */
export interface ClusterRooms {
  clock: Clock;
  registry: Registry;
  outbox: PresenceOutbox;
  relay: RelayPolicy;
  log: ServerLog;
  /** `connect` decisions (the member deciding a pair runs them). */
  introductions: () => Introductions;
  /** Sends bytes from the coordinator's UDP socket (counted). */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** A local user is dropped because another member holds its name (and the settled rule says so). */
  drop: (user: User) => void;
  /**
   * What a local user gets after an `Introduce` decided by another member (TURN credentials: each
   * member grants its own users, from its own TURN server).
   */
  alsoIntroduce?: (to: User) => ServerMessage | undefined;
}

const encoder = new TextEncoder();
/** Users per snapshot part. */
const SNAPSHOT_PART = 1000;

/** This coordinator's membership in a cluster. */
export class Cluster {
  readonly member: string;
  readonly #community: string;
  readonly #boot = crypto.randomUUID().slice(0, 8);
  readonly #r: ClusterRooms;
  readonly #view: ClusterView;
  readonly #timing: { beatMs: number; batchMs: number };
  #link: NatsLink | undefined;
  /**
   * What we publish of our users: the changes not yet published, by name (only the latest
   * counts), and since when; the last message's number; when it went (-Infinity before any).
   */
  readonly #out = {
    pending: new Map<string, ClusterChange>(),
    since: 0,
    seq: 0,
    flushedAt: -Infinity,
    timer: undefined as TimerId | undefined,
  };
  /** Members that asked for our snapshot, answered together once `batchMs` has passed. */
  readonly #wanted = { askers: new Set<string>(), timer: undefined as TimerId | undefined };
  readonly #timers: TimerId[] = [];
  readonly #hops = {
    applied: new Histogram(HOP_BUCKETS_SECONDS),
    sent: new Histogram(HOP_BUCKETS_SECONDS),
  };
  readonly #onHop: ((hop: ClusterHop) => void) | undefined;
  readonly #onSnapshot: ((snapshot: ClusterSnapshotApplied) => void) | undefined;
  /** Messages from NATS we could not use, for tests and the log. */
  readonly stats = { received: 0, refused: 0, malformed: 0, published: 0 };

  private constructor(options: ClusterOptions, rooms: ClusterRooms) {
    this.#community = checkToken(options.community);
    this.member = checkToken(options.member ?? `m${crypto.randomUUID().slice(0, 8)}`);
    this.#r = rooms;
    this.#timing = { beatMs: options.beatMs ?? 1000, batchMs: options.batchMs ?? 10 };
    this.#onHop = options.onHop;
    this.#onSnapshot = options.onSnapshot;
    this.#view = new ClusterView({
      now: () => rooms.clock.now(),
      memberTimeoutMs: options.memberTimeoutMs ?? 5000,
    });
  }

  /**
   * Joins the cluster: connects to NATS (credentials it refuses reject the promise; a NATS that
   * cannot be reached is logged and retried), asks everyone for their snapshots and starts beating.
   */
  static async start(options: ClusterOptions, rooms: ClusterRooms): Promise<Cluster> {
    const cluster = new Cluster(options, rooms);
    cluster.#link = await openNatsLink({
      url: options.url,
      token: options.token,
      nkeySeed: options.nkeySeed,
      name: `p2p ${options.community} ${cluster.member}`,
      // Broadcasts (p2p.C.kind.sender) and what is addressed to us (p2p.C.to.us.sender) only.
      subjects: [
        `p2p.${cluster.#community}.*.*`,
        `p2p.${cluster.#community}.to.${cluster.member}.*`,
      ],
      onMessage: (subject, data) => cluster.#onMessage(subject, data),
      onState: (up, detail) => cluster.#onState(up, detail),
    });
    const clock = rooms.clock;
    cluster.#timers.push(
      clock.setInterval(() => cluster.#beat(), cluster.#timing.beatMs),
      clock.setInterval(() => cluster.#apply(cluster.#view.expire()), cluster.#timing.beatMs / 2),
    );
    if (cluster.#link.up) cluster.#hello();
    rooms.log.line(
      `cluster: member ${cluster.member} of community ${options.community} on ${options.url}`,
    );
    return cluster;
  }

  /** Whether NATS is up, how many other members we hear, how stale their users may be. */
  status(): ClusterStatus {
    return {
      connected: this.#link?.up ?? false,
      members: this.#view.size,
      lagMs: this.#view.lagMs(),
      remoteUsers: this.#view.users,
      hops: { applied: this.#hops.applied.snapshot(), sent: this.#hops.sent.snapshot() },
    };
  }

  /** Local users admitted: every member lists them. */
  admitted(users: readonly User[]): void {
    for (const user of users) this.#change(entry(user));
    this.#schedule();
  }

  /** A local user's endpoint or NAT kind changed: every member learns it. */
  changed(user: User): void {
    if (user.member === undefined && user.state === "online") {
      this.#change(entry(user));
      this.#schedule();
    }
  }

  /** A local user left (logout, expiry): every member unlists it. */
  left(user: User): void {
    if (user.member === undefined && user.state === "online") {
      this.#change({ name: user.name, gone: true });
      this.#schedule();
    }
  }

  /**
   * Routes a local user's `connect` to `targetName`: true if it went to another member (the one
   * that decides the pair), false if this coordinator decides it.
   */
  routeConnect(requester: User, targetName: string): boolean {
    const target = this.#r.registry.get(targetName);
    if (target?.member === undefined || target.member > this.member) return false;
    this.#send(target.member, { t: "connect", from: requester.name, to: targetName });
    return true;
  }

  /** Sends `msg` to remote user `to` through its member. */
  deliver(to: User, msg: ServerMessage): void {
    if (to.member !== undefined) this.#send(to.member, { t: "deliver", to: to.name, msg });
  }

  /** Forwards a relayed frame (its budget already charged here) to remote user `to`'s member. */
  relay(from: User, to: User, inner: Uint8Array): void {
    if (to.member !== undefined) {
      this.#send(to.member, { t: "relay", from: from.name, to: to.name, inner });
    }
  }

  /** Leaves: tells every member our users are gone, and closes the NATS connection. */
  async close(): Promise<void> {
    const clock = this.#r.clock;
    for (const t of this.#timers) clock.clearInterval(t);
    clock.clearTimeout(this.#out.timer);
    clock.clearTimeout(this.#wanted.timer);
    for (const user of this.#r.registry.online()) {
      if (user.member === undefined) {
        this.#out.pending.set(user.name, { name: user.name, gone: true });
      }
    }
    this.#flush();
    await this.#link?.close();
  }

  #change(change: ClusterChange): void {
    if (this.#out.pending.size === 0) this.#out.since = this.#r.clock.now();
    this.#out.pending.set(change.name, change);
  }

  /**
   * Publishes our pending changes now after a quiet spell (in this very turn: NATS writes them
   * when it ends, before the outbox's first slice to our own clients, `afterTurn`), else once
   * `batchMs` after the last publish.
   */
  #schedule(): void {
    const clock = this.#r.clock;
    const delay = flushDelayMs({
      now: clock.now(),
      flushedAt: this.#out.flushedAt,
      batchMs: this.#timing.batchMs,
    });
    if (delay === 0) this.#flush();
    else this.#out.timer ??= clock.setTimeout(() => this.#flush(), delay);
  }

  #flush(): void {
    const out = this.#out;
    this.#r.clock.clearTimeout(out.timer);
    out.timer = undefined;
    if (out.pending.size === 0) return;
    const at = out.flushedAt = this.#r.clock.now();
    const changes = [...out.pending.values()];
    out.pending.clear();
    for (let i = 0; i < changes.length; i += MAX_CLUSTER_ENTRIES) {
      this.#publish("presence", {
        t: "presence",
        boot: this.#boot,
        seq: ++out.seq,
        changes: changes.slice(i, i + MAX_CLUSTER_ENTRIES),
        at,
      });
    }
    this.#onHop?.({
      stage: "published",
      ms: at - out.since,
      names: changes.map((c) => c.name),
      member: this.member,
    });
  }

  #beat(): void {
    this.#flush();
    let users = 0;
    for (const user of this.#r.registry.online()) if (user.member === undefined) users++;
    this.#publish("beat", { t: "beat", boot: this.#boot, seq: this.#out.seq, users });
  }

  /** Says we are here (again): everyone sends its snapshot, and we send ours. */
  #hello(): void {
    this.#publish("want", { t: "want" });
    this.#view.wantedAll();
    this.#snapshot();
    this.#beat();
  }

  /**
   * Publishes all our users, in parts, as of our latest presence message: to member `to` alone
   * (on `p2p.C.to.<to>.<us>`), or to everyone.
   */
  #snapshot(to?: string): void {
    this.#flush();
    const users = this.#r.registry.online().filter((u) => u.member === undefined).map(entry);
    const parts = Math.max(1, Math.ceil(users.length / SNAPSHOT_PART));
    for (let part = 0; part < parts; part++) {
      const msg: ClusterMessage = {
        t: "snapshot",
        boot: this.#boot,
        seq: this.#out.seq,
        part,
        parts,
        users: users.slice(part * SNAPSHOT_PART, (part + 1) * SNAPSHOT_PART),
      };
      if (to === undefined) this.#publish("snapshot", msg);
      else this.#send(to, msg);
    }
  }

  #publish(kind: Exclude<ClusterSubjectKind, "to">, msg: ClusterMessage): void {
    this.stats.published++;
    this.#link?.publish(
      clusterSubject(this.#community, kind, this.member),
      encodeClusterMessage(msg),
    );
  }

  #send(to: string, msg: ClusterMessage): void {
    this.stats.published++;
    this.#link?.publish(
      clusterSubject(this.#community, "to", this.member, to),
      encodeClusterMessage(msg),
    );
  }

  #onState(up: boolean, detail: string): void {
    if (up) {
      this.#r.log.line(`cluster: ${detail}; resyncing with the other members`);
      this.#hello();
    } else {
      this.#r.log.line(
        `CLUSTER DOWN: ${detail}. Serving our own users only; other members' users leave ` +
          `the lists as their silence lasts, and come back when NATS does.`,
      );
    }
  }

  #onMessage(subject: string, data: Uint8Array): void {
    this.stats.received++;
    try {
      const { kind, sender, addressee } = parseClusterSubject(this.#community, subject);
      if (sender === this.member || (kind === "to" && addressee !== this.member)) return;
      const msg = decodeClusterMessage(data);
      // A `want` is broadcast (we start) or sent to one member (we saw a gap in its messages); a
      // snapshot is broadcast (we start) or the answer to one member's `want`.
      if (kindOf(msg) !== kind && !((msg.t === "want" || msg.t === "snapshot") && kind === "to")) {
        throw new ClusterProtocolError(`a ${msg.t} message on ${kind} subject ${subject}`);
      }
      this.#handle(sender, msg);
    } catch (err) {
      if (err instanceof ClusterProtocolError) {
        this.stats.malformed++;
        this.#r.log.throttled(
          "cluster malformed",
          `cluster: dropped message on ${subject}: ${err.message}`,
        );
      } else {
        // A bug of ours must not take the server down for everyone else.
        this.#r.log.throttled("internal error", `cluster: internal error on ${subject}: ${err}`);
      }
    }
  }

  #handle(sender: string, msg: ClusterMessage): void {
    switch (msg.t) {
      case "want": {
        // The asker alone gets our snapshot; several members asking at once (NATS came back)
        // share one, sent to everyone.
        const wanted = this.#wanted;
        wanted.askers.add(sender);
        wanted.timer ??= this.#r.clock.setTimeout(() => {
          const askers = [...wanted.askers];
          wanted.askers.clear();
          wanted.timer = undefined;
          this.#snapshot(askers.length === 1 ? askers[0] : undefined);
        }, this.#timing.batchMs);
        return;
      }
      case "connect": {
        const requester = this.#remote(sender, msg.from);
        if (requester !== undefined) this.#r.introductions().connect(requester, msg.to);
        return;
      }
      case "deliver": {
        const to = this.#local(msg.to);
        if (to === undefined) return;
        // An introduction decided elsewhere opens our relay for the pair too.
        if (msg.msg.type === "introduce") this.#r.relay.introduce(to.name, msg.msg.username);
        this.#r.send(encoder.encode(encodeServerMessage(msg.msg)), to.observed);
        const also = msg.msg.type === "introduce" ? this.#r.alsoIntroduce?.(to) : undefined;
        if (also) this.#r.send(encoder.encode(encodeServerMessage(also)), to.observed);
        return;
      }
      case "relay": {
        const from = this.#remote(sender, msg.from);
        const to = this.#local(msg.to);
        if (from === undefined || to === undefined) return;
        const verdict = this.#r.relay.allow(
          from.name,
          to.name,
          msg.inner.length,
          addressKey(from.observed.host),
        );
        if (verdict !== "ok") return;
        this.#r.send(
          encodeFrame({ type: "relayed", from: from.name, inner: msg.inner }),
          to.observed,
        );
        return;
      }
      default: {
        const effects = this.#view.receive(sender, msg);
        if (effects.want) this.#send(sender, { t: "want" });
        this.#apply(effects, msg.t === "presence" ? { sender, msg } : undefined);
        if (effects.snapshot !== undefined) {
          this.#onSnapshot?.({
            member: sender,
            users: effects.snapshot,
            sinceHelloMs: this.#r.clock.now() - (this.#view.wantedAllAt ?? 0),
          });
        }
      }
    }
  }

  /** Remote user `name` if `sender` holds it: a member speaks only for its own users. */
  #remote(sender: string, name: string): User | undefined {
    const user = this.#r.registry.get(name);
    if (user?.member === sender) return user;
    this.stats.refused++;
    return undefined;
  }

  #local(name: string): User | undefined {
    const user = this.#r.registry.get(name);
    return user?.member === undefined && user?.state === "online" ? user : undefined;
  }

  /**
   * Lists and unlists what the view says, as we would have admitted it; tells our clients. For a
   * `presence` message that says when it was published, times its hop.
   */
  #apply(effects: {
    upserts: { member: string; user: ClusterUser }[];
    removals: { member: string; name: string }[];
    dropped: string[];
  }, from?: { sender: string; msg: Extract<ClusterMessage, { t: "presence" }> }): void {
    const { registry, outbox, log } = this.#r;
    for (const name of effects.dropped) {
      log.line(`cluster: member ${name} went silent; its users leave the lists`);
    }
    for (const { member, name } of effects.removals) {
      const user = registry.removeRemote(name, member);
      if (user === undefined) continue;
      this.#r.relay.forget(name);
      this.#r.introductions().forget(name);
      outbox.leave(user);
    }
    for (const { member, user } of effects.upserts) {
      let result = registry.addRemote(user, member);
      if (result.kind === "conflict") {
        // Both members saw both logins: the member with the smaller id keeps the name, on both.
        if (member > this.member) {
          this.stats.refused++;
          continue;
        }
        log.line(`cluster: ${user.name} is held by member ${member} too; it keeps the name`);
        this.#r.drop(result.local);
        result = registry.addRemote(user, member);
      }
      if (result.kind === "refused" || result.kind === "conflict") {
        this.stats.refused++;
        log.throttled(
          "cluster refused",
          `cluster: refused ${user.name} from member ${member}: ` +
            (result.kind === "refused" ? result.reason : "held here"),
        );
        continue;
      }
      if (result.kind === "added") outbox.joinedElsewhere(result.user);
      else if (result.moved) outbox.moved(result.user);
    }
    if (from?.msg.at !== undefined) this.#timeHop(from.sender, from.msg.changes, from.msg.at);
    outbox.schedule();
  }

  /**
   * Times a presence message's hop from its publish at `at` (the sender's clock: on another
   * machine the figure includes the two clocks' offset): to now, where it is applied, and to the
   * moment our outbox has handed what it changed to the socket for every client.
   */
  #timeHop(member: string, changes: readonly ClusterChange[], at: number): void {
    const clock = this.#r.clock;
    const hop = (stage: "applied" | "sent"): void => {
      const ms = clock.now() - at;
      this.#hops[stage].observe(ms / 1000);
      this.#onHop?.({ stage, ms, names: changes.map((c) => c.name), member });
    };
    hop("applied");
    this.#r.outbox.whenHanded(() => hop("sent"));
  }
}

/**
 * How long our changes wait before they are published: after a quiet spell (nothing published
 * for `batchMs`), none (published in the turn that made them), so that a lone login reaches the
 * other members at once; under a stream of changes, until `batchMs` after the last publish, so
 * that they go out at most once per `batchMs`, coalesced, as before.
 *
 * @example
 * ```ts
 * flushDelayMs({ now: 1000, flushedAt: 500, batchMs: 10 }); // 0: quiet, at once
 * flushDelayMs({ now: 1004, flushedAt: 1000, batchMs: 10 }); // 6
 * ```
 */
export function flushDelayMs(o: { now: number; flushedAt: number; batchMs: number }): number {
  return Math.max(0, Math.min(o.batchMs, o.flushedAt + o.batchMs - o.now));
}

/** What the other members are told of a local user. */
function entry(user: User): ClusterUser {
  return {
    name: user.name,
    observed: user.observed,
    claimed: user.claimed,
    ...(user.key !== undefined ? { key: user.key } : {}),
    ...(user.nat !== undefined ? { nat: user.nat } : {}),
  };
}

/** The subject kind a message must come on. */
function kindOf(msg: ClusterMessage): ClusterSubjectKind {
  return msg.t === "connect" || msg.t === "deliver" || msg.t === "relay" ? "to" : msg.t;
}
