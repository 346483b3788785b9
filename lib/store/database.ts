/**
 * Opens the SQLite files p2p keeps (a client's history, the coordinator's names and mailbox) the
 * one careful way: private to their owner, crash-safe, and never mistaken for another file.
 *
 * - The file is created with mode 0600 in a folder created 0700; a file whose own folder group
 *   or others can write in is refused (they could swap the file), as for keys. SQLite gives the
 *   `-wal` and `-shm` files the database's mode.
 * - Write-ahead logging: a process killed in the middle of a write leaves a database that opens,
 *   with every committed transaction in it.
 * - `PRAGMA application_id` says which kind of p2p file it is and `PRAGMA user_version` which
 *   schema: a file of another kind, another program's database, a corrupt file, or one written by
 *   a newer p2p is refused with a {@linkcode DatabaseError} that names the file and says what to
 *   do. Such a file is never written to, let alone replaced.
 * - `migrations[i]` takes the schema from version i to i+1, each in its own transaction, so a new
 *   release adds a step and older files catch up at the next open.
 *
 * @example
 * ```ts
 * import { openDatabase } from "./database.ts";
 *
 * const db = openDatabase({
 *   path: ":memory:",
 *   kind: "history",
 *   migrations: ["CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"],
 * });
 * db.prepare("INSERT INTO note (text) VALUES (?)").run("hi");
 * db.close();
 * ```
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { looseFolderModeSync } from "../crypto/private_json.ts";

/** The kinds of database p2p keeps, each with its own `application_id`. */
export type DatabaseKind = "history" | "coordinator" | "mailbox";

/** `application_id` of each kind: "p2p" in ASCII, then a letter for the kind. */
export const APPLICATION_IDS: Readonly<Record<DatabaseKind, number>> = {
  history: 0x70327068, // "p2ph"
  coordinator: 0x70327063, // "p2pc"
  mailbox: 0x7032706d, // "p2pm"
};

/** Options for {@linkcode openDatabase}. */
export interface DatabaseOptions {
  /** The file, or `":memory:"` for a database that lives and dies with the process. */
  path: string;
  kind: DatabaseKind;
  /** `migrations[i]`: the SQL taking the schema from version i to i + 1. */
  migrations: readonly string[];
  /**
   * `"full"` (default): a committed transaction survives a power cut, not only a crash of the
   * process. `"normal"`: faster; a power cut may lose the last transactions, never corrupt.
   */
  synchronous?: "full" | "normal";
}

/** A database file that cannot be used: what is wrong with which file, and what to do. */
export class DatabaseError extends Error {
  override name = "DatabaseError";
}

/** SQLite's result codes for a damaged file: `SQLITE_CORRUPT` and `SQLITE_NOTADB`. */
const DAMAGE_CODES = new Set([11, 26]);

/**
 * Whether `error`, thrown by `node:sqlite`, says the file is damaged. Opening reads only the
 * header: a damaged page further in shows up at the first statement that reads it.
 */
export function isDatabaseDamage(error: unknown): boolean {
  return DAMAGE_CODES.has((error as { errcode?: unknown } | null)?.errcode as number);
}

/**
 * The {@linkcode DatabaseError} for damage `error` found in `path` after it was opened: which
 * file, and what to do.
 *
 * @example
 * ```ts
 * import { damagedDatabase, isDatabaseDamage, openDatabase } from "./database.ts";
 *
 * const path = "/tmp/p2p-example/history.sqlite";
 * const db = openDatabase({ path, kind: "history", migrations: ["CREATE TABLE note (t TEXT)"] });
 * try {
 *   db.prepare("SELECT * FROM note").all();
 * } catch (error) {
 *   throw isDatabaseDamage(error) ? damagedDatabase(path, error) : error;
 * }
 * ```
 */
export function damagedDatabase(path: string, error: unknown): DatabaseError {
  return new DatabaseError(
    `Cannot use ${path}: it is damaged (${(error as Error).message}). Move it away (or restore ` +
      `it from a backup) and start again; the file was left as it was`,
    { cause: error },
  );
}

const KIND_BY_ID = new Map(Object.entries(APPLICATION_IDS).map(([k, v]) => [v, k]));

