/**
 * The chat commands users type (and scripts send in `--json` mode): a pure parser. Command words
 * are case-insensitive (`/MSG` is `/msg`); user names are taken in NFC form, and matched to the
 * people online case-insensitively later, by the conversation state (`conversations.ts`).
 *
 * @example
 * ```ts
 * parseCommand("/msg bob hello there"); // { kind: "msg", to: "bob", text: "hello there" }
 * parseCommand("hello"); // { kind: "say", text: "hello" }: to the current conversation
 * ```
 * @module
 */
import { normalizeUsername } from "../protocol/username.ts";
import { CONTACT_OPS, type ContactOp } from "../protocol/seed.ts";

/** A parsed command line. */
export type Command =
  | { kind: "msg"; to: string; text: string }
  /** Plain text: to the current conversation. */
  | { kind: "say"; text: string }
  | { kind: "reply"; text: string }
  | { kind: "all"; text: string }
  /** Open a conversation with `user`, or go back to the everyone view (no `user`). */
  | { kind: "chat"; user?: string }
  | { kind: "fingerprint"; user?: string }
  | { kind: "trust"; user: string }
  | { kind: "who" }
  /** A contact operation on `user`; `note` only with `add` (a few words for them). */
  | { kind: "contact"; op: ContactCommand; user: string; note?: string }
  | { kind: "contacts" }
  | { kind: "history"; user: string; limit: number }
  | { kind: "search"; text: string }
  /** Offer files (directories recursively) to `to`. */
  | { kind: "send"; to: string; paths: string[] }
  /** Answer a file offer: `id` undefined means the latest; `dir` where to save. */
  | { kind: "accept-files"; id?: number; dir?: string }
  | { kind: "decline-files"; id?: number }
  | { kind: "cancel-files"; id: number }
  | { kind: "files" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "none" }
  | { kind: "invalid"; message: string };

/** What the contact commands do: `/add`, `/accept`, `/decline`, `/remove`, `/block`, `/unblock`. */
// The contact commands are the protocol's operations, one for one (`/add` sends `add`…).
export type ContactCommand = ContactOp;

/** Lines `/history USER` shows; at most {@linkcode MAX_LINES} are shown whatever N says. */
export const HISTORY_LINES = 20;
/** Most lines `/history` and `/search` show. */
export const MAX_LINES = 1000;

/** One-line help for each command, in the order `/help` shows them. */
export const COMMAND_HELP: readonly string[] = [
  "/chat USER       talk to USER: plain lines go to them (alias /query)",
  "/chat, /all      back to the everyone view (every conversation shown)",
  "/msg USER TEXT   send TEXT to USER",
  "/r TEXT          reply to whoever wrote last",
  "/all TEXT        send TEXT to everyone online",
  "/who             who is online, the path to each, and unread messages",
  "/fingerprint [USER]  show USER's key fingerprint and safety number (or yours)",
  "/trust USER      accept USER's changed key (check its fingerprint with them first)",
  "/add USER [NOTE]  ask USER to be your contact; /accept or /decline USER",
  "/contacts        your contacts; /remove, /block, /unblock USER",
  "/history USER [N]  show the last N (default 20) messages with USER",
  "/search TEXT     show the messages that contain TEXT",
  "/send USER PATH...  offer files or directories to USER (quote paths with spaces)",
  "/accept [ID] [DIR]  take file offer ID (default the latest) into DIR; /decline [ID]",
  "/files           file transfers and their state; /cancel ID stops one",
  "/help            show this help",
  "/quit            log out and leave (also Ctrl-C, Ctrl-D)",
  "Keys: Tab completes commands and names; Up/Down recall lines; //TEXT sends /TEXT.",
];

/** The command words, for completion (aliases included). */
export const COMMAND_WORDS: readonly string[] = [
  "/accept",
  "/add",
  "/all",
  "/block",
  "/cancel",
  "/chat",
  "/contacts",
  "/decline",
  "/files",
  "/fingerprint",
  "/help",
  "/history",
  "/msg",
  "/query",
  "/quit",
  "/r",
  "/remove",
  "/search",
  "/send",
  "/trust",
  "/unblock",
  "/who",
];

