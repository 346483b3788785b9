/**
 * File frames: the messages of a file transfer between two peers, carried whole (one frame per
 * message) on the link's file channel, a reliable stream of its own beside the chat stream
 * (docs/PROTOCOL.md §2.6). Pure functions, no I/O, so that they can be fuzzed.
 *
 * Every frame starts with a type byte and the 16-byte transfer id the sender chose at random;
 * integers are big-endian; text is UTF-8.
 *
 * ```text
 * OFFER   0x01 | id 16 | count u16 | count × (namelen u16 | name | size u64 | sha256 32)
 * ACCEPT  0x02 | id 16 | count u16 | count × offset u64   (where each file resumes; size = have it)
 * DECLINE 0x03 | id 16 | reason (rest)
 * CHUNK   0x04 | id 16 | index u16 | offset u64 | data (rest; decoded as a view, not a copy)
 * CANCEL  0x05 | id 16 | reason (rest)
 * RESULT  0x06 | id 16 | index u16 | ok u8 (1 done, 0 failed) | reason (rest)
 * ```
 * A name is a relative path with `/` between its parts, as the sender saw it: the receiver
 * sanitizes it (`lib/files/names.ts`) and never trusts it.
 *
 * @example
 * ```ts
 * const id = new Uint8Array(16);
 * const bytes = encodeFileFrame({ type: "cancel", id, reason: "stopped" });
 * decodeFileFrame(bytes); // { type: "cancel", id, reason: "stopped" }
 * ```
 * @module
 */

/** Length of a transfer id. */
export const TRANSFER_ID_LENGTH = 16;
/** Most files one offer may name. */
export const MAX_OFFER_FILES = 4096;
/** Longest name (UTF-8 bytes) in an offer. */
export const MAX_NAME_BYTES = 1024;
/** Longest reason (UTF-8 bytes) in DECLINE, CANCEL or RESULT. */
export const MAX_REASON_BYTES = 512;
/** Largest file size a frame can carry (2^53 - 1: exact in a JavaScript number). */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/** Type bytes of file frames. */
export const FileFrameType = {
  OFFER: 0x01,
  ACCEPT: 0x02,
  DECLINE: 0x03,
  CHUNK: 0x04,
  CANCEL: 0x05,
  RESULT: 0x06,
} as const;

/** One file of an offer. */
export interface OfferedFile {
  /** Relative path, `/` between parts: untrusted. */
  name: string;
  size: number;
  /** SHA-256 of the whole file, 32 bytes. */
  sha256: Uint8Array;
}

/** A file frame. */
export type FileFrame =
  | { type: "offer"; id: Uint8Array; files: OfferedFile[] }
  | { type: "accept"; id: Uint8Array; offsets: number[] }
  | { type: "decline"; id: Uint8Array; reason: string }
  | { type: "chunk"; id: Uint8Array; index: number; offset: number; data: Uint8Array }
  | { type: "cancel"; id: Uint8Array; reason: string }
  | { type: "result"; id: Uint8Array; index: number; ok: boolean; reason: string };

/** Thrown by {@linkcode decodeFileFrame} and {@linkcode encodeFileFrame}; says what and why. */
export class FileFrameError extends Error {
  override name = "FileFrameError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes of a CHUNK frame before its data. */
export const CHUNK_HEADER_SIZE = 1 + TRANSFER_ID_LENGTH + 2 + 8;

function text(what: string, value: string, max: number): Uint8Array {
  if (!value.isWellFormed()) {
    throw new FileFrameError(`Cannot encode ${what}: it has a lone surrogate`);
  }
  const bytes = encoder.encode(value);
  if (bytes.length > max) {
    throw new FileFrameError(`Cannot encode ${what}: ${bytes.length} bytes, the limit is ${max}`);
  }
  return bytes;
}

function checkSize(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new FileFrameError(`Cannot encode ${what}: ${n} is not a size (0..2^53-1)`);
  }
}

function checkId(type: FileFrame["type"], id: Uint8Array): void {
  if (id.length !== TRANSFER_ID_LENGTH) {
    throw new FileFrameError(`Cannot encode ${type}: transfer id is ${id.length} bytes, not 16`);
  }
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_OFFER_FILES) {
    throw new FileFrameError(`Cannot encode file index ${index}: not in 0..${MAX_OFFER_FILES - 1}`);
  }
}

