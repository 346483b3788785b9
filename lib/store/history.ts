/**
 * The client's history: every message a local user sent and received, in an SQLite file
 * (`$XDG_DATA_HOME/p2p/users/<dir>/history.sqlite`, default `~/.local/share/p2p`, mode 0600,
 * opened by `database.ts`), encrypted at rest.
 *
 * Each row keeps in the clear only what the store needs to work: the message's uid, a tag of the
 * peer's name (`history_key.ts`), direction, group flag, send time, delivery state and path. The
 * peer's name and the text are sealed together, and an `undelivered` reason on its own
 * (ChaCha20-Poly1305 under the history key). Searching decrypts in memory. A received message's
 * uid is unique per peer, so one recorded twice is refused: that is how duplicates are dropped.
 * Our own messages are not indexed (one page per write): their fate is written by seq.
 *
 * Writes are grouped (group commit): a record is queued in memory and the queue is sealed and
 * written in one transaction `batchMs` after its first entry (default 20 ms), when it holds
 * {@linkcode MAX_BATCH} entries, before any read, and at `close()`. That takes sealing and the
 * SQLite write off a message's round trip, and one commit serves many rows. A kill -9 or a crash
 * loses at most the rows queued in the last window; a transaction is atomic in WAL mode, so the
 * file is left as it was before a batch or after it. A batch that fails (a full disk) is retried
 * row by row, and every row that still cannot be written is reported to `onError`.
 *
 * @example
 * ```ts
 * const history = await History.open({ username: "alice", dataDir, configDir });
 * history.addOutgoing({ uid, peer: "bob", group: false, time: Date.now(), text: "hi" });
 * history.settle("bob", uid, { state: "delivered", path: "direct" });
 * history.flush(); // written now, not within batchMs; reads flush too
 * history.conversation("bob", 10); // [{ uid, peer: "bob", outgoing: true, text: "hi", … }]
 * history.close();
 * ```
 * @module
 */
import { join } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { type Clock, realClock, type TimerId } from "../clock.ts";
import { fromHex, openUserDir, toHex, userDirName } from "../crypto/identity.ts";
import { defaultConfigDir } from "../crypto/identity.ts";
import { damagedDatabase, isDatabaseDamage, openDatabase, transaction } from "./database.ts";
import {
  HistoryError,
  type HistoryKeys,
  historyKeys,
  loadKeyFile,
  openValue,
  passphraseKey,
  peerTag,
  SCRYPT_PARAMS,
  sealValue,
} from "./history_key.ts";
import type {
  DeliveryState,
  IncomingRecord,
  MessageLog,
  MessagePath,
  OutgoingRecord,
  Settlement,
  StoredMessage,
} from "./message_log.ts";

export { HistoryError } from "./history_key.ts";

/** Options for {@linkcode History.open}. */
export interface HistoryOptions {
  /** The local user whose history it is. */
  username: string;
  /** Where histories live; default {@linkcode defaultDataDir}(). */
  dataDir?: string;
  /** Where the identity (and the history key file) lives; default `$XDG_CONFIG_HOME/p2p`. */
  configDir?: string;
  /** Derive the key from this passphrase instead of keeping a key file. */
  passphrase?: string;
  /**
   * `"normal"` (default): a write survives the process being killed, and a power cut may lose
   * the last ones (never corrupt the file). `"full"`: each write waits for the disk.
   */
  synchronous?: "normal" | "full";
  /**
   * The longest a record waits in memory before its batch is written, ms (default
   * {@linkcode DEFAULT_BATCH_MS}): what a crash may lose. 0 writes each record at once.
   */
  batchMs?: number;
  /**
   * Told of a batched write that failed (a full disk, a damaged page), naming what was not kept
   * (default: written to stderr). The chat shows it as an `error`.
   */
  onError?: (error: Error) => void;
  /** Times the batches; default {@linkcode realClock}. */
  clock?: Clock;
}

