/**
 * Our chat messages between the links and the front end: each one we send gets a session id
 * (`#3`, from `outgoing.ts`), a lasting uid and its send time, and is recorded in the
 * {@linkcode MessageLog} before it is reported `sent`; its fate is recorded (`delivered` right after
 * it is reported, `undelivered` before).
 * Each one we receive is recorded before it is reported, and a second copy (same sender, same
 * uid: resent by a sender that restarted, or also come through the mailbox) is dropped.
 *
 * Separate from the peer because this is where a message's identity and its record live,
 * whatever path it takes; the links know only session ids.
 *
 * @example
 * ```ts
 * const messages = new Messages({ me: "alice", log: new MemoryLog(), emit: console.log });
 * const msg = messages.send("bob", "hi", false); // emits `sent`; give msg to the link
 * messages.delivered("bob", msg.id, "direct"); // emits `delivered`
 * ```
 * @module
 */
import { type ChatMessage, randomUid } from "../protocol/chat_message.ts";
import type { MessageLog, StoredMessage } from "../store/message_log.ts";
import type { EventSink, PathKind } from "./events.ts";
import { Outgoing } from "./outgoing.ts";

/** Options of {@linkcode Messages}. */
export interface MessagesOptions {
  /** Our name. */
  me: string;
  log: MessageLog;
  emit: EventSink;
}

/** Why a message still pending when the client stops is not lost, as its `undelivered` says. */
const KEPT_AT_CLOSE = "the client closed; it stays pending and is sent again at the next start";

/** Our messages' identities and records, and the received ones' dedup. */
export class Messages {
  readonly #o: MessagesOptions;
  readonly #outgoing = new Outgoing();
  /** Unsettled messages by session id: to whom, and their uid. */
  readonly #unsettled = new Map<number, { to: string; uid: string }>();
  #closing = false;

  constructor(options: MessagesOptions) {
    this.#o = options;
  }

  /** The log messages are recorded in. */
  get log(): MessageLog {
    return this.#o.log;
  }

  /**
   * A new message of ours to `to`: recorded (state `sending`), then reported `sent`. Throws
   * what the log throws when it cannot keep it (a full disk): then nothing is reported or sent.
   */
  send(to: string, text: string, group: boolean): ChatMessage {
    const uid = randomUid();
    const time = Date.now();
    this.#o.log.addOutgoing({ uid, peer: to, group, time, text });
    return this.#start(to, { group, text, uid, time }, false);
  }

  /** A message still `sending` when the client last stopped: reported `sent` again (resumed). */
  resume(stored: StoredMessage): ChatMessage {
    const { peer, group, text, uid, time } = stored;
    return this.#start(peer, { group, text, uid, time }, true);
  }

  /**
   * Message `id` to `peer` was acknowledged, the link on path `path`: reported, then recorded.
   * Reported first because the record need not come first: if it is lost (a crash in between),
   * the message is still `sending` on disk, so it is sent again at the next start, and the peer,
   * who keeps (sender, uid) of what it received, drops the copy and acknowledges it.
   */
  delivered(peer: string, id: number, path: PathKind): void {
    const msg = this.#settle(id);
    if (!msg) return;
    this.#o.emit({ event: "delivered", to: peer, id, uid: msg.uid });
    this.#record(() =>
      this.#o.log.settle(peer, msg.uid, {
        state: "delivered",
        path: path === "none" ? undefined : path,
      })
    );
  }

  /**
   * Message `id` to `peer` was given up, for `reason`. While the client closes, a message kept
   * in a persistent log stays pending instead (sent again at the next start), as `reason` says.
   */
  undelivered(peer: string, id: number, reason: string): void {
    const msg = this.#settle(id);
    if (!msg) return;
    if (this.#closing && this.#o.log.persistent) reason = KEPT_AT_CLOSE;
    else this.#record(() => this.#o.log.settle(peer, msg.uid, { state: "undelivered", reason }));
    this.#o.emit({ event: "undelivered", to: peer, id, reason, uid: msg.uid });
  }

  /**
   * A message from `peer`, come by `path`: recorded and reported, unless it is a copy of one
   * received before. One from a sender of before uids gets a uid of ours.
   */
  received(peer: string, msg: ChatMessage, path: PathKind): void {
    const uid = msg.uid ?? randomUid();
    const time = msg.time ?? Date.now();
    let fresh = true;
    this.#record(() => {
      fresh = this.#o.log.addIncoming({
        uid,
        peer,
        group: msg.group,
        time,
        text: msg.text,
        path: path === "none" ? "direct" : path,
      });
    });
    if (!fresh) return;
    this.#o.emit({
      event: "message",
      from: peer,
      to: msg.group ? "*" : this.#o.me,
      text: msg.text,
      id: msg.id,
      path,
      uid,
      time: new Date(time).toISOString(),
    });
  }

  /** Resolves when every message sent so far is settled (or the client closes). */
  drain(): Promise<void> {
    return this.#outgoing.drain();
  }

  /** The client closes: messages given up from now on stay pending in a persistent log. */
  closing(): void {
    this.#closing = true;
  }

  /** Lets every {@linkcode Messages.drain} waiter go. */
  release(): void {
    this.#outgoing.release();
  }

  #start(to: string, msg: Omit<ChatMessage, "id">, resumed: boolean): ChatMessage {
    const id = this.#outgoing.add();
    this.#unsettled.set(id, { to, uid: msg.uid! });
    this.#o.emit({
      event: "sent",
      to,
      id,
      text: msg.text,
      ...(msg.group ? { group: true } : {}),
      uid: msg.uid!,
      time: new Date(msg.time!).toISOString(),
      ...(resumed ? { resumed: true } : {}),
    });
    return { ...msg, id };
  }

  #settle(id: number): { to: string; uid: string } | undefined {
    const msg = this.#unsettled.get(id);
    this.#unsettled.delete(id);
    this.#outgoing.settle(id);
    return msg;
  }

  /** A failed record (a full disk) is reported; the message itself is still reported. */
  #record(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.#o.emit({ event: "error", message: (error as Error).message });
    }
  }
}
