/**
 * File transfers of one chat client, both ways: offers made and received, accepting, streaming
 * chunks within a delay-based window (`ledbat.ts`), writing and checking them (`disk.ts`),
 * resuming after a drop or a restart, and the events (`file_events.ts`). The frames are
 * `lib/protocol/file_frame.ts`; they travel on each link's file channel, which the peer wires
 * in through {@linkcode FileLinks}. Time comes from the injected clock.
 *
 * Resume, from both ends: the sender keeps its unfinished offers in `stateFile` and offers them
 * again (same transfer id) whenever the link to the peer is secured anew; the receiver keeps the
 * transfers it accepted there too, and answers a known id's offer at once, from the data of its
 * part files that still verifies.
 *
 * Relay: a transfer is refused with "no direct path" when the path is the coordinator's relay
 * and the offer is bigger than `relayLimit` — the relay is for chat, not bulk data.
 *
 * @example
 * ```ts
 * const files = new Transfers({ me: "alice", downloads, stateFile, links, emit: console.log });
 * await files.send("bob", ["photo.jpg"]);
 * ```
 * @module
 */
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { type Clock, realClock, type TimerId } from "../clock.ts";
import {
  chunkFrame,
  decodeFileFrame,
  encodeFileFrame,
  type FileFrame,
  FileFrameError,
  type OfferedFile,
} from "../protocol/file_frame.ts";
import {
  FileError,
  hashFile,
  listSources,
  PART_SUFFIX,
  PartFile,
  removePart,
  SourceReader,
} from "./disk.ts";
import {
  type FileEvent,
  type FileEventBase,
  formatBytes,
  type TransferInfo,
} from "./file_events.ts";
import { DelayController } from "./ledbat.ts";
import { safeRelativePath } from "./names.ts";
import { ScavengePacer } from "./scavenge_pacer.ts";
import { readTransfers, type SavedTransfer, writeTransfers } from "./state_file.ts";

/**
 * Bytes of file data per CHUNK frame: four datagrams of 16 KiB where the path carries them
 * (`lib/peer/path_mtu.ts`); each chunk costs a delivery report and an ACK, so fewer per MB is
 * less CPU (16 KiB chunks took ~40 % more per MB with 16 KiB datagrams: docs/FILES.md).
 */
export const CHUNK_BYTES = 64 * 1024;
/** Default largest file we accept (`--max-file-size`): 4 GiB. */
export const DEFAULT_MAX_FILE_SIZE = 4 * 1024 ** 3;
/** Default limit of a transfer over the relay, when the coordinator says none: 1 MiB. */
export const DEFAULT_RELAY_FILE_LIMIT = 1024 * 1024;
/** `file-progress` at most this often per transfer. */
const PROGRESS_MS = 250;
/** Longest a change of a transfer's files waits to be saved. */
const SAVE_MS = 1000;
/** A part of a file at least this large is saved as soon as it is opened. */
const SAVE_AT_ONCE_BYTES = 1024 * 1024;
/** Unfinished transfers are offered again this often while the link is up and they wait. */
const REOFFER_MS = 3000;

/** What the transfers need of a link. */
export interface FileLink {
  readonly secured: boolean;
  /** How the link reaches the peer now (`lib/peer/events.ts` `PathKind`). */
  readonly pathKind: "direct" | "turn" | "relay" | "none";
  /** Sends a file frame; the id comes back in {@linkcode Transfers.onSettled}. */
  sendFile(frame: Uint8Array): number;
}

/** The links, as the transfers reach them. */
export interface FileLinks {
  /** The link to `peer`, opened (and introduced) now if need be. */
  open(peer: string): FileLink;
  /** The link to `peer` if there is one. */
  get(peer: string): FileLink | undefined;
  /** Whether `peer` is online. */
  online(peer: string): boolean;
}

