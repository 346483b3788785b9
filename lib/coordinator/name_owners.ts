/**
 * Names owned by keys (docs/PROTOCOL.md §1.3): which public key first brought each name online,
 * when, and when the name was last used, kept in the coordinator's database (`name_owner`) so that
 * a restart forgets nobody. The registry asks it who owns a name at every login, so the whole
 * table is held in memory (a map lookup, about 200 bytes a name); writes are batched: what changed
 * is written in one transaction per {@linkcode NameOwners.flush} (the coordinator calls it every
 * second, and at shutdown), so a crash loses at most the last second of registrations and uses.
 *
 * A registration unused for the time to live (`p2p serve --name-ttl`, default 180 days) lapses: the
 * name is free again, and the next key to bring it online owns it.
 *
 * @example
 * ```ts
 * import { openCoordinatorStore } from "./store.ts";
 *
 * const store = openCoordinatorStore();
 * const owners = new NameOwners({ db: store.db, now: () => Date.now() });
 * owners.use("alice", "<alice's key>"); // registered
 * owners.ownerOf("alice"); // "<alice's key>"
 * owners.flush(); // written
 * store.close();
 * ```
 * @module
 */
import { transaction } from "../store/database.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** One name's registration. */
export interface NameRegistration {
  /** The owner's public key, base64url. */
  key: string;
  /** When the key registered the name (ms since the epoch). */
  registered: number;
  /** When the name was last brought online or left (ms since the epoch). */
  lastUsed: number;
}

/** Options for {@linkcode NameOwners}. */
export interface NameOwnersOptions {
  /** The coordinator's database (`schema.ts`). */
  db: DatabaseSync;
  /** Wall-clock milliseconds since the epoch (registrations outlive the process). */
  now: () => number;
  /** A registration unused this long lapses; default 180 days. */
  ttlMs?: number;
}

/** Default time to live of an unused registration: 180 days. */
export const DEFAULT_NAME_TTL_MS = 180 * 24 * 3600 * 1000;
/** Lapsed registrations are dropped from memory and the database about this often. */
const PRUNE_EVERY_MS = 3600 * 1000;

/** Who owns which name; see the module comment. */
export class NameOwners {
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #byName = new Map<string, NameRegistration>();
  /** Names whose registration changed since the last flush. */
  readonly #dirty = new Set<string>();
  readonly #db: DatabaseSync;
  readonly #upsert: StatementSync;
  readonly #prune: StatementSync;
  #prunedAt: number;

  constructor(options: NameOwnersOptions) {
    this.#db = options.db;
    this.#now = options.now;
    this.#ttlMs = options.ttlMs ?? DEFAULT_NAME_TTL_MS;
    this.#upsert = this.#db.prepare(
      `INSERT INTO name_owner (name, key, registered, last_used) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET key = excluded.key, registered = excluded.registered,
         last_used = excluded.last_used`,
    );
    this.#prune = this.#db.prepare("DELETE FROM name_owner WHERE last_used < ?");
    this.#prunedAt = this.#now();
    const rows = this.#db.prepare("SELECT name, key, registered, last_used FROM name_owner")
      .all() as { name: string; key: string; registered: number; last_used: number }[];
    for (const row of rows) {
      this.#byName.set(row.name, {
        key: row.key,
        registered: Number(row.registered),
        lastUsed: Number(row.last_used),
      });
    }
  }

  /** Registrations held (lapsed ones included until they are pruned). */
  get size(): number {
    return this.#byName.size;
  }

  /** The name's live registration, or `undefined` when it has none or it lapsed. */
  get(name: string): NameRegistration | undefined {
    const reg = this.#byName.get(name);
    return reg !== undefined && this.#now() - reg.lastUsed <= this.#ttlMs ? reg : undefined;
  }

  /** The key that owns the name, or `undefined` when the name is free. */
  ownerOf(name: string): string | undefined {
    return this.get(name)?.key;
  }

  /**
   * Notes that `key` brought `name` online or left with it: a free name (never registered, or
   * lapsed) is registered to the key (`"registered"`); the owner's use is recorded (`"used"`); a
   * name another key owns is left alone (`"owned"`: the registry never lets that happen).
   */
  use(name: string, key: string): "registered" | "used" | "owned" {
    const now = this.#now();
    const reg = this.get(name);
    if (reg !== undefined && reg.key !== key) return "owned";
    if (reg !== undefined) reg.lastUsed = now;
    else this.#byName.set(name, { key, registered: now, lastUsed: now });
    this.#dirty.add(name);
    return reg === undefined ? "registered" : "used";
  }

  /**
   * Writes every change since the last flush in one transaction, and, about once an hour, drops
   * lapsed registrations. Returns how many registrations were written. Throws what SQLite throws
   * (a full disk): the changes stay marked and the next flush tries again.
   */
  flush(): number {
    const now = this.#now();
    const prune = now - this.#prunedAt >= PRUNE_EVERY_MS;
    if (this.#dirty.size === 0 && !prune) return 0;
    transaction(this.#db, () => {
      for (const name of this.#dirty) {
        const reg = this.#byName.get(name)!;
        this.#upsert.run(name, reg.key, reg.registered, reg.lastUsed);
      }
      if (prune) this.#prune.run(now - this.#ttlMs);
    });
    const written = this.#dirty.size;
    this.#dirty.clear();
    if (prune) {
      this.#prunedAt = now;
      for (const [name, reg] of this.#byName) {
        if (now - reg.lastUsed > this.#ttlMs) this.#byName.delete(name);
      }
    }
    return written;
  }
}
