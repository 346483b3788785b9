/**
 * The client's side of the coordinator protocol: log in (UDP `login` → `Accept`, then the TCP
 * list), keep the online list current from the presence broadcasts, send heartbeats,
 * log in again when the coordinator has forgotten us, and log out. When our name is registered to
 * our key and another session of it holds the name (we crashed, or our network changed), the
 * coordinator asks us to prove the key (`Challenge`) and we answer with the proof
 * (`lib/crypto/key_proof.ts`): the stale session is replaced at once.
 *
 * Presence datagrams can be lost. A coordinator that numbers its changes says in each `Alive`
 * which version it has sent us; when our list ({@linkcode PresenceView}) is still short of it a
 * second later, we fetch the list again over TCP (a resync, without logging in again; when is
 * {@linkcode ResyncWatch}'s decision). Its timers come from an injected clock.
 *
 * It does not own the UDP socket: the peer shares one socket between the coordinator and the
 * other peers (NAT traversal relies on that), and passes the coordinator's datagrams here.
 *
 * @example
 * ```ts
 * const presence = new Presence({ send, server, username: "alice", claimed, keepaliveMs: 10_000,
 *   onOnline: (name, ep) => {}, onOffline: (name) => {} });
 * const { observed } = await presence.login();
 * // Each datagram from the coordinator, parsed line by line:
 * presence.handleDatagram([
 *   { type: "presence", from: 4, to: 5 },
 *   { type: "online", username: "carol", endpoint: { host: "192.0.2.7", port: 4000 } },
 * ]);
 * ```
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import {
  type ClientMessage,
  type ContactOp,
  encodeClientMessage,
  encodeListRequest,
  type ListEntry,
  type LoginExtension,
  NAME_OWNED_REASON,
  type OnlineList,
  parseOnlineList,
  SeedProtocolError,
  type ServerMessage,
} from "../protocol/seed.ts";
import type { AnnouncedCandidate, AnnouncedKind } from "../protocol/candidates.ts";
import type { NatKind } from "../protocol/whoami.ts";
import { type Clock, realClock, type TimerId } from "../clock.ts";
import { keyProof, KeyProofError } from "../crypto/key_proof.ts";
import { decodeBase64url, encodeBase64url } from "../protocol/base64url.ts";
import { PresenceView } from "./presence_view.ts";
import { ResyncWatch } from "./resync_watch.ts";

/** Options for {@linkcode Presence}. */
export interface PresenceOptions {
  /** Sends a datagram from the shared socket. */
  send: (data: Uint8Array, to: Endpoint) => void;
  /**
   * The coordinator. With `fallbacks`, this object is changed in place when we move to another
   * coordinator, so that whoever shares it follows.
   */
  server: Endpoint;
  /** Other coordinators of the same community, tried in turn when `server` is lost. */
  fallbacks?: Endpoint[];
  username: string;
  /** Our local endpoint, as claimed in `login`. */
  claimed: Endpoint;
  /** Heartbeat interval. */
  keepaliveMs: number;
  onOnline: (username: string, endpoint: Endpoint) => void;
  onOffline: (username: string) => void;
  /** Reports trouble that does not stop the client (e.g. a failed re-login). */
  onError?: (message: string) => void;
  /** Our key and secret, for a coordinator that speaks our extensions. */
  ext?: LoginExtension;
  /** The private half of `ext.key`, to answer a `Challenge` (a takeover of our own name). */
  privateKey?: Uint8Array;
  /** Messages that are not about presence (introductions…). */
  onOther?: (msg: ServerMessage) => void;
  /**
   * Every list fetched (login and resync): a contacts-mode coordinator's carries our contacts and
   * the requests waiting for us.
   */
  onList?: (list: OnlineList) => void;
  /** Ask a contacts-mode coordinator to list us to seed-only clients (`p2p chat --public`). */
  listed?: boolean;
  /**
   * The coordinator stopped answering (`lost`: nothing heard for 2.5 heartbeat intervals), or
   * answers again and we are logged in once more (`back`). Chats on direct paths go on meanwhile.
   */
  onCoordinator?: (state: "lost" | "back") => void;
  /** How long to wait for `Accept` before sending `login` again; default 1 s. */
  retryMs?: number;
  /** How many times to send `login` before giving up; default 5. */
  attempts?: number;
  /** Heartbeats, login retries and the resync's timing; default {@linkcode realClock}. */
  clock?: Clock;
}

