/**
 * Presence fan-out in contacts mode (`p2p serve --presence contacts`, docs/PROTOCOL.md §1.5): a
 * change about a user goes only to the online members allowed to see it — its contacts, and the
 * seed-only members when it is listed publicly — so a login costs O(contacts) lines, not O(N).
 * It does for {@linkcode PresenceOutbox} what {@linkcode PresenceFanout} does in everyone mode,
 * through the same {@linkcode Fanout} interface, but no two members share a datagram, so it is a
 * separate room:
 *
 * - **per member**: each member has its own lines waiting (only a name's latest change, as in
 *   everyone mode) and its own presence versions. Its datagrams' ranges count its own datagrams:
 *   the k-th batched datagram it is sent is `Presence,<k-1>,<k>`, so the ranges tile from the
 *   version its list was written at (its current count) with no gap, and `Alive` tells the last
 *   one handed to the socket. The client's checks (§1.3) work unchanged.
 * - **flush early** when one member has two datagrams' worth waiting
 *   ({@linkcode ContactFanout.pendingBytes} is the most any member has waiting), not when all
 *   members together do: lines pile up per member. Not while a storm hold is on (below): one
 *   member with many contacts would end the hold for every member.
 * - **packed lazily**: `take` hands out each member's waiting lines as they are, and a member's
 *   datagrams are packed when the outbox first reads them, as its rounds reach that member in
 *   slices. A storm's flush holds ~9,400 members: packing them all in one step kept the event
 *   loop busy for 26 ms, long enough for the socket to drop logins. (A list written for a member
 *   meanwhile packs its datagrams first, so its version counts them.)
 *
 * - **held through a storm** when given a {@linkcode StormHold}: while logins come fast, lines wait
 *   (`holdMs`), so that a member gets one datagram for the whole storm, not one per flush.
 *
 * Plain state, no I/O, no clock (the hold reads one).
 *
 * @example
 * ```ts
 * const alice = { name: "alice" };
 * const bob = { name: "bob" };
 * const fanout = new ContactFanout<{ name: string }>({
 *   audience: (u) => (u === bob ? [alice] : []),
 *   listed: () => false,
 * });
 * fanout.add(alice, { batched: true });
 * fanout.record("bob", { seed: "login,bob,192.0.2.8:4000", batched: "+bob,wAACCA-g" }, bob);
 * fanout.take(); // [{ members: [alice], datagrams: [bytes of "Presence,0,1\n+bob,wAACCA-g"] }]
 * ```
 * @module
 */
import { MAX_BATCH_DATAGRAM } from "../protocol/seed.ts";
import type { Fanout, FanoutBatch, PresenceLines } from "./fanout.ts";
import type { StormHold } from "./storm_hold.ts";

/** Options for {@linkcode ContactFanout}. */
export interface ContactFanoutOptions<M> {
  /** The members that may see changes about `subject` besides seed-only ones: its contacts. */
  audience: (subject: M) => Iterable<M>;
  /** Whether seed-only members see changes about `subject` (it is listed publicly). */
  listed: (subject: M) => boolean;
  /** Largest batched datagram, header line included; default {@linkcode MAX_BATCH_DATAGRAM}. */
  maxDatagramBytes?: number;
  /** Holds lines through login storms (told of each `add` and line); none: never held. */
  hold?: StormHold;
}

interface Member {
  batched: boolean;
  /** Batched datagrams made for it so far: the `to` of the last one. */
  version: number;
  /** Its version when its datagrams of the last take have all been handed to the socket. */
  handed: number;
  /** Its version after the last take. */
  taken: number;
  /** Lines waiting, by the name they are about (only the latest). */
  lines: Map<string, Uint8Array>;
  /** Bytes of `lines`, a newline each. */
  bytes: number;
  /** Its batch of the last take, if its datagrams are not packed yet. */
  unpacked: MemberBatch<unknown> | undefined;
}

/**
 * One member's datagrams of a take, packed the first time they are read; `count` says how many
 * there are or will be without packing them (for the outbox's backlog).
 */
class MemberBatch<M> implements FanoutBatch<M> {
  readonly members: M[];
  readonly #count: () => number;
  #pack: (() => Uint8Array[]) | undefined;
  #datagrams: Uint8Array[] = [];

