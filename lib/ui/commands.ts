/**
 * The chat commands users type (and scripts send in `--json` mode): a pure parser.
 *
 * @example
 * ```ts
 * parseCommand("/msg bob hello there"); // { kind: "msg", to: "bob", text: "hello there" }
 * ```
 * @module
 */
import { normalizeUsername } from "../protocol/username.ts";

/** A parsed command line. */
export type Command =
  | { kind: "msg"; to: string; text: string }
  | { kind: "all"; text: string }
  | { kind: "fingerprint"; user?: string }
  | { kind: "trust"; user: string }
  | { kind: "who" }
  | { kind: "history"; user: string; limit: number }
  | { kind: "search"; text: string }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "none" }
  | { kind: "invalid"; message: string };

/** Lines `/history USER` shows; at most {@linkcode MAX_LINES} are shown whatever N says. */
export const HISTORY_LINES = 20;
/** Most lines `/history` and `/search` show. */
export const MAX_LINES = 1000;

/** One-line help for each command, in the order `/help` shows them. */
export const COMMAND_HELP: readonly string[] = [
  "/msg USER TEXT   send TEXT to USER",
  "/all TEXT        send TEXT to everyone online",
  "/who             list who is online and the path to each",
  "/fingerprint [USER]  show USER's key fingerprint and safety number (or yours)",
  "/trust USER      accept USER's changed key (check its fingerprint with them first)",
  "/history USER [N]  show the last N (default 20) messages with USER",
  "/search TEXT     show the messages that contain TEXT",
  "/help            show this help",
  "/quit            log out and leave (also Ctrl-C, Ctrl-D)",
];

/**
 * Parses one input line. Blank lines are `none`; anything unknown is `invalid` with a reason.
 * User names are taken in NFC form, as the coordinator knows them.
 */
export function parseCommand(line: string): Command {
  const trimmed = line.trim();
  if (trimmed === "") return { kind: "none" };
  const [word] = trimmed.split(/\s+/, 1);
  const rest = trimmed.slice(word.length).trimStart();
  switch (word) {
    case "/msg": {
      const space = rest.search(/\s/);
      if (rest === "" || space < 0) {
        return { kind: "invalid", message: "Usage: /msg USER TEXT" };
      }
      const text = rest.slice(space).trimStart();
      return { kind: "msg", to: normalizeUsername(rest.slice(0, space)), text };
    }
    case "/all":
      return rest === "" ? { kind: "invalid", message: "Usage: /all TEXT" } : {
        kind: "all",
        text: rest,
      };
    case "/fingerprint":
      if (/\s/.test(rest)) return { kind: "invalid", message: "Usage: /fingerprint [USER]" };
      return rest === ""
        ? { kind: "fingerprint" }
        : { kind: "fingerprint", user: normalizeUsername(rest) };
    case "/trust":
      if (rest === "" || /\s/.test(rest)) return { kind: "invalid", message: "Usage: /trust USER" };
      return { kind: "trust", user: normalizeUsername(rest) };
    case "/who":
      return { kind: "who" };
    case "/history": {
      const [user, count, extra] = rest === "" ? [] : rest.split(/\s+/);
      const limit = count === undefined ? HISTORY_LINES : Number(count);
      if (!user || extra !== undefined || !/^[0-9]+$/.test(count ?? "1") || limit < 1) {
        return { kind: "invalid", message: "Usage: /history USER [N]" };
      }
      return { kind: "history", user: normalizeUsername(user), limit: Math.min(limit, MAX_LINES) };
    }
    case "/search":
      return rest === ""
        ? { kind: "invalid", message: "Usage: /search TEXT" }
        : { kind: "search", text: rest };
    case "/help":
      return { kind: "help" };
    case "/quit":
      return { kind: "quit" };
    default:
      return {
        kind: "invalid",
        message: word.startsWith("/")
          ? `Unknown command ${word}: type /help for the list`
          : "Messages need a recipient: /msg USER TEXT (type /help for the list)",
      };
  }
}
