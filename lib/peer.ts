/**
 * A chat client (`p2p chat`): one UDP socket shared by the coordinator protocol
 * ({@linkcode Presence}) and the peer-to-peer frames, one {@linkcode Link} per peer we talk to,
 * our identity and trust store, and the front-end-facing API ({@linkcode Peer.send},
 * {@linkcode Peer.sendAll}, {@linkcode Peer.who}, {@linkcode Peer.trust}…) reporting through an
 * {@linkcode EventSink}.
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
import {
  decodeKey,
  encodeKey,
  fingerprint,
  loadOrCreateIdentity,
  safetyNumber,
} from "./crypto/identity.ts";
import { KnownPeers } from "./crypto/known_peers.ts";
import type { EventSink, OnlineUser } from "./peer/events.ts";
import { Link } from "./peer/link.ts";
import { natKindOf } from "./peer/nat_check.ts";
import { encodeWhoami, type NatKind, parseWhoamiAnswer, secondPort } from "./protocol/whoami.ts";
import { decodeBase64url, encodeBase64url } from "./protocol/base64url.ts";
import { type Endpoint, formatEndpoint, sameEndpoint } from "./protocol/endpoint.ts";
import { decodeFrame, encodeFrame, FrameError, isFrame } from "./protocol/frame.ts";
import {
  decodeText,
  MAX_BATCH_DATAGRAM,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "./protocol/seed.ts";
import { localAddressFor, UdpSocket } from "./net/udp.ts";
import { Presence } from "./peer/presence.ts";
import type { Candidate, PathFinderOptions } from "./peer/traversal.ts";

/** Options for {@linkcode Peer.start}. */
export interface PeerOptions {
  server: Endpoint;
  username: string;
  onEvent: EventSink;
  /** Local address to bind; default all IPv4 interfaces, any port. */
  bind?: Endpoint;
  /** Heartbeat interval; default 10 s (the coordinator drops users silent for 45 s). */
  keepaliveMs?: number;
  /** Where the identity and known peers live; default `$XDG_CONFIG_HOME/p2p`. */
  configDir?: string;
  /** Messages are reported undelivered when the peer stays unreachable this long; default 30 s. */
  giveUpAfterMs?: number;
  /** Path finder timings (tests and the lab shorten them). */
  pathOptions?: Partial<PathFinderOptions>;
}

/** Most extra sockets open at once (two birthday searches): file descriptors are finite. */
const MAX_EXTRA_SOCKETS = 512;

/** Longest message text, in UTF-8 bytes (it is split into datagrams and reassembled). */
export const MAX_TEXT_BYTES = 256 * 1024;

const encoder = new TextEncoder();

function random32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function randomSecret(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
}

