/**
 * Where each of our messages goes: to its recipient's link when they are online, to their mailbox
 * at the coordinator when they are not (`mailbox.ts`), or refused at once with a reason the user
 * sees (`offline.ts`: no mailbox, a group message, a changed key, too long). Messages pending from
 * the last run wait here until their recipient is online or the mailbox is known; a recipient the
 * coordinator will not introduce (`Unavailable`) gets neither link nor mailbox.
 *
 * Separate from `messages.ts` (a message's ids, records and settling) and from `links.ts` (how a
 * message reaches an online peer): this room only decides which way each one takes.
 *
 * @example
 * ```ts
 * const delivery = new Delivery({
 *   me: "alice", online, phase, trust, door, links, messages, mailbox, emit,
 * });
 * delivery.send("bob", "hello", false); // its id, or undefined with an `error` event
 * delivery.ready(); // after login: pending messages from the last run go out
 * ```
 * @module
 */
import type { ChatMessage } from "../protocol/chat_message.ts";
import type { StoredMessage } from "../store/message_log.ts";
import type { Door } from "./door.ts";
import type { PeerEvent } from "./events.ts";
import type { KeyTrust } from "./key_trust.ts";
import type { Links } from "./links.ts";
import type { PeerMailbox } from "./mailbox.ts";
import type { Messages } from "./messages.ts";
import { offlineRefusal } from "./offline.ts";

/** Longest message text, in UTF-8 bytes (it is split into datagrams and reassembled). */
export const MAX_TEXT_BYTES = 256 * 1024;

/** Options for {@linkcode Delivery}: the rooms it sends through, and the peer's state. */
export interface DeliveryOptions {
  me: string;
  /** Whether `user` is on the online list now. */
  online: (user: string) => boolean;
  /** The peer's phase: logging in until `ready`, then until closed. */
  phase: () => "login" | "ready" | "closed";
  trust: Pick<KeyTrust, "hasChanged">;
  door: Pick<Door, "want">;
  links: Pick<Links, "open" | "close">;
  messages: Pick<Messages, "send" | "resume" | "log">;
  mailbox: Pick<PeerMailbox, "available" | "deposit" | "setPort">;
  emit: (e: PeerEvent) => void;
}

const encoder = new TextEncoder();

/** Decides, message by message, between link, mailbox and refusal. */
export class Delivery {
  readonly #o: DeliveryOptions;
  /** Users seen online during this session (a message to one who is away says so). */
  readonly #seen = new Set<string>();
  /** Messages pending from the last run, by recipient, until it is online. */
  readonly #waiting = new Map<string, StoredMessage[]>();
  /** Users whose links are being closed because the coordinator will not introduce them. */
  readonly #refusing = new Set<string>();
  /** The coordinator's `Mailbox` datagram, when it came before `ready`. */
  #mailboxAt: { port: number; waiting: number } | undefined;

  constructor(options: DeliveryOptions) {
    this.#o = options;
  }

