/**
 * What a chat client remembers of its messages, as the client sees it: {@linkcode MessageLog}.
 * Two kinds: the encrypted history on disk (`history.ts`), and {@linkcode MemoryLog} for
 * `--no-history`, which writes nothing and only remembers, for the session, which messages
 * arrived (a copy resent by a restarted sender, or one that came through the mailbox too, is
 * still shown once).
 *
 * @example
 * ```ts
 * const log: MessageLog = new MemoryLog();
 * const msg = { uid: "00".repeat(16), peer: "bob", group: false, time: 0, text: "hi",
 *   path: "direct" as const };
 * log.addIncoming(msg); // true: new
 * log.addIncoming(msg); // false: a duplicate
 * ```
 * @module
 */

/**
 * Where one of our messages stands: `sending` until the peer acknowledges it (`delivered`) or
 * it is given up with a reason (`undelivered`); `deposited` in the coordinator's mailbox;
 * `received` for a message someone sent us.
 */
export type DeliveryState = "sending" | "delivered" | "undelivered" | "deposited" | "received";

/** How a message travelled: straight between the peers, through the relay, or the mailbox. */
export type MessagePath = "direct" | "turn" | "relay" | "mailbox";

/** A message we sent, as recorded before it is reported `sent`. */
export interface OutgoingRecord {
  uid: string;
  /** To whom. */
  peer: string;
  group: boolean;
  /** When we sent it, ms since 1970. */
  time: number;
  text: string;
}

/** A message we received. */
export interface IncomingRecord {
  uid: string;
  /** From whom. */
  peer: string;
  group: boolean;
  /** When the sender sent it (its clock), ms since 1970. */
  time: number;
  text: string;
  path: MessagePath;
}

/** One line of history. */
export interface StoredMessage {
  uid: string;
  /** The other side: to whom we sent it, or from whom we got it. */
  peer: string;
  /** We sent it. */
  outgoing: boolean;
  group: boolean;
  /** When it was sent, by the sender's clock, ms since 1970. */
  time: number;
  text: string;
  state: DeliveryState;
  /** Why it is `undelivered`. */
  reason?: string;
  path?: MessagePath;
}

/** The fate of one of our messages. */
export interface Settlement {
  state: Exclude<DeliveryState, "received">;
  reason?: string;
  path?: MessagePath;
}

/** What a chat client records of its messages and asks of its past. */
export interface MessageLog {
  /** Whether this log keeps anything beyond the session (false with `--no-history`). */
  readonly persistent: boolean;
  /**
   * Records a message of ours, state `sending`. A log may write it later ({@linkcode flushed});
   * throws only for a record it cannot take at all (a bad uid).
   */
  addOutgoing(msg: OutgoingRecord): void;
  /** Records the fate of our message `uid` to `peer`. */
  settle(peer: string, uid: string, outcome: Settlement): void;
  /** Records a received message; `false` (and records nothing) when it is a duplicate. */
  addIncoming(msg: IncomingRecord): boolean;
  /** Writes now what is recorded so far (a log may group its writes). */
  flush(): void;
  /** Calls `callback` once everything recorded so far is written (at once if it is). */
  flushed(callback: () => void): void;
  /** Our messages still `sending`, oldest first: those to send again after a restart. */
  pending(): StoredMessage[];
  /** The last `limit` messages with `peer`, oldest first. */
  conversation(peer: string, limit: number): StoredMessage[];
  /** The backlog: the last `perContact` messages with each of the `contacts` latest contacts. */
  recent(options: { contacts: number; perContact: number }): StoredMessage[];
  /** The last `limit` messages whose text contains `text` (ignoring case), oldest first. */
  search(text: string, limit: number): StoredMessage[];
  close(): void;
}

/** Received (peer, uid) pairs a {@linkcode MemoryLog} remembers; the oldest are forgotten. */
const MEMORY_SEEN = 100_000;

/**
 * The log of `--no-history`: nothing is kept, nothing is written; received uids are remembered
 * (the last 100,000) so that duplicates are dropped within the session.
 */
export class MemoryLog implements MessageLog {
  readonly persistent: boolean = false;
  readonly #seen = new Set<string>();

  addOutgoing(_msg: OutgoingRecord): void {}

  settle(_peer: string, _uid: string, _outcome: Settlement): void {}

  addIncoming(msg: IncomingRecord): boolean {
    const key = `${msg.uid} ${msg.peer}`;
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    if (this.#seen.size > MEMORY_SEEN) this.#seen.delete(this.#seen.values().next().value!);
    return true;
  }

  flush(): void {}

  flushed(callback: () => void): void {
    callback();
  }

  pending(): StoredMessage[] {
    return [];
  }

  conversation(_peer: string, _limit: number): StoredMessage[] {
    return [];
  }

  recent(_options: { contacts: number; perContact: number }): StoredMessage[] {
    return [];
  }

  search(_text: string, _limit: number): StoredMessage[] {
    return [];
  }

  close(): void {}
}
