/**
 * Contacts on the coordinator (docs/PROTOCOL.md §1.5): who accepted whom, the requests waiting
 * for an answer, and who blocked whom, kept in the coordinator's database (`contact`,
 * `contact_request`, `contact_block`: `schema.ts`) and held in memory, since a contacts-mode
 * coordinator asks at every presence change who may see it.
 *
 * A contact is a pair of (name, key) that both sides accepted, so it is bound to keys: a name
 * another key registers later (`name_owners.ts`) inherits nothing ({@linkcode ContactBook.contactsOf}
 * asks for the key too). The policy is here too: requests are rate-limited per sender (a token
 * bucket per name), capped per recipient and per sender, and lapse after 30 days; a request to a
 * name that does not exist is kept like any other, so that it looks the same to its sender; a
 * blocked name's requests are dropped; nothing here ever answers a sender (the caller sends only
 * `Contact` to both sides of a new pair, and `Uncontact` to the other side of a removed one).
 *
 * Writes go straight to the database (one statement each, a few per second at most: requests
 * are rate-limited), so a restart loses nothing.
 *
 * @example
 * ```ts
 * import { openCoordinatorStore } from "./store.ts";
 *
 * const store = openCoordinatorStore();
 * const book = new ContactBook({ db: store.db, now: () => Date.now() });
 * book.request({ name: "alice", key: "A…" }, "bob", "hi, it's alice"); // "requested"
 * book.accept({ name: "bob", key: "B…" }, "alice"); // the new pair
 * book.contactsOf({ name: "bob", key: "B…" }); // [{ username: "alice", key: "A…" }]
 * store.close();
 * ```
 * @module
 */
import { transaction } from "../store/database.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { ContactEntry, ContactRequestEntry } from "../protocol/seed.ts";
import { BucketMap, TokenBucket } from "../token_bucket.ts";

/** A user as contacts know it: a name and the key it is bound to. */
export interface Party {
  name: string;
  key: string;
}

/** A contact pair, `a` < `b` (by name). */
export interface ContactPair {
  a: Party;
  b: Party;
}

/** A request waiting for its recipient's answer. */
interface Request {
  sender: Party;
  note: string;
  sent: number;
}

/**
 * What became of a request: stored for its recipient (`requested`), both sides now contacts
 * (`contacts`: the recipient had asked for the sender too), nothing (`ignored`: to oneself,
 * already contacts or asked, blocked, or the recipient has too many waiting), or refused
 * (`limited`: the sender asked too often, or has too many waiting).
 */
export type RequestOutcome =
  | { kind: "requested" }
  | { kind: "contacts"; pair: ContactPair }
  | { kind: "ignored"; why: "self" | "known" | "blocked" | "recipient-full" }
  | { kind: "limited"; why: "rate" | "outstanding" };

/** Options for {@linkcode ContactBook}. */
export interface ContactBookOptions {
  /** The coordinator's database (`schema.ts`). */
  db: DatabaseSync;
  /** Wall-clock ms since the epoch (requests outlive the process). */
  now: () => number;
  /** Requests one name may send: `burst` at once, then `perHour`; default 20 and 20. */
  requestRate?: { burst: number; perHour: number };
  /** Requests waiting for one recipient at most; default 100 (beyond, new ones are dropped). */
  maxPerRecipient?: number;
  /** Requests of one sender waiting at most; default 200. */
  maxPerSender?: number;
  /** A request unanswered this long lapses; default 30 days. */
  requestTtlMs?: number;
}

/** Defaults of {@linkcode ContactBookOptions}. */
export const CONTACT_DEFAULTS = {
  requestRate: { burst: 20, perHour: 20 },
  maxPerRecipient: 100,
  maxPerSender: 200,
  requestTtlMs: 30 * 24 * 3600 * 1000,
} as const;

