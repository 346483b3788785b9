/**
 * The simulated clients of the coordinator's load benchmark (`scripts/bench_load.ts`). A
 * {@linkcode ClientPool} holds some of them, each with its own UDP socket on its own loopback
 * address (127.x.y.z), and speaks the protocol as a client does: login (retried after 1 s, 5
 * tries) until `Accept`, the online list over TCP from that same address, presence datagrams,
 * heartbeats, logout. The benchmark runs one pool in its main thread and one in a Worker
 * ({@linkcode WorkerPool}), and fetches and parses every list in a third thread
 * ({@linkcode ListWorker}; this module is also the Workers' entry point), so that the storm's
 * clients receive their `Accept`s promptly while the main thread is busy with the presence
 * datagrams of thousands of others.
 *
 * Both pools write into one {@linkcode Views}, bitsets in shared memory: who is online (the
 * truth) and, for each client, who it believes is online, so the main thread can tell when every
 * online client's view is right. Each client parses every list entry (`uN,a.b.c.d:port;`) and
 * presence line it receives: after a `Presence,<from>,<to>` header, compact lines
 * (`+uN,<8 base64url chars>` online, `-uN` offline); for seed-only clients, the seed's
 * `login,uN,a.b.c.d:port` / `logout,uN,a.b.c.d:port`, one per datagram. One client in 8 also
 * checks every endpoint byte by byte against the one that client really has, in the form the line
 * uses. Each client checks that the versioned ranges of the presence datagrams it receives tile,
 * from its list's version on, with no gap and no overlap; and, as a real client does
 * (lib/peer/resync_watch.ts), one that an `Alive` shows behind still a second later fetches its
 * list again without logging in (a resync, at most one per heartbeat interval).
 *
 * @example
 * ```ts
 * const views = Views.create(1000);
 * const endpoints: Uint8Array[] = [];
 * const pool = new ClientPool(
 *   { views, lo: 0, hi: 1000, seedShare: 0, udpPort },
 *   (i) => endpoints[i],
 * );
 * pool.endpoints().forEach((ep, i) => endpoints[i] = new TextEncoder().encode(ep));
 * const lists = ListWorker.start(views, pool.endpoints());
 * pool.useLists(new PortLists(lists.channel()));
 * const storm = await pool.loginMany([...Array(1000).keys()], { rate: 2500, inflight: 500 });
 * console.log(storm.accepted, views.wrong());
 * await pool.close();
 * lists.close();
 * ```
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import { encodeBase64url } from "../lib/protocol/base64url.ts";
import { formatCompactEndpoint, parseEndpoint } from "../lib/protocol/endpoint.ts";
import { RESYNC_GRACE_MS } from "../lib/peer/resync_watch.ts";
import { parseOnlineList } from "../lib/protocol/seed.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const [L, P, U, COMMA, SEMICOLON, NL, PLUS, MINUS] = [..."lPu,;\n+-"].map((c) => c.charCodeAt(0));
const END = encoder.encode("end");
const LOGIN = encoder.encode("login,");
const LOGOUT = encoder.encode("logout,");
const PRESENCE = encoder.encode("Presence,");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Milliseconds on a clock that the main thread and the Worker share. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Its own loopback address for client `i`: 127.1.0.1, 127.1.0.2, … (never .0 or .255). */
export function addressOf(i: number): string {
  const n = Math.floor(i / 254);
  return `127.${1 + (n >> 8)}.${n & 255}.${1 + (i % 254)}`;
}

/**
 * Client `i`'s contacts in contacts mode (`p2p serve --presence contacts`): `k` of them (`k` even),
 * `i ± j × step` for j = 1 … k/2, with `step` spreading them over all `capacity` clients — a
 * symmetric graph in which every client has exactly `k` contacts, scattered, so that a storm's
 * logins reach ramp users as well as each other.
 */
export function contactsOf(i: number, capacity: number, k: number): number[] {
  const half = k / 2;
  const step = Math.max(1, Math.floor(capacity / (k + 1)));
  const out: number[] = [];
  for (let j = 1; j <= half; j++) {
    out.push((i + j * step) % capacity, (i - j * step + capacity * k) % capacity);
  }
  return out;
}

/**
 * Client `i`'s public key: made from its index, so that the coordinator's process can make the
 * contact pairs before the clients exist (a coordinator checks a key only in a takeover).
 */
export function clientKey(i: number): string {
  const bytes = new Uint8Array(32);
  new DataView(bytes.buffer).setUint32(0, i + 1);
  bytes[31] = 0x5a;
  return encodeBase64url(bytes);
}

/** A client's state, as kept in {@linkcode Views}. */
export const State = { Idle: 0, LoggingIn: 1, Online: 2, Out: 3 } as const;
/** One of {@linkcode State}'s values. */
export type State = typeof State[keyof typeof State];

/**
 * Who is online (the truth) and who each client believes is online, as bitsets over client
 * indices in one `SharedArrayBuffer`. Each client's view and state are written only by the pool
 * that holds it; the truth by both pools, with atomic operations.
 */
export class Views {
  readonly capacity: number;
  readonly buffer: SharedArrayBuffer;
  /** Contacts per client in contacts mode (each sees only them, and itself); 0: everyone. */
  readonly contacts: number;
  readonly #words: number;
  /** `[0]`: how many are online in the truth. */
  readonly #truthCount: Int32Array;
  readonly #truth: Int32Array;
  readonly #counts: Int32Array;
  readonly #states: Int32Array;
  readonly #views: Int32Array;
  /** Contacts mode: every client's contacts (as many each), one after another; made when read. */
  #contactTable: Int32Array | undefined;
  /** Where {@linkcode anyWrong} last found a wrong view. */
  #wrongHint = 0;

  private constructor(capacity: number, buffer: SharedArrayBuffer, contacts: number) {
    this.capacity = capacity;
    this.buffer = buffer;
    this.contacts = contacts;
    const words = this.#words = Math.ceil(capacity / 32);
    let at = 0;
    const take = (n: number) => new Int32Array(buffer, 4 * (at += n) - 4 * n, n);
    this.#truthCount = take(1);
    this.#truth = take(words);
    this.#counts = take(capacity);
    this.#states = take(capacity);
    this.#views = take(capacity * words);
  }

  /** Bitsets for `capacity` clients, in a new shared buffer; `contacts`: see the field. */
  static create(capacity: number, contacts = 0): Views {
    const words = Math.ceil(capacity / 32);
    return new Views(
      capacity,
      new SharedArrayBuffer(4 * (1 + words + 2 * capacity + capacity * words)),
      contacts,
    );
  }

  /** The same bitsets, in another thread. */
  static attach(capacity: number, buffer: SharedArrayBuffer, contacts = 0): Views {
    return new Views(capacity, buffer, contacts);
  }