/** A little writer over a buffer sized in advance. */
class Writer {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#view = new DataView(this.bytes.buffer);
  }
  u8(n: number): void {
    this.#view.setUint8(this.#at++, n);
  }
  u16(n: number): void {
    this.#view.setUint16(this.#at, n);
    this.#at += 2;
  }
  u64(n: number): void {
    this.#view.setBigUint64(this.#at, BigInt(n));
    this.#at += 8;
  }
  put(b: Uint8Array): void {
    this.bytes.set(b, this.#at);
    this.#at += b.length;
  }
}

/**
 * Encodes a file frame. Throws {@linkcode FileFrameError} for an id that is not 16 bytes, a
 * size or offset that is not an integer in 0..2^53-1, too many files, a name or reason too long.
 */
export function encodeFileFrame(frame: FileFrame): Uint8Array {
  checkId(frame.type, frame.id);
  const head = 1 + TRANSFER_ID_LENGTH;
  let w: Writer;
  switch (frame.type) {
    case "offer": {
      if (frame.files.length > MAX_OFFER_FILES) {
        throw new FileFrameError(
          `Cannot encode offer: ${frame.files.length} files, the limit is ${MAX_OFFER_FILES}`,
        );
      }
      const names = frame.files.map((f) => text("file name", f.name, MAX_NAME_BYTES));
      frame.files.forEach((f) => {
        checkSize("file size", f.size);
        if (f.sha256.length !== 32) {
          throw new FileFrameError(`Cannot encode offer: a SHA-256 of ${f.sha256.length} bytes`);
        }
      });
      const size = head + 2 + names.reduce((n, b) => n + 2 + b.length + 8 + 32, 0);
      w = new Writer(size);
      w.u8(FileFrameType.OFFER);
      w.put(frame.id);
      w.u16(frame.files.length);
      frame.files.forEach((f, i) => {
        w.u16(names[i].length);
        w.put(names[i]);
        w.u64(f.size);
        w.put(f.sha256);
      });
      return w.bytes;
    }
    case "accept": {
      if (frame.offsets.length > MAX_OFFER_FILES) {
        throw new FileFrameError(`Cannot encode accept: ${frame.offsets.length} offsets`);
      }
      frame.offsets.forEach((o) => checkSize("offset", o));
      w = new Writer(head + 2 + 8 * frame.offsets.length);
      w.u8(FileFrameType.ACCEPT);
      w.put(frame.id);
      w.u16(frame.offsets.length);
      for (const o of frame.offsets) w.u64(o);
      return w.bytes;
    }
    case "decline":
    case "cancel": {
      const reason = text("reason", frame.reason, MAX_REASON_BYTES);
      w = new Writer(head + reason.length);
      w.u8(frame.type === "decline" ? FileFrameType.DECLINE : FileFrameType.CANCEL);
      w.put(frame.id);
      w.put(reason);
      return w.bytes;
    }
    case "chunk": {
      const { frame: bytes, data } = chunkFrame({ ...frame, length: frame.data.length });
      data.set(frame.data);
      return bytes;
    }
    case "result": {
      checkIndex(frame.index);
      const reason = text("reason", frame.reason, MAX_REASON_BYTES);
      w = new Writer(head + 3 + reason.length);
      w.u8(FileFrameType.RESULT);
      w.put(frame.id);
      w.u16(frame.index);
      w.u8(frame.ok ? 1 : 0);
      w.put(reason);
      return w.bytes;
    }
  }
}

/**
 * A chunk frame whose data the caller fills in place: the header is written, `data` is the rest
 * of `frame`. A sender reads the file straight into it, so a chunk costs one buffer, not a read
 * buffer and then a copy (docs/FILES.md "RSS"). Throws {@linkcode FileFrameError} as
 * {@linkcode encodeFileFrame} does.
 *
 * @example
 * ```ts
 * const { frame, data } = chunkFrame({ id: new Uint8Array(16), index: 0, offset: 0, length: 2 });
 * data.set([104, 105]); // frame now encodes the chunk "hi"
 * ```
 */
export function chunkFrame(
  options: { id: Uint8Array; index: number; offset: number; length: number },
): { frame: Uint8Array; data: Uint8Array } {
  checkId("chunk", options.id);
  checkIndex(options.index);
  checkSize("offset", options.offset);
  checkSize("chunk length", options.length);
  const w = new Writer(CHUNK_HEADER_SIZE + options.length);
  w.u8(FileFrameType.CHUNK);
  w.put(options.id);
  w.u16(options.index);
  w.u64(options.offset);
  return { frame: w.bytes, data: w.bytes.subarray(CHUNK_HEADER_SIZE) };
}

