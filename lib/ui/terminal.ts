/**
 * The human front end: each event becomes one readable line (time stamp, text, colour; lines of
 * other conversations marked), and the prompt shows the current conversation and the unread
 * counts. The lines go to the full screen (`screen.ts`) in a big enough terminal, else to the line
 * mode here: each line wrapped between words to the terminal's width and printed above the input
 * line. Printing clears every row the input takes (a long input wraps onto several) before
 * writing and redraws it after, so that nothing is lost or drawn twice, whatever the input's
 * length, its wide characters, a resize or a burst of messages. Colour unless `NO_COLOR` is set
 * or stdout is not a terminal.
 *
 * @example
 * ```ts
 * const ui = terminalRenderer(rl, { interactive: true, talk: new Conversations() });
 * ui.event({ event: "message", from: "bob", to: "alice", text: "hi", id: 1, path: "direct" });
 * ```
 * @module
 */
import process from "node:process";
import type readline from "node:readline";
import { styleText } from "node:util";
import type { PeerEvent } from "../peer/events.ts";
import { COMMAND_HELP } from "./commands.ts";
import { complete } from "./completion.ts";
import type { Conversations } from "./conversations.ts";
import { Digest, type Shown } from "./digest.ts";
import { fullScreen } from "./screen.ts";
import {
  type Editor,
  type Style,
  type Surface,
  type SurfaceContext,
  terminalSize,
  terminalWriter,
} from "./surface.ts";
import { textWidth, wrapText } from "./text_width.ts";
import { describeFileEvent, FileProgress } from "./file_lines.ts";
import type { FileEvent } from "../files/file_events.ts";

