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
 *   members together do: lines pile up per member.
 *
 * Plain state, no I/O, no clock.
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

/** Options for {@linkcode ContactFanout}. */
export interface ContactFanoutOptions<M> {
  /** The members that may see changes about `subject` besides seed-only ones: its contacts. */
  audience: (subject: M) => Iterable<M>;
  /** Whether seed-only members see changes about `subject` (it is listed publicly). */
  listed: (subject: M) => boolean;
  /** Largest batched datagram, header line included; default {@linkcode MAX_BATCH_DATAGRAM}. */
  maxDatagramBytes?: number;
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
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;

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
    this.remove(member);
    this.#members.set(member, {
      batched: options.batched,
      version: 0,
      handed: 0,
      taken: 0,
      lines: new Map(),
      bytes: 0,
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
    return this.#members.get(member)?.version ?? 0;
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

  /** Hands out every member's waiting lines, one batch per member. */
  take(): FanoutBatch<M>[] {
    const batches: FanoutBatch<M>[] = [];
    for (const member of this.#waiting) {
      const entry = this.#members.get(member)!;
      const datagrams = entry.batched ? this.#pack(entry) : [...entry.lines.values()];
      entry.taken = entry.version;
      entry.lines.clear();
      entry.bytes = 0;
      batches.push({ members: [member], datagrams });
    }
    this.#lastTake = [...this.#waiting];
    this.#waiting.clear();
    this.#pending = 0;
    this.#mostBytes = 0;
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
  }

  /**
   * Packs a member's lines into datagrams, each one version further. (A storm's flush packs for
   * thousands of members at once: the header is written straight into the datagram, and nothing
   * is copied twice.)
   */
  #pack(entry: Member): Uint8Array[] {
    const out: Uint8Array[] = [];
    let group: Uint8Array[] = [];
    let size = 0;
    const close = () => {
      // Versions are ASCII digits: the header's length in bytes is its length in characters.
      const head = `Presence,${entry.version},${entry.version + 1}`;
      const bytes = new Uint8Array(head.length + size);
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
    // Room for the longest header this member's next datagrams can have.
    const room = this.#max - `Presence,${entry.version + 64},${entry.version + 65}`.length;
    for (const line of entry.lines.values()) {
      if (group.length > 0 && size + 1 + line.length > room) close();
      group.push(line);
      size += 1 + line.length;
    }
    if (group.length > 0) close();
    return out;
  }
}
