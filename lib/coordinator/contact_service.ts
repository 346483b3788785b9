/**
 * Contacts on the wire (docs/PROTOCOL.md §1.5): the `contact` and `listed` messages of online
 * users, what the coordinator tells each side, and — in contacts mode (`p2p serve --presence
 * contacts`) — who may see whom: the audience of each presence change, the list each user gets,
 * the list a seed-only client gets (users listed publicly), and which pairs `connect` may
 * introduce. {@linkcode ContactBook} keeps the state and the policy; this room speaks for it.
 *
 * A `contact` message counts only from the name's online owner: from its own endpoint, with the
 * secret it logged in with, and a key (contacts are bound to keys). Nothing is ever answered to
 * its sender: a request to a name that does not exist, one dropped by a block or a full
 * recipient, a decline — all look the same. Only a new pair is told to both sides (`Contact`),
 * and a removed one (or a block of a contact) to the other side (`Uncontact`), always at an
 * online user's own endpoint, so nothing here can be reflected or amplified.
 *
 * @example
 * ```ts
 * const contacts = new ContactService({ mode: "contacts", book, registry, outbox, log, stats,
 *   send: (bytes, to) => udp.send(bytes, to), forgetPair: (a, b) => introductions.forgetPair(a, b) });
 * contacts.handle(parseClientMessage("contact,alice,<secret>,add,bob,hi"), aliceEndpoint);
 * ```
 * @module
 */
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import {
  type ClientMessage,
  encodeContactLines,
  encodeList,
  encodeListVersion,
  encodeServerMessage,
  MAX_BATCH_DATAGRAM,
  type ServerMessage,
} from "../protocol/seed.ts";
import type { ContactBook, ContactPair, Party } from "./contacts.ts";
import type { PresenceOutbox } from "./presence_outbox.ts";
import type { Registry, User } from "./registry.ts";
import type { ServerLog } from "./server_log.ts";
import type { CoordinatorStats } from "./stats.ts";

/** Who sees whose presence: everyone (the seed's way, the default) or contacts only. */
export type PresenceMode = "everyone" | "contacts";

/** The presence modes `p2p serve --presence` takes. */
export const PRESENCE_MODES: readonly PresenceMode[] = ["everyone", "contacts"];

/** Options for {@linkcode ContactService}. */
export interface ContactServiceOptions {
  mode: PresenceMode;
  book: ContactBook;
  registry: Registry;
  outbox: PresenceOutbox;
  log: ServerLog;
  stats: CoordinatorStats;
  /** Sends a datagram to an online user's endpoint. */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Forgets the consent of a pair that stopped being contacts (`introductions.ts`). */
  forgetPair: (a: string, b: string) => void;
}

type ContactMessage = Extract<ClientMessage, { type: "contact" | "listed" }>;

const encoder = new TextEncoder();

/** Speaks for the {@linkcode ContactBook}; see the module comment. */
export class ContactService {
  readonly mode: PresenceMode;
  readonly #o: ContactServiceOptions;
  /** Users who asked to be listed publicly (`listed,…,yes`), for this session. */
  readonly #listed = new WeakSet<User>();

  constructor(options: ContactServiceOptions) {
    this.#o = options;
    this.mode = options.mode;
  }

