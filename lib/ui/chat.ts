/**
 * `p2p chat`: reads commands from stdin, drives a {@linkcode Peer}, and shows its events —
 * as a terminal chat (conversations, completion, the prompt kept intact while messages arrive;
 * a full screen in a big enough terminal) or as JSON Lines (`--json`). It opens the user's
 * history (`lib/store/history.ts`) unless `--no-history`, shows its backlog at start (the last
 * lines with each recent contact, and every message still pending), and answers `/history` and
 * `/search` from it. SIGINT, SIGTERM and SIGHUP all log out before exiting, so that the name is
 * free again at once.
 *
 * @example
 * ```ts
 * const code = await runChat({ server: { host: "127.0.0.1", port: 7000 }, username: "alice",
 *   json: true });
 * ```
 * @module
 */
import process from "node:process";
import readline from "node:readline";
import type { PeerEvent } from "../peer/events.ts";
import { type Endpoint, formatEndpoint } from "../protocol/endpoint.ts";
import { type AcceptPolicy, Peer } from "../peer.ts";
import { join } from "node:path";
import { defaultDataDir, History } from "../store/history.ts";
import { userDirName } from "../crypto/identity.ts";
import { MemoryLog, type MessageLog, type StoredMessage } from "../store/message_log.ts";
import { COMMAND_HELP, MAX_LINES, parseCommand } from "./commands.ts";
import { Conversations } from "./conversations.ts";
import { silentOutput } from "./screen.ts";
import { terminalSize } from "./surface.ts";
import { type Renderer, terminalRenderer } from "./terminal.ts";
import { FULL_SCREEN_FROM } from "./full_screen.ts";

/** Options for {@linkcode runChat}. */
export interface ChatOptions {
  server: Endpoint;
  /** Other coordinators of the community, tried in turn when one is lost. */
  fallbacks?: Endpoint[];
  username: string;
  /** JSON Lines on stdout instead of the terminal chat. */
  json: boolean;
  bind?: Endpoint;
  keepaliveMs?: number;
  configDir?: string;
  /** Who may start a conversation with us; default `anyone`. */
  accept?: AcceptPolicy;
  /** Line by line even in a terminal big enough for the full screen. */
  plain?: boolean;
  /** Ask a contacts-mode coordinator to list us to seed-only clients (`--public`). */
  public?: boolean;
  /** Ask the router for a mapping of the chat port; default true (`--no-port-mapping`: false). */
  portMapping?: boolean;
  /** STUN servers to ask how our NAT maps our socket (`--stun`). */
  stun?: Endpoint[];
  /**
   * The history: where it lives and its passphrase, or `false` to keep none (`--no-history`).
   * Its key file goes beside the identity, in `configDir`.
   */
  history: false | { dataDir?: string; passphrase?: string };
  /** Where accepted files go (`--downloads`); default {@linkcode defaultDownloads}. */
  downloads?: string;
  /** Largest file accepted (`--max-file-size`), bytes. */
  maxFileSize?: number;
}

/** `~/x` as the shell would read it (no shell reads what is typed in the chat). */
function expandHome(path: string): string {
  const home = Deno.env.get("HOME");
  return home && (path === "~" || path.startsWith("~/")) ? home + path.slice(1) : path;
}

/**
 * The default download directory: `$XDG_DOWNLOAD_DIR` when it is an absolute path, else
 * `~/Downloads/p2p`.
 *
 * @example
 * ```ts
 * defaultDownloads((name) => ({ HOME: "/home/ann" })[name]); // "/home/ann/Downloads/p2p"
 * ```
 */
