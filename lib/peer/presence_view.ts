/**
 * A client's view of who is online, kept right despite lost, reordered and duplicated presence
 * datagrams (docs/PROTOCOL.md §3.1, versions). Pure state: no I/O, no timers.
 *
 * The coordinator numbers presence changes 1, 2, 3… The online list says which version it
 * reflects (`version,V` after `end`), and each batched datagram says which versions its lines
 * cover (`Presence,<from>,<to>`: every name whose latest change is in (from, to]). The view keeps:
 *
 * - `version`: every change up to it is in the view (the list's V, extended by each datagram
 *   range that starts at or before it; ranges beyond a gap are held until the gap fills);
 * - for names set by a datagram beyond a gap (online or not: tombstones), that datagram's `to`,
 *   so that an older datagram arriving later does not undo them. Once the gap fills they are
 *   forgotten: a datagram whose `to` is at most `version` brings nothing new and is ignored.
 *
 * An `Alive,<ep>,<S>` with S > `version` (see {@linkcode PresenceView.behind}) means a datagram
 * went missing (or is late): the caller waits a little, then fetches the list again and applies
 * it here. What is held is bounded ({@linkcode PresenceViewOptions.maxHeld}): past that the view
 * drops it, so its version stays short of the gap until a list fills it (a resync).
 *
 * A list without a version (an old coordinator, or a seed-only client sharing our IP address)
 * puts the view in unversioned mode: lines are applied as they come, no gap is ever detected.
 *
 * The endpoint type is generic, so a load generator can keep endpoints as text (or numbers).
 *
 * @example
 * ```ts
 * const view = new PresenceView({
 *   self: "alice",
 *   onOnline: (name, ep) => console.log("online", name, ep),
 *   onOffline: (name) => console.log("offline", name),
 * });
 * const me = view.applyList({ entries, version: 10 }); // our own entry's endpoint
 * view.beginDatagram({ from: 10, to: 12 });
 * view.applyLine("login", "carol", { host: "192.0.2.7", port: 4000 });
 * view.applyLine("logout", "dave", { host: "192.0.2.8", port: 4000 });
 * view.endDatagram();
 * view.version; // 12
 * view.behind(14); // true: fetch the list again unless a datagram fills (12, 14] soon
 * ```
 * @module
 */
import { type Endpoint, sameEndpoint } from "../protocol/endpoint.ts";

/** Options for {@linkcode PresenceView}. */
export interface PresenceViewOptions<E = Endpoint> {
  /** Our name: lines about it are ignored; {@linkcode PresenceView.applyList} returns its entry. */
  self: string;
  /** A user came online, or moved to another endpoint. */
  onOnline?: (username: string, endpoint: E) => void;
  /** A user went offline. */
  onOffline?: (username: string) => void;
  /** Whether two endpoints are the same; default `===`, or same host and port for objects. */
  same?: (a: E, b: E) => boolean;
  /**
   * Most names held with the version of a datagram beyond a gap (tombstones included); beyond
   * that, what is held past the gap is dropped and only a list fetch catches up. Default 4096.
   */
  maxHeld?: number;
}

/** A list to apply: its entries (ours included) and its version, if it has one. */
export interface PresenceViewList<E = Endpoint> {
  entries: readonly { username: string; endpoint: E }[];
  version?: number;
}

/** The view's state: no list yet since the last reset, a versioned list, or an unversioned one. */
export type PresenceViewMode = "waiting" | "versioned" | "unversioned";

/** Most separate received ranges held beyond the version (each one is a gap before it). */
const MAX_HELD_RANGES = 64;

// What the current datagram's lines do.
/** Dropped: the datagram brings nothing new. */
const IGNORE = 0;
/** Applied as they come: no versions (unversioned mode, or a datagram without a header). */
const PLAIN = 1;
/** Applied where newer than what set the name; recorded while beyond the version. */
const VERSIONED = 2;

function defaultSame(a: unknown, b: unknown): boolean {
  return a === b ||
    (typeof a === "object" && a !== null && typeof b === "object" && b !== null &&
      sameEndpoint(a as Endpoint, b as Endpoint));
}

