/**
 * The presence outbox: when and how the changes {@linkcode PresenceFanout} batches reach the
 * socket (docs/PROTOCOL.md §3.1, docs/LOAD.md). What to say is the fanout's job; this room paces
 * it, so that the coordinator keeps answering while it tells ten thousand users of a login storm:
 *
 * - **Paced.** A change after a quiet spell goes out at once (with `afterTurn`, once the turn of
 *   the event loop that made it has ended); the pause after a flush is in
 *   proportion to what the flush sent ({@linkcode PAUSE_PER_DATAGRAM_MS}), capped at `batchMs`,
 *   and changes that come meanwhile share the next flush. The pause is cut short once two
 *   datagrams' worth of lines wait ({@linkcode EARLY_FLUSH_BYTES}). (Paying pauses from idle time
 *   banked before a flush sped lone changes up, but raised clustered coordinators' RSS peaks to
 *   196-273 MiB at 10,000 users, against 123-138 without: not kept, docs/LOAD.md.)
 * - **In rounds.** Round r sends every batch's datagram r to each of its members, so no member's
 *   socket (or home router) gets a burst — which seed-only clients, one message per datagram,
 *   would overflow.
 * - **In slices.** {@linkcode SLICE} datagrams at a time, then the outbox waits for the socket's
 *   queue to run low ({@linkcode LOW_WATER}), in a turn of the event loop of its own: sends queue
 *   without limit, so neither the event loop nor memory is swamped, and datagrams that came in
 *   meanwhile are read between slices (on Linux the sends leave at once, lib/net/linux_udp.ts).
 * - **Handed version.** Once a flush's last datagram is handed to the socket, its version is the
 *   one `Alive` tells an extension client ({@linkcode PresenceOutbox.handedTo}).
 *
 * Someone who left meanwhile is not told. Sends and time are injected: no I/O of its own.
 *
 * @example
 * ```ts
 * const outbox = new PresenceOutbox({
 *   clock: realClock,
 *   socket: udp, // a UdpSocket: send() and whenInFlightAtMost()
 *   isCurrent: (user) => registry.get(user.name) === user,
 * });
 * outbox.admit([alice]); // alice's list is at this version; everyone else hears of her login
 * ```
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { encodeServerMessage, MAX_BATCH_DATAGRAM } from "../protocol/seed.ts";
import { ContactFanout } from "./contact_fanout.ts";
import { type Fanout, type FanoutBatch, PresenceFanout, type PresenceLines } from "./fanout.ts";
import type { User } from "./registry.ts";

/** Datagrams sent per slice of a presence flush, before other work gets a turn. */
export const SLICE = 1_000;
/** The outbox goes on once no more than this many datagrams are still queued. */
export const LOW_WATER = 200;
/**
 * Pause after a presence flush per datagram it sent, in ms (about twice a send's cost): the
 * outbox spends at most about a third of the time sending.
 */
export const PAUSE_PER_DATAGRAM_MS = 0.02;
/**
 * A flush starts at once, pause or not, when this many bytes of batched lines wait: two full
 * datagrams. Waiting longer would save at most one partly filled datagram per client, and only
 * delay the rest.
 */
export const EARLY_FLUSH_BYTES = 2 * MAX_BATCH_DATAGRAM;

/** Where the outbox's datagrams go: a socket, or a test's stand-in. */
export interface OutboxSocket {
  /** Hands a datagram to the socket. */
  send(bytes: Uint8Array, to: Endpoint): void;
  /** Calls `fn` once no more than `count` datagrams handed to `send` are still queued. */
  whenInFlightAtMost(count: number, fn: () => void): void;
}

/** Options for {@linkcode PresenceOutbox}. */
export interface PresenceOutboxOptions {
  clock: Clock;
  socket: OutboxSocket;
  /** Whether `user` is still the one under its name: someone who left meanwhile is not told. */
  isCurrent: (user: User) => boolean;
  /** Longest pause between two flushes, in ms; default 250. */
  batchMs?: number;
  /**
   * A flush that would start at once starts after the current turn of the event loop instead (a
   * zero timeout). With `--cluster`: the cluster publishes the same change in that turn, and its
   * NATS write goes out only when the turn ends, so our first slice (up to {@linkcode SLICE}
   * sends) would hold up every other member's clients. Default false.
   */
  afterTurn?: boolean;
  /**
   * Who is told what: default a {@linkcode PresenceFanout} (everyone mode: every change to every
   * member); contacts mode passes a `ContactFanout`.
   */
  fanout?: Fanout<User>;
}

