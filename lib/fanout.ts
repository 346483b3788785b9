/**
 * Presence fan-out: how the coordinator tells every online user about joins and leaves without
 * one datagram per user per event. Changes are recorded as they happen (one text line each, the
 * seed's `login,…`/`logout,…`) and handed out periodically by {@linkcode PresenceFanout.take}:
 *
 * - **coalesced**: only a name's latest line is sent, so no datagram order matters within a batch;
 * - **batched**: clients that speak our extensions get the lines packed into datagrams of up to
 *   {@linkcode MAX_BATCH_DATAGRAM} bytes, one message per line; seed-only clients get one message
 *   per datagram, as the seed sends them;
 * - **versioned**: each member has seen the changes up to the version of its online list (it joins
 *   at the version its list was written at), and gets exactly the lines after that.
 *
 * A batch's datagrams are shared by every member that needs the same lines, so a flush costs one
 * encoding per group, not per member. Plain state, no I/O, no clock.
 *
 * @example
 * ```ts
 * const fanout = new PresenceFanout<{ name: string }>();
 * const bob = { name: "bob" };
 * fanout.add(bob, { batched: true });
 * fanout.record("carol", "login,carol,192.0.2.7:4000");
 * fanout.record("dave", "login,dave,192.0.2.8:4000");
 * fanout.take(); // [{ members: [bob], datagrams: [bytes of "login,carol,…\nlogin,dave,…"] }]
 * ```
 * @module
 */
import { MAX_BATCH_DATAGRAM } from "./protocol/seed.ts";

/** Datagrams for some members: every member gets every datagram. */
export interface FanoutBatch<M> {
  members: M[];
  datagrams: Uint8Array[];
}

/** Options for {@linkcode PresenceFanout}. */
export interface PresenceFanoutOptions {
  /** Largest batched datagram; default {@linkcode MAX_BATCH_DATAGRAM}. */
  maxDatagramBytes?: number;
}

interface Group<M> {
  version: number;
  members: Set<M>;
}

interface Entry {
  name: string;
  bytes: Uint8Array;
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;

/** Changes not yet sent, and which member has seen which. */
export class PresenceFanout<M extends { name: string }> {
  readonly #max: number;
  /** Changes since the last {@linkcode take}; superseded ones are `null`. */
  #log: (Entry | null)[] = [];
  /** Version of the change before `#log[0]`. */
  #base = 0;
  /** Index in `#log` of each name's latest change. */
  #latest = new Map<string, number>();
  readonly #groups = new Map<number, Group<M>>();
  readonly #members = new Map<M, { group: Group<M>; batched: boolean }>();

  constructor(options: PresenceFanoutOptions = {}) {
    this.#max = options.maxDatagramBytes ?? MAX_BATCH_DATAGRAM;
  }

  /** Number of changes recorded so far. */
  get version(): number {
    return this.#base + this.#log.length;
  }

  /** Changes waiting for {@linkcode take} (superseded ones not counted). */
  get pending(): number {
    return this.#latest.size;
  }

  /** Members now. */
  get size(): number {
    return this.#members.size;
  }

  /** Records a change about `name`; it replaces any earlier change about `name` not yet taken. */
  record(name: string, line: string): void {
    const earlier = this.#latest.get(name);
    if (earlier !== undefined) this.#log[earlier] = null;
    this.#latest.set(name, this.#log.length);
    this.#log.push({ name, bytes: encoder.encode(line) });
  }

  /**
   * Adds a member that knows every change recorded so far (its online list was just written).
   * `batched`: it reads several messages per datagram.
   */
  add(member: M, options: { batched: boolean }): void {
    this.remove(member);
    const version = this.version;
    let group = this.#groups.get(version);
    if (group === undefined) {
      group = { version, members: new Set() };
      this.#groups.set(version, group);
    }
    group.members.add(member);
    this.#members.set(member, { group, batched: options.batched });
  }

  /** Removes a member (it left); unknown members are ignored. */
  remove(member: M): void {
    const entry = this.#members.get(member);
    if (entry === undefined) return;
    this.#members.delete(member);
    entry.group.members.delete(member);
    if (entry.group.members.size === 0) this.#groups.delete(entry.group.version);
  }

