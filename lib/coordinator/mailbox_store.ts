/**
 * The coordinator's mailbox store: sealed messages waiting for offline users, in SQLite
 * (`<data>/mailbox.db`, opened by `lib/store/database.ts`), with the quotas that keep one sender
 * or one recipient from filling it, and the TTL that empties it of mail nobody fetches. It is its
 * own room, and its own file, because it is the one place the coordinator keeps what users gave
 * it: its durability rules (acknowledge only what is committed, group commit to keep up) are
 * not those of the rest of the server.
 *
 * - A deposit is answered only once the transaction holding it has committed: deposits that
 *   arrive together (one event-loop turn, up to {@linkcode MAX_BATCH}) share one transaction, so
 *   one fsync serves many. A failed commit (a full disk) rolls the whole batch back and refuses
 *   each deposit with the reason: nothing acknowledged is lost, nothing refused is half-kept.
 * - Quotas count what is stored (count and bytes) per recipient, per sender — the depositor's
 *   address key (IPv4 address, IPv6 /64): the coordinator never learns a sender's name — and in
 *   total. They are held in memory, summed from the file at open, and charged when a deposit is
 *   accepted for the batch, so a flood inside one batch cannot overshoot them.
 * - Mail is deleted when its recipient acknowledges it, or when it is older than the TTL.
 *
 * Ids come from `AUTOINCREMENT`: never reused, increasing, so a recipient's mail is read in the
 * order it was deposited.
 *
 * @example
 * ```ts
 * const store = new MailboxStore({ db, clock, quotas: DEFAULT_MAILBOX_QUOTAS, ttlMs: 14 * 86_400_000 });
 * const result = await store.deposit({ recipient: "bob", sender: "192.0.2.1", sealed });
 * if (result.ok) store.fetch("bob", 0, 100); // [{ id, sealed }]
 * ```
 * @module
 */
import { transaction } from "../store/database.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Clock } from "../clock.ts";

/** The mailbox's schema steps (for `openDatabase`, kind `"mailbox"`). */
export const MAILBOX_MIGRATIONS: readonly string[] = [
  `CREATE TABLE mail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    deposited INTEGER NOT NULL,
    sealed BLOB NOT NULL
  );
  CREATE INDEX mail_by_recipient ON mail (recipient, id);
  CREATE INDEX mail_by_time ON mail (deposited);`,
];

/** How much the mailbox holds; each beyond is a refusal with a reason. */
export interface MailboxQuotas {
  /** Largest sealed message, in bytes; beyond: `too large`. */
  maxMailBytes: number;
  /** Messages waiting for one recipient; beyond: `mailbox full`. */
  perRecipientCount: number;
  /** Bytes waiting for one recipient; beyond: `mailbox full`. */
  perRecipientBytes: number;
  /** Messages stored from one sender's address; beyond: `too many messages waiting from your address`. */
  perSenderCount: number;
  /** Bytes stored from one sender's address; beyond, the same. */
  perSenderBytes: number;
  /** Messages stored in total; beyond: `the mailbox store is full`. */
  totalCount: number;
  /** Bytes stored in total; beyond, the same. */
  totalBytes: number;
}

/** The defaults: a Raspberry Pi with a few GB to spare, a community of about 10,000. */
export const DEFAULT_MAILBOX_QUOTAS: Readonly<MailboxQuotas> = Object.freeze({
  maxMailBytes: 65_535,
  perRecipientCount: 10_000,
  perRecipientBytes: 16 * 1024 * 1024,
  perSenderCount: 10_000,
  perSenderBytes: 16 * 1024 * 1024,
  totalCount: 1_000_000,
  totalBytes: 1024 * 1024 * 1024,
});

/** Default time mail waits before it is deleted unread: 14 days. */
export const DEFAULT_MAILBOX_TTL_MS = 14 * 24 * 3_600_000;

/** Most deposits committed in one transaction. */
export const MAX_BATCH = 1_000;

/** Reasons a deposit is refused (what the sender sees as `undelivered`). */
export const REFUSALS = {
  tooLarge: "too large",
  recipientFull: "mailbox full",
  senderFull: "too many messages waiting from your address",
  storeFull: "the mailbox store is full",
} as const;

