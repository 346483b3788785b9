/**
 * Who is online: admission, ownership of names, and liveness — plain state with an injected
 * clock, no sockets, so it can be tested without time passing.
 *
 * A login starts *pending*. It becomes *online* when the same IP address fetches the online
 * list over TCP (the seed's step 3), which proves the client can receive at the address it
 * logged in from: a forged login from someone else's address never gets that far, so the
 * coordinator never broadcasts it. Online users that stay silent longer than the peer timeout
 * expire.
 *
 * @example
 * ```ts
 * let t = 0;
 * const reg = new Registry({ now: () => t, peerTimeoutMs: 45_000 });
 * reg.login("alice", { host: "10.0.0.2", port: 4000 }, { host: "192.0.2.1", port: 4000 });
 * reg.admitFrom("192.0.2.1"); // [alice]: now online
 * t = 50_000;
 * reg.expire(); // { expired: [alice], abandoned: [] }
 * ```
 * @module
 */
import { type Endpoint, formatEndpoint, sameEndpoint } from "./protocol/endpoint.ts";

/** One user the coordinator knows. */
export interface User {
  name: string;
  /** The endpoint the client said it has (`localIPEndPoint`): useful to peers on its LAN. */
  claimed: Endpoint;
  /** The endpoint the coordinator saw the login come from: its NAT's public mapping. */
  observed: Endpoint;
  state: "pending" | "online";
  /** When the user was last heard from (clock ms). */
  lastSeen: number;
  /** When the login arrived (clock ms). */
  since: number;
  /** Public key (base64url) of a client that speaks our extensions; seed-only clients have none. */
  key?: string;
  /** Per-process secret that lets the client keep its name when its NAT mapping changes. */
  secret?: string;
}

/** Outcome of {@linkcode Registry.login}. */
export type LoginResult =
  | { kind: "pending"; user: User }
  | { kind: "refreshed"; user: User }
  | { kind: "rebound"; user: User; previous: Endpoint }
  | { kind: "rejected"; reason: string };

/** Outcome of {@linkcode Registry.logout}. */
export type LogoutResult =
  | { kind: "removed"; user: User }
  | { kind: "forged"; owner: User }
  | { kind: "unknown" };

/** Options for {@linkcode Registry}. */
export interface RegistryOptions {
  /** Clock in milliseconds. */
  now: () => number;
  /** An online user silent this long is dropped. */
  peerTimeoutMs: number;
  /** A pending login not confirmed by a list fetch within this long is forgotten. Default 10 s. */
  pendingTimeoutMs?: number;
  /** Most users (pending and online) held at once. Default 100,000. */
  maxUsers?: number;
}

/** Online users and pending logins, keyed by name. */
export class Registry {
  readonly #users = new Map<string, User>();
  /** Name by observed endpoint, to tell who sent a datagram (the relay needs it). */
  readonly #at = new Map<string, string>();
  readonly #now: () => number;
  readonly #peerTimeoutMs: number;
  readonly #pendingTimeoutMs: number;
  readonly #maxUsers: number;

  constructor(options: RegistryOptions) {
    this.#now = options.now;
    this.#peerTimeoutMs = options.peerTimeoutMs;
    this.#pendingTimeoutMs = options.pendingTimeoutMs ?? 10_000;
    this.#maxUsers = options.maxUsers ?? 100_000;
  }

  /** Number of users, pending and online. */
  get size(): number {
    return this.#users.size;
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

  #move(user: User, to: Endpoint): void {
    this.#at.delete(formatEndpoint(user.observed));
    user.observed = to;
    this.#at.set(formatEndpoint(to), user.name);
  }

