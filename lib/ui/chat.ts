/**
 * `p2p chat`: reads commands from stdin, drives a {@linkcode Peer}, and shows its events —
 * as a terminal chat (prompt kept intact while messages arrive) or as JSON Lines (`--json`).
 * It opens the user's history (`lib/store/history.ts`) unless `--no-history`, shows its backlog
 * at start (the last lines with each recent contact, and every message still pending), and
 * answers `/history` and `/search` from it.
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
import type { Endpoint } from "../protocol/endpoint.ts";
import { type AcceptPolicy, Peer } from "../peer.ts";
import { History } from "../store/history.ts";
import { MemoryLog, type MessageLog, type StoredMessage } from "../store/message_log.ts";
import { COMMAND_HELP, MAX_LINES, parseCommand } from "./commands.ts";
import { type Renderer, terminalRenderer } from "./terminal.ts";

/** Options for {@linkcode runChat}. */
export interface ChatOptions {
  server: Endpoint;
  username: string;
  /** JSON Lines on stdout instead of the terminal chat. */
  json: boolean;
  bind?: Endpoint;
  keepaliveMs?: number;
  configDir?: string;
  /** Who may start a conversation with us; default `anyone`. */
  accept?: AcceptPolicy;
  /**
   * The history: where it lives and its passphrase, or `false` to keep none (`--no-history`).
   * Its key file goes beside the identity, in `configDir`.
   */
  history: false | { dataDir?: string; passphrase?: string };
}

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

function jsonRenderer(): Renderer {
  return {
    event: (e: PeerEvent) => process.stdout.write(JSON.stringify(e) + "\n"),
    help: () =>
      process.stdout.write(JSON.stringify({ event: "help", commands: COMMAND_HELP }) + "\n"),
    close: () => {},
  };
}

/** Runs the chat until `/quit`, end of input or Ctrl-C. Resolves with the exit code. */
export async function runChat(options: ChatOptions): Promise<number> {
  const interactive = !options.json && process.stdin.isTTY === true;
  const rl = readline.createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
  });
  const ui = options.json ? jsonRenderer() : terminalRenderer(rl, { interactive });
  let peer: Peer | undefined;
  let log: MessageLog = new MemoryLog();
  const pending: string[] = [];
  // "drain": let messages in flight finish first (/quit, end of input); "now": Ctrl-C.
  let quit: "drain" | "now" | undefined;
  let wake = () => {};
  const quitRequested = new Promise<void>((resolve) => wake = resolve);
  const requestQuit = (how: "drain" | "now") => {
    if (quit !== "now") quit = how;
    wake();
  };
  const onSigint = () => requestQuit("now");

  const handle = (p: Peer, line: string) => {
    const cmd = parseCommand(line);
    switch (cmd.kind) {
      case "msg":
        p.send(cmd.to, cmd.text);
        return;
      case "all":
        p.sendAll(cmd.text);
        return;
      case "fingerprint":
        p.showFingerprint(cmd.user);
        return;
      case "trust":
        p.trust(cmd.user).catch((err) => ui.event({ event: "error", message: err.message }));
        return;
      case "who":
        ui.event({ event: "who", users: p.who() });
        return;
      case "history":
      case "search": {
        if (!log.persistent) {
          ui.event({ event: "error", message: "History is off (--no-history)" });
          return;
        }
        const lines = cmd.kind === "history"
          ? log.conversation(cmd.user, cmd.limit)
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
      case "help":
        ui.help();
        return;
      case "quit":
        requestQuit("drain");
        return;
      case "invalid":
        ui.event({ event: "error", message: cmd.message });
        return;
      case "none":
        return;
    }
  };

  Deno.addSignalListener("SIGINT", onSigint);
  rl.on("SIGINT", onSigint);
  rl.on("line", (line: string) => {
    if (quit) return;
    if (peer) handle(peer, line);
    else pending.push(line); // typed (or piped) before the login finished
  });
  rl.on("close", () => requestQuit("drain"));

  const cleanup = () => {
    Deno.removeSignalListener("SIGINT", onSigint);
    rl.close();
    log.close();
    ui.close();
  };
  try {
    if (options.history) {
      log = await History.open({
        username: options.username,
        configDir: options.configDir,
        ...options.history,
      });
      for (const m of backlog(log)) ui.event(historyEvent(m, options.username, "backlog"));
    }
    peer = await Peer.start({
      server: options.server,
      username: options.username,
      bind: options.bind,
      keepaliveMs: options.keepaliveMs,
      configDir: options.configDir,
      accept: options.accept,
      history: log,
      onEvent: (e) => ui.event(e),
    });
  } catch (err) {
    ui.event({ event: "error", message: (err as Error).message });
    cleanup();
    return 1;
  }
  if (quit !== "now") {
    for (const line of pending.splice(0)) handle(peer, line);
  }
  if (interactive && !quit) ui.help();
  await quitRequested;
  if (quit === "drain") await peer.drain();
  await peer.close();
  cleanup();
  return 0;
}
