/**
 * The extra UDP sockets of birthday searches (see `traversal.ts`): a symmetric NAT gives each
 * socket its own public port, so the hard side of a search opens many. They are opened and
 * closed here, with a cap, since file descriptors are finite; the client's main socket is not
 * one of them (it is socket 0 to a link).
 *
 * @example
 * ```ts
 * const pool = new SocketPool({ host: "0.0.0.0", onMessage: (data, from, id) => {} });
 * const ids = await pool.open(256);
 * pool.get(ids[0])?.send(probe, target);
 * pool.close(ids);
 * await pool.closeAll();
 * ```
 * @module
 */
import type { Endpoint } from "../protocol/endpoint.ts";
import { UdpSocket } from "../net/udp.ts";

/** Most extra sockets open at once (two birthday searches): file descriptors are finite. */
export const MAX_EXTRA_SOCKETS = 512;

/** Options for {@linkcode SocketPool}. */
export interface SocketPoolOptions {
  /** The local address to bind them to (the main socket's). */
  host: string;
  /** A datagram arrived on extra socket `id`. */
  onMessage: (data: Uint8Array, from: Endpoint, id: number) => void;
  /** Default {@linkcode MAX_EXTRA_SOCKETS}. */
  max?: number;
}

/** Extra sockets by id (from 1). */
export class SocketPool {
  readonly #o: SocketPoolOptions;
  readonly #sockets = new Map<number, UdpSocket>();
  #nextId = 1;
  #closed = false;

  constructor(options: SocketPoolOptions) {
    this.#o = options;
  }

  /** How many are open. */
  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Opens up to `count` sockets (those the system refuses are left out) and resolves with their
   * ids. Rejects when that would pass the cap, or the pool is closed.
   */
  async open(count: number): Promise<number[]> {
    if (this.#closed || this.#sockets.size + count > (this.#o.max ?? MAX_EXTRA_SOCKETS)) {
      throw new Error(`no room for ${count} more sockets`);
    }
    const host = this.#o.host;
    const opened = await Promise.allSettled(
      Array.from({ length: count }, () => UdpSocket.bind({ host })),
    );
    const ids: number[] = [];
    for (const result of opened) {
      if (result.status !== "fulfilled") continue;
      const id = this.#nextId++;
      this.#sockets.set(id, result.value);
      result.value.onMessage((data, from) => this.#o.onMessage(data, from, id));
      ids.push(id);
    }
    if (this.#closed) {
      this.close(ids);
      throw new Error("the client closed");
    }
    return ids;
  }

  /** The socket with this id, while open. */
  get(id: number): UdpSocket | undefined {
    return this.#sockets.get(id);
  }

  /** Closes these sockets. */
  close(ids: number[]): void {
    for (const id of ids) {
      this.#sockets.get(id)?.close();
      this.#sockets.delete(id);
    }
  }

  /** Closes every socket; later {@linkcode SocketPool.open} calls fail. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#sockets.values()].map((s) => s.close()));
    this.#sockets.clear();
  }
}
