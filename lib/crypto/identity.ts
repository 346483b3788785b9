/**
 * Long-term identities: one X25519 key pair per local username, created on first run and kept
 * in the user's config directory, plus the human-checkable forms of public keys (fingerprint,
 * safety number) and their text encoding.
 *
 * Layout: `<configDir>/users/<userDirName(username)>/identity.json`, where `configDir` is
 * `$XDG_CONFIG_HOME/p2p` or `~/.config/p2p`. Directories are created with mode 0700 and the
 * identity file with mode 0600. Directory names are lowercase escapes of the username (`Bob` is
 * `%42ob`), so that `Bob` and `bob` stay apart on case-insensitive file systems (macOS,
 * Windows); a directory of the earlier layout (`users/Bob`) is moved on first use (see
 * {@linkcode openUserDir}). The file is JSON:
 *
 * ```json
 * { "version": 1, "username": "alice", "publicKey": "<base64url>", "secretKey": "<base64url>" }
 * ```
 *
 * Permission policy: an identity file readable or writable by group or others is **refused**
 * (an {@linkcode IdentityError} asking to `chmod 600` it), as ssh does for private keys, since
 * the secret key may already have leaked and a silent warning is easy to miss; so is a config,
 * `users` or user directory that group or others may write in (`chmod go-w`). The checks are
 * skipped on Windows, which has no POSIX modes.
 *
 * @example
 * ```ts
 * import { fingerprint, loadOrCreateIdentity } from "./identity.ts";
 *
 * const configDir = await Deno.makeTempDir(); // omit to use ~/.config/p2p
 * const me = await loadOrCreateIdentity({ username: "alice", configDir });
 * console.log(`Your key: ${fingerprint(me.publicKey)}`);
 * await Deno.remove(configDir, { recursive: true });
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes, hexToBytes } from "@noble/hashes/utils.js";
import { decodeBase64url, encodeBase64url } from "../protocol/base64url.ts";
import type { KeyPair } from "./noise.ts";
import { equalBytes } from "../bytes.ts";
import { looseFolderMode, readPrivateJson, writePrivateJson } from "./private_json.ts";

const KEY_LEN = 32;
const FILE_VERSION = 1;
// Keeps the encoded name well below the usual 255-byte limit on a path segment.
const MAX_DIR_NAME_LEN = 200;

/**
 * Thrown when an identity cannot be loaded or created: corrupt file, too-open permissions,
 * unusable username, or no config directory.
 *
 * @example
 * ```ts
 * import { IdentityError, loadOrCreateIdentity } from "./identity.ts";
 *
 * try {
 *   await loadOrCreateIdentity({ username: "", configDir: "/nonexistent" });
 * } catch (e) {
 *   if (e instanceof IdentityError) console.error(e.message);
 *   else throw e;
 * }
 * ```
 */