  constructor(member: M, count: () => number, pack: () => Uint8Array[]) {
    this.members = [member];
    this.#count = count;
    this.#pack = pack;
  }

  get count(): number {
    return this.#pack === undefined ? this.#datagrams.length : this.#count();
  }

  get datagrams(): Uint8Array[] {
    if (this.#pack !== undefined) {
      const pack = this.#pack;
      this.#pack = undefined;
      this.#datagrams = pack();
    }
    return this.#datagrams;
  }
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
/** The blocks datagrams are cut from: ~60 datagrams of a storm's flush each. */
const BLOCK_BYTES = 64 * 1024;

/** Changes not yet sent, member by member. */
export class ContactFanout<M extends { name: string }> implements Fanout<M> {
  readonly #o: ContactFanoutOptions<M>;
  readonly #max: number;
  readonly #members = new Map<M, Member>();
  readonly #seedOnly = new Set<M>();
  /** Members with lines waiting. */
  readonly #waiting = new Set<M>();
  #pending = 0;
  #mostBytes = 0;
  #lastTake: M[] = [];
  /** Where {@linkcode #carve} cuts datagrams from, and how much of it is cut. */
  #block = new Uint8Array(0);
  #blockUsed = 0;

  constructor(options: ContactFanoutOptions<M>) {
    this.#o = options;
    this.#max = options.maxDatagramBytes ?? MAX_BATCH_DATAGRAM;
  }

  /** Lines waiting for {@linkcode take}, all members together. */
  get pending(): number {
    return this.#pending;
  }

  /** The most bytes of lines waiting for any one member (what decides an early flush). */
  get pendingBytes(): number {
    return this.#mostBytes;
  }

  /** Members now. */
  get size(): number {
    return this.#members.size;
  }

  /** How many ms the waiting lines may still wait (a login storm: `StormHold`); 0: flush. */
  holdMs(): number {
    return this.#o.hold?.holdMs() ?? 0;
  }

  /** Records a change about `subject` for every member that may see it. */
  record(name: string, lines: PresenceLines, subject: M): void {
    const encoded = { batched: encoder.encode(lines.batched), seed: encoder.encode(lines.seed) };
    for (const member of this.#o.audience(subject)) this.#queue(member, name, encoded);
    if (this.#seedOnly.size > 0 && this.#o.listed(subject)) {
      for (const member of this.#seedOnly) this.#queue(member, name, encoded);
    }
  }

  /** Records a change about `name` for `member` alone (a contact added or removed). */
  tell(member: M, name: string, lines: PresenceLines): void {
    this.#queue(member, name, {
      batched: encoder.encode(lines.batched),
      seed: encoder.encode(lines.seed),
    });
  }

