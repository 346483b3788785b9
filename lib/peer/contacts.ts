/**
 * The client's record of its contacts (docs/PROTOCOL.md §1.5): who they are (name and key), when
 * each was last seen online, and the requests waiting for our answer, kept in
 * `<configDir>/users/<dir>/contacts.json` (mode 0600) so that `/contacts` shows them, offline
 * ones and last seen included, across restarts. The coordinator holds the list that counts (it
 * decides who sees whose presence); this record follows what it says — its `Contact`,
 * `Uncontact` and `Request` messages, and, from a contacts-mode coordinator, the full list of
 * contacts and requests with every list fetch — and reports what changed as events.
 *
 * Separate from `key_trust.ts`: a contact is whom we see and who sees us; a pinned key is whom
 * we talked to.
 *
 * @example
 * ```ts
 * const contacts = await ContactRecord.open({ configDir, username: "alice" });
 * contacts.onContact("bob", bobKey); // [{ event: "contact-added", user: "bob", fingerprint }]
 * contacts.list(new Set(["bob"])); // [{ user: "bob", fingerprint, online: true, … }]
 * ```
 * @module
 */
import { join } from "node:path";
import { decodeKey, defaultConfigDir, fingerprint, openUserDir } from "../crypto/identity.ts";
import { readPrivateJson, writePrivateJson } from "../crypto/private_json.ts";
import type { ContactEntry, ContactRequestEntry } from "../protocol/seed.ts";
import type { PeerEvent } from "./events.ts";

/** The record's file name in the user's directory. */
export const CONTACTS_FILE = "contacts.json";
const FORMAT = 1;

/** One contact as `/contacts` and the `contacts` event show it. */
export interface ContactInfo {
  user: string;
  fingerprint: string;
  online: boolean;
  /** When it was last seen online (ISO 8601), if ever; absent while it is online. */
  lastSeen?: string;
}

/** A request waiting for our answer, as `/contacts` shows it. */
export interface RequestInfo {
  user: string;
  fingerprint: string;
  note: string;
}

interface Contact {
  key: string;
  /** ms since the epoch. */
  lastSeen?: number;
}

/** Options for {@linkcode ContactRecord.open}. */
export interface ContactRecordOptions {
  username: string;
  /** Default `$XDG_CONFIG_HOME/p2p`. */
  configDir?: string;
  /** Wall clock, ms since the epoch. */
  now?: () => number;
}

/** Thrown when the record cannot be read. */
export class ContactRecordError extends Error {
  override name = "ContactRecordError";
}

/** Event shapes this record reports. */
type ContactEvent = Extract<
  PeerEvent,
  { event: "contact-request" | "contact-added" | "contact-removed" }
>;

/** Our contacts and the requests waiting for us; see the module comment. */
export class ContactRecord {
  readonly #path: string;
  readonly #now: () => number;
  readonly #contacts: Map<string, Contact>;
  readonly #requests: Map<string, { key: string; note: string }>;
  #saving: Promise<void> = Promise.resolve();

  private constructor(
    path: string,
    contacts: Map<string, Contact>,
    requests: Map<string, { key: string; note: string }>,
    now: () => number,
  ) {
    this.#path = path;
    this.#contacts = contacts;
    this.#requests = requests;
    this.#now = now;
  }

  /** Reads the record (an empty one if there is none). Throws {@linkcode ContactRecordError}. */
  static async open(options: ContactRecordOptions): Promise<ContactRecord> {
    const dir = await openUserDir(options.configDir ?? defaultConfigDir(), options.username);
    const path = join(dir, CONTACTS_FILE);
    const data = await readPrivateJson(path, FORMAT, {
      loose: (mode) =>
        new ContactRecordError(`${path} has mode ${mode}: others may read it; chmod 600 it`),
      corrupt: (why) => new ContactRecordError(`Cannot read ${path}: ${why}`),
    });
    const contacts = new Map<string, Contact>();
    const requests = new Map<string, { key: string; note: string }>();
    for (const [name, c] of Object.entries(asRecord(data?.contacts))) {
      const { key, lastSeen } = asRecord(c);
      if (typeof key !== "string" || decodeKey(key) === null) continue;
      contacts.set(name, typeof lastSeen === "number" ? { key, lastSeen } : { key });
    }
    for (const [name, r] of Object.entries(asRecord(data?.requests))) {
      const { key, note } = asRecord(r);
      if (typeof key !== "string" || decodeKey(key) === null) continue;
      requests.set(name, { key, note: typeof note === "string" ? note : "" });
    }
    return new ContactRecord(path, contacts, requests, options.now ?? Date.now);
  }

