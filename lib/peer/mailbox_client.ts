/**
 * The client side of the mailbox service (docs/PROTOCOL.md §5.3): one TCP connection to the
 * coordinator's mailbox port, requests pipelined, replies matched to them in order. It deposits
 * sealed messages, looks up the key registered for a name, and fetches (with the key proof) and
 * acknowledges our own mail. Sealing and what to do with the mail are `mailbox.ts`'s; this room
 * only speaks the lines, so that the benchmark and the tests can drive a coordinator with it.
 *
 * @example
 * ```ts
 * const client = await MailboxClient.connect({ host: "127.0.0.1", port: 7001 });
 * const result = await client.deposit("bob", sealed); // { ok: true, id } or { ok: false, reason }
 * const mail = await client.fetch("alice", identity); // [{ id, sealed }, …]
 * await client.ack(mail.map((m) => m.id));
 * client.close();
 * ```
 * @module
 */
import { type Clock, realClock, type TimerId } from "../clock.ts";
import { keyProof } from "../crypto/key_proof.ts";
import type { KeyPair } from "../crypto/noise.ts";
import {
  decodeMailboxReply,
  encodeMailboxRequest,
  LineSplitter,
  type MailboxReply,
  type MailboxRequest,
  MAX_ACK_IDS,
  MAX_MAILBOX_LINE,
} from "../protocol/mailbox.ts";

/** Options for {@linkcode MailboxClient.connect}. */
export interface MailboxClientOptions {
  host: string;
  port: number;
  /** A request with no reply line for this long fails, and the connection with it; default 10 s. */
  timeoutMs?: number;
  clock?: Clock;
}

/** What a deposit came to. */
export type Deposit = { ok: true; id: number } | { ok: false; reason: string };

/** A fetched message. */
export interface FetchedMail {
  id: number;
  sealed: Uint8Array;
}

/** A refusal, a broken connection or a reply out of place. */
export class MailboxClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MailboxClientError";
  }
}

/** Takes reply lines until it is satisfied (returns true). */
interface Waiter {
  take(reply: MailboxReply): boolean;
  fail(err: Error): void;
}

const encoder = new TextEncoder();

/** A connection to a mailbox service. */
export class MailboxClient {
  readonly #conn: Deno.Conn;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #waiters: Waiter[] = [];
  #out = "";
  #writing: Promise<void> | undefined;
  #timer: TimerId | undefined;
  #error: Error | undefined;

  private constructor(conn: Deno.Conn, options: MailboxClientOptions) {
    this.#conn = conn;
    this.#clock = options.clock ?? realClock;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#read();
  }

  /** Connects to the mailbox service at `host:port`. */
  static async connect(options: MailboxClientOptions): Promise<MailboxClient> {
    const conn = await Deno.connect({ hostname: options.host, port: options.port });
    return new MailboxClient(conn, options);
  }

