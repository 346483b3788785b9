/**
 * Our chat messages between the links and the front end: each one we send gets a session id
 * (`#3`, from `outgoing.ts`), a lasting uid and its send time, and is recorded in the
 * {@linkcode MessageLog} before it is reported `sent`; its fate is recorded (`delivered` right after
 * it is reported, `undelivered` before). A new message (not a group copy) is recorded in the task
 * after the one that hands it to its link, so that the datagram leaves first (`node:dgram` sends
 * when the task ends), and reported `sent` once the log has written it (the history groups its
 * writes, `history.ts`): a message reported `sent` is on disk, unless its fate came first (then
 * `sent` and the fate are reported together). Any report of its fate comes after its `sent`.
 * Each one we receive is recorded before it is reported, and a second copy (same sender, same
 * uid: resent by a sender that restarted, or also come through the mailbox) is dropped.
 *
 * Separate from the peer because this is where a message's identity and its record live,
 * whatever path it takes; the links know only session ids. A message a link gives up on may be
 * diverted to the mailbox (`divert`): it then stays unsettled until the mailbox reports it
 * `deposited` (or refused); receipts from the mailbox report it `delivered`, `via: "mailbox"`.
 *
 * @example
 * ```ts
 * const messages = new Messages({ me: "alice", log: new MemoryLog(), emit: console.log });
 * const msg = messages.send("bob", "hi", false); // give msg to the link; `sent` follows
 * messages.delivered("bob", msg.id, "direct"); // emits `delivered`
 * ```
 * @module
 */
import { type ChatMessage, randomUid } from "../protocol/chat_message.ts";
import type { MessageLog, StoredMessage } from "../store/message_log.ts";
import type { EventSink, PathKind } from "./events.ts";
import { Outgoing } from "./outgoing.ts";
import { clearImmediate, setImmediate } from "node:timers";

/** Options of {@linkcode Messages}. */
export interface MessagesOptions {
  /** Our name. */
  me: string;
  log: MessageLog;
  emit: EventSink;
  /**
   * Offered each message of ours a link gives up on (not a group copy, not while closing): true
   * when it was handed to the mailbox, which reports its fate through
   * {@linkcode Messages.deposited} or {@linkcode Messages.depositRefused}.
   */
  divert?: (peer: string, msg: ChatMessage) => boolean;
}

/** Why a message still pending when the client stops is not lost, as its `undelivered` says. */
const KEPT_AT_CLOSE = "the client closed; it stays pending and is sent again at the next start";

/** Our messages' identities and records, and the received ones' dedup. */
export class Messages {
  readonly #o: MessagesOptions;
  readonly #outgoing = new Outgoing();
  /** Unsettled messages by session id: to whom, and the message (uid, time, text). */
  readonly #unsettled = new Map<number, { to: string; uid: string; msg: ChatMessage }>();
  /** This session's ids of our messages in mailboxes (`peer uid`), for their receipts. */
  readonly #deposited = new Map<string, number>();
  /** Our new messages handed to the links, not recorded and reported `sent` yet, by id. */
  readonly #unrecorded = new Map<number, { to: string; msg: ChatMessage }>();
  /** Recorded, waiting for the log to write them to be reported `sent`, by id. */
  readonly #unwritten = new Map<number, { to: string; msg: ChatMessage }>();
  #recordTimer: ReturnType<typeof setImmediate> | undefined;
  #closing = false;

  constructor(options: MessagesOptions) {
    this.#o = options;
  }

  /** The log messages are recorded in. */
  get log(): MessageLog {
    return this.#o.log;
  }

  /**
   * A new message of ours to `to`, to be handed to its link now. Recorded (state `sending`) in a
   * later task and reported `sent` once written, or sooner when its fate comes first or the
   * client closes. A record that fails (a full disk) is reported as an `error` naming the
   * message, which is sent all the same. A group copy is recorded, written and reported at once.
   */
  send(to: string, text: string, group: boolean): ChatMessage {
    const uid = randomUid();
    const time = Date.now();
    if (group) {
      // A copy for `/all`: recorded and reported at once, as the front end gathers the copies'
      // `sent` into one line while the group is sent. Off the round trip the goal is about.
      this.#recordSent(); // those before it first, in order
      this.#o.log.addOutgoing({ uid, peer: to, group, time, text });
      this.#o.log.flush();
      const copy = this.#start(to, { group, text, uid, time });
      this.#reportSent(to, copy, false);
      return copy;
    }
    const msg = this.#start(to, { group, text, uid, time });
    this.#unrecorded.set(msg.id, { to, msg });
    // Not setTimeout(0): Deno runs that a millisecond or more later, after the acknowledgement.
    this.#recordTimer ??= setImmediate(() => this.#recordSent());
    return msg;
  }

