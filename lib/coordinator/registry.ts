/**
 * Who is online: admission, ownership of names, liveness and the online list — plain state with
 * an injected clock, no sockets, so it can be tested without time passing.
 *
 * A login starts *pending*. It becomes *online* when the same IP address fetches the online
 * list over TCP (the seed's step 3), which proves the client can receive at the address it
 * logged in from: a forged login from someone else's address never gets that far, so the
 * coordinator never broadcasts it. Online users that stay silent longer than the peer timeout
 * expire. Every operation costs time in proportion to the users it concerns, not to everyone
 * online, so that a large community stays cheap; the encoded list is kept up to date as users
 * come and go rather than rebuilt for every fetch, and so is the count of seed-only users per IP
 * address ({@linkcode Registry.hasSeedOnlyAt}: the list service appends its presence version
 * only where no seed-only client could read it).
 *
 * Names are handed out with care (docs/PROTOCOL.md §1.2): a name that looks like one pending or
 * online (the same UTS #39 skeleton) is refused, an address may hold only so many names
 * ({@linkcode NameQuota}), a pending login is forgotten a fixed time after it first came however
 * often it is sent again, and a user that logged in with a secret logs out and heartbeats only
 * with that secret. A name registered to a key ({@linkcode NameOwners}) goes to no other key, nor
 * to a seed-only login; its owner takes it from a stale session of its own at once, once the login
 * has proved the key (`challenge`: the UDP service asks for the proof and checks it).
 *
 * @example
 * ```ts
 * let t = 0;
 * const reg = new Registry({ now: () => t, peerTimeoutMs: 45_000 });
 * reg.login("alice", { host: "10.0.0.2", port: 4000 }, { host: "192.0.2.1", port: 4000 });
 * reg.admitFrom("192.0.2.1"); // { admitted: [alice], refused: [] }: now online
 * t = 50_000;
 * reg.expire(); // { expired: [alice], abandoned: [] }
 * ```
 * @module
 */
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import { encodeList, NAME_OWNED_REASON } from "../protocol/seed.ts";
import { usernameSkeleton } from "../protocol/username.ts";
import type { AnnouncedCandidate } from "../protocol/candidates.ts";
import type { NatKind } from "../protocol/whoami.ts";
import { addressKey } from "./limits.ts";
import type { NameOwners } from "./name_owners.ts";
import { NameQuota, type NameQuotaLimit } from "./name_quota.ts";

/** One user the coordinator knows. */
export interface User {
  name: string;
  /** The name's UTS #39 skeleton (`usernameSkeleton`), computed once at login. */
  skeleton: string;
  /** The endpoint the client said it has (`localIPEndPoint`): useful to peers on its LAN. */
  claimed: Endpoint;
  /** The endpoint the coordinator saw the login come from: its NAT's public mapping. */
  observed: Endpoint;
  state: "pending" | "online";
  /** When the user was last heard from (clock ms). */
  lastSeen: number;
  /** When the login arrived (clock ms); a pending login is forgotten a fixed time after it. */
  since: number;
  /** Public key (base64url) of a client that speaks our extensions; seed-only clients have none. */
  key?: string;
  /** Per-process secret that lets the client keep its name when its NAT mapping changes. */
  secret?: string;
  /** The kind of NAT the client reported (`nat`), passed on in introductions. */
  nat?: NatKind;
  /**
   * The endpoints the client announced (`candidates`), those the coordinator passes on; undefined
   * until it announces, which also says it reads them in `Introduce` (older clients do not).
   */
  candidates?: AnnouncedCandidate[];
  /**
   * The presence version its online list was written at when it was admitted (set by the
   * coordinator): it has every presence change up to this one.
   */
  listVersion?: number;
  /**
   * The cluster member that admitted this user and holds its session (`--cluster`,
   * docs/CLUSTER.md); none: this coordinator does. A remote user is listed and introduced like
   * any other, but its datagrams go to its own member: here it has no endpoint of its own, no
   * quota, no expiry (its member's heartbeats keep it).
   */
  member?: string;
}