/** Presence changes on their way out. */
export class PresenceOutbox {
  readonly #fanout: Fanout<User>;
  readonly #clock: Clock;
  readonly #socket: OutboxSocket;
  readonly #isCurrent: (user: User) => boolean;
  readonly #batchMs: number;
  readonly #afterTurn: boolean;
  #timer: TimerId | undefined;
  /** The timer waits for a storm hold (contacts mode), which may end before it. */
  #holding = false;
  #dueAt = 0;
  /** No flush before this time (ms): the pause after the last flush. */
  #quietUntil = 0;
  /** Datagrams the current flush has sent so far. */
  #flushSent = 0;
  /** The current flush's batches still to send, and where in them we are. */
  #batches: FanoutBatch<User>[] = [];
  #cursor = { round: 0, batch: 0, member: 0 };
  #closed = false;
  /** {@linkcode whenHanded} callbacks: for changes not yet taken, and for the current flush. */
  #onHanded: { waiting: (() => void)[]; flushing: (() => void)[] } = { waiting: [], flushing: [] };

  constructor(options: PresenceOutboxOptions) {
    this.#clock = options.clock;
    this.#socket = options.socket;
    this.#isCurrent = options.isCurrent;
    this.#batchMs = options.batchMs ?? 250;
    this.#afterTurn = options.afterTurn ?? false;
    this.#fanout = options.fanout ?? new PresenceFanout<User>();
  }