/** Who is online, by presence version. See the module documentation. */
export class PresenceView<E = Endpoint> {
  readonly #self: string;
  readonly #onOnline: (username: string, endpoint: E) => void;
  readonly #onOffline: (username: string) => void;
  readonly #same: (a: E, b: E) => boolean;
  readonly #maxHeld: number;
  readonly #users = new Map<string, E>();
  #mode: PresenceViewMode = "waiting";
  #version = 0;
  /** The highest version taken from a list or a datagram since the last reset. */
  #newest = 0;
  /**
   * Names set by a datagram not (yet) contiguous with the version, with that datagram's `to`;
   * while waiting for a list, every name a datagram set (`Infinity`: one without a header).
   */
  readonly #ahead = new Map<string, number>();
  /** Received ranges beyond the version: sorted, disjoint, as `[from0, to0, from1, to1, …]`. */
  #held: number[] = [];
  // The datagram being applied (between beginDatagram and endDatagram).
  #lines: number = IGNORE;
  #from = 0;
  #to = 0;
  /** Whether the current datagram's lines are recorded in `#ahead`. */
  #record = false;
  /** Whether the current datagram's range is kept (false once `#ahead` overflowed in it). */
  #keep = false;

  constructor(options: PresenceViewOptions<E>) {
    this.#self = options.self;
    this.#onOnline = options.onOnline ?? (() => {});
    this.#onOffline = options.onOffline ?? (() => {});
    this.#same = options.same ?? defaultSame;
    this.#maxHeld = options.maxHeld ?? 4096;
  }

  /** The users online now, other than us. */
  get users(): ReadonlyMap<string, E> {
    return this.#users;
  }

  /** Every change up to this version is in the view; `undefined` unless `mode` is `versioned`. */
  get version(): number | undefined {
    return this.#mode === "versioned" ? this.#version : undefined;
  }

  /**
   * The highest version any list or datagram has claimed since the last {@linkcode reset}
   * (0 when unversioned). Datagrams can be forged (UDP source addresses can be spoofed): an honest
   * coordinator's `Alive` versions catch up with this soon, a forger's claims are never confirmed.
   */
  get newest(): number {
    return this.#newest;
  }

  /** `waiting` for a list since the last {@linkcode reset}, `versioned`, or `unversioned`. */
  get mode(): PresenceViewMode {
    return this.#mode;
  }

  /**
   * A fresh login starts: forgets every version (a restarted coordinator counts from 0 again)
   * and waits for a list. The users stay, so that the next list reports only what changed.
   */
  reset(): void {
    this.#mode = "waiting";
    this.#version = 0;
    this.#newest = 0;
    this.#ahead.clear();
    this.#held = [];
  }

  /**
   * Whether an `Alive` saying that every change up to `version` has been sent means we missed
   * some (or they are still on their way). Always false unless {@linkcode mode} is `versioned`.
   */
  behind(version: number): boolean {
    return this.#mode === "versioned" && version > this.#version;
  }

