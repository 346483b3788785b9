/**
 * `p2p`: a peer-to-peer messenger. Subcommands: `serve` (the coordinator) and `chat` (a client).
 * This module only dispatches; each subcommand lives in `lib/cli/`: `serve_command.ts`,
 * `chat_command.ts`, `nat_command.ts` and `id_command.ts` (options read and checked, the wing's
 * front door run), with `help.ts` (every help text, the version), `options.ts` (option values) and
 * `target.ts` (`NAME@HOST[:PORT]`, and `UsageError`).
 *
 * @example
 * ```sh
 * p2p serve --port 7000
 * p2p chat alice@127.0.0.1:7000
 * ```
 * @module
 */
import { IdentityError } from "./lib/crypto/identity.ts";
import { helpFor, MAIN_HELP, VERSION } from "./lib/cli/help.ts";
import { UsageError } from "./lib/cli/target.ts";
import { PassphraseError } from "./lib/ui/passphrase.ts";

/** Runs the command line; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    // Each subcommand's code is loaded when it runs: `p2p serve` need not hold the chat client's
    // (7-9 MiB of RSS, docs/LOAD.md "Where the memory goes").
    switch (command) {
      case "serve":
        return await (await import("./lib/cli/serve_command.ts")).serve(rest);
      case "chat":
        return await (await import("./lib/cli/chat_command.ts")).chat(rest);
      case "nat":
        return await (await import("./lib/cli/nat_command.ts")).nat(rest);
      case "id":
        return await (await import("./lib/cli/id_command.ts")).id(rest);
      case "--version":
      case "-V":
      case "version":
        console.log(`p2p ${VERSION}`);
        return 0;
      case undefined:
      case "--help":
      case "-h":
        console.log(MAIN_HELP);
        return 0;
      case "help":
        console.log(helpFor(rest[0]));
        return 0;
      default:
        throw new UsageError(`unknown command "${command}" (see p2p --help)`);
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof IdentityError || err instanceof PassphraseError) {
      console.error(`p2p: ${e.message}`);
      return 1;
    }
    if (err instanceof UsageError || e.code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`p2p: ${e.message}`);
      return 2;
    }
    if (e.code === "EADDRINUSE" || err instanceof Deno.errors.AddrInUse) {
      console.error(`p2p: cannot listen: the address is already in use (${e.message})`);
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
