/**
 * A TURN client (RFC 8656) for one allocation on one TURN server: Allocate with the long-term
 * credential mechanism (a first request without credentials, the server's 401 with REALM and NONCE,
 * then the request again with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY; a 438 Stale Nonce
 * is retried with the new nonce), Refresh before the allocation's lifetime ends, CreatePermission
 * and ChannelBind for each peer (refreshed before their 5- and 10-minute lifetimes end), and the
 * peers' data both ways as ChannelData (Send/Data indications before the channel is bound).
 *
 * A state machine on an injected {@linkcode Clock}, no sockets: the host hands it what arrives
 * from the TURN server's address ({@linkcode TurnClient.receive}) and sends what it asks
 * (`send`). Requests are retransmitted (500 ms, doubling, 5 tries, RFC 8489 §6.2.1); a request
 * that gets no answer, or an error the client cannot fix (wrong credentials: 401 to a request that
 * carried them), fails the allocation with a reason (`onState`). Only responses whose
 * transaction ids it sent are read; after the first authenticated answer, only responses that
 * carry a valid MESSAGE-INTEGRITY, so an off-path attacker cannot steer it.
 *
 * @example
 * ```ts
 * import { realClock } from "../clock.ts";
 *
 * const turn = new TurnClient({
 *   clock: realClock,
 *   credentials: { username: "1700003600:alice", password: "…" },
 *   send: (bytes) => socket.send(bytes, server),
 *   onState: (state) => console.log(state),
 *   onData: (from, data) => console.log(from, data),
 * });
 * turn.allocate();
 * // socket.onMessage((bytes, from) => { if (from is the server) turn.receive(bytes); });
 * ```
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";
import { type Endpoint, formatEndpoint } from "../protocol/endpoint.ts";
import {
  checkIntegrity,
  decodeChannelData,
  type DecodedTurnMessage,
  decodeTurnMessage,
  encodeChannelData,
  encodeTurnMessage,
  isChannelData,
  isTurnMessage,
  longTermKey,
  MIN_CHANNEL,
  newTransactionId,
  type TurnAttributes,
  TurnCodecError,
  type TurnMethod,
  UDP_TRANSPORT,
} from "../protocol/turn.ts";

/** Where the allocation is. */
export type TurnState =
  | { kind: "idle" }
  | { kind: "allocating" }
  | { kind: "allocated"; relayed: Endpoint; mapped: Endpoint | undefined; lifetimeS: number }
  | { kind: "failed"; reason: string }
  | { kind: "closed" };

/** The credentials of the allocation (TURN REST: `expiry:name` and its HMAC). */
export interface TurnClientCredentials {
  username: string;
  password: string;
}

/** Options of {@linkcode TurnClient}. */
export interface TurnClientOptions {
  clock: Clock;
  credentials: TurnClientCredentials;
  /** Sends bytes to the TURN server. Must not throw. */
  send: (bytes: Uint8Array) => void;
  /** Every change of state. */
  onState: (state: TurnState) => void;
  /** Data from a peer, through the allocation. */
  onData: (from: Endpoint, data: Uint8Array) => void;
  /** Allocation lifetime asked for, in seconds; default 600 (the server may give less). */
  lifetimeS?: number;
  /** First retransmission timeout; default 500 ms. */
  rtoMs?: number;
  /** Tries of each request before it fails; default 5. */
  tries?: number;
  /** Transaction ids; default random. */
  transactionId?: () => Uint8Array;
}

/** Counters, for tests and diagnostics. */
export interface TurnClientStats {
  requests: number;
  retransmissions: number;
  /** Datagrams from the server that did not decode, had no transaction of ours, or were forged. */
  ignored: number;
  sentBytes: number;
  receivedBytes: number;
}

interface Transaction {
  method: TurnMethod;
  attributes: TurnAttributes;
  bytes: Uint8Array;
  tries: number;
  timer: TimerId;
  /** Authenticated (sent with MESSAGE-INTEGRITY). */
  signed: boolean;
  /** Tried again after a 438 stale nonce already. */
  renewedNonce: boolean;
  done: (answer: DecodedTurnMessage) => void;
}

interface PeerState {
  peer: Endpoint;
  channel: number | undefined;
  /** A ChannelBind is under way. */
  binding: boolean;
  permitted: boolean;
  /** When its permission or channel was last asked for. */
  refreshedAt: number;
}

