/**
 * The disk side of file transfers, kept thin and apart from the transfer logic: what a `/send`
 * names (files, directories walked), hashing a source, reading it in chunks, and the receiver's
 * partial file. Nothing here holds a file in memory: every read and write is one chunk.
 *
 * The receiver writes `NAME.p2p-part` and, beside it, `NAME.p2p-part.blocks`: the SHA-256 of
 * each complete 64 KiB block, appended as the block completes (after its data was written). A
 * resume re-reads the part, keeps the blocks whose hash matches and cuts the rest, so it goes on
 * from verified data after a crash of either side. Done means the whole-file SHA-256 matches the
 * offer's; the part is then linked under the final name — a link never replaces a file, so a
 * taken name gets a suffix and nothing is overwritten — and removed. Never a half file under the
 * final name.
 *
 * Directories on the way to a part are created, never followed when they are symlinks: a peer's
 * `a/b` cannot lead out of the download directory through a link someone left there.
 *
 * @example
 * ```ts
 * const part = PartFile.open({ dir: "/tmp/dl", parts: ["a.txt"], size: 1, sha256 });
 * part.write(0, new Uint8Array([65]));
 * const path = part.finish(); // "/tmp/dl/a.txt"
 * ```
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { withSuffix } from "./names.ts";

/** Bytes per hashed block of a partial file. */
export const BLOCK_SIZE = 64 * 1024;
/** Suffix of a partial file. */
export const PART_SUFFIX = ".p2p-part";
/** Suffix of a partial file's block hashes, after {@linkcode PART_SUFFIX}. */
export const BLOCKS_SUFFIX = ".blocks";
const HASH_LENGTH = 32;

/** A file to send: where it is, the name the peer sees (relative, `/`-separated), its size. */
export interface Source {
  path: string;
  name: string;
  size: number;
}

/** Thrown when a file cannot be sent or received; the message says what and why, for users. */
export class FileError extends Error {
  override name = "FileError";
}

function why(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  const code = (err as { code?: string }).code;
  if (code === "ENOSPC") return "the disk is full";
  if (code === "EDQUOT") return "the disk quota is exceeded";
  return (err as Error).message;
}

/**
 * The files `paths` name: a file as itself, a directory walked recursively (its files named
 * under the directory's own name; symlinks inside are skipped, so a tree cannot loop). Throws
 * {@linkcode FileError} for a path that is missing or unreadable.
 */
export async function listSources(paths: string[]): Promise<Source[]> {
  const out: Source[] = [];
  const walk = async (path: string, name: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      const child = join(path, entry.name);
      if (entry.isFile) out.push({ path: child, name: `${name}/${entry.name}`, size: 0 });
      else if (entry.isDirectory) await walk(child, `${name}/${entry.name}`);
    }
  };
  for (const given of paths) {
    const path = resolve(given);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
      if (info.isDirectory) await walk(path, basename(path));
      else if (info.isFile) out.push({ path, name: basename(path), size: info.size });
      else throw new FileError(`${given} is not a file or a directory`);
    } catch (err) {
      if (err instanceof FileError) throw err;
      throw new FileError(`Cannot send ${given}: ${why(err)}`);
    }
  }
  for (const s of out) if (s.size === 0) s.size = (await Deno.stat(s.path)).size;
  return out;
}

/** The SHA-256 of the file at `path`, read in chunks. Throws {@linkcode FileError}. */
export async function hashFile(path: string): Promise<Uint8Array> {
  const hash = createHash("sha256");
  try {
    using file = await Deno.open(path);
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } catch (err) {
    throw new FileError(`Cannot read ${path}: ${why(err)}`);
  }
  return new Uint8Array(hash.digest());
}

/** A source opened for sending, read sequentially from an offset. */
export class SourceReader {
  readonly #file: Deno.FsFile;
  readonly #path: string;

  /** Opens `path` at `offset`. Throws {@linkcode FileError}. */
  constructor(path: string, offset: number) {
    this.#path = path;
    try {
      this.#file = Deno.openSync(path);
      this.#file.seekSync(offset, Deno.SeekMode.Start);
    } catch (err) {
      throw new FileError(`Cannot read ${path}: ${why(err)}`);
    }
  }

