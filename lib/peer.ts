/**
 * The peer wing's front door: a chat client (`p2p chat`) and the API its front ends use
 * ({@linkcode Peer.send}, {@linkcode Peer.sendAll}, {@linkcode Peer.who}, {@linkcode Peer.trust}…),
 * reporting through an {@linkcode EventSink}. One UDP socket carries both the coordinator protocol
 * and the peer frames (NAT traversal relies on that). The rooms behind this door, in `lib/peer/`:
 *
 * - `demux.ts`: what a datagram is (coordinator text, the whoami answer, a frame, a relayed one).
 * - `presence.ts`: login, heartbeats, the online list (`presence_view.ts`), its resyncs
 *   (`resync_watch.ts`).
 * - `door.ts`: consent at the door — knocks, unasked introductions, strangers' frames, by the
 *   policy of `consent.ts` (whom we agree to talk to, `--accept`).
 * - `links.ts`: our links, sharing one probe quota (`probe_quota.ts`); `link.ts`: one peer's path,
 *   session, reliable channel and waiting messages.
 * - Path: `traversal.ts` (the path finder) with `search_schedule.ts`, `probe_transactions.ts` and
 *   `birthday.ts`; `socket_pool.ts` (the birthday search's sockets).
 * - Session: `handshake.ts` (Noise XX) with `handshake_macs.ts` (MACs on handshake frames) and
 *   `cookie_gate.ts` (key exchanges under load).
 * - Reliable channel: `reliable.ts` with `rtt.ts`, `congestion.ts`, `flight.ts`,
 *   `loss_detection.ts`, `outbox.ts` and `receive_stream.ts`.
 * - `nat_detect.ts`: our NAT kind, from the coordinator's two ports; `nat_check.ts`: `p2p nat`.
 * - `port_mapping.ts`: asks the router to map our chat port (PCP, NAT-PMP: `lib/portmap/`), and
 *   offers the mapped endpoint to peers.
 * - `messages.ts`: our messages' lasting ids, their records in the history (`lib/store/`), the
 *   received ones' dedup; `outgoing.ts`: unsettled messages and `drain()`.
 * - `mailbox.ts` (with `mailbox_client.ts`): messages for offline users sealed and left at the
 *   coordinator, our own fetched, receipts; `offline.ts`: what a message to someone offline
 *   becomes without a mailbox.
 * - `delivery.ts`: which way each message goes — link, mailbox or refusal — and the messages
 *   pending from the last run, until their recipient is online.
 * - `contact_desk.ts`: the user's contact requests and answers, and the coordinator's contact
 *   messages as events; `contacts.ts`: our record of our contacts and the requests waiting for us
 *   (the coordinator holds the list that counts: docs/PROTOCOL.md §1.5).
 * - `turn_relay.ts` (with `turn_client.ts`): our allocation on the coordinator's TURN server, its
 *   relayed address offered to introduced peers: the `turn` path.
 * - `key_trust.ts`: trust on first use; `events.ts`: what we report (the `--json` contract).
 * - `warm_up.ts`: a first message run once in memory before login, so that a real one runs warm.
 *
 * @example
 * ```ts
 * const peer = await Peer.start({
 *   server: { host: "127.0.0.1", port: 7000 },
 *   username: "alice",
 *   onEvent: (e) => console.log(JSON.stringify(e)),
 * });
 * peer.send("bob", "hello");
 * await peer.close();
 * ```
 * @module
 */