/** A logged-in chat client. */
export class Peer {
  readonly username: string;
  /** Our public key's fingerprint. */
  readonly fingerprint: string;
  readonly #o: PeerOptions;
  readonly #socket: UdpSocket;
  readonly #presence: Presence;
  readonly #identity: { publicKey: Uint8Array; secretKey: Uint8Array };
  readonly #known: KnownPeers;
  readonly #instanceId = random32();
  readonly #links = new Map<string, Link>();
  /** Users seen online during this session: messages to them wait if they are away. */
  readonly #seen = new Set<string>();
  /** Keys that differ from the pinned ones, waiting for `/trust`. */
  readonly #changedKeys = new Map<string, Uint8Array>();
  /** Messages not yet settled: id → recipient. */
  readonly #outgoing = new Map<number, string>();
  readonly #drainWaiters: (() => void)[] = [];
  #nextId = 1;
  #ready = false;
  #closed = false;
  /** How our NAT maps the socket, once known (see {@linkcode NatKind}). */
  #nat: NatKind | undefined;
  /** Introductions asked for while our NAT kind was being found out. */
  readonly #waitingConnects = new Set<string>();
  /** Extra sockets of birthday searches, by id (the main socket is 0). */
  readonly #extra = new Map<number, UdpSocket>();
  #nextSocketId = 1;
  #natProbe: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    socket: UdpSocket,
    claimed: Endpoint,
    identity: { publicKey: Uint8Array; secretKey: Uint8Array },
    known: KnownPeers,
    options: PeerOptions,
  ) {
    this.username = options.username;
    this.fingerprint = fingerprint(identity.publicKey);
    this.#o = options;
    this.#socket = socket;
    this.#identity = identity;
    this.#known = known;
    this.#presence = new Presence({
      send: (data, to) => socket.send(data, to),
      server: options.server,
      username: options.username,
      claimed,
      keepaliveMs: options.keepaliveMs ?? 10_000,
      ext: { key: encodeKey(identity.publicKey), secret: randomSecret() },
      // The first list is reported after `ready`, by start().
      onOnline: (user, ep) => {
        this.#seen.add(user);
        if (this.#ready) this.#emit({ event: "online", user, endpoint: formatEndpoint(ep) });
        // Messages were waiting for this user to come back.
        const link = this.#links.get(user);
        if (link?.hasPending) link.requestIntroduction();
      },
      onOffline: (user) => this.#emit({ event: "offline", user }),
      onError: (message) => this.#emit({ event: "error", message }),
      onCoordinator: (state) => {
        this.#emit({ event: "coordinator", state });
        if (state === "back") this.#detectNat(); // a new coordinator knows nothing of our NAT
      },
      onOther: (msg) => this.#onServerMessage(msg),
    });
  }

  /** Binds the socket, loads our identity, logs in, and emits `ready` and the online users. */
  static async start(options: PeerOptions): Promise<Peer> {
    const identity = await loadOrCreateIdentity({
      username: options.username,
      configDir: options.configDir,
    });
    const known = await KnownPeers.open({
      username: options.username,
      configDir: options.configDir,
    });
    const bindHost = options.bind?.host ?? (options.server.host.includes(":") ? "::" : "0.0.0.0");
    const socket = await UdpSocket.bind({ host: bindHost, port: options.bind?.port ?? 0 });
    try {
      const unspecified = bindHost === "0.0.0.0" || bindHost === "::";
      const claimed = {
        host: unspecified ? localAddressFor(options.server) : bindHost,
        port: socket.local.port,
      };
      const peer = new Peer(socket, claimed, identity, known, options);
      socket.onMessage((data, from) => peer.#onDatagram(data, from));
      const { observed } = await peer.#presence.login();
      peer.#ready = true;
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
      peer.#detectNat();
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
      path: this.#links.get(user)?.path.kind ?? "none",
    }));
  }

  /** Our endpoint as the coordinator sees it. */
  get observed(): Endpoint | undefined {
    return this.#presence.observed;
  }

  /** Counters of what every link dropped (tampered, replayed, undecryptable…), summed. */
  stats(): Record<string, number> {
    const total: Record<string, number> = {};
    for (const link of this.#links.values()) {
      for (const [k, v] of Object.entries(link.stats)) total[k] = (total[k] ?? 0) + v;
    }
    return total;
  }

  /**
   * Sends a chat message to `to`, end-to-end encrypted and reliable, directly or through the
   * relay. Returns its id; `delivered` or `undelivered` follows. Emits `error` and returns
   * `undefined` when it cannot even be queued (unknown user, key not trusted, too long).
   */
  send(to: string, text: string): number | undefined {
    return this.#send(to, text, false);
  }

  /** Sends `text` to every online user, each copy encrypted and reliable. Returns the ids. */
  sendAll(text: string): number[] {
    const users = [...this.#presence.users.keys()];
    if (users.length === 0) {
      this.#emit({ event: "error", message: "Cannot send to everyone: nobody else is online" });
      return [];
    }
    return users.map((u) => this.#send(u, text, true)).filter((id) => id !== undefined);
  }

  /** Reports the fingerprint of `user`'s pinned key (and the safety number), or our own. */
  showFingerprint(user?: string): void {
    if (user === undefined || user === this.username) {
      this.#emit({ event: "fingerprint", user: this.username, fingerprint: this.fingerprint });
      return;
    }
    const pinned = this.#known.get(user);
    const key = pinned?.publicKey;
    if (!key) {
      this.#emit({
        event: "error",
        message: `No key known for ${user} yet: it is learned on the first conversation`,
      });
      return;
    }
    this.#emit({
      event: "fingerprint",
      user,
      fingerprint: fingerprint(key),
      safety: safetyNumber(this.username, this.#identity.publicKey, user, key),
    });
  }

  /** Accepts `user`'s changed key (after checking it out of band) and reconnects. */
  async trust(user: string): Promise<void> {
    const key = this.#changedKeys.get(user);
    if (!key) {
      this.#emit({ event: "error", message: `Nothing to trust: ${user}'s key has not changed` });
      return;
    }
    await this.#known.trust(user, key);
    this.#changedKeys.delete(user);
    this.#emit({ event: "trusted", user, fingerprint: fingerprint(key) });
    this.#links.get(user)?.requestIntroduction();
  }

  /** Resolves when every message sent so far is delivered or reported undelivered. */
  drain(): Promise<void> {
    if (this.#outgoing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** How our NAT maps our socket, once the coordinator's two ports have told us. */
  get nat(): NatKind | undefined {
    return this.#nat;
  }

  /**
   * Asks the coordinator's second port (`port + 1`) where it sees us: the same endpoint as the
   * main port means an easy NAT (or none), another port a hard (symmetric) one. The answer goes
   * to the coordinator (`nat`), which passes it on in introductions. No answer: nothing is
   * reported, and introductions simply carry no NAT kind.
   */
  #detectNat(attempt = 0): void {
    clearTimeout(this.#natProbe);
    this.#natProbe = undefined;
    if (this.#closed) return;
    if (attempt >= 3) {
      this.#flushConnects(); // no answer: introductions go ahead without our NAT kind
      return;
    }
    this.#socket.send(encodeWhoami(), secondPort(this.#o.server));
    this.#natProbe = setTimeout(() => this.#detectNat(attempt + 1), 1000);
  }

  #onNatAnswer(seenByAlt: Endpoint): void {
    const observed = this.#presence.observed;
    if (!observed || this.#natProbe === undefined) return;
    clearTimeout(this.#natProbe);
    this.#natProbe = undefined;
    this.#nat = natKindOf(observed, seenByAlt);
    this.#presence.reportNat(this.#nat);
    // Introductions made before the coordinator knew our NAT kind could not plan a birthday
    // search: redo those that have not found a direct path.
    for (const link of this.#links.values()) {
      if (link.path.kind !== "direct" && !this.#waitingConnects.has(link.peer)) {
        this.#presence.connect(link.peer);
      }
    }
    this.#flushConnects();
  }

  /**
   * Asks for an introduction to `peer` — once our NAT kind is known (or its detection gave up),
   * so that the coordinator can pass it on and both sides can plan the same search.
   */
  #connect(peer: string): void {
    if (this.#natProbe !== undefined) this.#waitingConnects.add(peer);
    else this.#presence.connect(peer);
  }

  #flushConnects(): void {
    for (const peer of this.#waitingConnects) this.#presence.connect(peer);
    this.#waitingConnects.clear();
  }

  /** Logs out and closes the socket. Messages still unsettled are reported undelivered. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#natProbe);
    this.#presence.logout();
    for (const link of this.#links.values()) link.close("the client closed");
    this.#links.clear();
    await Promise.all([...this.#extra.values()].map((s) => s.close()));
    this.#extra.clear();
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    await this.#socket.close();
  }

  #emit: EventSink = (e) => this.#o.onEvent(e);

  #send(to: string, text: string, group: boolean): number | undefined {
    const fail = (why: string) => {
      this.#emit({ event: "error", message: `Cannot send to ${to}: ${why}` });
      return undefined;
    };
    if (to === this.username) return fail("that is you");
    if (!this.#presence.users.has(to) && !this.#seen.has(to)) return fail(`${to} is not online`);
    if (this.#changedKeys.has(to)) {
      return fail(
        `${to}'s key has changed; compare /fingerprint ${to} with them, then /trust ${to}`,
      );
    }
    const bytes = encoder.encode(text).length;
    if (bytes > MAX_TEXT_BYTES) {
      return fail(`the message is ${bytes} bytes, the limit is ${MAX_TEXT_BYTES}`);
    }
    const id = this.#nextId++;
    this.#outgoing.set(id, to);
    this.#emit(group ? { event: "sent", to, id, text, group } : { event: "sent", to, id, text });
    this.#link(to).send({ group, id, text });
    return id;
  }

  async #openSockets(count: number): Promise<number[]> {
    if (this.#closed || this.#extra.size + count > MAX_EXTRA_SOCKETS) {
      throw new Error(`no room for ${count} more sockets`);
    }
    const host = this.#socket.local.host;
    const opened = await Promise.allSettled(
      Array.from({ length: count }, () => UdpSocket.bind({ host })),
    );
    const ids: number[] = [];
    for (const result of opened) {
      if (result.status !== "fulfilled") continue;
      const id = this.#nextSocketId++;
      this.#extra.set(id, result.value);
      result.value.onMessage((data, from) => this.#onDatagram(data, from, id));
      ids.push(id);
    }
    if (this.#closed) {
      this.#closeSockets(ids);
      throw new Error("the client closed");
    }
    return ids;
  }

  #closeSockets(ids: number[]): void {
    for (const id of ids) {
      this.#extra.get(id)?.close();
      this.#extra.delete(id);
    }
  }

  #settled(id: number): void {
    this.#outgoing.delete(id);
    if (this.#outgoing.size === 0) {
      for (const resolve of this.#drainWaiters.splice(0)) {
        resolve();
      }
    }
  }

  #link(peer: string): Link {
    let link = this.#links.get(peer);
    if (link) return link;
    link = new Link({
      me: this.username,
      peer,
      staticKeyPair: this.#identity,
      instanceId: this.#instanceId,
      verifyKey: (key) => this.#verifyKey(peer, key),
      giveUpAfterMs: this.#o.giveUpAfterMs,
      pathOptions: this.#o.pathOptions,
      transport: {
        sendTo: (frame, to, ttl, socket = 0) =>
          (socket === 0 ? this.#socket : this.#extra.get(socket))?.send(frame, to, { ttl }),
        openSockets: (count) => this.#openSockets(count),
        closeSockets: (ids) => this.#closeSockets(ids),
        localNat: () => this.#nat,
        sendViaRelay: (frame) =>
          this.#socket.send(encodeFrame({ type: "relay", to: peer, inner: frame }), this.#o.server),
        requestIntroduction: () => this.#connect(peer),
      },
      events: {
        onMessage: (msg, path) =>
          this.#emit({
            event: "message",
            from: peer,
            to: msg.group ? "*" : this.username,
            text: msg.text,
            id: msg.id,
            path: path.kind,
          }),
        onDelivered: (id) => {
          this.#settled(id);
          this.#emit({ event: "delivered", to: peer, id });
        },
        onUndelivered: (id, reason) => {
          this.#settled(id);
          this.#emit({ event: "undelivered", to: peer, id, reason });
        },
        onPath: (path) => {
          if (path.kind === "none") return;
          this.#emit(
            path.kind === "direct"
              ? {
                event: "path",
                user: peer,
                path: "direct",
                endpoint: formatEndpoint(path.endpoint),
              }
              : { event: "path", user: peer, path: "relay" },
          );
        },
      },
    });
    this.#links.set(peer, link);
    return link;
  }

  /** Trust on first use: pin a new key, accept the pinned one, refuse (and warn) on a change. */
  #verifyKey(peer: string, key: Uint8Array): boolean {
    const status = this.#known.check(peer, key);
    if (status === "match") return true;
    if (status === "new") {
      this.#known.pin(peer, key).catch((err) =>
        this.#emit({ event: "error", message: `Cannot save ${peer}'s key: ${err.message}` })
      );
      return true;
    }
    const previous = this.#changedKeys.get(peer);
    if (!previous || encodeKey(previous) !== encodeKey(key)) {
      this.#changedKeys.set(peer, key);
      const pinned = this.#known.get(peer)!.publicKey;
      this.#emit({
        event: "key-changed",
        user: peer,
        fingerprint: fingerprint(key),
        previous: fingerprint(pinned),
      });
    }
    return false;
  }

  #onServerMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case "introduce": {
        const key = decodeKey(msg.key);
        const token = decodeBase64url(msg.token);
        if (!key || !token || msg.username === this.username) return;
        const candidates: Candidate[] = [];
        if (!sameEndpoint(msg.claimed, msg.observed)) {
          candidates.push({ kind: "lan", endpoint: msg.claimed });
        }
        candidates.push({ kind: "public", endpoint: msg.observed });
        this.#link(msg.username).introduce({ candidates, key, token, nat: msg.nat });
        return;
      }
      case "unavailable": {
        const link = this.#links.get(msg.username);
        // Offline users may come back within the session: their messages wait. An online user
        // the coordinator cannot introduce (a seed-only client) never will.
        if (link && this.#presence.users.has(msg.username)) {
          this.#links.delete(msg.username);
          link.close(msg.reason);
        }
        return;
      }
      default:
        return;
    }
  }

  #onDatagram(data: Uint8Array, from: Endpoint, socket = 0): void {
    if (this.#closed) return;
    if (socket !== 0) {
      // Extra sockets only ever talk to one peer, directly.
      try {
        const frame = decodeFrame(data);
        if (frame.type !== "relay" && frame.type !== "relayed") {
          this.#links.get(frame.from)?.receive(frame, from, socket);
        }
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
      }
      return;
    }
    const fromServer = sameEndpoint(from, this.#o.server);
    if (!isFrame(data)) {
      if (sameEndpoint(from, secondPort(this.#o.server))) {
        const seen = parseWhoamiAnswer(data);
        if (seen) this.#onNatAnswer(seen);
        return;
      }
      if (!fromServer) return;
      try {
        // Several messages may share a datagram, one per line: a `Presence` header and the
        // changes it covers are one unit, so a malformed line voids the whole datagram.
        const lines = decodeText(data, MAX_BATCH_DATAGRAM).split("\n").filter((l) => l !== "");
        this.#presence.handleDatagram(lines.map(parseServerMessage));
      } catch (err) {
        if (!(err instanceof SeedProtocolError)) throw err;
        this.#emit({
          event: "error",
          message: `Ignored a message from the coordinator: ${err.message}`,
        });
      }
      return;
    }
    try {
      let frame = decodeFrame(data);
      let via: Endpoint | "relay" = from;
      if (frame.type === "relayed") {
        if (!fromServer) return;
        const inner = decodeFrame(frame.inner);
        // The coordinator vouches for the sender's name; the inner frame must agree.
        if (!("from" in inner) || inner.from !== frame.from || inner.type === "relayed") return;
        frame = inner;
        via = "relay";
      }
      if (frame.type === "relay") return;
      const link = this.#links.get(frame.from);
      if (link) {
        link.receive(frame, via);
      } else if (this.#presence.users.has(frame.from)) {
        // Someone we have no link with talks to us: ask for an introduction to both sides.
        this.#link(frame.from).requestIntroduction();
      }
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
    }
  }
}