/** Permission lifetime is 300 s (RFC 8656 §9): refreshed after 240 s. */
const PERMISSION_REFRESH_MS = 240_000;
/** Channel bindings last 600 s (§12): refreshed after 480 s (which also refreshes the permission). */
const CHANNEL_REFRESH_MS = 480_000;

/** One TURN allocation and the peers it may reach. */
export class TurnClient {
  readonly stats: TurnClientStats = {
    requests: 0,
    retransmissions: 0,
    ignored: 0,
    sentBytes: 0,
    receivedBytes: 0,
  };
  readonly #o: TurnClientOptions & Required<Pick<TurnClientOptions, "rtoMs" | "tries">>;
  #state: TurnState = { kind: "idle" };
  /** REALM and NONCE from the server, and the key they give with the credentials. */
  #auth: { realm: string; nonce: string; key: Uint8Array } | undefined;
  readonly #transactions = new Map<string, Transaction>();
  /** Peers by `host:port`; channels by number. */
  readonly #peers = new Map<string, PeerState>();
  readonly #channels = new Map<number, PeerState>();
  #nextChannel = MIN_CHANNEL;
  /** Refresh of the allocation, and of permissions and channels. */
  #refreshTimer: TimerId | undefined;
  #maintainTimer: TimerId | undefined;

  constructor(options: TurnClientOptions) {
    this.#o = { rtoMs: 500, tries: 5, ...options };
  }

  /** The state of the allocation. */
  get state(): TurnState {
    return this.#state;
  }

  /** The relayed address peers send to, once allocated. */
  get relayed(): Endpoint | undefined {
    return this.#state.kind === "allocated" ? this.#state.relayed : undefined;
  }

  /** New credentials (from a newer introduction), used from the next request on. */
  set credentials(credentials: TurnClientCredentials) {
    this.#o.credentials = credentials;
    if (this.#auth) {
      const { realm, nonce } = this.#auth;
      this.#auth = { realm, nonce, key: this.#key(realm) };
    }
  }

  /** Starts the allocation (once; again after a failure). */
  allocate(): void {
    if (this.#state.kind === "allocating" || this.#state.kind === "allocated") return;
    this.#setState({ kind: "allocating" });
    this.#request("allocate", {
      requestedTransport: UDP_TRANSPORT,
      lifetime: this.#o.lifetimeS ?? 600,
    }, (answer) => {
      const { relayed, mapped, lifetime } = answer.attributes;
      if (!relayed) return this.#fail("the TURN server's Allocate answer has no relayed address");
      const lifetimeS = lifetime ?? 600;
      this.#setState({ kind: "allocated", relayed, mapped, lifetimeS });
      this.#scheduleRefresh(lifetimeS);
      this.#maintainTimer = this.#o.clock.setInterval(() => this.#maintain(), 60_000);
      for (const p of this.#peers.values()) this.#permitAndBind(p);
    });
  }

