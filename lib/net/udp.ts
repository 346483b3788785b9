/**
 * A UDP socket as the rest of the code needs it: bytes in, bytes out, endpoints as
 * {@linkcode Endpoint}. Both wings use it, on one of two backends chosen at bind time:
 *
 * - `"dgram"` (the default; the chat client): `node:dgram`, the only one that can set the unicast
 *   TTL that NAT traversal uses to open a mapping without reaching the other side (`send`'s
 *   `ttl`). It hands each datagram over in a buffer of its own: Deno's allocates 64 KiB per
 *   datagram, whatever its size, which a file transfer's datagrams keep in memory until V8's next
 *   collection (docs/FILES.md "RSS"), so this backend cuts that buffer to
 *   {@linkcode DGRAM_RECEIVE_BYTES}.
 * - `"deno"` (the coordinator): `Deno.listenDatagram`, which sends in about half the time and
 *   receives into one reused buffer, where `node:dgram` allocates one per datagram — under a
 *   10,000-user login storm that costs more memory than the users do. So the data a message
 *   handler gets is lent: it is overwritten by the next datagram, and a handler must copy what it
 *   keeps. No TTL. Needs `--unstable-net`, which deno.json sets. On Linux (with `-A`) it also
 *   sizes the kernel's receive buffer and sends with `sendto(2)` (lib/net/linux_udp.ts): such
 *   sends are out before `send` returns, never counted in flight.
 *
 * Either way sends never throw (failures go to `onError`: UDP is lossy anyway), are counted until
 * they are out ({@linkcode UdpSocket.inFlight}, {@linkcode UdpSocket.whenInFlightAtMost}: sends
 * queue without limit, so a heavy sender waits for the queue to run low), and are waited for by
 * {@linkcode UdpSocket.close}.
 *
 * @example
 * ```ts
 * const sock = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
 * sock.onMessage((data, from) => console.log(data.length, from));
 * sock.send(new TextEncoder().encode("hi"), { host: "127.0.0.1", port: 7000 });
 * await sock.close();
 * ```
 * @module
 */
import dgram from "node:dgram";
import dns from "node:dns";
import { isIP, isIPv6 } from "node:net";
import type { Endpoint } from "../protocol/endpoint.ts";
import { addressScope } from "./address_scope.ts";
import { LinuxUdp } from "./linux_udp.ts";

/** The TTL of ordinary datagrams (Linux's default). */
const DEFAULT_TTL = 64;
/** How long {@linkcode UdpSocket.close} waits for queued sends by default, in ms. */
const CLOSE_WAIT_MS = 1000;

/**
 * The longest datagram the `"dgram"` backend receives whole: p2p's largest, the path-MTU search's
 * top size (lib/peer/path_mtu.ts). A longer one arrives cut short, and so fails its checks
 * (Linux, macOS), or is dropped with a receive error (Windows).
 */
export const DGRAM_RECEIVE_BYTES = 16_384;

/**
 * Called for each datagram received. With the `"deno"` backend, `data` is valid only until the
 * handler returns.
 */
export type MessageHandler = (data: Uint8Array, from: Endpoint) => void;

/** Called when a send or the socket fails; `during` says which. */
export type ErrorHandler = (error: Error, during: "send" | "receive") => void;

/** Which implementation a socket runs on; see the module documentation. */
export type UdpBackend = "dgram" | "deno";

/** Options for {@linkcode UdpSocket.bind}. */
export interface BindOptions {
  /** Local address; default `0.0.0.0`. An IPv6 address makes an IPv6 socket. */
  host?: string;
  /** Local port; default 0 (any). */
  port?: number;
  /** Called when a send (no route…) or the socket fails; default: ignore (UDP is lossy). */
  onError?: ErrorHandler;
  /** Default `"dgram"`; `"deno"` for a server's hot path (no `ttl`). */
  backend?: UdpBackend;
  /**
   * `"deno"` backend on Linux: the kernel receive buffer to ask for, in bytes (the kernel grants
   * at most `net.core.rmem_max`, and doubles it); default the system's. See
   * {@linkcode UdpSocket.receiveBuffer}.
   */
  receiveBufferBytes?: number;
}

/**
 * Strips the IPv4-mapped prefix dual-stack sockets put on IPv4 peers (TCP ones included).
 *
 * @example
 * ```ts
 * normalizeHost("::ffff:192.0.2.1"); // "192.0.2.1"
 * ```
 */