  #isOnline(i: number): boolean {
    return (Atomics.load(this.#truth, i >>> 5) & (1 << (i & 31))) !== 0;
  }

  #sees(c: number, i: number): boolean {
    return (this.#views[c * this.#words + (i >>> 5)] & (1 << (i & 31))) !== 0;
  }

  /**
   * Contacts mode: whether client `c`'s view is its truth — itself and exactly its online
   * contacts. (Every expected one is seen, and it sees no more than that many.)
   */
  #rightAmongContacts(c: number): boolean {
    let expected = 1; // itself: its list holds it
    if (!this.#sees(c, c)) return false;
    const table = this.#contactTable ??= this.#tabulateContacts();
    const per = table.length / this.capacity;
    for (let k = c * per, end = k + per; k < end; k++) {
      const j = table[k];
      if (!this.#isOnline(j)) continue;
      expected++;
      if (!this.#sees(c, j)) return false;
    }
    return this.#counts[c] === expected;
  }

  /** Every client's contacts, once: {@linkcode contactsOf} makes an array per call. */
  #tabulateContacts(): Int32Array {
    // contactsOf gives an even number (k rounded down): the table holds that many per client.
    const per = contactsOf(0, this.capacity, this.contacts).length;
    const table = new Int32Array(this.capacity * per);
    for (let c = 0; c < this.capacity; c++) {
      table.set(contactsOf(c, this.capacity, this.contacts), c * per);
    }
    return table;
  }

  /** Whether online client `c`'s view is the truth (in contacts mode, its contacts' truth). */
  #isRight(c: number): boolean {
    if (this.contacts > 0) return this.#rightAmongContacts(c);
    if (this.#counts[c] !== this.online) return false;
    const words = this.#words;
    const base = c * words;
    for (let k = 0; k < words; k++) {
      if (this.#views[base + k] !== this.#truth[k]) return false;
    }
    return true;
  }

  /** Clients online in the truth. */
  get online(): number {
    return Atomics.load(this.#truthCount, 0);
  }

  /** Records that client `i` is (or is no longer) online. */
  setOnline(i: number, online: boolean): void {
    const bit = 1 << (i & 31);
    const old = online
      ? Atomics.or(this.#truth, i >>> 5, bit)
      : Atomics.and(this.#truth, i >>> 5, ~bit);
    if (((old & bit) !== 0) !== online) Atomics.add(this.#truthCount, 0, online ? 1 : -1);
  }

  /** Client `c`'s state. */
  state(c: number): State {
    return this.#states[c] as State;
  }

  /** Sets client `c`'s state (only the pool that holds it does). */
  setState(c: number, state: State): void {
    this.#states[c] = state;
  }

  /** Client `c` now believes client `i` is online (or not). */
  see(c: number, i: number, online: boolean): void {
    const at = c * this.#words + (i >>> 5);
    const bit = 1 << (i & 31);
    const was = (this.#views[at] & bit) !== 0;
    if (was === online) return;
    this.#views[at] ^= bit;
    this.#counts[c] += online ? 1 : -1;
  }

  /** Client `c` believes nobody is online. */
  forget(c: number): void {
    this.#views.fill(0, c * this.#words, (c + 1) * this.#words);
    this.#counts[c] = 0;
  }

  /** A copy of client `c`'s view, for {@linkcode adopt}. */
  copy(c: number): { bits: Int32Array; count: number } {
    const bits = this.#views.slice(c * this.#words, (c + 1) * this.#words);
    return { bits, count: this.#counts[c] };
  }

  /** How many client `c` believes are online. */
  count(c: number): number {
    return this.#counts[c];
  }

  /** Client `c`, who believes nobody is online, now believes what `view` says. */
  adopt(c: number, view: { bits: Int32Array; count: number }): void {
    this.#views.set(view.bits, c * this.#words);
    this.#counts[c] = view.count;
  }

  /**
   * The first wrong client (not in contacts mode): whom it sees that are not online in the truth
   * (`extra`) and whom it misses (`missing`), for the benchmark's "not converged" line.
   */
  firstWrong(): { c: number; count: number; extra: number[]; missing: number[] } | undefined {
    for (let c = 0; c < this.capacity; c++) {
      if (this.#states[c] !== State.Online || this.contacts > 0) continue;
      const extra: number[] = [];
      const missing: number[] = [];
      for (let i = 0; i < this.capacity; i++) {
        const seen = this.#sees(c, i);
        if (seen && !this.#isOnline(i)) extra.push(i);
        if (!seen && this.#isOnline(i)) missing.push(i);
      }
      if (extra.length > 0 || missing.length > 0) {
        return { c, count: this.#counts[c], extra, missing };
      }
    }
    return undefined;
  }

  /** Online clients whose view is not the truth. */
  wrong(): number {
    let n = 0;
    for (let c = 0; c < this.capacity; c++) {
      if (this.#states[c] === State.Online && !this.#isRight(c)) n++;
    }
    return n;
  }

  /**
   * Whether any online client's view is not the truth: what waiting for convergence asks many
   * times a second. It looks first where it last found one wrong and stops at the first, so that
   * only the last call (all right) reads every view: a full {@linkcode wrong} at 10,000 clients
   * with 50 contacts each takes ~10 ms of the main thread, which also reads the datagrams that
   * make the views right.
   */
  anyWrong(): boolean {
    for (let n = 0; n < this.capacity; n++) {
      const c = (this.#wrongHint + n) % this.capacity;
      if (this.#states[c] === State.Online && !this.#isRight(c)) {
        this.#wrongHint = c;
        return true;
      }
    }
    return false;
  }
}

/** What a pool's clients counted. */
export interface Totals {
  accepts: number;
  rejects: number;
  alive: number;
  byes: number;
  expired: number;
  /** Logins again after an `Expired` told an online client it was forgotten. */
  loginsAgain: number;
  /** `Mailbox,<port>,<waiting>` notices (one per admitted extension client). */
  mailbox: number;
  presenceLines: number;
  presenceDatagrams: number;
  /** Presence datagrams with a `Presence,<from>,<to>` header. */
  headed: number;
  badEndpoints: number;
  badLines: number;
  listFailures: number;
  retries: number;
  /** Logins given up after five unanswered tries. */
  gaveUp: number;
  /**
   * Gaps in a client's presence ranges (each counted once): a range received beyond its version
   * and not joined to it when {@linkcode ClientPool.checkGaps} looked, or an `Alive` naming a
   * version that the client still had not reached a second later (it would fetch its list again).
   */
  gaps: number;
  /** Presence ranges that started before the client's version: overlaps (or duplicates). */
  overlaps: number;
  /**
   * Lists fetched again without logging in, as a real client does (lib/peer/resync_watch.ts): an
   * `Alive` named a version the client still had not reached a second later.
   */
  resyncs: number;
}

function zeroTotals(): Totals {
  return {
    accepts: 0,
    rejects: 0,
    alive: 0,
    byes: 0,
    expired: 0,
    loginsAgain: 0,
    mailbox: 0,
    presenceLines: 0,
    presenceDatagrams: 0,
    headed: 0,
    badEndpoints: 0,
    badLines: 0,
    listFailures: 0,
    retries: 0,
    gaveUp: 0,
    gaps: 0,
    overlaps: 0,
    resyncs: 0,
  };
}

/** Where login time goes, in ms: waiting for `Accept`, the TCP handshake, the list's transfer. */
export interface Phases {
  accept: number[];
  connect: number[];
  transfer: number[];
}

/** What {@linkcode ClientPool.loginMany} measured. */
export interface LoginReport {
  /** When the first login was sent ({@linkcode now}). */
  t0: number;
  /** Logins accepted (first `Accept` of each), and when the last of those arrived. */
  accepted: number;
  lastAccept: number;
  /** Logins completed (list received and applied), and when the last one completed. */
  listed: number;
  lastJoin: number;
  /** Login to list, per completed login (ms). */
  latencies: number[];
  phases: Phases;
  retries: number;
}

class Client {
  readonly index: number;
  readonly name: string;
  readonly host: string;
  readonly conn: Deno.DatagramConn;
  /** `host:port` of its socket. */
  readonly endpoint: string;
  readonly seedOnly: boolean;
  /** Checks every endpoint it is told byte by byte (one client in 8: the checks are costly). */
  readonly checker: boolean;
  readonly secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
  readonly key: string;
  /** Presence datagrams that arrived while the list was being fetched: applied after it. */
  early: Uint8Array[] | undefined;
  /**
   * The presence version it has every change up to (its list's, extended by each range that
   * starts there), or undefined while its list had none (unversioned: nothing to check).
   */
  version: number | undefined;
  /** Ranges received beyond `version`, waiting for the gap before them to fill. */
  held: [number, number][] = [];
  /** The version at which a gap was last counted: each gap is counted once. */
  gapAt: number | undefined;
  /** Gaps counted at this client so far. */
  gaps = 0;
  /** The list service's port (from the last `Accept`), for resyncs. */
  tcpPort: number | undefined;
  /** Counts logins, so that a resync that straddles one is thrown away. */
  logins = 0;
  /** A resync is under way, or a grace second is running before one. */
  resyncing = false;
  grace = false;
  lastResync = -Infinity;
  loginSent = 0;
  #accept: ((port: number | undefined) => void) | undefined;

  constructor(index: number, seedOnly: boolean) {
    this.index = index;
    this.name = `u${index}`;
    this.host = addressOf(index);
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: this.host, port: 0 });
    this.endpoint = `${this.host}:${(this.conn.addr as Deno.NetAddr).port}`;
    this.seedOnly = seedOnly;
    this.checker = index % 8 === 0;
    this.key = clientKey(index);
  }

  waitAccept(): Promise<number | undefined> {
    return new Promise((resolve) => this.#accept = resolve);
  }

  onAccept(port: number | undefined): void {
    const resolve = this.#accept;
    this.#accept = undefined;
    resolve?.(port);
  }
}

/** Options for {@linkcode ClientPool}. */
export interface PoolOptions {
  views: Views;
  /** The pool holds clients `lo` to `hi - 1`. */
  lo: number;
  hi: number;
  /** Share of all clients that log in as seed-only clients (spread evenly). */
  seedShare: number;
  /** The coordinator's UDP port (its list service's port comes in `Accept`). */
  udpPort: number;
}

/** Some of the simulated clients, and what they saw. */
export class ClientPool {
  readonly views: Views;
  readonly totals: Totals = zeroTotals();
  readonly #clients: Client[] = [];
  readonly #lo: number;
  readonly #server: Deno.NetAddr;
  readonly #entries: Entries;
  /** What batched datagrams did to a view, by range: see {@linkcode #applyShared}. */
  readonly #shared = new Map<string, { bytes: Uint8Array; ops: Int32Array }>();
  #lists: Lists | undefined;
  #heartbeats: ReturnType<typeof setInterval> | undefined;
  /** Resyncs are at least this far apart per client, as a real client's (its heartbeat). */
  #heartbeatMs = 10_000;
  #closed = false;
  /** List fetches of logins again after `Expired`, at most this many at once. */
  readonly #againSlots = new Semaphore(50);
  readonly #receivers: Promise<void>[] = [];

  /** `endpointOf(i)`: the endpoint client `i` (of either pool) really has, as bytes. */
  constructor(options: PoolOptions, endpointOf: (i: number) => Uint8Array | undefined) {
    this.views = options.views;
    this.#lo = options.lo;
    this.#server = { transport: "udp", hostname: "127.0.0.1", port: options.udpPort };
    const { seedShare } = options;
    for (let i = options.lo; i < options.hi; i++) {
      // Seed-only clients spread evenly: every 1/seedShare-th client.
      const seedOnly = seedShare >= 1 ||
        (seedShare > 0 && Math.floor(i * seedShare) !== Math.floor((i + 1) * seedShare));
      const client = new Client(i, seedOnly);
      this.#clients.push(client);
      this.#receivers.push(this.#receive(client));
    }
    this.#entries = new Entries(this.views, endpointOf, this.totals);
  }

  /** Where its clients' lists are fetched and applied (before the first login). */
  useLists(lists: Lists): void {
    this.#lists = lists;
    // Every client's endpoint is known by now: their compact forms are made before anything is
    // measured. Made on first use, they cost ~10 µs each in the first flush that names them (in a
    // whole-community storm, the last flush: ~100 ms of this thread after the storm).
    this.#entries.warm();
  }

  /** Each client's endpoint (`host:port`), from client `lo` on. */
  endpoints(): string[] {
    return this.#clients.map((c) => c.endpoint);
  }

  #client(i: number): Client {
    const c = this.#clients[i - this.#lo];
    if (c === undefined) throw new RangeError(`Client ${i} is not in this pool`);
    return c;
  }

  #send(client: Client, text: string): void {
    client.conn.send(encoder.encode(text), this.#server).catch(() => {});
  }

  async #receive(client: Client): Promise<void> {
    const buf = new Uint8Array(2048);
    while (!this.#closed) {
      let data: Uint8Array;
      try {
        [data] = await client.conn.receive(buf);
      } catch {
        return; // closed
      }
      this.#handle(client, data);
    }
  }

  #handle(client: Client, data: Uint8Array): void {
    const t = this.totals;
    if (data[0] === L || (data[0] === P && startsWith(data, PRESENCE))) {
      // Presence: `Presence,<from>,<to>` then compact `+`/`-` lines, or a seed `login`/`logout`
      // line alone (for seed-only clients), parsed as bytes (there are millions of them).
      t.presenceDatagrams++;
      const state = this.views.state(client.index);
      if (state !== State.Online && state !== State.LoggingIn) return;
      if (client.early) client.early.push(data.slice());
      else this.#applyPresence(client, data);
      return;
    }
    const text = decoder.decode(data);
    if (text.startsWith("Accept,")) {
      t.accepts++;
      client.onAccept(Number(text.slice(7)));
    } else if (text.startsWith("Reject,")) {
      t.rejects++;
      client.onAccept(undefined);
    } else if (text.startsWith("Alive,")) {
      t.alive++;
      this.#onAlive(client, text);
    } else if (text.startsWith("Bye,")) {
      t.byes++;
    } else if (text.startsWith("Expired,")) {
      t.expired++;
      this.#loginAgain(client);
    } else if (text.startsWith("Mailbox,")) {
      t.mailbox++; // where the mailbox is: our clients deposit nothing
    } else if (text.startsWith("RelayLimit,")) {
      // The relay's file limit, sent beside `Mailbox`: our clients send no files.
    } else {
      t.badLines++;
    }
  }

  /**
   * `Alive,<endpoint>,<S>`: every presence datagram up to version S has been sent. A client
   * still short of S a second later (reordering aside) has lost one: counted as a gap, and, as a
   * real client does (lib/peer/resync_watch.ts: one grace second, at most one resync per
   * heartbeat interval), it fetches its list again without logging in.
   */
  #onAlive(client: Client, text: string): void {
    const comma = text.indexOf(",", 6);
    if (comma < 0 || client.version === undefined || client.grace || client.resyncing) return;
    const promised = Number(text.slice(comma + 1));
    if (!(promised > client.version)) return;
    client.grace = true;
    const logins = client.logins;
    setTimeout(() => {
      client.grace = false;
      const online = this.views.state(client.index) === State.Online;
      if (!online || logins !== client.logins || this.#closed) return;
      if (client.version === undefined || client.version >= promised) return;
      this.#gap(client);
      if (now() - client.lastResync >= this.#heartbeatMs) this.#resync(client);
    }, RESYNC_GRACE_MS);
  }

  /**
   * Fetches client's list again (a resync): presence datagrams that arrive meanwhile wait, the
   * list replaces the view, and those of the datagrams that end after the list's version are
   * applied on top (those that end before it are in the list already).
   */
  async #resync(client: Client): Promise<void> {
    client.resyncing = true;
    client.lastResync = now();
    this.totals.resyncs++;
    const logins = client.logins;
    client.early = [];
    let list: ListResult | undefined;
    try {
      this.views.forget(client.index);
      list = await this.#lists!.fetch(this.#listRequest(client, client.tcpPort!));
    } finally {
      client.resyncing = false;
    }
    // A login since then has its own list and buffer.
    if (logins !== client.logins) return;
    const early = client.early ?? [];
    client.early = undefined;
    this.totals.badLines += list.badLines;
    this.totals.badEndpoints += list.badEndpoints;
    if (!list.ok) {
      // The view was forgotten: the next `Alive` finds the client behind and tries again.
      if (this.views.state(client.index) === State.Online) this.totals.listFailures++;
      client.lastResync = -Infinity;
      return;
    }
    client.version = list.version;
    client.held = [];
    client.gapAt = undefined;
    for (const data of early) {
      const header = data[0] === P ? parseHeader(data) : undefined;
      if (header !== undefined && list.version !== undefined && header.to <= list.version) continue;
      this.#applyPresence(client, data);
    }
  }

  /** The fetch of client's list from the list service at `port`. */
  #listRequest(client: Client, port: number): ListRequest {
    return {
      // Contacts mode: a client names itself, to get its own list.
      line: this.views.contacts > 0 && !client.seedOnly
        ? `list,${client.name},${client.secret}\n`
        : undefined,
      c: client.index,
      host: client.host,
      port,
      checker: client.checker,
    };
  }

  /** Applies a presence datagram: its header's range (if any), then its lines. */
  #applyPresence(client: Client, data: Uint8Array): void {
    let i = 0;
    const headed = data[0] === P;
    if (headed) {
      this.totals.headed++;
      const header = parseHeader(data);
      if (header === undefined) {
        this.totals.badLines++;
        return;
      }
      this.#range(client, header.from, header.to);
      i = header.end + 1;
      // In contacts mode no two clients get the same datagram: nothing to share.
      if (!client.checker && this.views.contacts === 0) {
        this.#applyShared(client, data, i, header.from, header.to);
        return;
      }
    } else if (client.version !== undefined) {
      this.totals.badLines++; // a versioned list, then a datagram without a range
    }
    this.#applyLines(client, data, i, headed);
  }

  /**
   * Applies a batched datagram's lines as {@linkcode #applyLines} does, with less work for the
   * load generator: the coordinator sends the same datagram to thousands of clients, so what its
   * lines do to a view is noted the first time, and a later datagram with the same range and the
   * very same bytes (compared one by one) does the same to the next view without parsing again.
   * For clients that do not check endpoints; a datagram with a bad line is never noted.
   */
  #applyShared(client: Client, data: Uint8Array, i: number, from: number, to: number): void {
    const key = `${from},${to}`;
    const seen = this.#shared.get(key);
    if (
      seen !== undefined && seen.bytes.length === data.length && startsWith(data, seen.bytes)
    ) {
      for (const op of seen.ops) this.views.see(client.index, Math.abs(op) - 1, op > 0);
      this.totals.presenceLines += seen.ops.length;
      return;
    }
    const bad = this.totals.badLines;
    this.#entries.recorded = [];
    this.#applyLines(client, data, i, true);
    const ops = Int32Array.from(this.#entries.recorded);
    this.#entries.recorded = undefined;
    if (this.totals.badLines !== bad) return;
    if (this.#shared.size >= 4096) this.#shared.clear(); // a bound; flushes reuse few at a time
    this.#shared.set(key, { bytes: data.slice(), ops });
  }

  /** Extends the client's version by `(from, to]`, or holds the range until the gap fills. */
  #range(client: Client, from: number, to: number): void {
    if (client.version === undefined) return; // an unversioned list: nothing to check against
    if (from > client.version) {
      client.held.push([from, to]);
      return;
    }
    if (from < client.version) this.totals.overlaps++;
    client.version = Math.max(client.version, to);
    for (let k = 0; k < client.held.length; k++) {
      const [f, t] = client.held[k];
      if (f > client.version) continue;
      if (f < client.version) this.totals.overlaps++;
      client.version = Math.max(client.version, t);
      client.held.splice(k, 1);
      k = -1; // the version moved: look again from the start
    }
  }

  /**
   * Applies lines separated by newlines, from `data[i]` on: compact ones (`+uN,<compact EP>`,
   * `-uN`) after a header, seed ones (`login,uN,EP`, `logout,uN,EP`) without. A line of the other
   * form is a bad line: each kind of client gets only its own.
   */
  #applyLines(client: Client, data: Uint8Array, i: number, compact: boolean): void {
    const { index: c, checker } = client;
    while (i < data.length) {
      let end = -1;
      if (compact) {
        if (data[i] === PLUS) end = this.#entries.entry(c, checker, data, i + 1, NL, true, true);
        else if (data[i] === MINUS) end = this.#entries.gone(c, data, i + 1);
      } else if (startsWith(data, LOGIN, i)) {
        end = this.#entries.entry(c, checker, data, i + LOGIN.length, NL, true, false);
      } else if (startsWith(data, LOGOUT, i)) {
        end = this.#entries.entry(c, checker, data, i + LOGOUT.length, NL, false, false);
      }
      if (end < 0) {
        this.totals.badLines++;
        return;
      }
      this.totals.presenceLines++;
      i = end + 1;
    }
  }

  /**
   * Logs client `i` in: `login` until `Accept` (5 tries, 1 s apart), then — once one of the
   * `slots` is free — the list over TCP. Resolves with when it sent its first `login`, got its
   * first `Accept` (if it got one) and had its list (if it is online).
   */
  async login(
    i: number,
    slots: Semaphore,
    phases: Phases,
  ): Promise<{ sent: number; accepted?: number; listed?: number }> {
    const client = this.#client(i);
    this.views.setState(i, State.LoggingIn);
    this.views.forget(i);
    client.logins++;
    client.version = undefined;
    client.held = [];
    client.gapAt = undefined;
    client.loginSent = now();
    const text = client.seedOnly
      ? `login,${client.name},${client.endpoint}`
      : `login,${client.name},${client.endpoint},${client.key},${client.secret}`;
    let tcpPort: number | undefined;
    for (let attempt = 0; attempt < 5 && tcpPort === undefined; attempt++) {
      if (attempt > 0) this.totals.retries++;
      const accepted = client.waitAccept();
      this.#send(client, text);
      const timer = setTimeout(() => client.onAccept(undefined), 1000);
      tcpPort = await accepted;
      clearTimeout(timer);
    }
    if (tcpPort === undefined) {
      this.totals.gaveUp++;
      this.views.setState(i, State.Idle);
      return { sent: client.loginSent };
    }
    const acceptedAt = now();
    phases.accept.push(acceptedAt - client.loginSent);
    client.early = [];
    await slots.acquire();
    let list: ListResult;
    try {
      list = await this.#lists!.fetch(this.#listRequest(client, tcpPort));
    } finally {
      slots.release();
    }
    if (list.connectMs !== undefined) phases.connect.push(list.connectMs);
    phases.transfer.push(list.transferMs);
    this.totals.badLines += list.badLines;
    this.totals.badEndpoints += list.badEndpoints;
    if (!list.ok) {
      this.totals.listFailures++;
      this.views.setState(i, State.Idle);
      client.early = undefined;
      return { sent: client.loginSent, accepted: acceptedAt };
    }
    client.version = list.version;
    client.tcpPort = tcpPort;
    const early = client.early;
    client.early = undefined;
    for (const data of early) this.#applyPresence(client, data);
    this.views.setState(i, State.Online);
    this.views.setOnline(i, true);
    return { sent: client.loginSent, accepted: acceptedAt, listed: now() };
  }

  /**
   * Logs `indices` in, offered at `rate` per second (each login is sent when due, whatever the
   * others are doing), with at most `inflight` list fetches at once; resolves when all are done.
   */
  async loginMany(
    indices: number[],
    options: { rate: number; inflight: number },
  ): Promise<LoginReport> {
    const slots = new Semaphore(options.inflight);
    const phases: Phases = { accept: [], connect: [], transfer: [] };
    const latencies: number[] = [];
    const retries0 = this.totals.retries;
    const t0 = now();
    let lastAccept = t0;
    let lastJoin = t0;
    let accepted = 0;
    let listed = 0;
    const logins: Promise<void>[] = [];
    let started = 0;
    const deadline = t0 + 300_000;
    while (started < indices.length && now() < deadline) {
      const due = Math.min(indices.length, Math.floor((now() - t0) / 1000 * options.rate) + 1);
      while (started < due) {
        logins.push(
          this.login(indices[started++], slots, phases).then((r) => {
            if (r.accepted !== undefined) {
              accepted++;
              lastAccept = Math.max(lastAccept, r.accepted);
            }
            if (r.listed !== undefined) {
              listed++;
              lastJoin = Math.max(lastJoin, r.listed);
              latencies.push(r.listed - r.sent);
            }
          }),
        );
      }
      await sleep(1);
    }
    await Promise.all(logins);
    return {
      t0,
      accepted,
      lastAccept,
      listed,
      lastJoin,
      latencies,
      phases,
      retries: this.totals.retries - retries0,
    };
  }

  /**
   * `Expired` while online: the coordinator forgot the client (its list came after the pending
   * login was dropped, or its heartbeats did not arrive), so it is not online whatever its list
   * said. As a real client does (lib/peer/presence.ts), it logs in again; until then it is not
   * online in the truth, which every coordinator's list now matches.
   */
  #loginAgain(client: Client): void {
    if (this.views.state(client.index) !== State.Online || this.#closed) return;
    this.totals.loginsAgain++;
    this.views.setOnline(client.index, false);
    this.login(client.index, this.#againSlots, { accept: [], connect: [], transfer: [] })
      .catch(() => {});
  }

  /** Client `i` logs out. */
  logout(i: number): void {
    const client = this.#client(i);
    this.views.setState(i, State.Out);
    this.views.setOnline(i, false);
    // A client that logged in with a secret proves its logout with it (docs/PROTOCOL.md §1.3).
    const proof = client.seedOnly ? "" : `,${client.secret}`;
    this.#send(client, `logout,${client.name},${client.endpoint}${proof}`);
  }

  /** Sends every online client's heartbeat once per `intervalMs`, spread evenly, until stopped. */
  startHeartbeats(intervalMs: number): void {
    this.#heartbeatMs = intervalMs;
    let cursor = 0;
    const tickMs = 50;
    const clients = this.#clients;
    this.#heartbeats = setInterval(() => {
      const share = Math.ceil(clients.length * tickMs / intervalMs);
      for (let k = 0; k < share && clients.length > 0; k++) {
        const c = clients[cursor++ % clients.length];
        if (this.views.state(c.index) !== State.Online) continue;
        this.#send(c, c.seedOnly ? `heartbeat,${c.name}` : `heartbeat,${c.name},${c.secret}`);
      }
    }, tickMs);
  }

  /** Stops the heartbeats {@linkcode startHeartbeats} sends. */
  stopHeartbeats(): void {
    clearInterval(this.#heartbeats);
  }

  /** Counts a gap at the client's version, unless it was counted already. */
  #gap(client: Client): void {
    if (client.gapAt === client.version) return;
    client.gapAt = client.version;
    client.gaps++;
    this.totals.gaps++;
  }

  /**
   * Gaps counted so far at each client, by its endpoint (`host:port`): beside the datagrams its
   * socket dropped, they tell a gap the coordinator caused from one the kernel did.
   */
  gapsByEndpoint(): Map<string, number> {
    return new Map(this.#clients.map((c) => [c.endpoint, c.gaps]));
  }

  /**
   * Counts (in `totals.gaps`) the online clients with a presence range held beyond a gap that has
   * not filled (the datagram before it was lost), and returns the count of gaps so far.
   */
  checkGaps(): number {
    for (const c of this.#clients) {
      if (c.held.length > 0 && this.views.state(c.index) === State.Online) this.#gap(c);
    }
    return this.totals.gaps;
  }

  /** Stops the heartbeats and closes every client's socket. */
  async close(): Promise<void> {
    this.stopHeartbeats();
    this.#closed = true;
    for (const c of this.#clients) c.conn.close();
    await Promise.all(this.#receivers);
  }
}

/**
 * Parses list entries and presence lines (`uN,EP`, `uN`) into a client's view, checking
 * endpoints.
 */
class Entries {
  readonly #views: Views;
  readonly #endpointOf: (i: number) => Uint8Array | undefined;
  /** Each client's endpoint in compact form, as bytes: made from its text form on first use. */
  readonly #compact: (Uint8Array | undefined)[] = [];
  readonly #totals: { badEndpoints: number; badLines: number };
  /** The client index `#name` last read. */
  #index = 0;
  /** When set, every change made to a view is also noted here: N + 1 online, -(N + 1) offline. */
  recorded: number[] | undefined;

  constructor(
    views: Views,
    endpointOf: (i: number) => Uint8Array | undefined,
    totals: { badEndpoints: number; badLines: number },
  ) {
    this.#views = views;
    this.#endpointOf = endpointOf;
    this.#totals = totals;
  }

  /** Reads `uN` at `data[i]` (N into `#index`); returns where it ended, or -1. */
  #name(data: Uint8Array, i: number): number {
    if (data[i] !== U) return -1;
    const start = ++i;
    let index = 0;
    for (; data[i] >= 0x30 && data[i] <= 0x39; i++) index = index * 10 + data[i] - 0x30;
    if (i === start || index >= this.#views.capacity) return -1;
    this.#index = index;
    return i;
  }

  /**
   * Checks `uN,EP` at `data[i]`, ended by `stop` (or the end of `data`), against client N's real
   * endpoint (if `checker`; in compact form if `compact`), and records in client `c`'s view that N
   * is online (or not). Returns where it ended, or -1.
   */
  entry(
    c: number,
    checker: boolean,
    data: Uint8Array,
    i: number,
    stop: number,
    add: boolean,
    compact: boolean,
  ): number {
    i = this.#name(data, i);
    if (i < 0 || data[i] !== COMMA) return -1;
    const index = this.#index;
    let end = -1;
    if (checker) {
      const ep = compact ? this.#compactOf(index) : this.#endpointOf(index);
      let same = ep !== undefined && i + 1 + ep.length <= data.length;
      for (let k = 0; same && k < ep!.length; k++) same = data[i + 1 + k] === ep![k];
      if (ep !== undefined) end = i + 1 + ep.length;
      if (same && end < data.length && data[end] !== stop) same = false;
      if (!same) this.#totals.badEndpoints++;
    }
    if (end < 0 || (end < data.length && data[end] !== stop)) {
      end = data.indexOf(stop, i);
      if (end < 0) end = data.length;
    }
    this.#views.see(c, index, add);
    this.recorded?.push(add ? index + 1 : -index - 1);
    return end;
  }

  /** `uN` at `data[i]`, ended by a newline or the end of `data`: N is offline in `c`'s view. */
  gone(c: number, data: Uint8Array, i: number): number {
    i = this.#name(data, i);
    if (i < 0 || (i < data.length && data[i] !== NL)) return -1;
    this.#views.see(c, this.#index, false);
    this.recorded?.push(-this.#index - 1);
    return i;
  }

  /** Makes the compact form of every endpoint known so far ({@linkcode #compactOf}). */
  warm(): void {
    for (let i = 0; i < this.#views.capacity; i++) this.#compactOf(i);
  }

  #compactOf(i: number): Uint8Array | undefined {
    const cached = this.#compact[i];
    if (cached !== undefined) return cached;
    const ep = this.#endpointOf(i);
    if (ep === undefined) return undefined;
    return this.#compact[i] = encoder.encode(
      formatCompactEndpoint(parseEndpoint(decoder.decode(ep))),
    );
  }

  /** Applies a list's entries (without `end` and what follows it) to client `c`'s view. */
  list(c: number, checker: boolean, entries: Uint8Array): void {
    let i = 0;
    while (i < entries.length) {
      const end = this.entry(c, checker, entries, i, SEMICOLON, true, false);
      if (end < 0) {
        this.#totals.badLines++;
        return;
      }
      i = end + 1;
    }
  }
}

/**
 * Applies lists as {@linkcode Entries.list} does, with less work for the load generator: a list
 * whose bytes begin with all of the previous list's bytes (the list only grew: a storm) starts
 * from the view that list gave, then parses only the entries after it. The bytes are compared
 * one by one, so the view is exactly what a full parse would give. A checker always parses every
 * entry, since it also checks every endpoint.
 */
class ListReuse {
  readonly #views: Views;
  readonly #entries: Entries;
  #last: { entries: Uint8Array; view: { bits: Int32Array; count: number } } | undefined;

  constructor(views: Views, entries: Entries) {
    this.#views = views;
    this.#entries = entries;
  }

  apply(c: number, checker: boolean, entries: Uint8Array): void {
    // Only a view that held nothing before is the list's alone, to adopt or to be adopted.
    const empty = this.#views.count(c) === 0;
    const last = this.#last;
    let from = 0;
    if (empty && !checker && last !== undefined && startsWith(entries, last.entries)) {
      this.#views.adopt(c, last.view);
      from = last.entries.length;
    }
    this.#entries.list(c, checker, entries.subarray(from));
    this.#last = empty ? { entries, view: this.#views.copy(c) } : undefined;
  }

  /** The last list had a bad line (where parsing stopped): no later list starts from it. */
  forget(): void {
    this.#last = undefined;
  }
}

/** A list fetch for client `c`, from its own address, by the lists' Worker. */
export interface ListRequest {
  /** What the client writes first (contacts mode: `list,<name>,<secret>`). */
  line?: string;
  c: number;
  host: string;
  port: number;
  checker: boolean;
}

/** What a list fetch did: on success, the list is in the client's view. */
export interface ListResult {
  ok: boolean;
  /** The list's presence version, if it had one. */
  version?: number;
  connectMs?: number;
  transferMs: number;
  badLines: number;
  badEndpoints: number;
}

/** Fetches and applies lists. */
export interface Lists {
  fetch(request: ListRequest): Promise<ListResult>;
}

/**
 * Fetches each list over TCP and applies it to the client's view, in a Worker of its own: lists
 * of ten thousand entries take a millisecond each to parse, time that the threads receiving the
 * clients' datagrams (and timing their `Accept`s) cannot spare. Each pool talks to it over a
 * `MessagePort` of its own ({@linkcode ListWorker.channel}).
 */
export class ListWorker {
  readonly #worker: Worker;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /** Starts the Worker; `endpoints`: every client's, by index (for checkers). */
  static start(views: Views, endpoints: string[]): ListWorker {
    const worker = new Worker(import.meta.url, { type: "module" });
    const init: ListsInit = {
      role: "lists",
      contacts: views.contacts,
      capacity: views.capacity,
      buffer: views.buffer,
      endpoints,
    };
    worker.postMessage(init);
    return new ListWorker(worker);
  }

  /** A new channel to the Worker: the port to hand to a pool ({@linkcode PortLists}). */
  channel(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    this.#worker.postMessage(port1, [port1]);
    return port2;
  }

  /** Stops the Worker (its fetches in progress are dropped). */
  close(): void {
    this.#worker.terminate();
  }
}

/** {@linkcode Lists} over a `MessagePort` to the {@linkcode ListWorker}. */
export class PortLists implements Lists {
  readonly #port: MessagePort;
  readonly #replies = new Map<number, (result: ListResult) => void>();
  #next = 0;

  constructor(port: MessagePort) {
    this.#port = port;
    port.onmessage = (e: MessageEvent<{ id: number; result: ListResult }>) => {
      this.#replies.get(e.data.id)?.(e.data.result);
      this.#replies.delete(e.data.id);
    };
  }

  /** Asks the Worker to fetch and apply a list; resolves with what it did. */
  fetch(request: ListRequest): Promise<ListResult> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#replies.set(id, resolve);
      this.#port.postMessage({ id, request });
    });
  }

  /** Closes the port. */
  close(): void {
    this.#port.close();
  }
}

/** The first message to the lists' Worker. */
interface ListsInit {
  role: "lists";
  contacts: number;
  capacity: number;
  buffer: SharedArrayBuffer;
  endpoints: string[];
}

/** The lists' Worker: answers fetch requests on each port it is given. */
function serveLists(init: ListsInit, scope: WorkerScope): void {
  const views = Views.attach(init.capacity, init.buffer, init.contacts);
  const endpoints = init.endpoints.map((ep) => encoder.encode(ep));
  const counts = { badEndpoints: 0, badLines: 0 };
  const entries = new Entries(views, (i) => endpoints[i], counts);
  const reuse = new ListReuse(views, entries);
  scope.onmessage = (e: MessageEvent) => {
    const port = e.data as MessagePort;
    port.onmessage = async (m: MessageEvent<{ id: number; request: ListRequest }>) => {
      const { id, request } = m.data;
      const phases = { connect: [] as number[], transfer: [] as number[] };
      const list = await fetchList(request.host, request.port, phases, request.line);
      const parsed = list === undefined ? undefined : splitList(list);
      counts.badEndpoints = counts.badLines = 0;
      if (parsed !== undefined) reuse.apply(request.c, request.checker, parsed.entries);
      if (counts.badLines > 0) reuse.forget();
      const result: ListResult = {
        ok: parsed !== undefined,
        version: parsed?.version,
        connectMs: phases.connect[0],
        transferMs: phases.transfer[0],
        ...counts,
      };
      port.postMessage({ id, result });
    };
  };
}

/** At most `n` holders at once. */
export class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(n: number) {
    this.#free = n;
  }

  /** Resolves once a place is free, taking it. */
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Gives a place back (to the longest waiting, if any). */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/**
 * Whether `data` holds `prefix` at `at`, compared byte for byte: four bytes at a time when both
 * are aligned and the prefix is long (a datagram or a list, not a word like `login,`).
 */
function startsWith(data: Uint8Array, prefix: Uint8Array, at = 0): boolean {
  const n = prefix.length;
  if (data.length < at + n) return false;
  let k = 0;
  const start = data.byteOffset + at;
  if (n >= 64 && start % 4 === 0 && prefix.byteOffset % 4 === 0) {
    const a = new Int32Array(data.buffer, start, n >>> 2);
    const b = new Int32Array(prefix.buffer, prefix.byteOffset, n >>> 2);
    for (; k < a.length; k++) if (a[k] !== b[k]) return false;
    k *= 4;
  }
  for (; k < n; k++) if (data[at + k] !== prefix[k]) return false;
  return true;
}

/** `Presence,<from>,<to>` at the start of `data`, ended by a newline or the end: where it ends. */
function parseHeader(data: Uint8Array): { from: number; to: number; end: number } | undefined {
  let i = PRESENCE.length;
  const number = (): number | undefined => {
    const start = i;
    let n = 0;
    for (; data[i] >= 0x30 && data[i] <= 0x39 && i - start < 16; i++) n = n * 10 + data[i] - 0x30;
    return i > start ? n : undefined;
  };
  const from = number();
  if (from === undefined || data[i++] !== COMMA) return undefined;
  const to = number();
  if (to === undefined || to < from || (i < data.length && data[i] !== NL)) return undefined;
  return { from, to, end: i };
}

/**
 * A list as the list service writes it: entries, `end`, and for extension clients a line
 * `version,<V>`. Returns the entries' bytes (without `end`) and the version, or undefined if it
 * is not a whole list.
 */
export function splitList(list: Uint8Array): { entries: Uint8Array; version?: number } | undefined {
  const endsAt = (at: number) => at >= 3 && startsWith(list.subarray(at - 3), END);
  if (endsAt(list.length)) return { entries: list.subarray(0, list.length - 3) };
  // The first newline follows `end` (a contacts-mode list has contact lines before the version).
  const nl = list.indexOf(NL);
  if (nl < 0 || !endsAt(nl)) return undefined;
  try {
    // The codec checks the trailer; the entries are checked as they are applied.
    const { version } = parseOnlineList("end" + decoder.decode(list.subarray(nl)));
    return version === undefined ? undefined : { entries: list.subarray(0, nl - 3), version };
  } catch {
    return undefined;
  }
}

/** Reads the whole list from the TCP service, from the client's own address. */
function fetchList(
  localAddress: string,
  port: number,
  phases: { connect: number[]; transfer: number[] },
  line?: string,
): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    const t0 = now();
    let t1 = t0;
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      t1 = now();
      phases.connect.push(t1 - t0);
    });
    if (line !== undefined) socket.write(line);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      phases.transfer.push(now() - t1);
      resolve(chunks.length === 0 ? undefined : Buffer.concat(chunks));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// A pool in a Worker, driven from the main thread by messages.

/** Requests to a pool in a Worker. */
type Request =
  | { op: "useLists"; port: MessagePort }
  | { op: "loginMany"; indices: number[]; rate: number; inflight: number }
  | { op: "logout"; index: number }
  | { op: "startHeartbeats"; intervalMs: number }
  | { op: "stopHeartbeats" }
  | { op: "checkGaps" }
  | { op: "totals" }
  | { op: "cpu" }
  | { op: "close" };

/** The first message to a pool's Worker: the pool to make. */
interface PoolInit {
  role: "pool";
  contacts: number;
  capacity: number;
  buffer: SharedArrayBuffer;
  lo: number;
  hi: number;
  seedShare: number;
  udpPort: number;
  /** Every other client's endpoint, by index (for checkers). */
  endpoints: string[];
}

/** What a Worker sees of its global scope. */
interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(value: unknown, transfer?: Transferable[]): void;
}

/**
 * Datagrams the kernel dropped so far at each IPv4 UDP socket of this machine, for a full receive
 * buffer, by its local address as `/proc/net/udp` writes it (`procAddress` of lib/net/linux_udp.ts).
 */
export function socketDrops(): Map<string, number> {
  const drops = new Map<string, number>();
  for (const line of Deno.readTextFileSync("/proc/net/udp").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 13) drops.set(f[1], Number(f.at(-1)));
  }
  return drops;
}

/** CPU seconds used by the calling thread. */
export function threadCpu(): number {
  const stat = Deno.readTextFileSync("/proc/thread-self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * A {@linkcode ClientPool} in a Worker of its own (its own thread and event loop), with the same
 * methods, asynchronous.
 */
export class WorkerPool {
  readonly #worker: Worker;
  readonly #replies = new Map<number, (value: unknown) => void>();
  #next = 0;
  /** Its clients' endpoints (`host:port`), from client `lo` on. */
  endpoints: string[] = [];

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<{ id: number; value: unknown }>) => {
      this.#replies.get(e.data.id)?.(e.data.value);
      this.#replies.delete(e.data.id);
    };
  }

  /** Starts the Worker and makes its clients; `endpoints`: every other client's, by index. */
  static async start(options: PoolOptions & { endpoints: string[] }): Promise<WorkerPool> {
    const worker = new Worker(import.meta.url, { type: "module" });
    const pool = new WorkerPool(worker);
    const init: PoolInit = {
      role: "pool",
      contacts: options.views.contacts,
      capacity: options.views.capacity,
      buffer: options.views.buffer,
      lo: options.lo,
      hi: options.hi,
      seedShare: options.seedShare,
      udpPort: options.udpPort,
      endpoints: options.endpoints,
    };
    pool.endpoints = await pool.#call<string[]>(init);
    return pool;
  }

  #call<T>(message: Request | PoolInit, transfer: Transferable[] = []): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve) => {
      this.#replies.set(id, resolve as (value: unknown) => void);
      this.#worker.postMessage({ id, message }, transfer);
    });
  }

