/**
 * The human front end: one readable line per event, printed above the prompt so that a message
 * arriving while the user types does not garble the line being typed (readline redraws it).
 * Colour unless `NO_COLOR` is set or stdout is not a terminal.
 *
 * @example
 * ```ts
 * const ui = terminalRenderer(rl, { interactive: true });
 * ui.event({ event: "message", from: "bob", text: "hi", id: 1 });
 * ```
 * @module
 */
import process from "node:process";
import type readline from "node:readline";
import { styleText } from "node:util";
import type { PeerEvent } from "../peer/events.ts";
import { COMMAND_HELP } from "./commands.ts";

/** Shows a peer's events and the help text. */
export interface Renderer {
  event(e: PeerEvent): void;
  help(): void;
  close(): void;
}

type Style = Parameters<typeof styleText>[0];

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * Replaces control characters (escape sequences, newlines…) with visible placeholders, so that a
 * peer's message or name cannot move the cursor, recolour or forge lines on our terminal.
 */
export function sanitize(text: string): string {
  return text.replace(CONTROL, (c) => c === "\n" ? "↵" : c === "\t" ? " " : "�");
}

/** Formats an event as one line of text (without colour), for people. */
export function describeEvent(e: PeerEvent): string {
  switch (e.event) {
    case "ready":
      return `logged in to ${e.server} as ${e.user} (the coordinator sees you at ${e.endpoint}; ` +
        `your fingerprint: ${e.fingerprint})`;
    case "online":
      return `${e.user} is online (${e.endpoint})`;
    case "offline":
      return `${e.user} went offline`;
    case "who":
      return e.users.length === 0
        ? "nobody else is online"
        : `online: ${e.users.map((u) => `${u.user} (${u.endpoint}, ${u.path})`).join(", ")}`;
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
        : `talking to ${e.user} through the coordinator's relay (no direct path yet)`;
    case "key-changed":
      return `WARNING: ${e.user}'s key has CHANGED (was ${e.previous}, now ${e.fingerprint}). ` +
        `Someone may be impersonating them. Nothing will be sent to ${e.user} until you check ` +
        `the new fingerprint with them and type /trust ${e.user}`;
    case "trusted":
      return `you now trust ${e.user}'s new key ${e.fingerprint}`;
    case "fingerprint":
      return `${e.user}'s fingerprint: ${e.fingerprint}` +
        (e.safety ? `; safety number with you: ${e.safety}` : "");
    case "coordinator":
      return e.state === "lost"
        ? "lost contact with the coordinator; direct chats go on, retrying…"
        : "the coordinator is back";
    case "knock":
      return e.accepted
        ? `${e.user} (fingerprint ${e.fingerprint}) wants to talk: accepted`
        : `refused a request to talk from ${e.user} (fingerprint ${e.fingerprint}): ${e.reason}`;
    case "error":
      return `error: ${e.message}`;
    case "history":
      return describeHistory(e);
  }
}

const STATE_NOTES: Record<string, string> = {
  sending: "  (pending)",
  delivered: "  ✓",
  deposited: "  (in the mailbox)",
  received: "",
};

/** A line of history: its date and time (local), who wrote to whom, and how it fared. */
function describeHistory(e: Extract<PeerEvent, { event: "history" }>): string {
  const t = new Date(e.time);
  const pad = (n: number) => String(n).padStart(2, "0");
  const when = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}`;
  const group = e.group ? "[all] " : "";
  const who = e.state === "received" ? e.from : `you → ${e.to}`;
  const note = e.state === "undelivered"
    ? `  ✗ not delivered: ${e.reason ?? "no reason kept"}`
    : STATE_NOTES[e.state] ?? "";
  return `(${e.source} ${when}) ${group}${who}: ${e.text}${note}`;
}

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
  knock: "yellow",
  error: "red",
  history: "dim",
};

/** A renderer writing to stdout, above the readline prompt when `interactive`. */
export function terminalRenderer(
  rl: readline.Interface,
  options: { interactive: boolean },
): Renderer {
  const color = process.stdout.isTTY === true && !Deno.env.get("NO_COLOR");
  const print = (text: string, style?: Style) => {
    const time = new Date().toTimeString().slice(0, 5);
    const line = `[${time}] ${color && style ? styleText(style, text) : text}`;
    if (!options.interactive) {
      process.stdout.write(line + "\n");
      return;
    }
    // Clear the half-typed line, print above it, then redraw the prompt with what was typed.
    process.stdout.write("\r\x1b[2K" + line + "\n");
    rl.prompt(true);
  };
  if (options.interactive) rl.setPrompt(color ? styleText("bold", "> ") : "> ");
  return {
    event: (e) => print(sanitize(describeEvent(e)), STYLES[e.event]),
    help: () => {
      for (const line of COMMAND_HELP) print(line);
    },
    close: () => {
      if (options.interactive) process.stdout.write("\n");
    },
  };
}