export function normalizeHost(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

/** A bound UDP socket. */
export abstract class UdpSocket {
  #handler: MessageHandler = () => {};
  #inFlight = 0;
  /** Called once when no more than `#lowWater` sends are in flight. */
  #onLow: (() => void) | undefined;
  /** The timer of a {@linkcode whenInFlightAtMost} call made when the queue was already low. */
  #lowTimer: ReturnType<typeof setTimeout> | undefined;
  #lowWater = 0;
  /** Called once when no send is in flight (close waits for it). */
  #flushed: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  protected readonly onError: ErrorHandler;

  protected constructor(onError: ErrorHandler) {
    this.onError = onError;
  }

  /** Binds a socket; rejects with the system's error (e.g. address in use). */
  static bind(options: BindOptions = {}): Promise<UdpSocket> {
    const host = options.host ?? "0.0.0.0";
    const port = options.port ?? 0;
    const onError = options.onError ?? (() => {});
    if (options.backend === "deno") {
      try {
        return Promise.resolve(new DenoSocket(host, port, onError, options.receiveBufferBytes));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return DgramSocket.open(host, port, onError);
  }

  /** The local address and port the socket is bound to. */
  abstract get local(): Endpoint;

  /**
   * The kernel's receive buffer in bytes, where it could be read (the `"deno"` backend on Linux,
   * lib/net/linux_udp.ts); undefined elsewhere.
   */
  get receiveBuffer(): number | undefined {
    return undefined;
  }

  /**
   * Sends one datagram; with `ttl`, that datagram alone gets this IP TTL (NAT traversal primes a
   * mapping with a packet that must not reach the far side; `"dgram"` backend only). Never throws
   * for a failed send: failures go to `onError`. Sends after {@linkcode close} are ignored.
   */
  abstract send(data: Uint8Array, to: Endpoint, options?: { ttl?: number }): void;

  /** Sets the handler for incoming datagrams (one handler; a new one replaces the old). */
  onMessage(handler: MessageHandler): void {
    this.#handler = handler;
  }

  /** Datagrams handed to {@linkcode send} and not yet out (or failed). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Calls `fn` once, as soon as no more than `count` datagrams are in flight (soon after this call
   * if that is already so); it replaces an earlier call's `fn` still waiting, and is dropped at
   * {@linkcode close}. A sender that must not swamp memory or the event loop sends a slice, then
   * waits here for the queue to run low.
   */
  whenInFlightAtMost(count: number, fn: () => void): void {
    if (this.#closing) return;
    clearTimeout(this.#lowTimer);
    this.#lowTimer = undefined;
    if (this.#inFlight <= count) {
      this.#onLow = undefined;
      // A turn of the event loop of its own after a 0 ms timer (~2 ms), not a microtask nor
      // `setImmediate`: a sender whose sends all left at once (the `"deno"` backend's `sendto`)
      // must let datagrams and connections in between its slices, and Deno's runtime polls its
      // sockets only when it waits (for a timer), or once in 61 turns that it does not.
      this.#lowTimer = setTimeout(() => {
        this.#lowTimer = undefined;
        fn();
      }, 0);
      return;
    }
    this.#lowWater = count;
    this.#onLow = fn;
  }

  /**
   * Closes the socket once the datagrams already handed to {@linkcode send} are out (a `logout`
   * or `Bye` sent just before closing must not be lost), or after `waitMs` (default 1 s) at most;
   * further sends are ignored. Calling it again waits for the first call.
   */
  close(options: { waitMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.waitMs ?? CLOSE_WAIT_MS);
    return this.#closing;
  }

  async #close(waitMs: number): Promise<void> {
    this.#onLow = undefined;
    clearTimeout(this.#lowTimer);
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs); // never hang on a send that cannot complete
        this.#flushed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await this.release();
  }

  /** Whether {@linkcode close} has been called. */
  protected get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Hands a received datagram to the handler. */
  protected deliver(data: Uint8Array, from: Endpoint): void {
    this.#handler(data, from);
  }

  /** A send was handed to the system. */
  protected started(): void {
    this.#inFlight++;
  }

  /** A send is out, or failed. */
  protected finished(): void {
    const left = --this.#inFlight;
    if (this.#onLow !== undefined && left <= this.#lowWater) {
      const fn = this.#onLow;
      this.#onLow = undefined;
      fn();
    }
    if (left === 0) this.#flushed?.();
  }

  /** Closes the system's socket (every send is out by now, or given up on). */
  protected abstract release(): Promise<void>;
}

/**
 * `node:dgram`'s address lookup, without its detour for an IP address. `dns.lookup` answers one
 * on the next tick, so every send left only after the code that made it returned, and after every
 * datagram received in the same batch had been handled (measured: an answer to the first of three
 * datagrams left 12–18 ms late behind 5 ms handlers; with this, 0.2 ms). Names still go to DNS.
 */
function ipLookup(
  hostname: string,
  options: number | dns.LookupOneOptions,
  callback: (err: Error | null, address: string, family: number) => void,
): void {
  const family = isIP(hostname);
  if (family !== 0) callback(null, hostname, family);
  else dns.lookup(hostname, typeof options === "number" ? { family: options } : options, callback);
}

/** The `node:dgram` backend: per-datagram TTL. */
class DgramSocket extends UdpSocket {
  readonly #socket: dgram.Socket;
  #ttlBusy = false;

  private constructor(socket: dgram.Socket, onError: ErrorHandler) {
    super(onError);
    this.#socket = socket;
    socket.on("message", (msg: Uint8Array, rinfo: dgram.RemoteInfo) => {
      const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      this.deliver(data, { host: normalizeHost(rinfo.address), port: rinfo.port });
    });
    socket.on("error", (err: Error) => this.onError(err, "receive"));
  }

  static open(host: string, port: number, onError: ErrorHandler): Promise<UdpSocket> {
    const socket = dgram.createSocket({ type: isIPv6(host) ? "udp6" : "udp4", lookup: ipLookup });
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      socket.once("error", fail);
      socket.bind(port, host, () => {
        socket.off("error", fail);
        // Deno's node:dgram sets no socket option here: it sizes the buffer it allocates for each
        // datagram (the next receive on), twice the value given on Linux and Android.
        const os = Deno.build.os;
        try {
          socket.setRecvBufferSize(
            os === "linux" || os === "android" ? DGRAM_RECEIVE_BYTES / 2 : DGRAM_RECEIVE_BYTES,
          );
        } catch (err) {
          onError(err as Error, "receive"); // only memory is at stake: the socket works
        }
        resolve(new DgramSocket(socket, onError));
      });
    });
  }

  get local(): Endpoint {
    const a = this.#socket.address();
    return { host: normalizeHost(a.address), port: a.port };
  }

  send(data: Uint8Array, to: Endpoint, options: { ttl?: number } = {}): void {
    if (this.closed) return;
    // The TTL is a socket option read when a datagram leaves, which is after send() returns: a
    // TTL send waits until every earlier send has left, and later sends wait behind it (in order),
    // so that each datagram leaves with its own TTL.
    const ttl = options.ttl;
    if (this.#ttlBusy || this.#waiting.length > 0 || (ttl !== undefined && this.#inFlight > 0)) {
      this.#waiting.push({ data, to, ttl });
      return;
    }
    this.#transmit(data, to, ttl);
  }

  /** Sends datagrams in `send` order. */
  readonly #waiting: { data: Uint8Array; to: Endpoint; ttl?: number }[] = [];
  /** Datagrams handed to the socket that have not left yet. */
  #inFlight = 0;

  #transmit(data: Uint8Array, to: Endpoint, ttl: number | undefined): void {
    if (ttl !== undefined) {
      this.#ttlBusy = true;
      this.#socket.setTTL(ttl);
    }
    this.#inFlight++;
    this.started();
    const done = (err?: Error | null) => {
      if (err) this.onError(err, "send");
      this.#inFlight--;
      if (ttl !== undefined) {
        if (!this.closed) this.#socket.setTTL(DEFAULT_TTL);
        this.#ttlBusy = false;
      }
      this.#drain();
      this.finished();
    };
    try {
      this.#socket.send(data, to.port, to.host, done);
    } catch (err) {
      done(err as Error);
    }
  }

  /** Sends what waited, up to the next TTL send that must wait for the others to leave. */
  #drain(): void {
    while (this.#waiting.length > 0 && !this.#ttlBusy && !this.closed) {
      if (this.#waiting[0].ttl !== undefined && this.#inFlight > 0) return;
      const w = this.#waiting.shift()!;
      this.#transmit(w.data, w.to, w.ttl);
    }
  }

  protected release(): Promise<void> {
    return new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}

