/**
 * The client's side of the coordinator protocol: log in (UDP `login` → `Accept`, then the TCP
 * list), keep the online list current from the `login`/`logout` broadcasts, send heartbeats,
 * log in again when the coordinator has forgotten us, and log out.
 *
 * It does not own the UDP socket: the peer shares one socket between the coordinator and the
 * other peers (NAT traversal relies on that), and passes the coordinator's datagrams here.
 *
 * @example
 * ```ts
 * const presence = new Presence({ send, server, username: "alice", claimed, keepaliveMs: 10_000,
 *   onOnline: (name, ep) => {}, onOffline: (name) => {} });
 * const { observed } = await presence.login();
 * ```
 * @module
 */
import net from "node:net";
import { type Endpoint, formatEndpoint, sameEndpoint } from "./protocol/endpoint.ts";
import {
  type ClientMessage,
  encodeClientMessage,
  type ListEntry,
  type LoginExtension,
  type NatKind,
  parseList,
  SeedProtocolError,
  type ServerMessage,
} from "./protocol/seed.ts";

/** Options for {@linkcode Presence}. */
export interface PresenceOptions {
  /** Sends a datagram from the shared socket. */
  send: (data: Uint8Array, to: Endpoint) => void;
  server: Endpoint;
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
  /** Messages that are not about presence (introductions…). */
  onOther?: (msg: ServerMessage) => void;
  /**
   * The coordinator stopped answering (`lost`: nothing heard for 2.5 heartbeat intervals), or
   * answers again and we are logged in once more (`back`). Chats on direct paths go on meanwhile.
   */
  onCoordinator?: (state: "lost" | "back") => void;
  /** How long to wait for `Accept` before sending `login` again; default 1 s. */
  retryMs?: number;
  /** How many times to send `login` before giving up; default 5. */
  attempts?: number;
}

/** Thrown by {@linkcode Presence.login} when the coordinator refuses or cannot be reached. */
export class LoginError extends Error {
  override name = "LoginError";
}

const encoder = new TextEncoder();

/** Presence tracking against one coordinator. */
export class Presence {
  readonly #o: PresenceOptions;
  readonly #users = new Map<string, Endpoint>();
  #observed: Endpoint | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #waiter: ((msg: ServerMessage) => boolean) | undefined;
  #relogin: Promise<void> | undefined;
  #closed = false;
  #lastHeard = 0;
  #lost = false;
  /** Names a broadcast changed while a list fetch was under way. */
  #changes: Set<string> | undefined;

  constructor(options: PresenceOptions) {
    this.#o = options;
  }