/** Options for {@linkcode MailboxStore}. */
export interface MailboxStoreOptions {
  /** An open mailbox database ({@linkcode MAILBOX_MIGRATIONS} applied). */
  db: DatabaseSync;
  /** Deposit times, TTL and the group-commit timer. */
  clock: Clock;
  quotas: Readonly<MailboxQuotas>;
  /** Mail older than this is deleted by {@linkcode MailboxStore.expire}. */
  ttlMs: number;
}

/** What {@linkcode MailboxStore.deposit} resolves with. */
export type DepositResult = { ok: true; id: number } | { ok: false; reason: string };

/** A message as fetched. */
export interface StoredMail {
  id: number;
  sealed: Uint8Array;
}

interface Usage {
  count: number;
  bytes: number;
}

interface Queued {
  recipient: string;
  sender: string;
  sealed: Uint8Array;
  resolve: (result: DepositResult) => void;
}

/** The mailbox in SQLite, with its quotas. */
export class MailboxStore {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;
  readonly #quotas: Readonly<MailboxQuotas>;
  readonly #ttlMs: number;
  readonly #recipients = new Map<string, Usage>();
  readonly #senders = new Map<string, Usage>();
  readonly #total: Usage = { count: 0, bytes: 0 };
  readonly #sql: Record<"insert" | "page" | "ack" | "expire", StatementSync>;
  #queue: Queued[] = [];
  #flushing = false;
  #closed = false;