/**
 * The `Deno.listenDatagram` backend: fast sends, one receive buffer, no TTL. On Linux it also
 * sends with `sendto(2)` itself and sizes the kernel's receive buffer (lib/net/linux_udp.ts).
 */
class DenoSocket extends UdpSocket {
  readonly #conn: Deno.DatagramConn;
  readonly #receiving: Promise<void>;
  /** The socket's descriptor through libc, where there is one. */
  readonly #native: LinuxUdp | undefined;

  constructor(host: string, port: number, onError: ErrorHandler, receiveBufferBytes?: number) {
    super(onError);
    if (typeof Deno.listenDatagram !== "function") {
      throw new Error("Cannot listen on UDP: this needs Deno's --unstable-net (see deno.json)");
    }
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname: host, port });
    this.#native = LinuxUdp.find(this.#conn.addr as Deno.NetAddr);
    if (receiveBufferBytes !== undefined) this.#native?.setReceiveBuffer(receiveBufferBytes);
    this.#receiving = this.#receive();
  }

  get local(): Endpoint {
    const { hostname, port } = this.#conn.addr as Deno.NetAddr;
    return { host: normalizeHost(hostname), port };
  }

  override get receiveBuffer(): number | undefined {
    return this.closed ? undefined : this.#native?.receiveBuffer();
  }

  send(data: Uint8Array, to: Endpoint, options: { ttl?: number } = {}): void {
    if (options.ttl !== undefined) {
      throw new TypeError("A per-datagram TTL needs the dgram backend of UdpSocket");
    }
    if (this.closed) return;
    // Straight out while nothing waits in Deno's queue (so that none overtakes one there); what
    // sendto(2) cannot send goes through Deno, which reports errors as ever.
    if (this.inFlight === 0 && this.#native?.send(data, to)) return;
    this.started();
    let sending: Promise<number>;
    try {
      sending = this.#conn.send(data, { transport: "udp", hostname: to.host, port: to.port });
    } catch (err) {
      this.#failed(err as Error);
      return;
    }
    // Shared handlers, not closures per send: millions of sends must not each leave garbage.
    sending.then(this.#sent, this.#failed);
  }

  readonly #sent = (): void => this.finished();

  readonly #failed = (err: Error): void => {
    this.onError(err, "send");
    this.finished();
  };

  /** Receives datagrams until the socket closes, one at a time into one buffer. */
  async #receive(): Promise<void> {
    // Handlers are synchronous and keep nothing that points into the buffer, so one will do.
    const buffer = new Uint8Array(65_536);
    while (!this.closed) {
      let data: Uint8Array;
      let addr: Deno.Addr;
      try {
        [data, addr] = await this.#conn.receive(buffer);
      } catch (err) {
        if (this.closed || err instanceof Deno.errors.BadResource) return;
        this.onError(err as Error, "receive");
        await new Promise((resolve) => setTimeout(resolve, 10)); // no busy loop on a bad socket
        continue;
      }
      const { hostname, port } = addr as Deno.NetAddr;
      this.deliver(data, { host: normalizeHost(hostname), port });
    }
  }

  protected async release(): Promise<void> {
    this.#conn.close();
    await this.#receiving;
  }
}

