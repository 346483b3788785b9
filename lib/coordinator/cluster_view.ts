/**
 * What this coordinator knows of the other members of its cluster (docs/CLUSTER.md): each
 * member's run (`boot`), the last presence message applied (`seq`), when it was last heard, and
 * the users it holds. Plain state with an injected clock, no NATS: the caller feeds it decoded
 * messages and does what it answers (list or unlist users, ask a member for its snapshot).
 *
 * Each member is the truth for its own users; this is a cache of them, rebuilt from snapshots:
 *
 * - a presence message applies in order (`seq` one past the last); a gap, an unknown member or a
 *   new boot of a known one asks for the member's snapshot (`want`), at most once a second;
 * - a snapshot (in parts, kept until all have come) replaces what we had of the member;
 * - a beat whose `seq` is past ours means we missed something: ask for the snapshot;
 * - a member silent longer than `memberTimeoutMs` is dropped with all its users (it died, or
 *   we or it lost NATS): lists heal without anyone's help.
 *
 * @example
 * ```ts
 * const view = new ClusterView({ now: () => Date.now(), memberTimeoutMs: 5000 });
 * const effects = view.receive("b", { t: "beat", boot: "x", seq: 0, users: 0 });
 * effects.want; // true: a member we did not know, ask for its snapshot
 * ```
 * @module
 */
import type { ClusterMessage, ClusterUser } from "../protocol/cluster.ts";

/** Options for {@linkcode ClusterView}. */
export interface ClusterViewOptions {
  /** Clock in milliseconds. */
  now: () => number;
  /** A member silent this long is dropped with its users. */
  memberTimeoutMs: number;
  /** Least time between two `want`s to one member; default 1000 ms. */
  wantEveryMs?: number;
}

/** What the caller must do after {@linkcode ClusterView.receive} or {@linkcode ClusterView.expire}. */
export interface ViewEffects {
  /** Users to list (new, or their entry changed), by member. */
  upserts: { member: string; user: ClusterUser }[];
  /** Users to unlist, by member. */
  removals: { member: string; name: string }[];
  /** Ask the sender for its snapshot. */
  want: boolean;
  /** Members dropped (silent too long). */
  dropped: string[];
  /** A whole snapshot of the sender was applied: the users it holds. */
  snapshot?: number;
}

interface Member {
  boot: string;
  /** The last presence message applied; -1 before any. */
  seq: number;
  /** A snapshot (or the first message of the boot) was applied: `seq` can be trusted. */
  synced: boolean;
  heardAt: number;
  wantedAt: number;
  users: Map<string, ClusterUser>;
  /** Snapshot parts gathered so far, for `snapshotSeq`. */
  parts: Map<number, ClusterUser[]>;
  snapshotSeq: number;
}

function noEffects(): ViewEffects {
  return { upserts: [], removals: [], want: false, dropped: [] };
}

/** The other members and their users, as their messages told. */
export class ClusterView {
  readonly #o: Required<ClusterViewOptions>;
  readonly #members = new Map<string, Member>();
  /** When we last asked every member for its snapshot at once. */
  #wantedAllAt = -Infinity;

  constructor(options: ClusterViewOptions) {
    this.#o = { wantEveryMs: 1000, ...options };
  }

  /** Members heard from and not yet dropped. */
  get size(): number {
    return this.#members.size;
  }