  /** Online users other than us, by name. */
  get users(): ReadonlyMap<string, Endpoint> {
    return this.#users;
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
    const tcpPort = await this.#requestLogin();
    // Broadcasts may overtake the list (UDP is faster than the TCP fetch): what they say while
    // the list is on its way is newer than the list, so the list must not undo it.
    const changedDuringFetch = new Set<string>();
    this.#changes = changedDuringFetch;
    let all: ListEntry[];
    try {
      all = await fetchList({ host: this.#o.server.host, port: tcpPort });
    } finally {
      this.#changes = undefined;
    }
    const me = all.find((e) => e.username === this.#o.username);
    // The list normally holds us (we are online once it is fetched); fall back to our claim.
    this.#observed = me?.endpoint ?? this.#o.claimed;
    const list = all.filter((e) => e.username !== this.#o.username);
    const fresh = new Map(list.map((e) => [e.username, e.endpoint]));
    for (const name of [...this.#users.keys()]) {
      if (!fresh.has(name) && !changedDuringFetch.has(name)) {
        this.#users.delete(name);
        this.#o.onOffline(name);
      }
    }
    for (const [name, ep] of fresh) {
      if (!changedDuringFetch.has(name)) this.#setOnline(name, ep);
    }
    this.#startHeartbeat();
    if (this.#lost) {
      this.#lost = false;
      this.#o.onCoordinator?.("back");
    }
    return { observed: this.#observed, list };
  }

  /** Handles a datagram from the coordinator. */
  handle(msg: ServerMessage): void {
    this.#lastHeard = Date.now();
    if (this.#waiter?.(msg)) return;
    switch (msg.type) {
      case "login":
        if (msg.username === this.#o.username) return;
        this.#changes?.add(msg.username);
        this.#setOnline(msg.username, msg.endpoint);
        return;
      case "logout":
        this.#changes?.add(msg.username);
        if (this.#users.delete(msg.username)) this.#o.onOffline(msg.username);
        return;
      case "alive":
        this.#observed = msg.endpoint;
        return;
      case "expired":
        // The coordinator forgot us (it restarted, or we were silent too long): log in again.
        if (msg.username === this.#o.username) this.#loginAgain();
        return;
      case "error":
        this.#o.onError?.(`coordinator: ${msg.reason}`);
        return;
      case "bye":
        // The coordinator is shutting down: it is lost until a login succeeds again (each
        // heartbeat tick tries), and direct chats go on meanwhile.
        if (!this.#lost) {
          this.#lost = true;
          this.#o.onCoordinator?.("lost");
        }
        return;
      case "accept":
      case "reject":
        return; // a late answer to a login that has finished: nothing to do
      default:
        this.#o.onOther?.(msg);
    }
  }

  /** Tells the coordinator what kind of NAT we are behind, for later introductions. */
  reportNat(nat: NatKind): void {
    this.#sendMessage({ type: "nat", username: this.#o.username, nat });
  }

  /** Asks the coordinator to introduce us to `target`. */
  connect(target: string): void {
    this.#sendMessage({ type: "connect", username: this.#o.username, target });
  }

  /** Sends `logout` and stops heartbeats. */
  logout(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#waiter = undefined;
    this.#sendMessage({ type: "logout", username: this.#o.username, endpoint: this.#o.claimed });
  }

  #setOnline(name: string, endpoint: Endpoint): void {
    const known = this.#users.get(name);
    if (known && sameEndpoint(known, endpoint)) return;
    this.#users.set(name, endpoint);
    this.#o.onOnline(name, endpoint);
  }

  #sendMessage(msg: ClientMessage): void {
    this.#o.send(encoder.encode(encodeClientMessage(msg)), this.#o.server);
  }

  #startHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#lastHeard = Date.now();
    this.#heartbeat = setInterval(() => {
      if (!this.#lost && Date.now() - this.#lastHeard > 2.5 * this.#o.keepaliveMs) {
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
    if (this.#relogin || this.#closed) return;
    this.#relogin = this.login().then(
      () => {},
      (err) => this.#o.onError?.(`cannot log in again: ${err.message}`),
    ).finally(() => this.#relogin = undefined);
  }

  /** Sends `login` until `Accept` (resolves with the TCP port) or `Reject`. */
  #requestLogin(): Promise<number> {
    const retryMs = this.#o.retryMs ?? 1000;
    const attempts = this.#o.attempts ?? 5;
    const login: ClientMessage = {
      type: "login",
      username: this.#o.username,
      endpoint: this.#o.claimed,
      ext: this.#o.ext,
    };
    return new Promise((resolve, reject) => {
      let tries = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        clearTimeout(timer);
        this.#waiter = undefined;
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
            ),
          );
        }
        this.#sendMessage(login);
        timer = setTimeout(attempt, retryMs);
      };
      this.#waiter = (msg) => {
        if (msg.type === "accept") {
          finish();
          resolve(msg.tcpPort);
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

/** Longest online list we read (bytes); beyond that the coordinator is misbehaving. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;

/** Fetches the online list over TCP (seed step 3). Rejects with {@linkcode LoginError}. */
export function fetchList(at: Endpoint, timeoutMs = 5000): Promise<ListEntry[]> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const socket = net.connect({ host: at.host, port: at.port });
    const fail = (why: string) => {
      socket.destroy();
      reject(new LoginError(`Cannot fetch the online list from ${formatEndpoint(at)}: ${why}`));
    };
    socket.setTimeout(timeoutMs, () => fail("timed out"));
    socket.on("error", (err: Error) => fail(err.message));
    socket.on("data", (chunk: Uint8Array) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_LIST_BYTES) return fail("the list is too long");
      const text = new TextDecoder().decode(concat(chunks));
      if (!/(^|;)end\s*$/.test(text)) return; // not complete yet
      socket.destroy();
      try {
        resolve(parseList(text));
      } catch (err) {
        if (!(err instanceof SeedProtocolError)) throw err;
        reject(new LoginError(err.message));
      }
    });
    socket.on("end", () => fail("the connection closed before the list ended"));
  });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
