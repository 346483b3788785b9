/**
 * The mailbox service (docs/PROTOCOL.md §5.3): a TCP listener, by default on the coordinator's
 * port + 1, where anyone may leave a sealed message for a registered name and only the holder of
 * that name's key may fetch and delete it. Lines are `lib/protocol/mailbox.ts`'s; mail is kept
 * by {@linkcode MailboxStore}. Its own room because it is the coordinator's one service that
 * speaks to strangers about stored data: every request is bounded (line length, pipelined
 * replies waiting, deposits per address per second, connections per address and in total, idle
 * time), and a malformed line is refused and ends the connection.
 *
 * TCP is used so that deposits and fetches are reliable and of any size up to the limit, and so
 * that nothing is amplified: the handshake proves the address before a byte is answered, stored
 * mail goes only to the name's proven owner, and until a connection has proved a key it is never
 * sent more bytes than it sent (clients pad `key` and `fetch`; a reply beyond that closes the
 * connection instead).
 *
 * Fetching: `fetch,<name>` is answered `Challenge,<serverKey>,<nonce>`; `proof,<mac>` must be
 * {@linkcode keyProof}(client's private key, server's public key, purpose `"mailbox"`, nonce,
 * name), checked against the key registered for the name. The nonce is used once, right or
 * wrong. A valid proof opens the connection as that name's: the mail waiting then is sent in
 * order (`Mail,<id>,<sealed>`…, `End,<count>`), and `ack,<id>,…` deletes it.
 *
 * @example
 * ```ts
 * const service = new MailboxService({ clock, store, log, limits, serverKey, keyOf });
 * service.listen(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
 * await service.close();
 * ```
 * @module
 */
import { acceptEach, closeQuietly } from "../net/tcp_accept.ts";
import type { Clock, TimerId } from "../clock.ts";
import { verifyKeyProof } from "../crypto/key_proof.ts";
import type { KeyPair } from "../crypto/noise.ts";
import { normalizeHost } from "../net/udp.ts";
import {
  decodeMailboxRequest,
  encodeMailboxReply,
  LineSplitter,
  type MailboxReply,
  type MailboxRequest,
  MAX_MAILBOX_LINE,
  NONCE_BYTES,
} from "../protocol/mailbox.ts";
import { addressKey, ConnectionSlots, RateLimiter } from "./limits.ts";
import type { MailboxStore } from "./mailbox_store.ts";
import type { ServerLog } from "./server_log.ts";

/** What the mailbox service needs of a TCP connection (a `Deno.Conn`, or a test's stand-in). */
export interface MailboxConnection {
  readonly remoteAddr: Deno.Addr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  close(): void;
}

/** The service's own limits. */
export interface MailboxServiceLimits {
  /** Connections open at once from one address (its oldest gives way to its newest). */
  tcpPerAddress: number;
  /** Connections open at once in total. */
  maxTcp: number;
  /** A connection that neither reads nor writes this long is closed. */
  idleMs: number;
  /** Deposits and key lookups per address per second (burst: twice as many). */
  requestsPerSecond: number;
}

/** The defaults. */
export const DEFAULT_MAILBOX_SERVICE_LIMITS: Readonly<MailboxServiceLimits> = Object.freeze({
  tcpPerAddress: 8,
  maxTcp: 1_024,
  idleMs: 10_000,
  requestsPerSecond: 200,
});

/** Options for {@linkcode MailboxService}. */
export interface MailboxServiceOptions {
  clock: Clock;
  store: MailboxStore;
  log: ServerLog;
  limits: Readonly<MailboxServiceLimits>;
  /** The coordinator's static key pair (the other half of every proof). */
  serverKey: KeyPair;
  /** The key registered for `name`, or undefined when no key has registered it. */
  keyOf: (name: string) => Uint8Array | undefined;
  /** Mail was deposited for `recipient`, who now has `waiting` messages (to tell them if online). */
  onDeposit?: (recipient: string, waiting: number) => void;
}

/** Counters, for tests and the benchmark. */
export interface MailboxCounters {
  /** Request lines read (malformed ones included). */
  lines: number;
  deposited: number;
  refused: number;
  fetched: number;
  acked: number;
  badProofs: number;
  malformed: number;
  /** Connections closed because a reply would have been larger than what they sent. */
  overBudget: number;
}

/** Replies a connection may have waiting before its input is no longer read. */
const MAX_WAITING_REPLIES = 2_048;
/** Messages read from the store per page while a fetch is sent. */
const PAGE = 256;
/** Output is gathered into writes of about this many bytes. */
const WRITE_CHUNK = 64 * 1024;