  /**
   * Sends `text` to `to` (`group`: a copy of a message to everyone, never left in a mailbox).
   * Returns its id, or emits `error` and returns `undefined` when it cannot even be queued.
   */
  send(to: string, text: string, group: boolean): number | undefined {
    const fail = (why: string) => {
      this.#o.emit({ event: "error", message: `Cannot send to ${to}: ${why}` });
      return undefined;
    };
    if (to === this.#o.me) return fail("that is you");
    // Someone not online: their mailbox, if the coordinator keeps one; else refused at once.
    const away = !this.#o.online(to);
    if (away && (group || !this.#o.mailbox.available)) {
      return fail(offlineRefusal({ user: to, seen: this.#seen.has(to) }));
    }
    if (this.#o.trust.hasChanged(to)) {
      return fail(
        `${to}'s key has changed; compare /fingerprint ${to} with them, then /trust ${to}`,
      );
    }
    const bytes = encoder.encode(text).length;
    if (bytes > MAX_TEXT_BYTES) {
      return fail(`the message is ${bytes} bytes, the limit is ${MAX_TEXT_BYTES}`);
    }
    let msg;
    try {
      msg = this.#o.messages.send(to, text, group);
    } catch (error) {
      return fail((error as Error).message);
    }
    if (away) {
      this.#deposit(to, msg);
      return msg.id;
    }
    this.#o.door.want(to);
    this.#o.links.open(to).send(msg);
    return msg.id;
  }

  /** Sends `text` to each of `users` (those online), as a group message. Returns the ids. */
  sendAll(users: string[], text: string): number[] {
    if (users.length === 0) {
      this.#o.emit({ event: "error", message: "Cannot send to everyone: nobody else is online" });
      return [];
    }
    return users.map((u) => this.send(u, text, true)).filter((id) => id !== undefined);
  }

  /**
   * A message the link gave up on is left in the recipient's mailbox, if there is one — unless
   * the coordinator said the recipient, online, will not or cannot take it. False: not left.
   */
  divert(peer: string, msg: ChatMessage): boolean {
    return !this.#refusing.has(peer) && this.#deposit(peer, msg);
  }

  /** `user` is online: messages waiting for them go now (once we are ready). */
  online(user: string): void {
    this.#seen.add(user);
    if (this.#o.phase() === "ready") this.#sendWaiting(user);
  }

  /** The coordinator's `Mailbox`: where our mail is, and how much waits. Held during login. */
  mailboxAt(port: number, waiting: number): void {
    if (this.#o.phase() === "login") {
      this.#mailboxAt = { port, waiting };
      return;
    }
    const first = !this.#o.mailbox.available;
    this.#o.mailbox.setPort(port, waiting);
    if (first) this.#sendWaitingNow();
  }

  /**
   * The coordinator will not introduce `user`. Offline users may come back within the session:
   * their messages wait. An online user it cannot introduce (a seed-only client) never will, and
   * the mailbox does not take their messages either: they said no, or cannot take any.
   */
  unavailable(user: string, reason: string): void {
    if (!this.#o.online(user)) return;
    this.#refusing.add(user);
    this.#o.links.close(user, reason);
    this.#refusing.delete(user);
  }

  /** Logged in: the mailbox heard of during login is used, and last run's pending messages go. */
  ready(): void {
    if (this.#mailboxAt) this.#o.mailbox.setPort(this.#mailboxAt.port, this.#mailboxAt.waiting);
    for (const msg of this.#o.messages.log.pending()) {
      const list = this.#waiting.get(msg.peer);
      if (list) list.push(msg);
      else this.#waiting.set(msg.peer, [msg]);
    }
    this.#sendWaitingNow();
  }

  /** Leaves `msg` in `to`'s mailbox; false when the coordinator keeps none. */
  #deposit(to: string, msg: ChatMessage): boolean {
    const { mailbox } = this.#o;
    if (!mailbox.available || msg.uid === undefined || msg.time === undefined) return false;
    mailbox.deposit(to, { uid: msg.uid, time: msg.time, text: msg.text });
    return true;
  }

  /** Pending messages go now to users online, and to the mailboxes of the others if we can. */
  #sendWaitingNow(): void {
    for (const user of [...this.#waiting.keys()]) {
      if (this.#o.online(user)) this.#sendWaiting(user);
      else if (this.#o.mailbox.available) {
        for (const stored of this.#waiting.get(user)!) {
          this.#deposit(user, this.#o.messages.resume(stored));
        }
        this.#waiting.delete(user);
      }
    }
  }

  #sendWaiting(user: string): void {
    const list = this.#waiting.get(user);
    if (!list) return;
    this.#waiting.delete(user);
    this.#o.door.want(user);
    const link = this.#o.links.open(user);
    for (const stored of list) link.send(this.#o.messages.resume(stored));
  }
}