import { encodeKey, fingerprint, loadOrCreateIdentity } from "./crypto/identity.ts";
import type { KeyPair } from "./crypto/noise.ts";
import { KnownPeers } from "./crypto/known_peers.ts";
import { type Clock, realClock } from "./clock.ts";
import { globalIpv6Address, localAddressFor, UdpSocket } from "./net/udp.ts";
import { encodeBase64url } from "./protocol/base64url.ts";
import type { AnnouncedCandidate, AnnouncedKind } from "./protocol/candidates.ts";
import { type Endpoint, formatEndpoint } from "./protocol/endpoint.ts";
import { encodeFrame } from "./protocol/frame.ts";
import type { ServerMessage } from "./protocol/seed.ts";
import type { NatKind } from "./protocol/whoami.ts";
import type { AcceptPolicy } from "./peer/consent.ts";
import { demuxDatagram } from "./peer/demux.ts";
import { ContactDesk, type ContactsEvent } from "./peer/contact_desk.ts";
import { ContactRecord } from "./peer/contacts.ts";
import { Delivery } from "./peer/delivery.ts";
import { Door } from "./peer/door.ts";
import {
  type EventSink,
  linkEventsFor,
  mailboxEventsFor,
  type OnlineUser,
  pathKindOf,
  type PeerEvent,
} from "./peer/events.ts";
import { KeyTrust } from "./peer/key_trust.ts";
import { introductionFrom, type Link, type LinkTransport } from "./peer/link.ts";
import { Links, type LinkWiring } from "./peer/links.ts";
import { PeerMailbox } from "./peer/mailbox.ts";
import { Messages } from "./peer/messages.ts";
import { NatDetector } from "./peer/nat_detect.ts";
import { Presence } from "./peer/presence.ts";
import { FollowingPortMapping } from "./peer/port_mapping.ts";
import type { MappingProtocol } from "./portmap/port_mapper.ts";
import { ProbeQuota } from "./peer/probe_quota.ts";
import { SocketPool } from "./peer/socket_pool.ts";
import { TURN_SOCKET, TurnRelay } from "./peer/turn_relay.ts";
import { warmUpLinks } from "./peer/warm_up.ts";
import type { PathFinderOptions } from "./peer/traversal.ts";
import { MemoryLog, type MessageLog } from "./store/message_log.ts";
import { type FileLinks, Transfers } from "./files/transfers.ts";
import type { TransferInfo } from "./files/file_events.ts";

// `p2p nat` runs the wing's NAT check on its own, without logging in.
export { checkNat, type NatReport } from "./peer/nat_check.ts";
export { checkPortMapping, type PortMappingReport } from "./peer/port_mapping.ts";
// `p2p chat --accept` takes one of these.
export { ACCEPT_POLICIES, type AcceptPolicy } from "./peer/consent.ts";
export { MAX_TEXT_BYTES } from "./peer/delivery.ts";

/** Options for {@linkcode Peer.start}. */
export interface PeerOptions {
  server: Endpoint;
  /**
   * Other coordinators of the same community (`p2p chat alice@c1,c2`, docs/CLUSTER.md): when the
   * coordinator is lost and a login again goes unanswered, the next one is tried.
   */
  fallbacks?: Endpoint[];
  username: string;
  onEvent: EventSink;
  /**
   * Local address to bind; default all IPv4 interfaces, any port, or with a global IPv6 address
   * all interfaces of both families (`::`), which announces that address as our `v6` candidate
   * (as `::` given here does).
   */
  bind?: Endpoint;
  /**
   * STUN servers (`--stun`) asked, besides the coordinator's second port, how our NAT maps our
   * socket.
   */
  stun?: Endpoint[];
  /** Heartbeat interval; default 10 s (the coordinator drops users silent for 45 s). */
  keepaliveMs?: number;
  /** Where the identity and known peers live; default `$XDG_CONFIG_HOME/p2p`. */
  configDir?: string;
  /** Messages are reported undelivered when the peer stays unreachable this long; default 30 s. */
  giveUpAfterMs?: number;
  /** Path finder timings (tests and the lab shorten them). */
  pathOptions?: Partial<PathFinderOptions>;
  /** Time for every timer of the client; default `realClock`. */
  clock?: Clock;
  /**
   * Who may start a conversation with us: `anyone` (default) or `known` (users whose key is
   * pinned, and those we wrote to this session).
   */
  accept?: AcceptPolicy;
  /**
   * Ask a contacts-mode coordinator to list us to seed-only clients (`p2p chat --public`); other
   * users see us only once we are contacts.
   */
  public?: boolean;
  /**
   * Where messages are recorded (`lib/store/history.ts`), whence those still pending from the
   * last run are sent again; default a {@linkcode MemoryLog} (nothing kept). The caller closes it.
   */
  history?: MessageLog;
  /**
   * Ask the router for a mapping of our chat port (PCP, then NAT-PMP) and offer it to peers;
   * default true (`--no-port-mapping` makes it false). Never on loopback.
   */
  portMapping?: boolean;
  /**
   * File transfers (`lib/files/`): where accepted files go, where unfinished transfers are kept
   * across restarts, the largest file accepted, the relay's limit. Without it `/send` is refused.
   */
  files?: {
    downloads: string;
    stateFile: string;
    maxFileSize?: number;
    relayLimit?: number;
  };
}

