/**
 * The full-screen chat, as toxic and weechat lay it out: the conversation fills the screen, the
 * people online are listed beside it (with unread counts, the current conversation marked), a
 * status row and the input row are at the bottom. It is painted whole from its own buffer of
 * lines, so nothing typed or received can push anything off: the input scrolls sideways within
 * its row, PgUp/PgDn scroll the conversation, and a resize is a repaint at the new size. On exit
 * the screen is left and the conversation printed, so that it stays in the terminal's scrollback.
 *
 * Readline still edits the input (keys, history, Tab) but draws nothing: its output is a sink,
 * and the input row is drawn from its `line` and `cursor`.
 *
 * @example
 * ```ts
 * const surface = fullScreen(context); // context: a SurfaceContext (surface.ts)
 * surface.add("[09:12] ", "bob: hi", "bold");
 * ```
 * @module
 */
import process from "node:process";
import { Writable } from "node:stream";
import { styleText } from "node:util";
import {
  type Editor,
  type Style,
  type Surface,
  type SurfaceContext,
  terminalSize,
  terminalWriter,
} from "./surface.ts";
import { textWidth, wrapText } from "./text_width.ts";

/** Lines kept for the screen (and printed on exit). */
const KEEP = 2000;
/** Width of the online list, its separator included; shown from this many columns on. */
const SIDE = 24;
const SIDE_FROM = 72;

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** A readline output that shows nothing: the full screen draws the input itself. */
export function silentOutput(): Writable {
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  // Readline wraps nothing in a row this wide, and moves its (invisible) cursor by columns.
  return Object.assign(sink, { columns: 100_000, rows: 1, isTTY: true });
}

interface Line {
  stamp: string;
  text: string;
  style: Style | undefined;
}

/** `text` cut or padded with spaces to exactly `width` columns. */
function fit(text: string, width: number): string {
  let out = "";
  let used = 0;
  for (const { segment } of segmenter.segment(text)) {
    const w = textWidth(segment);
    if (used + w > width) break;
    out += segment;
    used += w;
  }
  return out + " ".repeat(width - used);
}

/**
 * The part of `text` to show in `width` columns so that column `at` (the cursor) is in view;
 * returns it and the cursor's column within it.
 */
export function scrollInto(
  text: string,
  at: number,
  width: number,
): { shown: string; cursor: number } {
  const clusters = [...segmenter.segment(text)].map(({ segment }) => segment);
  let skip = 0;
  let cursor = at;
  // Drop clusters from the left until the cursor fits, a few columns short of the edge.
  while (cursor > width - 1 && skip < clusters.length) cursor -= textWidth(clusters[skip++]);
  return { shown: fit(clusters.slice(skip).join(""), width), cursor };
}

/** The full-screen surface. */
export function fullScreen(context: SurfaceContext): Surface {
  const { rl, color, talk } = context;
  const editor = rl as unknown as Editor;
  const out = terminalWriter();
  const lines: Line[] = [];
  /** Rows scrolled back from the bottom (PgUp). */
  let back = 0;
  let paintTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  /** A resize: the terminal may have reflowed the old rows; the next paint clears them first. */
  let resized = false;

  const paint = () => {
    paintTimer = undefined;
    if (closed) return;
    const { columns, rows } = terminalSize();
    const side = columns >= SIDE_FROM ? SIDE : 0;
    const paneWidth = columns - side;
    const paneRows = Math.max(1, rows - 2);
    const style = (s: Style | undefined, text: string) => color && s ? styleText(s, text) : text;

    // The conversation wrapped to the pane: its last rows, or earlier ones when scrolled back.
    const wrapped: string[] = [];
    for (const line of lines.slice(-(paneRows + back))) {
      const indent = textWidth(line.stamp);
      // A column of margin before the online list.
      wrapText(line.stamp + line.text, paneWidth - (side > 0 ? 1 : 0), indent).forEach((row, i) => {
        const head = i === 0 ? line.stamp : " ".repeat(indent);
        const body = i === 0 ? row.slice(line.stamp.length) : row;
        wrapped.push(head + style(line.style, fit(body, paneWidth - indent)));
      });
    }
    back = Math.min(back, Math.max(0, wrapped.length - paneRows));
    const end = wrapped.length - back;
    const pane = wrapped.slice(Math.max(0, end - paneRows), end);
    while (pane.length < paneRows) pane.unshift(" ".repeat(paneWidth));

    // Who is online, and whoever else has unread messages; the current conversation marked.
    const unread = new Map(talk.unread());
    const online = new Set(context.names());
    const list: { text: string; style?: Style }[] = [{
      text: `online (${online.size})`,
      style: "bold",
    }];
    for (
      const name of new Set([...[...online].sort((a, b) => a.localeCompare(b)), ...unread.keys()])
    ) {
      const count = unread.get(name);
      list.push({
        text: `${name === talk.target ? "▸" : " "}${name}${online.has(name) ? "" : " (away)"}` +
          (count ? ` (${count})` : ""),
        style: count ? "yellow" : undefined,
      });
    }

    let screen = "\x1b[?25l" + (resized ? "\x1b[2J" : ""); // no cursor while painting
    resized = false;
    for (let r = 0; r < paneRows; r++) {
      screen += `\x1b[${r + 1};1H${pane[r]}`;
      if (side > 0) {
        const entry = list[r];
        screen += style("gray", "│") + " " + style(entry?.style, fit(entry?.text ?? "", side - 2));
      }
    }
    const where = talk.target === undefined ? "everyone" : `talking to ${talk.target}`;
    const scrolled = back > 0 ? ` · ${back} rows back` : "";
    const status = ` ${context.me()} · ${where}${scrolled} · Tab completes · PgUp/PgDn scroll`;
    screen += `\x1b[${paneRows + 1};1H` + style("inverse", fit(status, columns));
    const prompt = context.prompt();
    const at = textWidth(prompt + editor.line.slice(0, editor.cursor));
    const { shown, cursor } = scrollInto(prompt + editor.line, at, columns);
    screen += `\x1b[${paneRows + 2};1H${shown}\x1b[${paneRows + 2};${cursor + 1}H\x1b[?25h`;
    out.write(screen);
  };
  const schedule = () => {
    paintTimer ??= setTimeout(paint, 0);
  };

  const onResize = () => {
    resized = true;
    schedule();
  };
  const onKey = (_s: string, key?: { name?: string }) => {
    if (key?.name === "pageup") back += Math.max(1, terminalSize().rows - 4);
    else if (key?.name === "pagedown") {
      back = Math.max(0, back - Math.max(1, terminalSize().rows - 4));
    }
    schedule();
  };
  process.stdout.on("resize", onResize);
  process.stdin.on("keypress", onKey);
  out.write("\x1b[?1049h\x1b[2J"); // the alternate screen, as full-screen programs use
  schedule();

  return {
    add: (stamp, text, style) => {
      lines.push({ stamp, text, style });
      if (lines.length > KEEP) lines.shift();
      schedule();
    },
    input: schedule,
    submitted: () => {
      back = 0;
      schedule();
    },
    detach: out.detach,
    close: () => {
      closed = true;
      clearTimeout(paintTimer);
      process.stdout.off("resize", onResize);
      process.stdin.off("keypress", onKey);
      // Back to the normal screen, with the conversation in its scrollback.
      out.write("\x1b[?1049l");
      out.write(lines.map((l) => l.stamp + l.text + "\n").join(""));
    },
  };
}