/** Words of `text`, where `"a b"` is one word (quotes dropped). */
function words(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/** A transfer's number, `3` or `#3`; undefined when `text` is not one. */
function transferId(text: string): number | undefined {
  const m = /^#?([0-9]{1,9})$/.exec(text.trim());
  return m ? Number(m[1]) : undefined;
}

/**
 * Parses one input line. Blank lines are `none`; a line not starting with `/` is `say` (a line
 * starting with `//` is text starting with `/`); anything unknown is `invalid` with a reason.
 */
export function parseCommand(line: string): Command {
  const trimmed = line.trim();
  if (trimmed === "") return { kind: "none" };
  if (!trimmed.startsWith("/")) return { kind: "say", text: trimmed };
  if (trimmed.startsWith("//")) return { kind: "say", text: trimmed.slice(1) };
  const [typed] = trimmed.split(/\s+/, 1);
  const word = typed.toLowerCase();
  const rest = trimmed.slice(typed.length).trimStart();
  const oneName = (): string | undefined =>
    rest === "" || /\s/.test(rest) ? undefined : normalizeUsername(rest);
  switch (word) {
    case "/msg": {
      const space = rest.search(/\s/);
      if (rest === "" || space < 0) {
        return { kind: "invalid", message: "Usage: /msg USER TEXT" };
      }
      const text = rest.slice(space).trimStart();
      return { kind: "msg", to: normalizeUsername(rest.slice(0, space)), text };
    }
    case "/r":
      return rest === ""
        ? { kind: "invalid", message: "Usage: /r TEXT (replies to whoever wrote last)" }
        : { kind: "reply", text: rest };
    case "/all":
      return rest === "" ? { kind: "chat" } : { kind: "all", text: rest };
    case "/chat":
    case "/query": {
      if (rest === "") return { kind: "chat" };
      const user = oneName();
      return user === undefined
        ? { kind: "invalid", message: `Usage: ${word} [USER] (then type your messages)` }
        : { kind: "chat", user };
    }
    case "/fingerprint":
      if (rest === "") return { kind: "fingerprint" };
      return /\s/.test(rest)
        ? { kind: "invalid", message: "Usage: /fingerprint [USER]" }
        : { kind: "fingerprint", user: normalizeUsername(rest) };
    case "/trust": {
      const user = oneName();
      return user === undefined
        ? { kind: "invalid", message: "Usage: /trust USER" }
        : { kind: "trust", user };
    }
    case "/who":
      return { kind: "who" };
    case "/contacts":
      return { kind: "contacts" };
    case "/add": {
      const space = rest.search(/\s/);
      if (rest === "") return { kind: "invalid", message: "Usage: /add USER [NOTE]" };
      if (space < 0) return { kind: "contact", op: "add", user: normalizeUsername(rest) };
      const note = rest.slice(space).trimStart();
      return { kind: "contact", op: "add", user: normalizeUsername(rest.slice(0, space)), note };
    }
    case "/send": {
      const [to, ...paths] = words(rest);
      return to === undefined || paths.length === 0
        ? { kind: "invalid", message: "Usage: /send USER PATH... (files or directories)" }
        : { kind: "send", to: normalizeUsername(to), paths };
    }
    case "/files":
      return { kind: "files" };
    case "/cancel": {
      const id = transferId(rest);
      return id === undefined
        ? { kind: "invalid", message: "Usage: /cancel ID (/files lists the transfers)" }
        : { kind: "cancel-files", id };
    }
    case "/accept":
    case "/decline": {
      // No argument, or a number first: a file offer; a name: a contact request.
      const [first, ...more] = words(rest);
      const id = first === undefined ? undefined : transferId(first);
      if (first === undefined || id !== undefined) {
        if (word === "/decline") {
          return more.length > 0
            ? { kind: "invalid", message: "Usage: /decline [ID]" }
            : { kind: "decline-files", id };
        }
        if (more.length > 1) return { kind: "invalid", message: "Usage: /accept [ID] [DIR]" };
        return { kind: "accept-files", id, ...(more[0] ? { dir: more[0] } : {}) };
      }
      const user = oneName();
      const op = CONTACT_OPS.find((c) => `/${c}` === word)!;
      return user === undefined
        ? { kind: "invalid", message: `Usage: ${word} USER, or ${word} [ID] for a file offer` }
        : { kind: "contact", op, user };
    }
    case "/remove":
    case "/block":
    case "/unblock": {
      const user = oneName();
      const op = CONTACT_OPS.find((c) => `/${c}` === word)!;
      return user === undefined
        ? { kind: "invalid", message: `Usage: ${word} USER` }
        : { kind: "contact", op, user };
    }
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
        message: `Unknown command ${typed}: type /help for the list (//TEXT sends /TEXT)`,
      };
  }
}