  /**
   * Adds a member whose list was just written (it holds everything so far): it starts at version
   * 0, its own count. Adding it again (a new login) starts it over.
   */
  add(member: M, options: { batched: boolean }): void {
    this.#o.hold?.login();
    this.remove(member);
    this.#members.set(member, {
      batched: options.batched,
      version: 0,
      handed: 0,
      taken: 0,
      lines: new Map(),
      bytes: 0,
      unpacked: undefined,
    });
    if (!options.batched) this.#seedOnly.add(member);
  }

  /** Removes a member (it left); unknown members are ignored. */
  remove(member: M): void {
    const entry = this.#members.get(member);
    if (entry === undefined) return;
    this.#pending -= entry.lines.size;
    this.#members.delete(member);
    this.#seedOnly.delete(member);
    this.#waiting.delete(member);
  }

  /** Whether `member` gets batched (versioned) datagrams. */
  isBatched(member: M): boolean {
    return this.#members.get(member)?.batched ?? false;
  }

  /** The version a list written for `member` now is at: its own count. */
  versionFor(member: M): number {
    const entry = this.#members.get(member);
    entry?.unpacked?.datagrams; // its last take's datagrams count
    return entry?.version ?? 0;
  }

  /** The version every datagram of `member` up to which has been handed to the socket. */
  handedTo(member: M): number {
    return this.#members.get(member)?.handed ?? 0;
  }

  /** The last take's datagrams have all been handed to the socket. */
  handed(): void {
    for (const member of this.#lastTake) {
      const entry = this.#members.get(member);
      if (entry !== undefined) entry.handed = Math.max(entry.handed, entry.taken);
    }
    this.#lastTake = [];
  }

  /**
   * Hands out every member's waiting lines, one batch per member; a batch's datagrams are packed
   * when first read.
   */
  take(): FanoutBatch<M>[] {
    const batches: FanoutBatch<M>[] = [];
    for (const member of this.#waiting) {
      const entry = this.#members.get(member)!;
      entry.unpacked?.datagrams; // the outbox reads every batch before the next take: never left
      const lines = entry.lines; // handed over as it is: a take copies nothing
      entry.lines = new Map();
      entry.bytes = 0;
      let batch: MemberBatch<M>;
      if (entry.batched) {
        batch = new MemberBatch(member, () => this.#count(entry, lines), () => {
          entry.unpacked = undefined;
          const datagrams = this.#pack(entry, lines);
          entry.taken = entry.version;
          return datagrams;
        });
        entry.unpacked = batch;
      } else batch = new MemberBatch(member, () => lines.size, () => [...lines.values()]);
      batches.push(batch);
    }
    this.#lastTake = [...this.#waiting];
    this.#waiting.clear();
    this.#pending = 0;
    this.#mostBytes = 0;
    this.#o.hold?.taken();
    return batches;
  }

  #queue(member: M, name: string, lines: { batched: Uint8Array; seed: Uint8Array }): void {
    const entry = this.#members.get(member);
    if (entry === undefined || member.name === name) return;
    const line = entry.batched ? lines.batched : lines.seed;
    const earlier = entry.lines.get(name);
    if (earlier !== undefined) entry.bytes -= 1 + earlier.length;
    else this.#pending++;
    entry.lines.set(name, line);
    entry.bytes += 1 + line.length;
    this.#mostBytes = Math.max(this.#mostBytes, entry.bytes);
    this.#waiting.add(member);
    this.#o.hold?.waiting();
  }

  /**
   * `n` bytes for a datagram, cut from a shared block: a storm's flush packs ~10,000 datagrams,
   * and an `ArrayBuffer` of its own for each was a third of the packing's time (~2 of ~6 µs). A
   * block lives while any datagram cut from it does: until its flush is sent.
   */
  #carve(n: number): Uint8Array {
    if (this.#block.length - this.#blockUsed < n) {
      this.#block = new Uint8Array(Math.max(BLOCK_BYTES, n));
      this.#blockUsed = 0;
    }
    const bytes = this.#block.subarray(this.#blockUsed, this.#blockUsed + n);
    this.#blockUsed += n;
    return bytes;
  }

  /** How many datagrams {@linkcode #pack} will make of `lines`, without making them. */
  #count(entry: Member, lines: Map<string, Uint8Array>): number {
    const room = this.#room(entry);
    let count = 0;
    let size = 0;
    for (const line of lines.values()) {
      if (size > 0 && size + 1 + line.length > room) {
        count++;
        size = 0;
      }
      size += 1 + line.length;
    }
    return size > 0 ? count + 1 : count;
  }

  /** Room for lines in a member's next datagrams: the longest header they can have aside. */
  #room(entry: Member): number {
    return this.#max - `Presence,${entry.version + 64},${entry.version + 65}`.length;
  }

  /**
   * Packs a member's lines into datagrams, each one version further. (The header is written
   * straight into the datagram, and nothing is copied twice.)
   */
  #pack(entry: Member, lines: Map<string, Uint8Array>): Uint8Array[] {
    const out: Uint8Array[] = [];
    let group: Uint8Array[] = [];
    let size = 0;
    const close = () => {
      // Versions are ASCII digits: the header's length in bytes is its length in characters.
      const head = `Presence,${entry.version},${entry.version + 1}`;
      const bytes = this.#carve(head.length + size);
      encoder.encodeInto(head, bytes);
      let at = head.length;
      for (const line of group) {
        bytes[at++] = NEWLINE;
        bytes.set(line, at);
        at += line.length;
      }
      out.push(bytes);
      entry.version++;
      group = [];
      size = 0;
    };
    const room = this.#room(entry);
    for (const line of lines.values()) {
      if (group.length > 0 && size + 1 + line.length > room) close();
      group.push(line);
      size += 1 + line.length;
    }
    if (group.length > 0) close();
    return out;
  }
}
