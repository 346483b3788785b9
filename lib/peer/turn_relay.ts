/**
 * A client's use of its coordinator's TURN server: the credentials that come with introductions
 * (`Turn`), one allocation ({@linkcode TurnClient}) made with them from the main socket, a
 * permission for each introduced peer's public address, and our relayed address offered to that
 * peer (`Link.offerTurn`), which probes it: a `turn` path, preferred to the coordinator's relay
 * (docs/NAT.md). What the peers send through it stays Noise-encrypted end to end; the TURN server
 * sees ciphertext, like the coordinator's relay.
 *
 * Datagrams from the TURN server's address on the main socket are the allocation's
 * ({@linkcode TurnRelay.fromServer}); what the allocation relays to us from a peer comes out as
 * datagrams of a virtual socket, {@linkcode TURN_SOCKET}, for the links and their path finders;
 * sends to that socket go out through the allocation ({@linkcode TurnRelay.sendTo}).
 *
 * @example
 * ```ts
 * const turn = new TurnRelay({ clock, send, link: (name) => links.get(name), onData, onEvent });
 * turn.introduced("bob", "203.0.113.9"); // with each Introduce
 * turn.credentials({ type: "turn", uri, username, password }); // with each Turn
 * ```
 * @module
 */
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import type { Clock, TimerId } from "../clock.ts";
import { type Endpoint, formatEndpoint, sameEndpoint } from "../protocol/endpoint.ts";
import type { ServerMessage } from "../protocol/seed.ts";
import { parseTurnUri } from "../protocol/turn_credentials.ts";
import { pathKindOf, type PeerEvent } from "./events.ts";
import type { Link } from "./link.ts";
import { TurnClient } from "./turn_client.ts";

/** The id of the virtual socket that stands for our TURN allocation in the path finders. */
export const TURN_SOCKET = 0x7fff_fff0;
/** After a failed allocation, the next one is tried at most this often. */
const RETRY_MS = 60_000;

/** Options of {@linkcode TurnRelay}. */
export interface TurnRelayOptions {
  clock: Clock;
  /** Sends from the main socket. */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Our link to `name`, if any. */
  link: (name: string) => Link | undefined;
  /** A datagram a peer sent us through the allocation. */
  onData: (data: Uint8Array, from: Endpoint) => void;
  /** The `turn` events: the allocation ready, or failed (then the coordinator's relay serves). */
  onEvent: (event: Extract<PeerEvent, { event: "turn" }>) => void;
}

/** Our allocation on the coordinator's TURN server, and the peers it serves. */
export class TurnRelay {
  readonly #o: TurnRelayOptions;
  #client: TurnClient | undefined;
  #server: Endpoint | undefined;
  #uri: string | undefined;
  #lastAttempt = -Infinity;
  /** Introduced peers' public addresses, by name. */
  readonly #peers = new Map<string, string>();
  #closed = false;
  /** Asks for fresh credentials before these expire. */
  #renewal: TimerId | undefined;

  constructor(options: TurnRelayOptions) {
    this.#o = options;
  }

  /** Our relayed address, once allocated. */
  get relayed(): Endpoint | undefined {
    return this.#client?.relayed;
  }

  /** `name` was introduced at public address `host`: let it reach our allocation, offer it. */
  introduced(name: string, host: string): void {
    this.#peers.set(name, host);
    const client = this.#client;
    if (!client) return;
    if (client.permitted(host)) this.#offer(name);
    else client.permit(host);
  }

