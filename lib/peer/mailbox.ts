/**
 * A chat client's use of the coordinator's mailbox (docs/PROTOCOL.md §5): messages for users who
 * are offline or unreachable are sealed to their key and deposited; our own mail is fetched when
 * the coordinator says some waits, checked against our pinned keys, reported once each, deleted,
 * and answered with sealed receipts; receipts for our messages are reported as delivered. The
 * wire is `mailbox_client.ts`'s, the sealing `lib/crypto/seal.ts`'s; this room decides what to
 * seal for whom and what a fetched message means, and leaves history and events to its owner.
 *
 * Keys: a message is sealed to the recipient's pinned key; for someone never talked to, to the
 * key the coordinator has registered for the name, which is then pinned (trust on first use, and
 * the owner tells the user so). A fetched message whose sender's key differs from the pinned one
 * is not shown and not deleted: it waits in the mailbox until the user checks and `/trust`s the
 * new key, as a changed key holds a live conversation.
 *
 * @example
 * ```ts
 * const mailbox = new PeerMailbox({ me: "alice", identity, host: "127.0.0.1", trust, events });
 * mailbox.setPort(7001, 0); // from the coordinator's `Mailbox` datagram
 * mailbox.deposit("bob", { uid, time: Date.now(), text: "see you tomorrow" });
 * ```
 * @module
 */
import { randomUid } from "../protocol/chat_message.ts";
import type { KeyPair } from "../crypto/noise.ts";
import { openSealed, seal, sealPrologue } from "../crypto/seal.ts";
import {
  decodeMailPayload,
  encodeMailPayload,
  type MailPayload,
  MAX_RECEIPT_UIDS,
} from "../protocol/mailbox_payload.ts";
import { MailboxClient, type MailboxClientOptions } from "./mailbox_client.ts";

/** A message to leave in someone's mailbox. */
export interface OutgoingMail {
  /** The message's lasting id (the same as over a link). */
  uid: string;
  /** When it was sent, ms since the epoch. */
  time: number;
  text: string;
}

/** What the mailbox reports to its owner (the peer, which turns them into events and history). */
export interface PeerMailboxEvents {
  /**
   * A message from `from` came out of the mailbox, in order; the owner drops it if it has seen
   * that uid from that sender before (by a link, or the mailbox).
   */
  onMessage(mail: { from: string; uid: string; time: number; text: string }): void;
  /** Our message `uid` was left in `to`'s mailbox; `firstContact` when sealed to the key the coordinator gave. */
  onDeposited(to: string, uid: string, firstContact: boolean): void;
  /** Our message `uid` could not be left in `to`'s mailbox, and why. */
  onUndelivered(to: string, uid: string, reason: string): void;
  /** `from` received these messages of ours from its mailbox. */
  onReceipt(from: string, uids: string[]): void;
  /** `count` messages from `from` wait in the mailbox because `from`'s key changed. */
  onHeld(from: string, count: number): void;
  /** Something went wrong that the user should know (the mailbox unreachable…). */
  onError(message: string): void;
}

/** What the mailbox needs of our key trust (`key_trust.ts`'s {@linkcode KeyTrust}). */
export interface MailboxTrust {
  pinned(peer: string): Uint8Array | undefined;
  /** Pins a new key, accepts the pinned one, refuses (and reports) a changed one. */
  verify(peer: string, key: Uint8Array): boolean;
}

/** Options for {@linkcode PeerMailbox}. */
export interface PeerMailboxOptions {
  me: string;
  identity: KeyPair;
  /** The coordinator's host: the mailbox listens there. */
  host: string;
  trust: MailboxTrust;
  events: PeerMailboxEvents;
  /** How to connect (tests, the benchmark); default {@linkcode MailboxClient.connect}. */
  connect?: (options: MailboxClientOptions) => Promise<MailboxClient>;
}

/** The client's side of the mailbox. */
export class PeerMailbox {
  readonly #o: PeerMailboxOptions;
  #port: number | undefined;
  /** Operations run one after another, on one connection opened for them. */
  #chain: Promise<void> = Promise.resolve();
  #queued = 0;
  #client: MailboxClient | undefined;
  #fetchWanted = false;
  #fetching = false;
  #closed = false;

  constructor(options: PeerMailboxOptions) {
    this.#o = options;
  }

  /** Whether the coordinator has a mailbox for us (it told us its port). */
  get available(): boolean {
    return this.#port !== undefined && !this.#closed;
  }

  /** The coordinator's `Mailbox,<port>,<waiting>`: where it is, and whether mail waits. */
  setPort(port: number, waiting: number): void {
    this.#port = port;
    if (waiting > 0) this.fetch();
  }

