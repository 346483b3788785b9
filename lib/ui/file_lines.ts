/**
 * File transfers as the terminal shows them: one line per event worth a line (offers, answers,
 * results), and the progress of the transfers running, which is drawn in the prompt (line mode)
 * or the input row (full screen) and redrawn in place, never printed line after line. Pure.
 *
 * @example
 * ```ts
 * const progress = new FileProgress();
 * progress.note({ event: "file-progress", id: 1, transfer: "…", peer: "bob", direction: "out",
 *   bytes: 512, size: 1024, rate: 256, eta: 2 }); // true: redraw
 * progress.summary(); // "[#1 → bob 50% 512 B/1.0 KiB 256 B/s 0:02] "
 * ```
 * @module
 */
import { type FileEvent, formatBytes } from "../files/file_events.ts";

export { formatBytes };

function formatEta(s: number): string {
  const m = Math.floor(s / 60);
  return m >= 60
    ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
}

/** A file event as a line, or undefined for progress (shown in the prompt instead). */
export function describeFileEvent(e: FileEvent): string | undefined {
  if (e.event === "files") {
    if (e.transfers.length === 0) return "no file transfers (/send USER PATH to offer files)";
    return "transfers: " +
      e.transfers.map((t) =>
        `#${t.id} ${t.direction === "out" ? "→" : "←"} ${t.peer} ${t.files} file(s) ` +
        `${formatBytes(t.bytes)}/${formatBytes(t.size)} ${t.state}`
      ).join("; ");
  }
  const who = e.direction === "out" ? `to ${e.peer}` : `from ${e.peer}`;
  switch (e.event) {
    case "file-offer": {
      const names = e.files.slice(0, 5).map((f) => `${f.name} (${formatBytes(f.size)})`);
      const more = e.files.length > 5 ? ` and ${e.files.length - 5} more` : "";
      const list = `${e.files.length} file(s), ${formatBytes(e.size)}: ${names.join(", ")}${more}`;
      return e.direction === "in"
        ? `#${e.id} ${e.peer} offers ${list} — /accept ${e.id} [DIR] or /decline ${e.id}`
        : `#${e.id} offering ${list} to ${e.peer} (waiting for them to accept)`;
    }
    case "file-accepted":
      return e.direction === "in"
        ? `#${e.id} receiving from ${e.peer} into ${e.dir}`
        : `#${e.id} ${e.peer} accepted: sending`;
    case "file-declined":
      return `#${e.id} ${e.direction === "out" ? "offer to" : "offer from"} ${e.peer} declined: ` +
        e.reason;
    case "file-resumed":
      return `#${e.id} resuming ${who}: ${formatBytes(e.bytes)} of ${formatBytes(e.size)} ` +
        `already there`;
    case "file-done":
      return e.direction === "in"
        ? `#${e.id} ✓ received ${e.name} (${formatBytes(e.size)}, SHA-256 checked) → ${e.path}`
        : `#${e.id} ✓ ${e.peer} has ${e.name} (${formatBytes(e.size)}, SHA-256 checked)`;
    case "file-failed":
      return `#${e.id} ✗ transfer ${who} stopped: ${e.reason}`;
    case "file-progress":
      return undefined;
  }
}

/** The transfers running and how far each is, for the prompt. */
export class FileProgress {
  readonly #running = new Map<number, Extract<FileEvent, { event: "file-progress" }>>();

  /** Takes a file event; true when the progress shown changed (the prompt is to be redrawn). */
  note(e: FileEvent): boolean {
    if (e.event === "file-progress") {
      if (e.bytes >= e.size) return this.#running.delete(e.id);
      this.#running.set(e.id, e);
      return true;
    }
    if (e.event === "files") return false;
    if (["file-failed", "file-declined"].includes(e.event)) return this.#running.delete(e.id);
    return false;
  }

  /** `[#1 → bob 45% 3.2 MiB/7.0 MiB 1.2 MiB/s 0:03] `, one bracket per transfer, or "". */
  summary(): string {
    return [...this.#running.values()].map((p) => {
      const pct = p.size === 0 ? 100 : Math.floor(p.bytes * 100 / p.size);
      const eta = p.eta === undefined ? "" : ` ${formatEta(p.eta)}`;
      return `[#${p.id} ${p.direction === "out" ? "→" : "←"} ${p.peer} ${pct}% ` +
        `${formatBytes(p.bytes)}/${formatBytes(p.size)} ${formatBytes(p.rate)}/s${eta}] `;
    }).join("");
  }
}