  /** `name` went offline: its address keeps no permission (unless another peer shares it). */
  forget(name: string): void {
    const host = this.#peers.get(name);
    if (host === undefined) return;
    this.#peers.delete(name);
    if (![...this.#peers.values()].includes(host)) this.#client?.forget(host);
  }

  /** Credentials from a `Turn` message: the first ones start the allocation. */
  credentials(msg: Extract<ServerMessage, { type: "turn" }>): void {
    if (this.#closed) return;
    const credentials = { username: msg.username, password: msg.password };
    this.#renewBefore(Number(msg.username.slice(0, msg.username.indexOf(":"))) * 1000);
    if (this.#client && msg.uri === this.#uri) {
      this.#client.credentials = credentials;
      const state = this.#client.state.kind;
      if (state !== "failed" || this.#o.clock.now() - this.#lastAttempt < RETRY_MS) return;
      this.#lastAttempt = this.#o.clock.now();
      this.#client.allocate();
      return;
    }
    this.#client?.close();
    this.#client = undefined;
    this.#uri = msg.uri;
    this.#lastAttempt = this.#o.clock.now();
    const { host, port } = parseTurnUri(msg.uri);
    const resolved = isIP(host) ? Promise.resolve(host) : lookup(host).then((r) => r.address);
    resolved.then((address) => {
      if (this.#closed || this.#uri !== msg.uri) return;
      this.#start({ host: address, port }, credentials);
    }, (err) => {
      this.#o.onEvent({
        event: "turn",
        state: "failed",
        server: msg.uri,
        reason: `cannot resolve ${host}: ${(err as Error).message}; using the coordinator's relay`,
      });
    });
  }

  /** Hands a datagram from `from` on the main socket to the allocation if it is the server's. */
  fromServer(data: Uint8Array, from: Endpoint): boolean {
    if (!this.#client || !this.#server || !sameEndpoint(from, this.#server)) return false;
    this.#client.receive(data);
    return true;
  }

  /** Sends `data` to `to` through the allocation (nothing without one, or a permission). */
  sendTo(data: Uint8Array, to: Endpoint): void {
    this.#client?.sendTo(to, data);
  }

  /** Releases the allocation. */
  close(): void {
    this.#closed = true;
    this.#o.clock.clearTimeout(this.#renewal);
    this.#client?.close();
  }

  #start(server: Endpoint, credentials: { username: string; password: string }): void {
    this.#server = server;
    const uri = this.#uri!;
    let was = "idle";
    const client = this.#client = new TurnClient({
      clock: this.#o.clock,
      credentials,
      send: (bytes) => this.#o.send(bytes, server),
      onData: (from, data) => this.#o.onData(data, from),
      onPermitted: (host) => {
        for (const [name, h] of this.#peers) if (h === host) this.#offer(name);
      },
      onState: (state) => {
        const before = was;
        was = state.kind;
        // A refresh reports `allocated` again: announced once per allocation.
        if (state.kind === "allocated" && before !== "allocated") {
          this.#o.onEvent({
            event: "turn",
            state: "ready",
            server: uri,
            relayed: formatEndpoint(state.relayed),
          });
          for (const host of new Set(this.#peers.values())) client.permit(host);
        } else if (state.kind === "failed") {
          this.#o.onEvent({
            event: "turn",
            state: "failed",
            server: uri,
            reason: `${state.reason}; using the coordinator's relay`,
          });
        }
      },
    });
    client.allocate();
  }

  /**
   * Credentials come only with introductions, and a pair on a `turn` path asks for none: at four
   * fifths of their lifetime, a new introduction with one peer we reach that way brings fresh ones
   * (to both sides), before the allocation's next refresh would be refused.
   */
  #renewBefore(expiresAtMs: number): void {
    this.#o.clock.clearTimeout(this.#renewal);
    const left = expiresAtMs - this.#o.clock.now();
    if (!(left > 0)) return;
    this.#renewal = this.#o.clock.setTimeout(() => {
      for (const name of this.#peers.keys()) {
        const link = this.#o.link(name);
        if (link && pathKindOf(link.path) === "turn") return link.requestIntroduction();
      }
    }, left * 0.8);
  }

  #offer(name: string): void {
    const relayed = this.#client?.relayed;
    if (relayed) this.#o.link(name)?.offerTurn(relayed);
  }
}