  constructor(options: MailboxStoreOptions) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#quotas = options.quotas;
    this.#ttlMs = options.ttlMs;
    const db = options.db;
    this.#sql = {
      insert: db.prepare(
        "INSERT INTO mail (recipient, sender, deposited, sealed) VALUES (?, ?, ?, ?) RETURNING id",
      ),
      page: db.prepare(
        "SELECT id, sealed FROM mail WHERE recipient = ? AND id > ? ORDER BY id LIMIT ?",
      ),
      ack: db.prepare(
        "DELETE FROM mail WHERE id = ? AND recipient = ? RETURNING sender, length(sealed) AS size",
      ),
      expire: db.prepare(
        "DELETE FROM mail WHERE id IN (SELECT id FROM mail WHERE deposited < ? LIMIT 1000) " +
          "RETURNING recipient, sender, length(sealed) AS size",
      ),
    };
    this.#recount();
  }

  /** Mail older than this is deleted by {@linkcode MailboxStore.expire}. */
  get ttlMs(): number {
    return this.#ttlMs;
  }

  /** Messages and bytes stored, in total. */
  get total(): Readonly<Usage> {
    return this.#total;
  }

  /** Messages waiting for `recipient` (and deposits of theirs about to be committed). */
  waiting(recipient: string): number {
    return this.#recipients.get(recipient)?.count ?? 0;
  }

  /**
   * Stores `sealed` for `recipient`, charged to `sender` (the depositor's address key). Resolves
   * once committed with its id, or with the reason it was refused (quota, size, disk).
   */
  deposit(mail: { recipient: string; sender: string; sealed: Uint8Array }): Promise<DepositResult> {
    const size = mail.sealed.length;
    const refuse = (reason: string) => Promise.resolve<DepositResult>({ ok: false, reason });
    if (this.#closed) return refuse("the server is shutting down");
    const q = this.#quotas;
    if (size > q.maxMailBytes) return refuse(REFUSALS.tooLarge);
    const r = this.#recipients.get(mail.recipient) ?? { count: 0, bytes: 0 };
    if (r.count + 1 > q.perRecipientCount || r.bytes + size > q.perRecipientBytes) {
      return refuse(REFUSALS.recipientFull);
    }
    const s = this.#senders.get(mail.sender) ?? { count: 0, bytes: 0 };
    if (s.count + 1 > q.perSenderCount || s.bytes + size > q.perSenderBytes) {
      return refuse(REFUSALS.senderFull);
    }
    const t = this.#total;
    if (t.count + 1 > q.totalCount || t.bytes + size > q.totalBytes) {
      return refuse(REFUSALS.storeFull);
    }
    charge(r, 1, size);
    charge(s, 1, size);
    charge(t, 1, size);
    this.#recipients.set(mail.recipient, r);
    this.#senders.set(mail.sender, s);
    return new Promise((resolve) => {
      this.#queue.push({ ...mail, resolve });
      if (this.#queue.length === 1 && !this.#flushing) {
        this.#clock.setTimeout(() => this.#flush(), 0);
      }
    });
  }

  /** Up to `limit` of `recipient`'s messages with ids above `afterId`, oldest first. */
  fetch(recipient: string, afterId: number, limit: number): StoredMail[] {
    const rows = this.#sql.page.all(recipient, afterId, limit) as {
      id: number;
      sealed: Uint8Array;
    }[];
    return rows.map((row) => ({ id: row.id, sealed: row.sealed }));
  }

  /** Deletes those of `ids` that are `recipient`'s; returns how many were. */
  ack(recipient: string, ids: readonly number[]): number {
    let deleted = 0;
    try {
      transaction(this.#db, () => {
        for (const id of ids) {
          const row = this.#sql.ack.get(id, recipient) as
            | { sender: string; size: number }
            | undefined;
          if (!row) continue;
          this.#release(recipient, row.sender, row.size);
          deleted++;
        }
      }, "immediate");
    } catch (err) {
      // What was released in memory is stored still: count it again from the file.
      this.#recount();
      throw err;
    }
    return deleted;
  }

  /** Deletes mail older than the TTL; returns how many. */
  expire(): number {
    const before = this.#clock.now() - this.#ttlMs;
    let deleted = 0;
    for (;;) {
      const rows = this.#sql.expire.all(before) as {
        recipient: string;
        sender: string;
        size: number;
      }[];
      for (const row of rows) this.#release(row.recipient, row.sender, row.size);
      deleted += rows.length;
      if (rows.length === 0) return deleted;
    }
  }

  /** Commits what is queued, refuses what arrives from now on. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#queue.length > 0 || this.#flushing) {
      await new Promise((resolve) => this.#clock.setTimeout(() => resolve(undefined), 1));
      if (!this.#flushing) this.#flush();
    }
  }

  /** Commits up to {@linkcode MAX_BATCH} queued deposits in one transaction, and answers them. */
  #flush(): void {
    if (this.#flushing || this.#queue.length === 0) return;
    this.#flushing = true;
    const batch = this.#queue.splice(0, MAX_BATCH);
    const now = Math.floor(this.#clock.now());
    const ids: number[] = [];
    try {
      transaction(this.#db, () => {
        for (const m of batch) {
          const row = this.#sql.insert.get(m.recipient, m.sender, now, m.sealed) as { id: number };
          ids.push(row.id);
        }
      }, "immediate");
    } catch (err) {
      const reason = `the server cannot store it now (${(err as Error).message})`;
      for (const m of batch) {
        this.#release(m.recipient, m.sender, m.sealed.length);
        m.resolve({ ok: false, reason });
      }
      this.#next();
      return;
    }
    batch.forEach((m, i) => m.resolve({ ok: true, id: ids[i] }));
    this.#next();
  }

  #next(): void {
    this.#flushing = false;
    if (this.#queue.length > 0) this.#clock.setTimeout(() => this.#flush(), 0);
  }

  #release(recipient: string, sender: string, size: number): void {
    for (const [map, key] of [[this.#recipients, recipient], [this.#senders, sender]] as const) {
      const u = map.get(key);
      if (!u) continue;
      charge(u, -1, -size);
      if (u.count <= 0) map.delete(key);
    }
    charge(this.#total, -1, -size);
  }

  /**
   * Counts what is stored, per recipient, per sender and in all, from the table. `all()`, not
   * `iterate()`: the latter stops silently at a damaged page, and the counts would come out short.
   */
  #recount(): void {
    this.#recipients.clear();
    this.#senders.clear();
    this.#total.count = this.#total.bytes = 0;
    const sums = (column: string) =>
      this.#db.prepare(
        `SELECT ${column} AS key, count(*) AS count, sum(length(sealed)) AS bytes FROM mail ` +
          `GROUP BY ${column}`,
      ).all() as { key: string; count: number; bytes: number }[];
    for (const row of sums("recipient")) this.#recipients.set(row.key, usage(row));
    for (const row of sums("sender")) this.#senders.set(row.key, usage(row));
    for (const u of this.#recipients.values()) charge(this.#total, u.count, u.bytes);
  }
}

function usage(row: { count: number; bytes: number }): Usage {
  return { count: Number(row.count), bytes: Number(row.bytes) };
}

function charge(u: Usage, count: number, bytes: number): void {
  u.count += count;
  u.bytes += bytes;
}
