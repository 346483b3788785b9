/**
 * `p2p id NAME [--create]`: shows the fingerprint of NAME's key on this machine, to compare out
 * of band; a name without a key is an error unless `--create` (a typo should not make a key).
 *
 * @example
 * ```ts
 * const code = await id(["alice", "--create"]);
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  defaultConfigDir,
  fingerprint,
  loadOrCreateIdentity,
  userDir,
} from "../crypto/identity.ts";
import { normalizeUsername, usernameProblem } from "../protocol/username.ts";
import { ID_HELP } from "./help.ts";
import { UsageError } from "./target.ts";

/** Runs `p2p id ARGS`; resolves with the exit code. */
export async function id(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      create: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(ID_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("id takes one argument, NAME");
  const username = normalizeUsername(positionals[0]);
  const problem = usernameProblem(username);
  if (problem) throw new UsageError(`Cannot use "${username}" as a name: ${problem}`);
  const configDir = values.config ?? defaultConfigDir();
  if (!values.create && !await hasIdentity(configDir, username)) {
    console.error(
      `p2p: no key for ${username} on this machine (in ${configDir}): check the name, or ` +
        `make one with 'p2p id ${username} --create' (a first 'p2p chat ${username}@HOST' ` +
        `makes one too)`,
    );
    return 1;
  }
  const identity = await loadOrCreateIdentity({
    username,
    configDir: values.config,
  });
  console.log(`${identity.username}: ${fingerprint(identity.publicKey)}`);
  console.log(`key file: ${identity.path}${identity.created ? " (created now)" : ""}`);
  return 0;
}

/** Whether `username` has a key in `configDir` (in the current layout, or the earlier one). */
async function hasIdentity(configDir: string, username: string): Promise<boolean> {
  for (const dir of [userDir(configDir, username), join(configDir, "users", username)]) {
    try {
      await Deno.stat(join(dir, "identity.json"));
      return true;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return false;
}
