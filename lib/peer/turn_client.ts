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
import { bytesToHex } from "@noble/hashes/utils.js";
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
  MAX_CHANNEL,
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
  /** A permission was granted (the first time, and again after a failure); default nothing. */
  onPermitted?: (host: string) => void;
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

/** A permission: for one IP address, any port (RFC 8656 §9). */
interface Permission {
  host: string;
  /** The server confirmed it. */
  granted: boolean;
  /** When it was last asked for. */
  askedAt: number;
}

/** A channel to one peer endpoint. */
interface Channel {
  peer: Endpoint;
  number: number;
  /** The server confirmed the binding (ChannelData may flow). */
  bound: boolean;
  /** A ChannelBind is under way. */
  binding: boolean;
  /** When it was last asked for. */
  askedAt: number;
}

/** Most channels per allocation: one per peer endpoint we talk to. */
const MAX_CHANNELS = 256;

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
  /** Permissions by IP address; channels by peer endpoint and by number. */
  readonly #permissions = new Map<string, Permission>();
  readonly #channels = new Map<string, Channel>();
  readonly #byNumber = new Map<number, Channel>();
  /**
   * The next channel number to try: numbers go round all 4096, so that one given up is not
   * bound again to another peer while the server may still hold it (10 minutes).
   */
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
      for (const p of this.#permissions.values()) this.#permit(p);
    });
  }

  /**
   * Lets the peer at IP address `host` (any port) reach us through the allocation, and us reach
   * it: CreatePermission, renewed while the allocation lasts. May be called before the allocation
   * is made (asked for once it is).
   */
  permit(host: string): void {
    if (this.#permissions.has(host)) return;
    const p: Permission = { host, granted: false, askedAt: this.#o.clock.now() };
    this.#permissions.set(host, p);
    if (this.#state.kind === "allocated") this.#permit(p);
  }

  /**
   * Stops renewing the permission for `host` and the channels to it: they lapse on the server
   * (permissions after 5 minutes, channels after 10); what arrives from it until then is ignored.
   */
  forget(host: string): void {
    this.#permissions.delete(host);
    for (const [key, c] of this.#channels) {
      if (c.peer.host !== host) continue;
      this.#channels.delete(key);
      this.#byNumber.delete(c.number);
    }
  }

  /** Whether the server granted the permission for `host`: data to and from it may flow. */
  permitted(host: string): boolean {
    return this.#permissions.get(host)?.granted === true;
  }

  /**
   * Sends `data` to `peer` through the allocation: ChannelData once a channel to it is bound, a
   * Send indication before (the first send asks for the channel). Returns false, sending
   * nothing, without an allocation or a granted permission for the peer's address.
   */
  sendTo(peer: Endpoint, data: Uint8Array): boolean {
    if (this.#state.kind !== "allocated" || !this.permitted(peer.host)) return false;
    const key = formatEndpoint(peer);
    let channel = this.#channels.get(key);
    if (!channel && this.#channels.size < MAX_CHANNELS) {
      channel = {
        peer: { ...peer },
        number: this.#takeChannelNumber(),
        bound: false,
        binding: false,
        askedAt: this.#o.clock.now(),
      };
      this.#channels.set(key, channel);
      this.#byNumber.set(channel.number, channel);
      this.#bind(channel);
    }
    const bytes = channel?.bound ? encodeChannelData(channel.number, data) : encodeTurnMessage({
      method: "send",
      cls: "indication",
      transactionId: this.#txid(),
      attributes: { peer, data },
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
        const c = this.#byNumber.get(channel);
        if (c?.bound) return this.#o.onData(c.peer, data);
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
      if (msg.method === "data" && peer && data && this.permitted(peer.host)) {
        return this.#o.onData(peer, data);
      }
      this.stats.ignored++;
      return;
    }
    const id = bytesToHex(msg.transactionId);
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
    // A refused permission or channel: that peer is not reachable this way (Send indications
    // still are, for a channel); the rest still are.
    const peer = t.attributes.peer;
    if (peer && t.method === "channel-bind") {
      const c = this.#channels.get(formatEndpoint(peer));
      if (c) c.binding = false;
    }
  }

  #takeChannelNumber(): number {
    while (this.#byNumber.has(this.#nextChannel)) this.#advanceChannel();
    const number = this.#nextChannel;
    this.#advanceChannel();
    return number;
  }

  #advanceChannel(): void {
    this.#nextChannel = this.#nextChannel === MAX_CHANNEL ? MIN_CHANNEL : this.#nextChannel + 1;
  }

  #permit(p: Permission): void {
    p.askedAt = this.#o.clock.now();
    this.#request("create-permission", { peer: { host: p.host, port: 0 } }, () => {
      if (p.granted) return;
      p.granted = true;
      this.#o.onPermitted?.(p.host);
    });
  }

  #bind(c: Channel): void {
    if (c.binding) return;
    c.binding = true;
    c.askedAt = this.#o.clock.now();
    this.#request("channel-bind", { channel: c.number, peer: c.peer }, () => {
      c.binding = false;
      c.bound = true;
    });
  }

  /** Every minute: permissions and channels older than their refresh time are renewed. */
  #maintain(): void {
    const now = this.#o.clock.now();
    // Checked every minute: renewed in the minute before the refresh time.
    for (const p of this.#permissions.values()) {
      if (now - p.askedAt >= PERMISSION_REFRESH_MS - 60_000) this.#permit(p);
    }
    for (const c of this.#channels.values()) {
      if (c.bound && now - c.askedAt >= CHANNEL_REFRESH_MS - 60_000) this.#bind(c);
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
    this.#transmit(bytesToHex(id), t);
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
    this.#transmit(bytesToHex(id), again);
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
    for (const p of this.#permissions.values()) p.granted = false;
    this.#channels.clear();
    this.#byNumber.clear();
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