  #delete(user: User): void {
    this.#users.delete(user.name);
    if (this.#at.get(formatEndpoint(user.observed)) === user.name) {
      this.#at.delete(formatEndpoint(user.observed));
    }
  }

  /** Online users, in order of arrival. */
  online(): User[] {
    return [...this.#users.values()].filter((u) => u.state === "online");
  }

  /**
   * Records a login. A name held from another endpoint is rejected — unless the login carries the
   * holder's secret: then its NAT mapping changed and the name moves to the new endpoint
   * (`rebound`). The same endpoint logging in again refreshes its entry (a client that lost the
   * `Accept` retries).
   */
  login(
    name: string,
    claimed: Endpoint,
    observed: Endpoint,
    ext?: { key: string; secret: string },
  ): LoginResult {
    const now = this.#now();
    const existing = this.#users.get(name);
    if (existing) {
      const rebind = !sameEndpoint(existing.observed, observed);
      if (rebind && (ext === undefined || existing.secret !== ext.secret)) {
        return { kind: "rejected", reason: `name "${name}" is already in use` };
      }
      const previous = existing.observed;
      existing.claimed = claimed;
      this.#move(existing, observed);
      existing.lastSeen = now;
      if (ext) existing.key = ext.key;
      return rebind
        ? { kind: "rebound", user: existing, previous }
        : { kind: "refreshed", user: existing };
    }
    if (this.#users.size >= this.#maxUsers) {
      return { kind: "rejected", reason: "the server is full" };
    }
    const user: User = {
      name,
      claimed,
      observed,
      state: "pending",
      lastSeen: now,
      since: now,
      ...ext,
    };
    this.#users.set(name, user);
    this.#at.set(formatEndpoint(observed), name);
    return { kind: "pending", user };
  }

  /**
   * Marks every pending login from this IP address online (its client fetched the list over TCP
   * from there) and returns them.
   */
  admitFrom(ip: string): User[] {
    const admitted: User[] = [];
    for (const user of this.#users.values()) {
      if (user.state === "pending" && user.observed.host === ip) {
        user.state = "online";
        user.lastSeen = this.#now();
        admitted.push(user);
      }
    }
    return admitted;
  }

  /** Removes a user, but only when the logout comes from the endpoint that owns the name. */
  logout(name: string, observed: Endpoint): LogoutResult {
    const user = this.#users.get(name);
    if (!user) return { kind: "unknown" };
    if (!sameEndpoint(user.observed, observed)) return { kind: "forged", owner: user };
    this.#delete(user);
    return { kind: "removed", user };
  }

  /**
   * Records a heartbeat. Returns the user when `name` is held by `observed`, `undefined`
   * otherwise (unknown name, or someone else's: a heartbeat cannot keep another user alive).
   * A heartbeat with the holder's secret from a new endpoint moves the name there and says so
   * in `previous` (the client's NAT mapping changed).
   */
  heartbeat(
    name: string,
    observed: Endpoint,
    secret?: string,
  ): { user: User; previous?: Endpoint } | undefined {
    const user = this.#users.get(name);
    if (!user) return undefined;
    let previous: Endpoint | undefined;
    if (!sameEndpoint(user.observed, observed)) {
      if (secret === undefined || user.secret !== secret) return undefined;
      previous = user.observed;
      this.#move(user, observed);
    }
    user.lastSeen = this.#now();
    return { user, previous };
  }

  /**
   * Drops online users silent for longer than the peer timeout (`expired`) and pending logins
   * never confirmed (`abandoned`).
   */
  expire(): { expired: User[]; abandoned: User[] } {
    const now = this.#now();
    const expired: User[] = [];
    const abandoned: User[] = [];
    for (const user of this.#users.values()) {
      if (user.state === "online" && now - user.lastSeen > this.#peerTimeoutMs) {
        expired.push(user);
      } else if (user.state === "pending" && now - user.lastSeen > this.#pendingTimeoutMs) {
        abandoned.push(user);
      }
    }
    for (const user of [...expired, ...abandoned]) this.#delete(user);
    return { expired, abandoned };
  }

  /** Removes everyone (server shutdown) and returns the users that were online. */
  clear(): User[] {
    const online = this.online();
    this.#users.clear();
    this.#at.clear();
    return online;
  }
}