/** Options of {@linkcode Transfers}. */
export interface TransfersOptions {
  me: string;
  links: FileLinks;
  emit: (e: FileEvent | { event: "error"; message: string }) => void;
  /** Where accepted files go unless `/accept` names a directory. */
  downloads: string;
  /** Where unfinished transfers are kept across restarts (JSON). */
  stateFile: string;
  /** Largest file we accept; default {@linkcode DEFAULT_MAX_FILE_SIZE}. */
  maxFileSize?: number;
  /** Largest transfer over the relay; default {@linkcode DEFAULT_RELAY_FILE_LIMIT}. */
  relayLimit?: number;
  clock?: Clock;
}

type State = TransferInfo["state"];
/** A file event without the fields every one has (added by `#emit`). */
type EventBody = Record<string, unknown> & { event: FileEvent["event"] };

interface Chunk {
  transfer: Transfer;
  bytes: number;
  sentAt: number;
}

interface Transfer {
  n: number;
  id: Uint8Array;
  hex: string;
  peer: string;
  direction: "in" | "out";
  files: OfferedFile[];
  state: State;
  /** Bytes done: confirmed by the peer (out) or written (in), all files. */
  bytes: number;
  /** Sender: file bytes handed to the link, re-sends after a resume included. */
  sent: number;
  /** Sender: the source paths. */
  sources?: string[];
  /** Where the next byte goes or comes from: file index and offset in it. */
  index: number;
  offset: number;
  reader?: SourceReader;
  /** Receiver: the download directory and each file's part (or final) path. */
  dir?: string;
  parts?: (string | undefined)[];
  part?: PartFile;
  /** Progress: when last reported, and the bytes and time a rate is measured from. */
  progress: { at: number; mark: { at: number; bytes: number }; rate: number };
}

const total = (t: Transfer) => t.files.reduce((n, f) => n + f.size, 0);

/** Every file transfer of one client. */
export class Transfers {
  readonly #o: TransfersOptions & { clock: Clock; maxFileSize: number };
  #relayLimit: number;
  readonly #byHex = new Map<string, Transfer>();
  readonly #byNumber = new Map<number, Transfer>();
  /** Chunks on their way, by peer and file-channel id. */
  readonly #inFlight = new Map<string, Map<number, Chunk>>();
  readonly #window = new Map<string, DelayController>();
  /** Collects the dead buffers of the datagrams a transfer makes: see scavenge_pacer.ts. */
  readonly #scavenges = new ScavengePacer();
  #next = 1;
  #timer: TimerId | undefined;
  #closed = false;

