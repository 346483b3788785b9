/**
 * The coordinator (`p2p serve`): the sockets around {@linkcode Registry}. One UDP socket speaks
 * the seed's text protocol (logins, logouts, heartbeats, presence broadcasts); one TCP listener
 * hands out the online list and, by that fetch, admits the logins from its IP address; a second
 * UDP port answers only `whoami`, for NAT tests.
 *
 * Built to hold a large community on a small box and to shrug off abuse (docs/PROTOCOL.md §3).
 * This module binds the sockets and wires the rooms of `lib/coordinator/`:
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
 *   `server_log.ts` and `stats.ts` (what it tells).
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
import { type Clock, realClock, type TimerId } from "./clock.ts";
import { AddressBudget } from "./coordinator/address_budget.ts";
import { ContactFanout } from "./coordinator/contact_fanout.ts";
import { ContactService, type PresenceMode } from "./coordinator/contact_service.ts";
import { ContactBook, type ContactBookOptions } from "./coordinator/contacts.ts";
import { type Limits, resolveLimits } from "./coordinator/limits.ts";
import { ListService } from "./coordinator/list_service.ts";
import { Mailbox, type MailboxSettings } from "./coordinator/mailbox.ts";
import { LoginChallenges } from "./coordinator/login_challenges.ts";
import { NameOwners } from "./coordinator/name_owners.ts";
import { type CoordinatorStore, openCoordinatorStore } from "./coordinator/store.ts";
import { PresenceOutbox } from "./coordinator/presence_outbox.ts";
import { Registry, type User } from "./coordinator/registry.ts";
import { RelayPolicy } from "./coordinator/relay.ts";
import { ServerLog } from "./coordinator/server_log.ts";
import { type CoordinatorStats, createStats } from "./coordinator/stats.ts";
import { UdpService } from "./coordinator/udp_service.ts";
import { UdpSocket } from "./net/udp.ts";
import type { Endpoint } from "./protocol/endpoint.ts";
import { decodeBase64url } from "./protocol/base64url.ts";
import { encodeServerMessage } from "./protocol/seed.ts";
import { damagedDatabase, isDatabaseDamage } from "./store/database.ts";

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

/** Options for {@linkcode Coordinator.start}. */
export interface CoordinatorOptions {
  /** Address to listen on; default `0.0.0.0`. */
  host?: string;
  /** UDP port; default 7000. 0 picks a free one. */
  port?: number;
  /** TCP port of the list service; default the same number as the UDP port (any, if that is 0). */
  tcpPort?: number;
  /** Drop users silent this long; default 45 s. */
  peerTimeoutMs?: number;
  /** Forget logins whose list fetch did not come within this long; default 10 s. */
  pendingTimeoutMs?: number;
  /**
   * A second UDP port that only answers `whoami`, so a client can tell whether its NAT maps
   * one socket to the same public port for every destination (`p2p nat`). Default: `port + 1`
   * (any free port if `port` is 0); a taken port is logged and skipped.
   */
  altPort?: number;
  /** Where log lines go; default: stderr with a timestamp. */
  log?: (line: string) => void;
  /** Relay budget per introduced pair (per user and per address: `limits`). */
  relay?: { bytesPerSecond?: number; burstBytes?: number };
  /** Limits on users, rates, connections and sizes; unset ones take their defaults. */
  limits?: Partial<Limits>;
  /**
   * Longest pause between two presence flushes; default 250 ms. The pause after a flush is in
   * proportion to what the flush sent (20 µs per datagram), so a small community hears of a
   * change at once, and a large one gets its changes batched without the flushes taking more
   * than about a third of the server's time; it ends early once two datagrams' worth of changes
   * wait (a login storm).
   */
  batchMs?: number;
  /** Time for every timer, timeout and rate; default {@linkcode realClock}. */
  clock?: Clock;
  /**
   * Where the database (names owned by keys) and the static key are kept (`p2p serve --data`);
   * none: in memory, forgotten at close.
   */
  dataDir?: string;
  /** A name's registration unused this long lapses; default 180 days. */
  nameTtlMs?: number;
  /**
   * The mailbox (offline messages, kept in the data directory): its TCP port (default the UDP
   * port + 1, any if that is 0; a default port that is taken is logged and the mailbox skipped),
   * TTL, quotas and limits; `false`: no mailbox.
   */
  mailbox?: Partial<MailboxSettings> | false;
  /**
   * Who sees whose presence (`p2p serve --presence`): `everyone` (default: the seed's way) or
   * `contacts` (only contacts see each other and may be introduced; seed-only clients see the
   * users listed publicly). docs/PROTOCOL.md §1.5.
   */
  presence?: PresenceMode;
  /** Contact request limits (tests shorten them). */
  contactLimits?: Omit<ContactBookOptions, "db" | "now">;
}