/** Thrown by {@linkcode Presence.login} when the coordinator refuses or cannot be reached. */
export class LoginError extends Error {
  override name = "LoginError";
  /** Nobody answered (as opposed to a refusal): while the coordinator is lost, no news. */
  readonly unanswered: boolean;

  constructor(message: string, options: { unanswered?: boolean } = {}) {
    super(message);
    this.unanswered = options.unanswered ?? false;
  }
}

const encoder = new TextEncoder();

/** Presence tracking against one coordinator. */
export class Presence {
  readonly #o: PresenceOptions;
  readonly #clock: Clock;
  readonly #view: PresenceView;
  readonly #watch: ResyncWatch;
  #observed: Endpoint | undefined;
  #heartbeat: TimerId | undefined;
  #waiter: ((msg: ServerMessage) => boolean) | undefined;
  #relogin: Promise<void> | undefined;
  #closed = false;
  #lastHeard = 0;
  #lost = false;
  /** The list service's port (from the last `Accept`), for resyncs. */
  #tcpPort: number | undefined;
  /**
   * After a login again (the coordinator restarted or forgot us), the users its new list lacks
   * may only not have logged in again yet: they stay listed, with their endpoints, and are
   * reported offline only if they are still missing a while later (no offline/online pairs).
   */
  readonly #held = new Map<string, Endpoint>();
  /** The list before a login again, while its new list is applied. */
  #before: ReadonlyMap<string, Endpoint> | undefined;
  #heldTimer: TimerId | undefined;
  /** The last re-login failure reported: the same one is not reported again. */
  #reloginError: string | undefined;
  /** A login again soon after `Bye` (see {@linkcode #onBye}), and when the last one was planned. */
  #byeTimer: TimerId | undefined;
  #byeAt = -Infinity;
  /** Ends the login under way (its retry timer too), when we stop. */
  #abortLogin: (() => void) | undefined;
  /** Aborts the list fetch of a login under way. */
  #abortFetch: AbortController | undefined;
  /** Counts logins, so that a resync that straddles one is thrown away. */
  #logins = 0;
  /** The coordinators of the community, `server` first, and which one we use. */
  readonly #servers: Endpoint[];
  #serverIndex = 0;
  #loggingIn = false;
  /** The resync under way, to abort it when we log out. */
  #resync: AbortController | undefined;
  /**
   * The endpoints we announce (`candidates`), one per kind: sent after every login and on every
   * change.
   */
  readonly #candidates = new Map<AnnouncedKind, Endpoint>();