  /**
   * Hands out every change each member has not seen, as datagrams shared between members, and
   * marks them seen. A member is never sent its own change (a client that moved learns its new
   * endpoint from `Alive`).
   */
  take(): FanoutBatch<M>[] {
    const batches: FanoutBatch<M>[] = [];
    if (this.#log.length === 0) return batches;
    // The surviving changes, oldest first, and where each sits in the log.
    const kept: Entry[] = [];
    const keptAt: number[] = [];
    this.#log.forEach((entry, i) => {
      if (entry !== null) {
        kept.push(entry);
        keptAt.push(i);
      }
    });
    const packer = new Packer(kept, this.#max);
    for (const group of this.#groups.values()) {
      const from = lowerBound(keptAt, group.version - this.#base);
      if (from === kept.length) continue;
      const plain: Record<"batched" | "single", M[]> = { batched: [], single: [] };
      for (const member of group.members) {
        const mode = this.#members.get(member)!.batched ? "batched" : "single";
        const own = this.#latest.get(member.name);
        if (own !== undefined && own >= group.version - this.#base) {
          // Rare (a member that moved): its own change is left out, for it alone.
          const lines = kept.slice(from).filter((e) => e.name !== member.name);
          const datagrams = mode === "batched" ? pack(lines, this.#max) : lines.map((e) => e.bytes);
          if (datagrams.length > 0) batches.push({ members: [member], datagrams });
        } else {
          plain[mode].push(member);
        }
      }
      if (plain.batched.length > 0) {
        batches.push({ members: plain.batched, datagrams: packer.suffix(from) });
      }
      if (plain.single.length > 0) {
        batches.push({ members: plain.single, datagrams: kept.slice(from).map((e) => e.bytes) });
      }
    }
    this.#settle();
    return batches;
  }

  /** Everyone has now seen everything: one group at the current version, and an empty log. */
  #settle(): void {
    const version = this.version;
    let target: Group<M> | undefined;
    for (const group of this.#groups.values()) {
      if (target === undefined || group.members.size > target.members.size) target = group;
    }
    this.#groups.clear();
    this.#base = version;
    this.#log = [];
    this.#latest = new Map();
    if (target === undefined) return;
    target.version = version;
    this.#groups.set(version, target);
    for (const [member, entry] of this.#members) {
      if (entry.group !== target) {
        entry.group = target;
        target.members.add(member);
      }
    }
  }
}

/** First index of the sorted `values` whose value is at least `at`. */
function lowerBound(values: number[], at: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid] < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Packs the suffixes of one list of lines so that they share datagrams: chunks are cut from the
 * end, so every suffix is one partial datagram followed by whole chunks common to all suffixes.
 * (Lines are about distinct names, so the order of datagrams does not matter.)
 */
class Packer {
  readonly #lines: Entry[];
  readonly #max: number;
  /** Start index of each chunk, last chunk first. */
  readonly #starts: number[] = [];
  readonly #chunks: Uint8Array[] = [];
  readonly #partial = new Map<number, Uint8Array>();

  constructor(lines: Entry[], max: number) {
    this.#lines = lines;
    this.#max = max;
    let end = lines.length;
    while (end > 0) {
      let start = end - 1;
      let size = lines[start].bytes.length;
      while (start > 0 && size + 1 + lines[start - 1].bytes.length <= max) {
        start--;
        size += 1 + lines[start].bytes.length;
      }
      this.#starts.push(start);
      this.#chunks.push(join(lines.slice(start, end), size));
      end = start;
    }
  }

  /** Datagrams carrying lines `from` to the end. */
  suffix(from: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let k = 0;
    while (k < this.#starts.length && this.#starts[k] >= from) out.push(this.#chunks[k++]);
    const end = k === 0 ? this.#lines.length : this.#starts[k - 1];
    if (k < this.#starts.length && from < end) {
      // `from` falls inside chunk k: the lines from `from` to that chunk's end.
      let partial = this.#partial.get(from);
      if (partial === undefined) {
        partial = join(this.#lines.slice(from, end));
        this.#partial.set(from, partial);
      }
      out.push(partial);
    }
    return out.reverse(); // oldest first, as they happened
  }
}

/** Packs lines in order into as few datagrams of at most `max` bytes as it can. */
function pack(lines: Entry[], max: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  while (start < lines.length) {
    let end = start + 1;
    let size = lines[start].bytes.length;
    while (end < lines.length && size + 1 + lines[end].bytes.length <= max) {
      size += 1 + lines[end].bytes.length;
      end++;
    }
    out.push(join(lines.slice(start, end), size));
    start = end;
  }
  return out;
}

function join(
  lines: Entry[],
  size = lines.reduce((n, e) => n + e.bytes.length, lines.length - 1),
): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  lines.forEach((e, i) => {
    if (i > 0) out[at++] = NEWLINE;
    out.set(e.bytes, at);
    at += e.bytes.length;
  });
  return out;
}