/** Shows a peer's events, the help text and our own notes. */
export interface Renderer {
  event(e: PeerEvent): void;
  /**
   * The commands. `brief`: one line saying where they are (at the start of a returning user);
   * `first`: all of them when they fit in half the terminal, else that line (a first start must
   * not push the login and who is online off the screen).
   */
  help(mode?: "brief" | "first"): void;
  /** Runs `send`, which sends one message to everyone, so that it is shown as one line. */
  sendingToAll(text: string, send: () => void): void;
  /** Shows the conversation just opened (`undefined`: the everyone view) and its backlog. */
  opened(user: string | undefined, backlog: PeerEvent[]): void;
  /** Stops writing to the terminal (it hung up). */
  detach(): void;
  close(): void;
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * Replaces control characters (escape sequences, newlines…) with visible placeholders, so that a
 * peer's message or name cannot move the cursor, recolour or forge lines on our terminal.
 */
export function sanitize(text: string): string {
  return text.replace(CONTROL, (c) => c === "\n" ? "↵" : c === "\t" ? " " : "�");
}

/** What {@linkcode describeEvent} may add from the conversations: unread counts for `/who`. */
export interface DescribeContext {
  unread?: (user: string) => number;
}

/** Formats an event as one line of text (without colour), for people. */
export function describeEvent(e: PeerEvent, context: DescribeContext = {}): string {
  switch (e.event) {
    case "ready":
      return `logged in to ${e.server} as ${e.user} (the coordinator sees you at ${e.endpoint}; ` +
        `your fingerprint: ${e.fingerprint})`;
    case "online":
      return `${e.user} is online (${e.endpoint})`;
    case "offline":
      return `${e.user} went offline`;
    case "who": {
      if (e.users.length === 0) return "nobody else is online";
      const entry = (u: typeof e.users[number]) => {
        const unread = context.unread?.(u.user) ?? 0;
        return `${u.user} (${u.endpoint}, ${u.path}${unread > 0 ? `, ${unread} unread` : ""})`;
      };
      return `online: ${e.users.map(entry).join(", ")}`;
    }
    case "sent":
      return `${e.group ? "[all] " : ""}you → ${e.to}: ${e.text}  (#${e.id}, sending…)`;
    case "message":
      return `${e.to === "*" ? "[all] " : ""}${e.from}: ${e.text}` +
        (e.path === "relay" ? "  (relayed)" : "") +
        (e.via === "mailbox" ? `  (from your mailbox, sent ${e.time})` : "");
    case "delivered":
      return e.via === "mailbox"
        ? `✓ ${e.id ? `#${e.id}` : "a message"} delivered to ${e.to} (from their mailbox)`
        : `✓ #${e.id} delivered to ${e.to}`;
    case "deposited":
      return `✉ ${e.id ? `#${e.id}` : "a pending message"} left in ${e.to}'s mailbox` +
        (e.firstContact
          ? ` (sealed to the key the coordinator has for ${e.to}: you never talked before)`
          : "");
    case "undelivered":
      return `✗ #${e.id} NOT delivered to ${e.to}: ${e.reason}`;
    case "path":
      return e.path === "direct"
        ? `direct path to ${e.user} at ${e.endpoint}`
        : e.path === "turn"
        ? `talking to ${e.user} through a TURN relay at ${e.endpoint} (end-to-end encrypted)`
        : `talking to ${e.user} through the coordinator's relay (no direct path yet)`;
    case "key-changed":
      return `WARNING: ${e.user}'s key has CHANGED (was ${e.previous}, now ${e.fingerprint}). ` +
        `Someone may be impersonating them. Nothing will be sent to ${e.user} until you check ` +
        `the new fingerprint with them (/fingerprint ${e.user}) and type /trust ${e.user}`;
    case "trusted":
      return `you now trust ${e.user}'s new key ${e.fingerprint}`;
    case "fingerprint":
      return `${e.user}'s fingerprint: ${e.fingerprint}` +
        (e.unaccepted ? " (NEW key, not accepted: /trust it once you have compared it)" : "") +
        (e.safety ? `; safety number with you: ${e.safety}` : "");
    case "coordinator":
      return e.state === "lost"
        ? "lost contact with the coordinator; direct chats go on, retrying…"
        : "the coordinator is back";
    case "port-mapping":
      return e.endpoint
        ? `your router maps ${e.endpoint} to you (${PROTOCOL_NAMES[e.protocol ?? "pcp"]}, ` +
          `${e.lifetime} s, renewed): peers behind any NAT can reach you directly`
        : `no port mapping from your router: ${e.reason}`;
    case "knock":
      return e.accepted
        ? `${e.user} (fingerprint ${e.fingerprint}) wants to talk: accepted`
        : `refused a request to talk from ${e.user} (fingerprint ${e.fingerprint}): ${e.reason}`;
    case "contact-request":
      return `${e.user} (fingerprint ${e.fingerprint}) asks to be your contact` +
        (e.note ? `: "${e.note}"` : "") + ` — /accept ${e.user} or /decline ${e.user}`;
    case "contact-request-sent":
      return `asked ${e.user} to be your contact (you will see it when they accept)`;
    case "contact-added":
      return `${e.user} (fingerprint ${e.fingerprint}) is now your contact`;
    case "contact-removed":
      return `${e.user} is no longer your contact`;
    case "contact-blocked":
      return e.blocked
        ? `blocked ${e.user}: its contact requests no longer reach you`
        : `unblocked ${e.user}`;
    case "contacts": {
      const contacts = e.contacts.length === 0
        ? "no contacts yet (/add USER)"
        : "contacts: " + e.contacts.map((c) =>
          `${c.user} (${
            c.online
              ? "online"
              : c.lastSeen
              ? `last seen ${formatStamp(new Date(c.lastSeen))}`
              : "offline"
          })`
        ).join(", ");
      const requests = e.requests.map((r) => `${r.user}${r.note ? ` ("${r.note}")` : ""}`);
      return contacts +
        (requests.length > 0 ? `; waiting for your answer: ${requests.join(", ")}` : "");
    }
    case "turn":
      return e.state === "ready"
        ? `TURN relay ready on ${e.server} (relayed address ${e.relayed})`
        : `TURN relay unavailable on ${e.server}: ${e.reason}`;
    case "error":
      return `error: ${e.message}`;
    case "history":
      return describeHistory(e);
    default:
      return describeFileEvent(e) ?? "";
  }
}

/**
 * The time stamp of a line: `HH:MM` today, `YYYY-MM-DD HH:MM` another day (local time).
 *
 * @example
 * ```ts
 * formatStamp(new Date(2026, 0, 2, 9, 5), new Date(2026, 0, 2, 12)); // "09:05"
 * formatStamp(new Date(2026, 0, 1, 9, 5), new Date(2026, 0, 2, 12)); // "2026-01-01 09:05"
 * ```
 */
export function formatStamp(when: Date, now: Date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const time = `${two(when.getHours())}:${two(when.getMinutes())}`;
  const sameDay = when.getFullYear() === now.getFullYear() &&
    when.getMonth() === now.getMonth() && when.getDate() === now.getDate();
  return sameDay
    ? time
    : `${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())} ${time}`;
}

/**
 * The help lines with their descriptions in one column: a command wider than the usual padding
 * (`/fingerprint [USER]`) pushes every description right, rather than its own alone.
 *
 * @example
 * ```ts
 * alignHelp(["/who  who is online", "/fingerprint [USER]  a key"]);
 * // ["/who                 who is online", "/fingerprint [USER]  a key"]
 * ```
 */
export function alignHelp(lines: readonly string[]): string[] {
  const split = lines.map((line) => line.match(/^(\/\S*(?: \S+)*?) {2,}(\S.*)$/));
  const width = Math.max(0, ...split.map((m) => m ? textWidth(m[1]) : 0));
  return lines.map((line, i) => {
    const m = split[i];
    return m ? `${m[1]}${" ".repeat(width - textWidth(m[1]) + 2)}${m[2]}` : line;
  });
}

/** When an event happened: its `time` field (ISO 8601) when it has one, else now. */
function eventTime(e: PeerEvent): Date {
  const time = (e as { time?: unknown }).time;
  const when = typeof time === "string" ? new Date(time) : undefined;
  return when && !Number.isNaN(when.getTime()) ? when : new Date();
}

const STATE_NOTES: Record<string, string> = {
  sending: "  (pending)",
  delivered: "  ✓",
  deposited: "  (in the mailbox)",
  received: "",
};

/** A line of history: its date and time (local), who wrote to whom, and how it fared. */
function describeHistory(e: Extract<PeerEvent, { event: "history" }>): string {
  // The line's time stamp is the message's time (with its date when not today): not repeated.
  const group = e.group ? "[all] " : "";
  const who = e.state === "received" ? e.from : `you → ${e.to}`;
  const note = e.state === "undelivered"
    ? `  ✗ not delivered: ${e.reason ?? "no reason kept"}`
    : STATE_NOTES[e.state] ?? "";
  return `(${e.source}) ${group}${who}: ${e.text}${note}`;
}

const PROTOCOL_NAMES = { pcp: "PCP", natpmp: "NAT-PMP", upnp: "UPnP-IGD" } as const;

const STYLES: Record<PeerEvent["event"], Style> = {
  ready: "green",
  online: "cyan",
  offline: "yellow",
  who: "cyan",
  sent: "gray",
  message: "bold",
  delivered: "green",
  undelivered: "red",
  deposited: "green",
  path: "gray",
  "key-changed": "red",
  trusted: "yellow",
  fingerprint: "cyan",
  coordinator: "yellow",
  "port-mapping": "gray",
  knock: "yellow",
  "contact-request": "yellow",
  "contact-request-sent": "gray",
  "contact-added": "green",
  "contact-removed": "yellow",
  "contact-blocked": "yellow",
  contacts: "cyan",
  turn: "gray",
  error: "red",
  history: "dim",
  "file-offer": "yellow",
  "file-accepted": "cyan",
  "file-declined": "yellow",
  "file-progress": "gray",
  "file-resumed": "cyan",
  "file-done": "green",
  "file-failed": "red",
  files: "cyan",
};

/** Marks a line that belongs to another conversation than the current one. */
const OTHER = "» ";

/** Options for {@linkcode terminalRenderer}. */
export interface TerminalOptions {
  /** A person at a terminal (readline edits the input line), or a pipe. */
  interactive: boolean;
  /** The whole screen: conversation, online list beside it, status and input rows. */
  fullScreen?: boolean;
  /** The conversations: the current one, unread counts. */
  talk: Conversations;
  /** Who is online, for Tab completion and the online list. */
  names?: () => Iterable<string>;
}

/** Line mode: each line printed above the input, which readline draws and edits. */
function lineSurface(context: SurfaceContext, interactive: boolean): Surface {
  const { rl, color } = context;
  const editor = rl as unknown as Editor;
  const out = terminalWriter();
  const columns = () => terminalSize().columns;
  let queued: string[] = [];
  let flushTimer: ReturnType<typeof setTimeout> | undefined;

  const redrawPrompt = () => {
    editor.prevRows = 0;
    rl.setPrompt(color ? styleText("bold", context.prompt()) : context.prompt());
    rl.prompt(true);
  };
  // Prints the queued lines above the input: up to the input's first row, clear to the end of
  // the screen, the lines, then the prompt and what was typed, as readline draws them.
  const flush = () => {
    flushTimer = undefined;
    if (queued.length === 0) return;
    const rows = rl.getCursorPos().rows;
    out.write((rows > 0 ? `\x1b[${rows}A` : "") + "\r\x1b[J" + queued.join("\r\n") + "\r\n");
    queued = [];
    redrawPrompt();
  };

  if (interactive) {
    // Readline measures the input with the same width.
    Object.defineProperty(rl, "columns", { get: columns, configurable: true });
    rl.setPrompt(context.prompt());
    // A resize reflows the input (as tmux and most terminals do): the cursor's row in it is
    // then the one at the new width. Readline redraws on "resize" from where it thinks the
    // input starts; this runs first, so that it starts from the right row.
    const onResize = () => {
      editor.prevRows = rl.getCursorPos().rows;
    };
    process.stdout.prependListener("resize", onResize);
    rl.once("close", () => process.stdout.off("resize", onResize));
  }

  return {
    add: (stamp, text, style) => {
      if (!interactive) {
        out.write(stamp + (color && style ? styleText(style, text) : text) + "\n");
        return;
      }
      const indent = textWidth(stamp);
      const rows = wrapText(stamp + text, columns(), indent).map((row, i) => {
        const body = i === 0 ? row.slice(stamp.length) : row;
        const styled = color && style ? styleText(style, body) : body;
        return i === 0 ? stamp + styled : " ".repeat(indent) + styled;
      });
      queued.push(...rows);
      // One redraw for a burst of lines (a hundred messages arriving at once).
      flushTimer ??= setTimeout(flush, 0);
    },
    input: () => {
      if (!interactive || queued.length > 0) return; // the flush redraws the prompt
      rl.setPrompt(color ? styleText("bold", context.prompt()) : context.prompt());
      rl.prompt(true);
    },
    submitted: (line) => {
      if (!interactive) return;
      // Readline moved below the input (a row more when it ended on a row's last column); its
      // rows go, and what the line did is shown as events.
      const rows = Math.floor(textWidth(context.prompt() + line) / columns()) + 1;
      out.write(`\x1b[${rows}A\r\x1b[J`);
      editor.prevRows = 0;
    },
    detach: out.detach,
    close: () => {
      clearTimeout(flushTimer);
      flush();
      if (interactive) out.write("\n");
    },
  };
}

/** A renderer writing to the terminal: line by line, or as a full screen. */
export function terminalRenderer(rl: readline.Interface, options: TerminalOptions): Renderer & {
  /** Tab: completes the input line (readline's completer, doing the edit itself). */
  completer(line: string): [string[], string];
  /** The user pressed Enter on `line`: its echo is erased, the event for it says what it did. */
  submitted(line: string): void;
} {
  const { interactive, talk } = options;
  const color = process.stdout.isTTY === true && !Deno.env.get("NO_COLOR");
  const editor = rl as unknown as Editor;
  const digest = new Digest();
  const names = () => options.names?.() ?? [];
  let me = "";
  const progress = new FileProgress();
  const context: SurfaceContext = {
    rl,
    color,
    talk,
    names,
    me: () => me,
    prompt: () => {
      const unread = talk.unread().map(([u, n]) => `${sanitize(u)} ${n}`).join(", ");
      return sanitize(progress.summary()) + (unread ? `[${unread}] ` : "") +
        `${sanitize(talk.target ?? "")}> `;
    },
  };
  const surface = options.fullScreen && interactive
    ? fullScreen(context)
    : lineSurface(context, interactive);

  const print = (text: string, style: Style | undefined, when: Date) =>
    surface.add(`[${formatStamp(when)}] `, text, style);
  const show = (shown: Shown) => {
    if ("summary" in shown) {
      print(sanitize(shown.summary), STYLES[shown.kind], new Date());
      return;
    }
    const e = shown.event;
    const other = talk.elsewhere(e); // counted as unread by the chat, which noted it first
    const text = sanitize(describeEvent(e, { unread: (u) => talk.unreadFrom(u) }));
    print(other ? OTHER + text : text, other ? "dim" : STYLES[e.event], eventTime(e));
  };

  return {
    event: (e) => {
      if (e.event === "ready") me = sanitize(`${e.user} on ${e.server}`);
      // Progress is redrawn in the prompt, in place: never a line each time.
      if (e.event.startsWith("file") && progress.note(e as FileEvent)) surface.input();
      if (e.event === "file-progress") return;
      for (const shown of digest.take(e)) show(shown);
    },
    sendingToAll: (text, send) => {
      digest.beginGroup(text);
      try {
        send();
      } finally {
        const line = digest.endGroup();
        if (line) print(sanitize(line), "gray", new Date());
      }
    },
    opened: (user, backlog) => {
      const now = new Date();
      print(
        user === undefined
          ? "everyone view: all conversations shown; /chat USER to talk to someone"
          : `talking to ${sanitize(user)}: plain lines go to them (/chat alone: everyone view)`,
        "cyan",
        now,
      );
      if (backlog.length > 0) {
        print(`${backlog.length} unread from ${sanitize(user!)}:`, "cyan", now);
      }
      for (const e of backlog) show({ event: e });
      surface.input();
    },
    help: (mode) => {
      const lines = alignHelp(COMMAND_HELP);
      const { rows } = terminalSize();
      if (mode === "brief" || (mode === "first" && lines.length > rows / 2)) {
        print("/help lists the commands; Tab completes commands and names", "gray", new Date());
        return;
      }
      for (const line of lines) print(line, undefined, new Date());
    },
    completer: (line) => {
      const done = complete({ line, cursor: editor.cursor, names: names() });
      if (done.candidates.length > 1) print(done.candidates.join("  "), "gray", new Date());
      if (done.line !== line) {
        editor.line = done.line;
        editor.cursor = done.cursor;
        surface.input();
      }
      return [[], line]; // the edit is made: readline has nothing to add
    },
    submitted: (line) => surface.submitted(line),
    detach: () => surface.detach(),
    close: () => surface.close(),
  };
}