/**
 * The local address a client claims at login (its `localIPEndPoint`): the one on the same subnet
 * as `remote` if there is one (loopback for a loopback server), else the interface of the default
 * route (Linux), else the first non-internal address of `remote`'s family. Peers on the same LAN
 * use it to reach us without going through the NAT.
 */
export function localAddressFor(remote: Endpoint): string {
  const family = isIPv6(remote.host) ? "IPv6" : "IPv4";
  const candidates = Deno.networkInterfaces().filter((i) => i.family === family);
  if (family === "IPv4") {
    const target = ipv4ToNumber(remote.host);
    const sameSubnet = candidates.find((i) => {
      const mask = ipv4ToNumber(i.netmask);
      return ((ipv4ToNumber(i.address) ^ target) & mask) === 0;
    });
    if (sameSubnet) return sameSubnet.address;
    const defaultIface = defaultRouteInterface();
    const viaDefault = candidates.find((i) => i.name === defaultIface);
    if (viaDefault) return viaDefault.address;
  }
  const external = candidates.find((i) => !isInternal(i.address));
  return external?.address ?? (family === "IPv4" ? "127.0.0.1" : "::1");
}

/**
 * A global IPv6 address of this host (the first one an interface has), which a chat client
 * announces as its `v6` candidate; undefined when it has none (loopback, link-local and ULA
 * addresses are not global).
 */
export function globalIpv6Address(): string | undefined {
  return Deno.networkInterfaces().find((i) =>
    i.family === "IPv6" && addressScope(i.address) === "public"
  )?.address;
}

function ipv4ToNumber(ip: string): number {
  return ip.split(".").reduce((n, part) => (n << 8) | Number(part), 0) >>> 0;
}

function isInternal(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1" || ip.startsWith("fe80:");
}

/** The interface of the IPv4 default route, read from Linux's /proc; undefined elsewhere. */
function defaultRouteInterface(): string | undefined {
  try {
    const routes = Deno.readTextFileSync("/proc/net/route").split("\n").slice(1);
    return routes.map((l) => l.split("\t")).find((f) => f[1] === "00000000")?.[0];
  } catch {
    return undefined;
  }
}
