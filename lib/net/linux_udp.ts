/**
 * What a server's UDP socket needs and `Deno.listenDatagram` does not give, taken from libc on
 * Linux through Deno's FFI: a larger kernel receive buffer (`SO_RCVBUF`), and a send that is one
 * system call instead of an async op.
 *
 * - **Receive buffer.** The kernel's default (`net.core.rmem_default`, 208 KiB) holds about 256
 *   small datagrams on loopback. A coordinator in a login storm receives some 3,000 a second, and
 *   Deno's runtime reads its sockets only when it waits (for a timer, or I/O), or once in about 61
 *   turns of the event loop that do not: any ~80 ms without a wait (a burst of list fetches, a
 *   collection) dropped logins, each retried a second later, and the storm lasted a second longer
 *   (docs/LOAD.md "Datagrams dropped in a storm").
 * - **Send.** `DatagramConn.send` costs about 17-26 µs a datagram (an async op, a promise, the
 *   runtime's queue); `sendto(2)` on the same socket about 4.5 (9 on a loaded loopback, where the
 *   kernel delivers to the receiver in the sender's time). A presence flush is one datagram per
 *   member: 10,000 at the end of a storm. Such sends never wait, so a sender of many must give the
 *   runtime a wait now and then (`UdpSocket.whenInFlightAtMost` does).
 *
 * Deno does not hand out a socket's file descriptor, so {@linkcode LinuxUdp.find} looks it up:
 * the socket's inode in `/proc/self/net/udp` (or `udp6`), by its local address and port, then
 * the descriptor in `/proc/self/fd` that points to that inode, checked with `getsockname(2)`.
 * Elsewhere than Linux, without all permissions (`-A`: Deno lets only that read /proc/self's
 * `net` and `fd`), or if the lookup is ambiguous, there is none, and the socket works as Deno
 * makes it.
 *
 * The descriptor stays Deno's: it must not be used once the socket is closed (the number may be
 * reused), which the caller ensures. The send is the fast path only: anything that fails here
 * (`EAGAIN` when the send buffer is full, an unreachable network, an address this module does not
 * write) is sent again through Deno, which reports the error as it always did.
 *
 * @example
 * ```ts
 * const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const native = LinuxUdp.find(conn.addr as Deno.NetAddr);
 * native?.setReceiveBuffer(4 * 1024 * 1024); // the size the kernel gave, e.g. 8388608
 * native?.send(new TextEncoder().encode("hi"), { host: "127.0.0.1", port: 7000 }); // true: sent
 * ```
 * @module
 */
import type { Endpoint } from "../protocol/endpoint.ts";
import { AddressError, ipBytes } from "./ip_bytes.ts";

/** `SOL_SOCKET` and `SO_RCVBUF` on Linux (x86_64 and aarch64 alike). */
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const AF_INET = 2;
const AF_INET6 = 10;

const SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // ssize_t read as i32: a datagram's length, or -1.
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

/** libc, opened once per process; null when it cannot be (not Linux, no FFI permission). */
let libc: Libc | null | undefined;

function openLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux" || typeof Deno.dlopen !== "function") return libc;
  try {
    // Asked first: without the permission, dlopen would prompt or throw. Reading /proc/self/fd
    // needs all permissions in Deno 2.9, which then grant FFI too.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return libc;
    libc = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    libc = null; // another libc (musl), or no dlopen: Deno's own paths serve
  }
  return libc;
}

/** A UDP socket's descriptor, and what libc does with it. */
export class LinuxUdp {
  readonly #libc: Libc;
  readonly #fd: number;
  readonly #family: number;
  /** One socket address, rewritten for every send (no allocation per datagram). */
  readonly #addr: Uint8Array;
  readonly #addrView: DataView;

  private constructor(lib: Libc, fd: number, family: number) {
    this.#libc = lib;
    this.#fd = fd;
    this.#family = family;
    this.#addr = new Uint8Array(family === AF_INET ? 16 : 28);
    this.#addrView = new DataView(this.#addr.buffer);
    this.#addrView.setUint16(0, family, true);
  }

