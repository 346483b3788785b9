/**
 * How a coordinator is put together: the data directory opened, the sockets bound, and the rooms
 * of `lib/coordinator/` built and connected to each other (the registry, relay budgets, the UDP
 * and list services, the presence outbox with its fan-out, contacts, the mailbox). What it
 * returns, {@linkcode Rooms}, is what `lib/coordinator.ts` runs: it starts the timers, serves, and
 * closes it all.
 *
 * Separate from the front door so that it stays short: this is where every room meets the others
 * (several through late-bound closures, as each needs one made after it).
 *
 * @example
 * ```ts
 * const rooms = await openRooms({ host: "127.0.0.1", port: 0, mailbox: false });
 * console.log(rooms.udp.local.port, rooms.tcpPort);
 * ```
 * @module
 */
import { type Clock, realClock } from "../clock.ts";
import type { Cluster, ClusterOptions } from "./cluster.ts";
import { AddressBudget } from "./address_budget.ts";
import { ContactFanout } from "./contact_fanout.ts";
import { StormHold } from "./storm_hold.ts";
import { ContactService, type PresenceMode } from "./contact_service.ts";
import { ContactBook, type ContactBookOptions } from "./contacts.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { ListService } from "./list_service.ts";
import { Mailbox, type MailboxSettings } from "./mailbox.ts";
import { LoginChallenges } from "./login_challenges.ts";
import { NameOwners } from "./name_owners.ts";
import { type CoordinatorStore, openCoordinatorStore } from "./store.ts";
import { PresenceOutbox } from "./presence_outbox.ts";
import { Registry, type User } from "./registry.ts";
import { DEFAULT_RELAY_FILE_LIMIT, RelayPolicy } from "./relay.ts";
import { ServerLog } from "./server_log.ts";
import { type CoordinatorStats, createStats } from "./stats.ts";
import { TurnGrants, type TurnSettings } from "./turn_grants.ts";
import { UdpService } from "./udp_service.ts";
import { UdpSocket } from "../net/udp.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { decodeBase64url } from "../protocol/base64url.ts";
import { encodeServerMessage } from "../protocol/seed.ts";
import { damagedDatabase, isDatabaseDamage } from "../store/database.ts";

/** Options for `Coordinator.start` (`lib/coordinator.ts`), and so for {@linkcode openRooms}. */
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
  /**
   * Largest file transfer the relay carries (`--relay-file-limit`), told to clients and enforced
   * as a per-pair volume budget (`relay.ts`); default 1 MiB.
   */
  relayFileLimit?: number;
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
  /**
   * A TURN server to hand out credentials for, with each introduction (`p2p serve --turn`):
   * clients that cannot go direct relay there instead of through the coordinator.
   */
  turn?: TurnSettings;
  /** Contact request limits (tests shorten them). */
  contactLimits?: Omit<ContactBookOptions, "db" | "now">;
  /**
   * Join a cluster (`p2p serve --cluster`): one community shared with every coordinator naming
   * the same NATS and community (docs/CLUSTER.md). None: this coordinator alone, as ever.
   */
  cluster?: ClusterOptions;
}

/** The rooms a coordinator is made of, bound and wired by {@linkcode openRooms}. */
export interface Rooms {
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
  /** How often the expiries and budgets are swept. */
  sweepMs: number;
  store: CoordinatorStore;
  owners: NameOwners;
  challenges: LoginChallenges;
  mailbox: Mailbox | undefined;
  contacts: ContactBook;
  /** TURN credentials handed out (undefined without `turn`). */
  turn: TurnGrants | undefined;
  /** The cluster membership, with `--cluster`. */
  cluster: Cluster | undefined;
}

const encoder = new TextEncoder();

/**
 * Opens the data directory, binds the sockets and wires the rooms, ready to serve. Rejects if a
 * port is taken, a limit is invalid, or the database cannot be used (`DatabaseError`, naming the
 * file); nothing is left open then.
 */
export async function openRooms(options: CoordinatorOptions = {}): Promise<Rooms> {
  const clock = options.clock ?? realClock;
  const peerTimeoutMs = options.peerTimeoutMs ?? 45_000;
  const limits = resolveLimits(options.limits);
  const store = openCoordinatorStore({ dataDir: options.dataDir });
  try {
    // Read before any socket is bound: a damaged file is reported, not a crash with sockets open.
    let owners: NameOwners;
    let contacts: ContactBook;
    try {
      // The clock is on Date.now()'s scale, so its readings mean the same after a restart.
      const now = () => clock.now();
      owners = new NameOwners({ db: store.db, now, ttlMs: options.nameTtlMs });
      contacts = new ContactBook({ db: store.db, now, ...options.contactLimits });
    } catch (err) {
      throw isDatabaseDamage(err) ? damagedDatabase(store.path, err) : err;
    }
    return await wire(options, { clock, peerTimeoutMs, limits, store, owners, contacts });
  } catch (err) {
    store.close();
    throw err;
  }
}

/**
 * The kernel receive buffer the coordinator's UDP socket asks for (Linux): a login storm's
 * datagrams for about a second, where the system's default (208 KiB) holds ~80 ms of them, and
 * every one it drops is a login retried a second later (docs/LOAD.md "Datagrams dropped in a
 * storm"). The kernel grants at most `net.core.rmem_max`; memory is used only while it fills.
 */
export const UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