  /** Seals `mail` for `to` and deposits it; reports `onDeposited` or `onUndelivered`. */
  deposit(to: string, mail: OutgoingMail): Promise<void> {
    return this.#run(async (client) => {
      let key = this.#o.trust.pinned(to);
      const firstContact = key === undefined;
      if (key === undefined) {
        key = await client.key(to);
        if (key === undefined) {
          this.#o.events.onUndelivered(to, mail.uid, "unknown user");
          return;
        }
        // Trust on first use: the coordinator's word for the key, pinned from now on.
        if (!this.#o.trust.verify(to, key)) {
          this.#o.events.onUndelivered(to, mail.uid, `${to}'s key has changed`);
          return;
        }
      }
      const payload: MailPayload = { kind: "message", from: this.#o.me, ...mail };
      const result = await client.deposit(to, this.#seal(to, key, payload));
      if (result.ok) this.#o.events.onDeposited(to, mail.uid, firstContact);
      else this.#o.events.onUndelivered(to, mail.uid, result.reason);
    }, (err) => this.#o.events.onUndelivered(to, mail.uid, `the mailbox failed: ${err.message}`));
  }

  /** Fetches our mail (once more if asked while a fetch runs). */
  fetch(): Promise<void> {
    this.#fetchWanted = true;
    if (this.#fetching) return this.#chain;
    this.#fetching = true;
    return this.#run(async (client) => {
      try {
        while (this.#fetchWanted && !this.#closed) {
          this.#fetchWanted = false;
          await this.#fetchOnce(client);
        }
      } finally {
        this.#fetching = false;
      }
    }, (err) => this.#o.events.onError(`Cannot fetch mail: ${err.message}`));
  }

  /** Resolves when every operation asked for so far has finished. */
  idle(): Promise<void> {
    return this.#chain;
  }

  /** Stops: operations not started are dropped (their messages stay pending with the owner). */
  close(): void {
    this.#closed = true;
    this.#client?.close();
    this.#client = undefined;
  }

  async #fetchOnce(client: MailboxClient): Promise<void> {
    const { me, identity, trust, events } = this.#o;
    const mail = await client.fetch(me, identity);
    const done: number[] = [];
    const held = new Map<string, number>();
    const receipts = new Map<string, { key: Uint8Array; uids: string[] }>();
    for (const { id, sealed } of mail) {
      let payload: MailPayload;
      let senderKey: Uint8Array;
      try {
        const opened = openSealed({ recipient: identity, sealed, prologue: sealPrologue(me) });
        senderKey = opened.senderKey;
        payload = decodeMailPayload(opened.payload);
      } catch (err) {
        // Not for us, tampered, or garbage: nothing to show, nothing to keep.
        events.onError(`Dropped a message from the mailbox: ${(err as Error).message}`);
        done.push(id);
        continue;
      }
      if (!trust.verify(payload.from, senderKey)) {
        held.set(payload.from, (held.get(payload.from) ?? 0) + 1);
        continue;
      }
      done.push(id);
      if (payload.kind === "receipt") {
        events.onReceipt(payload.from, payload.uids);
        continue;
      }
      events.onMessage(payload);
      // A copy seen before is answered too: the first receipt may have been lost.
      const r = receipts.get(payload.from) ?? { key: senderKey, uids: [] };
      r.uids.push(payload.uid);
      receipts.set(payload.from, r);
    }
    if (done.length > 0) await client.ack(done);
    for (const [from, count] of held) events.onHeld(from, count);
    for (const [to, { key, uids }] of receipts) {
      for (let at = 0; at < uids.length; at += MAX_RECEIPT_UIDS) {
        const receipt: MailPayload = {
          kind: "receipt",
          from: me,
          uid: randomUid(),
          time: Date.now(),
          uids: uids.slice(at, at + MAX_RECEIPT_UIDS),
        };
        const result = await client.deposit(to, this.#seal(to, key, receipt));
        if (!result.ok) events.onError(`Cannot send ${to} a receipt: ${result.reason}`);
      }
    }
  }

  #seal(to: string, key: Uint8Array, payload: MailPayload): Uint8Array {
    return seal({
      sender: this.#o.identity,
      recipientKey: key,
      prologue: sealPrologue(to),
      payload: encodeMailPayload(payload),
    });
  }

  /**
   * Runs `op` after those before it, on the shared connection (opened when needed, closed once
   * nothing waits); a failure goes to `onFail` and drops the connection.
   */
  #run(op: (client: MailboxClient) => Promise<void>, onFail: (err: Error) => void): Promise<void> {
    if (!this.available) {
      onFail(new Error("the coordinator has no mailbox"));
      return this.#chain;
    }
    this.#queued++;
    this.#chain = this.#chain.then(async () => {
      try {
        if (this.#closed) throw new Error("the client closed");
        this.#client ??= await (this.#o.connect ?? MailboxClient.connect)({
          host: this.#o.host,
          port: this.#port!,
        });
        await op(this.#client);
      } catch (err) {
        this.#client?.close();
        this.#client = undefined;
        onFail(err as Error);
      } finally {
        if (--this.#queued === 0) {
          this.#client?.close();
          this.#client = undefined;
        }
      }
    });
    return this.#chain;
  }
}