/** The rooms a coordinator is made of, as {@linkcode Coordinator.start} wires them. */
interface Rooms {
  udp: UdpSocket;
  alt: UdpSocket | undefined;
  list: ListService;
  service: UdpService;
  outbox: PresenceOutbox;
  registry: Registry;
  relay: RelayPolicy;
  budget: AddressBudget;
  log: ServerLog;
  stats: CoordinatorStats;
  limits: Limits;
  clock: Clock;
  tcpPort: number;
  sweepMs: number;
  store: CoordinatorStore;
  owners: NameOwners;
  challenges: LoginChallenges;
  mailbox: Mailbox | undefined;
  contacts: ContactBook;
}

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
  readonly #udp: UdpSocket;
  readonly #alt: UdpSocket | undefined;
  readonly #tcpPort: number;
  readonly #list: ListService;
  readonly #outbox: PresenceOutbox;
  readonly #log: ServerLog;
  readonly #clock: Clock;
  readonly #sweep: TimerId;
  readonly #flush: TimerId;
  #closing: Promise<void> | undefined;

  private constructor(rooms: Rooms) {
    const { udp, alt, service, budget, relay, log, clock } = rooms;
    this.registry = rooms.registry;
    this.relay = rooms.relay;
    this.limits = Object.freeze(rooms.limits);
    this.stats = rooms.stats;
    this.store = rooms.store;
    this.owners = rooms.owners;
    this.mailbox = rooms.mailbox;
    this.contacts = rooms.contacts;
    this.#udp = udp;
    this.#alt = alt;
    this.#tcpPort = rooms.tcpPort;
    this.#list = rooms.list;
    this.#outbox = rooms.outbox;
    this.#log = log;
    this.#clock = clock;
    udp.onMessage((data, from) => service.onDatagram(data, from));
    alt?.onMessage((data, from) => service.onWhoamiPort(data, from, (b) => alt.send(b, from)));
    this.#sweep = clock.setInterval(() => {
      service.expire();
      budget.sweep();
      relay.sweep();
      log.flush();
    }, rooms.sweepMs);
    // Registrations are written in one transaction a second: a crash loses at most that second.
    this.#flush = clock.setInterval(() => {
      this.#flushOwners();
      rooms.challenges.sweep();
      rooms.contacts.sweep();
    }, 1000);
  }

  /** Writes the registrations changed since the last flush; a failure is logged, kept for later. */
  #flushOwners(): void {
    try {
      this.owners.flush();
    } catch (err) {
      this.#log.throttled(
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
    const clock = options.clock ?? realClock;
    const peerTimeoutMs = options.peerTimeoutMs ?? 45_000;
    const limits = resolveLimits(options.limits);
    const store = openCoordinatorStore({ dataDir: options.dataDir });
    try {
      // Read before any socket is bound: a damaged file is reported, not a crash with sockets open.
      let owners: NameOwners;
      try {
        // The clock is on Date.now()'s scale, so its readings mean the same after a restart.
        owners = new NameOwners({ db: store.db, now: () => clock.now(), ttlMs: options.nameTtlMs });
      } catch (err) {
        throw isDatabaseDamage(err) ? damagedDatabase(store.path, err) : err;
      }
      return await Coordinator.#bind(options, { clock, peerTimeoutMs, limits, store, owners });
    } catch (err) {
      store.close();
      throw err;
    }
  }

  /**
   * The UDP socket and the list service's TCP listener, on the same port number unless
   * `tcpPort` says otherwise (seed clients fetch the list from the login port's number).
   */
  static async #bindPorts(
    options: CoordinatorOptions,
    host: string,
    log: ServerLog,
  ): Promise<{ udp: UdpSocket; tcp: Deno.TcpListener }> {
    for (let attempt = 1;; attempt++) {
      const udp = await UdpSocket.bind({
        host,
        port: options.port ?? 7000,
        backend: "deno",
        // A send that failed (no route, full buffer) is UDP being lossy: note it, go on.
        onError: (err, during) =>
          log.throttled(
            "udp error",
            during === "send" ? `UDP send failed: ${err.message}` : `UDP receive: ${err.message}`,
          ),
      });
      try {
        const tcp = Deno.listen({
          transport: "tcp",
          hostname: host,
          port: options.tcpPort ?? udp.local.port,
        });
        return { udp, tcp };
      } catch (err) {
        await udp.close();
        // Port 0 asked for any free pair: a UDP port's number may be busy for TCP (a machine
        // with thousands of TCP connections), so try another number rather than fail.
        const another = options.port === 0 && options.tcpPort === undefined && attempt < 20;
        if (!(another && err instanceof Deno.errors.AddrInUse)) throw err;
      }
    }
  }

  static async #bind(
    options: CoordinatorOptions,
    opened: {
      clock: Clock;
      peerTimeoutMs: number;
      limits: Limits;
      store: CoordinatorStore;
      owners: NameOwners;
    },
  ): Promise<Coordinator> {
    const { clock, peerTimeoutMs, limits, store, owners } = opened;
    const host = options.host ?? "0.0.0.0";
    const stats = createStats();
    const write = options.log ?? ((line) => console.error(`${new Date().toISOString()} ${line}`));
    const log = new ServerLog({ clock, write, stats });
    const { udp, tcp } = await Coordinator.#bindPorts(options, host, log);
    const altPort = options.altPort ?? (udp.local.port === 0 ? 0 : udp.local.port + 1);
    let alt: UdpSocket | undefined;
    try {
      alt = await UdpSocket.bind({ host, port: options.port === 0 ? 0 : altPort, backend: "deno" });
    } catch (err) {
      log.line(`no alternate UDP port ${altPort} for NAT tests: ${(err as Error).message}`);
    }
    const now = () => clock.now();
    const challenges = new LoginChallenges({ keyPair: store.keyPair, now });
    const registry = new Registry({
      owners,
      now,
      peerTimeoutMs,
      pendingTimeoutMs: options.pendingTimeoutMs,
      maxUsers: limits.maxUsers,
      maxPending: limits.maxPending,
      namesPerAddress: limits.namesPerAddress,
      newNamesPerAddressPerDay: limits.newNamesPerAddressPerDay,
    });
    const relay = new RelayPolicy({
      now,
      ...options.relay,
      perUser: {
        bytesPerSecond: limits.relayBytesPerUser,
        packetsPerSecond: limits.relayPacketsPerUser,
      },
      perAddress: {
        bytesPerSecond: limits.relayBytesPerAddress,
        packetsPerSecond: limits.relayPacketsPerAddress,
      },
    });
    const budget = new AddressBudget({ clock, limits, log });
    // Every datagram from the main socket is counted; one closure for all of them.
    const send = (bytes: Uint8Array, to: Endpoint): void => {
      stats.sent++;
      stats.sentBytes += bytes.length;
      udp.send(bytes, to);
    };
    const contacts = new ContactBook({ db: store.db, now, ...options.contactLimits });
    const mode = options.presence ?? "everyone";
    // The fan-out asks the contact service who sees whom, and that service tells the outbox of
    // new and removed pairs: each is made knowing the other through these closures.
    const late: { contacts?: ContactService; service?: UdpService } = {};
    const outbox = new PresenceOutbox({
      clock,
      batchMs: options.batchMs,
      fanout: mode === "contacts"
        ? new ContactFanout({
          audience: (user) => late.contacts!.audience(user),
          listed: (user) => late.contacts!.isListed(user),
        })
        : undefined,
      isCurrent: (user) => registry.get(user.name) === user,
      socket: {
        send: (bytes, to) => {
          stats.presenceSent++;
          send(bytes, to);
        },
        whenInFlightAtMost: (count, fn) => udp.whenInFlightAtMost(count, fn),
      },
    });
    const tcpPort = (tcp.addr as Deno.NetAddr).port;
    const contactService = late.contacts = new ContactService({
      mode,
      book: contacts,
      registry,
      outbox,
      log,
      stats,
      send,
      forgetPair: (a, b) => late.service!.introductions.forgetPair(a, b),
    });
    const common = { registry, limits, log, stats, budget, outbox, contacts: contactService };
    let mailbox: Mailbox | undefined;
    const tellMailbox = (user: User, waiting: number) => {
      if (mailbox === undefined || user.key === undefined) return; // seed-only: nothing new
      send(
        encoder.encode(encodeServerMessage({ type: "mailbox", port: mailbox.port, waiting })),
        user.observed,
      );
    };
    const tellWaiting = (user: User) => tellMailbox(user, mailbox?.store.waiting(user.name) ?? 0);
    const service = late.service = new UdpService({
      ...common,
      relay,
      send,
      tcpPort,
      clock,
      challenges,
      onOnlineAtOnce: tellWaiting,
    });
    const list = new ListService({
      ...common,
      clock,
      onAdmitted: (users) => users.forEach(tellWaiting),
    });
    try {
      mailbox = Coordinator.#openMailbox(options, {
        host,
        udpPort: udp.local.port,
        clock,
        log,
        store,
        owners,
      }, (name, waiting) => {
        const user = registry.get(name);
        if (user?.state === "online") tellMailbox(user, waiting);
      });
    } catch (err) {
      list.close();
      tcp.close();
      await udp.close();
      await alt?.close();
      throw err;
    }
    list.listen(tcp);
    const sweepMs = Math.max(50, Math.min(1000, peerTimeoutMs / 4));
    return new Coordinator({
      ...common,
      udp,
      alt,
      list,
      service,
      relay,
      clock,
      tcpPort,
      sweepMs,
      store,
      owners,
      challenges,
      mailbox,
      contacts,
    });
  }

  /** Opens the mailbox as `options.mailbox` says (see {@linkcode CoordinatorOptions.mailbox}). */
  static #openMailbox(
    options: CoordinatorOptions,
    at: {
      host: string;
      udpPort: number;
      clock: Clock;
      log: ServerLog;
      store: CoordinatorStore;
      owners: NameOwners;
    },
    onDeposit: (recipient: string, waiting: number) => void,
  ): Mailbox | undefined {
    if (options.mailbox === false) return undefined;
    const settings = options.mailbox ?? {};
    const port = settings.port ?? (at.udpPort === 0 || options.port === 0 ? 0 : at.udpPort + 1);
    try {
      return Mailbox.open({
        ...settings,
        port,
        host: at.host,
        dataDir: options.dataDir,
        clock: at.clock,
        log: at.log,
        serverKey: at.store.keyPair,
        keyOf: (name) => {
          const key = at.owners.ownerOf(name);
          return key === undefined ? undefined : decodeBase64url(key) ?? undefined;
        },
        onDeposit,
      });
    } catch (err) {
      if (settings.port !== undefined || !(err instanceof Deno.errors.AddrInUse)) throw err;
      at.log.line(`no mailbox: TCP port ${port} is taken (${(err as Error).message})`);
      return undefined;
    }
  }

  /** The UDP port logins go to. */
  get udpPort(): number {
    return this.#udp.local.port;
  }

  /** The alternate UDP port that answers `whoami` (undefined if it could not be bound). */
  get altPort(): number | undefined {
    return this.#alt?.local.port;
  }

  /** The TCP port of the list service (sent in `Accept`). */
  get tcpPort(): number {
    return this.#tcpPort;
  }

  /** TCP connections the list service holds open now. */
  get listConnections(): number {
    return this.#list.open;
  }

  /** Presence datagrams waiting to be sent (0 once every client has been told everything). */
  get backlog(): number {
    return this.#outbox.backlog;
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
    this.#clock.clearInterval(this.#sweep);
    this.#clock.clearInterval(this.#flush);
    this.#outbox.close();
    this.#udp.onMessage(() => {}); // nothing more is answered
    const listClosed = this.#list.close();
    const bye = encoder.encode(encodeServerMessage({ type: "bye", reason }));
    const online = this.registry.online();
    for (const user of online) {
      this.stats.sent++;
      this.stats.sentBytes += bye.length;
      this.#udp.send(bye, user.observed);
    }
    if (online.length > 0) this.#log.line(`said goodbye to ${online.length} user(s): ${reason}`);
    this.#log.flush();
    await listClosed;
    // Deno's sockets send concurrently and drop what is unsent at close: wait for every Bye.
    await this.#udp.close({ waitMs: 2000 });
    await this.#alt?.close();
    // The sessions still online end now: their leaving counts as a use.
    for (const user of online) if (user.key !== undefined) this.owners.use(user.name, user.key);
    this.#flushOwners();
    await this.mailbox?.close();
    this.store.close();
  }
}
