/**
 * The files that hold a user's secrets and trust decisions (`identity.json`, `known_peers.json`):
 * versioned JSON objects, private to their owner (mode 0600 in a 0700 folder), written whole or
 * not at all. Reading refuses a file that group or others can read or change, as ssh does for
 * private keys, and a folder on the way to them that group or others can write in (they could
 * swap the files); both checks are skipped on Windows, which has no POSIX modes.
 *
 * @example
 * ```ts
 * import { readPrivateJson, writePrivateJson } from "./private_json.ts";
 *
 * const path = `${await Deno.makeTempDir()}/state.json`;
 * await writePrivateJson(path, { version: 1, note: "hi" }, { replace: true });
 * const errors = { loose: (mode: string) => new Error(`mode ${mode}`), corrupt: (why: string) => new Error(why) };
 * const data = await readPrivateJson(path, 1, errors); // { version: 1, note: "hi" }
 * ```
 * @module
 */
import { dirname } from "node:path";

/** How a caller words the two ways a private file can be refused. */
export interface PrivateFileErrors {
  /** The file's permissions (`mode`, octal like `644`) let others in. */
  loose(mode: string): Error;
  /** The file is not the JSON object of the expected version. */
  corrupt(why: string): Error;
}

/**
 * Reads a private JSON object of format `version`: `null` when the file does not exist. Throws
 * `errors.loose(mode)` when group or others have any access, `errors.corrupt(why)` when it is not
 * a JSON object with that `version`, and the system's error when it cannot be read.
 */
export async function readPrivateJson(
  path: string,
  version: number,
  errors: PrivateFileErrors,
): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw errors.loose((info.mode & 0o777).toString(8).padStart(3, "0"));
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw errors.corrupt("it is not valid JSON");
  }
  if (typeof data !== "object" || data === null) {
    throw errors.corrupt("it is not a JSON object");
  }
  const record = data as Record<string, unknown>;
  if (record.version !== version) {
    throw errors.corrupt(`version ${JSON.stringify(record.version)} is not ${version}`);
  }
  return record;
}

/**
 * The permissions of folder `path` (octal text like `777`) when group or others may write in
 * it, and so could replace what it holds; `undefined` when they may not, when it does not exist,
 * and on Windows.
 *
 * @example
 * ```ts
 * import { looseFolderMode } from "./private_json.ts";
 *
 * const dir = await Deno.makeTempDir(); // 0700
 * await looseFolderMode(dir); // undefined
 * await Deno.chmod(dir, 0o777);
 * await looseFolderMode(dir); // "777"
 * ```
 */
export async function looseFolderMode(path: string): Promise<string | undefined> {
  try {
    return writableByOthers((await Deno.stat(path)).mode);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** {@linkcode looseFolderMode}, synchronously (for callers that open files synchronously). */
export function looseFolderModeSync(path: string): string | undefined {
  try {
    return writableByOthers(Deno.statSync(path).mode);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function writableByOthers(mode: number | null): string | undefined {
  if (mode === null || (mode & 0o022) === 0) return undefined;
  return (mode & 0o777).toString(8).padStart(3, "0");
}

/** Options for {@linkcode writePrivateJson}. */
export interface WritePrivateOptions {
  /**
   * `true`: replace the file if it exists. `false`: never replace it (a concurrent creator's file
   * wins) and resolve `false` when it already existed.
   */
  replace: boolean;
}

/**
 * Writes `value` as pretty JSON to `path`, atomically: a temporary file (mode 0600, in the same
 * folder, created with mode 0700 if missing) is renamed or linked into place, so that a crash
 * leaves the old file or the new one, never half of one. Resolves `true` when written.
 */
export async function writePrivateJson(
  path: string,
  value: unknown,
  options: WritePrivateOptions,
): Promise<boolean> {
  const text = JSON.stringify(value, null, 2) + "\n";
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await Deno.writeTextFile(temp, text, { createNew: true, mode: 0o600 });
    if (options.replace) {
      await Deno.rename(temp, path);
      return true;
    }
    // link() fails if the target exists, so an existing file is never replaced.
    await Deno.link(temp, path);
    return true;
  } catch (error) {
    if (!options.replace && error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  } finally {
    await Deno.remove(temp).catch(() => {}); // already gone after a rename
  }
}
