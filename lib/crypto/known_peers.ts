/**
 * Trust on first use (TOFU) for peers' long-term keys: the first key seen for a peer name is
 * pinned; later a different key is reported as `"changed"` and stays untrusted until the user
 * accepts it with {@linkcode KnownPeers.trust}.
 *
 * The store is `<configDir>/users/<userDirName(me)>/known_peers.json` (see `./identity.ts`: the
 * directory name is case-safe, and a directory of the earlier layout is moved there with the
 * store in it when the store is opened), written atomically (temporary file + rename) with mode
 * 0600, in this format:
 *
 * ```json
 * {
 *   "version": 1,
 *   "peers": [
 *     { "name": "bob", "key": "<32-byte key, unpadded base64url>", "since": "2025-01-31T12:00:00.000Z" }
 *   ]
 * }
 * ```
 *
 * `since` is when the key was pinned or last trusted. Like the identity file, a store with
 * permissions looser than 0600 is refused, since anyone able to edit it could swap a pinned key.
 *
 * @example
 * ```ts
 * import { KnownPeers } from "./known_peers.ts";
 *
 * const configDir = await Deno.makeTempDir();
 * const peers = await KnownPeers.open({ username: "alice", configDir });
 * const bobKey = new Uint8Array(32).fill(9);
 * if (peers.check("bob", bobKey) === "new") await peers.pin("bob", bobKey);
 * peers.check("bob", bobKey); // "match"
 * await Deno.remove(configDir, { recursive: true });
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { decodeKey, defaultConfigDir, encodeKey, openUserDir, userDir } from "./identity.ts";
import { equalBytes } from "../bytes.ts";
import { readPrivateJson, writePrivateJson } from "./private_json.ts";

const FILE_VERSION = 1;
const KNOWN_PEERS_FILE = "known_peers.json";

/**
 * Thrown when the store cannot be read or written (corrupt file, loose permissions, I/O error),
 * or when {@linkcode KnownPeers.pin} is asked to replace a different pinned key.
 *
 * @example
 * ```ts
 * import { KnownPeers, KnownPeersError } from "./known_peers.ts";
 *
 * const peers = await KnownPeers.open({ username: "alice", configDir: "/nonexistent" });
 * try {
 *   await peers.pin("bob", new Uint8Array(32)); // cannot create /nonexistent
 * } catch (e) {
 *   if (e instanceof KnownPeersError) console.error(e.message);
 *   else throw e;
 * }
 * ```
 */
export class KnownPeersError extends Error {
  /** Creates a KnownPeersError; `options.cause` keeps the underlying error if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KnownPeersError";
  }
}

/**
 * How a presented key compares with the pinned one: `"new"` (no key pinned for that name),
 * `"match"` (same key), `"changed"` (a different key is pinned: do not send until the user
 * accepts it).
 */
export type PeerStatus = "new" | "match" | "changed";

/**
 * A pinned peer.
 *
 * @example
 * ```ts
 * import type { KnownPeer } from "./known_peers.ts";
 *
 * const since = (p: KnownPeer): string => new Date(p.since).toISOString();
 * ```
 */
export interface KnownPeer {
  /** The peer's username. */
  readonly name: string;
  /** The pinned 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  /** When the key was pinned or last trusted, in ms since the epoch. */
  readonly since: number;
}

/**
 * Options for {@linkcode KnownPeers.open}.
 *
 * @example
 * ```ts
 * import type { KnownPeersOptions } from "./known_peers.ts";
 *
 * const options: KnownPeersOptions = { username: "alice", now: () => 0 };
 * ```
 */
export interface KnownPeersOptions {
  /** The local username whose store to open. */
  username: string;
  /** Config directory; default `defaultConfigDir()` from `./identity.ts`. */
  configDir?: string;
  /** Clock for `since` timestamps, in ms; default `Date.now`. */
  now?: () => number;
}

/**
 * The path of a local user's known-peers store.
 *
 * @throws {IdentityError} (from `./identity.ts`) if the username is unusable.
 *
 * @example
 * ```ts
 * import { knownPeersPath } from "./known_peers.ts";
 *
 * knownPeersPath("/home/alice/.config/p2p", "alice");
 * // "/home/alice/.config/p2p/users/alice/known_peers.json"
 * ```
 */
export function knownPeersPath(configDir: string, username: string): string {
  return join(userDir(configDir, username), KNOWN_PEERS_FILE);
}

/**
 * A local user's TOFU store of peer keys, kept in memory and saved on every change.
 *
 * @example
 * ```ts
 * import { KnownPeers } from "./known_peers.ts";
 *
 * const configDir = await Deno.makeTempDir();
 * const peers = await KnownPeers.open({ username: "alice", configDir });
 * await peers.pin("bob", new Uint8Array(32).fill(1));
 * peers.check("bob", new Uint8Array(32).fill(2)); // "changed": ask the user
 * await peers.trust("bob", new Uint8Array(32).fill(2)); // the user accepted the new key
 * await Deno.remove(configDir, { recursive: true });
 * ```
 */
export class KnownPeers {
  /** The store's file. */
  readonly path: string;
  readonly #peers: Map<string, KnownPeer>;
  readonly #now: () => number;
  #saving: Promise<void> = Promise.resolve();