  /** Leaves `sealed` in `recipient`'s mailbox. Resolves with its id or the refusal's reason. */
  deposit(recipient: string, sealed: Uint8Array): Promise<Deposit> {
    return this.#ask({ type: "deposit", recipient, sealed }, (r) => {
      if (r.type === "deposited") return { ok: true, id: r.id };
      if (r.type === "refused") return { ok: false, reason: r.reason };
    });
  }

  /** The key the coordinator has registered for `name`, or undefined if none. */
  key(name: string): Promise<Uint8Array | undefined> {
    return this.#ask({ type: "key", name }, (r) => {
      if (r.type === "key" && r.name === name) return r.key;
      if (r.type === "refused" && r.reason === "unknown user") return undefined;
      if (r.type === "refused") {
        throw new MailboxClientError(`Cannot get ${name}'s key: ${r.reason}`);
      }
    });
  }

  /**
   * Fetches `name`'s mail, proving `identity` is the key registered for it. Resolves with the
   * messages in the order they were deposited.
   *
   * @throws {MailboxClientError} when refused (unknown user, bad proof) or the connection fails.
   */
  async fetch(name: string, identity: KeyPair): Promise<FetchedMail[]> {
    const challenge = await this.#ask({ type: "fetch", name }, (r) => {
      if (r.type === "challenge") return r;
      if (r.type === "refused") throw new MailboxClientError(`Cannot fetch mail: ${r.reason}`);
    });
    const proof = keyProof({
      privateKey: identity.secretKey,
      publicKey: challenge.serverKey,
      purpose: "mailbox",
      nonce: challenge.nonce,
      name,
    });
    const mail: FetchedMail[] = [];
    return await new Promise<FetchedMail[]>((resolve, reject) => {
      this.#waiters.push({
        take: (r) => {
          if (r.type === "mail") {
            mail.push({ id: r.id, sealed: r.sealed });
            return false;
          }
          if (r.type === "end" && r.count === mail.length) resolve(mail);
          else if (r.type === "refused") {
            reject(new MailboxClientError(`Cannot fetch mail: ${r.reason}`));
          } else reject(new MailboxClientError(`Unexpected mailbox reply ${r.type}`));
          return true;
        },
        fail: reject,
      });
      this.#send({ type: "proof", proof });
    });
  }

  /** Deletes fetched messages; resolves with how many were deleted. */
  async ack(ids: readonly number[]): Promise<number> {
    const parts: Promise<number>[] = [];
    for (let at = 0; at < ids.length; at += MAX_ACK_IDS) {
      parts.push(this.#ask({ type: "ack", ids: ids.slice(at, at + MAX_ACK_IDS) }, (r) => {
        if (r.type === "acked") return r.count;
        if (r.type === "refused") throw new MailboxClientError(`Cannot acknowledge: ${r.reason}`);
      }));
    }
    return (await Promise.all(parts)).reduce((a, b) => a + b, 0);
  }

  /** Closes the connection; requests still waiting fail. */
  close(): void {
    this.#fail(new MailboxClientError("the mailbox connection was closed"));
  }

  /** Sends `request`; `accept` maps its one reply line to a value (undefined: out of place). */
  #ask<T>(request: MailboxRequest, accept: (r: MailboxReply) => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiters.push({
        take: (r) => {
          try {
            const value = accept(r);
            if (value === undefined && r.type !== "refused" && r.type !== "key") {
              reject(new MailboxClientError(`Unexpected mailbox reply ${r.type}`));
            } else resolve(value as T);
          } catch (err) {
            reject(err);
          }
          return true;
        },
        fail: reject,
      });
      this.#send(request);
    });
  }

  #send(request: MailboxRequest): void {
    if (this.#error) {
      this.#fail(this.#error);
      return;
    }
    this.#arm();
    this.#out += encodeMailboxRequest(request) + "\n";
    this.#writing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    try {
      while (this.#out.length > 0) {
        const bytes = encoder.encode(this.#out);
        this.#out = "";
        for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
      }
    } catch (err) {
      this.#fail(new MailboxClientError(`Mailbox connection failed: ${(err as Error).message}`));
    } finally {
      this.#writing = undefined;
    }
  }

  async #read(): Promise<void> {
    const lines = new LineSplitter(MAX_MAILBOX_LINE);
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let n = await this.#conn.read(buffer); n !== null; n = await this.#conn.read(buffer)) {
        const { lines: got, error } = lines.push(buffer.subarray(0, n));
        for (const line of got) {
          const waiter = this.#waiters[0];
          if (!waiter) throw new MailboxClientError("a mailbox reply nobody asked for");
          if (waiter.take(decodeMailboxReply(line))) this.#waiters.shift();
          this.#arm();
        }
        if (error) throw new MailboxClientError(`Bad reply from the mailbox: ${error.message}`);
      }
      this.#fail(new MailboxClientError("the coordinator closed the mailbox connection"));
    } catch (err) {
      this.#fail(
        err instanceof MailboxClientError
          ? err
          : new MailboxClientError(`Mailbox connection failed: ${(err as Error).message}`),
      );
    }
  }

  /** (Re)starts the no-reply timer while requests wait. */
  #arm(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#waiters.length === 0) return;
    this.#timer = this.#clock.setTimeout(
      () =>
        this.#fail(
          new MailboxClientError(`The mailbox did not answer within ${this.#timeoutMs} ms`),
        ),
      this.#timeoutMs,
    );
  }

  #fail(err: Error): void {
    this.#error ??= err;
    this.#clock.clearTimeout(this.#timer);
    for (const waiter of this.#waiters.splice(0)) waiter.fail(this.#error);
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
  }
}
