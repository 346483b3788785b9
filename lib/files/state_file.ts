/**
 * Where a client keeps its unfinished file transfers across restarts: one small JSON file
 * (`transfers.json` in the user's data directory), written whole to a temporary file and renamed
 * over the old one, so that a crash leaves the old or the new, never half of one. Read back
 * entry by entry: a damaged entry is skipped, the others resume. Apart from `transfers.ts` so
 * that the transfer logic holds no file format.
 *
 * @example
 * ```ts
 * writeTransfers("/tmp/t.json", [{ transfer: "00".repeat(16), peer: "bob", direction: "out",
 *   files: [{ name: "a.txt", size: 1, sha256: "00".repeat(32) }], sources: ["/tmp/a.txt"] }]);
 * readTransfers("/tmp/t.json").length; // 1
 * ```
 * @module
 */
import { dirname } from "node:path";

/** An unfinished transfer as it is kept. */
export interface SavedTransfer {
  /** The transfer id, 32 hex digits. */
  transfer: string;
  peer: string;
  direction: "in" | "out";
  files: { name: string; size: number; sha256: string }[];
  /** Sender: each file's source path. */
  sources?: string[];
  /** Receiver: the download directory, and each file's part (or final) path, when opened. */
  dir?: string;
  parts?: (string | null)[];
}

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${n}}$`);
const isString = (v: unknown): v is string => typeof v === "string";

/** Whether `v` is a well-formed {@linkcode SavedTransfer}. */
function valid(v: unknown): v is SavedTransfer {
  const t = v as SavedTransfer;
  if (typeof t !== "object" || t === null) return false;
  if (!isString(t.transfer) || !HEX(32).test(t.transfer) || !isString(t.peer)) return false;
  if (t.direction !== "in" && t.direction !== "out") return false;
  if (!Array.isArray(t.files) || t.files.length === 0) return false;
  const filesOk = t.files.every((f) =>
    isString(f?.name) && Number.isSafeInteger(f.size) && f.size >= 0 && isString(f.sha256) &&
    HEX(64).test(f.sha256)
  );
  if (!filesOk) return false;
  if (t.direction === "out") {
    return Array.isArray(t.sources) && t.sources.length === t.files.length &&
      t.sources.every(isString);
  }
  return isString(t.dir) && Array.isArray(t.parts) && t.parts.length === t.files.length &&
    t.parts.every((p) => p === null || isString(p));
}

/**
 * The transfers kept in `path`; none when there is no file or it is not JSON. Entries that are
 * not well-formed are skipped.
 */
export function readTransfers(path: string): SavedTransfer[] {
  let list: unknown;
  try {
    list = JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return []; // none yet, or unreadable: nothing to resume
  }
  return Array.isArray(list) ? list.filter(valid) : [];
}

/** Keeps `transfers` in `path` (mode 0600), replacing what was there at once. Throws on I/O. */
export function writeTransfers(path: string, transfers: SavedTransfer[]): void {
  Deno.mkdirSync(dirname(path), { recursive: true });
  Deno.writeTextFileSync(path + ".tmp", JSON.stringify(transfers), { mode: 0o600 });
  Deno.renameSync(path + ".tmp", path);
}