export class IdentityError extends Error {
  /** Creates an IdentityError; `options.cause` keeps the underlying error if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "IdentityError";
  }
}

/**
 * A local user's long-term key pair and where it is stored.
 *
 * @example
 * ```ts
 * import type { Identity } from "./identity.ts";
 *
 * const show = (id: Identity): string => `${id.username} (${id.path})`;
 * ```
 */
export interface Identity extends KeyPair {
  /** The local username this key pair belongs to. */
  readonly username: string;
  /** This user's directory, `<configDir>/users/<userDirName(username)>`. */
  readonly dir: string;
  /** The identity file. */
  readonly path: string;
  /** Whether this call created the key pair (first run for this username). */
  readonly created: boolean;
}

/**
 * Options for {@linkcode loadOrCreateIdentity}.
 *
 * @example
 * ```ts
 * import type { IdentityOptions } from "./identity.ts";
 *
 * const options: IdentityOptions = { username: "alice", configDir: "/tmp/p2p-test" };
 * ```
 */
export interface IdentityOptions {
  /** The local username. */
  username: string;
  /** Config directory; default {@linkcode defaultConfigDir}(). */
  configDir?: string;
}

/**
 * The default config directory: `$XDG_CONFIG_HOME/p2p` if that variable is an absolute path
 * (as the XDG spec requires), else `$HOME/.config/p2p` (`%USERPROFILE%` on Windows).
 *
 * @param getEnv reads an environment variable; default `Deno.env.get`.
 * @throws {IdentityError} if neither variable gives a directory.
 *
 * @example
 * ```ts
 * import { defaultConfigDir } from "./identity.ts";
 *
 * defaultConfigDir((name) => ({ HOME: "/home/alice" } as Record<string, string>)[name]);
 * // "/home/alice/.config/p2p"
 * ```
 */
export function defaultConfigDir(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string {
  const xdg = getEnv("XDG_CONFIG_HOME");
  if (xdg && isAbsolute(xdg)) return join(xdg, "p2p");
  const home = getEnv("HOME") || getEnv("USERPROFILE");
  if (!home) {
    throw new IdentityError(
      "Cannot find the config directory: neither XDG_CONFIG_HOME nor HOME is set",
    );
  }
  return join(home, ".config", "p2p");
}

function isAbsolute(path: string): boolean {
  return path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path);
}

/** Windows device names: a file or directory cannot be called that, in any case. */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/;

function percent(byte: number): string {
  return `%${byte.toString(16).padStart(2, "0")}`;
}

/**
 * The directory name for a username: its UTF-8 bytes, each one other than `a`–`z`, `0`–`9`, `-`
 * and `_` written `%xx` in lowercase hex (`Bob` is `%42ob`). Distinct usernames get distinct
 * names, and as the names hold no capital letter, names that differ only in case never occur:
 * two users never share a directory on a case-insensitive file system. A name is never `.`,
 * `..` or a Windows device name (`con`, `nul`, `com1`…: the last character is escaped).
 *
 * @throws {IdentityError} if the username is empty, not well-formed Unicode, or too long.
 *
 * @example
 * ```ts
 * import { userDirName } from "./identity.ts";
 *
 * userDirName("../Bob"); // "%2e%2e%2f%42ob"
 * userDirName("bob"); // "bob"
 * ```
 */
export function userDirName(username: string): string {
  if (username.length === 0) throw new IdentityError("Cannot use username: it is empty");
  if (!username.isWellFormed()) {
    throw new IdentityError(
      `Cannot use username ${JSON.stringify(username)}: it is not well-formed Unicode`,
    );
  }
  let encoded = "";
  for (const byte of new TextEncoder().encode(username)) {
    const c = String.fromCharCode(byte);
    encoded += /[a-z0-9_-]/.test(c) ? c : percent(byte);
  }
  if (WINDOWS_DEVICE.test(encoded)) {
    encoded = encoded.slice(0, -1) + percent(encoded.charCodeAt(encoded.length - 1));
  }
  if (encoded.length > MAX_DIR_NAME_LEN) {
    throw new IdentityError(
      `Cannot use username: its directory name would be ${encoded.length} characters, ` +
        `more than ${MAX_DIR_NAME_LEN}`,
    );
  }
  return encoded;
}

/**
 * The directory name of the earlier layout: `encodeURIComponent` with `.!~*'()` also escaped, in
 * uppercase hex. It kept capitals, so `Bob` and `bob` were one directory on macOS and Windows.
 */
function legacyUserDirName(username: string): string {
  return encodeURIComponent(username).replace(
    /[.!~*'()]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The username a directory name of the earlier layout stands for, if it is one. */
function legacyOwner(name: string): string | undefined {
  let username: string;
  try {
    username = decodeURIComponent(name);
  } catch {
    return undefined;
  }
  return legacyUserDirName(username) === name ? username : undefined;
}

/**
 * The directory holding a local user's files: `<configDir>/users/<userDirName(username)>`.
 *
 * @throws {IdentityError} if the username is unusable (see {@linkcode userDirName}).
 *
 * @example
 * ```ts
 * import { userDir } from "./identity.ts";
 *
 * userDir("/home/alice/.config/p2p", "alice"); // "/home/alice/.config/p2p/users/alice"
 * ```
 */
export function userDir(configDir: string, username: string): string {
  return join(configDir, "users", userDirName(username));
}

/**
 * Like {@linkcode userDir}, after moving this user's directory of the earlier layout (`users/Bob`)
 * to its current name (`users/%42ob`), with the identity and known peers in it. A directory of
 * the earlier layout that a case-insensitive file system would take for this user's (`users/Bob`
 * for `bob`) is moved to its own owner's current name first. Nothing happens once the current
 * directory exists.
 *
 * @throws {IdentityError} if the username is unusable (see {@linkcode userDirName}), a
 * directory cannot be listed or moved, or group or others may write in the config directory, its
 * `users` directory or the user's directory (as ssh refuses such folders).
 *
 * @example
 * ```ts
 * import { openUserDir } from "./identity.ts";
 *
 * const configDir = await Deno.makeTempDir();
 * await Deno.mkdir(`${configDir}/users/Bob`, { recursive: true }); // the earlier layout
 * await openUserDir(configDir, "Bob"); // ".../users/%42ob", moved there from ".../users/Bob"
 * await Deno.remove(configDir, { recursive: true });
 * ```
 */
export async function openUserDir(configDir: string, username: string): Promise<string> {
  const name = userDirName(username);
  const users = join(configDir, "users");
  const dir = join(users, name);
  for (const folder of [configDir, users, dir]) {
    const mode = await looseFolderMode(folder).catch((error) => {
      throw new IdentityError(`Cannot check ${folder}: ${error}`, { cause: error });
    });
    if (mode !== undefined) {
      throw new IdentityError(
        `Cannot use ${folder}: its permissions ${mode} let other users replace your keys and ` +
          `pinned contacts; run "chmod go-w ${folder}" if you trust nothing was changed`,
      );
    }
  }
  const entries = new Set<string>();
  try {
    for await (const entry of Deno.readDir(users)) entries.add(entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return dir;
    throw new IdentityError(`Cannot list ${users}: ${error}`, { cause: error });
  }
  // Listed names are exact even where lookups ignore case, so `Bob` is told apart from `bob`.
  if (entries.has(name)) return dir;
  const legacy = legacyUserDirName(username);
  for (const entry of entries) {
    if (entry !== legacy && entry.toLowerCase() !== name) continue;
    const owner = legacyOwner(entry);
    if (owner === undefined) continue;
    const target = userDirName(owner);
    if (target === entry || entries.has(target)) continue;
    try {
      await Deno.rename(join(users, entry), join(users, target));
    } catch (error) {
      // Another process of the same user may have moved it first.
      if (error instanceof Deno.errors.NotFound) continue;
      throw new IdentityError(
        `Cannot move ${join(users, entry)} to ${join(users, target)}: ${error}`,
        { cause: error },
      );
    }
  }
  return dir;
}

/**
 * Loads the identity of `username`, creating and saving a new key pair on first use. Creation
 * is atomic and never overwrites: if two processes race, both end up with the same key pair.
 *
 * @throws {IdentityError} if the file is corrupt, its permissions are looser than 0600, the
 * username is unusable, or no config directory is known.
 *
 * @example
 * ```ts
 * import { loadOrCreateIdentity } from "./identity.ts";
 *
 * const configDir = await Deno.makeTempDir();
 * const id = await loadOrCreateIdentity({ username: "alice", configDir });
 * console.log(id.created); // true
 * await Deno.remove(configDir, { recursive: true });
 * ```
 */
export async function loadOrCreateIdentity(options: IdentityOptions): Promise<Identity> {
  const dir = await openUserDir(options.configDir ?? defaultConfigDir(), options.username);
  const path = join(dir, "identity.json");
  try {
    return await loadOrCreate(options.username, dir, path);
  } catch (error) {
    if (error instanceof IdentityError) throw error;
    throw new IdentityError(`Cannot load or create identity ${path}: ${error}`, { cause: error });
  }
}

async function loadOrCreate(username: string, dir: string, path: string): Promise<Identity> {
  const existing = await readIdentityFile(path, username);
  if (existing) return { ...existing, username, dir, path, created: false };

  const secretKey = x25519.utils.randomSecretKey();
  const publicKey = x25519.getPublicKey(secretKey);
  const record = {
    version: FILE_VERSION,
    username,
    publicKey: encodeKey(publicKey),
    secretKey: encodeKey(secretKey),
  };
  // Never replaces a file: a concurrent creator's key wins, and is what we use.
  if (!await writePrivateJson(path, record, { replace: false })) {
    const winner = await readIdentityFile(path, username);
    if (!winner) throw new IdentityError(`Cannot create identity ${path}: it vanished meanwhile`);
    return { ...winner, username, dir, path, created: false };
  }
  return { username, publicKey, secretKey, dir, path, created: true };
}

async function readIdentityFile(
  path: string,
  username: string,
): Promise<{ publicKey: Uint8Array; secretKey: Uint8Array } | null> {
  const corrupt = (why: string): IdentityError =>
    new IdentityError(
      `Cannot load identity ${path}: ${why}; restore it from a backup, or delete it to create ` +
        `a new key (your contacts will then see a key change)`,
    );
  const loose = (mode: string): IdentityError =>
    new IdentityError(
      `Cannot use identity ${path}: its permissions ${mode} let other users read or change ` +
        `the secret key; run "chmod 600 ${path}" if you trust it has not leaked`,
    );
  const record = await readPrivateJson(path, FILE_VERSION, { loose, corrupt });
  if (!record) return null;
  if (record.username !== username) {
    throw corrupt(
      `it belongs to ${JSON.stringify(record.username)}, not ${JSON.stringify(username)}`,
    );
  }
  const publicKey = typeof record.publicKey === "string" ? decodeKey(record.publicKey) : null;
  const secretKey = typeof record.secretKey === "string" ? decodeKey(record.secretKey) : null;
  if (!publicKey || !secretKey) throw corrupt("a key is missing or not 32 bytes of base64url");
  if (!equalBytes(x25519.getPublicKey(secretKey), publicKey)) {
    throw corrupt("the public key does not match the secret key");
  }
  return { publicKey, secretKey };
}

/**
 * Encodes a 32-byte key as unpadded base64url (43 characters of `[A-Za-z0-9_-]`), safe inside
 * the coordinator's comma- and semicolon-separated messages.
 *
 * @throws {RangeError} if the key is not 32 bytes long.
 *
 * @example
 * ```ts
 * import { encodeKey } from "./identity.ts";
 *
 * encodeKey(new Uint8Array(32)); // "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
 * ```
 */
export function encodeKey(key: Uint8Array): string {
  if (key.length !== KEY_LEN) {
    throw new RangeError(`Cannot encode key: length ${key.length} is not ${KEY_LEN} bytes`);
  }
  return encodeBase64url(key);
}

/**
 * Decodes the output of {@linkcode encodeKey}. Returns null for anything else, including
 * non-canonical encodings, so each key has exactly one text form.
 *
 * @example
 * ```ts
 * import { decodeKey, encodeKey } from "./identity.ts";
 *
 * decodeKey(encodeKey(new Uint8Array(32)))?.length; // 32
 * decodeKey("not a key"); // null
 * ```
 */
export function decodeKey(text: string): Uint8Array | null {
  if (typeof text !== "string" || text.length !== 43) return null;
  return decodeBase64url(text);
}

/**
 * Lowercase hex of `bytes`.
 *
 * @example
 * ```ts
 * import { toHex } from "./identity.ts";
 *
 * toHex(new Uint8Array([0, 255])); // "00ff"
 * ```
 */
export function toHex(bytes: Uint8Array): string {
  return bytesToHex(bytes);
}

/**
 * Parses hex (either case, even length); returns null if `text` is not hex.
 *
 * @example
 * ```ts
 * import { fromHex } from "./identity.ts";
 *
 * fromHex("00ff"); // Uint8Array [0, 255]
 * fromHex("xyz"); // null
 * ```
 */
export function fromHex(text: string): Uint8Array | null {
  if (typeof text !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(text)) return null;
  return hexToBytes(text);
}

/**
 * A short human form of a public key: the first 16 bytes of its SHA-256 as 8 groups of 4
 * lowercase hex digits, e.g. `"1f3a 9c0e 77b2 04d1 5e6f a8c3 0b91 d2e4"`. Reproducible with
 * `sha256sum` on the raw key.
 *
 * @example
 * ```ts
 * import { fingerprint } from "./identity.ts";
 *
 * fingerprint(new Uint8Array(32)).split(" ").length; // 8
 * ```
 */
export function fingerprint(publicKey: Uint8Array): string {
  return toHex(sha256(publicKey).subarray(0, 16)).match(/.{4}/g)!.join(" ");
}

/**
 * A safety number for a conversation: 30 digits in 6 groups of 5, the same whichever party
 * computes it (the two name/key pairs are sorted first). Both users compare it out of band;
 * it changes if either name or key changes.
 *
 * Derivation: SHA-256 over `"p2p safety number v1"` and, for each party in sorted order
 * (by UTF-8 name, then key), a 4-byte big-endian name length, the UTF-8 name and the 32-byte
 * key; each 5-byte chunk of the digest, as a big-endian integer mod 100000, gives one group.
 *
 * @throws {RangeError} if a key is not 32 bytes long.
 *
 * @example
 * ```ts
 * import { safetyNumber } from "./identity.ts";
 *
 * const a = new Uint8Array(32).fill(1);
 * const b = new Uint8Array(32).fill(2);
 * safetyNumber("alice", a, "bob", b) === safetyNumber("bob", b, "alice", a); // true
 * ```
 */
export function safetyNumber(
  nameA: string,
  keyA: Uint8Array,
  nameB: string,
  keyB: Uint8Array,
): string {
  const encoder = new TextEncoder();
  const parties = [
    { name: encoder.encode(nameA), key: keyA },
    { name: encoder.encode(nameB), key: keyB },
  ];
  for (const { key } of parties) {
    if (key.length !== KEY_LEN) {
      throw new RangeError(`Cannot compute safety number: a key is ${key.length} bytes, not 32`);
    }
  }
  parties.sort((x, y) => compareBytes(x.name, y.name) || compareBytes(x.key, y.key));
  const chunks: Uint8Array[] = [encoder.encode("p2p safety number v1")];
  for (const { name, key } of parties) {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, name.length);
    chunks.push(length, name, key);
  }
  const digest = sha256(concatBytes(...chunks));
  const groups: string[] = [];
  for (let i = 0; i < 6; i++) {
    let value = 0;
    for (const byte of digest.subarray(i * 5, i * 5 + 5)) value = value * 256 + byte;
    groups.push(String(value % 100000).padStart(5, "0"));
  }
  return groups.join(" ");
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}
