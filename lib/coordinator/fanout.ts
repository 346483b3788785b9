/**
 * Presence fan-out: how the coordinator tells every online user about joins and leaves without
 * one datagram per user per event. Changes are recorded as they happen, each in two forms: the
 * seed's `login,…`/`logout,…` message and the compact line of batched datagrams (`+name,…` or
 * `-name`, about half the bytes); they are handed out periodically by
 * {@linkcode PresenceFanout.take}:
 *
 * - **coalesced**: only a name's latest change is sent, so no datagram order matters in a batch;
 * - **batched**: clients that speak our extensions get the compact lines packed into datagrams of
 *   up to {@linkcode MAX_BATCH_DATAGRAM} bytes; seed-only clients get the seed's message, one per
 *   datagram, as the seed sends them;
 * - **versioned**: the change recorded when {@linkcode PresenceFanout.version} goes from k to k+1
 *   has version k+1. A member joins at the version its online list was written at and gets
 *   exactly the changes after that. Each batched datagram starts with the line
 *   `Presence,<from>,<to>`: it carries, for each name whose latest change has a version in
 *   (`from`, `to`], that change (none about the recipient itself). The datagrams one member gets
 *   from one take tile (its version, {@linkcode PresenceFanout.version}] with no gap or overlap, so
 *   a client that misses one can tell (docs/PROTOCOL.md §3.1). A member whose only change was its
 *   own still gets a header-only datagram, so it can tell it is up to date.
 *
 * A batch's datagrams are shared by every member that needs the same lines, so a flush costs one
 * encoding per group, not per member: a shared datagram's range is absolute, the same for every
 * group that gets it. Plain state, no I/O, no clock.
 *
 * @example
 * ```ts
 * const fanout = new PresenceFanout<{ name: string }>();
 * const bob = { name: "bob" };
 * fanout.add(bob, { batched: true });
 * fanout.record("carol", { seed: "login,carol,192.0.2.7:4000", batched: "+carol,wAACBw-g" });
 * fanout.record("dave", { seed: "logout,dave,192.0.2.8:4000", batched: "-dave" });
 * fanout.take();
 * // [{ members: [bob], datagrams: [bytes of "Presence,0,2\n+carol,wAACBw-g\n-dave"] }]
 * ```
 * @module
 */
import { encodeServerMessage, MAX_BATCH_DATAGRAM } from "../protocol/seed.ts";

/** Datagrams for some members: every member gets every datagram. */
export interface FanoutBatch<M> {
  members: M[];
  /** Its datagrams, in order (contacts mode packs them when they are first read). */
  readonly datagrams: Uint8Array[];
  /** How many datagrams it holds, when it can tell without packing them. */
  readonly count?: number;
}

/** Options for {@linkcode PresenceFanout}. */
export interface PresenceFanoutOptions {
  /** Largest batched datagram, header line included; default {@linkcode MAX_BATCH_DATAGRAM}. */
  maxDatagramBytes?: number;
}

interface Group<M> {
  version: number;
  members: Set<M>;
}

interface Entry {
  name: string;
  /** The seed's message, for seed-only members. */
  seed: Uint8Array;
  /** The compact line, for batched datagrams. */
  batched: Uint8Array;
  version: number;
}

/** A change in both its forms: see {@linkcode PresenceFanout.record}. */
export interface PresenceLines {
  /** The seed's message (`login,<name>,<endpoint>` or `logout,…`), one per datagram. */
  seed: string;
  /** The line in batched datagrams (`+<name>,<compact endpoint>` or `-<name>`). */
  batched: string;
}

/**
 * What {@linkcode PresenceOutbox} needs of a fan-out: everyone mode's {@linkcode PresenceFanout},
 * or contacts mode's `ContactFanout` (`contact_fanout.ts`), which tells each change only to the
 * members allowed to see it.
 */