  /**
   * The socket bound at `local` in this process; undefined when it cannot be found or used (see
   * the module documentation).
   */
  static find(local: Deno.NetAddr): LinuxUdp | undefined {
    const lib = openLibc();
    if (lib === null) return undefined;
    try {
      const v6 = local.hostname.includes(":");
      const inode = socketInode(
        Deno.readTextFileSync(v6 ? "/proc/self/net/udp6" : "/proc/self/net/udp"),
        procAddress(local.hostname, local.port),
      );
      if (inode === undefined) return undefined;
      const target = `socket:[${inode}]`;
      const fds: number[] = [];
      for (const entry of Deno.readDirSync("/proc/self/fd")) {
        try {
          if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === target) {
            fds.push(Number(entry.name));
          }
        } catch {
          // closed while we looked
        }
      }
      // Two descriptors for one socket (a dup) would do as well, but none is ours to guess at.
      if (fds.length !== 1) return undefined;
      const family = v6 ? AF_INET6 : AF_INET;
      // The descriptor must be the socket itself: its own address, as the kernel tells it.
      if (!boundAt(lib, fds[0], family, local.port)) return undefined;
      return new LinuxUdp(lib, fds[0], family);
    } catch {
      return undefined;
    }
  }

  /**
   * Asks the kernel for a receive buffer of `bytes`; returns the size it now has (Linux doubles
   * what it grants, and grants at most `net.core.rmem_max`).
   */
  setReceiveBuffer(bytes: number): number {
    const value = new Int32Array([Math.min(bytes, 0x3fff_ffff)]);
    this.#libc.symbols.setsockopt(
      this.#fd,
      SOL_SOCKET,
      SO_RCVBUF,
      new Uint8Array(value.buffer),
      4,
    );
    return this.receiveBuffer();
  }

  /** The socket's receive buffer, in bytes, as the kernel reports it. */
  receiveBuffer(): number {
    const value = new Int32Array(1);
    const length = new Uint32Array([4]);
    const r = this.#libc.symbols.getsockopt(
      this.#fd,
      SOL_SOCKET,
      SO_RCVBUF,
      new Uint8Array(value.buffer),
      new Uint8Array(length.buffer),
    );
    return r === 0 ? value[0] : 0;
  }

  /**
   * Sends `data` to `to` with one `sendto(2)`; true if it went, false if it must go another way
   * (any error, a full send buffer, an address this does not write, such as one with a zone).
   */
  send(data: Uint8Array, to: Endpoint): boolean {
    if (!this.#writeAddress(to)) return false;
    const sent = this.#libc.symbols.sendto(
      this.#fd,
      data,
      lengthOf(data),
      0,
      this.#addr,
      this.#addr.length,
    );
    return sent === data.length;
  }

  /** Writes `to` into the socket address; false if it cannot be written. */
  #writeAddress(to: Endpoint): boolean {
    const view = this.#addrView;
    if (!(Number.isInteger(to.port) && to.port > 0 && to.port < 65536)) return false;
    view.setUint16(2, to.port, false);
    if (this.#family === AF_INET) return writeIpv4(to.host, this.#addr, 4);
    // sockaddr_in6: flow info 0, 16 address bytes at 8, scope id 0; IPv4 as ::ffff:a.b.c.d.
    this.#addr.fill(0, 4);
    if (!to.host.includes(":")) {
      this.#addr[18] = 0xff;
      this.#addr[19] = 0xff;
      return writeIpv4(to.host, this.#addr, 20);
    }
    if (to.host.includes("%")) return false;
    // Parsed for each send (an IPv6 peer of a dual-stack socket): not the hot path of IPv4.
    try {
      this.#addr.set(ipBytes(to.host), 8);
    } catch (err) {
      if (err instanceof AddressError) return false;
      throw err;
    }
    return true;
  }
}

/**
 * Whether descriptor `fd` is a socket of `family` bound to `port` (`getsockname(2)`): a check
 * that the descriptor found through /proc is the socket, not another that took its number.
 */
function boundAt(lib: Libc, fd: number, family: number, port: number): boolean {
  const addr = new Uint8Array(28);
  const length = new Uint32Array([addr.length]);
  if (lib.symbols.getsockname(fd, addr, new Uint8Array(length.buffer)) !== 0) return false;
  const view = new DataView(addr.buffer);
  return view.getUint16(0, true) === family && view.getUint16(2, false) === port;
}

/**
 * Datagram lengths as `size_t` arguments, which Deno's FFI types as `bigint`: made once each, not
 * a `BigInt` per send.
 */
const LENGTHS: bigint[] = [];

function lengthOf(data: Uint8Array): bigint {
  return LENGTHS[data.length] ??= BigInt(data.length);
}

/**
 * Writes dotted-quad `host` into `out` at `at`; false if it is not one. By hand, as it runs for
 * every datagram.
 */
function writeIpv4(host: string, out: Uint8Array, at: number): boolean {
  let part = 0;
  let digits = 0;
  let index = 0;
  for (let i = 0; i <= host.length; i++) {
    const c = i < host.length ? host.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || index > 3) return false;
      out[at + index++] = part;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3 && !(digits === 1 && part === 0)) {
      part = part * 10 + c - 0x30; // no leading zero: getaddrinfo reads "010" as octal
      digits++;
      if (part > 255) return false;
    } else return false;
  }
  return index === 4;
}

/**
 * A local address as `/proc/net/udp{,6}` writes it: each 32-bit word of the address in the
 * machine's order (little-endian on every platform Deno runs on), in hex, then the port.
 */
export function procAddress(host: string, port: number): string {
  const bytes = ipBytes(host);
  let hex = "";
  for (let word = 0; word < bytes.length; word += 4) {
    for (let b = word + 3; b >= word; b--) hex += bytes[b].toString(16).padStart(2, "0");
  }
  return `${hex}:${port.toString(16).padStart(4, "0")}`.toUpperCase();
}

/**
 * The inode of the one socket whose local address is `address` in a `/proc/net/udp{,6}` table;
 * undefined if none or several (`SO_REUSEPORT`) are.
 */
export function socketInode(table: string, address: string): string | undefined {
  const inodes: string[] = [];
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === address && fields.length > 9) inodes.push(fields[9]);
  }
  return inodes.length === 1 ? inodes[0] : undefined;
}