/** Contacts, requests and blocks; see the module comment. */
export class ContactBook {
  readonly #now: () => number;
  readonly #maxPerRecipient: number;
  readonly #maxPerSender: number;
  readonly #ttlMs: number;
  /**
   * Each name's contacts: the other name → the pair's keys, `[key of the lesser name, key of the
   * greater]` (one array shared by both sides). Compact, since a community holds hundreds of
   * thousands of pairs: no object per side, and each name and key string held once
   * ({@linkcode #intern}).
   */
  readonly #pairs = new Map<string, Map<string, [string, string]>>();
  /** One copy of each name and key held (rows from the database come as fresh strings). */
  readonly #strings = new Map<string, string>();
  /** Requests by recipient, then sender. */
  readonly #requests = new Map<string, Map<string, Request>>();
  /** Requests waiting per sender. */
  readonly #outstanding = new Map<string, number>();
  /** Blocks by blocker, then blocked name. */
  readonly #blocks = new Map<string, Set<string>>();
  readonly #senders: BucketMap<TokenBucket>;
  readonly #sql: Record<
    "putPair" | "dropPair" | "putRequest" | "dropRequest" | "putBlock" | "dropBlock" | "prune",
    StatementSync
  >;
  readonly #db: DatabaseSync;
  #sweptAt = 0;

