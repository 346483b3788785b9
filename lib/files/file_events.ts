/**
 * The events of file transfers, part of the peer's `--json` contract (`lib/peer/events.ts`):
 * fields may be added, never renamed. Every one names the transfer by `id` (this client's number
 * for it, what `/accept`, `/decline` and `/cancel` take) and `transfer` (the 32 hex digits both
 * sides share), the `peer`, and the `direction` (`out`: we send, `in`: we receive).
 *
 * @example
 * ```ts
 * const e: FileEvent = { event: "file-declined", id: 1, transfer: "ab…", peer: "bob",
 *   direction: "out", reason: "declined" };
 * ```
 * @module
 */

/** What every file event has. */
export interface FileEventBase {
  id: number;
  transfer: string;
  peer: string;
  direction: "in" | "out";
}

/** One file of an offer, as events show it. */
export interface FileInfo {
  /** The sender's relative name (`/` between parts); on our side, untrusted until saved. */
  name: string;
  size: number;
  /** SHA-256 of the file, 64 hex digits. */
  sha256: string;
}

/** A file event. */
export type FileEvent =
  /** An offer made (`out`) or received (`in`): answer with `/accept ID` or `/decline ID`. */
  | FileEventBase & { event: "file-offer"; files: FileInfo[]; size: number }
  /** The receiver accepted; `dir` (ours, `in` only) is where the files go. */
  | FileEventBase & { event: "file-accepted"; dir?: string }
  /** The offer was declined (by the receiver, or by its limits), with the `reason`. */
  | FileEventBase & { event: "file-declined"; reason: string }
  /**
   * How far it is, at most a few times a second: `bytes` of `size` (all files), `rate` in
   * bytes per second over the last seconds, `eta` in seconds (absent while unknown); `sent`
   * (sender only) as in `file-done`.
   */
  | FileEventBase & {
    event: "file-progress";
    bytes: number;
    size: number;
    rate: number;
    eta?: number;
    sent?: number;
  }
  /**
   * A transfer goes on from data already there (after a drop, a restart of either side):
   * `bytes` of `size` need not be sent again.
   */
  | FileEventBase & { event: "file-resumed"; bytes: number; size: number }
  /**
   * One file arrived whole and its SHA-256 matched: `path` is where it is (ours: the saved file
   * on the receiver, the source on the sender). `sent` (sender only): file bytes this run handed
   * to the link for the whole transfer so far, what a resume sent again included.
   */
  | FileEventBase & {
    event: "file-done";
    name: string;
    path: string;
    size: number;
    sha256: string;
    sent?: number;
  }
  /** The transfer stopped for good: cancelled by either side, or an error; `reason` says which. */
  | FileEventBase & { event: "file-failed"; reason: string }
  /** `/files`: every transfer of this session and its state. */
  | { event: "files"; transfers: TransferInfo[] };

/** A transfer as `/files` lists it. */
export interface TransferInfo extends FileEventBase {
  state: "offered" | "active" | "waiting" | "done" | "failed" | "declined";
  files: number;
  size: number;
  bytes: number;
}

/** Bytes in human units: `512 B`, `1.5 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