  /** Users of all the other members. */
  get users(): number {
    let n = 0;
    for (const m of this.#members.values()) n += m.users.size;
    return n;
  }

  /** Longest silence of a member now (ms), 0 with none: how stale this cache may be. */
  lagMs(): number {
    const now = this.#o.now();
    let lag = 0;
    for (const m of this.#members.values()) lag = Math.max(lag, now - m.heardAt);
    return lag;
  }

  /** When we last asked every member for its snapshot at once ({@linkcode wantedAll}), if ever. */
  get wantedAllAt(): number | undefined {
    return this.#wantedAllAt === -Infinity ? undefined : this.#wantedAllAt;
  }

  /**
   * We asked every member for its snapshot (a broadcast `want`: we started, or NATS came back):
   * none is asked again, alone, before `wantEveryMs` has passed, not even one we first hear of
   * meanwhile (its beat may come before its answer; asking again would make it send everything
   * twice while we are busiest).
   */
  wantedAll(): void {
    this.#wantedAllAt = this.#o.now();
    for (const member of this.#members.values()) member.wantedAt = this.#wantedAllAt;
  }

  /** Applies a message from member `sender` (beat, presence or snapshot; others change nothing). */
  receive(sender: string, msg: ClusterMessage): ViewEffects {
    const effects = noEffects();
    if (msg.t !== "beat" && msg.t !== "presence" && msg.t !== "snapshot") return effects;
    const member = this.#member(sender, msg.boot, effects);
    member.heardAt = this.#o.now();
    if (msg.t === "beat") {
      if (!member.synced || msg.seq !== member.seq) this.#want(member, effects);
    } else if (msg.t === "presence") {
      if (msg.seq <= member.seq && member.synced) return effects; // seen already
      for (const change of msg.changes) {
        if ("gone" in change) {
          if (member.users.delete(change.name)) {
            effects.removals.push({ member: sender, name: change.name });
          }
        } else {
          member.users.set(change.name, change);
          effects.upserts.push({ member: sender, user: change });
        }
      }
      // Applied as upserts either way; only an unbroken sequence is trusted as complete.
      if (!member.synced || msg.seq !== member.seq + 1) this.#want(member, effects);
      member.seq = Math.max(member.seq, msg.seq);
    } else {
      if (msg.seq !== member.snapshotSeq) member.parts.clear();
      member.snapshotSeq = msg.seq;
      member.parts.set(msg.part, msg.users);
      if (member.parts.size === msg.parts) this.#applySnapshot(sender, member, effects);
    }
    return effects;
  }

  /** Drops the members silent for longer than the timeout, with their users. */
  expire(): ViewEffects {
    const effects = noEffects();
    const now = this.#o.now();
    for (const [name, member] of this.#members) {
      if (now - member.heardAt <= this.#o.memberTimeoutMs) continue;
      this.#drop(name, member, effects);
    }
    return effects;
  }

  #drop(name: string, member: Member, effects: ViewEffects): void {
    for (const user of member.users.keys()) effects.removals.push({ member: name, name: user });
    this.#members.delete(name);
    effects.dropped.push(name);
  }

  /** The member's record for this boot: a new boot forgets what the old one said. */
  #member(sender: string, boot: string, effects: ViewEffects): Member {
    let member = this.#members.get(sender);
    if (member !== undefined && member.boot !== boot) {
      for (const name of member.users.keys()) effects.removals.push({ member: sender, name });
      member = undefined;
    }
    if (member === undefined) {
      member = {
        boot,
        seq: -1,
        synced: false,
        heardAt: this.#o.now(),
        wantedAt: this.#wantedAllAt,
        users: new Map(),
        parts: new Map(),
        snapshotSeq: -1,
      };
      this.#members.set(sender, member);
    }
    return member;
  }

  #want(member: Member, effects: ViewEffects): void {
    const now = this.#o.now();
    if (now - member.wantedAt < this.#o.wantEveryMs) return;
    member.wantedAt = now;
    effects.want = true;
  }

  #applySnapshot(sender: string, member: Member, effects: ViewEffects): void {
    const users = new Map<string, ClusterUser>();
    for (const part of member.parts.values()) for (const u of part) users.set(u.name, u);
    member.parts.clear();
    for (const name of member.users.keys()) {
      if (!users.has(name)) effects.removals.push({ member: sender, name });
    }
    for (const user of users.values()) effects.upserts.push({ member: sender, user });
    member.users = users;
    member.seq = member.snapshotSeq;
    member.synced = true;
    effects.snapshot = users.size;
  }
}
