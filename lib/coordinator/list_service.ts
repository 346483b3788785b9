/**
 * The list service (the seed's step 3, over TCP): a client connects from the address it logged in
 * from, which proves it receives there, so its pending login — and every other pending login from
 * that IP address — is admitted; it gets the online list, ending with the presence version its
 * list is at (`\nversion,<V>`) unless a seed-only client has that address (one would not expect
 * the extra line), and the server closes the connection.
 *
 * Connections are capped per address and in total ({@linkcode ConnectionSlots}), so that slow
 * connections cannot hold the service shut: an address at its cap loses its oldest connection to
 * its newest, and when every slot is taken an address holding fewer than another takes the oldest
 * slot of the address holding the most. A connection is closed once the list is written, when
 * idle too long (a client that does not read), and at four idle times however it trickles. Input
 * is read and thrown away up to a line's worth; past that it is no longer read (TCP's flow control
 * stops the sender). Timers
 * run on the injected clock; a connection is anything with `read`, `write`, `closeWrite` and
 * `close` ({@linkcode ListConnection}), so that tests can serve a stand-in.
 *
 * @example
 * ```ts
 * const list = new ListService({ clock, registry, outbox, limits, log, stats, budget });
 * list.listen(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
 * await list.close();
 * ```
 * @module
 */
import { acceptEach, closeQuietly } from "../net/tcp_accept.ts";
import type { Clock, TimerId } from "../clock.ts";
import { normalizeHost } from "../net/udp.ts";
import { encodeListVersion, parseListRequest, SeedProtocolError } from "../protocol/seed.ts";
import type { AddressBudget } from "./address_budget.ts";
import type { ContactService } from "./contact_service.ts";
import { addressKey, ConnectionSlots, type Limits } from "./limits.ts";
import type { PresenceOutbox } from "./presence_outbox.ts";
import type { Registry, User } from "./registry.ts";
import { describe, type ServerLog } from "./server_log.ts";
import { type CoordinatorStats, countBy } from "./stats.ts";

