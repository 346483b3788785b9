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
  // 1 → 2: contacts (lib/coordinator/contacts.ts). A contact is a pair of (name, key), stored
  // once with a < b; a request waits for its recipient's answer; a block holds back the blocked
  // name's requests (whatever its key). Times in ms since the epoch.
  `CREATE TABLE contact (
     a TEXT NOT NULL,
     a_key TEXT NOT NULL,
     b TEXT NOT NULL,
     b_key TEXT NOT NULL,
     since INTEGER NOT NULL,
     PRIMARY KEY (a, b)
   ) WITHOUT ROWID;
   CREATE TABLE contact_request (
     recipient TEXT NOT NULL,
     sender TEXT NOT NULL,
     sender_key TEXT NOT NULL,
     note TEXT NOT NULL,
     sent INTEGER NOT NULL,
     PRIMARY KEY (recipient, sender)
   ) WITHOUT ROWID;
   CREATE TABLE contact_block (
     blocker TEXT NOT NULL,
     blocker_key TEXT NOT NULL,
     blocked TEXT NOT NULL,
     PRIMARY KEY (blocker, blocked)
   ) WITHOUT ROWID;`,
];