  constructor(options: PresenceOptions) {
    this.#o = options;
    this.#servers = [{ ...options.server }, ...(options.fallbacks ?? [])];
    this.#clock = options.clock ?? realClock;
    this.#view = new PresenceView({
      self: options.username,
      onOnline: (user, ep) => {
        const held = this.#held.get(user);
        this.#held.delete(user);
        // Back where it was before the coordinator forgot us all: no news.
        if (held && formatEndpoint(held) === formatEndpoint(ep)) return;
        options.onOnline(user, ep);
      },
      onOffline: (user) => {
        const was = this.#before?.get(user);
        if (was) this.#held.set(user, was);
        else options.onOffline(user);
      },
    });
    this.#watch = new ResyncWatch({
      view: this.#view,
      keepaliveMs: options.keepaliveMs,
      canResync: () =>
        !this.#closed && !this.#loggingIn && !this.#resync && this.#tcpPort !== undefined,
      resync: () => this.#resyncNow(),
      onError: options.onError,
      clock: this.#clock,
    });
  }

  /** Online users other than us, by name (with those held after a login again). */
  get users(): ReadonlyMap<string, Endpoint> {
    return this.#held.size === 0 ? this.#view.users : new Map([...this.#held, ...this.#view.users]);
  }

  /** Our endpoint as the coordinator sees it (known after login). */
  get observed(): Endpoint | undefined {
    return this.#observed;
  }

  /**
   * Logs in and fetches the online list. Resolves with our observed endpoint and the list
   * (without us); rejects with {@linkcode LoginError}.
   */
  async login(): Promise<{ observed: Endpoint; list: ListEntry[] }> {
    const again = this.#logins++ > 0;
    this.#loggingIn = true;
    // Versions from before this login may be another coordinator's (it restarted).
    this.#watch.reset();
    try {
      const tcpPort = await this.#requestLogin();
      this.#tcpPort = tcpPort;
      // A fresh login: the coordinator may have restarted and count versions from 0 again.
      // Broadcasts may overtake the list (UDP is faster than the TCP fetch): what they say while
      // the list is on its way is newer than the list, so the view does not let the list undo it.
      this.#view.reset();
      // Stopping mid-fetch must stop the login too: no list applied, no heartbeat, no event.
      const fetching = new AbortController();
      this.#abortFetch = fetching;
      const online = await fetchList({ host: this.#o.server.host, port: tcpPort }, {
        request: this.#listRequest(),
        signal: fetching.signal,
      }).finally(() => this.#abortFetch = undefined);
      if (this.#closed) throw new LoginError("Cannot log in: the client is shutting down");
      // The list normally holds us (we are online once it is fetched); fall back to our claim.
      this.#before = again ? new Map(this.users) : undefined;
      try {
        this.#observed = this.#view.applyList(online) ?? this.#o.claimed;
      } finally {
        this.#before = undefined;
      }
      this.#o.onList?.(online);
      if (this.#o.listed && this.#o.ext) {
        this.#sendMessage({
          type: "listed",
          username: this.#o.username,
          secret: this.#o.ext.secret,
          listed: true,
        });
      }
      // Always, even empty: it also tells the coordinator we read candidates in `Introduce`.
      this.#sendCandidates();
      if (this.#held.size > 0) this.#releaseHeldLater();
      const list = online.entries.filter((e) => e.username !== this.#o.username);
      this.#startHeartbeat();
      this.#reloginError = undefined;
      if (this.#lost) {
        this.#lost = false;
        this.#o.onCoordinator?.("back");
      }
      return { observed: this.#observed, list };
    } finally {
      this.#loggingIn = false;
    }
  }

  /**
   * Handles a datagram from the coordinator, its messages in order (one per line). Presence
   * changes (`+`/`-` lines after a `Presence` header, or the seed's `login`/`logout`) are applied
   * as one unit: the header's range tells which changes they are.
   */
  handleDatagram(messages: readonly ServerMessage[]): void {
    this.#lastHeard = this.#clock.now();
    let open = false;
    for (const [i, msg] of messages.entries()) {
      const online = msg.type === "login" || msg.type === "online";
      const offline = msg.type === "logout" || msg.type === "offline";
      if (online || offline || (msg.type === "presence" && i === 0)) {
        if (!open) this.#view.beginDatagram(msg.type === "presence" ? msg : undefined);
        open = true;
        if (online) this.#view.applyLine("login", msg.username, msg.endpoint);
        else if (offline) this.#view.applyLine("logout", msg.username);
      } else {
        this.#handle(msg);
      }
    }
    if (open) this.#view.endDatagram();
  }

  #handle(msg: ServerMessage): void {
    if (this.#waiter?.(msg)) return;
    switch (msg.type) {
      case "alive":
        this.#observed = msg.endpoint;
        if (msg.version !== undefined) this.#watch.onAlive(msg.version);
        return;
      case "expired":
        // The coordinator forgot us (it restarted, or we were silent too long): log in again.
        if (msg.username === this.#o.username) this.#loginAgain();
        return;
      case "replaced":
        // Another client of our key took our name: logging in again would take it back, and the
        // two would take turns. So we stop, and say why.
        if (msg.username !== this.#o.username || this.#closed) return;
        this.#stop();
        this.#o.onError?.(
          `another client with your key logged in as ${this.#o.username}: this one is logged out ` +
            `(quit it, or start it again to take the name back)`,
        );
        return;
      case "error":
        this.#o.onError?.(`coordinator: ${msg.reason}`);
        return;
      case "bye":
        this.#onBye();
        return;
      case "accept":
      case "reject":
      case "challenge":
        return; // a late answer to a login that has finished: nothing to do
      case "presence":
        return; // a header that is not its datagram's first line: malformed
      default:
        this.#o.onOther?.(msg);
    }
  }

  /** Fetches the list again, without logging in ({@linkcode ResyncWatch} decides when). */
  #resyncNow(): void {
    const logins = this.#logins;
    const abort = new AbortController();
    this.#resync = abort;
    fetchList({ host: this.#o.server.host, port: this.#tcpPort! }, {
      signal: abort.signal,
      request: this.#listRequest(),
    }).then(
      (online) => {
        // A login since then has its own list (and maybe another coordinator's versions).
        if (this.#closed || logins !== this.#logins) return;
        this.#observed = this.#view.applyList(online) ?? this.#observed;
        this.#o.onList?.(online);
      },
      () => {}, // the next Alive that shows us behind tries again
    ).finally(() => this.#resync = undefined);
  }

  /** Tells the coordinator what kind of NAT we are behind, for later introductions. */
  reportNat(nat: NatKind): void {
    this.#sendMessage({ type: "nat", username: this.#o.username, nat });
  }

  /**
   * Announces `endpoint` as our candidate of this kind (docs/PROTOCOL.md §1.7), replacing the one
   * of that kind before; sent now when we are logged in, else with the next login. Returns false
   * when nothing changed.
   */
  announce(kind: AnnouncedKind, endpoint: Endpoint): boolean {
    const known = this.#candidates.get(kind);
    if (known && sameEndpoint(known, endpoint)) return false;
    this.#candidates.set(kind, { ...endpoint });
    this.#announceNow();
    return true;
  }

  /** Withdraws our candidate of this kind, as {@linkcode announce} does; false without one. */
  withdraw(kind: AnnouncedKind): boolean {
    if (!this.#candidates.delete(kind)) return false;
    this.#announceNow();
    return true;
  }

  /** The candidates we announce. */
  get announced(): AnnouncedCandidate[] {
    return [...this.#candidates].map(([kind, endpoint]) => ({ kind, endpoint: { ...endpoint } }));
  }

  #announceNow(): void {
    if (this.#observed !== undefined && !this.#loggingIn && !this.#closed) this.#sendCandidates();
  }

  #sendCandidates(): void {
    const secret = this.#o.ext?.secret;
    if (secret === undefined) return;
    const { username } = this.#o;
    this.#sendMessage({ type: "candidates", username, secret, candidates: this.announced });
  }

  /** What we write on the list connection: who we are, for a contacts-mode coordinator. */
  #listRequest(): string | undefined {
    const secret = this.#o.ext?.secret;
    return secret === undefined
      ? undefined
      : encodeListRequest({ username: this.#o.username, secret });
  }

  /** Sends a contact operation (docs/PROTOCOL.md §1.5); never answered as such. */
  contact(op: ContactOp, target: string, note?: string): void {
    const secret = this.#o.ext?.secret;
    if (secret === undefined) return;
    const msg: ClientMessage = { type: "contact", username: this.#o.username, secret, op, target };
    if (note !== undefined && note !== "") msg.note = note;
    this.#sendMessage(msg);
  }

  /** Asks the coordinator to introduce us to `target`. */
  connect(target: string): void {
    this.#sendMessage({ type: "connect", username: this.#o.username, target });
  }

  /**
   * Users still missing from the list a while after a login again are offline: reported now.
   * Everyone logs in again within a heartbeat or two of the coordinator's return.
   */
  #releaseHeldLater(): void {
    this.#clock.clearTimeout(this.#heldTimer);
    this.#heldTimer = this.#clock.setTimeout(() => {
      const gone = [...this.#held.keys()];
      this.#held.clear();
      for (const user of gone) this.#o.onOffline(user);
    }, 2.5 * this.#o.keepaliveMs);
  }

  /**
   * The first login: each coordinator in turn (`server`, then `fallbacks`) until one answers;
   * rejects with the last one's {@linkcode LoginError}, or at once on a refusal.
   */
  async firstLogin(): Promise<{ observed: Endpoint; list: ListEntry[] }> {
    for (let tried = 1;; tried++) {
      try {
        return await this.login();
      } catch (err) {
        const unanswered = err instanceof LoginError && err.unanswered;
        if (!unanswered || tried >= this.#servers.length) throw err;
        this.#nextServer();
      }
    }
  }

  /** Moves to the next coordinator of the community, if there is another. */
  #nextServer(): void {
    if (this.#servers.length < 2) return;
    this.#serverIndex = (this.#serverIndex + 1) % this.#servers.length;
    Object.assign(this.#o.server, this.#servers[this.#serverIndex]);
    this.#o.onError?.(`trying coordinator ${formatEndpoint(this.#o.server)}`);
  }

  /** Sends `logout` and stops heartbeats (and a resync under way). */
  logout(): void {
    this.#stop();
    this.#sendMessage({
      type: "logout",
      username: this.#o.username,
      endpoint: this.#o.claimed,
      // Proof that the logout is ours: a forged source address is not (docs/PROTOCOL.md §1.3).
      secret: this.#o.ext?.secret,
    });
  }

  /**
   * The coordinator is shutting down: it is lost until a login succeeds again, and direct chats go
   * on meanwhile. Most often it is restarting: we try to log in again at once (after a random part
   * of the retry interval, so that its clients do not all come in the same millisecond), and the
   * login's retries find it back within a retry interval, where the next heartbeat tick (up to
   * `keepaliveMs` away) would leave us out of everyone's list. At most once per heartbeat interval:
   * a forged `Bye` must not make us fetch the whole list over and over.
   */
  #onBye(): void {
    // A login under way has its own retries, and its failure its own handling (`firstLogin`).
    if (this.#lost || this.#closed || this.#loggingIn) return;
    this.#lost = true;
    this.#o.onCoordinator?.("lost");
    const now = this.#clock.now();
    if (now - this.#byeAt < this.#o.keepaliveMs) return; // the heartbeat ticks try meanwhile
    this.#byeAt = now;
    const retryMs = this.#o.retryMs ?? 1000;
    this.#clock.clearTimeout(this.#byeTimer);
    this.#byeTimer = this.#clock.setTimeout(() => this.#loginAgain(), Math.random() * retryMs);
  }

  /** Stops everything that would speak to the coordinator or report users: heartbeats, the
   * version watch, a held list's timer, a resync, a login under way. */
  #stop(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#heldTimer);
    this.#clock.clearTimeout(this.#byeTimer);
    this.#abortLogin?.();
    this.#abortFetch?.abort();
    this.#clock.clearInterval(this.#heartbeat);
    this.#watch.close();
    this.#resync?.abort();
    this.#waiter = undefined;
  }

  #sendMessage(msg: ClientMessage): void {
    this.#o.send(encoder.encode(encodeClientMessage(msg)), this.#o.server);
  }

  #startHeartbeat(): void {
    this.#clock.clearInterval(this.#heartbeat);
    this.#lastHeard = this.#clock.now();
    this.#heartbeat = this.#clock.setInterval(() => {
      if (!this.#lost && this.#clock.now() - this.#lastHeard > 2.5 * this.#o.keepaliveMs) {
        this.#lost = true;
        this.#o.onCoordinator?.("lost");
      }
      // While it is lost, keep trying to log in; it may have restarted and forgotten us.
      if (this.#lost) this.#loginAgain();
      this.#sendMessage({
        type: "heartbeat",
        username: this.#o.username,
        secret: this.#o.ext?.secret,
      });
    }, this.#o.keepaliveMs);
  }

  #loginAgain(): void {
    // One login at a time: a second would take the first one's `Accept`.
    if (this.#relogin || this.#closed || this.#loggingIn) return;
    this.#relogin = this.login().then(
      () => {},
      (err) => {
        if (this.#closed) return; // we stopped it
        // While the coordinator is lost, silence is what "lost" already said; a refusal is
        // news, once.
        const unanswered = err instanceof LoginError && err.unanswered;
        // Another coordinator of the community may answer: the next heartbeat tries it.
        if (this.#lost && unanswered) this.#nextServer();
        if ((this.#lost && unanswered) || err.message === this.#reloginError) return;
        this.#reloginError = err.message;
        this.#o.onError?.(`cannot log in again: ${err.message}`);
      },
    ).finally(() => this.#relogin = undefined);
  }

  /** Sends `login` until `Accept` (resolves with the TCP port) or `Reject`. */
  #requestLogin(): Promise<number> {
    const retryMs = this.#o.retryMs ?? 1000;
    const attempts = this.#o.attempts ?? 5;
    let login: Extract<ClientMessage, { type: "login" }> = {
      type: "login",
      username: this.#o.username,
      endpoint: this.#o.claimed,
      ext: this.#o.ext,
    };
    // A few challenges per login at most: a forged flood of them costs us no more X25519s.
    let challenges = 0;
    return new Promise((resolve, reject) => {
      let tries = 0;
      let timer: TimerId | undefined;
      const finish = () => {
        this.#clock.clearTimeout(timer);
        this.#waiter = undefined;
        this.#abortLogin = undefined;
      };
      this.#abortLogin = () => {
        finish();
        reject(new LoginError("Cannot log in: the client is shutting down"));
      };
      const attempt = () => {
        if (this.#closed) {
          finish();
          return reject(new LoginError("Cannot log in: the client is shutting down"));
        }
        if (tries++ >= attempts) {
          finish();
          return reject(
            new LoginError(
              `Cannot log in: no answer from ${
                formatEndpoint(this.#o.server)
              } after ${attempts} tries`,
              { unanswered: true },
            ),
          );
        }
        this.#sendMessage(login);
        timer = this.#clock.setTimeout(attempt, retryMs);
      };
      this.#waiter = (msg) => {
        if (msg.type === "accept") {
          finish();
          resolve(msg.tcpPort);
          return true;
        }
        if (msg.type === "challenge" && challenges < 3) {
          challenges++;
          const proof = proveKey(this.#o, msg);
          if (proof === undefined) return false;
          // Sent now and, if it is lost, again by the retries (a nonce may be answered until used).
          login = { ...login, ext: { ...this.#o.ext!, proof: { nonce: msg.nonce, mac: proof } } };
          this.#clock.clearTimeout(timer);
          this.#sendMessage(login);
          timer = this.#clock.setTimeout(attempt, retryMs);
          return true;
        }
        if (msg.type === "reject" && msg.reason === NAME_OWNED_REASON) {
          finish();
          reject(
            new LoginError(
              `Cannot log in: the name "${this.#o.username}" belongs to another key at this ` +
                `coordinator (someone else registered it, or you registered it with another ` +
                `identity, on another machine or with another --config); choose another name`,
            ),
          );
          return true;
        }
        if (msg.type === "reject" || msg.type === "error") {
          finish();
          reject(new LoginError(`Cannot log in: the coordinator says ${msg.reason}`));
          return true;
        }
        return false;
      };
      attempt();
    });
  }
}

/**
 * Our proof of key for a `Challenge` (base64url), bound to our name and secret; `undefined` when
 * we have no key to prove or the challenge's key is unusable.
 */
function proveKey(
  options: PresenceOptions,
  challenge: { serverKey: string; nonce: string },
): string | undefined {
  const publicKey = decodeBase64url(challenge.serverKey);
  const nonce = decodeBase64url(challenge.nonce);
  if (!options.privateKey || !options.ext || !publicKey || !nonce) return undefined;
  try {
    return encodeBase64url(keyProof({
      privateKey: options.privateKey,
      publicKey,
      purpose: "login",
      nonce,
      name: options.username,
      binding: options.ext.secret,
    }));
  } catch (err) {
    if (err instanceof KeyProofError) return undefined;
    throw err;
  }
}

/** Longest online list we read (bytes); beyond that the coordinator is misbehaving. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;

/** Options for {@linkcode fetchList}. */
export interface FetchListOptions {
  /** Give up when the connection is idle this long; default 5 s. */
  timeoutMs?: number;
  /** Gives up (rejecting with {@linkcode LoginError}) when aborted. */
  signal?: AbortSignal;
  /** Written at once: who is fetching ({@linkcode encodeListRequest}); none for a seed fetch. */
  request?: string;
}

/**
 * Fetches the online list over TCP (seed step 3): everything the list service writes before it
 * closes the connection, which is the list and, from a coordinator that numbers presence
 * changes, its version after it. Rejects with {@linkcode LoginError}.
 *
 * @example
 * ```ts
 * const { entries, version } = await fetchList({ host: "127.0.0.1", port: 7000 });
 * ```
 */
export function fetchList(at: Endpoint, options: FetchListOptions = {}): Promise<OnlineList> {
  return new Promise((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      return reject(new LoginError("Cannot fetch the online list: the client is shutting down"));
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const socket = net.connect({ host: at.host, port: at.port });
    if (options.request !== undefined) socket.write(options.request);
    const done = () => {
      socket.destroy();
      signal?.removeEventListener("abort", aborted);
    };
    const fail = (why: string) => {
      done();
      reject(new LoginError(`Cannot fetch the online list from ${formatEndpoint(at)}: ${why}`));
    };
    const aborted = () => fail("the client is shutting down");
    signal?.addEventListener("abort", aborted);
    socket.setTimeout(options.timeoutMs ?? 5000, () => fail("timed out"));
    socket.on("error", (err: Error) => fail(err.message));
    socket.on("data", (chunk: Uint8Array) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_LIST_BYTES) fail("the list is too long");
    });
    // The list service closes the connection once the list (and its version) is written: only
    // then is the version line known to be whole.
    socket.on("end", () => {
      done();
      try {
        resolve(parseOnlineList(new TextDecoder().decode(Buffer.concat(chunks))));
      } catch (err) {
        if (!(err instanceof SeedProtocolError)) throw err;
        reject(
          new LoginError(`Cannot fetch the online list from ${formatEndpoint(at)}: ${err.message}`),
        );
      }
    });
  });
}