  /** Handles a `contact` or `listed` message from `from`. Never answers its sender. */
  handle(msg: ContactMessage, from: Endpoint): void {
    const user = this.#o.registry.get(msg.username);
    if (
      user?.state !== "online" || user.key === undefined || !sameEndpoint(user.observed, from) ||
      user.secret !== msg.secret
    ) {
      this.#o.log.throttled(
        "forged contact",
        `ignored ${msg.type} for ${msg.username} from ${formatEndpoint(from)}: not its online ` +
          `owner with its secret`,
      );
      return;
    }
    if (msg.type === "listed") return this.#setListed(user, msg.listed);
    const me: Party = { name: user.name, key: user.key };
    const book = this.#o.book;
    switch (msg.op) {
      case "add": {
        const outcome = book.request(me, msg.target, msg.note ?? "");
        if (outcome.kind === "requested") {
          this.#o.stats.contactRequests++;
          const target = this.#o.registry.get(msg.target);
          if (target?.state === "online" && target.key !== undefined) {
            this.#send(
              { type: "request", username: me.name, key: me.key, note: msg.note ?? "" },
              target.observed,
            );
          }
        } else if (outcome.kind === "contacts") this.#paired(outcome.pair);
        else if (outcome.kind === "limited") {
          this.#o.stats.contactsLimited++;
          this.#o.log.limited(
            "contact-requests",
            outcome.why === "rate"
              ? `${me.name} sent contact requests too fast; dropped one`
              : `${me.name} has too many contact requests waiting; dropped one`,
          );
        }
        return;
      }
      case "accept": {
        const pair = book.accept(me, msg.target);
        if (pair) this.#paired(pair);
        return;
      }
      case "decline":
        book.decline(me, msg.target);
        return;
      case "remove": {
        const pair = book.remove(me, msg.target);
        if (pair) this.#unpaired(pair, user);
        return;
      }
      case "block": {
        const pair = book.block(me, msg.target);
        if (pair) this.#unpaired(pair, user);
        return;
      }
      case "unblock":
        book.unblock(me, msg.target);
        return;
    }
  }

  /** Whether `connect` may introduce `a` and `b`: always in everyone mode, else contacts only. */
  mayMeet(a: User, b: User): boolean {
    if (this.mode === "everyone") return true;
    return a.key !== undefined && b.key !== undefined &&
      this.#o.book.areContacts({ name: a.name, key: a.key }, { name: b.name, key: b.key });
  }

  /** The online users who see `subject`'s presence in contacts mode: its contacts. */
  audience(subject: User): User[] {
    if (subject.key === undefined) return [];
    const out: User[] = [];
    this.#o.book.forEachContact({ name: subject.name, key: subject.key }, (name, key) => {
      const user = this.#online(name, key);
      if (user !== undefined) out.push(user);
    });
    return out;
  }

  /**
   * Whether seed-only clients see `user` in contacts mode: it asked to be listed (`--public`), or
   * is a seed-only client itself (the seed's clients list each other, as they expect).
   */
  isListed(user: User): boolean {
    return user.key === undefined || this.#listed.has(user);
  }

  /**
   * Everyone mode: at admission, tells each user with a key of its contacts and of the requests
   * waiting for it (lines `Contact,…`/`Request,…`, packed into datagrams). Nothing when it has
   * none, so the seed flow and today's datagrams are unchanged.
   */
  welcome(users: readonly User[]): void {
    for (const user of users) {
      if (user.key === undefined) continue;
      const party = { name: user.name, key: user.key };
      const messages: ServerMessage[] = [
        ...this.#o.book.contactsOf(party).map((c): ServerMessage => ({ type: "contact", ...c })),
        ...this.#o.book.requestsFor(user.name).map((r): ServerMessage => ({
          type: "request",
          ...r,
        })),
      ];
      for (const datagram of packLines(messages.map(encodeServerMessage))) {
        this.#o.send(datagram, user.observed);
      }
    }
  }

  /**
   * Contacts mode: the list a named fetch of `user` gets: itself and its online contacts, then
   * every contact (online or not) and the requests waiting for it, then its presence version.
   */
  listFor(user: User): Uint8Array {
    const party = { name: user.name, key: user.key! };
    const contacts = this.#o.book.contactsOf(party);
    const entries = [{ username: user.name, endpoint: user.observed }];
    for (const c of contacts) {
      const online = this.#online(c.username, c.key);
      if (online !== undefined) entries.push({ username: online.name, endpoint: online.observed });
    }
    return encoder.encode(
      encodeList(entries) + encodeContactLines(contacts, this.#o.book.requestsFor(user.name)) +
        encodeListVersion(this.#o.outbox.versionFor(user)),
    );
  }

  /** Contacts mode: the list anyone else gets (a seed-only client): the users listed publicly. */
  publicList(): Uint8Array {
    const entries = this.#o.registry.online().filter((u) => this.isListed(u))
      .map((u) => ({ username: u.name, endpoint: u.observed }));
    return encoder.encode(encodeList(entries));
  }

  #send(msg: ServerMessage, to: Endpoint): void {
    this.#o.send(encoder.encode(encodeServerMessage(msg)), to);
  }

  /** The online user `name` if it has `key` now. */
  #online(name: string, key: string): User | undefined {
    const user = this.#o.registry.get(name);
    return user?.state === "online" && user.key === key ? user : undefined;
  }

  #setListed(user: User, listed: boolean): void {
    if (listed === this.#listed.has(user)) return;
    if (listed) this.#listed.add(user);
    else this.#listed.delete(user);
    // Seed-only clients hear of a newly listed user as of a login (its contacts get a repeat,
    // which changes nothing). One that stops being listed stays in their lists until it leaves.
    if (listed && this.mode === "contacts") {
      this.#o.outbox.moved(user);
      this.#o.outbox.schedule();
    }
  }

  /** A new pair: both sides are told (those online), and see each other's presence from now. */
  #paired(pair: ContactPair): void {
    this.#o.stats.contactsMade++;
    const a = this.#online(pair.a.name, pair.a.key);
    const b = this.#online(pair.b.name, pair.b.key);
    if (a) this.#send({ type: "contact", username: pair.b.name, key: pair.b.key }, a.observed);
    if (b) this.#send({ type: "contact", username: pair.a.name, key: pair.a.key }, b.observed);
    if (a && b && this.mode === "contacts") {
      this.#o.outbox.tell(a, b, true);
      this.#o.outbox.tell(b, a, true);
      this.#o.outbox.schedule();
    }
  }

  /** A removed pair: the other side is told (if online), and each stops seeing the other. */
  #unpaired(pair: ContactPair, by: User): void {
    const otherParty = pair.a.name === by.name ? pair.b : pair.a;
    const other = this.#online(otherParty.name, otherParty.key);
    this.#o.forgetPair(pair.a.name, pair.b.name);
    if (other === undefined) return;
    this.#send({ type: "uncontact", username: by.name }, other.observed);
    if (this.mode === "contacts") {
      this.#o.outbox.tell(other, by, false);
      this.#o.outbox.tell(by, other, false);
      this.#o.outbox.schedule();
    }
  }
}

/** Packs text lines into datagrams of at most {@linkcode MAX_BATCH_DATAGRAM} bytes. */
function packLines(lines: readonly string[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let current = "";
  for (const line of lines) {
    const joined = current === "" ? line : `${current}\n${line}`;
    if (current !== "" && encoder.encode(joined).length > MAX_BATCH_DATAGRAM) {
      out.push(encoder.encode(current));
      current = line;
    } else current = joined;
  }
  if (current !== "") out.push(encoder.encode(current));
  return out;
}
