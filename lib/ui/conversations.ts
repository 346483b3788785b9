/**
 * The chat's conversations, as a person follows them: the current one (where plain lines go, and
 * whose lines are shown unmarked), who wrote last (for `/r`), unread messages per contact (kept
 * for when their conversation opens), and which name a typed one means (case-insensitively,
 * when that is unambiguous). Pure state, no I/O: the terminal and `--json` front ends share it.
 *
 * @example
 * ```ts
 * const talk = new Conversations();
 * talk.open("bob");
 * talk.note({ event: "message", from: "carol", to: "alice", text: "hi", id: 1, path: "direct" });
 * talk.unread(); // [["carol", 1]]
 * ```
 * @module
 */
import type { PeerEvent } from "../peer/events.ts";

/** Messages kept per contact while unread, for when their conversation opens. */
const BACKLOG = 200;

type MessageEvent = Extract<PeerEvent, { event: "message" }>;

/** The current conversation, unread counts, and who wrote last. */
export class Conversations {
  #target: string | undefined;
  #lastFrom: string | undefined;
  readonly #unread = new Map<string, MessageEvent[]>();

  /** Whom plain lines go to; `undefined` in the everyone view. */
  get target(): string | undefined {
    return this.#target;
  }

  /** Who sent the last message received, for `/r`. */
  get lastFrom(): string | undefined {
    return this.#lastFrom;
  }

  /**
   * Makes `user` the current conversation (`undefined`: the everyone view) and returns the
   * messages that were unread from them, oldest first; they are read now.
   */
  open(user: string | undefined): MessageEvent[] {
    this.#target = user;
    if (user === undefined) return [];
    const backlog = this.#unread.get(user) ?? [];
    this.#unread.delete(user);
    return backlog;
  }

  /** The user an event is about (its sender or recipient), if it is about one. */
  static about(e: PeerEvent): string | undefined {
    switch (e.event) {
      case "message":
        return e.from;
      case "sent":
      case "delivered":
      case "undelivered":
        return e.to;
      default:
        return undefined;
    }
  }

  /**
   * Takes note of an event: a message from someone other than the current conversation is
   * unread (in the everyone view every line is in view). Returns whether the event belongs to
   * another conversation than the current one, so that the front end marks it.
   */
  note(e: PeerEvent): boolean {
    if (e.event === "message") this.#lastFrom = e.from;
    const who = Conversations.about(e);
    if (!this.elsewhere(e) || who === undefined) return false;
    if (e.event === "message") {
      const list = this.#unread.get(who) ?? [];
      list.push(e);
      if (list.length > BACKLOG) list.shift();
      this.#unread.set(who, list);
    }
    return true;
  }

  /** Whether `e` belongs to another conversation than the current one (none in the everyone view). */
  elsewhere(e: PeerEvent): boolean {
    const who = Conversations.about(e);
    return who !== undefined && this.#target !== undefined && who !== this.#target;
  }

  /** Unread counts, per contact, in order of their first unread message. */
  unread(): [string, number][] {
    return [...this.#unread].map(([user, list]) => [user, list.length]);
  }

  /** Unread messages from `user`. */
  unreadFrom(user: string): number {
    return this.#unread.get(user)?.length ?? 0;
  }

  /**
   * The name `typed` means among `names` (who is online) and the names of our conversations:
   * itself when it is one of them, else the one name equal to it ignoring case, else itself
   * (and the peer says it knows nobody of that name).
   */
  resolve(typed: string, names: Iterable<string>): string {
    const all = new Set(names);
    for (const n of [this.#target, this.#lastFrom, ...this.#unread.keys()]) {
      if (n !== undefined) all.add(n);
    }
    if (all.has(typed)) return typed;
    const folded = typed.toLowerCase();
    const matches = [...all].filter((n) => n.toLowerCase() === folded);
    return matches.length === 1 ? matches[0] : typed;
  }
}
