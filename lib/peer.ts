/**
 * A chat client (`p2p chat`): one UDP socket shared by the coordinator protocol
 * ({@linkcode Presence}) and the direct peer-to-peer frames, and the front-end-facing API:
 * {@linkcode Peer.send}, {@linkcode Peer.who}, events through an {@linkcode EventSink}.
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
import type { EventSink, OnlineUser } from "./events.ts";
import { type Endpoint, formatEndpoint } from "./protocol/endpoint.ts";
import { decodeFrame, encodeFrame, FrameError, isFrame } from "./protocol/frame.ts";
import { decodeText, parseServerMessage, SeedProtocolError } from "./protocol/seed.ts";
import { localAddressFor, UdpSocket } from "./net/udp.ts";
import { Presence } from "./presence.ts";

/** Options for {@linkcode Peer.start}. */
export interface PeerOptions {
  server: Endpoint;
  username: string;
  onEvent: EventSink;
  /** Local address to bind; default all IPv4 interfaces, any port. */
  bind?: Endpoint;
  /** Heartbeat interval; default 10 s (the coordinator drops users silent for 45 s). */
  keepaliveMs?: number;
  /** Time between retransmissions of an unacknowledged message; default 500 ms. */
  retryMs?: number;
  /** Transmissions of a message before it is reported undelivered; default 6. */
  attempts?: number;
}

interface Outgoing {
  to: string;
  frame: Uint8Array;
  tries: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Longest message text, in UTF-8 bytes: one frame must fit a safe datagram (1200 bytes). */
export const MAX_TEXT_BYTES = 1000;

/** How many received message ids are remembered to suppress duplicates, per sender. */
const SEEN_LIMIT = 1024;

/** A logged-in chat client. */
export class Peer {
  readonly username: string;
  readonly #socket: UdpSocket;
  readonly #presence: Presence;
  readonly #server: Endpoint;
  readonly #emit: EventSink;
  readonly #retryMs: number;
  readonly #attempts: number;
  readonly #outgoing = new Map<number, Outgoing>();
  readonly #seen = new Map<string, Set<number>>();
  readonly #drainWaiters: (() => void)[] = [];
  #nextId = 1;
  #ready = false;
  #closed = false;

  private constructor(socket: UdpSocket, claimed: Endpoint, options: PeerOptions) {
    this.username = options.username;
    this.#socket = socket;
    this.#presence = new Presence({
      send: (data, to) => socket.send(data, to),
      server: options.server,
      username: options.username,
      claimed,
      keepaliveMs: options.keepaliveMs ?? 10_000,
      // The first list is reported after `ready`, by start().
      onOnline: (user, ep) => {
        if (this.#ready) this.#emit({ event: "online", user, endpoint: formatEndpoint(ep) });
      },
      onOffline: (user) => {
        // A user who comes back is a new process that numbers its messages from 1 again.
        this.#seen.delete(user);
        this.#emit({ event: "offline", user });
      },
      onError: (message) => this.#emit({ event: "error", message }),
    });
    this.#server = options.server;
    this.#emit = options.onEvent;
    this.#retryMs = options.retryMs ?? 500;
    this.#attempts = options.attempts ?? 6;
  }