  private constructor(path: string, peers: Map<string, KnownPeer>, now: () => number) {
    this.path = path;
    this.#peers = peers;
    this.#now = now;
  }

  /**
   * Opens a local user's store, empty if the file does not exist yet. A store of the earlier
   * directory layout is moved to the current one first (see `openUserDir` in `./identity.ts`).
   *
   * @throws {KnownPeersError} if the file is corrupt, has permissions looser than 0600, or
   * cannot be read.
   * @throws {IdentityError} (from `./identity.ts`) if the username is unusable or the earlier
   * directory cannot be moved.
   */
  static async open(options: KnownPeersOptions): Promise<KnownPeers> {
    const dir = await openUserDir(options.configDir ?? defaultConfigDir(), options.username);
    const path = join(dir, KNOWN_PEERS_FILE);
    const peers = await readStore(path);
    return new KnownPeers(path, peers, options.now ?? Date.now);
  }

  /** Compares `publicKey` with the key pinned for `name`. */
  check(name: string, publicKey: Uint8Array): PeerStatus {
    const pinned = this.#peers.get(name);
    if (!pinned) return "new";
    return equalBytes(pinned.publicKey, publicKey) ? "match" : "changed";
  }

  /** The pinned entry for `name`, if any. */
  get(name: string): KnownPeer | undefined {
    const peer = this.#peers.get(name);
    return peer && { ...peer, publicKey: peer.publicKey.slice() };
  }

  /**
   * Pins `publicKey` for `name` on first contact and saves the store; does nothing if that key
   * is already pinned.
   *
   * @throws {KnownPeersError} if a different key is pinned for `name` (use
   * {@linkcode KnownPeers.trust} once the user accepts the change), or the save fails.
   */
  async pin(name: string, publicKey: Uint8Array): Promise<void> {
    const status = this.check(name, publicKey);
    if (status === "match") return;
    if (status === "changed") {
      throw new KnownPeersError(
        `Cannot pin a key for ${JSON.stringify(name)}: a different key is already pinned; ` +
          `the user must accept the change first`,
      );
    }
    await this.#set(name, publicKey);
  }

  /**
   * Pins `publicKey` for `name`, replacing any previous key (the user accepted a change), and
   * saves the store.
   *
   * @throws {KnownPeersError} if the save fails.
   */
  async trust(name: string, publicKey: Uint8Array): Promise<void> {
    await this.#set(name, publicKey);
  }

  #set(name: string, publicKey: Uint8Array): Promise<void> {
    if (publicKey.length !== 32) {
      throw new KnownPeersError(
        `Cannot pin a key for ${JSON.stringify(name)}: length ${publicKey.length} is not 32`,
      );
    }
    this.#peers.set(name, { name, publicKey: publicKey.slice(), since: this.#now() });
    // Saves run one at a time and each writes the state as of its start, so the file always
    // ends with the latest state even when calls overlap.
    const save = this.#saving.then(() => this.#write());
    this.#saving = save.catch(() => {});
    return save;
  }

  async #write(): Promise<void> {
    const peers = [...this.#peers.values()].map((p) => ({
      name: p.name,
      key: encodeKey(p.publicKey),
      since: new Date(p.since).toISOString(),
    }));
    try {
      await writePrivateJson(this.path, { version: FILE_VERSION, peers }, { replace: true });
    } catch (error) {
      throw new KnownPeersError(`Cannot save known peers ${this.path}: ${error}`, {
        cause: error,
      });
    }
  }
}

async function readStore(path: string): Promise<Map<string, KnownPeer>> {
  // A store reset on error would silently drop every pin, so corruption is fatal.
  const corrupt = (why: string): KnownPeersError =>
    new KnownPeersError(`Cannot load known peers ${path}: ${why}; fix or delete the file`);
  const loose = (mode: string): KnownPeersError =>
    new KnownPeersError(
      `Cannot use known peers ${path}: its permissions ${mode} let other users change ` +
        `pinned keys; check its contents, then run "chmod 600 ${path}"`,
    );
  let record: Record<string, unknown> | null;
  try {
    record = await readPrivateJson(path, FILE_VERSION, { loose, corrupt });
  } catch (error) {
    if (error instanceof KnownPeersError) throw error;
    throw new KnownPeersError(`Cannot read known peers ${path}: ${error}`, { cause: error });
  }
  if (!record) return new Map();
  if (!Array.isArray(record.peers)) throw corrupt(`"peers" is not an array`);
  const peers = new Map<string, KnownPeer>();
  for (const [i, entry] of record.peers.entries()) {
    const { name, key, since } = (entry ?? {}) as Record<string, unknown>;
    const publicKey = typeof key === "string" ? decodeKey(key) : null;
    const time = typeof since === "string" ? Date.parse(since) : NaN;
    if (typeof name !== "string" || !publicKey || Number.isNaN(time)) {
      throw corrupt(`entry ${i} needs a string "name", a base64url "key" and an ISO "since"`);
    }
    if (peers.has(name)) throw corrupt(`${JSON.stringify(name)} appears twice`);
    peers.set(name, { name, publicKey, since: time });
  }
  return peers;
}