const encoder = new TextEncoder();

/** A reply to write: a line (perhaps after a commit), or a stream of lines (a fetch). */
type Pending = string | Promise<string> | (() => Iterable<string>);

/** One connection's place in the fetch dance. */
interface Session {
  ip: string;
  key: string;
  /** Bytes read from and written to the connection. */
  received: number;
  sent: number;
  challenge?: { name: string; nonce: Uint8Array };
  /** The name whose key this connection proved (for acks). */
  owner?: string;
  /** Whether it ever proved a key: its replies are no longer held to what it sent. */
  proven?: boolean;
}

/** Serves the mailbox. */
export class MailboxService {
  readonly #o: MailboxServiceOptions;
  readonly #slots: ConnectionSlots<MailboxConnection>;
  readonly #requests: RateLimiter;
  readonly #connections = new Map<MailboxConnection, () => void>();
  readonly counters: MailboxCounters = {
    lines: 0,
    deposited: 0,
    refused: 0,
    fetched: 0,
    acked: 0,
    badProofs: 0,
    malformed: 0,
    overBudget: 0,
  };
  #listener: Deno.Listener | undefined;
  #accepting: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: MailboxServiceOptions) {
    this.#o = options;
    const { tcpPerAddress, maxTcp, requestsPerSecond } = options.limits;
    this.#slots = new ConnectionSlots({ perKey: tcpPerAddress, total: maxTcp });
    this.#requests = new RateLimiter({
      now: () => options.clock.now(),
      perSecond: requestsPerSecond,
    });
  }

  /** Connections open now. */
  get open(): number {
    return this.#connections.size;
  }

  /** Serves the connections `listener` accepts, until {@linkcode close}. */
  listen(listener: Deno.Listener): void {
    this.#listener = listener;
    this.#accepting = acceptEach(listener, {
      closed: () => this.#closed,
      serve: (conn) => this.serve(conn),
      failed: (err) => this.#o.log.throttled("tcp error", `mailbox TCP accept: ${err.message}`),
      clock: this.#o.clock,
    });
  }

  /** Forgets rate-limit state that no longer matters (call now and then). */
  sweep(): void {
    this.#requests.sweep();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listener?.close();
    for (const close of [...this.#connections.values()]) close();
    await this.#accepting;
  }

  /** Serves one connection until it ends. */
  async serve(conn: MailboxConnection): Promise<void> {
    const ip = normalizeHost((conn.remoteAddr as Deno.NetAddr).hostname);
    const key = addressKey(ip);
    const log = this.#o.log;
    const verdict = this.#slots.open(key, conn);
    if (verdict.kind === "refused") {
      log.limited(
        "mailbox-tcp",
        `${this.#o.limits.maxTcp} mailbox connections open; closed one from ${ip}`,
      );
      closeQuietly(conn);
      return;
    }
    if (verdict.kind === "evicted") {
      log.limited(
        "mailbox-tcp",
        `closed the oldest mailbox connection of ${verdict.from} for one from ${ip}`,
      );
      this.#connections.get(verdict.evicted)?.();
    }
    const clock = this.#o.clock;
    let idle: TimerId | undefined;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.#connections.delete(conn);
      clock.clearTimeout(idle);
      this.#slots.close(key, conn);
      closeQuietly(conn);
    };
    const touch = () => {
      clock.clearTimeout(idle);
      idle = clock.setTimeout(close, this.#o.limits.idleMs);
    };
    this.#connections.set(conn, close);
    touch();

    const queue: Pending[] = [];
    let pumping: Promise<void> | undefined;
    const session: Session = { ip, key, received: 0, sent: 0 };
    const write = async (text: string) => {
      const bytes = encoder.encode(text);
      // No more bytes to a connection that proved no key than it sent us.
      if (!session.proven && session.sent + bytes.length > session.received) {
        this.counters.overBudget++;
        throw new Error("reply larger than the request");
      }
      session.sent += bytes.length;
      for (let at = 0; at < bytes.length; touch()) at += await conn.write(bytes.subarray(at));
    };
    const pump = async () => {
      let out = "";
      try {
        while (queue.length > 0) {
          const item = queue.shift()!;
          if (typeof item === "function") {
            for (const line of item()) {
              out += line + "\n";
              if (out.length >= WRITE_CHUNK) {
                await write(out);
                out = "";
              }
            }
          } else {
            out += (await item) + "\n";
          }
          if (out.length >= WRITE_CHUNK || queue.length === 0) {
            await write(out);
            out = "";
          }
        }
      } catch {
        close(); // the client reset the connection, or we closed it
      } finally {
        pumping = undefined;
      }
    };
    const enqueue = (item: Pending) => {
      queue.push(item);
      pumping ??= pump();
    };

    const lines = new LineSplitter(MAX_MAILBOX_LINE);
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        touch();
        session.received += n;
        const { lines: got, error } = lines.push(buffer.subarray(0, n));
        let stop = false;
        for (const line of got) {
          this.counters.lines++;
          let request: MailboxRequest;
          try {
            request = decodeMailboxRequest(line.endsWith("\r") ? line.slice(0, -1) : line);
          } catch (err) {
            this.counters.malformed++;
            enqueue(refused((err as Error).message));
            stop = true;
            break;
          }
          enqueue(this.#handle(request, session));
        }
        if (error && !stop) {
          this.counters.lines++;
          this.counters.malformed++;
          enqueue(refused(error.message));
          stop = true;
        }
        if (stop) break;
        // A client that does not read its replies is not read either (TCP pushes back).
        if (queue.length > MAX_WAITING_REPLIES) await pumping;
      }
      await pumping;
    } catch {
      // a reset, or our own close
    } finally {
      close();
    }
  }

  #handle(request: MailboxRequest, session: Session): Pending {
    const { store, keyOf } = this.#o;
    switch (request.type) {
      case "deposit": {
        if (!this.#requests.allow(session.key)) return this.#refuse("slow down");
        if (keyOf(request.recipient) === undefined) return this.#refuse("unknown user");
        return store.deposit({
          recipient: request.recipient,
          sender: session.key,
          sealed: request.sealed,
        })
          .then((result) => {
            if (!result.ok) return this.#refuse(result.reason);
            this.counters.deposited++;
            this.#o.onDeposit?.(request.recipient, store.waiting(request.recipient));
            return reply({ type: "deposited", id: result.id });
          });
      }
      case "key": {
        if (!this.#requests.allow(session.key)) return this.#refuse("slow down");
        const key = keyOf(request.name);
        return key === undefined
          ? this.#refuse("unknown user")
          : reply({ type: "key", name: request.name, key });
      }
      case "fetch": {
        if (!this.#requests.allow(session.key)) return this.#refuse("slow down");
        if (keyOf(request.name) === undefined) return this.#refuse("unknown user");
        const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
        session.challenge = { name: request.name, nonce };
        session.owner = undefined;
        return reply({ type: "challenge", serverKey: this.#o.serverKey.publicKey, nonce });
      }
      case "proof": {
        const challenge = session.challenge;
        session.challenge = undefined; // used once, right or wrong
        if (!challenge) return this.#refuse("no challenge: send fetch first");
        const publicKey = keyOf(challenge.name);
        const valid = publicKey !== undefined && verifyKeyProof({
          privateKey: this.#o.serverKey.secretKey,
          publicKey,
          purpose: "mailbox",
          nonce: challenge.nonce,
          name: challenge.name,
          proof: request.proof,
        });
        if (!valid) {
          this.counters.badProofs++;
          this.#o.log.throttled(
            "mailbox proof",
            `bad mailbox proof for ${challenge.name} from ${session.ip}`,
          );
          return this.#refuse("bad proof");
        }
        session.owner = challenge.name;
        session.proven = true;
        return () => this.#mail(challenge.name);
      }
      case "ack": {
        if (session.owner === undefined) return this.#refuse("not yours: fetch and prove first");
        try {
          const count = store.ack(session.owner, request.ids);
          this.counters.acked += count;
          return reply({ type: "acked", count });
        } catch (err) {
          return this.#refuse(`the server cannot delete it now (${(err as Error).message})`);
        }
      }
    }
  }

  /** The mail waiting for `name` now, in order, then `End`. */
  *#mail(name: string): Iterable<string> {
    const store = this.#o.store;
    let left = store.waiting(name);
    let after = 0;
    let count = 0;
    while (left > 0) {
      const page = store.fetch(name, after, Math.min(PAGE, left));
      if (page.length === 0) break;
      for (const mail of page) yield reply({ type: "mail", id: mail.id, sealed: mail.sealed });
      count += page.length;
      left -= page.length;
      after = page[page.length - 1].id;
    }
    this.counters.fetched += count;
    yield reply({ type: "end", count });
  }

  #refuse(reason: string): string {
    this.counters.refused++;
    return refused(reason);
  }
}

function reply(r: MailboxReply): string {
  return encodeMailboxReply(r);
}

function refused(reason: string): string {
  return encodeMailboxReply({ type: "refused", reason });
}
