/**
 * A UDP socket as the rest of the code needs it: bytes in, bytes out, endpoints as
 * {@linkcode Endpoint}. Built on `node:dgram`, which (unlike `Deno.listenDatagram`) can set the
 * unicast TTL that NAT traversal uses to open a mapping without reaching the other side.
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
import { isIPv6 } from "node:net";
import type { Endpoint } from "../protocol/endpoint.ts";

/** The TTL of ordinary datagrams (Linux's default). */
const DEFAULT_TTL = 64;

/** Called for each datagram received. */
export type MessageHandler = (data: Uint8Array, from: Endpoint) => void;

/** Options for {@linkcode UdpSocket.bind}. */
export interface BindOptions {
  /** Local address; default `0.0.0.0`. An IPv6 address makes an IPv6 socket. */
  host?: string;
  /** Local port; default 0 (any). */
  port?: number;
  /** Called when sending fails (unreachable network…); default: ignore, as UDP is lossy anyway. */
  onError?: (error: Error) => void;
}

/** Strips the IPv4-mapped prefix dual-stack sockets put on IPv4 peers. */
function normalizeHost(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

/** A bound UDP socket. */
export class UdpSocket {
  readonly #socket: dgram.Socket;
  readonly #onError: (error: Error) => void;
  #handler: MessageHandler = () => {};
  #closed = false;
  #inFlight = 0;
  #flushed: (() => void) | undefined;
  #ttlBusy = false;
  #waiting: { data: Uint8Array; to: Endpoint; ttl?: number }[] = [];

  private constructor(socket: dgram.Socket, onError: (error: Error) => void) {
    this.#socket = socket;
    this.#onError = onError;
    socket.on("message", (msg: Uint8Array, rinfo: dgram.RemoteInfo) => {
      const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      this.#handler(data, { host: normalizeHost(rinfo.address), port: rinfo.port });
    });
    socket.on("error", (err: Error) => this.#onError(err));
  }

  /** Binds a socket; rejects with the system's error (e.g. address in use). */
  static bind(options: BindOptions = {}): Promise<UdpSocket> {
    const host = options.host ?? "0.0.0.0";
    const socket = dgram.createSocket({ type: isIPv6(host) ? "udp6" : "udp4" });
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      socket.once("error", fail);
      socket.bind(options.port ?? 0, host, () => {
        socket.off("error", fail);
        resolve(new UdpSocket(socket, options.onError ?? (() => {})));
      });
    });
  }

  /** The local address and port the socket is bound to. */
  get local(): Endpoint {
    const a = this.#socket.address();
    return { host: normalizeHost(a.address), port: a.port };
  }

  /** Sets the handler for incoming datagrams (one handler; a new one replaces the old). */
  onMessage(handler: MessageHandler): void {
    this.#handler = handler;
  }

  /**
   * Sends one datagram; with `ttl`, that datagram alone gets this IP TTL (NAT traversal primes a
   * mapping with a packet that must not reach the far side). Never throws: failures go to
   * `onError`.
   */
  send(data: Uint8Array, to: Endpoint, options: { ttl?: number } = {}): void {
    if (this.#closed) return;
    // The TTL is a socket option read when the datagram leaves, which is after send() returns:
    // while a TTL send is on its way, later sends wait so that they keep the default TTL.
    if (this.#ttlBusy) {
      this.#waiting.push({ data, to, ttl: options.ttl });
      return;
    }
    if (options.ttl !== undefined) {
      this.#ttlBusy = true;
      this.#socket.setTTL(options.ttl);
    }
    this.#inFlight++;
    const done = (err?: Error | null) => {
      if (err) this.#onError(err);
      if (options.ttl !== undefined) {
        if (!this.#closed) this.#socket.setTTL(DEFAULT_TTL);
        this.#ttlBusy = false;
        for (const w of this.#waiting.splice(0)) this.send(w.data, w.to, { ttl: w.ttl });
      }
      if (--this.#inFlight === 0 && this.#waiting.length === 0) this.#flushed?.();
    };
    try {
      this.#socket.send(data, to.port, to.host, done);
    } catch (err) {
      done(err as Error);
    }
  }

  /**
   * Closes the socket once the datagrams already handed to {@linkcode send} are out (a `logout`
   * sent just before closing must not be lost); further sends are ignored.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000); // never hang on a send that cannot complete
        this.#flushed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
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