  constructor(options: ContactBookOptions) {
    const db = this.#db = options.db;
    this.#now = options.now;
    this.#maxPerRecipient = options.maxPerRecipient ?? CONTACT_DEFAULTS.maxPerRecipient;
    this.#maxPerSender = options.maxPerSender ?? CONTACT_DEFAULTS.maxPerSender;
    this.#ttlMs = options.requestTtlMs ?? CONTACT_DEFAULTS.requestTtlMs;
    const rate = options.requestRate ?? CONTACT_DEFAULTS.requestRate;
    this.#senders = new BucketMap({
      create: (now) =>
        new TokenBucket({ burst: rate.burst, rate: rate.perHour, intervalMs: 3600_000 }, now),
      maxKeys: 65_536,
    });
    this.#sql = {
      putPair: db.prepare(
        "INSERT OR REPLACE INTO contact (a, a_key, b, b_key, since) VALUES (?, ?, ?, ?, ?)",
      ),
      dropPair: db.prepare("DELETE FROM contact WHERE a = ? AND b = ?"),
      putRequest: db.prepare(
        `INSERT OR REPLACE INTO contact_request (recipient, sender, sender_key, note, sent)
         VALUES (?, ?, ?, ?, ?)`,
      ),
      dropRequest: db.prepare("DELETE FROM contact_request WHERE recipient = ? AND sender = ?"),
      putBlock: db.prepare(
        "INSERT OR REPLACE INTO contact_block (blocker, blocker_key, blocked) VALUES (?, ?, ?)",
      ),
      dropBlock: db.prepare("DELETE FROM contact_block WHERE blocker = ? AND blocked = ?"),
      prune: db.prepare("DELETE FROM contact_request WHERE sent < ?"),
    };
    this.#load();
  }

  /** Contact pairs held. */
  get pairs(): number {
    let n = 0;
    for (const peers of this.#pairs.values()) n += peers.size;
    return n / 2;
  }

  /** Requests waiting. */
  get requests(): number {
    let n = 0;
    for (const waiting of this.#requests.values()) n += waiting.size;
    return n;
  }

  /** `party`'s contacts (bound to its key), with the key each is bound to. */
  contactsOf(party: Party): ContactEntry[] {
    const out: ContactEntry[] = [];
    this.forEachContact(party, (username, key) => out.push({ username, key }));
    return out;
  }

  /**
   * Calls `fn` with each of `party`'s contacts (bound to its key) and the key it is bound to,
   * making no object per contact: a contacts-mode coordinator asks this at every login, for
   * every contact (the audience of its presence line, then its list).
   */
  forEachContact(party: Party, fn: (name: string, key: string) => void): void {
    const me = party.name;
    this.#pairs.get(me)?.forEach((keys, other) => {
      if (me < other) {
        if (keys[0] === party.key) fn(other, keys[1]);
      } else if (keys[1] === party.key) fn(other, keys[0]);
    });
  }

  /** Whether `a` and `b` are contacts, each with the key it has now. */
  areContacts(a: Party, b: Party): boolean {
    const keys = this.#pairs.get(a.name)?.get(b.name);
    if (keys === undefined) return false;
    const [ka, kb] = a.name < b.name ? keys : [keys[1], keys[0]];
    return ka === a.key && kb === b.key;
  }

  /** The requests waiting for `name`'s answer, oldest first (lapsed ones left out). */
  requestsFor(name: string): ContactRequestEntry[] {
    const oldest = this.#now() - this.#ttlMs;
    return [...this.#requests.get(name)?.values() ?? []]
      .filter((r) => r.sent >= oldest)
      .map((r) => ({ username: r.sender.name, key: r.sender.key, note: r.note }));
  }

  /**
   * `from` asks `to` to be contacts (see {@linkcode RequestOutcome}). Charged to `from`'s rate
   * whatever becomes of it, so that a name that does not exist costs the same as one that does.
   */
  request(from: Party, to: string, note: string): RequestOutcome {
    const now = this.#now();
    if (!this.#senders.obtain(from.name, now).take(now)) return { kind: "limited", why: "rate" };
    if (to === from.name) return { kind: "ignored", why: "self" };
    if (this.#blocks.get(to)?.has(from.name)) return { kind: "ignored", why: "blocked" };
    const keys = this.#pairs.get(from.name)?.get(to);
    if (keys !== undefined && keyOf(keys, from.name, to) === from.key) {
      return { kind: "ignored", why: "known" };
    }
    // Each asked for the other: that is both sides' consent.
    const theirs = this.#requests.get(from.name)?.get(to);
    if (theirs !== undefined && theirs.sent >= now - this.#ttlMs) {
      return { kind: "contacts", pair: this.#pair(from, theirs.sender, now) };
    }
    const waiting = this.#requests.get(to);
    const mine = waiting?.get(from.name);
    if (mine !== undefined && mine.sender.key === from.key) {
      return { kind: "ignored", why: "known" };
    }
    if (mine === undefined && (waiting?.size ?? 0) >= this.#maxPerRecipient) {
      return { kind: "ignored", why: "recipient-full" };
    }
    if (mine === undefined && (this.#outstanding.get(from.name) ?? 0) >= this.#maxPerSender) {
      return { kind: "limited", why: "outstanding" };
    }
    if (mine !== undefined) this.#dropRequest(to, from.name);
    this.#putRequest(to, { sender: { ...from }, note, sent: now });
    return { kind: "requested" };
  }

  /** `me` accepts `from`'s request: the new pair, or `undefined` when there was none. */
  accept(me: Party, from: string): ContactPair | undefined {
    const request = this.#requests.get(me.name)?.get(from);
    if (request === undefined || request.sent < this.#now() - this.#ttlMs) return undefined;
    return this.#pair(me, request.sender, this.#now());
  }

  /** `me` declines `from`'s request (silently: `from` is not told). */
  decline(me: Party, from: string): boolean {
    return this.#dropRequest(me.name, from);
  }

  /** `me` removes `other`: the pair removed, or `undefined` when they were not contacts. */
  remove(me: Party, other: string): ContactPair | undefined {
    const keys = this.#pairs.get(me.name)?.get(other);
    if (keys === undefined || keyOf(keys, me.name, other) !== me.key) return undefined;
    this.#unpair(me.name, other);
    const them = { name: other, key: keyOf(keys, other, me.name) };
    return me.name < other ? { a: { ...me }, b: them } : { a: them, b: { ...me } };
  }

  /**
   * `me` blocks `other`: its request is declined, the pair removed (returned, for the caller to
   * tell `other` as for a removal: a block looks like one), and its later requests dropped.
   */
  block(me: Party, other: string): ContactPair | undefined {
    this.#dropRequest(me.name, other);
    const removed = this.remove(me, other);
    let blocked = this.#blocks.get(me.name);
    if (blocked === undefined) this.#blocks.set(me.name, blocked = new Set());
    blocked.add(other);
    this.#sql.putBlock.run(me.name, me.key, other);
    return removed;
  }

  /** `me` no longer blocks `other`. */
  unblock(me: Party, other: string): void {
    this.#blocks.get(me.name)?.delete(other);
    this.#sql.dropBlock.run(me.name, other);
  }

  /**
   * Makes pairs in one transaction, with no requests (the load benchmark seeds its community
   * this way; an operator could import contacts).
   */
  addPairs(pairs: readonly [Party, Party][]): void {
    const now = this.#now();
    transaction(this.#db, () => {
      for (const [a, b] of pairs) this.#pair(a, b, now);
    });
  }

  /** About once a minute: forgets lapsed requests and sender budgets that have refilled. */
  sweep(): void {
    const now = this.#now();
    if (now - this.#sweptAt < 60_000) return;
    this.#sweptAt = now;
    this.#senders.sweep(now);
    const oldest = now - this.#ttlMs;
    for (const [recipient, waiting] of this.#requests) {
      for (const [sender, r] of waiting) {
        if (r.sent < oldest) this.#forgetRequest(recipient, sender);
      }
    }
    this.#sql.prune.run(oldest);
  }

  #intern(text: string): string {
    const held = this.#strings.get(text);
    if (held !== undefined) return held;
    this.#strings.set(text, text);
    return text;
  }

  /** Makes `x` and `y` contacts (replacing a pair of the names with older keys). */
  #pair(x: Party, y: Party, now: number): ContactPair {
    const [a, b] = x.name < y.name ? [x, y] : [y, x];
    // One commit (one wait for the disk), not three.
    transaction(this.#db, () => {
      this.#dropRequest(x.name, y.name);
      this.#dropRequest(y.name, x.name);
      this.#sql.putPair.run(a.name, a.key, b.name, b.key, now);
    });
    this.#link(a, b);
    return { a: { ...a }, b: { ...b } };
  }

  /** Holds the pair `a` < `b` in memory. */
  #link(a: Party, b: Party): void {
    const names = [this.#intern(a.name), this.#intern(b.name)];
    const keys: [string, string] = [this.#intern(a.key), this.#intern(b.key)];
    for (const [me, other] of [names, [names[1], names[0]]]) {
      let peers = this.#pairs.get(me);
      if (peers === undefined) this.#pairs.set(me, peers = new Map());
      peers.set(other, keys);
    }
  }

  #unpair(x: string, y: string): void {
    this.#sql.dropPair.run(x < y ? x : y, x < y ? y : x);
    for (const [me, other] of [[x, y], [y, x]]) {
      const peers = this.#pairs.get(me);
      peers?.delete(other);
      if (peers?.size === 0) this.#pairs.delete(me);
    }
  }

  #putRequest(recipient: string, request: Request): void {
    this.#sql.putRequest.run(
      recipient,
      request.sender.name,
      request.sender.key,
      request.note,
      request.sent,
    );
    this.#remember(recipient, request);
  }

  #remember(recipient: string, request: Request): void {
    let waiting = this.#requests.get(recipient);
    if (waiting === undefined) this.#requests.set(recipient, waiting = new Map());
    waiting.set(request.sender.name, request);
    const sender = request.sender.name;
    this.#outstanding.set(sender, (this.#outstanding.get(sender) ?? 0) + 1);
  }

  #dropRequest(recipient: string, sender: string): boolean {
    if (!this.#requests.get(recipient)?.has(sender)) return false;
    this.#sql.dropRequest.run(recipient, sender);
    this.#forgetRequest(recipient, sender);
    return true;
  }

  #forgetRequest(recipient: string, sender: string): void {
    const waiting = this.#requests.get(recipient);
    if (!waiting?.delete(sender)) return;
    if (waiting.size === 0) this.#requests.delete(recipient);
    const n = (this.#outstanding.get(sender) ?? 1) - 1;
    if (n > 0) this.#outstanding.set(sender, n);
    else this.#outstanding.delete(sender);
  }

  #load(): void {
    // A page at a time with `all()`: `iterate()` stops silently at a damaged page (the pairs
    // would be lost without a word), and one `all()` of every pair would hold them twice at start.
    const page = this.#db.prepare(
      "SELECT a, a_key, b, b_key FROM contact WHERE (a, b) > (?, ?) ORDER BY a, b LIMIT 4096",
    );
    for (let after = ["", ""];;) {
      const rows = page.all(after[0], after[1]) as {
        a: string;
        a_key: string;
        b: string;
        b_key: string;
      }[];
      if (rows.length === 0) break;
      for (const r of rows) this.#link({ name: r.a, key: r.a_key }, { name: r.b, key: r.b_key });
      after = [rows.at(-1)!.a, rows.at(-1)!.b];
    }
    const requests = this.#db.prepare(
      "SELECT recipient, sender, sender_key, note, sent FROM contact_request",
    ).all() as {
      recipient: string;
      sender: string;
      sender_key: string;
      note: string;
      sent: number;
    }[];
    for (const r of requests) {
      this.#remember(r.recipient, {
        sender: { name: r.sender, key: r.sender_key },
        note: r.note,
        sent: Number(r.sent),
      });
    }
    const blocks = this.#db.prepare("SELECT blocker, blocked FROM contact_block").all() as {
      blocker: string;
      blocked: string;
    }[];
    for (const r of blocks) {
      let blocked = this.#blocks.get(r.blocker);
      if (blocked === undefined) this.#blocks.set(r.blocker, blocked = new Set());
      blocked.add(r.blocked);
    }
  }
}

/** `name`'s key in a pair's keys (`other` is the other name). */
function keyOf(keys: [string, string], name: string, other: string): string {
  return name < other ? keys[0] : keys[1];
}