  /**
   * Applies an online list (the whole view, our own entry included) and returns our own entry's
   * endpoint, if the list has one. Names a datagram set with a version newer than the list's keep
   * their state; without a version, names any datagram set since the last reset keep theirs (they
   * arrived while the list was on its way, so they are newer). A list no newer than the version
   * changes nothing.
   */
  applyList(list: PresenceViewList<E>): E | undefined {
    let self: E | undefined;
    for (const entry of list.entries) if (entry.username === this.#self) self = entry.endpoint;
    const v = list.version;
    if (v !== undefined && this.#mode === "versioned" && v <= this.#version) return self;
    // A name a datagram set more recently than the list was written keeps its state.
    const newer = (name: string): boolean => {
      const at = this.#ahead.get(name);
      return at !== undefined && (v === undefined || at > v);
    };
    if (this.#users.size > 0) {
      const listed = new Set<string>();
      for (const entry of list.entries) listed.add(entry.username);
      for (const name of this.#users.keys()) {
        if (!listed.has(name) && !newer(name)) {
          this.#users.delete(name);
          this.#onOffline(name);
        }
      }
    }
    for (const { username, endpoint } of list.entries) {
      if (username !== this.#self && !newer(username)) this.#online(username, endpoint);
    }
    if (v === undefined) {
      this.reset();
      this.#mode = "unversioned";
    } else {
      this.#mode = "versioned";
      this.#version = v;
      this.#newest = Math.max(this.#newest, v);
      this.#advance(true);
    }
    return self;
  }

  /**
   * Starts applying one datagram: its `Presence` header's range, or `undefined` when it has none.
   * Then call {@linkcode applyLine} for each change it carries, then
   * {@linkcode endDatagram}.
   */
  beginDatagram(range?: { from: number; to: number }): void {
    this.#keep = false;
    this.#record = false;
    if (this.#mode === "unversioned" || range === undefined) {
      this.#lines = PLAIN;
      // While waiting for a list, note what the datagram set: the list must not undo it.
      if (this.#mode === "waiting") {
        this.#lines = VERSIONED;
        this.#to = Infinity;
        this.#record = true;
      }
      return;
    }
    if (this.#mode === "versioned" && range.to <= this.#version) {
      this.#lines = IGNORE; // everything it says is in the view already
      return;
    }
    this.#lines = VERSIONED;
    this.#from = range.from;
    this.#to = range.to;
    this.#newest = Math.max(this.#newest, range.to);
    this.#keep = range.from < range.to;
    // A datagram contiguous with the version needs no record: the version passes its `to`.
    this.#record = this.#mode === "waiting" || range.from > this.#version;
  }

  /**
   * Applies one change of the datagram begun by {@linkcode beginDatagram}: `username` is online at
   * `endpoint` (`login`), or offline (`logout`, which needs no endpoint).
   */
  applyLine(type: "login", username: string, endpoint: E): void;
  applyLine(type: "logout", username: string, endpoint?: E): void;
  applyLine(type: "login" | "logout", username: string, endpoint?: E): void {
    if (this.#lines === IGNORE || username === this.#self) return;
    if (this.#lines === VERSIONED && this.#ahead.size > 0) {
      const at = this.#ahead.get(username);
      // Set by a datagram at least as new: this line is older (reordered, or a duplicate).
      if (at !== undefined && at >= this.#to && this.#to !== Infinity) return;
    }
    if (this.#record) {
      this.#ahead.set(username, this.#to);
      if (this.#ahead.size > this.#maxHeld) this.#overflow();
    }
    if (type === "login") {
      this.#online(username, endpoint!);
    } else if (this.#users.delete(username)) {
      this.#onOffline(username);
    }
  }

  /** Ends the datagram begun by {@linkcode beginDatagram}: its range counts as received. */
  endDatagram(): void {
    const lines = this.#lines;
    this.#lines = IGNORE;
    if (lines !== VERSIONED || !this.#keep) return;
    if (this.#mode === "versioned" && this.#from <= this.#version) {
      this.#version = this.#to;
      this.#advance(false);
    } else {
      this.#hold(this.#from, this.#to);
    }
  }

  #online(username: string, endpoint: E): void {
    const known = this.#users.get(username);
    if (known !== undefined && this.#same(known, endpoint)) return;
    this.#users.set(username, endpoint);
    this.#onOnline(username, endpoint);
  }

  /**
   * Extends the version over the held ranges it reaches, and forgets the names it has passed
   * (names are only held with a held range, so passing none passes no name; `prune` forces it).
   */
  #advance(prune: boolean): void {
    const held = this.#held;
    let k = 0;
    while (k < held.length && held[k] <= this.#version) {
      if (held[k + 1] > this.#version) this.#version = held[k + 1];
      k += 2;
    }
    if (k > 0) {
      this.#held = held.slice(k);
      prune = true;
    }
    if (!prune) return;
    for (const [name, at] of this.#ahead) {
      if (at <= this.#version || at === Infinity) this.#ahead.delete(name);
    }
  }

  /** Holds the received range (from, to] beyond a gap, merged with those it touches. */
  #hold(from: number, to: number): void {
    const held = this.#held;
    let i = 0;
    while (i < held.length && held[i + 1] < from) i += 2;
    let j = i;
    while (j < held.length && held[j] <= to) {
      from = Math.min(from, held[j]);
      to = Math.max(to, held[j + 1]);
      j += 2;
    }
    held.splice(i, j - i, from, to);
    if (held.length > 2 * MAX_HELD_RANGES) this.#overflow();
  }

  /**
   * Too much held beyond a gap: drop it all. The version then stays short of the gap, so the
   * next `Alive` shows we are behind, and the list fetched then has what was dropped.
   */
  #overflow(): void {
    this.#ahead.clear();
    this.#held = [];
    this.#keep = false;
  }
}