/**
 * Binds the main socket; on `::`, falls back to IPv4 alone where the system has no IPv6 (the
 * socket is then IPv4-only, and we announce no `v6` candidate).
 */
async function bindMain(host: string, port: number): Promise<UdpSocket> {
  try {
    return await UdpSocket.bind({ host, port });
  } catch (err) {
    if (host !== "::") throw err;
    return await UdpSocket.bind({ host: "0.0.0.0", port });
  }
}

/** A logged-in chat client. */
export class Peer {
  readonly username: string;
  /** Our public key's fingerprint. */
  readonly fingerprint: string;
  readonly #o: PeerOptions;
  readonly #socket: UdpSocket;
  readonly #presence: Presence;
  readonly #trust: KeyTrust;
  readonly #door: Door;
  readonly #nat: NatDetector;
  readonly #pool: SocketPool;
  readonly #messages: Messages;
  readonly #mailbox: PeerMailbox;
  readonly #links: Links;
  readonly #delivery: Delivery;
  readonly #desk: ContactDesk;
  readonly #files: Transfers | undefined;
  readonly #turn: TurnRelay;
  /** The port mapping, for the coordinator in use (none with `portMapping: false`). */
  #portMapping: FollowingPortMapping | undefined;
  /** Logging in until `ready` is reported, then until closed. */
  #phase: "login" | "ready" | "closed" = "login";