export interface Fanout<M> {
  /** Changes (or lines) waiting for {@linkcode take}. */
  readonly pending: number;
  /** Bytes waiting that decide an early flush (two datagrams' worth: flush at once). */
  readonly pendingBytes: number;
  /** Records a change about `name` (the user `subject`), for whoever may see it. */
  record(name: string, lines: PresenceLines, subject: M): void;
  /** Adds a member whose online list was just written. */
  add(member: M, options: { batched: boolean }): void;
  /** Removes a member. */
  remove(member: M): void;
  /** Whether `member` gets batched, versioned datagrams. */
  isBatched(member: M): boolean;
  /** Hands out what each member has not seen, and marks it seen. */
  take(): FanoutBatch<M>[];
  /** The presence version of a list written now for `member`. */
  versionFor(member: M): number;
  /** Every datagram of the last {@linkcode take} has been handed to the socket. */
  handed(): void;
  /** The version up to which `member`'s datagrams have all been handed to the socket. */
  handedTo(member: M): number;
  /** How many ms the waiting changes may still wait before a flush (a login storm); 0: none. */
  holdMs(): number;
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;

/** Changes not yet sent, and which member has seen which. */
export class PresenceFanout<M extends { name: string }> implements Fanout<M> {
  readonly #max: number;
  /** Changes since the last {@linkcode take}; superseded ones are `null`. */
  #log: (Entry | null)[] = [];
  /** Version of the change before `#log[0]`. */
  #base = 0;
  /** Index in `#log` of each name's latest change. */
  #latest = new Map<string, number>();
  readonly #groups = new Map<number, Group<M>>();
  readonly #members = new Map<M, { group: Group<M>; batched: boolean }>();
  #pendingBytes = 0;
  /** The version of the last take, and of the last take handed to the socket. */
  #takenVersion = 0;
  #handedVersion = 0;

  constructor(options: PresenceFanoutOptions = {}) {
    this.#max = options.maxDatagramBytes ?? MAX_BATCH_DATAGRAM;
  }

  /** Number of changes recorded so far: the version of the latest. */
  get version(): number {
    return this.#base + this.#log.length;
  }

  /** Changes waiting for {@linkcode take} (superseded ones not counted). */
  get pending(): number {
    return this.#latest.size;
  }

  /**
   * Bytes of the batched lines waiting for {@linkcode take}, a newline each (superseded ones not
   * counted): how many datagrams the next take fills.
   */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Members now. */
  get size(): number {
    return this.#members.size;
  }

  /** Everyone mode holds no change back: 0. */
  holdMs(): number {
    return 0;
  }

  /**
   * Records a change about `name`; it replaces any earlier change about `name` not yet taken. With
   * no member, nobody can ever be sent it (a member added later joins after it): only the version
   * moves, and `lines` is not read (a coordinator that has just started takes the other cluster
   * members' snapshots, thousands of users, before its own clients are back).
   */
  record(name: string, lines: PresenceLines): void {
    if (this.#members.size === 0) {
      this.#base += this.#log.length + 1;
      this.#log = [];
      this.#latest.clear();
      this.#pendingBytes = 0;
      return;
    }
    const earlier = this.#latest.get(name);
    if (earlier !== undefined) {
      this.#pendingBytes -= 1 + this.#log[earlier]!.batched.length;
      this.#log[earlier] = null;
    }
    this.#latest.set(name, this.#log.length);
    const batched = encoder.encode(lines.batched);
    this.#pendingBytes += 1 + batched.length;
    this.#log.push({ name, seed: encoder.encode(lines.seed), batched, version: this.version + 1 });
  }

  /**
   * Adds a member that knows every change recorded so far (its online list was just written):
   * it joins at {@linkcode version}. `batched`: it reads several messages per datagram, after a
   * `Presence` header. Adding a member again moves it to the current version.
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

  /** The version of a list written now: everyone's, {@linkcode version}. */
  versionFor(_member: M): number {
    return this.version;
  }

  /** The last take's datagrams have all been handed to the socket. */
  handed(): void {
    this.#handedVersion = this.#takenVersion;
  }

  /** The version of the last take handed to the socket in full (the same for every member). */
  handedTo(_member: M): number {
    return this.#handedVersion;
  }