  /**
   * Reads into `buf` from where the last read ended, until it is full or the file ends; returns
   * the bytes read (0 at the end). The caller's buffer: a chunk is read where it is sent from.
   */
  readInto(buf: Uint8Array): number {
    try {
      return readFull(this.#file, buf);
    } catch (err) {
      throw new FileError(`Cannot read ${this.#path}: ${why(err)}`);
    }
  }

  close(): void {
    this.#file.close();
  }
}

/** Creates `dir`'s subdirectories `parts`, refusing a symlink on the way. Returns the last. */
function makeDirs(dir: string, parts: string[]): string {
  let at = dir;
  for (const part of parts) {
    at = join(at, part);
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.lstatSync(at);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (info === undefined) Deno.mkdirSync(at);
    else if (!info.isDirectory || info.isSymlink) {
      throw new FileError(
        `Cannot save into ${at}: it is not a directory (a symlink is not followed)`,
      );
    }
  }
  return at;
}

/** What {@linkcode PartFile.open} needs. */
export interface PartOptions {
  /** The download directory. */
  dir: string;
  /** The peer's name, sanitized: see `names.ts`. */
  parts: string[];
  size: number;
  sha256: Uint8Array;
  /** The part file of an earlier run of this transfer, to resume. */
  resumeFrom?: string;
}

/** A file being received: the part file, its block hashes, the running whole-file hash. */
export class PartFile {
  /** Path of the part file. */
  readonly path: string;
  readonly #o: PartOptions;
  readonly #data: Deno.FsFile;
  readonly #blocks: Deno.FsFile;
  #hash: Hash = createHash("sha256");
  #block: Hash = createHash("sha256");
  #blockFill = 0;
  #offset = 0;

  private constructor(path: string, options: PartOptions, data: Deno.FsFile, blocks: Deno.FsFile) {
    this.path = path;
    this.#o = options;
    this.#data = data;
    this.#blocks = blocks;
  }