  private constructor(
    socket: UdpSocket,
    claimed: Endpoint,
    identity: KeyPair,
    stores: { known: KnownPeers; contacts: ContactRecord },
    options: PeerOptions,
  ) {
    const { known, contacts } = stores;
    this.username = options.username;
    this.fingerprint = fingerprint(identity.publicKey);
    this.#o = options;
    this.#socket = socket;
    this.#messages = new Messages({
      me: options.username,
      log: options.history ?? new MemoryLog(),
      emit: (e) => this.#emit(e),
      divert: (peer, msg) => this.#delivery.divert(peer, msg),
    });
    this.#trust = new KeyTrust({
      known,
      me: { name: options.username, publicKey: identity.publicKey },
      onEvent: (e) => this.#emit(e),
    });
    const server = options.server;
    this.#mailbox = new PeerMailbox({
      me: options.username,
      identity,
      // Read at each use: a failover moves the coordinator (and its mailbox).
      get host() {
        return server.host;
      },
      trust: this.#trust,
      events: mailboxEventsFor({ emit: (e) => this.#emit(e), messages: this.#messages }),
    });
    this.#door = new Door({
      me: options.username,
      policy: options.accept ?? "anyone",
      // A contact is known too: its key is the one both accepted.
      pinned: (user) => this.#trust.pinned(user) ?? contacts.keyOf(user),
      listed: (user) => this.#presence.users.get(user),
      ask: (user) => this.#nat.connect(user),
      onKnock: (e) => this.#emit(e),
      clock: options.clock,
    });
    this.#links = new Links({
      me: options.username,
      staticKeyPair: identity,
      // Random per process: peers see that we restarted (docs/PROTOCOL.md §2.3).
      instanceId: crypto.getRandomValues(new Uint32Array(1))[0],
      clock: options.clock,
      giveUpAfterMs: options.giveUpAfterMs,
      pathOptions: { turnSocket: TURN_SOCKET, ...options.pathOptions },
      // One probe budget for all our links: more names buy an attacker nothing.
      quota: new ProbeQuota(),
      wiring: (peer) => this.#wiring(peer),
    });
    this.#turn = new TurnRelay({
      clock: options.clock ?? realClock,
      send: (data, to) => socket.send(data, to),
      link: (name) => this.#links.get(name),
      onData: (data, from) => this.#onDatagram(data, from, TURN_SOCKET),
      onEvent: (e) => this.#emit(e),
    });
    this.#pool = new SocketPool({
      host: socket.local.host,
      onMessage: (data, from, id) => this.#onDatagram(data, from, id),
    });
    this.#presence = new Presence({
      send: (data, to) => socket.send(data, to),
      server: options.server,
      fallbacks: options.fallbacks,
      username: options.username,
      claimed,
      keepaliveMs: options.keepaliveMs ?? 10_000,
      ext: {
        key: encodeKey(identity.publicKey),
        secret: encodeBase64url(crypto.getRandomValues(new Uint8Array(16))),
      },
      privateKey: identity.secretKey,
      clock: options.clock,
      // The first list is reported after `ready`, by start().
      onOnline: (user, ep) => {
        contacts.seen(user);
        if (this.#phase !== "login") {
          this.#emit({ event: "online", user, endpoint: formatEndpoint(ep) });
        }
        // Messages were waiting for this user to come back; or our link to them is not direct, so
        // it may stand on their last session (a relay permit a restarted coordinator forgot, a
        // process that quit): a fresh introduction puts it on the one that just logged in.
        const link = this.#links.get(user);
        if (link && (link.hasPending || link.path.kind !== "direct")) link.requestIntroduction();
        this.#delivery.online(user);
        if (this.#phase === "ready") this.#files?.online(user);
      },
      onOffline: (user) => {
        contacts.seen(user);
        this.#turn.forget(user);
        this.#emit({ event: "offline", user });
      },
      onList: (list) => this.#desk.onList(list),
      listed: options.public,
      onError: (message) => this.#emit({ event: "error", message }),
      onCoordinator: (state) => {
        this.#emit({ event: "coordinator", state });
        if (state === "back") {
          this.#nat.detect(); // a new coordinator knows nothing of our NAT
          this.#portMapping?.followServer(); // nor is it on loopback just because the last one was
        }
      },
      onOther: (msg) => this.#onServerMessage(msg),
    });
    this.#nat = new NatDetector({
      server: options.server,
      send: (data, to) => socket.send(data, to),
      connect: (peer) => {
        // Early priming (traversal.ts): our NAT maps toward the peer before we consent, so the
        // introduction's probes need not wait for it.
        const listed = this.#presence.users.get(peer);
        const ttl = listed && this.#links.earlyPrime(peer, listed);
        if (listed && ttl !== undefined) socket.send(new Uint8Array(), listed, { ttl });
        this.#presence.connect(peer);
      },
      onDetected: (kind) => this.#presence.reportNat(kind),
      indirect: () => this.#links.indirect(),
      clock: options.clock,
      stunServers: options.stun,
    });
    const phase = () => this.#phase;
    const emit = (e: PeerEvent) => this.#emit(e);
    this.#delivery = new Delivery({
      me: options.username,
      online: (user) => this.#presence.users.has(user),
      phase,
      trust: this.#trust,
      door: this.#door,
      links: this.#links,
      messages: this.#messages,
      mailbox: this.#mailbox,
      emit,
    });
    const presence = this.#presence;
    this.#desk = new ContactDesk({ me: options.username, record: contacts, presence, phase, emit });
    this.#files = options.files && new Transfers({
      ...options.files,
      me: options.username,
      links: this.#fileLinks(),
      emit,
      clock: options.clock,
    });
  }

  /** Binds the socket, loads our identity, logs in, and emits `ready` and the online users. */
  static async start(options: PeerOptions): Promise<Peer> {
    // Our own copy of the coordinator's endpoint, shared by every room that speaks to it: a
    // failover changes it in place (Presence), and they all follow.
    options = { ...options, server: { ...options.server } };
    const whose = { username: options.username, configDir: options.configDir };
    // Before we log in, so that no peer waits for it: a first message's code then runs warm.
    warmUpLinks();
    const identity = await loadOrCreateIdentity(whose);
    const known = await KnownPeers.open(whose);
    const contacts = await ContactRecord.open(whose);
    // With a global IPv6 address, one dual-stack socket: IPv4 to the coordinator as before, and
    // the same socket (the same port) reachable over IPv6, announced as our `v6` candidate.
    const v6 = options.bind === undefined || options.bind.host === "::"
      ? globalIpv6Address()
      : undefined;
    const bindHost = options.bind?.host ??
      (options.server.host.includes(":") || v6 !== undefined ? "::" : "0.0.0.0");
    const socket = await bindMain(bindHost, options.bind?.port ?? 0);
    try {
      const unspecified = bindHost === "0.0.0.0" || bindHost === "::";
      const claimed = {
        host: unspecified ? localAddressFor(options.server) : bindHost,
        port: socket.local.port,
      };
      const peer = new Peer(socket, claimed, identity, { known, contacts }, options);
      socket.onMessage((data, from) => peer.#onDatagram(data, from));
      if (v6 !== undefined && socket.local.host === "::") {
        peer.#presence.announce("v6", { host: v6, port: socket.local.port });
      }
      const { observed } = await peer.#presence.firstLogin();
      peer.#phase = "ready";
      peer.#emit({
        event: "ready",
        user: options.username,
        server: formatEndpoint(options.server),
        endpoint: formatEndpoint(observed),
        fingerprint: peer.fingerprint,
      });
      for (const [user, ep] of peer.#presence.users) {
        peer.#emit({ event: "online", user, endpoint: formatEndpoint(ep) });
      }
      peer.#desk.ready();
      peer.#nat.detect();
      peer.#delivery.ready();
      // Unfinished transfers of the last run go on with those online.
      for (const user of peer.#presence.users.keys()) peer.#files?.online(user);
      if (options.portMapping ?? true) peer.#portMapping = peer.#startPortMapping(bindHost);
      return peer;
    } catch (err) {
      await socket.close();
      throw err;
    }
  }

  /** The users online now, other than us, with the path to each. */
  who(): OnlineUser[] {
    return [...this.#presence.users].map(([user, ep]) => ({
      user,
      endpoint: formatEndpoint(ep),
      path: this.#links.pathTo(user),
    }));
  }

  /**
   * Asks `user` to be our contact, with a short `note` (through the coordinator; stored there
   * while `user` is offline). Nothing comes back until `user` accepts (`contact-added`); a decline
   * or a block is never told, and neither is whether `user` exists.
   */
  addContact(user: string, note?: string): void {
    this.#desk.add(user, note);
  }

  /** Accepts `user`'s contact request: both are told `contact-added`. */
  acceptContact(user: string): void {
    this.#desk.accept(user);
  }

  /** Declines `user`'s contact request; `user` is not told. */
  declineContact(user: string): void {
    this.#desk.decline(user);
  }

  /** Removes contact `user`: neither sees the other's presence any more. */
  removeContact(user: string): void {
    this.#desk.remove(user);
  }

  /**
   * Blocks `user`: its request is declined, it is removed if a contact (it sees a removal, not a
   * block), and its later requests never reach us. `unblock` undoes it.
   */
  blockContact(user: string, unblock = false): void {
    this.#desk.block(user, unblock);
  }

  /** Our contacts (online or not, last seen) and the requests waiting; also emitted as `contacts`. */
  contacts(): ContactsEvent {
    return this.#desk.list();
  }

  /** Our endpoint as the coordinator sees it. */
  get observed(): Endpoint | undefined {
    return this.#presence.observed;
  }

  /**
   * Counters of what every link dropped (tampered, replayed, undecryptable…), summed, and of
   * what the peer dropped before any link (traffic and introductions from strangers).
   */
  stats(): Record<string, number> {
    return { ...this.#door.drops, ...this.#links.stats() };
  }

  /**
   * Sends a chat message to `to`, end-to-end encrypted and reliable, directly or through the
   * relay. Returns its id; `delivered` or `undelivered` follows. Emits `error` and returns
   * `undefined` when it cannot even be queued (unknown user, key not trusted, too long, the
   * history cannot keep it).
   */
  send(to: string, text: string): number | undefined {
    return this.#delivery.send(to, text, false);
  }

  /** Sends `text` to every online user, each copy encrypted and reliable. Returns the ids. */
  sendAll(text: string): number[] {
    return this.#delivery.sendAll([...this.#presence.users.keys()], text);
  }

  /**
   * Offers the files `paths` name (directories recursively) to `user`: `file-offer`, then
   * `file-accepted`, `file-progress`, `file-done` or `file-declined`/`file-failed`.
   */
  sendFiles(user: string, paths: string[]): Promise<void> {
    if (!this.#files) return Promise.resolve(this.#filesOff());
    return this.#files.send(user, paths);
  }

  /** Accepts file offer `id` (default: the latest), into `dir` (default: the downloads). */
  acceptFiles(id?: number, dir?: string): void {
    if (this.#files) this.#files.accept(id, dir);
    else this.#filesOff();
  }

  /** Declines file offer `id` (default: the latest). */
  declineFiles(id?: number): void {
    if (this.#files) this.#files.decline(id);
    else this.#filesOff();
  }

  /** Stops transfer `id`, either way. */
  cancelFiles(id: number): void {
    if (this.#files) this.#files.cancel(id);
    else this.#filesOff();
  }

  /** The transfers of this session (`/files`); also emitted as `files`. */
  files(): TransferInfo[] {
    const transfers = this.#files?.list() ?? [];
    this.#emit({ event: "files", transfers });
    return transfers;
  }

  #filesOff(): void {
    this.#emit({ event: "error", message: "File transfers are off in this client" });
  }

  /** The file channel of the link to `user` (counters, window), for diagnostics and benches. */
  fileChannel(user: string): Link["fileChannel"] | undefined {
    return this.#links.get(user)?.fileChannel;
  }

  /** Reports the fingerprint of `user`'s pinned key (and the safety number), or our own. */
  showFingerprint(user?: string): void {
    if (user === undefined || user === this.username) {
      this.#emit({ event: "fingerprint", user: this.username, fingerprint: this.fingerprint });
      return;
    }
    this.#trust.showFingerprint(user);
  }

  /**
   * Accepts `user`'s changed key (after checking it out of band) and reconnects; mail of theirs
   * held in our mailbox for the change is fetched.
   */
  async trust(user: string): Promise<void> {
    if (!(await this.#trust.accept(user))) return;
    this.#links.get(user)?.requestIntroduction();
    if (this.#mailbox.available) this.#mailbox.fetch();
  }

  /** Resolves when every message sent so far is delivered or reported undelivered. */
  drain(): Promise<void> {
    return this.#messages.drain();
  }

  /** How our NAT maps our socket, once the coordinator's two ports have told us. */
  get nat(): NatKind | undefined {
    return this.#nat.kind;
  }

  /**
   * Announces `endpoint` as our candidate of this kind (docs/PROTOCOL.md §1.7), replacing the one
   * of that kind we announced before: `v6`, a global IPv6 address of our socket; `mapped`, a
   * mapping our router made for it (the port mapper). The coordinator passes our candidates on in
   * introductions from now on; links not yet direct ask for a new one at once.
   *
   * @example
   * ```ts
   * peer.announceCandidate("mapped", { host: "203.0.113.5", port: 41000 });
   * ```
   */
  announceCandidate(kind: AnnouncedKind, endpoint: Endpoint): void {
    if (this.#presence.announce(kind, endpoint)) this.#reintroduce();
  }

  /** Withdraws our candidate of this kind, if we announced one (the mapping expired, say). */
  withdrawCandidate(kind: AnnouncedKind): void {
    if (this.#presence.withdraw(kind)) this.#reintroduce();
  }

  /** The candidates we announce now. */
  get announced(): AnnouncedCandidate[] {
    return this.#presence.announced;
  }

  /** Our candidates changed: the links not yet direct ask for an introduction that has them. */
  #reintroduce(): void {
    if (this.#phase !== "ready") return;
    for (const peer of this.#links.indirect()) this.#nat.connect(peer);
  }

  /**
   * Logs out and closes the socket. Messages still unsettled are reported undelivered; with a
   * persistent history they stay pending there, to be sent at the next start.
   */
  async close(): Promise<void> {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#nat.close();
    this.#presence.logout();
    this.#messages.closing();
    this.#mailbox.close();
    this.#files?.close();
    this.#links.closeAll("the client closed");
    this.#turn.close();
    // The router's mapping is deleted before we go: it would point at a port nobody reads.
    await this.#portMapping?.close();
    await this.#pool.closeAll();
    this.#messages.release();
    await this.#socket.close();
    await this.#desk.flush();
  }

  /** Our chat port's mapping at the gateway, in force now, if any. */
  get portMapping(): { protocol: MappingProtocol; endpoint: Endpoint } | undefined {
    return this.#mapped;
  }

  #mapped: { protocol: MappingProtocol; endpoint: Endpoint } | undefined;

  #startPortMapping(bindHost: string): FollowingPortMapping {
    return new FollowingPortMapping({
      port: this.#socket.local.port,
      bindHost: bindHost === "0.0.0.0" || bindHost === "::" ? undefined : bindHost,
      server: this.#o.server,
      publicHost: () => this.#presence.observed?.host,
      clock: this.#o.clock,
      onChange: (m) => {
        if (this.#phase === "closed") return;
        this.#mapped = m && { protocol: m.protocol, endpoint: m.external };
        // Peers learn the mapped endpoint from their next introduction to us.
        if (m) this.announceCandidate("mapped", m.external);
        else this.withdrawCandidate("mapped");
        this.#emit(
          m
            ? {
              event: "port-mapping",
              protocol: m.protocol,
              endpoint: formatEndpoint(m.external),
              lifetime: m.lifetime,
            }
            : { event: "port-mapping", reason: "the router no longer maps our port" },
        );
      },
      onFailed: (reason) => {
        if (this.#phase !== "closed") this.#emit({ event: "port-mapping", reason });
      },
    });
  }

  #emit(e: PeerEvent): void {
    this.#o.onEvent(e);
  }

  /** The link to `peer`: its key checked by our trust, its reports ours, its transport ours. */
  #wiring(peer: string): LinkWiring {
    const { server } = this.#o;
    const transport: LinkTransport = {
      sendTo: (frame, to, ttl, socket = 0) =>
        socket === TURN_SOCKET
          ? this.#turn.sendTo(frame, to)
          : (socket === 0 ? this.#socket : this.#pool.get(socket))?.send(frame, to, { ttl }),
      sendViaRelay: (frame) =>
        this.#socket.send(encodeFrame({ type: "relay", to: peer, inner: frame }), server),
      openSockets: (count) => this.#pool.open(count),
      closeSockets: (ids) => this.#pool.close(ids),
      localNat: () => this.#nat.kind,
      mapped: () => this.#mapped !== undefined,
      requestIntroduction: () => this.#nat.connect(peer),
    };
    const events = {
      ...linkEventsFor({ peer, emit: (e) => this.#emit(e), messages: this.#messages }),
      onFileFrame: (data: Uint8Array) => this.#files?.onFrame(peer, data),
      onFileSettled: (id: number, reason: string | undefined) =>
        this.#files?.onSettled(peer, id, reason),
      onSecured: (reset: boolean) => this.#files?.onSecured(peer, reset),
    };
    return { verifyKey: (key) => this.#trust.verify(peer, key), transport, events };
  }

  /** The links as file transfers reach them: opening one asks for it as a message would. */
  #fileLinks(): FileLinks {
    const wrap = (link: Link) => ({
      get secured() {
        return link.secured;
      },
      get pathKind() {
        return pathKindOf(link.path);
      },
      sendFile: (frame: Uint8Array) => link.sendFile(frame),
    });
    return {
      open: (peer) => {
        this.#door.want(peer);
        const link = this.#links.open(peer);
        if (!link.secured) link.requestIntroduction();
        return wrap(link);
      },
      get: (peer) => {
        const link = this.#links.get(peer);
        return link && wrap(link);
      },
      online: (peer) => this.#presence.users.has(peer),
    };
  }

  #onServerMessage(msg: ServerMessage): void {
    if (this.#desk.onServerMessage(msg)) return;
    if (msg.type === "knock") this.#door.knock(msg.username, msg.key);
    else if (msg.type === "introduce") {
      const intro = introductionFrom(msg, { ipv6: this.#socket.local.host.includes(":") });
      if (!intro || msg.username === this.username) return;
      if (
        this.#links.get(msg.username) || this.#door.admitIntroduction(msg.username, intro.key)
      ) {
        this.#links.introduce(msg.username, intro);
      } else return;
      this.#turn.introduced(msg.username, msg.observed.host);
    } else if (msg.type === "turn") this.#turn.credentials(msg);
    else if (msg.type === "mailbox") this.#delivery.mailboxAt(msg.port, msg.waiting);
    else if (msg.type === "unavailable") this.#delivery.unavailable(msg.username, msg.reason);
    else if (msg.type === "relay-limit") this.#files?.setRelayLimit(msg.fileBytes);
  }

  #onDatagram(data: Uint8Array, from: Endpoint, socket = 0): void {
    if (this.#phase === "closed") return;
    // Answers to our STUN requests first: the TURN server may be one of the --stun servers.
    if (socket === 0 && this.#nat.stunAnswer(this.#presence.observed, data, from)) return;
    if (socket === 0 && this.#turn.fromServer(data, from)) return;
    const what = demuxDatagram(data, from, { server: this.#o.server, extraSocket: socket !== 0 });
    switch (what?.kind) {
      case "coordinator":
        return this.#presence.handleDatagram(what.messages);
      case "malformed":
        return this.#emit({
          event: "error",
          message: `Ignored a message from the coordinator: ${what.reason}`,
        });
      case "whoami":
        return this.#nat.answer(this.#presence.observed, what.seen);
      case "stun":
        return; // not an answer to our requests (those were taken above): nothing for us
      case "frame": {
        const link = this.#links.get(what.frame.from);
        if (link) link.receive(what.frame, what.via, socket);
        else if (socket === 0) this.#door.strangerFrame(what.frame.from, what.via);
      }
    }
  }
}