  /** Whether `name` is a contact. */
  has(name: string): boolean {
    return this.#contacts.has(name);
  }

  /** The key contact `name` is bound to, if it is a contact. */
  keyOf(name: string): Uint8Array | undefined {
    const key = this.#contacts.get(name)?.key;
    return key === undefined ? undefined : decodeKey(key) ?? undefined;
  }

  /** Whether `name` asked us and waits for our answer. */
  hasRequest(name: string): boolean {
    return this.#requests.has(name);
  }

  /** A request from `name` (the coordinator's `Request`): reported if new. */
  onRequest(entry: ContactRequestEntry): ContactEvent[] {
    const known = this.#requests.get(entry.username);
    if (this.#contacts.get(entry.username)?.key === entry.key) return [];
    // Every list fetch repeats the waiting requests: one already kept is not written again.
    if (known?.key === entry.key && known.note === entry.note) return [];
    this.#requests.set(entry.username, { key: entry.key, note: entry.note });
    this.#save();
    return known?.key === entry.key ? [] : [{
      event: "contact-request",
      user: entry.username,
      ...this.#print(entry.key),
      note: entry.note,
    }];
  }

  /** `name` is a contact (the coordinator's `Contact`): reported if new, or with a new key. */
  onContact(entry: ContactEntry): ContactEvent[] {
    this.#requests.delete(entry.username);
    const known = this.#contacts.get(entry.username);
    if (known?.key === entry.key) return [];
    this.#contacts.set(entry.username, { key: entry.key });
    this.#save();
    return [{ event: "contact-added", user: entry.username, ...this.#print(entry.key) }];
  }

  /** `name` is no longer a contact (`Uncontact`, or our own remove or block): reported if it was. */
  onUncontact(name: string): ContactEvent[] {
    const dropped = this.#requests.delete(name);
    if (!this.#contacts.delete(name)) {
      if (dropped) this.#save();
      return [];
    }
    this.#save();
    return [{ event: "contact-removed", user: name }];
  }

  /** We answered `name`'s request (declined, blocked): forget it. */
  forgetRequest(name: string): void {
    if (this.#requests.delete(name)) this.#save();
  }

  /**
   * The coordinator's full account (a contacts-mode list fetch): contacts and requests not in it
   * are gone, new ones are reported.
   */
  onList(
    contacts: readonly ContactEntry[],
    requests: readonly ContactRequestEntry[],
  ): ContactEvent[] {
    const events: ContactEvent[] = [];
    const names = new Set(contacts.map((c) => c.username));
    for (const name of [...this.#contacts.keys()]) {
      if (!names.has(name)) events.push(...this.onUncontact(name));
    }
    for (const c of contacts) events.push(...this.onContact(c));
    const asked = new Set(requests.map((r) => r.username));
    for (const name of [...this.#requests.keys()]) if (!asked.has(name)) this.forgetRequest(name);
    for (const r of requests) events.push(...this.onRequest(r));
    return events;
  }

  /** A contact was seen online or went offline: its last seen is now. */
  seen(name: string): void {
    const contact = this.#contacts.get(name);
    if (contact === undefined) return;
    contact.lastSeen = this.#now();
    this.#save();
  }

  /** The contacts, by name, with who of them is `online`. */
  list(online: ReadonlySet<string>): ContactInfo[] {
    return [...this.#contacts].sort(([a], [b]) => a.localeCompare(b)).map(([user, c]) => {
      const info: ContactInfo = { user, ...this.#print(c.key), online: online.has(user) };
      if (!info.online && c.lastSeen !== undefined) {
        info.lastSeen = new Date(c.lastSeen).toISOString();
      }
      return info;
    });
  }

  /** The requests waiting for our answer. */
  requests(): RequestInfo[] {
    return [...this.#requests].map(([user, r]) => ({ user, ...this.#print(r.key), note: r.note }));
  }

  /** Resolves once everything recorded so far is written. */
  flush(): Promise<void> {
    return this.#saving;
  }

  #print(key: string): { fingerprint: string } {
    const bytes = decodeKey(key);
    return { fingerprint: bytes ? fingerprint(bytes) : "?" };
  }

  /** Writes the record after the writes before it (a failed write is retried by the next). */
  #save(): void {
    this.#saving = this.#saving.then(() =>
      writePrivateJson(this.#path, {
        version: FORMAT,
        contacts: Object.fromEntries(this.#contacts),
        requests: Object.fromEntries(this.#requests),
      }, { replace: true })
    ).then(() => {}, () => {});
  }
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null ? value as Record<string, unknown> : {};
}
