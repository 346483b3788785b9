/**
 * The schema of the coordinator's database (`coordinator.db` in its data directory): one list of
 * migrations for the one file, so that every room that keeps something there (names owned by
 * keys, the mailbox) upgrades in one order. `COORDINATOR_MIGRATIONS[i]` takes the schema from
 * version i to i + 1 (`lib/store/database.ts` runs each in a transaction); a new room or a new
 * release appends a step and never edits one that has shipped.
 *
 * @example
 * ```ts
 * import { openDatabase } from "../store/database.ts";
 * import { COORDINATOR_MIGRATIONS } from "./schema.ts";
 *
 * const db = openDatabase({ path: ":memory:", kind: "coordinator", migrations: COORDINATOR_MIGRATIONS });
 * db.close();
 * ```
 * @module
 */

/** The coordinator database's migrations, in order. */
export const COORDINATOR_MIGRATIONS: readonly string[] = [
  // 0 → 1: the coordinator's static X25519 key pair (one row), and which key owns each name
  // (times in ms since the epoch).
  `CREATE TABLE server_key (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     public_key BLOB NOT NULL,
     secret_key BLOB NOT NULL
   );
   CREATE TABLE name_owner (
     name TEXT PRIMARY KEY,
     key TEXT NOT NULL,
     registered INTEGER NOT NULL,
     last_used INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];