/** How long a record waits to be written with others, by default: what a crash may lose, ms. */
export const DEFAULT_BATCH_MS = 20;
/** Most records in one batch: a larger queue is written at once (a burst of `/all` copies…). */
export const MAX_BATCH = 512;

const MIGRATIONS = [
  `CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
   CREATE TABLE messages (
     seq INTEGER PRIMARY KEY,
     uid BLOB NOT NULL,
     peer BLOB NOT NULL,
     outgoing INTEGER NOT NULL,
     grp INTEGER NOT NULL,
     time INTEGER NOT NULL,
     received INTEGER,
     state TEXT NOT NULL,
     path TEXT,
     body BLOB NOT NULL,
     reason BLOB
   );
   CREATE UNIQUE INDEX messages_uid ON messages (peer, outgoing, uid);`,
  // Sealed values start with a format byte (history_key.ts): those written so far are format 1.
  `UPDATE messages SET body = CAST(X'01' || body AS BLOB), reason = CAST(X'01' || reason AS BLOB);
   UPDATE meta SET value = CAST(X'01' || value AS BLOB) WHERE name = 'check';`,
  // Only received messages need finding by uid (to drop a copy): our own are settled by seq, so
  // recording one writes one page (the table's last), not two, before it is reported `sent`.
  `DROP INDEX messages_uid;
   CREATE UNIQUE INDEX messages_received ON messages (peer, uid) WHERE outgoing = 0;`,
];

const CHECK_TEXT = "p2p history key check";
/** Rows `search` decrypts per read. */
const SEARCH_PAGE = 500;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The default data directory: `$XDG_DATA_HOME/p2p` if that variable is an absolute path, else
 * `$HOME/.local/share/p2p`.
 *
 * @example
 * ```ts
 * defaultDataDir((name) => ({ HOME: "/home/alice" } as Record<string, string>)[name]);
 * // "/home/alice/.local/share/p2p"
 * ```
 */
