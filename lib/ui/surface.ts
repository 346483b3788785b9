/**
 * What the terminal front end's two layouts share: a {@linkcode Surface} is where the lines go
 * (above readline's input line, or a full screen), given a {@linkcode SurfaceContext}; and the
 * terminal's size and a writer that stops when the terminal hangs up.
 *
 * @example
 * ```ts
 * const { columns, rows } = terminalSize();
 * const out = terminalWriter();
 * out.write(`${columns}×${rows}\n`);
 * ```
 * @module
 */
import process from "node:process";
import type readline from "node:readline";
import type { styleText } from "node:util";
import type { Conversations } from "./conversations.ts";

/** A colour or emphasis of `node:util`'s `styleText`. */
export type Style = Parameters<typeof styleText>[0];

/** Readline's own fields this renderer reads and sets (public in Node.js, not typed). */
export interface Editor {
  line: string;
  cursor: number;
  /** The row of the input the cursor is on, as readline last drew it (from the prompt's). */
  prevRows: number;
}

/** Where the renderer's lines go: above readline's input line, or a full screen. */
export interface Surface {
  /** Shows a line: its time stamp, its text (sanitized, no colour), and its style. */
  add(stamp: string, text: string, style: Style | undefined): void;
  /** The input line was edited by us (Tab), or the prompt changed. */
  input(): void;
  /** The user pressed Enter on `line`. */
  submitted(line: string): void;
  /** Stops writing (the terminal hung up). */
  detach(): void;
  close(): void;
}

/** What a surface needs to know of the renderer. */
export interface SurfaceContext {
  rl: readline.Interface;
  color: boolean;
  /** The prompt: unread counts and the current conversation, without colour. */
  prompt(): string;
  talk: Conversations;
  names(): Iterable<string>;
  /** Who we are, where: for a status row. */
  me(): string;
}

/** Writes to stdout until the terminal is gone (SIGHUP), and then never again. */
export function terminalWriter(): { write(text: string): void; detach(): void } {
  let detached = false;
  return {
    write: (text) => {
      if (detached) return;
      try {
        process.stdout.write(text);
      } catch {
        detached = true; // the terminal is gone; logging out goes on
      }
    },
    detach: () => {
      detached = true;
    },
  };
}

/**
 * The terminal's width now, asked of the terminal: stdout's `columns` lags a resize until its
 * event is handled, and a redraw in between would clear the wrong rows.
 */
export function terminalSize(): { columns: number; rows: number } {
  try {
    const { columns, rows } = Deno.consoleSize();
    return { columns: columns || 80, rows: rows || 24 };
  } catch {
    return { columns: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
  }
}