/** Outcome of {@linkcode Registry.login}. */
export type LoginResult =
  | {
    kind: "pending";
    user: User;
    /** The oldest pending login, forgotten to make room (the pending limit was reached). */
    evicted?: User;
  }
  /** `displaced`: a takeover replaced the online session there (tell it: `Replaced`). */
  | { kind: "refreshed"; user: User; displaced?: Endpoint }
  | { kind: "rebound"; user: User; previous: Endpoint; displaced?: Endpoint }
  /**
   * The login's key owns the name, which another session holds: it may take the name over once
   * it proves the key (log in again with `proven`).
   */
  | { kind: "challenge"; holder: User }
  | { kind: "rejected"; reason: string; why: RejectWhy };

/** What an extended login brings: key, secret, and whether it proved the key (a takeover). */
export interface LoginExt {
  key: string;
  secret: string;
  /** The login answered a `Challenge` with a valid proof of its key. */
  proven?: boolean;
}

/**
 * Why a login was refused: the name is held (`in-use`), looks like one that is (`lookalike`),
 * is registered to another key (`owned`), the server is full, or the address holds or brought
 * online as many names as it may.
 */
export type RejectWhy = "in-use" | "lookalike" | "owned" | "full" | NameQuotaLimit;

/** A pending login that a list fetch could not admit, and why. */
export interface Refused {
  user: User;
  why: "full" | "lookalike" | "owned" | NameQuotaLimit;
}

/**
 * Outcome of {@linkcode Registry.addRemote}: added (or its entry updated, `moved` if its endpoint
 * changed), refused with the reason its member should not have admitted it, or in `conflict` with
 * a user online here under the same name (the cluster decides which one keeps it).
 */
export type RemoteResult =
  | { kind: "added"; user: User }
  | { kind: "updated"; user: User; moved: boolean }
  | { kind: "refused"; reason: string }
  | { kind: "conflict"; local: User };

/** What a member says of one of its users (see {@linkcode Registry.addRemote}). */
export interface RemoteUser {
  name: string;
  observed: Endpoint;
  claimed: Endpoint;
  key?: string;
  nat?: NatKind;
}

/** Outcome of {@linkcode Registry.logout}. */
export type LogoutResult =
  | { kind: "removed"; user: User }
  /** Not from the owner's endpoint, or (`why: "secret"`) from it without the owner's secret. */
  | { kind: "forged"; owner: User; why: "endpoint" | "secret" }
  | { kind: "unknown" };

/** Outcome of {@linkcode Registry.heartbeat}. */
export type HeartbeatResult =
  /** `previous`: the holder's secret moved the name here from there. */
  | { kind: "alive"; user: User; previous?: Endpoint }
  /** The name is not held, or held from another endpoint (and no secret moved it). */
  | { kind: "unknown" }
  /** From the owner's endpoint, but without the secret the owner logged in with. */
  | { kind: "forged"; owner: User }
  /** From a session a takeover replaced (its secret): it must not log in again by itself. */
  | { kind: "replaced" };

/** Options for {@linkcode Registry}. */
export interface RegistryOptions {
  /** Clock in milliseconds. */
  now: () => number;
  /** An online user silent this long is dropped. */
  peerTimeoutMs: number;
  /** A pending login not confirmed by a list fetch within this long is forgotten. Default 10 s. */
  pendingTimeoutMs?: number;
  /** Most users online at once. Default 20,000. */
  maxUsers?: number;
  /** Most pending logins at once; beyond, the oldest is forgotten. Default 4,096. */
  maxPending?: number;
  /** Names online at once per address. Default 64. */
  namesPerAddress?: number;
  /** Distinct names an address may bring online per rolling 24 hours. Default 256. */
  newNamesPerAddressPerDay?: number;
  /** Which key owns which name; none: first come, first served, for every name. */
  owners?: NameOwners;
}

const encoder = new TextEncoder();
const FULL = "the server is full";
/** How long, and how many, secrets of sessions replaced by a takeover are remembered. */
const DISPLACED_MS = 10 * 60 * 1000;
const MAX_DISPLACED = 4096;

/**
 * About this many bytes of the list are kept together (a part): a leave or a move re-encodes the
 * part it is in, not the whole list, so that churn among ten thousand users does not copy a
 * 300 KB list for every fetch; a fetch writes the parts one after another.
 */