export function defaultDataDir(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string {
  const xdg = getEnv("XDG_DATA_HOME");
  if (xdg && (xdg.startsWith("/") || /^[A-Za-z]:[\\/]/.test(xdg))) return join(xdg, "p2p");
  const home = getEnv("HOME") || getEnv("USERPROFILE");
  if (!home) {
    throw new HistoryError(
      "Cannot find the data directory: neither XDG_DATA_HOME nor HOME is set; use --data DIR",
    );
  }
  return join(home, ".local", "share", "p2p");
}

/** The history file of `username` under `dataDir`. */
export function historyPath(dataDir: string, username: string): string {
  return join(dataDir, "users", userDirName(username), "history.sqlite");
}

interface Row {
  seq: number;
  uid: Uint8Array;
  outgoing: number;
  grp: number;
  time: number;
  state: string;
  path: string | null;
  body: Uint8Array;
  reason: Uint8Array | null;
}

const COLUMNS = "seq, uid, outgoing, grp, time, state, path, body, reason";

/** A local user's encrypted history in SQLite. */
export class History implements MessageLog {
  readonly persistent = true;
  /** The database file. */
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #keys: HistoryKeys;
  /** Peer tags computed so far: an HMAC per write adds up on a busy chat. */
  readonly #tags = new Map<string, Uint8Array>();
  /** Seq of our messages recorded or found pending in this run, not settled yet, by uid. */
  readonly #unsettled = new Map<string, number>();
  readonly #batchMs: number;
  readonly #onError: (error: Error) => void;
  readonly #clock: Clock;
  /** Writes waiting for the next batch, in order, each with what it keeps (for an error). */
  readonly #queue: { what: string; run: () => void }[] = [];
  /** `uid peer` of received messages in the queue: a copy is found before it is written. */
  readonly #queuedIn = new Set<string>();
  /** Called once the queue as it stands is written (or reported not kept): see `flushed`. */
  readonly #waiters: (() => void)[] = [];
  #timer: TimerId | undefined;
  readonly #sql: Record<
    | "addOut"
    | "addIn"
    | "hasIn"
    | "settle"
    | "settleScan"
    | "pending"
    | "conversation"
    | "contacts"
    | "older",
    StatementSync
  >;

  private constructor(
    db: DatabaseSync,
    path: string,
    keys: HistoryKeys,
    options: HistoryOptions,
  ) {
    this.#db = db;
    this.path = path;
    this.#keys = keys;
    this.#batchMs = options.batchMs ?? DEFAULT_BATCH_MS;
    this.#onError = options.onError ?? ((error) => console.error(error.message));
    this.#clock = options.clock ?? realClock;
    this.#sql = {
      addOut: db.prepare(
        "INSERT INTO messages (uid, peer, outgoing, grp, time, state, body) " +
          "VALUES (?, ?, 1, ?, ?, 'sending', ?)",
      ),
      addIn: db.prepare(
        "INSERT OR IGNORE INTO messages (uid, peer, outgoing, grp, time, received, state, " +
          "path, body) VALUES (?, ?, 0, ?, ?, ?, 'received', ?, ?)",
      ),
      hasIn: db.prepare("SELECT 1 FROM messages WHERE peer = ? AND uid = ? AND outgoing = 0"),
      settle: db.prepare(
        "UPDATE messages SET state = ?, reason = ?, path = coalesce(?, path) " +
          "WHERE seq = ? AND peer = ? AND outgoing = 1 AND uid = ?",
      ),
      // A message not recorded in this run: found by a scan (no index on our messages' uids).
      settleScan: db.prepare(
        "UPDATE messages SET state = ?, reason = ?, path = coalesce(?, path) " +
          "WHERE peer = ? AND outgoing = 1 AND uid = ?",
      ),
      pending: db.prepare(
        `SELECT ${COLUMNS} FROM messages WHERE outgoing = 1 AND state = 'sending' ORDER BY seq`,
      ),
      conversation: db.prepare(
        `SELECT ${COLUMNS} FROM messages WHERE peer = ? ORDER BY seq DESC LIMIT ?`,
      ),
      contacts: db.prepare(
        "SELECT peer FROM messages GROUP BY peer ORDER BY max(seq) DESC LIMIT ?",
      ),
      older: db.prepare(
        `SELECT ${COLUMNS} FROM messages WHERE seq < ? ORDER BY seq DESC LIMIT ${SEARCH_PAGE}`,
      ),
    };
  }

  /**
   * Opens (creating on first use) the history of `options.username`. The key is the key file
   * beside the identity, created with the history, or comes from `options.passphrase`, as the
   * history was created; the history remembers which.
   *
   * @throws {HistoryError} if the passphrase is missing or wrong, or the key file is missing or
   * unusable; `DatabaseError` (database.ts) if the file is not a p2p history or is corrupt. Reads
   * and writes later throw `DatabaseError` for a damaged page, `HistoryError` otherwise.
   */
  static async open(options: HistoryOptions): Promise<History> {
    const path = historyPath(options.dataDir ?? defaultDataDir(), options.username);
    const configDir = options.configDir ?? defaultConfigDir();
    const keyPath = join(await openUserDir(configDir, options.username), "history_key.json");
    const inUse = (error: unknown) =>
      new HistoryError(
        `Cannot open history ${path}: another p2p chat as ${options.username} is using it`,
        { cause: error },
      );
    let db: DatabaseSync;
    try {
      db = openDatabase({
        path,
        kind: "history",
        migrations: MIGRATIONS,
        synchronous: options.synchronous ?? "normal",
      });
    } catch (error) {
      if (/database is locked/.test(String(error))) throw inUse(error);
      throw error;
    }
    try {
      // One process at a time (the coordinator lets one chat log in per name anyway): SQLite
      // then keeps its WAL index in memory and takes no file lock per write, which is most of
      // the cost of a small write.
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      // Take the lock now (a write transaction keeps it): a second chat is refused at once.
      db.exec("PRAGMA busy_timeout = 0");
      try {
        db.exec("BEGIN IMMEDIATE");
        db.exec("COMMIT");
      } catch (error) {
        throw /database is locked/.test(String(error)) ? inUse(error) : error;
      }
      const keys = await History.#unlock(db, path, keyPath, options.passphrase);
      return new History(db, path, keys, options);
    } catch (error) {
      db.close();
      // Opening read only the header: a damaged page is found by the first reads, here.
      throw isDatabaseDamage(error) ? damagedDatabase(path, error) : error;
    }
  }

  static async #unlock(
    db: DatabaseSync,
    path: string,
    keyPath: string,
    passphrase: string | undefined,
  ): Promise<HistoryKeys> {
    const meta = (name: string): Uint8Array | undefined =>
      (db.prepare("SELECT value FROM meta WHERE name = ?").get(name) as
        | { value: Uint8Array }
        | undefined)?.value;
    let source = meta("source");
    if (source === undefined) {
      // A new history: its key source is chosen now, once (a concurrent opener's choice wins).
      const chosen = passphrase === undefined ? "file" : "passphrase";
      const salt = crypto.getRandomValues(new Uint8Array(16));
      const key = chosen === "file"
        ? (await loadKeyFile(keyPath, true))!
        : passphraseKey(passphrase!, salt);
      const check = sealValue(
        historyKeys(key),
        encoder.encode(CHECK_TEXT),
        encoder.encode("check"),
      );
      const put = db.prepare("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)");
      try {
        transaction(db, () => {
          if (meta("source") !== undefined) return;
          put.run("source", encoder.encode(chosen));
          put.run("salt", salt);
          put.run("scrypt", encoder.encode(JSON.stringify(SCRYPT_PARAMS)));
          put.run("check", check);
        }, "immediate");
      } catch (error) {
        throw new HistoryError(`Cannot set up history ${path}: ${error}`, { cause: error });
      }
      source = meta("source")!;
    }
    const kind = decoder.decode(source);
    let key: Uint8Array;
    if (kind === "passphrase") {
      if (passphrase === undefined) {
        throw new HistoryError(
          `History ${path} is protected by a passphrase: set P2P_PASSPHRASE or use ` +
            `--passphrase (or --no-history to chat without it)`,
        );
      }
      const params = JSON.parse(decoder.decode(meta("scrypt")!));
      key = passphraseKey(passphrase, meta("salt")!, params);
    } else {
      if (passphrase !== undefined) {
        throw new HistoryError(
          `History ${path} is encrypted with the key file ${keyPath}, not a passphrase: ` +
            `unset P2P_PASSPHRASE and leave out --passphrase`,
        );
      }
      const found = await loadKeyFile(keyPath, false);
      if (!found) {
        throw new HistoryError(
          `Cannot read history ${path}: its key file ${keyPath} is missing; restore it from a ` +
            `backup, or move the history away to start a new one`,
        );
      }
      key = found;
    }
    const keys = historyKeys(key);
    const check = openValue(keys, meta("check")!, encoder.encode("check"));
    if (!check || decoder.decode(check) !== CHECK_TEXT) {
      throw new HistoryError(
        kind === "passphrase"
          ? `Cannot read history ${path}: wrong passphrase`
          : `Cannot read history ${path}: the key file ${keyPath} does not open it; restore ` +
            `the right key file, or move the history away to start a new one`,
      );
    }
    return keys;
  }

  addOutgoing(msg: OutgoingRecord): void {
    const uid = uidBytes(msg.uid);
    this.#enqueue(`our message ${msg.uid} to ${msg.peer}`, () => {
      const { lastInsertRowid } = this.#sql.addOut.run(
        uid,
        this.#tag(msg.peer),
        msg.group ? 1 : 0,
        msg.time,
        this.#sealBody(uid, true, msg.peer, msg.text),
      );
      this.#unsettled.set(msg.uid, Number(lastInsertRowid));
    });
  }

  settle(peer: string, uid: string, outcome: Settlement): void {
    const id = uidBytes(uid);
    this.#enqueue(`the ${outcome.state} state of our message ${uid} to ${peer}`, () => {
      const reason = outcome.reason === undefined
        ? null
        : sealValue(this.#keys, encoder.encode(outcome.reason), aad(id, true, 1));
      const seq = this.#unsettled.get(uid);
      this.#unsettled.delete(uid);
      const args = [outcome.state, reason, outcome.path ?? null] as const;
      const found = seq !== undefined &&
        this.#sql.settle.run(...args, seq, this.#tag(peer), id).changes > 0;
      if (!found) this.#sql.settleScan.run(...args, this.#tag(peer), id);
    });
  }

  addIncoming(msg: IncomingRecord): boolean {
    const uid = uidBytes(msg.uid);
    const key = `${msg.uid} ${msg.peer}`;
    if (this.#queuedIn.has(key)) return false;
    if (this.#read(() => this.#sql.hasIn.get(this.#tag(msg.peer), uid)) !== undefined) {
      return false;
    }
    this.#queuedIn.add(key);
    const received = Date.now();
    this.#enqueue(`the message ${msg.uid} from ${msg.peer}`, () => {
      this.#sql.addIn.run(
        uid,
        this.#tag(msg.peer),
        msg.group ? 1 : 0,
        msg.time,
        received,
        msg.path,
        this.#sealBody(uid, false, msg.peer, msg.text),
      );
    });
    return true;
  }

  pending(): StoredMessage[] {
    this.flush();
    return this.#read(() => this.#sql.pending.all() as unknown as Row[]).map((r) => {
      const msg = this.#message(r);
      this.#unsettled.set(msg.uid, r.seq);
      return msg;
    });
  }

  conversation(peer: string, limit: number): StoredMessage[] {
    this.flush();
    const rows = this.#read(() =>
      this.#sql.conversation.all(this.#tag(peer), limit) as unknown as Row[]
    );
    return rows.reverse().map((r) => this.#message(r));
  }

  recent(options: { contacts: number; perContact: number }): StoredMessage[] {
    this.flush();
    const rows = this.#read(() => {
      const rows: Row[] = [];
      for (const { peer } of this.#sql.contacts.all(options.contacts) as { peer: Uint8Array }[]) {
        rows.push(...this.#sql.conversation.all(peer, options.perContact) as unknown as Row[]);
      }
      return rows;
    });
    return rows.sort((a, b) => a.seq - b.seq).map((r) => this.#message(r));
  }

  search(text: string, limit: number): StoredMessage[] {
    const needle = text.toLowerCase();
    const found: StoredMessage[] = [];
    this.flush();
    // Pages with all(), not iterate(): Deno's iterate() ends quietly at a damaged page, and the
    // search would say "nothing found" instead of that the file is damaged.
    let before = Number.MAX_SAFE_INTEGER;
    while (found.length < limit) {
      const rows = this.#read(() => this.#sql.older.all(before) as unknown as Row[]);
      for (const row of rows) {
        const msg = this.#message(row);
        if (msg.text.toLowerCase().includes(needle) && found.length < limit) found.push(msg);
      }
      if (rows.length < SEARCH_PAGE) break;
      before = rows[rows.length - 1].seq;
    }
    return found.reverse();
  }

  /**
   * Writes the queued records now, in one transaction. If it fails, each is tried alone, and
   * those that still fail are reported to `onError` (one error naming them all): not kept, and
   * said so, never dropped silently.
   */
  flush(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length === 0) return;
    const batch = this.#queue.splice(0);
    this.#queuedIn.clear();
    try {
      this.#write(batch);
    } finally {
      for (const waiter of this.#waiters.splice(0)) waiter();
    }
  }

  flushed(callback: () => void): void {
    if (this.#queue.length === 0) callback();
    else this.#waiters.push(callback);
  }

  #write(batch: { what: string; run: () => void }[]): void {
    const lost: string[] = [];
    let cause: unknown;
    if (!this.#db.isOpen) {
      lost.push(...batch.map((op) => op.what));
      cause = "the history is closed";
    } else {
      try {
        transaction(this.#db, () => {
          for (const op of batch) op.run();
        });
        return;
      } catch {
        // Rolled back: some row cannot be written (a full disk?). Keep what can be kept.
      }
      for (const op of batch) {
        try {
          op.run();
        } catch (error) {
          lost.push(op.what);
          cause ??= error;
        }
      }
    }
    if (lost.length === 0) return;
    const shown = lost.length > 3 ? [...lost.slice(0, 3), `${lost.length - 3} more`] : lost;
    const error = isDatabaseDamage(cause)
      ? damagedDatabase(this.path, cause)
      : new HistoryError(`Cannot write to history ${this.path}: ${cause}`, { cause });
    this.#onError(
      new HistoryError(`Not kept in the history: ${shown.join(", ")}. ${error.message}`, {
        cause: error,
      }),
    );
  }

  /** Writes what is queued, then closes the file. */
  close(): void {
    if (!this.#db.isOpen) return;
    try {
      this.flush();
    } finally {
      this.#db.close();
    }
  }

  /** Queues a write for the next batch, which is written within `batchMs`. */
  #enqueue(what: string, run: () => void): void {
    this.#queue.push({ what, run });
    if (this.#queue.length >= MAX_BATCH || this.#batchMs <= 0) this.flush();
    else this.#timer ??= this.#clock.setTimeout(() => this.flush(), this.#batchMs);
  }

  #tag(peer: string): Uint8Array {
    let tag = this.#tags.get(peer);
    if (!tag) {
      tag = peerTag(this.#keys, peer);
      if (this.#tags.size >= 10_000) this.#tags.clear();
      this.#tags.set(peer, tag);
    }
    return tag;
  }

  /** Runs a read, turning a damaged page into a DatabaseError naming the file and what to do. */
  #read<T>(run: () => T): T {
    try {
      return run();
    } catch (error) {
      throw isDatabaseDamage(error) ? damagedDatabase(this.path, error) : error;
    }
  }

  #sealBody(uid: Uint8Array, outgoing: boolean, peer: string, text: string): Uint8Array {
    return sealValue(
      this.#keys,
      encoder.encode(JSON.stringify([peer, text])),
      aad(uid, outgoing, 0),
    );
  }

  #message(row: Row): StoredMessage {
    const outgoing = row.outgoing === 1;
    const body = openValue(this.#keys, row.body, aad(row.uid, outgoing, 0));
    let peer = "?";
    let text = "(this line cannot be decrypted: the history file was changed)";
    if (body) [peer, text] = JSON.parse(decoder.decode(body));
    const msg: StoredMessage = {
      uid: toHex(row.uid),
      peer,
      outgoing,
      group: row.grp === 1,
      time: row.time,
      text,
      state: row.state as DeliveryState,
    };
    if (row.path !== null) msg.path = row.path as MessagePath;
    if (row.reason !== null) {
      const reason = openValue(this.#keys, row.reason, aad(row.uid, outgoing, 1));
      msg.reason = reason ? decoder.decode(reason) : "(cannot be decrypted)";
    }
    return msg;
  }
}

function uidBytes(uid: string): Uint8Array {
  const bytes = fromHex(uid);
  if (!bytes || bytes.length !== 16) throw new HistoryError(`Invalid message uid ${uid}`);
  return bytes;
}

/** Associated data of a sealed value: the row's uid and direction, and which field it is. */
function aad(uid: Uint8Array, outgoing: boolean, field: number): Uint8Array {
  const out = new Uint8Array(uid.length + 2);
  out.set(uid);
  out[uid.length] = outgoing ? 1 : 0;
  out[uid.length + 1] = field;
  return out;
}
