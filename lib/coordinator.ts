/**
 * The coordinator (`p2p serve`): the sockets around {@linkcode Registry}. One UDP socket speaks
 * the seed's text protocol (logins, logouts, heartbeats, presence broadcasts); one TCP listener
 * hands out the online list and, by that fetch, admits the logins from its IP address; a second
 * UDP port answers only `whoami`, for NAT tests.
 *
 * Built to hold a large community on a small box and to shrug off abuse (docs/PROTOCOL.md §3).
 * This module runs the rooms of `lib/coordinator/` (their timers, the datagrams' way in, the
 * goodbye at close); `wiring.ts` opens the data directory, binds the sockets and builds the rooms,
 * connected to each other:
 *
 * - `udp_service.ts`: every datagram, checked against the limits, answered no larger than the
 *   request unless the address is proven; `introductions.ts` for `connect`, with `knock_budget.ts`;
 * - `list_service.ts`: the TCP list fetch that admits pending logins;
 * - `presence_outbox.ts`: presence changes batched by `fanout.ts`, sent in rounds and slices, with
 *   a pause in proportion to each flush, and the version `Alive` reports;
 * - `mailbox.ts`: offline messages, sealed, kept in `mailbox.db` beside the database, served on
 *   TCP port + 1 (`mailbox_service.ts`, `mailbox_store.ts`);
 * - `store.ts`: the data directory, its database (`schema.ts`) and the coordinator's static key;
 *   `name_owners.ts` (which key owns each name, kept there) and `login_challenges.ts` (the proof
 *   of key a takeover needs);
 * - `registry.ts` (who is online) with `name_quota.ts` (names per address), `relay.ts` (relay
 *   budgets per pair, user and address), `limits.ts` and `address_budget.ts` (limits),
 *   `server_log.ts` and `stats.ts` (what it tells; `metrics.ts` turns the counters into
 *   Prometheus text for `p2p serve --metrics`);
 * - `turn_grants.ts`: TURN credentials handed out with each introduction (`p2p serve --turn`).
 *
 * Every room runs on one injected {@linkcode Clock}; the UDP sockets are `lib/net/udp.ts`'s on its
 * fast `"deno"` backend.
 *
 * @example
 * ```ts
 * const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0 });
 * console.log(coordinator.udpPort, coordinator.tcpPort);
 * await coordinator.close();
 * ```
 * @module
 */
import type { TimerId } from "./clock.ts";
import type { ContactBook } from "./coordinator/contacts.ts";
import type { Limits } from "./coordinator/limits.ts";
import type { Mailbox } from "./coordinator/mailbox.ts";
import type { NameOwners } from "./coordinator/name_owners.ts";
import type { CoordinatorStore } from "./coordinator/store.ts";
import type { Registry } from "./coordinator/registry.ts";
import type { RelayPolicy } from "./coordinator/relay.ts";
import type { CoordinatorStats } from "./coordinator/stats.ts";
import type { TurnGrants } from "./coordinator/turn_grants.ts";
import { type CoordinatorOptions, openRooms, type Rooms } from "./coordinator/wiring.ts";
import { encodeServerMessage } from "./protocol/seed.ts";

// What `p2p serve`'s command line needs of the wing besides the coordinator itself.
export { DEFAULT_LIMITS, type Limits, resolveLimits } from "./coordinator/limits.ts";
export {
  DEFAULT_MAILBOX_QUOTAS,
  DEFAULT_MAILBOX_TTL_MS,
  type MailboxQuotas,
} from "./coordinator/mailbox_store.ts";
export { DEFAULT_MAILBOX_SERVICE_LIMITS } from "./coordinator/mailbox_service.ts";
// `p2p serve` names the data directory it will use.
export { defaultDataDir } from "./coordinator/store.ts";
export { PRESENCE_MODES, type PresenceMode } from "./coordinator/contact_service.ts";
export type { CoordinatorOptions } from "./coordinator/wiring.ts";

const encoder = new TextEncoder();