  /** Where its clients' lists are fetched: a port from {@linkcode ListWorker.channel}. */
  useLists(port: MessagePort): Promise<void> {
    return this.#call({ op: "useLists", port }, [port]);
  }

  /** {@linkcode ClientPool.loginMany}, in the Worker. */
  loginMany(indices: number[], options: { rate: number; inflight: number }): Promise<LoginReport> {
    return this.#call({ op: "loginMany", indices, ...options });
  }

  /** {@linkcode ClientPool.logout}, in the Worker. */
  logout(index: number): Promise<void> {
    return this.#call({ op: "logout", index });
  }

  /** {@linkcode ClientPool.startHeartbeats}, in the Worker. */
  startHeartbeats(intervalMs: number): Promise<void> {
    return this.#call({ op: "startHeartbeats", intervalMs });
  }

  /** {@linkcode ClientPool.stopHeartbeats}, in the Worker. */
  stopHeartbeats(): Promise<void> {
    return this.#call({ op: "stopHeartbeats" });
  }

  /** {@linkcode ClientPool.checkGaps}, in the Worker. */
  checkGaps(): Promise<number> {
    return this.#call({ op: "checkGaps" });
  }

  /** The Worker's pool's {@linkcode Totals}. */
  totals(): Promise<Totals> {
    return this.#call({ op: "totals" });
  }

