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
import {
  Coordinator,
  DEFAULT_LIMITS,
  DEFAULT_MAILBOX_QUOTAS,
  DEFAULT_MAILBOX_SERVICE_LIMITS,
  defaultDataDir,
  type Limits,
  type MailboxQuotas,
  PRESENCE_MODES,
  resolveLimits,
} from "./lib/coordinator.ts";
import { DatabaseError } from "./lib/store/database.ts";
import { resolveServer, UsageError } from "./lib/cli_args.ts";
import { isIP } from "node:net";
import type { Endpoint } from "./lib/protocol/endpoint.ts";
import { FULL_SCREEN_FROM, runChat } from "./lib/ui/chat.ts";
import { ACCEPT_POLICIES, checkNat } from "./lib/peer.ts";
import { join } from "node:path";
import {
  defaultConfigDir,
  fingerprint,
  IdentityError,
  loadOrCreateIdentity,
  userDir,
} from "./lib/crypto/identity.ts";
import { normalizeUsername, usernameProblem } from "./lib/protocol/username.ts";
import { askPassphrase, PassphraseError } from "./lib/ui/passphrase.ts";

const VERSION = denoJson.version;

const MAIN_HELP = `p2p ${VERSION} — chat directly with people behind home routers

Usage:
  p2p serve [options]             run the coordinator (who is online)
  p2p chat NAME@HOST[:PORT] [options]
                                  log in as NAME and chat
  p2p nat HOST[:PORT]             what your NAT does, as the coordinator sees it
  p2p id NAME [--create]          show NAME's key fingerprint on this machine
  p2p help [COMMAND]              show help
  p2p --version                   show the version

Run 'p2p COMMAND --help' for a command's options.`;

/** The limits' defaults, for the help text. */
const D = DEFAULT_LIMITS;
const Q = DEFAULT_MAILBOX_QUOTAS;

const SERVE_HELP =
  `Usage: p2p serve [--host ADDR] [--port N] [--tcp-port N] [--peer-timeout SECONDS]
                 [--batch-ms MS] [--data DIR] [--name-ttl DAYS] [--presence everyone|contacts]
                 [mailbox options] [limits]

Runs the coordinator: UDP for logins, logouts, heartbeats and presence broadcasts, TCP (same port
number) for the online list. Logs one line per login, logout and expiry on stderr, and a line
when a limit is hit. On SIGINT or SIGTERM it tells the online users (Bye), closes, and exits 0.

A name belongs to the key that first brought it online: a login with another key is refused
("name belongs to another key"), and the owner's key takes it over at once from a stale session
of its own (after proving the key). The registrations and the coordinator's own key are kept in
DIR/coordinator.db.

Offline messages: a client leaves a message for someone offline in the mailbox (TCP, port + 1),
sealed to the recipient's key: the coordinator sees whom it is for, its size and the depositor's
address, never the sender's name or the text. It is kept in DIR/mailbox.db until the recipient
fetches and acknowledges it (proving the name's key), or until the TTL.

Options:
  --host ADDR             address to listen on (default 0.0.0.0)
  --port N                UDP and TCP port (default 7000)
  --tcp-port N            TCP port of the list service, if it must differ
  --peer-timeout SECONDS  drop a user silent this long (default 45)
  --batch-ms MS           longest pause between two batches of presence changes (default 250)
  --data DIR              where the database lives (default $XDG_STATE_HOME/p2p if set, else
                          /var/lib/p2p as root, else ~/.local/state/p2p); created with mode 0700
  --name-ttl DAYS         a name unused this long may be taken by another key (default 180)
  --presence MODE         who sees whose presence: everyone (default; every user sees every
                          other, as the seed does) or contacts (only contacts see each other,
                          learn each other's address and may be introduced; seed-only clients
                          see the users who chose p2p chat --public)
  -h, --help              show this help

Mailbox:
  --mailbox-port N        TCP port of the mailbox (default: --port + 1)
  --no-mailbox            run without a mailbox
  --mailbox-ttl TIME      delete mail unfetched this long: a number with d, h, m, s or ms
                          (default 14d)
  --mailbox-per-user N    messages waiting for one user (default ${Q.perRecipientCount}); beyond:
                          "mailbox full"
  --mailbox-per-user-bytes N
                          bytes waiting for one user (default ${Q.perRecipientBytes})
  --mailbox-per-ip N      messages stored from one address (default ${Q.perSenderCount}): the
                          coordinator does not know senders, only their addresses
  --mailbox-per-ip-bytes N
                          bytes stored from one address (default ${Q.perSenderBytes})
  --mailbox-max N         messages stored in all (default ${Q.totalCount})
  --mailbox-max-bytes N   bytes stored in all (default ${Q.totalBytes})
  --mailbox-max-message BYTES
                          largest sealed message (default and most ${Q.maxMailBytes}); beyond:
                          "too large"
  --mailbox-requests-per-ip N
                          deposits, key lookups and fetches per address per second, twice
                          that in a burst (default ${DEFAULT_MAILBOX_SERVICE_LIMITS.requestsPerSecond})

Limits ("per address": per IPv4 address, or per IPv6 /64):
  --max-users N           users online at once (default ${D.maxUsers})
  --max-pending N         logins waiting for their list fetch; beyond, the oldest is
                          forgotten (default ${D.maxPending})
  --logins-per-ip N       logins, list fetches and introductions per address per second,
                          twice that in a burst (default ${D.loginsPerSecond})
  --datagrams-per-ip N    datagrams per address per second, twice that in a burst
                          (default ${D.datagramsPerSecond})
  --tcp-per-ip N          TCP connections open at once per address (default ${D.tcpPerAddress})
  --max-tcp N             TCP connections open at once (default ${D.maxTcp})
  --tcp-idle SECONDS      close a TCP connection idle this long (default ${D.tcpIdleMs / 1000})
  --max-datagram BYTES    longest datagram accepted (default ${D.maxDatagramBytes})
  --max-line BYTES        longest line of the coordinator protocol (login, heartbeat…),
                          and most bytes read from a TCP connection (default and most
                          ${D.maxLineBytes}); chat messages go from peer to peer and are
                          not limited by it
  --names-per-ip N        names online at once per address (default ${D.namesPerAddress}): a
                          household or an office behind one NAT has a few dozen online
  --new-names-per-ip-per-day N
                          distinct names an address may bring online in any 24 hours
                          (default ${D.newNamesPerAddressPerDay}): people keep their names, a hoarder makes
                          thousands
  --relay-bytes-per-user N
  --relay-packets-per-user N
                          bytes and packets per second one user may have relayed, to
                          everyone together (default ${D.relayBytesPerUser} and ${D.relayPacketsPerUser}: what one
                          introduced pair may; chat is small); 8 s of bytes and 4 s of
                          packets at once
  --relay-bytes-per-ip N
  --relay-packets-per-ip N
                          the same for all the users of one address together (default
                          ${D.relayBytesPerAddress} and ${D.relayPacketsPerAddress}: two users' worth, and no more packets
                          than --datagrams-per-ip)`;