  constructor(options: TransfersOptions) {
    this.#o = {
      ...options,
      clock: options.clock ?? realClock,
      maxFileSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
    };
    this.#relayLimit = options.relayLimit ?? DEFAULT_RELAY_FILE_LIMIT;
    this.#load();
    this.#timer = this.#o.clock.setInterval(() => this.#reofferAll(), REOFFER_MS);
  }

  /** Offers the files `paths` name (directories recursively) to `peer`. Emits `file-offer`. */
  async send(peer: string, paths: string[]): Promise<void> {
    const fail = (message: string) => this.#o.emit({ event: "error", message });
    if (peer === this.#o.me) return fail("Cannot send files to yourself");
    if (!this.#o.links.online(peer)) return fail(`Cannot send files to ${peer}: not online`);
    let files: OfferedFile[];
    let sources: string[];
    try {
      const found = await listSources(paths);
      if (found.length === 0) return fail(`Cannot send ${paths.join(" ")}: no files in it`);
      sources = found.map((s) => s.path);
      files = [];
      for (const s of found) {
        files.push({ name: s.name, size: s.size, sha256: await hashFile(s.path) });
      }
    } catch (err) {
      if (err instanceof FileError) return fail(err.message);
      throw err;
    }
    const id = crypto.getRandomValues(new Uint8Array(16));
    const t = this.#add({ id, peer, direction: "out", files, sources, state: "offered" });
    this.#save();
    this.#emit(t, {
      event: "file-offer",
      files: files.map((f) => ({ name: f.name, size: f.size, sha256: bytesToHex(f.sha256) })),
      size: total(t),
    });
    this.#offer(t);
  }

  /** Accepts offer `n` (default: the latest waiting), saving into `dir` (default downloads). */
  accept(n?: number, dir?: string): void {
    const t = this.#pick(n, "accept");
    if (!t) return;
    t.dir = dir ?? this.#o.downloads;
    try {
      Deno.mkdirSync(t.dir, { recursive: true });
    } catch (err) {
      this.#o.emit({
        event: "error",
        message: `Cannot save into ${t.dir}: ${(err as Error).message}`,
      });
      return;
    }
    t.parts = t.files.map(() => undefined);
    this.#emit(t, { event: "file-accepted", dir: t.dir });
    this.#startReceiving(t, false);
  }

  /** Declines offer `n` (default: the latest waiting). */
  decline(n?: number): void {
    const t = this.#pick(n, "decline");
    if (!t) return;
    this.#sendFrame(t, { type: "decline", id: t.id, reason: `${this.#o.me} declined` });
    this.#end(t, "declined", { event: "file-declined", reason: "you declined" });
  }

  /** Stops transfer `n`, either way; the peer is told. Its partial files are deleted. */
  cancel(n: number): void {
    const t = this.#byNumber.get(n);
    if (!t || !["offered", "active", "waiting"].includes(t.state)) {
      this.#o.emit({ event: "error", message: `No transfer #${n} to cancel (/files lists them)` });
      return;
    }
    this.#sendFrame(t, { type: "cancel", id: t.id, reason: `${this.#o.me} cancelled` });
    this.#fail(t, "cancelled", true);
  }

  /** The coordinator told us how large a transfer its relay carries. */
  setRelayLimit(bytes: number): void {
    this.#relayLimit = bytes;
  }

  /** Every transfer of this session (and unfinished ones of earlier runs). */
  list(): TransferInfo[] {
    return [...this.#byNumber.values()].map((t) => ({
      id: t.n,
      transfer: t.hex,
      peer: t.peer,
      direction: t.direction,
      state: t.state,
      files: t.files.length,
      size: total(t),
      bytes: t.bytes,
    }));
  }

  /** A file frame from `peer`. Malformed or unexpected frames are reported, never thrown. */
  onFrame(peer: string, data: Uint8Array): void {
    let frame: FileFrame;
    try {
      frame = decodeFileFrame(data);
    } catch (err) {
      if (!(err instanceof FileFrameError)) throw err;
      this.#o.emit({
        event: "error",
        message: `Ignored a file frame from ${peer}: ${err.message}`,
      });
      return;
    }
    const t = this.#byHex.get(bytesToHex(frame.id));
    if (frame.type === "offer") return this.#onOffer(peer, frame, t);
    if (!t || t.peer !== peer) return; // an old transfer's late frame
    try {
      this.#onTransferFrame(t, frame);
    } catch (err) {
      if (!(err instanceof FileError)) throw err;
      this.#refuse(t, err.message);
    }
  }

  /** The file frame `id` to `peer` was confirmed, or given up (`reason`). */
  onSettled(peer: string, id: number, reason: string | undefined): void {
    const chunks = this.#inFlight.get(peer);
    const chunk = chunks?.get(id);
    if (!chunk || this.#closed) return;
    chunks!.delete(id);
    const t = chunk.transfer;
    const now = this.#o.clock.now();
    if (reason !== undefined) {
      this.#windowOf(peer).onLoss();
      if (t.state === "active") this.#pause(t);
      return;
    }
    this.#windowOf(peer).onDelivered({ delayMs: now - chunk.sentAt, bytes: chunk.bytes, now });
    t.bytes += chunk.bytes;
    this.#progress(t, false);
    this.#pumpPeer(peer);
  }

  /**
   * The link to `peer` has a (new) session: what waits goes, and, when the file channel was
   * replaced (the peer restarted), what was in flight is offered again from where it stands.
   */
  onSecured(peer: string, reset: boolean): void {
    const ours = [...this.#byNumber.values()].filter((t) =>
      t.peer === peer && t.direction === "out"
    );
    // A restarted peer kept only what it had saved: every running transfer starts over from
    // its offer (even one with nothing in flight, waiting for the last RESULT).
    if (reset) {
      for (const t of ours) if (t.state === "active") this.#pause(t);
      this.#inFlight.delete(peer);
    }
    for (const t of ours) if (t.state === "waiting" || t.state === "offered") this.#offer(t);
  }

  /** `peer` came online (again): its unfinished transfers are offered again. */
  online(peer: string): void {
    for (const t of this.#byNumber.values()) {
      if (t.peer === peer && t.direction === "out" && ["offered", "waiting"].includes(t.state)) {
        this.#offer(t);
      }
    }
  }

  /** Stops the timers and closes open files; unfinished transfers stay saved for a resume. */
  close(): void {
    if (this.#saveTimer !== undefined) this.#save();
    this.#closed = true;
    this.#o.clock.clearInterval(this.#timer);
    for (const t of this.#byNumber.values()) {
      t.reader?.close();
      t.reader = undefined;
      t.part?.close();
      t.part = undefined;
    }
  }

  // --- sending ------------------------------------------------------------------------------

  #offer(t: Transfer): void {
    const link = this.#o.links.open(t.peer);
    if (!link.secured) return; // onSecured sends it
    this.#sendFrame(t, { type: "offer", id: t.id, files: t.files });
  }

  #reofferAll(): void {
    for (const t of this.#byNumber.values()) {
      if (t.direction === "out" && t.state === "waiting" && this.#o.links.online(t.peer)) {
        this.#offer(t);
      }
    }
  }

  #onAccept(t: Transfer, offsets: number[]): void {
    if (t.direction !== "out" || !["offered", "waiting"].includes(t.state)) return;
    if (offsets.length !== t.files.length || offsets.some((o, i) => o > t.files[i].size)) {
      return this.#refuse(t, `${t.peer} accepted with offsets that do not fit the offer`);
    }
    if (this.#overRelay(t)) return this.#refuse(t, this.#noDirectPath(t));
    const resumed = offsets.some((o) => o > 0);
    t.index = 0;
    t.offset = offsets[0] ?? 0;
    t.bytes = offsets.reduce((n, o) => n + o, 0);
    t.progress.mark = { at: this.#o.clock.now(), bytes: t.bytes };
    t.state = "active";
    if (resumed) {
      this.#emit(t, { event: "file-resumed", bytes: t.bytes, size: total(t) });
    } else this.#emit(t, { event: "file-accepted" });
    this.#seek(t, offsets);
    this.#pumpPeer(t.peer);
  }

  /** Goes to the first file the peer does not have whole, at the offset it asked for. */
  #seek(t: Transfer, offsets: number[]): void {
    t.reader?.close();
    t.reader = undefined;
    while (t.index < t.files.length && offsets[t.index] >= t.files[t.index].size) t.index++;
    if (t.index < t.files.length) t.offset = offsets[t.index];
  }

  /**
   * Sends chunks to `peer` while its window allows. Not re-entered: sending can report a chunk
   * confirmed at once (the channel flushes its events), which asks for another pump; that one
   * runs after this one, so that no chunk is read between reading one and recording it.
   */
  #pumpPeer(peer: string): void {
    if (this.#pumping.has(peer)) {
      this.#pumping.set(peer, true);
      return;
    }
    do {
      this.#pumping.set(peer, false);
      this.#pumpOnce(peer);
    } while (this.#pumping.get(peer));
    this.#pumping.delete(peer);
  }

  /** Peers being pumped now; true when another pump was asked for meanwhile. */
  readonly #pumping = new Map<string, boolean>();

  #pumpOnce(peer: string): void {
    const link = this.#o.links.get(peer);
    if (!link?.secured) return;
    const window = this.#windowOf(peer);
    let chunks = this.#inFlight.get(peer);
    if (!chunks) this.#inFlight.set(peer, chunks = new Map());
    const outstanding = () => [...chunks!.values()].reduce((n, c) => n + c.bytes, 0);
    let used = outstanding();
    for (const t of this.#byNumber.values()) {
      if (t.peer !== peer || t.direction !== "out" || t.state !== "active") continue;
      // The direct path broke mid-transfer and the link fell back to the relay.
      if (this.#overRelay(t)) {
        this.#refuse(t, this.#noDirectPath(t));
        continue;
      }
      while (t.index < t.files.length && used < window.windowBytes) {
        const file = t.files[t.index];
        if (t.offset >= file.size) {
          t.reader?.close();
          t.reader = undefined;
          t.index++;
          t.offset = 0;
          continue;
        }
        // The file is read straight into the frame: one buffer per chunk.
        const length = Math.min(CHUNK_BYTES, file.size - t.offset);
        const { frame, data } = chunkFrame({ id: t.id, index: t.index, offset: t.offset, length });
        let n: number;
        try {
          t.reader ??= new SourceReader(t.sources![t.index], t.offset);
          n = t.reader.readInto(data);
        } catch (err) {
          if (!(err instanceof FileError)) throw err;
          return this.#refuse(t, err.message);
        }
        if (n < length) {
          return this.#refuse(t, `${t.sources![t.index]} became shorter while it was sent`);
        }
        t.offset += n;
        t.sent += n;
        this.#scavenges.add(n);
        used += n;
        const chunk = { transfer: t, bytes: n, sentAt: this.#o.clock.now() };
        chunks.set(link.sendFile(frame), chunk);
      }
      if (t.index >= t.files.length) {
        t.reader?.close();
        t.reader = undefined;
      }
    }
  }

  /** Whether `t` would go through the relay and is larger than the relay carries. */
  #overRelay(t: Transfer): boolean {
    const kind = this.#o.links.get(t.peer)?.pathKind;
    // The coordinator's TURN server is a relay on the operator's bandwidth too.
    return (kind === "relay" || kind === "turn") && total(t) > this.#relayLimit;
  }

  #noDirectPath(t: Transfer): string {
    return `no direct path to ${t.peer}: the coordinator's relay carries files of up to ` +
      `${formatBytes(this.#relayLimit)} only`;
  }

  #pause(t: Transfer): void {
    t.state = "waiting";
    t.reader?.close();
    t.reader = undefined;
    // What was in flight is lost with the channel; the next ACCEPT says where to go on from.
    const chunks = this.#inFlight.get(t.peer);
    for (const [cid, c] of chunks ?? []) if (c.transfer === t) chunks!.delete(cid);
  }

  // --- receiving ----------------------------------------------------------------------------

  #onOffer(peer: string, frame: Extract<FileFrame, { type: "offer" }>, known?: Transfer): void {
    if (known) {
      if (known.peer !== peer || known.direction !== "in") return;
      // Offered again: the sender lost its place (a drop, a restart). Go on from what verifies.
      if (known.state === "active" || known.state === "waiting") {
        known.part?.close();
        known.part = undefined;
        this.#startReceiving(known, true);
      } else if (known.state === "done") {
        this.#sendFrame(known, {
          type: "accept",
          id: known.id,
          offsets: known.files.map((f) => f.size),
        });
        known.files.forEach((_, i) =>
          this.#sendFrame(known, { type: "result", id: known.id, index: i, ok: true, reason: "" })
        );
      }
      return;
    }
    const t = this.#add({
      id: frame.id,
      peer,
      direction: "in",
      files: frame.files,
      state: "offered",
    });
    const size = total(t);
    this.#emit(t, {
      event: "file-offer",
      files: t.files.map((f) => ({ name: f.name, size: f.size, sha256: bytesToHex(f.sha256) })),
      size,
    });
    const big = t.files.find((f) => f.size > this.#o.maxFileSize);
    if (big) {
      const reason = `${big.name} is ${formatBytes(big.size)}, over ${this.#o.me}'s limit of ` +
        `${formatBytes(this.#o.maxFileSize)} (--max-file-size)`;
      this.#sendFrame(t, { type: "decline", id: t.id, reason });
      this.#end(t, "declined", { event: "file-declined", reason });
    }
  }

  /** Opens the parts (resuming what verifies) and tells the sender where each file goes on. */
  #startReceiving(t: Transfer, resumed: boolean): void {
    const offsets: number[] = [];
    try {
      t.files.forEach((f, i) => {
        const saved = t.parts![i];
        if (saved !== undefined && !saved.endsWith(PART_SUFFIX)) {
          offsets.push(f.size); // done already
          return;
        }
        if (saved === undefined && !resumed) {
          offsets.push(0);
          return;
        }
        const part = PartFile.open({
          dir: t.dir!,
          parts: safeRelativePath(f.name),
          size: f.size,
          sha256: f.sha256,
          resumeFrom: saved,
        });
        t.parts![i] = part.path;
        offsets.push(part.offset);
        part.close();
      });
    } catch (err) {
      if (!(err instanceof FileError)) throw err;
      return this.#refuse(t, err.message);
    }
    t.index = 0;
    t.offset = offsets[0] ?? 0;
    t.bytes = offsets.reduce((n, o) => n + o, 0);
    t.progress.mark = { at: this.#o.clock.now(), bytes: t.bytes };
    t.state = "active";
    this.#save();
    if (resumed) this.#emit(t, { event: "file-resumed", bytes: t.bytes, size: total(t) });
    this.#sendFrame(t, { type: "accept", id: t.id, offsets });
    try {
      this.#settleFiles(t, offsets);
    } catch (err) {
      if (!(err instanceof FileError)) throw err;
      this.#refuse(t, err.message);
    }
  }

  /** Opens the current file's part, finishes every file that is whole, in order. */
  #settleFiles(t: Transfer, offsets?: number[]): void {
    while (t.index < t.files.length) {
      const f = t.files[t.index];
      const saved = t.parts![t.index];
      if (saved !== undefined && !saved.endsWith(PART_SUFFIX)) {
        t.index++;
        continue;
      }
      if (!t.part) {
        t.part = PartFile.open({
          dir: t.dir!,
          parts: safeRelativePath(f.name),
          size: f.size,
          sha256: f.sha256,
          resumeFrom: saved,
        });
        if (offsets && t.part.offset !== offsets[t.index]) {
          // The part changed between ACCEPT and now (it cannot, but never write at a wrong place).
          throw new FileError("the partial file changed under us; offer the file again");
        }
        t.parts![t.index] = t.part.path;
        // A large file's part is worth resuming at once; a small one's can wait for the next save.
        if (f.size >= SAVE_AT_ONCE_BYTES) this.#save();
        else this.#saveSoon();
      }
      if (t.part.offset < f.size) return;
      let path: string;
      try {
        path = t.part.finish();
      } finally {
        t.part = undefined;
      }
      t.parts![t.index] = path;
      this.#saveSoon();
      this.#sendFrame(t, { type: "result", id: t.id, index: t.index, ok: true, reason: "" });
      this.#emit(t, {
        event: "file-done",
        name: f.name,
        path,
        size: f.size,
        sha256: bytesToHex(f.sha256),
      });
      t.index++;
    }
    this.#progress(t, true);
    this.#end(t, "done");
  }

  #onChunk(t: Transfer, frame: Extract<FileFrame, { type: "chunk" }>): void {
    if (t.direction !== "in" || t.state !== "active") return;
    if (frame.index !== t.index) {
      throw new FileError(`${t.peer} sent data of file ${frame.index}, expected ${t.index}`);
    }
    if (!t.part) this.#settleFiles(t);
    const before = t.part!.offset;
    t.part!.write(frame.offset, frame.data);
    t.bytes += t.part!.offset - before;
    this.#scavenges.add(frame.data.length);
    this.#progress(t, false);
    if (t.part!.offset === t.files[t.index].size) this.#settleFiles(t);
  }

  // --- both ---------------------------------------------------------------------------------

  #onTransferFrame(t: Transfer, frame: FileFrame): void {
    switch (frame.type) {
      case "accept":
        return this.#onAccept(t, frame.offsets);
      case "decline":
        if (t.direction === "out" && ["offered", "waiting"].includes(t.state)) {
          this.#end(t, "declined", { event: "file-declined", reason: frame.reason || "declined" });
        }
        return;
      case "chunk":
        return this.#onChunk(t, frame);
      case "cancel":
        if (["offered", "active", "waiting"].includes(t.state)) {
          this.#fail(t, frame.reason || `${t.peer} cancelled`, t.direction === "in");
        }
        return;
      case "result": {
        if (t.direction !== "out" || frame.index >= t.files.length) return;
        if (!frame.ok) {
          if (t.state !== "failed") this.#fail(t, `${t.peer}: ${frame.reason}`, false);
          return;
        }
        const f = t.files[frame.index];
        this.#emit(t, {
          event: "file-done",
          name: f.name,
          path: t.sources![frame.index],
          size: f.size,
          sha256: bytesToHex(f.sha256),
          sent: t.sent,
        });
        if (frame.index === t.files.length - 1) {
          t.bytes = total(t);
          this.#progress(t, true);
          this.#end(t, "done");
        }
        return;
      }
    }
  }

  /** A fault on our side, or a peer breaking the rules: both sides are told why. */
  #refuse(t: Transfer, reason: string): void {
    if (t.direction === "in") {
      this.#sendFrame(t, {
        type: "result",
        id: t.id,
        index: Math.min(t.index, t.files.length - 1),
        ok: false,
        reason,
      });
    } else this.#sendFrame(t, { type: "cancel", id: t.id, reason });
    // A part we could not write to (a full disk) keeps its verified blocks; a lying peer's goes.
    const valid = /disk is full|quota/.test(reason);
    this.#fail(t, reason, !valid);
  }

  #fail(t: Transfer, reason: string, deleteParts: boolean): void {
    t.reader?.close();
    t.reader = undefined;
    if (t.direction === "in") {
      if (deleteParts) {
        t.part?.discard();
        for (const p of t.parts ?? []) {
          if (p?.endsWith(PART_SUFFIX)) removePart(p);
        }
      } else t.part?.close();
      t.part = undefined;
    }
    this.#end(t, "failed", { event: "file-failed", reason });
  }

  #end(t: Transfer, state: State, event?: EventBody): void {
    t.state = state;
    const chunks = this.#inFlight.get(t.peer);
    for (const [cid, c] of chunks ?? []) if (c.transfer === t) chunks!.delete(cid);
    this.#save();
    if (event) this.#emit(t, event);
  }

  #sendFrame(t: Transfer, frame: FileFrame): void {
    const link = this.#o.links.get(t.peer);
    if (!link?.secured) return;
    link.sendFile(encodeFileFrame(frame));
  }

  #windowOf(peer: string): DelayController {
    let w = this.#window.get(peer);
    // In bytes, the window starts as it did with 16 KiB chunks (8 of them: more overflows the
    // receiver's socket buffer, which Deno cannot enlarge, before the first ACK), and its floor,
    // what chat may wait behind, is one chunk rather than two.
    if (!w) {
      w = new DelayController({
        chunkBytes: CHUNK_BYTES,
        initialBytes: 2 * CHUNK_BYTES,
        minBytes: CHUNK_BYTES,
      });
      this.#window.set(peer, w);
    }
    return w;
  }

  #progress(t: Transfer, force: boolean): void {
    const now = this.#o.clock.now();
    if (!force && now - t.progress.at < PROGRESS_MS) return;
    t.progress.at = now;
    const { mark } = t.progress;
    if (now - mark.at >= 1000) {
      t.progress.rate = Math.round((t.bytes - mark.bytes) * 1000 / (now - mark.at));
      t.progress.mark = { at: now, bytes: t.bytes };
    } else if (t.progress.rate === 0 && now > mark.at) {
      t.progress.rate = Math.round((t.bytes - mark.bytes) * 1000 / (now - mark.at));
    }
    const size = total(t);
    const rate = t.progress.rate;
    this.#emit(t, {
      event: "file-progress",
      bytes: t.bytes,
      size,
      rate,
      ...(rate > 0 ? { eta: Math.ceil((size - t.bytes) / rate) } : {}),
      ...(t.direction === "out" ? { sent: t.sent } : {}),
    });
  }

  #emit(t: Transfer, e: EventBody): void {
    const base: FileEventBase = { id: t.n, transfer: t.hex, peer: t.peer, direction: t.direction };
    this.#o.emit({ ...e, ...base } as FileEvent);
  }

  #pick(n: number | undefined, what: string): Transfer | undefined {
    const waiting = [...this.#byNumber.values()].filter((t) =>
      t.direction === "in" && t.state === "offered"
    );
    const t = n === undefined ? waiting.at(-1) : waiting.find((w) => w.n === n);
    if (!t) {
      this.#o.emit({
        event: "error",
        message: n === undefined
          ? `No file offer to ${what}`
          : `No file offer #${n} waiting for an answer (/files lists them)`,
      });
    }
    return t;
  }

  #add(
    fields:
      & Pick<Transfer, "id" | "peer" | "direction" | "files" | "state">
      & Partial<Transfer>,
  ): Transfer {
    const now = this.#o.clock.now();
    const t: Transfer = {
      n: this.#next++,
      hex: bytesToHex(fields.id),
      bytes: 0,
      sent: 0,
      index: 0,
      offset: 0,
      progress: { at: -Infinity, mark: { at: now, bytes: 0 }, rate: 0 },
      ...fields,
    };
    this.#byHex.set(t.hex, t);
    this.#byNumber.set(t.n, t);
    return t;
  }

  // --- persistence --------------------------------------------------------------------------

  /** A save asked for by {@linkcode #saveSoon}, not done yet. */
  #saveTimer: TimerId | undefined;

  /**
   * Saves within a second: a tree of thousands of small files would otherwise rewrite the state
   * once per file. What a crash in that second loses: a small file's part started meanwhile is
   * not resumed (it is received again), a file finished meanwhile may arrive twice (the second
   * with a suffix).
   */
  #saveSoon(): void {
    this.#saveTimer ??= this.#o.clock.setTimeout(() => this.#save(), SAVE_MS);
  }

  #save(): void {
    this.#o.clock.clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    if (this.#closed) return;
    const saved: SavedTransfer[] = [...this.#byNumber.values()]
      .filter((t) =>
        (t.direction === "out" && ["offered", "waiting", "active"].includes(t.state)) ||
        (t.direction === "in" && ["active", "waiting"].includes(t.state))
      )
      .map((t) => ({
        transfer: t.hex,
        peer: t.peer,
        direction: t.direction,
        files: t.files.map((f) => ({ name: f.name, size: f.size, sha256: bytesToHex(f.sha256) })),
        ...(t.sources ? { sources: t.sources } : {}),
        ...(t.dir ? { dir: t.dir, parts: t.parts!.map((p) => p ?? null) } : {}),
      }));
    try {
      writeTransfers(this.#o.stateFile, saved);
    } catch (err) {
      this.#o.emit({
        event: "error",
        message: `Cannot keep the unfinished transfers in ${this.#o.stateFile}: ` +
          (err as Error).message,
      });
    }
  }

  /** The unfinished transfers of the last run, waiting to go on. */
  #load(): void {
    for (const s of readTransfers(this.#o.stateFile)) {
      this.#add({
        id: hexToBytes(s.transfer),
        peer: s.peer,
        direction: s.direction,
        files: s.files.map((f) => ({ name: f.name, size: f.size, sha256: hexToBytes(f.sha256) })),
        state: "waiting",
        ...(s.sources ? { sources: s.sources } : {}),
        ...(s.dir ? { dir: s.dir, parts: s.parts!.map((p) => p ?? undefined) } : {}),
      });
    }
  }
}