  /**
   * Lets `peer` reach us through the allocation and us reach it: CreatePermission for its
   * address, then ChannelBind. May be called before the allocation is made (done once it is).
   */
  addPeer(peer: Endpoint): void {
    const key = formatEndpoint(peer);
    if (this.#peers.has(key)) return;
    const state: PeerState = {
      peer: { ...peer },
      channel: undefined,
      binding: false,
      permitted: false,
      refreshedAt: this.#o.clock.now(),
    };
    this.#peers.set(key, state);
    if (this.#state.kind === "allocated") this.#permitAndBind(state);
  }

  /** Whether `peer` was added and its permission is in place (data may flow). */
  reaches(peer: Endpoint): boolean {
    return this.#peers.get(formatEndpoint(peer))?.permitted === true;
  }

  /**
   * Sends `data` to `peer` through the allocation: ChannelData once its channel is bound, a Send
   * indication before. Returns false (nothing sent) without an allocation or a permission.
   */
  sendTo(peer: Endpoint, data: Uint8Array): boolean {
    const p = this.#peers.get(formatEndpoint(peer));
    if (this.#state.kind !== "allocated" || !p?.permitted) return false;
    const bytes = p.channel !== undefined ? encodeChannelData(p.channel, data) : encodeTurnMessage({
      method: "send",
      cls: "indication",
      transactionId: this.#txid(),
      attributes: { peer: p.peer, data },
    });
    this.#send(bytes);
    return true;
  }

  /**
   * Handles a datagram from the TURN server's address: a response to one of our requests, a
   * Data indication, or ChannelData. Anything else is counted and ignored; never throws.
   */
  receive(bytes: Uint8Array): void {
    this.stats.receivedBytes += bytes.length;
    try {
      if (isChannelData(bytes)) {
        const { channel, data } = decodeChannelData(bytes);
        const p = this.#channels.get(channel);
        if (p) return this.#o.onData(p.peer, data);
      } else if (isTurnMessage(bytes)) {
        return this.#message(bytes, decodeTurnMessage(bytes));
      }
    } catch (err) {
      if (!(err instanceof TurnCodecError)) throw err;
    }
    this.stats.ignored++;
  }

  /** Releases the allocation (Refresh with lifetime 0, once, unanswered) and stops every timer. */
  close(): void {
    if (this.#state.kind === "allocated" && this.#auth) {
      this.#send(this.#encode("refresh", { lifetime: 0 }, this.#txid(), true));
    }
    this.#stop();
    this.#setState({ kind: "closed" });
  }

  #message(bytes: Uint8Array, msg: DecodedTurnMessage): void {
    if (msg.cls === "indication") {
      const { peer, data } = msg.attributes;
      // Indications carry no integrity: the server relays only from addresses we permitted (by
      // IP address, any port: a symmetric NAT's new port toward the relay gets through).
      if (msg.method === "data" && peer && data && this.#permittedAddress(peer.host)) {
        return this.#o.onData(peer, data);
      }
      this.stats.ignored++;
      return;
    }
    const id = hexId(msg.transactionId);
    const t = this.#transactions.get(id);
    if (!t || msg.cls === "request") {
      this.stats.ignored++;
      return;
    }
    // Once we signed, only a signed answer counts (a 401 carries none: it must fit a challenge).
    const signedOk = this.#auth !== undefined && checkIntegrity(bytes, msg, this.#auth.key);
    if (t.signed && !signedOk && !(msg.cls === "error" && isChallenge(msg))) {
      this.stats.ignored++;
      return;
    }
    this.#transactions.delete(id);
    this.#o.clock.clearTimeout(t.timer);
    if (msg.cls === "success") return t.done(msg);
    const error = msg.attributes.errorCode;
    const { realm, nonce } = msg.attributes;
    if (error && (error.code === 401 || error.code === 438) && nonce) {
      const fresh = realm ?? this.#auth?.realm;
      const retry = (!t.signed && error.code === 401) || (error.code === 438 && !t.renewedNonce);
      if (fresh !== undefined && retry) {
        this.#auth = { realm: fresh, nonce, key: this.#key(fresh) };
        return this.#resend(t, error.code === 438);
      }
    }
    const why = error ? `${error.code} ${error.reason}` : "an error without a code";
    if (error?.code === 401) {
      return this.#fail(`the TURN server refused our credentials (${why})`);
    }
    if (t.method === "allocate" || t.method === "refresh") {
      return this.#fail(`the TURN server refused ${t.method}: ${why}`);
    }
    // A refused permission or channel: that peer is not reachable this way; the rest still are.
    const p = t.attributes.peer && this.#peers.get(formatEndpoint(t.attributes.peer));
    if (p) p.binding = false;
  }

  #permittedAddress(host: string): boolean {
    for (const p of this.#peers.values()) if (p.permitted && p.peer.host === host) return true;
    return false;
  }

  #permitAndBind(p: PeerState): void {
    p.refreshedAt = this.#o.clock.now();
    this.#request("create-permission", { peer: p.peer }, () => {
      p.permitted = true;
      this.#bind(p);
    });
  }

  #bind(p: PeerState): void {
    if (p.binding || this.#nextChannel > MIN_CHANNEL + 0xfff) return;
    p.binding = true;
    const channel = p.channel ?? this.#nextChannel++;
    this.#request("channel-bind", { channel, peer: p.peer }, () => {
      p.binding = false;
      p.channel = channel;
      this.#channels.set(channel, p);
    });
  }

  /** Every minute: permissions and channels older than their refresh time are renewed. */
  #maintain(): void {
    const now = this.#o.clock.now();
    for (const p of this.#peers.values()) {
      const age = now - p.refreshedAt;
      // Checked every minute: renewed in the minute before the refresh time.
      const due = p.channel !== undefined ? CHANNEL_REFRESH_MS : PERMISSION_REFRESH_MS;
      if (age < due - 60_000) continue;
      p.refreshedAt = now;
      if (p.channel !== undefined) this.#bind(p);
      else this.#permitAndBind(p);
    }
  }

  #scheduleRefresh(lifetimeS: number): void {
    this.#o.clock.clearTimeout(this.#refreshTimer);
    // Well before the end: a minute early, or at half the lifetime if that is shorter.
    const ms = Math.max(1000, Math.min(lifetimeS * 500, lifetimeS * 1000 - 60_000));
    this.#refreshTimer = this.#o.clock.setTimeout(() => {
      this.#request("refresh", { lifetime: this.#o.lifetimeS ?? 600 }, (answer) => {
        const lifetimeS = answer.attributes.lifetime ?? 600;
        if (this.#state.kind === "allocated") this.#setState({ ...this.#state, lifetimeS });
        this.#scheduleRefresh(lifetimeS);
      });
    }, ms);
  }

  #request(
    method: TurnMethod,
    attributes: TurnAttributes,
    done: (answer: DecodedTurnMessage) => void,
  ): void {
    const signed = this.#auth !== undefined;
    const id = this.#txid();
    const t: Transaction = {
      method,
      attributes,
      bytes: this.#encode(method, attributes, id, signed),
      tries: 0,
      timer: 0,
      signed,
      renewedNonce: false,
      done,
    };
    this.stats.requests++;
    this.#transmit(hexId(id), t);
  }

  /** Sends a request again with a new transaction id, signed with the (new) nonce. */
  #resend(t: Transaction, renewedNonce: boolean): void {
    const id = this.#txid();
    const again: Transaction = {
      ...t,
      bytes: this.#encode(t.method, t.attributes, id, true),
      tries: 0,
      signed: true,
      renewedNonce: t.renewedNonce || renewedNonce,
    };
    this.#transmit(hexId(id), again);
  }

  #transmit(id: string, t: Transaction): void {
    this.#transactions.set(id, t);
    const attempt = () => {
      if (t.tries === this.#o.tries) {
        this.#transactions.delete(id);
        return this.#fail(`the TURN server did not answer ${t.method} (${t.tries} tries)`);
      }
      if (t.tries > 0) this.stats.retransmissions++;
      t.timer = this.#o.clock.setTimeout(attempt, this.#o.rtoMs * 2 ** t.tries);
      t.tries++;
      this.#send(t.bytes);
    };
    attempt();
  }

  #encode(method: TurnMethod, attributes: TurnAttributes, id: Uint8Array, signed: boolean) {
    const auth = signed ? this.#auth : undefined;
    return encodeTurnMessage({
      method,
      cls: "request",
      transactionId: id,
      attributes: auth
        ? {
          ...attributes,
          username: this.#o.credentials.username,
          realm: auth.realm,
          nonce: auth.nonce,
        }
        : attributes,
    }, auth?.key);
  }

  #key(realm: string): Uint8Array {
    const { username, password } = this.#o.credentials;
    return longTermKey(username, realm, password);
  }

  #txid(): Uint8Array {
    return this.#o.transactionId?.() ?? newTransactionId();
  }

  #send(bytes: Uint8Array): void {
    this.stats.sentBytes += bytes.length;
    this.#o.send(bytes);
  }

  #fail(reason: string): void {
    this.#stop();
    this.#setState({ kind: "failed", reason });
  }

  #stop(): void {
    for (const t of this.#transactions.values()) this.#o.clock.clearTimeout(t.timer);
    this.#transactions.clear();
    this.#o.clock.clearTimeout(this.#refreshTimer);
    this.#o.clock.clearInterval(this.#maintainTimer);
    this.#refreshTimer = this.#maintainTimer = undefined;
    for (const p of this.#peers.values()) {
      p.permitted = false;
      p.binding = false;
      p.channel = undefined;
    }
    this.#channels.clear();
    this.#nextChannel = MIN_CHANNEL;
  }

  #setState(state: TurnState): void {
    this.#state = state;
    this.#o.onState(state);
  }
}

function isChallenge(msg: DecodedTurnMessage): boolean {
  const code = msg.attributes.errorCode?.code;
  return (code === 401 || code === 438) && msg.attributes.nonce !== undefined;
}

function hexId(id: Uint8Array): string {
  let s = "";
  for (const b of id) s += b.toString(16).padStart(2, "0");
  return s;
}