  /** A message still `sending` when the client last stopped: reported `sent` again (resumed). */
  resume(stored: StoredMessage): ChatMessage {
    const { peer, group, text, uid, time } = stored;
    const msg = this.#start(peer, { group, text, uid, time });
    this.#reportSent(peer, msg, true);
    return msg;
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
    if (this.#unrecorded.has(id)) this.#recordSent();
    const entry = this.#unsettled.get(id);
    if (entry && !this.#closing && !entry.msg.group && this.#o.divert?.(peer, entry.msg)) return;
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

  /**
   * Our message `uid` to `peer` was left in `peer`'s mailbox (`firstContact`: sealed to the key
   * the coordinator gave for the name). Settles it, if it is this session's.
   */
  deposited(peer: string, uid: string, firstContact: boolean): void {
    const id = this.#idOf(peer, uid);
    if (id !== undefined) {
      this.#settle(id);
      this.#deposited.set(`${peer} ${uid}`, id);
    }
    this.#record(() => this.#o.log.settle(peer, uid, { state: "deposited", path: "mailbox" }));
    this.#o.emit({
      event: "deposited",
      to: peer,
      id: id ?? 0,
      uid,
      ...(firstContact ? { firstContact: true } : {}),
    });
  }

  /** The mailbox refused our message `uid` to `peer`, for `reason`: it is undelivered. */
  depositRefused(peer: string, uid: string, reason: string): void {
    const id = this.#idOf(peer, uid);
    if (id !== undefined) this.#settle(id);
    if (this.#closing && this.#o.log.persistent) reason = KEPT_AT_CLOSE;
    else this.#record(() => this.#o.log.settle(peer, uid, { state: "undelivered", reason }));
    this.#o.emit({ event: "undelivered", to: peer, id: id ?? 0, reason, uid });
  }

  /** `peer` got these messages of ours from its mailbox (its receipt). */
  receipt(peer: string, uids: readonly string[]): void {
    for (const uid of uids) {
      const key = `${peer} ${uid}`;
      const id = this.#idOf(peer, uid) ?? this.#deposited.get(key);
      this.#deposited.delete(key);
      if (id !== undefined) this.#settle(id);
      this.#record(() => this.#o.log.settle(peer, uid, { state: "delivered", path: "mailbox" }));
      this.#o.emit({ event: "delivered", to: peer, id: id ?? 0, uid, via: "mailbox" });
    }
  }

  /**
   * A message from `peer` that came out of our mailbox: recorded and reported (`via: "mailbox"`),
   * unless it is a copy of one received before (by a link, or the mailbox).
   */
  fromMailbox(peer: string, mail: { uid: string; time: number; text: string }): void {
    let fresh = true;
    this.#record(() => {
      fresh = this.#o.log.addIncoming({ ...mail, peer, group: false, path: "mailbox" });
    });
    if (!fresh) return;
    this.#o.emit({
      event: "message",
      from: peer,
      to: this.#o.me,
      text: mail.text,
      id: 0,
      path: "none",
      uid: mail.uid,
      time: new Date(mail.time).toISOString(),
      via: "mailbox",
    });
  }

  /** Resolves when every message sent so far is settled (or the client closes). */
  drain(): Promise<void> {
    return this.#outgoing.drain();
  }

  /** The client closes: messages given up from now on stay pending in a persistent log. */
  closing(): void {
    this.#recordSent();
    this.#o.log.flush();
    this.#closing = true;
  }

  /** Lets every {@linkcode Messages.drain} waiter go. */
  release(): void {
    this.#recordSent();
    this.#o.log.flush();
    this.#outgoing.release();
  }

  #start(to: string, msg: Omit<ChatMessage, "id">): ChatMessage {
    const id = this.#outgoing.add();
    this.#unsettled.set(id, { to, uid: msg.uid!, msg: { ...msg, id } });
    return { ...msg, id };
  }

  #reportSent(to: string, msg: ChatMessage, resumed: boolean): void {
    this.#o.emit({
      event: "sent",
      to,
      id: msg.id,
      text: msg.text,
      ...(msg.group ? { group: true } : {}),
      uid: msg.uid!,
      time: new Date(msg.time!).toISOString(),
      ...(resumed ? { resumed: true } : {}),
    });
  }

  /**
   * Records (`sending`) our new messages handed to the links so far; each is reported `sent`
   * when the log has written it.
   */
  #recordSent(): void {
    if (this.#recordTimer) clearImmediate(this.#recordTimer);
    this.#recordTimer = undefined;
    if (this.#unrecorded.size === 0) return;
    for (const [id, entry] of this.#unrecorded) {
      const { to, msg } = entry;
      this.#unrecorded.delete(id);
      this.#unwritten.set(id, entry);
      try {
        this.#o.log.addOutgoing({
          uid: msg.uid!,
          peer: to,
          group: msg.group,
          time: msg.time!,
          text: msg.text,
        });
      } catch (error) {
        this.#o.emit({
          event: "error",
          message: `Message #${id} to ${to} is sent but not kept in the history: ` +
            (error as Error).message,
        });
      }
    }
    this.#o.log.flushed(() => this.#reportWritten());
  }

  /** Reports `sent` for our recorded messages, in order. */
  #reportWritten(): void {
    for (const [id, { to, msg }] of this.#unwritten) {
      this.#unwritten.delete(id);
      this.#reportSent(to, msg, false);
    }
  }

  /** This session's id of our unsettled message `uid` to `peer`. */
  #idOf(peer: string, uid: string): number | undefined {
    for (const [id, m] of this.#unsettled) if (m.to === peer && m.uid === uid) return id;
    return undefined;
  }

  #settle(id: number): { to: string; uid: string } | undefined {
    // Its `sent` comes first, and its record before the record of its fate.
    if (this.#unrecorded.has(id)) this.#recordSent();
    if (this.#unwritten.has(id)) this.#reportWritten();
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
