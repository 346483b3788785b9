/**
 * `p2p chat NAME@HOST[:PORT]`: its options read and checked, the passphrase asked for when
 * wanted, and the chat (`lib/ui/chat.ts`) run.
 *
 * @example
 * ```ts
 * const code = await chat(["alice@127.0.0.1:7000", "--json"]);
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { ACCEPT_POLICIES } from "../peer.ts";
import { runChat } from "../ui/chat.ts";
import { askPassphrase } from "../ui/passphrase.ts";
import { CHAT_HELP } from "./help.ts";
import { bindOption, secondsOption, sizeOption } from "./options.ts";
import { resolveServers, stunServers, UsageError } from "./target.ts";

/** Runs `p2p chat ARGS` until the user leaves; resolves with the exit code. */
export async function chat(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      keepalive: { type: "string", default: "10" },
      bind: { type: "string" },
      config: { type: "string" },
      accept: { type: "string", default: "anyone" },
      data: { type: "string" },
      passphrase: { type: "boolean", default: false },
      "no-history": { type: "boolean", default: false },
      plain: { type: "boolean", default: false },
      public: { type: "boolean", default: false },
      downloads: { type: "string" },
      "max-file-size": { type: "string" },
      "no-port-mapping": { type: "boolean", default: false },
      stun: { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(CHAT_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError("chat takes one argument, NAME@HOST[:PORT] (see p2p chat --help)");
  }
  const { username, server, fallbacks } = await resolveServers(positionals[0]);
  const bind = values.bind === undefined ? undefined : bindOption(values.bind);
  const stun = await stunServers(values.stun);
  const accept = ACCEPT_POLICIES.find((p) => p === values.accept);
  if (!accept) {
    throw new UsageError(`--accept takes anyone or known, not "${values.accept}"`);
  }
  if (values["no-history"] && (values.passphrase || values.data !== undefined)) {
    throw new UsageError("--no-history keeps no history: leave out --data and --passphrase");
  }
  const passphrase = values.passphrase
    ? await askPassphrase({ username, dataDir: values.data })
    : Deno.env.get("P2P_PASSPHRASE") || undefined;
  return await runChat({
    history: values["no-history"] ? false : { dataDir: values.data, passphrase },
    accept,
    server,
    fallbacks,
    username,
    json: values.json,
    bind,
    keepaliveMs: secondsOption(values.keepalive, "--keepalive") * 1000,
    configDir: values.config,
    plain: values.plain,
    public: values.public,
    downloads: values.downloads,
    maxFileSize: values["max-file-size"] === undefined
      ? undefined
      : sizeOption(values["max-file-size"], "--max-file-size"),
    portMapping: !values["no-port-mapping"],
    stun,
  });
}