  /** CPU seconds used by the Worker's thread. */
  cpu(): Promise<number> {
    return this.#call({ op: "cpu" });
  }

  /** Closes the Worker's pool, then the Worker. */
  async close(): Promise<void> {
    await this.#call({ op: "close" });
    this.#worker.terminate();
  }
}

/** A pool's Worker: makes the pool, then answers requests. */
function servePool(scope: WorkerScope): void {
  let pool: ClientPool | undefined;
  let lists: PortLists | undefined;
  let endpoints: Uint8Array[] = [];
  scope.onmessage = async (e: MessageEvent<{ id: number; message: Request | PoolInit }>) => {
    const { id, message } = e.data;
    const reply = (value?: unknown) => scope.postMessage({ id, value });
    if (!("op" in message)) {
      const views = Views.attach(message.capacity, message.buffer, message.contacts);
      endpoints = message.endpoints.map((ep) => encoder.encode(ep));
      pool = new ClientPool({ ...message, views }, (i) => endpoints[i]);
      pool.endpoints().forEach((ep, k) => endpoints[message.lo + k] = encoder.encode(ep));
      return reply(pool.endpoints());
    }
    switch (message.op) {
      case "useLists":
        lists = new PortLists(message.port);
        return reply(pool!.useLists(lists));
      case "loginMany":
        return reply(await pool!.loginMany(message.indices, message));
      case "logout":
        return reply(pool!.logout(message.index));
      case "startHeartbeats":
        return reply(pool!.startHeartbeats(message.intervalMs));
      case "stopHeartbeats":
        return reply(pool!.stopHeartbeats());
      case "checkGaps":
        return reply(pool!.checkGaps());
      case "totals":
        return reply(pool!.totals);
      case "cpu":
        return reply(threadCpu());
      case "close":
        await pool!.close();
        lists?.close();
        return reply();
    }
  };
}

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  // The first message says which Worker this is.
  const scope = self as unknown as WorkerScope;
  scope.onmessage = (e: MessageEvent) => {
    if (e.data?.role === "lists") {
      serveLists(e.data, scope);
    } else {
      servePool(scope);
      scope.onmessage!(e);
    }
  };
}