export function defaultDownloads(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string {
  const xdg = getEnv("XDG_DOWNLOAD_DIR");
  if (xdg?.startsWith("/")) return xdg;
  const home = getEnv("HOME");
  if (!home) throw new Error("Cannot find a download directory: HOME is not set; use --downloads");
  return join(home, "Downloads", "p2p");
}

/** Lines of the history shown when a conversation opens with nothing unread. */
const OPEN_LINES = 5;

/** The backlog at start: this many lines with each of the most recent contacts. */
const BACKLOG = { contacts: 10, perContact: 5 };

/** A stored message as a `history` event of `source`, seen by `me`. */
export function historyEvent(
  msg: StoredMessage,
  me: string,
  source: "backlog" | "history" | "search",
): PeerEvent {
  return {
    event: "history",
    source,
    from: msg.outgoing ? me : msg.peer,
    to: msg.outgoing ? msg.peer : msg.group ? "*" : me,
    text: msg.text,
    ...(msg.group ? { group: true } : {}),
    uid: msg.uid,
    time: new Date(msg.time).toISOString(),
    state: msg.state,
    ...(msg.reason === undefined ? {} : { reason: msg.reason }),
    ...(msg.path === undefined ? {} : { path: msg.path }),
  };
}

/** The backlog: the recent lines with each contact, and every message still pending, in order. */
function backlog(log: MessageLog): StoredMessage[] {
  const lines = log.recent(BACKLOG);
  const shown = new Set(lines.map((m) => m.uid));
  const pending = log.pending().filter((m) => !shown.has(m.uid));
  // Pending lines older than the recent ones come first, as in the history.
  return [...pending, ...lines].sort((a, b) => a.time - b.time);
}

export { FULL_SCREEN_FROM };

/** Signals that end the chat, each after logging out. */
const QUIT_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** How long a signal lets messages in flight finish before logging out. */
const SIGNAL_DRAIN_MS = 300;

function jsonRenderer(): Renderer {
  const line = (value: unknown) => {
    try {
      process.stdout.write(JSON.stringify(value) + "\n");
    } catch {
      // stdout is gone: logging out goes on
    }
  };
  return {
    event: (e: PeerEvent) => line(e),
    help: () => line({ event: "help", commands: COMMAND_HELP }),
    sendingToAll: (_text, send) => send(),
    opened: () => {},
    detach: () => {},
    close: () => {},
  };
}

/** Why `--bind` failed, in words, when the port is taken; other errors as they are. */
function startError(err: Error & { code?: string }, bind: Endpoint | undefined): string {
  if (bind && (err.code === "EADDRINUSE" || err instanceof Deno.errors.AddrInUse)) {
    return `cannot use --bind ${formatEndpoint(bind)}: that port is already in use on this ` +
      `machine (another p2p chat?); choose another port, or leave it out to use any free one`;
  }
  return err.message;
}

/** Runs the chat until `/quit`, end of input or a signal. Resolves with the exit code. */
export async function runChat(options: ChatOptions): Promise<number> {
  const interactive = !options.json && process.stdin.isTTY === true &&
    process.stdout.isTTY === true;
  const size = interactive ? terminalSize() : undefined;
  const fullScreen = !options.plain && size !== undefined &&
    size.columns >= FULL_SCREEN_FROM.columns && size.rows >= FULL_SCREEN_FROM.rows;
  const talk = new Conversations();
  let peer: Peer | undefined;
  const names = () => peer?.who().map((u) => u.user) ?? [];
  /** Everyone seen online this session: a name typed in another case still means them. */
  const seen = new Set<string>();
  let completer: ((line: string) => [string[], string]) | undefined;
  const rl = readline.createInterface({
    input: process.stdin,
    // The full screen draws the input row itself; readline only edits it.
    output: fullScreen ? silentOutput() : interactive ? process.stdout : undefined,
    terminal: interactive,
    completer: interactive ? (line: string) => completer!(line) : undefined,
  });
  let submitted: (line: string) => void = () => {};
  let ui: Renderer;
  if (options.json) ui = jsonRenderer();
  else {
    const terminal = terminalRenderer(rl, { interactive, fullScreen, talk, names });
    completer = terminal.completer;
    submitted = terminal.submitted;
    ui = terminal;
  }
  let log: MessageLog = new MemoryLog();
  const pending: string[] = [];
  // "drain": let messages in flight finish first (/quit, end of input); "signal": briefly.
  let quit: "drain" | "signal" | undefined;
  let wake = () => {};
  const quitRequested = new Promise<void>((resolve) => wake = resolve);
  const requestQuit = (how: "drain" | "signal") => {
    if (quit !== "signal") quit = how;
    wake();
  };
  const onSignal: Record<string, () => void> = {};
  for (const signal of QUIT_SIGNALS) {
    onSignal[signal] = () => {
      // The terminal hung up: writing to it would fail, logging out must not.
      if (signal === "SIGHUP") ui.detach();
      requestQuit("signal");
    };
    Deno.addSignalListener(signal, onSignal[signal]);
  }

  const error = (message: string) => ui.event({ event: "error", message });
  // A command that fails (a history file damaged mid-session, …) is reported; the chat goes on.
  const handle = (p: Peer, line: string) => {
    try {
      command(p, line);
    } catch (err) {
      error((err as Error).message);
    }
  };
  const command = (p: Peer, line: string) => {
    const cmd = parseCommand(line);
    const who = (typed: string) => talk.resolve(typed, [...names(), ...seen]);
    switch (cmd.kind) {
      case "msg":
        p.send(who(cmd.to), cmd.text);
        return;
      case "say":
        if (talk.target === undefined) {
          error(
            "Whom to? /chat USER to talk to someone (then type away), /msg USER TEXT for one " +
              "message, /all TEXT for everyone",
          );
        } else p.send(talk.target, cmd.text);
        return;
      case "reply":
        if (talk.lastFrom === undefined) {
          error("Nobody has written to you yet: /r has nobody to reply to");
        } else p.send(talk.lastFrom, cmd.text);
        return;
      case "all":
        ui.sendingToAll(cmd.text, () => p.sendAll(cmd.text));
        return;
      case "chat": {
        const user = cmd.user === undefined ? undefined : who(cmd.user);
        if (user === p.username) {
          error("That is you: /chat someone else");
          return;
        }
        const unread = talk.open(user);
        ui.opened(user, unread);
        // Nothing unread: the window opens on the last lines of the history with them.
        if (user !== undefined && unread.length === 0 && log.persistent) {
          for (const m of log.conversation(user, OPEN_LINES)) {
            ui.event(historyEvent(m, options.username, "history"));
          }
        }
        return;
      }
      case "fingerprint":
        p.showFingerprint(cmd.user === undefined ? undefined : who(cmd.user));
        return;
      case "trust":
        p.trust(who(cmd.user)).catch((err) => error(err.message));
        return;
      case "who":
        ui.event({ event: "who", users: p.who() });
        return;
      case "contacts":
        p.contacts();
        return;
      case "contact":
        switch (cmd.op) {
          case "add":
            return p.addContact(cmd.user, cmd.note);
          case "accept":
            return p.acceptContact(cmd.user);
          case "decline":
            return p.declineContact(cmd.user);
          case "remove":
            return p.removeContact(cmd.user);
          case "block":
          case "unblock":
            return p.blockContact(cmd.user, cmd.op === "unblock");
        }
        return;
      case "history":
      case "search": {
        if (!log.persistent) {
          ui.event({ event: "error", message: "History is off (--no-history)" });
          return;
        }
        const lines = cmd.kind === "history"
          ? log.conversation(who(cmd.user), cmd.limit)
          : log.search(cmd.text, MAX_LINES);
        for (const m of lines) ui.event(historyEvent(m, options.username, cmd.kind));
        if (lines.length === 0) {
          ui.event({
            event: "error",
            message: cmd.kind === "history"
              ? `No history with ${cmd.user}`
              : `No message contains "${cmd.text}"`,
          });
        }
        return;
      }
      case "send":
        p.sendFiles(who(cmd.to), cmd.paths.map(expandHome)).catch((err) => error(err.message));
        return;
      case "accept-files":
        return p.acceptFiles(cmd.id, cmd.dir === undefined ? undefined : expandHome(cmd.dir));
      case "decline-files":
        return p.declineFiles(cmd.id);
      case "cancel-files":
        return p.cancelFiles(cmd.id);
      case "files":
        p.files();
        return;
      case "help":
        ui.help();
        return;
      case "quit":
        requestQuit("drain");
        return;
      case "invalid":
        error(cmd.message);
        return;
      case "none":
        return;
    }
  };

  rl.on("SIGINT", onSignal.SIGINT);
  rl.on("line", (line: string) => {
    if (quit) return;
    submitted(line);
    if (peer) handle(peer, line);
    else pending.push(line); // typed (or piped) before the login finished
    if (interactive && !fullScreen) rl.prompt(true); // a line that shows nothing keeps its prompt
  });
  rl.on("close", () => requestQuit("drain"));

  const cleanup = () => {
    for (const signal of QUIT_SIGNALS) Deno.removeSignalListener(signal, onSignal[signal]);
    rl.close();
    log.close();
    ui.close();
  };
  /** Whether the history has lines already: someone who has chatted here gets the brief help. */
  let returning = false;
  try {
    if (options.history) {
      log = await History.open({
        username: options.username,
        configDir: options.configDir,
        ...options.history,
        onError: (err) => error(err.message), // a batch of records that could not be written
      });
      const lines = backlog(log);
      returning = lines.length > 0;
      for (const m of lines) ui.event(historyEvent(m, options.username, "backlog"));
    }
    peer = await Peer.start({
      server: options.server,
      fallbacks: options.fallbacks,
      username: options.username,
      bind: options.bind,
      keepaliveMs: options.keepaliveMs,
      configDir: options.configDir,
      accept: options.accept,
      public: options.public,
      portMapping: options.portMapping,
      stun: options.stun,
      history: log,
      files: {
        downloads: options.downloads ?? defaultDownloads(),
        stateFile: join(
          (options.history ? options.history.dataDir : undefined) ?? defaultDataDir(),
          "users",
          userDirName(options.username),
          "transfers.json",
        ),
        maxFileSize: options.maxFileSize,
      },
      onEvent: (e) => {
        if (e.event === "online") seen.add(e.user);
        talk.note(e); // who wrote last, unread counts: for --json as for the terminal
        ui.event(e);
      },
    });
  } catch (err) {
    error(startError(err as Error, options.bind));
    cleanup();
    return 1;
  }
  if (quit !== "signal") {
    for (const line of pending.splice(0)) handle(peer, line);
  }
  // Once, and in full only until the history has lines and when it fits in half the terminal: a
  // login again after an outage, or the start of someone who has chatted here before, does not
  // print all of it again.
  if (interactive && !quit) ui.help(returning ? "brief" : "first");
  await quitRequested;
  if (quit === "drain") await peer.drain();
  else {
    // What is in flight gets a moment; what is not delivered by then is reported undelivered.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([peer.drain(), new Promise((r) => timer = setTimeout(r, SIGNAL_DRAIN_MS))]);
    clearTimeout(timer);
  }
  await peer.close();
  cleanup();
  return 0;
}