/** What the list service needs of a TCP connection. */
export interface ListConnection {
  readonly remoteAddr: Deno.Addr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** Options for {@linkcode ListService}. */
export interface ListServiceOptions {
  clock: Clock;
  registry: Registry;
  outbox: PresenceOutbox;
  limits: Readonly<Limits>;
  log: ServerLog;
  stats: CoordinatorStats;
  /** A list fetch is charged to the address's logins budget. */
  budget: AddressBudget;
  /** Users a fetch admitted, once they are online (the mailbox tells them of their mail). */
  onAdmitted?: (users: readonly User[]) => void;
  /**
   * Contacts: in everyone mode, what each admitted user is told of its contacts and requests; in
   * contacts mode, whose list a fetch gets (see {@linkcode ListService.serve}). None: everyone
   * mode, and nobody is told of contacts.
   */
  contacts?: ContactService;
}

/**
 * How long a contacts-mode fetch from an address where a seed-only user is pending or online waits
 * for its `list,<name>,<secret>` line before it is served as a seed-only client's (elsewhere it
 * waits for the line until the connection's idle timeout).
 */
export const NAMED_FETCH_WAIT_MS = 500;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const END = encoder.encode("end");
/** Where input is read to be thrown away (all connections share it). */
const SCRATCH = new Uint8Array(4096);

/** Serves list fetches. */
export class ListService {
  readonly #clock: Clock;
  readonly #registry: Registry;
  readonly #outbox: PresenceOutbox;
  readonly #limits: Readonly<Limits>;
  readonly #log: ServerLog;
  readonly #stats: CoordinatorStats;
  readonly #budget: AddressBudget;
  readonly #onAdmitted: ((users: readonly User[]) => void) | undefined;
  readonly #contacts: ContactService | undefined;
  readonly #slots: ConnectionSlots<ListConnection>;
  /** Open connections, and how to close each. */
  readonly #connections = new Map<ListConnection, () => void>();
  #listener: Deno.Listener | undefined;
  #accepting: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: ListServiceOptions) {
    this.#clock = options.clock;
    this.#registry = options.registry;
    this.#outbox = options.outbox;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#stats = options.stats;
    this.#budget = options.budget;
    this.#onAdmitted = options.onAdmitted;
    this.#contacts = options.contacts;
    const { tcpPerAddress, maxTcp } = options.limits;
    this.#slots = new ConnectionSlots({ perKey: tcpPerAddress, total: maxTcp });
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
      failed: (err) => this.#log.throttled("tcp error", `TCP accept: ${err.message}`),
      clock: this.#clock,
    });
  }

  /** Closes the listener and every connection; resolves once no more are accepted. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listener?.close();
    for (const close of [...this.#connections.values()]) close();
    await this.#accepting;
  }

  /** Serves one list fetch (see the module documentation). */
  serve(conn: ListConnection): void {
    const ip = normalizeHost((conn.remoteAddr as Deno.NetAddr).hostname);
    const key = addressKey(ip);
    // Charged first: a connection refused by the budget must not evict anyone.
    if (!this.#budget.allowRequest(ip, "list fetch")) {
      closeQuietly(conn);
      return;
    }
    const verdict = this.#slots.open(key, conn);
    if (verdict.kind === "refused") {
      this.#log.limited(
        "max-tcp",
        `${this.#limits.maxTcp} TCP connections open; closed one from ${ip}`,
      );
      closeQuietly(conn);
      return;
    }
    if (verdict.kind === "evicted") {
      this.#log.limited(
        verdict.because === "total" ? "max-tcp" : "tcp-per-address",
        verdict.because === "total"
          ? `${this.#limits.maxTcp} TCP connections open; closed the oldest of ${verdict.from} ` +
            `for one from ${ip}`
          : `${ip} has ${this.#limits.tcpPerAddress} TCP connections open; closed its oldest`,
      );
      this.#connections.get(verdict.evicted)?.();
    }
    const clock = this.#clock;
    const idleMs = this.#limits.tcpIdleMs;
    let idle: TimerId | undefined;
    const touch = () => {
      clock.clearTimeout(idle);
      idle = clock.setTimeout(() => {
        this.#log.limited("tcp-idle", `connection from ${ip} idle for ${idleMs} ms; closed`);
        close();
      }, idleMs);
    };
    const deadline = clock.setTimeout(() => {
      this.#log.limited("tcp-idle", `connection from ${ip} open for ${4 * idleMs} ms; closed`);
      close();
    }, 4 * idleMs);
    const close = () => {
      if (!this.#connections.delete(conn)) return;
      clock.clearTimeout(idle);
      clock.clearTimeout(deadline);
      this.#slots.close(key, conn);
      closeQuietly(conn);
    };
    this.#connections.set(conn, close);
    touch();
    const contactsMode = this.#contacts?.mode === "contacts";
    // In contacts mode the list is the fetcher's own: it names itself on its first line.
    let named: (line: string | undefined) => void = () => {};
    const firstLine = new Promise<string | undefined>((resolve) => named = resolve);
    let wait: TimerId | undefined;
    const writing = (async () => {
      let parts: Uint8Array[];
      if (contactsMode) {
        // Only where a seed-only client may be fetching is the wait cut short; an extension
        // client's line may come late from a busy machine, and the idle timeout bounds the wait.
        if (this.#registry.hasSeedOnlyAt(ip)) {
          wait = clock.setTimeout(() => named(undefined), NAMED_FETCH_WAIT_MS);
        }
        const line = await firstLine;
        clock.clearTimeout(wait);
        parts = this.#fetchContacts(ip, line);
      } else parts = this.#fetch(ip);
      for (const part of parts) {
        for (let at = 0; at < part.length; touch()) at += await conn.write(part.subarray(at));
      }
      await conn.closeWrite();
    })();
    // Input is drained meanwhile, so that closing sends a FIN after the list, not a reset.
    (async () => {
      let input = 0;
      // The first line is read into a buffer of its own (the scratch buffer is every
      // connection's, and another read may fill it before this one's bytes are looked at).
      const head = contactsMode ? new Uint8Array(this.#limits.maxLineBytes) : undefined;
      for (
        let n = await conn.read(head?.subarray(input) ?? SCRATCH);
        n !== null;
        n = await conn.read(head && input < head.length ? head.subarray(input) : SCRATCH)
      ) {
        touch();
        if (head && input < head.length) {
          const end = head.subarray(input, input + n).indexOf(0x0a);
          if (end >= 0) named(decoder.decode(head.subarray(0, input + end)));
          else if (input + n >= head.length) named(undefined); // no line within a line's length
        }
        input += n;
        if (input > this.#limits.maxLineBytes) {
          this.#log.limited(
            "max-line",
            `${ip} sent more than ${this.#limits.maxLineBytes} bytes to the list service; ` +
              `no longer reading them`,
          );
          return;
        }
      }
    })().catch(() => {}).finally(() => named(undefined)); // a reset, or our own close
    // The list is written: done, whatever the client does with its side (holding it open would
    // let a few slow clients keep the service shut). A reset ends it too.
    writing.then(close, close);
  }

  /** Admits the pending logins from `ip`; returns the list to write, in parts. */
  #fetch(ip: string): Uint8Array[] {
    const version = this.#admit(ip);
    // A seed-only client reads everything up to the close as the list, so where one has this
    // address (the connection may be its fetch: nothing tells whose it is), no version.
    const tail = this.#registry.hasSeedOnlyAt(ip)
      ? END
      : encoder.encode("end" + encodeListVersion(version));
    return [...this.#registry.listParts(), tail];
  }

  /**
   * Contacts mode: admits the pending logins from `ip`, then writes the named user's own list
   * (its online contacts, all its contacts and requests, its version) if `line` names an online
   * user at this address with its secret; else the public list, as a seed-only client gets it.
   */
  #fetchContacts(ip: string, line: string | undefined): Uint8Array[] {
    this.#admit(ip);
    let request: { username: string; secret: string } | undefined;
    try {
      if (line !== undefined) request = parseListRequest(line);
    } catch (err) {
      if (!(err instanceof SeedProtocolError)) throw err;
    }
    const user = request && this.#registry.get(request.username);
    const own = user?.state === "online" && user.key !== undefined &&
      user.secret === request!.secret && user.observed.host === ip;
    return [own ? this.#contacts!.listFor(user) : this.#contacts!.publicList()];
  }

  /** Admits the pending logins from `ip`; returns everyone mode's presence version. */
  #admit(ip: string): number {
    this.#stats.listFetches++;
    const { admitted, refused } = this.#registry.admitFrom(ip);
    this.#stats.logins += admitted.length;
    for (const user of admitted) this.#log.line(`login ${describe(user)}`);
    const version = this.#outbox.admit(admitted);
    if (admitted.length > 0) this.#onAdmitted?.(admitted);
    if (this.#contacts?.mode === "everyone") this.#contacts.welcome(admitted);
    for (const { user, why } of refused) {
      countBy(this.#stats.refusals, why);
      if (why === "lookalike" || why === "owned") {
        this.#log.throttled(
          "rejected login",
          `refused ${user.name} from ${ip}: ` +
            (why === "owned"
              ? "another key registered the name first"
              : "it looks like a name that came online first"),
        );
        continue;
      }
      this.#log.limited(
        why === "full" ? "max-users" : why,
        why === "full"
          ? `${this.#limits.maxUsers} users online; refused ${user.name}`
          : `${ip} holds or brought online as many names as it may; refused ${user.name}`,
      );
    }
    return version;
  }
}