/** Says, on Linux, when the socket did not get the receive buffer asked for, and why. */
function logReceiveBuffer(udp: UdpSocket, log: ServerLog): void {
  if (Deno.build.os !== "linux") return;
  const reported = udp.receiveBuffer;
  const asked = `${UDP_RECEIVE_BUFFER_BYTES >> 10} KiB`;
  const why = `a login storm may lose logins to a full buffer (docs/LOAD.md "Datagrams dropped ` +
    `in a storm")`;
  if (reported === undefined) {
    log.line(
      `UDP receive buffer: the system's default, not the ${asked} asked (it needs -A); ${why}`,
    );
  } else if (reported / 2 < UDP_RECEIVE_BUFFER_BYTES) {
    // Linux reports twice what it granted (its bookkeeping's share).
    log.line(
      `UDP receive buffer ${(reported / 2) >> 10} KiB, not the ${asked} asked: the kernel's ` +
        `net.core.rmem_max caps it; ${why}`,
    );
  }
}

/**
 * The UDP socket and the list service's TCP listener, on the same port number unless
 * `tcpPort` says otherwise (seed clients fetch the list from the login port's number).
 */
async function bindPorts(
  options: CoordinatorOptions,
  host: string,
  log: ServerLog,
): Promise<{ udp: UdpSocket; tcp: Deno.TcpListener }> {
  for (let attempt = 1;; attempt++) {
    const udp = await UdpSocket.bind({
      host,
      port: options.port ?? 7000,
      backend: "deno",
      receiveBufferBytes: UDP_RECEIVE_BUFFER_BYTES,
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
      logReceiveBuffer(udp, log);
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

async function wire(
  options: CoordinatorOptions,
  opened: {
    clock: Clock;
    peerTimeoutMs: number;
    limits: Limits;
    store: CoordinatorStore;
    owners: NameOwners;
    contacts: ContactBook;
  },
): Promise<Rooms> {
  const { clock, peerTimeoutMs, limits, store, owners, contacts } = opened;
  const host = options.host ?? "0.0.0.0";
  const stats = createStats();
  const write = options.log ?? ((line) => console.error(`${new Date().toISOString()} ${line}`));
  const log = new ServerLog({ clock, write, stats });
  // Checked before any port is bound: a bad URI or secret throws with nothing to close.
  const turn = options.turn && new TurnGrants({ ...options.turn, now: () => clock.now() });
  // What a local user gets after its `Introduce`, whoever decided the pair (here or a member).
  const alsoIntroduce = turn && ((to: User) => turn.grant(to.name));
  const { udp, tcp } = await bindPorts(options, host, log);
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
  const relayFileLimit = options.relayFileLimit ?? DEFAULT_RELAY_FILE_LIMIT;
  const relay = new RelayPolicy({
    now,
    fileLimitBytes: relayFileLimit,
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
  const mode = options.presence ?? "everyone";
  if (options.cluster !== undefined && mode !== "everyone") {
    throw new Error(
      "--cluster works with --presence everyone only: contacts are kept by each coordinator",
    );
  }
  // The fan-out asks the contact service who sees whom, and that service tells the outbox of
  // new and removed pairs: each is made knowing the other through these closures.
  const late: { contacts?: ContactService; service?: UdpService; cluster?: Cluster } = {};
  const outbox = new PresenceOutbox({
    clock,
    batchMs: options.batchMs,
    afterTurn: options.cluster !== undefined, // the cluster's publish first (presence_outbox.ts)
    fanout: mode === "contacts"
      ? new ContactFanout({
        audience: (user) => late.contacts!.audience(user),
        listed: (user) => late.contacts!.isListed(user),
        // A storm goes on while logins wait for their list fetch (`storm_hold.ts`).
        hold: new StormHold({ clock, pending: () => registry.pendingCount }),
      })
      : undefined,
    isCurrent: (user) => registry.get(user.name) === user,
    socket: {
      send: (bytes, to) => {
        stats.presenceSent++;
        stats.presenceBytes += bytes.length;
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
    // No longer contacts: no consent to introduce them, and no relaying between them either.
    forgetPair: (a, b) => {
      late.service!.introductions.forgetPair(a, b);
      relay.forgetPair(a, b);
    },
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
  // A client with a key hears of its mailbox and of the relay's file limit as it comes online.
  const tellWaiting = (user: User) => {
    tellMailbox(user, mailbox?.store.waiting(user.name) ?? 0);
    if (user.key === undefined) return;
    send(
      encoder.encode(encodeServerMessage({ type: "relay-limit", fileBytes: relayFileLimit })),
      user.observed,
    );
  };
  const service = late.service = new UdpService({
    ...common,
    relay,
    send,
    tcpPort,
    clock,
    challenges,
    onOnlineAtOnce: tellWaiting,
    alsoIntroduce,
    cluster: () => late.cluster,
  });
  const list = new ListService({
    ...common,
    clock,
    onAdmitted: (users) => {
      users.forEach(tellWaiting);
      late.cluster?.admitted(users);
    },
  });
  try {
    mailbox = openMailbox(options, {
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
  if (options.cluster !== undefined) {
    try {
      // Loaded only here: a coordinator on its own never loads the NATS client.
      const { Cluster } = await import("./cluster.ts");
      late.cluster = await Cluster.start(options.cluster, {
        clock,
        registry,
        outbox,
        relay,
        log,
        send,
        introductions: () => service.introductions,
        drop: (user) => service.dropForCluster(user),
        alsoIntroduce,
      });
    } catch (err) {
      list.close();
      tcp.close();
      await udp.close();
      await alt?.close();
      await mailbox?.close();
      throw err;
    }
  }
  list.listen(tcp);
  const sweepMs = Math.max(50, Math.min(1000, peerTimeoutMs / 4));
  return {
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
    turn,
    cluster: late.cluster,
  };
}

/** Opens the mailbox as `options.mailbox` says (see {@linkcode CoordinatorOptions.mailbox}). */
function openMailbox(
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