const PART_BYTES = 32 * 1024;
/** Room for any one entry: a 32-character name of 4-byte characters and an IPv6 endpoint. */
const MAX_ENTRY_BYTES = 256;

/** Online users that are consecutive in the list, and their encoded entries. */
interface ListPart {
  users: User[];
  /** The entries are `bytes[0, length)`; bytes past `length` are room for more. */
  bytes: Uint8Array;
  length: number;
  /** A user left or moved: re-encoded (into fresh bytes) before the list is next read. */
  stale: boolean;
}

/** One user's `name,endpoint;` in the list, as the seed codec writes it. */
function entryText(user: User): string {
  return encodeList([{ username: user.name, endpoint: user.observed }]).slice(0, -"end".length);
}

/** Online users and pending logins, keyed by name. */
export class Registry {
  readonly #users = new Map<string, User>();
  /** Online users, in order of admission: the order of the list. */
  readonly #online = new Map<string, User>();
  /** Pending logins, oldest first. */
  readonly #pending = new Set<User>();
  /** Pending logins by observed IP address, for admission. */
  readonly #pendingByHost = new Map<string, Set<User>>();
  /** Name by observed endpoint, to tell who sent a datagram (the relay needs it). */
  readonly #at = new Map<string, string>();
  /** Seed-only users (no key), pending or online, by observed IP address: how many. */
  readonly #seedOnlyByHost = new Map<string, number>();
  /**
   * The name of each online user by its skeleton: who a new name looks like. Online only: a
   * pending login proves nothing yet, so it must not keep a lookalike (the real user) out.
   */
  readonly #bySkeleton = new Map<string, string>();
  readonly #quota: NameQuota;
  readonly #owners: NameOwners | undefined;
  /**
   * Secrets of sessions a takeover replaced (oldest first), with their name: their heartbeats are
   * answered `Replaced`, not `Expired`, so that two running clients of one key do not take the
   * name from each other at every heartbeat.
   */
  readonly #displaced = new Map<string, { name: string; until: number }>();
  readonly #o: Required<Omit<RegistryOptions, "owners">>;
  /** The encoded list (without `end`), in parts; see {@linkcode listParts}. */
  #parts: ListPart[] = [];
  readonly #partOf = new Map<User, ListPart>();
  /** Some part is stale. */
  #listStale = false;