/**
 * Opens (creating if missing) the database at `options.path`, checks that it is a p2p database
 * of `options.kind` that this version understands, and brings its schema up to date. Throws
 * {@linkcode DatabaseError} when it is not usable; the file is then left as it was.
 */
export function openDatabase(options: DatabaseOptions): DatabaseSync {
  const { path, kind, migrations } = options;
  const memory = path === ":memory:";
  if (!memory) prepareFile(path);
  let db: DatabaseSync | undefined;
  const refuse = (why: string, todo: string): never => {
    db?.close();
    throw new DatabaseError(`Cannot open ${path}: ${why}. ${todo}; the file was left untouched`);
  };
  let id: number;
  let version: number;
  try {
    db = new DatabaseSync(path);
    // Reading the header is what fails on a file that is not a SQLite database.
    id = pragma(db, "application_id");
    version = pragma(db, "user_version");
  } catch (err) {
    const why = (err as Error).message;
    // Another process holding the file exclusively is not damage: moving the file is wrong advice.
    if (/database is locked/.test(why)) {
      return refuse(`another process is using it (${why})`, "Stop that process first");
    }
    return refuse(
      `it is not a readable SQLite database (${why})`,
      "Move it away (or restore it from a backup) and start again",
    );
  }
  const empty = id === 0 && version === 0 && !hasTables(db);
  if (!empty && id !== APPLICATION_IDS[kind]) {
    const other = KIND_BY_ID.get(id);
    refuse(
      other
        ? `it is a p2p ${other} database, not a ${kind} database`
        : `it is not a p2p ${kind} database (application_id ${id})`,
      "Point p2p at the right file or folder, or move this one away",
    );
  }
  if (version > migrations.length) {
    refuse(
      `it was written by a newer p2p (schema ${version}; this version knows up to ${migrations.length})`,
      "Upgrade p2p",
    );
  }
  try {
    if (!memory) {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    }
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA busy_timeout = 5000");
    for (let v = version; v < migrations.length; v++) {
      transaction(db, () => {
        db.exec(migrations[v]);
        db.exec(`PRAGMA application_id = ${APPLICATION_IDS[kind]}`);
        db.exec(`PRAGMA user_version = ${v + 1}`);
      }, "immediate");
    }
  } catch (err) {
    return refuse(
      `its schema could not be brought up to date (${(err as Error).message})`,
      "Check the disk (space, permissions) and try again",
    );
  }
  return db;
}

/**
 * Runs `fn` in a transaction: committed if it returns, rolled back if it throws (the error goes
 * on). Inside a transaction already, `fn` joins it, so that writes made of smaller writes commit
 * once. `immediate` takes the write lock at the start, as a batch that must not wait midway does.
 *
 * @example
 * ```ts
 * import { openDatabase, transaction } from "./database.ts";
 *
 * const db = openDatabase({ path: ":memory:", kind: "history", migrations: ["CREATE TABLE t (x)"] });
 * transaction(db, () => {
 *   db.prepare("INSERT INTO t VALUES (1)").run();
 *   db.prepare("INSERT INTO t VALUES (2)").run();
 * });
 * ```
 */
export function transaction<T>(
  db: DatabaseSync,
  fn: () => T,
  mode: "deferred" | "immediate" = "deferred",
): T {
  if (db.isTransaction) return fn();
  db.exec(mode === "immediate" ? "BEGIN IMMEDIATE" : "BEGIN");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

function pragma(db: DatabaseSync, name: string): number {
  const row = db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined;
  return Number(row?.[name] ?? 0);
}

function hasTables(db: DatabaseSync): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master LIMIT 1").get() !== undefined;
}

/** Creates the folder (0700) and an empty file (0600) if missing; refuses a loose folder. */
function prepareFile(path: string): void {
  const folder = dirname(path);
  Deno.mkdirSync(folder, { recursive: true, mode: 0o700 });
  const loose = looseFolderModeSync(folder);
  if (loose) {
    throw new DatabaseError(
      `Cannot open ${path}: its folder ${folder} has mode ${loose}, so others could replace the ` +
        `database. Fix it with: chmod go-w ${folder}`,
    );
  }
  try {
    Deno.writeFileSync(path, new Uint8Array(), { createNew: true, mode: 0o600 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) {
      throw new DatabaseError(`Cannot create ${path}: ${(err as Error).message}`);
    }
  }
}