  /** Bytes written (and verified, after a resume) so far. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Opens the part file: `resumeFrom` when it is still there (then {@linkcode PartFile.verify}),
   * else a new one whose name is free. Throws {@linkcode FileError}.
   */
  static open(options: PartOptions): PartFile {
    try {
      const parent = makeDirs(options.dir, options.parts.slice(0, -1));
      const name = options.parts.at(-1)!;
      if (options.resumeFrom !== undefined) {
        try {
          const info = Deno.lstatSync(options.resumeFrom);
          if (info.isFile && resolve(options.resumeFrom).startsWith(resolve(options.dir) + "/")) {
            const data = Deno.openSync(options.resumeFrom, { read: true, write: true });
            const blocks = Deno.openSync(options.resumeFrom + BLOCKS_SUFFIX, {
              read: true,
              write: true,
              create: true,
            });
            const part = new PartFile(options.resumeFrom, options, data, blocks);
            part.#verify();
            return part;
          }
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
      for (let n = 0;; n++) {
        const path = join(parent, withSuffix(name, n) + PART_SUFFIX);
        try {
          const data = Deno.openSync(path, { read: true, write: true, createNew: true });
          const blocks = Deno.openSync(path + BLOCKS_SUFFIX, {
            read: true,
            write: true,
            create: true,
            truncate: true,
          });
          return new PartFile(path, options, data, blocks);
        } catch (err) {
          if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
        }
      }
    } catch (err) {
      if (err instanceof FileError) throw err;
      throw new FileError(`Cannot save ${options.parts.join("/")}: ${why(err)}`);
    }
  }

  /**
   * Keeps the blocks of the part whose hashes match the sidecar, cuts the rest, and rebuilds the
   * running hash from what stays.
   */
  #verify(): void {
    const stored = readAll(this.#blocks);
    const buf = new Uint8Array(BLOCK_SIZE);
    let good = 0;
    this.#data.seekSync(0, Deno.SeekMode.Start);
    for (; (good + 1) * HASH_LENGTH <= stored.length; good++) {
      const n = readFull(this.#data, buf);
      if (n < BLOCK_SIZE) break;
      const digest = createHash("sha256").update(buf).digest();
      const want = stored.subarray(good * HASH_LENGTH, (good + 1) * HASH_LENGTH);
      if (!equal(new Uint8Array(digest), want)) break;
      this.#hash.update(buf);
    }
    this.#offset = Math.min(good * BLOCK_SIZE, this.#o.size);
    this.#data.truncateSync(this.#offset);
    this.#blocks.truncateSync(good * HASH_LENGTH);
    this.#data.seekSync(this.#offset, Deno.SeekMode.Start);
    this.#blocks.seekSync(good * HASH_LENGTH, Deno.SeekMode.Start);
  }

  /**
   * Writes `data` at `offset`, which must be where the file ends now (the file channel is in
   * order), or before it (a chunk sent before a resume: what we have is skipped). Throws {@linkcode FileError} for another offset, data past the offered size, or a
   * write that fails (a full disk).
   */
  write(offset: number, data: Uint8Array): void {
    // After a resume, chunks sent before it may still arrive: what we have is skipped (the
    // whole-file hash decides whether it was the same data).
    if (offset < this.#offset && offset + data.length >= this.#offset) {
      data = data.subarray(this.#offset - offset);
      offset = this.#offset;
    }
    if (offset !== this.#offset) {
      throw new FileError(`the sender sent data at ${offset}, expected ${this.#offset}`);
    }
    if (offset + data.length > this.#o.size) {
      throw new FileError(
        `the sender sent more than the ${this.#o.size} bytes it offered (a lying size)`,
      );
    }
    try {
      writeFull(this.#data, data);
    } catch (err) {
      throw new FileError(`Cannot write ${this.path}: ${why(err)}`);
    }
    this.#hash.update(data);
    this.#offset += data.length;
    // Block hashes, appended once each block's data is written.
    let at = 0;
    while (at < data.length) {
      const take = Math.min(BLOCK_SIZE - this.#blockFill, data.length - at);
      this.#block.update(data.subarray(at, at + take));
      this.#blockFill += take;
      at += take;
      if (this.#blockFill === BLOCK_SIZE) {
        writeFull(this.#blocks, new Uint8Array(this.#block.digest()));
        this.#block = createHash("sha256");
        this.#blockFill = 0;
      }
    }
  }

  /**
   * All bytes are here: checks the whole-file SHA-256, then links the part under its final
   * name (a suffix when taken) and removes the part and its blocks. Returns the final path.
   * Throws {@linkcode FileError} when the hash differs: the part is then deleted.
   */
  finish(): string {
    const digest = new Uint8Array(this.#hash.digest());
    this.close();
    if (!equal(digest, this.#o.sha256)) {
      this.discard();
      throw new FileError(
        "the file's SHA-256 does not match the sender's: the data is wrong, deleted",
      );
    }
    const parent = this.path.slice(0, this.path.lastIndexOf("/"));
    const name = this.#o.parts.at(-1)!;
    for (let n = 0;; n++) {
      const path = join(parent, withSuffix(name, n));
      try {
        Deno.linkSync(this.path, path);
        this.discard();
        return path;
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) {
          throw new FileError(`Cannot save ${path}: ${why(err)}`);
        }
      }
    }
  }

  /** Closes the files; the part stays for a resume. */
  close(): void {
    try {
      this.#data.close();
      this.#blocks.close();
    } catch {
      // closed already
    }
  }

  /** Deletes the part and its blocks. */
  discard(): void {
    this.close();
    removePart(this.path);
  }
}

/** Deletes the part file at `path` and its block hashes, if they are there. */
export function removePart(path: string): void {
  for (const p of [path, path + BLOCKS_SUFFIX]) {
    try {
      Deno.removeSync(p);
    } catch {
      // gone already
    }
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function readFull(file: Deno.FsFile, buf: Uint8Array): number {
  let have = 0;
  while (have < buf.length) {
    const n = file.readSync(buf.subarray(have));
    if (n === null) break;
    have += n;
  }
  return have;
}

function readAll(file: Deno.FsFile): Uint8Array {
  const size = file.statSync().size;
  const buf = new Uint8Array(size);
  file.seekSync(0, Deno.SeekMode.Start);
  return buf.subarray(0, readFull(file, buf));
}

function writeFull(file: Deno.FsFile, data: Uint8Array): void {
  let at = 0;
  while (at < data.length) at += file.writeSync(data.subarray(at));
}