  constructor(options: RegistryOptions) {
    this.#o = {
      now: options.now,
      peerTimeoutMs: options.peerTimeoutMs,
      pendingTimeoutMs: options.pendingTimeoutMs ?? 10_000,
      maxUsers: options.maxUsers ?? 20_000,
      maxPending: options.maxPending ?? 4_096,
      namesPerAddress: options.namesPerAddress ?? 64,
      newNamesPerAddressPerDay: options.newNamesPerAddressPerDay ?? 256,
    };
    this.#owners = options.owners;
    this.#quota = new NameQuota({
      now: options.now,
      perAddress: this.#o.namesPerAddress,
      perAddressPerDay: this.#o.newNamesPerAddressPerDay,
    });
  }

  /** Names per address, online and new today (for tests and the log). */
  get quota(): NameQuota {
    return this.#quota;
  }

  /** Number of users, pending and online. */
  get size(): number {
    return this.#users.size;
  }

  /** Number of online users, other cluster members' included. */
  get onlineCount(): number {
    return this.#online.size;
  }

  /** Number of online users logged in here (`--max-users` caps these, not other members'). */
  get localCount(): number {
    return this.#online.size - this.#remote;
  }

  /** Users listed here for other cluster members. */
  #remote = 0;

  /** Number of pending logins. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The user with this name, pending or online. */
  get(name: string): User | undefined {
    return this.#users.get(name);
  }

  /** The user (pending or online) whose observed endpoint this is. */
  at(endpoint: Endpoint): User | undefined {
    const name = this.#at.get(formatEndpoint(endpoint));
    return name === undefined ? undefined : this.#users.get(name);
  }

  /** Online users, in order of admission. */
  online(): User[] {
    return [...this.#online.values()];
  }

  /**
   * Whether a seed-only user (one that logged in without a key), pending or online, has this
   * observed IP address. Costs one lookup: the counts are kept up to date as users come, go,
   * move and get a key.
   */
  hasSeedOnlyAt(ip: string): boolean {
    return this.#seedOnlyByHost.has(ip);
  }

  /** Counts `user` in (`+1`) or out (`-1`) of the seed-only users at its IP, if it is one. */
  #countSeedOnly(user: User, delta: 1 | -1): void {
    if (user.key !== undefined) return;
    const host = user.observed.host;
    const n = (this.#seedOnlyByHost.get(host) ?? 0) + delta;
    if (n > 0) this.#seedOnlyByHost.set(host, n);
    else this.#seedOnlyByHost.delete(host);
  }

  /**
   * The online list as the seed's TCP service sends it (`name,endpoint;` for each online user,
   * in order of admission), without the final `end`, in parts to be written one after another.
   * The returned bytes are never modified afterwards, so they may be handed to a socket that
   * writes them later.
   */
  listParts(): Uint8Array[] {
    if (this.#listStale) this.#refreshList();
    return this.#parts.map((part) => part.bytes.subarray(0, part.length));
  }

  /**
   * Re-encodes the stale parts into fresh bytes (bytes handed out stay as they were), each one
   * merged into the part before it when both fit in one, so that leaves do not leave the list in
   * ever more, ever smaller parts.
   */
  #refreshList(): void {
    const parts: ListPart[] = [];
    for (const part of this.#parts) {
      if (!part.stale) {
        parts.push(part);
        continue;
      }
      const text = part.users.map(entryText).join("");
      const before = parts.at(-1);
      if (before !== undefined && before.length + text.length <= PART_BYTES) {
        parts[parts.length - 1] = this.#encodePart([...before.users, ...part.users]);
      } else if (part.users.length > 0) {
        parts.push(this.#encodePart(part.users, text));
      }
    }
    this.#parts = parts;
    this.#listStale = false;
  }

  /** A part holding `users`' entries, with room to append more. */
  #encodePart(users: User[], text = users.map(entryText).join("")): ListPart {
    // Up to 3 bytes for each UTF-16 unit of the text.
    const bytes = new Uint8Array(Math.max(PART_BYTES, 3 * text.length) + MAX_ENTRY_BYTES);
    const { written } = encoder.encodeInto(text, bytes);
    const part: ListPart = { users, bytes, length: written, stale: false };
    for (const user of users) this.#partOf.set(user, part);
    return part;
  }

  #appendToList(user: User): void {
    let last = this.#parts.at(-1);
    if (last === undefined || last.length >= PART_BYTES) {
      const bytes = new Uint8Array(PART_BYTES + MAX_ENTRY_BYTES);
      last = { users: [], bytes, length: 0, stale: false };
      this.#parts.push(last);
    }
    last.users.push(user);
    this.#partOf.set(user, last);
    // Appending writes past every body handed out so far, so none of them changes.
    if (!last.stale) {
      const room = last.bytes.subarray(last.length);
      last.length += encoder.encodeInto(entryText(user), room).written;
    }
  }

  /** An online user's entry changed (or went, `leaving`): its part is re-encoded before use. */
  #touchList(user: User, leaving: boolean): void {
    const part = this.#partOf.get(user)!;
    if (leaving) {
      part.users.splice(part.users.indexOf(user), 1);
      this.#partOf.delete(user);
    }
    part.stale = true;
    this.#listStale = true;
  }

  /**
   * Why an online user may not move to `to` (its new address holds or brought online as many
   * names as it may), or `undefined`. A move within one address changes nothing.
   */
  #moveRefusal(user: User, to: Endpoint): NameQuotaLimit | undefined {
    const key = addressKey(to.host);
    if (user.state !== "online" || key === addressKey(user.observed.host)) return undefined;
    return this.#quota.refusal(key, user.name);
  }

  #move(user: User, to: Endpoint): void {
    this.#at.delete(formatEndpoint(user.observed));
    this.#countSeedOnly(user, -1);
    const from = addressKey(user.observed.host);
    user.observed = to;
    this.#countSeedOnly(user, 1);
    this.#at.set(formatEndpoint(to), user.name);
    if (user.state === "online") {
      this.#touchList(user, false);
      this.#quota.leave(from);
      this.#quota.admit(addressKey(to.host), user.name);
    }
  }

  #unpend(user: User): void {
    this.#pending.delete(user);
    const set = this.#pendingByHost.get(user.observed.host);
    set?.delete(user);
    if (set?.size === 0) this.#pendingByHost.delete(user.observed.host);
  }

  #delete(user: User): void {
    this.#users.delete(user.name);
    if (user.member !== undefined) {
      // A remote user holds no endpoint, quota or seed-only count here: only its listing.
      this.#online.delete(user.name);
      this.#remote--;
      this.#bySkeleton.delete(user.skeleton);
      this.#touchList(user, true);
      return;
    }
    // Leaving is a use: the registration's time to live counts from the last session's end.
    if (user.state === "online" && user.key !== undefined) this.#owners?.use(user.name, user.key);
    if (user.state === "online") this.#bySkeleton.delete(user.skeleton);
    this.#countSeedOnly(user, -1);
    if (this.#at.get(formatEndpoint(user.observed)) === user.name) {
      this.#at.delete(formatEndpoint(user.observed));
    }
    if (user.state === "pending") {
      this.#unpend(user);
    } else {
      this.#online.delete(user.name);
      this.#touchList(user, true);
      this.#quota.leave(addressKey(user.observed.host));
    }
  }

  /**
   * Records a login. A name held from another endpoint is rejected — unless the login carries the
   * holder's secret: then its NAT mapping changed and the name moves to the new endpoint
   * (`rebound`) — or unless it is only pending, and has been for a quarter of the pending timeout
   * (a client fetches its list a round trip after its `Accept`; a login sent again and again
   * without a fetch must not hold a name). The same endpoint logging in again refreshes its
   * entry (a client that lost the `Accept` retries) but not its pending timeout. A new name is
   * refused when it looks like one pending or online (the same skeleton), when its address holds
   * or brought online today as many names as it may, and when the server is full; when too many
   * logins are pending, the oldest is forgotten to make room (`evicted`): a flood of forged
   * logins can then delay, but not lock out, the clients that do fetch their list.
   *
   * A name registered to a key ({@linkcode NameOwners}) is refused to any other key and to a
   * seed-only login (`owned`). A login with the owner's key that the rules above would refuse (the
   * name held by another session of it) gets `challenge` instead; logged in again with `proven`
   * (the UDP service checked its proof of key), it takes the name over: the old session's secret
   * counts for nothing from then on.
   */
  login(name: string, claimed: Endpoint, observed: Endpoint, ext?: LoginExt): LoginResult {
    const now = this.#o.now();
    const owner = this.#owners?.ownerOf(name);
    if (owner !== undefined && ext?.key !== owner) {
      return { kind: "rejected", reason: NAME_OWNED_REASON, why: "owned" };
    }
    let existing = this.#users.get(name);
    if (existing?.member !== undefined) {
      return {
        kind: "rejected",
        reason: `name "${name}" is in use on another server of this community`,
        why: "in-use",
      };
    }
    if (
      existing?.state === "pending" && !sameEndpoint(existing.observed, observed) &&
      (ext === undefined || existing.secret !== ext.secret) &&
      now - existing.since >= this.#o.pendingTimeoutMs / 4
    ) {
      this.#delete(existing); // stale: whoever sent it never fetched its list
      existing = undefined;
    }
    if (existing) {
      const rebind = !sameEndpoint(existing.observed, observed);
      const proven = ext !== undefined && existing.secret === ext.secret;
      // From the holder's own endpoint, a login without its secret could be a spoofed datagram
      // handing out another key; only a holder silent for half the peer timeout (a client that
      // crashed and came back on the same port, with a new secret) may be replaced so.
      const alive = now - existing.lastSeen < this.#o.peerTimeoutMs / 2;
      const held = rebind ? !proven : existing.secret !== undefined && !proven && alive;
      // The key that owns the name takes it from any other session, once the login has proved
      // the key: the holder crashed, or moved to a network whose first datagram is this login.
      const takeover = held && owner !== undefined;
      if (takeover && !ext!.proven) return { kind: "challenge", holder: existing };
      if (held && !takeover && rebind) {
        return { kind: "rejected", reason: `name "${name}" is already in use`, why: "in-use" };
      }
      if (held && !takeover) {
        const wait = Math.ceil((existing.lastSeen + this.#o.peerTimeoutMs / 2 - now) / 1000);
        return {
          kind: "rejected",
          reason: `name "${name}" is held by an earlier session at your address; ` +
            `try again in ${wait} s`,
          why: "in-use",
        };
      }
      const moveLimit = rebind ? this.#moveRefusal(existing, observed) : undefined;
      if (moveLimit !== undefined) {
        return { kind: "rejected", reason: quotaReason(moveLimit), why: moveLimit };
      }
      // The holder came back with a new process (or the owner proved its key): its secret is the
      // proof from now on, and the old session's is worth nothing.
      let displaced: Endpoint | undefined;
      if (takeover && existing.secret !== undefined) {
        this.#displaced.set(existing.secret, { name, until: now + DISPLACED_MS });
        if (this.#displaced.size > MAX_DISPLACED) {
          this.#displaced.delete(this.#displaced.keys().next().value!);
        }
        // From elsewhere, the replaced session may still run (two clients of one key): tell it.
        if (rebind && existing.state === "online") displaced = existing.observed;
      }
      if ((!rebind && existing.secret !== undefined && ext !== undefined) || takeover) {
        // Another process: what the last one announced is not its own (it announces afresh).
        if (existing.secret !== ext!.secret) existing.candidates = undefined;
        existing.secret = ext!.secret;
      }
      const previous = existing.observed;
      existing.claimed = claimed;
      if (rebind) {
        if (existing.state === "pending") this.#unpend(existing);
        this.#move(existing, observed);
        if (existing.state === "pending") this.#addPending(existing);
      }
      existing.lastSeen = now;
      if (ext) {
        this.#countSeedOnly(existing, -1); // a seed-only user that now brings a key
        existing.key = ext.key;
      }
      const result: LoginResult = rebind
        ? { kind: "rebound", user: existing, previous }
        : { kind: "refreshed", user: existing };
      if (displaced) result.displaced = displaced;
      return result;
    }
    if (this.localCount >= this.#o.maxUsers) {
      return { kind: "rejected", reason: FULL, why: "full" };
    }
    const skeleton = usernameSkeleton(name);
    const other = this.#bySkeleton.get(skeleton);
    if (other !== undefined) {
      return {
        kind: "rejected",
        reason: `name "${name}" looks like "${other}" who is online`,
        why: "lookalike",
      };
    }
    const limit = this.#quota.refusal(addressKey(observed.host), name);
    if (limit !== undefined) {
      return { kind: "rejected", reason: quotaReason(limit), why: limit };
    }
    let evicted: User | undefined;
    if (this.#pending.size >= this.#o.maxPending) {
      evicted = this.#pending.values().next().value!;
      this.#delete(evicted);
    }
    const user: User = {
      name,
      skeleton,
      claimed,
      observed,
      state: "pending",
      lastSeen: now,
      since: now,
      ...ext,
    };
    this.#users.set(name, user);
    this.#at.set(formatEndpoint(observed), name);
    this.#countSeedOnly(user, 1);
    this.#addPending(user);
    return evicted ? { kind: "pending", user, evicted } : { kind: "pending", user };
  }

  #addPending(user: User): void {
    this.#pending.add(user);
    let set = this.#pendingByHost.get(user.observed.host);
    if (set === undefined) this.#pendingByHost.set(user.observed.host, set = new Set());
    set.add(user);
  }

  /**
   * Marks every pending login from this IP address online (its client fetched the list over TCP
   * from there) and returns them (`admitted`), in order of login. Logins that find the server
   * full, or their address at its name quota, are forgotten instead (`refused`).
   */
  admitFrom(ip: string): { admitted: User[]; refused: Refused[] } {
    const admitted: User[] = [];
    const refused: Refused[] = [];
    const key = addressKey(ip);
    for (const user of this.#pendingByHost.get(ip) ?? []) {
      const owner = this.#owners?.ownerOf(user.name);
      const why = this.localCount >= this.#o.maxUsers
        ? "full"
        // Two lookalikes may both be pending: the first to fetch its list is the one.
        : this.#bySkeleton.has(user.skeleton)
        ? "lookalike"
        // Two keys may both have been pending for a free name: the first admitted owns it.
        : owner !== undefined && owner !== user.key
        ? "owned"
        : this.#quota.refusal(key, user.name);
      if (why !== undefined) {
        refused.push({ user, why });
        this.#delete(user);
        continue;
      }
      this.#unpend(user);
      user.state = "online";
      user.lastSeen = this.#o.now();
      this.#online.set(user.name, user);
      this.#bySkeleton.set(user.skeleton, user.name);
      this.#appendToList(user);
      this.#quota.admit(key, user.name);
      if (user.key !== undefined) this.#owners?.use(user.name, user.key);
      admitted.push(user);
    }
    return { admitted, refused };
  }

  /**
   * Removes a user, but only when the logout comes from the endpoint that owns the name and, if
   * the user logged in with a secret, carries it (a spoofed source address is not proof).
   */
  logout(name: string, observed: Endpoint, secret?: string): LogoutResult {
    const user = this.#users.get(name);
    if (!user || user.member !== undefined) return { kind: "unknown" };
    if (!sameEndpoint(user.observed, observed)) {
      return { kind: "forged", owner: user, why: "endpoint" };
    }
    if (user.secret !== undefined && user.secret !== secret) {
      return { kind: "forged", owner: user, why: "secret" };
    }
    this.#delete(user);
    return { kind: "removed", user };
  }

  /**
   * Records a heartbeat from the holder of `name`: from its endpoint, with its secret if it logged
   * in with one (`alive`). One from its endpoint without that secret is `forged` and keeps
   * nobody alive; one from elsewhere is `unknown`, unless it carries the holder's secret: then the
   * name moves there, and `previous` says from where (the client's NAT mapping changed).
   */
  heartbeat(name: string, observed: Endpoint, secret?: string): HeartbeatResult {
    const user = this.#users.get(name);
    const replaced = secret !== undefined && this.#displaced.get(secret)?.name === name;
    if (!user || user.member !== undefined) return { kind: replaced ? "replaced" : "unknown" };
    let previous: Endpoint | undefined;
    if (!sameEndpoint(user.observed, observed)) {
      if (secret === undefined || user.secret !== secret) {
        return { kind: replaced ? "replaced" : "unknown" };
      }
      // Its new address may hold no more names than any other: else it must log in again there.
      if (this.#moveRefusal(user, observed) !== undefined) return { kind: "unknown" };
      previous = user.observed;
      if (user.state === "pending") this.#unpend(user);
      this.#move(user, observed);
      if (user.state === "pending") this.#addPending(user);
    } else if (user.secret !== undefined && user.secret !== secret) {
      return { kind: "forged", owner: user };
    }
    user.lastSeen = this.#o.now();
    return { kind: "alive", user, previous };
  }

  /**
   * The online user `name` when `observed` is its endpoint (a request that only its owner may
   * make, such as `connect` or `nat`), `undefined` otherwise. A seed-only user is noted as heard
   * from now, as by a heartbeat; one with a secret is not (only its heartbeats prove it lives).
   */
  heardFrom(name: string, observed: Endpoint): User | undefined {
    const user = this.#users.get(name);
    if (user?.state !== "online" || user.member !== undefined) return undefined;
    if (!sameEndpoint(user.observed, observed)) return undefined;
    // A source address can be spoofed: a holder with a secret is kept alive only by heartbeats
    // that carry it, so that a forged `nat` or `connect` cannot keep a crashed client online.
    if (user.secret === undefined) user.lastSeen = this.#o.now();
    return user;
  }

  /**
   * Drops online users silent for longer than the peer timeout (`expired`) and pending logins
   * not confirmed within the pending timeout of their first login (`abandoned`: sending the
   * login again does not make it last longer). Forgets the name quota's records older than a day.
   */
  expire(): { expired: User[]; abandoned: User[] } {
    const now = this.#o.now();
    const expired: User[] = [];
    const abandoned: User[] = [];
    for (const user of this.#online.values()) {
      // A remote user lives as long as its member says so (docs/CLUSTER.md).
      if (user.member === undefined && now - user.lastSeen > this.#o.peerTimeoutMs) {
        expired.push(user);
      }
    }
    for (const user of this.#pending) {
      if (now - user.since > this.#o.pendingTimeoutMs) abandoned.push(user);
    }
    for (const user of [...expired, ...abandoned]) this.#delete(user);
    this.#quota.sweep();
    for (const [secret, { until }] of this.#displaced) {
      if (until > now) break; // oldest first
      this.#displaced.delete(secret);
    }
    return { expired, abandoned };
  }

  /**
   * Lists a user that cluster member `member` admitted, as this coordinator would have admitted
   * it: a name registered here to another key (or to a key, for a seed-only user) is refused, and
   * so is a name that looks like another online user's, or one another member holds; a name this
   * coordinator holds is a `conflict` for the caller to settle. A pending login here for the name
   * gives way (the other member admitted its user first). The user's key registers the name here
   * too ({@linkcode NameOwners.use}), so that ownership is the same on every member. Sent again,
   * the entry is updated (its endpoint, key and NAT).
   */
  addRemote(remote: RemoteUser, member: string): RemoteResult {
    const owner = this.#owners?.ownerOf(remote.name);
    if (owner !== undefined && owner !== remote.key) {
      return { kind: "refused", reason: `${remote.name} is registered to another key here` };
    }
    const existing = this.#users.get(remote.name);
    if (existing !== undefined && existing.member === undefined) {
      if (existing.state === "online") return { kind: "conflict", local: existing };
      this.#delete(existing);
    } else if (existing !== undefined && existing.member !== member) {
      return {
        kind: "refused",
        reason: `${remote.name} is already held by member ${existing.member}`,
      };
    } else if (existing !== undefined) {
      const moved = !sameEndpoint(existing.observed, remote.observed);
      existing.observed = remote.observed;
      existing.claimed = remote.claimed;
      existing.key = remote.key;
      existing.nat = remote.nat;
      existing.lastSeen = this.#o.now();
      if (moved) this.#touchList(existing, false);
      return { kind: "updated", user: existing, moved };
    }
    const skeleton = usernameSkeleton(remote.name);
    const other = this.#bySkeleton.get(skeleton);
    if (other !== undefined) {
      return { kind: "refused", reason: `${remote.name} looks like ${other} who is online` };
    }
    const now = this.#o.now();
    const user: User = {
      name: remote.name,
      skeleton,
      claimed: remote.claimed,
      observed: remote.observed,
      state: "online",
      lastSeen: now,
      since: now,
      member,
      ...(remote.key !== undefined ? { key: remote.key } : {}),
      ...(remote.nat !== undefined ? { nat: remote.nat } : {}),
    };
    this.#users.set(user.name, user);
    this.#online.set(user.name, user);
    this.#remote++;
    this.#bySkeleton.set(skeleton, user.name);
    this.#appendToList(user);
    if (user.key !== undefined) this.#owners?.use(user.name, user.key);
    return { kind: "added", user };
  }

  /** Unlists member `member`'s user `name`; returns it, or `undefined` if it held no such user. */
  removeRemote(name: string, member: string): User | undefined {
    const user = this.#users.get(name);
    if (user?.member !== member) return undefined;
    this.#delete(user);
    return user;
  }

  /** Removes everyone (server shutdown) and returns the users that were online. */
  clear(): User[] {
    const online = this.online();
    for (const user of online) {
      if (user.member === undefined) this.#quota.leave(addressKey(user.observed.host));
    }
    this.#users.clear();
    this.#online.clear();
    this.#pending.clear();
    this.#pendingByHost.clear();
    this.#at.clear();
    this.#seedOnlyByHost.clear();
    this.#bySkeleton.clear();
    this.#parts = [];
    this.#partOf.clear();
    this.#listStale = false;
    return online;
  }
}

/** What a user refused by a name quota is told. */
function quotaReason(limit: NameQuotaLimit): string {
  return limit === "names-per-address"
    ? "too many names online from your address"
    : "too many new names from your address today";
}
