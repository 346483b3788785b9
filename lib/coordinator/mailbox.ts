/**
 * The coordinator's mailbox, opened and closed as one: its database file (`mailbox.db` in the
 * data directory, or in memory), its store ({@linkcode MailboxStore}: quotas, TTL, group
 * commit), its TCP service ({@linkcode MailboxService}) and the timer that expires old mail.
 * `wiring.ts` opens it beside the other services and tells it who owns which name.
 *
 * The mailbox keeps its own file, beside the coordinator's database: its schema moves on its
 * own, its bulky writes and checkpoints stay out of the names' file, and an operator can empty
 * it (delete the file while the server is stopped) without touching who owns which name.
 *
 * @example
 * ```ts
 * const mailbox = Mailbox.open({ host: "127.0.0.1", port: 0, clock, log, serverKey,
 *   keyOf: (name) => undefined });
 * console.log(mailbox.port);
 * await mailbox.close();
 * ```
 * @module
 */
import { join } from "node:path";
import type { Clock, TimerId } from "../clock.ts";
import type { KeyPair } from "../crypto/noise.ts";
import { damagedDatabase, isDatabaseDamage, openDatabase } from "../store/database.ts";
import {
  DEFAULT_MAILBOX_SERVICE_LIMITS,
  MailboxService,
  type MailboxServiceLimits,
} from "./mailbox_service.ts";
import {
  DEFAULT_MAILBOX_QUOTAS,
  DEFAULT_MAILBOX_TTL_MS,
  MAILBOX_MIGRATIONS,
  type MailboxQuotas,
  MailboxStore,
} from "./mailbox_store.ts";
import type { ServerLog } from "./server_log.ts";

/** The mailbox's file in the data directory. */
export const MAILBOX_FILE = "mailbox.db";

/** What `p2p serve` may set of the mailbox. */
export interface MailboxSettings {
  /** TCP port; 0 picks any. */
  port: number;
  /** Mail unfetched this long is deleted; default 14 days. */
  ttlMs?: number;
  quotas?: Partial<MailboxQuotas>;
  limits?: Partial<MailboxServiceLimits>;
}

/** Options for {@linkcode Mailbox.open}. */
export interface MailboxOptions extends MailboxSettings {
  host: string;
  /** The data directory; none: the mailbox lives in memory and dies with the process. */
  dataDir?: string;
  clock: Clock;
  log: ServerLog;
  /** The coordinator's static key pair. */
  serverKey: KeyPair;
  /** The key registered for a name (undefined: `unknown user`). */
  keyOf: (name: string) => Uint8Array | undefined;
  /** Mail arrived for `recipient`, who has `waiting` messages now. */
  onDeposit?: (recipient: string, waiting: number) => void;
}

/** A running mailbox. */
export class Mailbox {
  readonly store: MailboxStore;
  readonly service: MailboxService;
  readonly port: number;
  readonly #close: () => void;
  readonly #clock: Clock;
  readonly #expiry: TimerId;

  private constructor(
    parts: { store: MailboxStore; service: MailboxService; port: number; close: () => void },
    clock: Clock,
    log: ServerLog,
  ) {
    this.store = parts.store;
    this.service = parts.service;
    this.port = parts.port;
    this.#close = parts.close;
    this.#clock = clock;
    const expire = () => {
      try {
        const n = this.store.expire();
        if (n > 0) log.line(`mailbox: ${n} message(s) expired unread`);
      } catch (err) {
        log.throttled("mailbox error", `mailbox: cannot expire mail: ${(err as Error).message}`);
      }
      this.service.sweep();
    };
    expire();
    // Every minute; a short TTL (tests) is checked more often, never more than once a second.
    const ttl = parts.store.ttlMs;
    this.#expiry = clock.setInterval(expire, Math.min(60_000, Math.max(1_000, ttl / 4)));
  }

  /**
   * Opens the database, binds the TCP port and starts serving. Throws a `DatabaseError` naming
   * the file when it cannot be used, or `Deno.errors.AddrInUse` when the port is taken.
   */
  static open(options: MailboxOptions): Mailbox {
    const path = options.dataDir === undefined ? ":memory:" : join(options.dataDir, MAILBOX_FILE);
    const db = openDatabase({ path, kind: "mailbox", migrations: MAILBOX_MIGRATIONS });
    try {
      const store = new MailboxStore({
        db,
        clock: options.clock,
        quotas: { ...DEFAULT_MAILBOX_QUOTAS, ...options.quotas },
        ttlMs: options.ttlMs ?? DEFAULT_MAILBOX_TTL_MS,
      });
      const listener = Deno.listen({
        transport: "tcp",
        hostname: options.host,
        port: options.port,
      });
      const service = new MailboxService({
        clock: options.clock,
        store,
        log: options.log,
        limits: { ...DEFAULT_MAILBOX_SERVICE_LIMITS, ...options.limits },
        serverKey: options.serverKey,
        keyOf: options.keyOf,
        onDeposit: options.onDeposit,
      });
      service.listen(listener);
      const port = (listener.addr as Deno.NetAddr).port;
      return new Mailbox(
        { store, service, port, close: () => db.close() },
        options.clock,
        options.log,
      );
    } catch (err) {
      db.close();
      // A file damaged past its header shows when the store sums it up: say which, and what to do.
      if (isDatabaseDamage(err)) throw damagedDatabase(path, err);
      throw err;
    }
  }

  /** Stops serving, commits what is queued, closes the file. */
  async close(): Promise<void> {
    this.#clock.clearInterval(this.#expiry);
    await this.service.close();
    await this.store.close();
    this.#close();
  }
}