/** A cursor over a frame being decoded: every read checks the length first. */
class Reader {
  readonly #b: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  at = 0;
  constructor(b: Uint8Array, what: string) {
    this.#b = b;
    this.#view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.#what = what;
  }
  #need(n: number): void {
    if (this.at + n > this.#b.length) {
      throw new FileFrameError(
        `Cannot decode ${this.#what}: ${this.#b.length} bytes end before its fields do`,
      );
    }
  }
  u8(): number {
    this.#need(1);
    return this.#view.getUint8(this.at++);
  }
  u16(): number {
    this.#need(2);
    const n = this.#view.getUint16(this.at);
    this.at += 2;
    return n;
  }
  u64(field: string): number {
    this.#need(8);
    const n = this.#view.getBigUint64(this.at);
    this.at += 8;
    if (n > BigInt(MAX_FILE_SIZE)) {
      throw new FileFrameError(`Cannot decode ${this.#what}: ${field} ${n} is over 2^53-1`);
    }
    return Number(n);
  }
  take(n: number): Uint8Array {
    this.#need(n);
    const out = this.#b.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }
  text(field: string, n: number, max: number): string {
    if (n > max) {
      throw new FileFrameError(`Cannot decode ${this.#what}: ${field} of ${n} bytes, over ${max}`);
    }
    try {
      return decoder.decode(this.take(n));
    } catch (err) {
      if (err instanceof FileFrameError) throw err;
      throw new FileFrameError(`Cannot decode ${this.#what}: ${field} is not valid UTF-8`);
    }
  }
  end(): void {
    if (this.at !== this.#b.length) {
      throw new FileFrameError(
        `Cannot decode ${this.#what}: ${this.#b.length - this.at} bytes after its fields`,
      );
    }
  }
}

const NAMES: Record<number, FileFrame["type"]> = {
  [FileFrameType.OFFER]: "offer",
  [FileFrameType.ACCEPT]: "accept",
  [FileFrameType.DECLINE]: "decline",
  [FileFrameType.CHUNK]: "chunk",
  [FileFrameType.CANCEL]: "cancel",
  [FileFrameType.RESULT]: "result",
};

/** Decodes a file frame. Throws {@linkcode FileFrameError} (and nothing else) on bad input. */
export function decodeFileFrame(bytes: Uint8Array): FileFrame {
  if (bytes.length === 0) throw new FileFrameError("Cannot decode file frame: it is empty");
  const type = NAMES[bytes[0]];
  if (type === undefined) {
    throw new FileFrameError(`Cannot decode file frame: unknown type 0x${bytes[0].toString(16)}`);
  }
  const r = new Reader(bytes, type);
  r.u8();
  const id = r.take(TRANSFER_ID_LENGTH);
  switch (type) {
    case "offer": {
      const count = r.u16();
      if (count > MAX_OFFER_FILES) {
        throw new FileFrameError(`Cannot decode offer: ${count} files, over ${MAX_OFFER_FILES}`);
      }
      const files: OfferedFile[] = [];
      for (let i = 0; i < count; i++) {
        const name = r.text("name", r.u16(), MAX_NAME_BYTES);
        const size = r.u64("size");
        files.push({ name, size, sha256: r.take(32) });
      }
      r.end();
      return { type, id, files };
    }
    case "accept": {
      const count = r.u16();
      if (count > MAX_OFFER_FILES) {
        throw new FileFrameError(`Cannot decode accept: ${count} offsets, over ${MAX_OFFER_FILES}`);
      }
      const offsets: number[] = [];
      for (let i = 0; i < count; i++) offsets.push(r.u64("offset"));
      r.end();
      return { type, id, offsets };
    }
    case "decline":
    case "cancel": {
      const reason = r.text("reason", bytes.length - r.at, MAX_REASON_BYTES);
      return { type, id, reason };
    }
    case "chunk": {
      const index = r.u16();
      if (index >= MAX_OFFER_FILES) {
        throw new FileFrameError(`Cannot decode chunk: file index ${index} is out of range`);
      }
      const offset = r.u64("offset");
      // A view, not a copy: chunks are the bulk of a transfer and are written out at once.
      return { type, id, index, offset, data: bytes.subarray(r.at) };
    }
    case "result": {
      const index = r.u16();
      if (index >= MAX_OFFER_FILES) {
        throw new FileFrameError(`Cannot decode result: file index ${index} is out of range`);
      }
      const flag = r.u8();
      if (flag > 1) throw new FileFrameError(`Cannot decode result: ok flag ${flag} is not 0 or 1`);
      const reason = r.text("reason", bytes.length - r.at, MAX_REASON_BYTES);
      return { type, id, index, ok: flag === 1, reason };
    }
  }
}