  /** Presence datagrams waiting to be sent (0 once every member has been told everything). */
  get backlog(): number {
    let n = this.#fanout.pending > 0 ? 1 : 0;
    const { round, batch, member } = this.#cursor;
    this.#batches.forEach((b, i) => {
      const count = b.count ?? b.datagrams.length; // not packing a lazy batch to count it
      const done = Math.min(count, round + (i < batch ? 1 : 0));
      n += b.members.length * (count - done) - (i === batch ? member : 0);
    });
    return n;
  }

  /**
   * Admits users whose online list is being written: everyone else (who may see them) is told of
   * their logins, and they are told of every change after this one. Each one's `listVersion` is
   * set to the version its list is at; returns everyone mode's version (the same for all), or 0
   * in contacts mode, where each member has its own ({@linkcode versionFor}).
   */
  admit(users: readonly User[]): number {
    for (const user of users) this.#announce("login", user);
    // Joined after their own login was recorded: their list has it, and everything before it.
    for (const user of users) this.#fanout.add(user, { batched: user.key !== undefined });
    this.schedule();
    for (const user of users) user.listVersion = this.#fanout.versionFor(user);
    return this.#fanout instanceof PresenceFanout ? this.#fanout.version : 0;
  }

  /** The presence version a list written now for `user` is at. */
  versionFor(user: User): number {
    return this.#fanout.versionFor(user);
  }

  /**
   * Queues a presence line about `about` for `user` alone (contacts mode: they just became
   * contacts, or stopped being; `online` false sends `-<name>`). Call {@linkcode schedule} after.
   */
  tell(user: User, about: User, online: boolean): void {
    if (!(this.#fanout instanceof ContactFanout)) return;
    this.#fanout.tell(user, about.name, lines(online ? "login" : "logout", about));
  }

  /**
   * A user another cluster member holds came online there (docs/CLUSTER.md): everyone here hears
   * of it, batched as any login; it is no member of this outbox (its own coordinator tells it).
   * Call {@linkcode schedule} after.
   */
  joinedElsewhere(user: User): void {
    this.#announce("login", user);
  }

  /** A user logged out or expired: no longer told anything; everyone else hears it left. */
  leave(user: User): void {
    this.#fanout.remove(user);
    if (user.state === "online") this.#announce("logout", user);
  }

  /** A user's endpoint changed (its NAT's mapping did): everyone else learns the new one. */
  moved(user: User): void {
    if (user.state === "online") this.#announce("login", user);
  }

  /** Whether `user` gets batched, versioned datagrams (false for seed-only users). */
  isBatched(user: User): boolean {
    return this.#fanout.isBatched(user);
  }

  /**
   * The version `Alive` tells an online extension user: every presence datagram for it up to
   * this version has been handed to the socket (its list had the changes up to its own version).
   */
  handedTo(user: User): number {
    return Math.max(this.#fanout.handedTo(user), user.listVersion ?? 0);
  }

  /**
   * Flushes the changes recorded so far after the pause that follows the previous flush: a change
   * after a quiet spell goes out at once (before the handler that made it even answers its
   * client, as the seed's broadcast did), changes that pile up meanwhile share the next flush's
   * datagrams. Once two datagrams' worth wait ({@linkcode EARLY_FLUSH_BYTES}), the pause is cut
   * short, but not a storm hold (contacts mode). Call it after recording changes.
   */
  schedule(): void {
    this.#plan(false);
  }

  /** {@linkcode schedule}; `ownTurn`: called from a timer of ours, a turn of its own already. */
  #plan(ownTurn: boolean): void {
    if (this.#batches.length > 0 || this.#closed) return;
    if (this.#fanout.pending === 0) {
      // Nothing to send: what was waiting is handed (a fan-out whose last member left dropped it).
      const waiting = this.#onHanded.waiting;
      this.#onHanded.waiting = [];
      for (const fn of waiting) fn();
      return;
    }
    // Contacts mode may hold lines through a login storm (`storm_hold.ts`). Two datagrams' worth
    // waiting does not cut a hold short: there `pendingBytes` is one member's backlog, and a
    // member with many contacts logging in would make every flush of the storm immediate for all.
    const hold = this.#fanout.holdMs();
    const full = hold === 0 && this.#fanout.pendingBytes >= EARLY_FLUSH_BYTES;
    if (this.#timer !== undefined) {
      // A storm hold may end sooner than its timer was set for (no login left pending).
      if (!full && !(this.#holding && this.#clock.now() + hold < this.#dueAt)) return;
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const wait = full ? 0 : Math.max(this.#quietUntil - this.#clock.now(), hold);
    this.#holding = hold > 0;
    this.#dueAt = this.#clock.now() + wait;
    if (wait > 0) this.#timer = this.#clock.setTimeout(this.#due, wait);
    else if (this.#afterTurn && !full && !ownTurn) {
      this.#timer = this.#clock.setTimeout(this.#due, 0);
    } else this.#flush();
  }

  /**
   * Calls `fn` once every change recorded so far has been handed to the socket for every member
   * (at once if it has): the cluster times its hop to our clients with it. Never called after
   * {@linkcode close}.
   */
  whenHanded(fn: () => void): void {
    if (this.#fanout.pending > 0) this.#onHanded.waiting.push(fn);
    else if (this.#batches.length > 0) this.#onHanded.flushing.push(fn);
    else fn();
  }

  /** A pause or a hold ran out: flush, unless the hold was extended meanwhile (contacts mode). */
  readonly #due = (): void => {
    this.#timer = undefined;
    this.#plan(true);
  };

  /** Stops: nothing more is sent. */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#batches = [];
  }

  /** Records a presence change; {@linkcode schedule} sends it. */
  #announce(type: "login" | "logout", user: User): void {
    this.#fanout.record(user.name, lines(type, user), user);
  }

  /** Hands the changes recorded so far to the outbox and starts sending them. */
  readonly #flush = (): void => {
    this.#timer = undefined;
    this.#flushSent = 0;
    this.#batches = this.#fanout.take();
    this.#onHanded = { waiting: [], flushing: this.#onHanded.waiting };
    this.#cursor = { round: 0, batch: 0, member: 0 };
    this.#drain();
  };

  /**
   * Sends a slice of the outbox, then lets other work run until the socket's queue has run low;
   * once the outbox is empty, changes recorded meanwhile get their flush after a pause.
   */
  readonly #drain = (): void => {
    if (this.#closed) return;
    let budget = SLICE;
    const cursor = this.#cursor;
    while (this.#batches.length > 0 && budget > 0) {
      const { members, datagrams } = this.#batches[cursor.batch];
      if (cursor.round < datagrams.length) {
        const datagram = datagrams[cursor.round];
        while (cursor.member < members.length && budget > 0) {
          const user = members[cursor.member++];
          // Someone who left meanwhile (or whose name was taken over) is not told.
          if (!this.#isCurrent(user)) continue;
          this.#socket.send(datagram, user.observed);
          budget--;
          this.#flushSent++;
        }
        if (cursor.member < members.length) break; // out of budget mid-batch
      }
      cursor.member = 0;
      if (++cursor.batch === this.#batches.length) {
        cursor.batch = 0;
        cursor.round++;
        this.#batches = this.#batches.filter((b) => b.datagrams.length > cursor.round);
      }
    }
    if (this.#batches.length > 0) {
      this.#socket.whenInFlightAtMost(LOW_WATER, this.#drain);
      return;
    }
    this.#fanout.handed();
    const handed = this.#onHanded.flushing;
    this.#onHanded.flushing = [];
    for (const fn of handed) fn();
    const pause = Math.min(this.#batchMs, this.#flushSent * PAUSE_PER_DATAGRAM_MS);
    this.#quietUntil = this.#clock.now() + pause;
    this.schedule();
  };
}

/**
 * A change about `user` in both its forms: the seed's message and the compact line, each written
 * when first read (a fan-out with nobody to tell reads neither).
 */
function lines(type: "login" | "logout", user: User): PresenceLines {
  const username = user.name;
  const endpoint = user.observed;
  let seed: string | undefined;
  let batched: string | undefined;
  return {
    get seed() {
      return seed ??= encodeServerMessage({ type, username, endpoint });
    },
    get batched() {
      return batched ??= encodeServerMessage(
        type === "login" ? { type: "online", username, endpoint } : { type: "offline", username },
      );
    },
  };
}
