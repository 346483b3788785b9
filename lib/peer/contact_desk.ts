/**
 * Contacts as the user works them (docs/PROTOCOL.md §1.5): the requests we send and answer go to
 * the coordinator (through `presence.ts`), what it says back (`Request`, `Contact`, `Uncontact`,
 * a contacts-mode list) updates our record (`contacts.ts`) and becomes events — held while we log
 * in, so that they follow `ready`.
 *
 * Separate from `contacts.ts`, which only keeps the record: this room checks what the user asked
 * for, says it to the coordinator and reports what changed.
 *
 * @example
 * ```ts
 * const desk = new ContactDesk({ me: "alice", record, presence, phase, emit });
 * desk.add("bob", "from the climbing club"); // `contact-request-sent`
 * desk.ready(); // contact events heard during login are reported now
 * ```
 * @module
 */
import type { OnlineList, ServerMessage } from "../protocol/seed.ts";
import { cleanNote } from "../protocol/seed.ts";
import type { ContactRecord } from "./contacts.ts";
import type { PeerEvent } from "./events.ts";
import type { Presence } from "./presence.ts";

/** Options for {@linkcode ContactDesk}. */
export interface ContactDeskOptions {
  me: string;
  record: ContactRecord;
  presence: Pick<Presence, "contact" | "users">;
  /** The peer's phase: contact events wait for `ready` while it is `login`. */
  phase: () => "login" | "ready" | "closed";
  emit: (e: PeerEvent) => void;
}

/** The `contacts` event, also {@linkcode ContactDesk.list}'s answer. */
export type ContactsEvent = Extract<PeerEvent, { event: "contacts" }>;

/** The user's contact operations and the coordinator's contact messages. */
export class ContactDesk {
  readonly #o: ContactDeskOptions;
  /** Contact events that came before `ready`, reported right after it. */
  #early: PeerEvent[] = [];

  constructor(options: ContactDeskOptions) {
    this.#o = options;
  }

  /** Asks `user` to be our contact, with a short `note`. */
  add(user: string, note?: string): void {
    if (user === this.#o.me) return this.#error("Cannot add yourself as a contact");
    this.#o.presence.contact("add", user, note === undefined ? undefined : cleanNote(note));
    this.#o.emit({ event: "contact-request-sent", user });
  }

  /** Accepts `user`'s contact request. */
  accept(user: string): void {
    if (!this.#o.record.hasRequest(user)) {
      return this.#error(`No contact request from ${user} to accept`);
    }
    this.#o.presence.contact("accept", user);
  }

  /** Declines `user`'s contact request; `user` is not told. */
  decline(user: string): void {
    if (!this.#o.record.hasRequest(user)) {
      return this.#error(`No contact request from ${user} to decline`);
    }
    this.#o.record.forgetRequest(user);
    this.#o.presence.contact("decline", user);
  }

  /** Removes contact `user`. */
  remove(user: string): void {
    if (!this.#o.record.has(user)) return this.#error(`${user} is not one of your contacts`);
    this.#o.presence.contact("remove", user);
    this.#report(this.#o.record.onUncontact(user));
  }

  /** Blocks `user` (or unblocks). */
  block(user: string, unblock: boolean): void {
    this.#o.presence.contact(unblock ? "unblock" : "block", user);
    if (!unblock) this.#report(this.#o.record.onUncontact(user));
    this.#o.emit({ event: "contact-blocked", user, blocked: !unblock });
  }

  /** Our contacts and the requests waiting, emitted as `contacts` and returned. */
  list(): ContactsEvent {
    const e: ContactsEvent = {
      event: "contacts",
      contacts: this.#o.record.list(new Set(this.#o.presence.users.keys())),
      requests: this.#o.record.requests(),
    };
    this.#o.emit(e);
    return e;
  }

  /** A list fetched: a contacts-mode coordinator's carries our contacts and requests. */
  onList(list: OnlineList): void {
    if (list.contacts) this.#report(this.#o.record.onList(list.contacts, list.requests ?? []));
  }

  /** Takes the coordinator's contact messages; false for any other message. */
  onServerMessage(msg: ServerMessage): boolean {
    const { record } = this.#o;
    if (msg.type === "request") this.#report(record.onRequest(msg));
    else if (msg.type === "contact") this.#report(record.onContact(msg));
    else if (msg.type === "uncontact") this.#report(record.onUncontact(msg.username));
    else return false;
    return true;
  }

  /** Writes our record of contacts to disk (at close). */
  flush(): Promise<void> {
    return this.#o.record.flush();
  }

  /** Logged in: the contact events held meanwhile are reported. */
  ready(): void {
    for (const e of this.#early.splice(0)) this.#o.emit(e);
  }

  #error(message: string): void {
    this.#o.emit({ event: "error", message });
  }

  /** Reports contact events, holding them until `ready` while we log in. */
  #report(events: PeerEvent[]): void {
    if (this.#o.phase() === "login") this.#early.push(...events);
    else for (const e of events) this.#o.emit(e);
  }
}
