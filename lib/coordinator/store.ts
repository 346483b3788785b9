/**
 * What the coordinator keeps across restarts: its data directory (`p2p serve --data DIR`), the
 * one SQLite file in it (`coordinator.db`, schema in `schema.ts`) and its static X25519 key pair,
 * kept in that file. The rooms that persist something (names owned by keys, the mailbox) get the
 * open database handle from here; the key pair is what clients prove their keys against
 * (`lib/crypto/key_proof.ts`).
 *
 * Without a data directory (a coordinator started in-process, as the tests do) everything lives in
 * memory: a `:memory:` database and a fresh key pair, gone at close.
 *
 * @example
 * ```ts
 * import { openCoordinatorStore } from "./store.ts";
 *
 * const store = openCoordinatorStore({ dataDir: await Deno.makeTempDir() });
 * console.log(store.path, store.keyPair.publicKey.length); // ".../coordinator.db" 32
 * store.close();
 * ```
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { generateKeyPair, type KeyPair } from "../crypto/noise.ts";
import {
  damagedDatabase,
  DatabaseError,
  isDatabaseDamage,
  openDatabase,
} from "../store/database.ts";
import { COORDINATOR_MIGRATIONS } from "./schema.ts";

/** The database file's name in the data directory. */
export const DATABASE_FILE = "coordinator.db";

/** Options for {@linkcode openCoordinatorStore}. */
export interface CoordinatorStoreOptions {
  /** The data directory (created 0700 if missing); none: everything in memory. */
  dataDir?: string;
}

/** The coordinator's open database and static key pair. */
export interface CoordinatorStore {
  /** The database file, or `":memory:"`. */
  readonly path: string;
  /** The open database: each room prepares its statements on it. */
  readonly db: DatabaseSync;
  /** The coordinator's static X25519 key pair, made at the first start and kept since. */
  readonly keyPair: KeyPair;
  /** Closes the database (after the rooms have written what they hold). */
  close(): void;
}

/**
 * The default data directory: `$XDG_STATE_HOME/p2p` if that is set to an absolute path (as the XDG
 * spec requires); else `/var/lib/p2p` for root (a system service); else `$HOME/.local/state/p2p`.
 * Throws when none gives a directory. (`XDG_STATE_HOME` first, for root too: whoever sets it
 * means it, and tests run as root must not write in /var/lib.)
 *
 * @example
 * ```ts
 * import { defaultDataDir } from "./store.ts";
 *
 * defaultDataDir({ uid: 1000, getEnv: (n) => (n === "HOME" ? "/home/ada" : undefined) });
 * // "/home/ada/.local/state/p2p"
 * ```
 */
export function defaultDataDir(
  options: { uid?: number | null; getEnv?: (name: string) => string | undefined } = {},
): string {
  const uid = options.uid === undefined ? Deno.uid() : options.uid;
  const getEnv = options.getEnv ?? ((name) => Deno.env.get(name));
  const state = getEnv("XDG_STATE_HOME");
  if (state?.startsWith("/")) return join(state, "p2p");
  if (uid === 0) return "/var/lib/p2p";
  const home = getEnv("HOME");
  if (!home) {
    throw new DatabaseError(
      "Cannot find the data directory: neither XDG_STATE_HOME nor HOME is set; use --data DIR",
    );
  }
  return join(home, ".local", "state", "p2p");
}

/**
 * Opens the data directory's database (creating directory, file and key pair on first use) or,
 * without `dataDir`, an in-memory one. Throws {@linkcode DatabaseError} (naming the file and what
 * to do) for a file that is not a coordinator database of a schema this version knows.
 */
export function openCoordinatorStore(options: CoordinatorStoreOptions = {}): CoordinatorStore {
  const path = options.dataDir === undefined ? ":memory:" : join(options.dataDir, DATABASE_FILE);
  const db = openDatabase({ path, kind: "coordinator", migrations: COORDINATOR_MIGRATIONS });
  let keyPair: KeyPair;
  try {
    keyPair = loadOrCreateKeyPair(db);
  } catch (err) {
    db.close();
    if (isDatabaseDamage(err)) throw damagedDatabase(path, err);
    throw new DatabaseError(`Cannot read the coordinator's key from ${path}: ${err}`);
  }
  return { path, db, keyPair, close: () => db.close() };
}

function loadOrCreateKeyPair(db: DatabaseSync): KeyPair {
  const row = db.prepare("SELECT public_key, secret_key FROM server_key WHERE id = 1").get() as
    | { public_key: Uint8Array; secret_key: Uint8Array }
    | undefined;
  if (row !== undefined) {
    if (row.public_key.length !== 32 || row.secret_key.length !== 32) {
      throw new Error("the stored key pair is not 32 + 32 bytes");
    }
    return { publicKey: new Uint8Array(row.public_key), secretKey: new Uint8Array(row.secret_key) };
  }
  const keyPair = generateKeyPair();
  db.prepare("INSERT INTO server_key (id, public_key, secret_key) VALUES (1, ?, ?)")
    .run(keyPair.publicKey, keyPair.secretKey);
  return keyPair;
}