  /** Whether `member` gets batched (versioned) datagrams: false for seed-only and non-members. */
  isBatched(member: M): boolean {
    return this.#members.get(member)?.batched ?? false;
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
   * marks them seen: every member is then at {@linkcode version}. A member is never sent its own
   * change (a client that moved learns its new endpoint from `Alive`).
   */
  take(): FanoutBatch<M>[] {
    const batches: FanoutBatch<M>[] = [];
    this.#takenVersion = this.version;
    if (this.#log.length === 0) return batches;
    const to = this.version;
    // The surviving changes, oldest first; the last one is never superseded (its version is `to`).
    const kept = this.#log.filter((entry) => entry !== null);
    // Room for the longest header this take can write: every version in it is at most `to`.
    const budget = this.#max - 1 - header(to, to).length;
    const packer = new Packer(kept, this.#base, budget);
    for (const group of this.#groups.values()) {
      if (group.version === to) continue; // joined after the last change: nothing new
      const from = firstAfter(kept, group.version);
      const plain: Record<"batched" | "single", M[]> = { batched: [], single: [] };
      for (const member of group.members) {
        const mode = this.#members.get(member)!.batched ? "batched" : "single";
        const own = this.#latest.get(member.name);
        if (own !== undefined && this.#log[own]!.version > group.version) {
          // Rare (a member that moved): its own change is left out, for it alone.
          const lines = kept.slice(from).filter((e) => e.name !== member.name);
          const datagrams = mode === "batched"
            ? pack(lines, group.version, to, budget)
            : lines.map((e) => e.seed);
          if (datagrams.length > 0) batches.push({ members: [member], datagrams });
        } else {
          plain[mode].push(member);
        }
      }
      if (plain.batched.length > 0) {
        batches.push({ members: plain.batched, datagrams: packer.suffix(from, group.version) });
      }
      if (plain.single.length > 0) {
        batches.push({ members: plain.single, datagrams: kept.slice(from).map((e) => e.seed) });
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
    this.#pendingBytes = 0;
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

/** First index of `lines` (sorted by version) whose version is after `version`. */
function firstAfter(lines: Entry[], version: number): number {
  let lo = 0;
  let hi = lines.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (lines[mid].version <= version) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Packs the suffixes of one list of lines so that they share datagrams: chunks are cut from the
 * end, so every suffix is at most one datagram of its own followed by whole chunks common to all
 * suffixes. Chunks tile (`base`, last version]: a chunk's range runs from the version of the line
 * before it (or `base`) to the version of its own last line. (Lines are about distinct names, so
 * the order of datagrams does not matter.)
 */
class Packer {
  readonly #lines: Entry[];
  /** Start index of each chunk, last chunk first. */
  readonly #starts: number[] = [];
  /** Lower end of each chunk's range. */
  readonly #froms: number[] = [];
  /** Upper end of each chunk's range. */
  readonly #tos: number[] = [];
  readonly #chunks: Uint8Array[] = [];

  /** `budget`: the most bytes of lines (and newlines between them) a datagram may carry. */
  constructor(lines: Entry[], base: number, budget: number) {
    this.#lines = lines;
    let end = lines.length;
    while (end > 0) {
      let start = end - 1;
      let size = lines[start].batched.length;
      while (start > 0 && size + 1 + lines[start - 1].batched.length <= budget) {
        start--;
        size += 1 + lines[start].batched.length;
      }
      const from = start === 0 ? base : lines[start - 1].version;
      const to = lines[end - 1].version;
      this.#starts.push(start);
      this.#froms.push(from);
      this.#tos.push(to);
      this.#chunks.push(datagram(from, to, lines.slice(start, end)));
      end = start;
    }
  }

  /**
   * Datagrams carrying lines `from` to the end, for a member at version `after` (every line
   * before `from` is at or before it): their ranges tile (`after`, last version].
   */
  suffix(from: number, after: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const starts = this.#starts;
    let k = 0;
    while (
      k < starts.length && (starts[k] > from || (starts[k] === from && this.#froms[k] === after))
    ) {
      out.push(this.#chunks[k++]);
    }
    const end = k === 0 ? this.#lines.length : starts[k - 1];
    if (k < starts.length && from < end) {
      // `from` falls inside chunk k, or starts it but the chunk's range starts before `after`:
      // that chunk's lines from `from` on, under a header of this member's own.
      out.push(datagram(after, this.#tos[k], this.#lines.slice(from, end)));
    }
    return out.reverse(); // oldest first, as they happened
  }
}

/**
 * Packs lines in order into as few datagrams as it can, `budget` bytes of lines each, with
 * ranges that tile (`after`, `to`]; no lines at all make one header-only datagram.
 */
function pack(lines: Entry[], after: number, to: number, budget: number): Uint8Array[] {
  if (lines.length === 0) return [datagram(after, to, [])];
  const out: Uint8Array[] = [];
  let start = 0;
  let from = after;
  while (start < lines.length) {
    let end = start + 1;
    let size = lines[start].batched.length;
    while (end < lines.length && size + 1 + lines[end].batched.length <= budget) {
      size += 1 + lines[end].batched.length;
      end++;
    }
    const upper = end === lines.length ? to : lines[end - 1].version;
    out.push(datagram(from, upper, lines.slice(start, end)));
    from = upper;
    start = end;
  }
  return out;
}

/** The header line `Presence,<from>,<to>`, encoded. */
function header(from: number, to: number): Uint8Array {
  return encoder.encode(encodeServerMessage({ type: "presence", from, to }));
}

/** A batched datagram: the header, then one line per change. */
function datagram(from: number, to: number, lines: Entry[]): Uint8Array {
  const head = header(from, to);
  const out = new Uint8Array(lines.reduce((n, e) => n + 1 + e.batched.length, head.length));
  out.set(head);
  let at = head.length;
  for (const e of lines) {
    out[at++] = NEWLINE;
    out.set(e.batched, at);
    at += e.batched.length;
  }
  return out;
}