/** A running coordinator. */
export class Coordinator {
  readonly registry: Registry;
  readonly relay: RelayPolicy;
  readonly limits: Readonly<Limits>;
  /** Counters, for tests, the benchmark and the log. */
  readonly stats: CoordinatorStats;
  /** The database and static key pair, for the rooms that keep something (the mailbox). */
  readonly store: CoordinatorStore;
  /** Which key owns which name. */
  readonly owners: NameOwners;
  /** Offline messages (undefined when disabled, or its default port was taken). */
  readonly mailbox: Mailbox | undefined;
  /** Contacts, requests and blocks. */
  readonly contacts: ContactBook;
  /** TURN credentials handed out with introductions (undefined without `turn`). */
  readonly turn: TurnGrants | undefined;
  /** The sockets, services and log this front door serves with and closes. */
  readonly #rooms: Rooms;
  /** The sweep and the once-a-second flush. */
  readonly #timers: TimerId[];
  #closing: Promise<void> | undefined;

  private constructor(rooms: Rooms) {
    const { udp, alt, service, budget, relay, log, clock } = rooms;
    this.#rooms = rooms;
    this.registry = rooms.registry;
    this.relay = rooms.relay;
    this.limits = Object.freeze(rooms.limits);
    this.stats = rooms.stats;
    this.store = rooms.store;
    this.owners = rooms.owners;
    this.mailbox = rooms.mailbox;
    this.contacts = rooms.contacts;
    this.turn = rooms.turn;
    udp.onMessage((data, from) => service.onDatagram(data, from));
    alt?.onMessage((data, from) => service.onWhoamiPort(data, from, (b) => alt.send(b, from)));
    const sweep = clock.setInterval(() => {
      service.expire();
      budget.sweep();
      relay.sweep();
      log.flush();
    }, rooms.sweepMs);
    // Registrations are written in one transaction a second: a crash loses at most that second.
    const flush = clock.setInterval(() => {
      this.#flushOwners();
      rooms.challenges.sweep();
      rooms.contacts.sweep();
    }, 1000);
    this.#timers = [sweep, flush];
  }

  /** Writes the registrations changed since the last flush; a failure is logged, kept for later. */
  #flushOwners(): void {
    try {
      this.owners.flush();
    } catch (err) {
      this.#rooms.log.throttled(
        "database error",
        `cannot write name registrations to ${this.store.path} (kept in memory, will retry): ` +
          (err as Error).message,
      );
    }
  }

  /**
   * Opens the data directory, binds the sockets and starts serving. Rejects if a port is taken, a
   * limit is invalid, or the database cannot be used (`DatabaseError`, naming the file).
   */
  static async start(options: CoordinatorOptions = {}): Promise<Coordinator> {
    return new Coordinator(await openRooms(options));
  }

  /** The UDP port logins go to. */
  get udpPort(): number {
    return this.#rooms.udp.local.port;
  }

  /** The alternate UDP port that answers `whoami` (undefined if it could not be bound). */
  get altPort(): number | undefined {
    return this.#rooms.alt?.local.port;
  }

  /** The TCP port of the list service (sent in `Accept`). */
  get tcpPort(): number {
    return this.#rooms.tcpPort;
  }

  /** TCP connections the list service holds open now. */
  get listConnections(): number {
    return this.#rooms.list.open;
  }

  /** Presence datagrams waiting to be sent (0 once every client has been told everything). */
  get backlog(): number {
    return this.#rooms.outbox.backlog;
  }

  /**
   * Says goodbye (`Bye,<reason>`) to every online user, so that clients know at once to look for
   * the coordinator again, then closes every socket. Calling it again waits for the first call.
   */
  close(reason = "the server is shutting down"): Promise<void> {
    this.#closing ??= this.#shutdown(reason);
    return this.#closing;
  }

  async #shutdown(reason: string): Promise<void> {
    const { clock, outbox, udp, alt, list, log } = this.#rooms;
    for (const timer of this.#timers) clock.clearInterval(timer);
    outbox.close();
    udp.onMessage(() => {}); // nothing more is answered
    const listClosed = list.close();
    const bye = encoder.encode(encodeServerMessage({ type: "bye", reason }));
    const online = this.registry.online();
    for (const user of online) {
      this.stats.sent++;
      this.stats.sentBytes += bye.length;
      udp.send(bye, user.observed);
    }
    if (online.length > 0) log.line(`said goodbye to ${online.length} user(s): ${reason}`);
    log.flush();
    await listClosed;
    // Deno's sockets send concurrently and drop what is unsent at close: wait for every Bye.
    await udp.close({ waitMs: 2000 });
    await alt?.close();
    // The sessions still online end now: their leaving counts as a use.
    for (const user of online) if (user.key !== undefined) this.owners.use(user.name, user.key);
    this.#flushOwners();
    await this.mailbox?.close();
    this.store.close();
  }
}
