/**
 * `p2p`: a peer-to-peer messenger. Subcommands: `serve` (the coordinator) and `chat` (a client).
 *
 * @example
 * ```sh
 * p2p serve --port 7000
 * p2p chat alice@127.0.0.1:7000
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import { Coordinator } from "./lib/coordinator.ts";
import { resolveServer, UsageError } from "./lib/cli_args.ts";
import { isIP } from "node:net";
import type { Endpoint } from "./lib/protocol/endpoint.ts";
import { runChat } from "./lib/ui/chat.ts";
import { checkNat } from "./lib/nat_check.ts";
import { fingerprint, IdentityError, loadOrCreateIdentity } from "./lib/crypto/identity.ts";
import { usernameProblem } from "./lib/protocol/seed.ts";

const VERSION = denoJson.version;

const MAIN_HELP = `p2p ${VERSION} — chat directly with people behind home routers

Usage:
  p2p serve [options]             run the coordinator (who is online)
  p2p chat NAME@HOST[:PORT] [options]
                                  log in as NAME and chat
  p2p nat HOST[:PORT]             what your NAT does, as the coordinator sees it
  p2p id NAME                     show NAME's key fingerprint on this machine
  p2p help [COMMAND]              show help
  p2p --version                   show the version

Run 'p2p COMMAND --help' for a command's options.`;

const SERVE_HELP = `Usage: p2p serve [--host ADDR] [--port N] [--peer-timeout SECONDS]

Runs the coordinator: UDP for logins, logouts, heartbeats and presence broadcasts, TCP (same port
number) for the online list. Logs one line per login, logout and expiry on stderr.

Options:
  --host ADDR             address to listen on (default 0.0.0.0)
  --port N                UDP and TCP port (default 7000)
  --tcp-port N            TCP port of the list service, if it must differ
  --peer-timeout SECONDS  drop a user silent this long (default 45)
  -h, --help              show this help`;

const NAT_HELP = `Usage: p2p nat HOST[:PORT] [--json]

Asks the coordinator at HOST:PORT (and its second port, PORT+1) which public endpoint it sees
for one local socket, and says what kind of NAT you are behind and what that means for direct
connections.`;

const ID_HELP = `Usage: p2p id NAME [--config DIR]

Shows the fingerprint of NAME's key on this machine (creating the key on first use). Compare it
with what your contacts see (/fingerprint NAME in their chat) to make sure nobody is in between.`;

const CHAT_HELP =
  `Usage: p2p chat NAME@HOST[:PORT] [--json] [--keepalive SECONDS] [--bind ADDR:PORT]

Logs in to the coordinator at HOST:PORT (default port 7000) as NAME, shows who is online, and
sends messages directly to the other users.

Messages are end-to-end encrypted (Noise XX) and acknowledged; a peer's key is pinned the first
time you talk, and a changed key stops sending until you accept it.

Commands (typed, or one per line on stdin):
  /msg USER TEXT        send TEXT to USER
  /all TEXT             send TEXT to everyone online
  /who                  list who is online and the path to each
  /fingerprint [USER]   show USER's key fingerprint and your safety number (or yours)
  /trust USER           accept USER's changed key
  /help                 show the commands
  /quit                 log out and leave (also Ctrl-C, end of input)

Options:
  --json                JSON Lines on stdout (one object per event), for scripts
  --keepalive SECONDS   heartbeat interval (default 10)
  --bind ADDR[:PORT]    local address and port to use (default any)
  --config DIR          where keys live (default $XDG_CONFIG_HOME/p2p or ~/.config/p2p)
  -h, --help            show this help`;

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string", default: "0.0.0.0" },
      port: { type: "string", default: "7000" },
      "tcp-port": { type: "string" },
      "peer-timeout": { type: "string", default: "45" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const port = portOption(values.port, "--port", true);
  const tcpPort = values["tcp-port"] === undefined
    ? undefined
    : portOption(values["tcp-port"], "--tcp-port", true);
  const timeout = secondsOption(values["peer-timeout"], "--peer-timeout");
  const coordinator = await Coordinator.start({
    host: values.host,
    port,
    tcpPort,
    peerTimeoutMs: timeout * 1000,
  });
  console.error(
    `${new Date().toISOString()} p2p ${VERSION} coordinator on ${values.host} ` +
      `UDP ${coordinator.udpPort}, TCP ${coordinator.tcpPort}, peer timeout ${timeout} s`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  await coordinator.close();
  console.error(`${new Date().toISOString()} coordinator stopped`);
  return 0;
}

async function chat(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      keepalive: { type: "string", default: "10" },
      bind: { type: "string" },
      config: { type: "string" },
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
  const { username, server } = await resolveServer(positionals[0]);
  const bind = values.bind === undefined ? undefined : bindOption(values.bind);
  return await runChat({
    server,
    username,
    json: values.json,
    bind,
    keepaliveMs: secondsOption(values.keepalive, "--keepalive") * 1000,
    configDir: values.config,
  });
}

async function nat(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(NAT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("nat takes one argument, HOST[:PORT]");
  const { server } = await resolveServer(`nat@${positionals[0]}`);
  const report = await checkNat({ server });
  if (values.json) console.log(JSON.stringify(report));
  else {
    console.log(`local endpoint:  ${report.local}`);
    console.log(
      `public endpoint: ${report.public ?? "unknown"}` +
        (report.publicAlt && report.publicAlt !== report.public ? ` / ${report.publicAlt}` : ""),
    );
    console.log(`mapping:         ${report.mapping}`);
    console.log(report.summary);
  }
  return report.public ? 0 : 1;
}

async function id(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(ID_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("id takes one argument, NAME");
  const problem = usernameProblem(positionals[0]);
  if (problem) throw new UsageError(`Cannot use "${positionals[0]}" as a name: ${problem}`);
  const identity = await loadOrCreateIdentity({
    username: positionals[0],
    configDir: values.config,
  });
  console.log(`${identity.username}: ${fingerprint(identity.publicKey)}`);
  console.log(`key file: ${identity.path}${identity.created ? " (created now)" : ""}`);
  return 0;
}

/** `--bind ADDR[:PORT]` (`[v6]:PORT` for IPv6); no port, or 0, means any free port. */
function bindOption(text: string): Endpoint {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:\[\]]+)(?::(\d+))?$/.exec(text);
  const port = Number(m?.[2] ?? 0);
  if (!m || !isIP(m[1]) || port > 65535) {
    throw new UsageError(
      `--bind must be ADDR[:PORT], e.g. 0.0.0.0:4000 or [::]:4000, not "${text}"`,
    );
  }
  return { host: m[1], port };
}

function portOption(text: string, name: string, allowZero: boolean): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n > 65535 || (!allowZero && n === 0)) {
    throw new UsageError(`${name} must be a port number from ${allowZero ? 0 : 1} to 65535`);
  }
  return n;
}

function secondsOption(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a positive number`);
  return n;
}

/** Runs the command line; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "serve":
        return await serve(rest);
      case "chat":
        return await chat(rest);
      case "nat":
        return await nat(rest);
      case "id":
        return await id(rest);
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
        console.log(
          { serve: SERVE_HELP, chat: CHAT_HELP, nat: NAT_HELP, id: ID_HELP }[rest[0] ?? ""] ??
            MAIN_HELP,
        );
        return 0;
      default:
        throw new UsageError(`unknown command "${command}" (see p2p --help)`);
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof IdentityError) {
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