const NAT_HELP = `Usage: p2p nat HOST[:PORT] [--json]

Asks the coordinator at HOST:PORT (and its second port, PORT+1) which public endpoint it sees
for one local socket, and says what kind of NAT you are behind and what that means for direct
connections.

Options:
  --json                the report as one JSON object, for scripts
  -h, --help            show this help`;

const ID_HELP = `Usage: p2p id NAME [--create] [--config DIR]

Shows the fingerprint of NAME's key on this machine. Compare it with what your contacts see
(/fingerprint NAME in their chat) to make sure nobody is in between. A name without a key here
is an error (a typo should not make a key); the key is made at its first 'p2p chat', or now
with --create.

Options:
  --create              make NAME's key if there is none yet
  --config DIR          where keys live (default $XDG_CONFIG_HOME/p2p or ~/.config/p2p)
  -h, --help            show this help`;

const CHAT_HELP =
  `Usage: p2p chat NAME@HOST[:PORT] [--json] [--keepalive SECONDS] [--bind ADDR[:PORT]]
                [--config DIR] [--accept anyone|known] [--data DIR] [--passphrase]
                [--no-history] [--plain] [--public]

Logs in to the coordinator at HOST:PORT (default port 7000) as NAME, shows who is online, and
sends messages directly to the other users.

Messages are end-to-end encrypted (Noise XX) and acknowledged; a peer's key is pinned the first
time you talk, and a changed key stops sending until you accept it.

Every message sent and received is kept in your history, encrypted, under
$XDG_DATA_HOME/p2p (default ~/.local/share/p2p); its key is beside your identity, or comes from
a passphrase. The chat starts with the last lines with each contact. Messages not delivered when
the chat stops stay pending and are sent at the next start, once the recipient is online.

Commands (typed, or one per line on stdin; command words and names in any case):
  /chat USER            talk to USER: plain lines go to them (alias /query)
  /chat, /all           back to the everyone view
  /msg USER TEXT        send TEXT to USER
  /r TEXT               reply to whoever wrote last
  /all TEXT             send TEXT to everyone online
  /who                  who is online, the path to each, and unread messages
  /fingerprint [USER]   show USER's key fingerprint and your safety number (or yours)
  /trust USER           accept USER's changed key
  /add USER [NOTE]      ask USER to be your contact (through the coordinator, kept there while
                        USER is offline); once both agree you see each other online
  /accept USER          accept USER's contact request (/decline USER: USER is not told)
  /remove USER          remove contact USER (/block USER: also drop its requests; /unblock)
  /contacts             your contacts, online or when last seen, and requests waiting
  /history USER [N]     show the last N (default 20) messages with USER
  /search TEXT          show the messages that contain TEXT
  /help                 show the commands
  /quit                 log out and leave (also Ctrl-C, end of input, SIGTERM, SIGHUP)
Keys: Tab completes commands and names; Up/Down recall earlier lines; //TEXT sends /TEXT.

Options:
  --json                JSON Lines on stdout (one object per event), for scripts
  --plain               line by line, even in a terminal big enough for the full screen
                        (from ${FULL_SCREEN_FROM.columns}×${FULL_SCREEN_FROM.rows}: the conversation, the people online beside it,
                        a status row and the input row)
  --keepalive SECONDS   heartbeat interval (default 10)
  --bind ADDR[:PORT]    local address and port to use (default any)
  --config DIR          where keys live (default $XDG_CONFIG_HOME/p2p or ~/.config/p2p)
  --accept anyone|known who may start a conversation with you: anyone online (default; at most
                        30 new people at once, then 10 a minute), or only known users (whose key
                        you pinned when you talked before) and those you write to
  --public              on a coordinator run with --presence contacts, be listed to seed-only
                        clients (other users see you only once you are contacts)
  --data DIR            where the history lives (default $XDG_DATA_HOME/p2p or
                        ~/.local/share/p2p)
  --passphrase          ask for a passphrase to encrypt the history with (on the terminal;
                        scripts set P2P_PASSPHRASE); a history made with one always needs it
  --no-history          keep no history: nothing is written, nothing pending survives a restart
  -h, --help            show this help`;

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string", default: "0.0.0.0" },
      port: { type: "string", default: "7000" },
      "tcp-port": { type: "string" },
      "peer-timeout": { type: "string", default: "45" },
      data: { type: "string" },
      "name-ttl": { type: "string", default: "180" },
      "mailbox-port": { type: "string" },
      "no-mailbox": { type: "boolean" },
      "mailbox-ttl": { type: "string", default: "14d" },
      "mailbox-per-user": { type: "string" },
      "mailbox-per-user-bytes": { type: "string" },
      "mailbox-per-ip": { type: "string" },
      "mailbox-per-ip-bytes": { type: "string" },
      "mailbox-max": { type: "string" },
      "mailbox-max-bytes": { type: "string" },
      "mailbox-max-message": { type: "string" },
      "mailbox-requests-per-ip": { type: "string" },
      presence: { type: "string", default: "everyone" },
      "batch-ms": { type: "string" },
      "max-users": { type: "string" },
      "max-pending": { type: "string" },
      "logins-per-ip": { type: "string" },
      "datagrams-per-ip": { type: "string" },
      "tcp-per-ip": { type: "string" },
      "max-tcp": { type: "string" },
      "tcp-idle": { type: "string" },
      "max-datagram": { type: "string" },
      "max-line": { type: "string" },
      "names-per-ip": { type: "string" },
      "new-names-per-ip-per-day": { type: "string" },
      "relay-bytes-per-user": { type: "string" },
      "relay-packets-per-user": { type: "string" },
      "relay-bytes-per-ip": { type: "string" },
      "relay-packets-per-ip": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const count = (name: keyof typeof values): number | undefined => {
    const text = values[name];
    if (typeof text !== "string") return undefined;
    if (!/^[0-9]+$/.test(text) || Number(text) < 1) {
      throw new UsageError(`--${name} must be a whole number of at least 1, not "${text}"`);
    }
    return Number(text);
  };
  const idle = values["tcp-idle"];
  let limits: Limits;
  try {
    limits = resolveLimits({
      maxUsers: count("max-users"),
      maxPending: count("max-pending"),
      loginsPerSecond: count("logins-per-ip"),
      datagramsPerSecond: count("datagrams-per-ip"),
      tcpPerAddress: count("tcp-per-ip"),
      maxTcp: count("max-tcp"),
      tcpIdleMs: idle === undefined ? undefined : secondsOption(idle, "--tcp-idle") * 1000,
      maxDatagramBytes: count("max-datagram"),
      maxLineBytes: count("max-line"),
      namesPerAddress: count("names-per-ip"),
      newNamesPerAddressPerDay: count("new-names-per-ip-per-day"),
      relayBytesPerUser: count("relay-bytes-per-user"),
      relayPacketsPerUser: count("relay-packets-per-user"),
      relayBytesPerAddress: count("relay-bytes-per-ip"),
      relayPacketsPerAddress: count("relay-packets-per-ip"),
    });
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
  const batchMs = count("batch-ms");
  const port = portOption(values.port, "--port", true);
  const tcpPort = values["tcp-port"] === undefined
    ? undefined
    : portOption(values["tcp-port"], "--tcp-port", true);
  const timeout = secondsOption(values["peer-timeout"], "--peer-timeout");
  const ttlDays = Number(values["name-ttl"]);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(values["name-ttl"]) || ttlDays <= 0) {
    throw new UsageError(
      `--name-ttl must be a number of days above 0, not "${values["name-ttl"]}"`,
    );
  }
  const maxMessage = count("mailbox-max-message");
  if (maxMessage !== undefined && maxMessage > Q.maxMailBytes) {
    throw new UsageError(
      `--mailbox-max-message may be at most ${Q.maxMailBytes}, not ${maxMessage}`,
    );
  }
  const quotas: Partial<MailboxQuotas> = {
    perRecipientCount: count("mailbox-per-user"),
    perRecipientBytes: count("mailbox-per-user-bytes"),
    perSenderCount: count("mailbox-per-ip"),
    perSenderBytes: count("mailbox-per-ip-bytes"),
    totalCount: count("mailbox-max"),
    totalBytes: count("mailbox-max-bytes"),
    maxMailBytes: maxMessage,
  };
  const requests = count("mailbox-requests-per-ip");
  const mailbox = values["no-mailbox"] ? false as const : {
    port: values["mailbox-port"] === undefined
      ? undefined
      : portOption(values["mailbox-port"], "--mailbox-port", true),
    ttlMs: durationOption(values["mailbox-ttl"], "--mailbox-ttl"),
    quotas: Object.fromEntries(Object.entries(quotas).filter(([, v]) => v !== undefined)),
    limits: requests === undefined ? {} : { requestsPerSecond: requests },
  };
  const presence = PRESENCE_MODES.find((m) => m === values.presence);
  if (!presence) {
    throw new UsageError(`--presence takes everyone or contacts, not "${values.presence}"`);
  }
  let coordinator: Coordinator;
  let dataDir: string;
  try {
    dataDir = values.data ?? defaultDataDir();
    coordinator = await Coordinator.start({
      host: values.host,
      port,
      tcpPort,
      peerTimeoutMs: timeout * 1000,
      limits,
      batchMs,
      dataDir,
      nameTtlMs: ttlDays * 24 * 3600 * 1000,
      mailbox,
      presence,
    });
  } catch (err) {
    if (!(err instanceof DatabaseError)) throw err;
    console.error(err.message);
    return 1;
  }
  // Listening for the signals before saying we listen: a Ctrl-C right after must still stop us
  // cleanly (exit 0), not kill us.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  console.error(
    `${new Date().toISOString()} p2p ${VERSION} coordinator on ${values.host} ` +
      `UDP ${coordinator.udpPort}, TCP ${coordinator.tcpPort}, peer timeout ${timeout} s, ` +
      `presence to ${presence}, up to ${limits.maxUsers} users`,
  );
  const box = coordinator.mailbox;
  console.error(
    `${new Date().toISOString()} ` +
      (box
        ? `mailbox on TCP ${box.port}: ${box.store.total.count} message(s) waiting`
        : "no mailbox"),
  );
  console.error(
    `${new Date().toISOString()} data in ${dataDir}: ${coordinator.owners.size} names ` +
      `registered, ${coordinator.contacts.pairs} contact pairs; coordinator key ${
        fingerprint(coordinator.store.keyPair.publicKey)
      }`,
  );
  await stopped;
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
      accept: { type: "string", default: "anyone" },
      data: { type: "string" },
      passphrase: { type: "boolean", default: false },
      "no-history": { type: "boolean", default: false },
      plain: { type: "boolean", default: false },
      public: { type: "boolean", default: false },
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
    username,
    json: values.json,
    bind,
    keepaliveMs: secondsOption(values.keepalive, "--keepalive") * 1000,
    configDir: values.config,
    plain: values.plain,
    public: values.public,
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

/** A duration: a number with a unit (`d`, `h`, `m`, `s`, `ms`); in milliseconds. */
function durationOption(text: string, name: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(text);
  const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const ms = m ? Number(m[1]) * units[m[2] as keyof typeof units] : 0;
  if (!(ms >= 1)) {
    throw new UsageError(`${name} must be a duration such as 14d, 12h or 30s, not "${text}"`);
  }
  return ms;
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