  /** Binds the socket, logs in, and emits `ready` and an `online` event per user already there. */
  static async start(options: PeerOptions): Promise<Peer> {
    const bindHost = options.bind?.host ?? (options.server.host.includes(":") ? "::" : "0.0.0.0");
    const socket = await UdpSocket.bind({ host: bindHost, port: options.bind?.port ?? 0 });
    try {
      const unspecified = bindHost === "0.0.0.0" || bindHost === "::";
      const claimed = {
        host: unspecified ? localAddressFor(options.server) : bindHost,
        port: socket.local.port,
      };
      const peer = new Peer(socket, claimed, options);
      socket.onMessage((data, from) => peer.#onDatagram(data, from));
      const { observed } = await peer.#presence.login();
      peer.#ready = true;
      peer.#emit({
        event: "ready",
        user: options.username,
        server: formatEndpoint(options.server),
        endpoint: formatEndpoint(observed),
      });
      for (const [user, ep] of peer.#presence.users) {
        peer.#emit({ event: "online", user, endpoint: formatEndpoint(ep) });
      }
      return peer;
    } catch (err) {
      await socket.close();
      throw err;
    }
  }

  /** The users online now, other than us. */
  who(): OnlineUser[] {
    return [...this.#presence.users].map(([user, ep]) => ({
      user,
      endpoint: formatEndpoint(ep),
    }));
  }

  /**
   * Sends a chat message directly to `to`. Returns its id; `delivered` or `undelivered` follows.
   * Emits `error` and returns `undefined` when `to` is not online.
   */
  send(to: string, text: string): number | undefined {
    if (!this.#presence.users.has(to)) {
      this.#emit({ event: "error", message: `Cannot send to ${to}: ${to} is not online` });
      return undefined;
    }
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > MAX_TEXT_BYTES) {
      this.#emit({
        event: "error",
        message:
          `Cannot send to ${to}: the message is ${bytes} bytes, the limit is ${MAX_TEXT_BYTES}`,
      });
      return undefined;
    }
    const id = this.#nextId++;
    const frame = encodeFrame({ type: "msg", from: this.username, id, text });
    const out: Outgoing = { to, frame, tries: 0 };
    this.#outgoing.set(id, out);
    this.#emit({ event: "sent", to, id });
    this.#transmit(id, out);
    return id;
  }

  /** Resolves when every message sent so far is delivered or reported undelivered. */
  drain(): Promise<void> {
    if (this.#outgoing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #settled(id: number): void {
    this.#outgoing.delete(id);
    if (this.#outgoing.size === 0) {
      for (const resolve of this.#drainWaiters.splice(0)) {
        resolve();
      }
    }
  }

  /** Logs out and closes the socket. Messages still unacknowledged are reported undelivered. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#presence.logout();
    for (const [id, out] of this.#outgoing) {
      clearTimeout(out.timer);
      this.#emit({ event: "undelivered", to: out.to, id, reason: "the client closed" });
    }
    this.#outgoing.clear();
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    await this.#socket.close();
  }

  #transmit(id: number, out: Outgoing): void {
    const endpoint = this.#presence.users.get(out.to);
    if (out.tries >= this.#attempts || !endpoint) {
      this.#settled(id);
      const reason = endpoint ? `no acknowledgement after ${out.tries} tries` : `${out.to} left`;
      this.#emit({ event: "undelivered", to: out.to, id, reason });
      return;
    }
    out.tries++;
    this.#socket.send(out.frame, endpoint);
    out.timer = setTimeout(() => this.#transmit(id, out), this.#retryMs);
  }

  #onDatagram(data: Uint8Array, from: Endpoint): void {
    if (isFrame(data)) return this.#onFrame(data, from);
    if (from.host !== this.#server.host || from.port !== this.#server.port) return;
    try {
      this.#presence.handle(parseServerMessage(decodeText(data)));
    } catch (err) {
      if (!(err instanceof SeedProtocolError)) throw err;
      this.#emit({
        event: "error",
        message: `Ignored a message from the coordinator: ${err.message}`,
      });
    }
  }

  #onFrame(data: Uint8Array, from: Endpoint): void {
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      if (err instanceof FrameError) return; // garbage from the network is not the user's problem
      throw err;
    }
    if (!this.#presence.users.has(frame.from)) return; // only online users may talk to us
    if (frame.type === "ack") {
      const out = this.#outgoing.get(frame.id);
      if (out && out.to === frame.from) {
        clearTimeout(out.timer);
        this.#settled(frame.id);
        this.#emit({ event: "delivered", to: out.to, id: frame.id });
      }
      return;
    }
    // Acknowledge every copy: the sender retransmits until an ack gets through.
    this.#socket.send(encodeFrame({ type: "ack", from: this.username, id: frame.id }), from);
    let seen = this.#seen.get(frame.from);
    if (!seen) this.#seen.set(frame.from, seen = new Set());
    if (seen.has(frame.id)) return;
    seen.add(frame.id);
    if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value!);
    this.#emit({ event: "message", from: frame.from, text: frame.text, id: frame.id });
  }
}
