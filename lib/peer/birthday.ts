/**
 * The birthday search of NAT traversal (Tailscale's "birthday paradox"), for a pair with a
 * symmetric NAT on one side and an endpoint-independent NAT (or none) on the other, as a pure
 * schedule: it says which probe to send next, to where, from which socket and with which TTL,
 * and when. The path finder (`traversal.ts`) drives it, gives each probe a txid, sends it,
 * and ends the search when a path comes up; the rules (and the odds) are in its module
 * documentation.
 *
 * - Role `sockets` (behind the symmetric NAT): probes the peer's `public` endpoint from each of
 *   K extra sockets ({@linkcode BIRTHDAY_SOCKETS} by default), in two rounds: the first with the
 *   lowest priming TTL, which opens the mappings without reaching the peer's NAT, all at once
 *   (these probes die in our own network, so they cost no one else anything, and a hit needs
 *   the mappings: the sooner they all exist, the sooner one is found); the second with the
 *   default TTL `secondRoundAfterMs` (3 s) after the start, paced.
 * - Role `spray` (behind the easy NAT): probes N distinct random ports (1024) of the peer's
 *   public address from the main socket, drawn lazily by a sparse Fisher-Yates shuffle.
 * - Both send at most `probesPerSecond` (500) probes that leave our network in any second, and
 *   stop after `windowMs` (15 s).
 *
 * Separate from the path finder because it is a schedule of its own, with its own limits, that
 * knows nothing of candidates or paths.
 *
 * @example
 * ```ts
 * import { BirthdaySearch, planBirthday } from "./birthday.ts";
 *
 * const search = new BirthdaySearch(planBirthday({ role: "spray", ports: 2 }), {
 *   target: { host: "203.0.113.9", port: 4000 },
 *   now: 0,
 *   firstRoundTtl: 2,
 *   random: () => crypto.getRandomValues(new Uint32Array(1))[0],
 * });
 * search.next(0); // { to: { host: "203.0.113.9", port: <random> }, socket: 0, ttl: undefined }
 * search.next(0); // undefined: the next one is due at 2 (500 per second)
 * search.nextDue; // 2
 * ```
 * @module
 */
import type { Endpoint } from "../protocol/endpoint.ts";

/**
 * Extra sockets a host should open for the `sockets` side of a birthday search (K): with the
 * default 1024 sprayed ports the search succeeds with probability 1 − (1 − 256/64512)^1024 ≈ 98 %.
 */
export const BIRTHDAY_SOCKETS = 256;
/**
 * Default most probes per second that leave our network (the spray, the second round): each
 * sprayed probe hits with odds K/64512, so the median hit comes after ln 2 · 64512 / K ≈ 175
 * probes, 0.35 s at this rate (docs/NAT.md, "The birthday search's arithmetic").
 */
export const BIRTHDAY_PROBES_PER_SECOND = 500;
/**
 * Default time from the start of the `sockets` side's second round: after the peer's default
 * spray (1024 ports at 500 per second, 2.05 s) is over, with a margin for the proof's relay trip.
 */
export const SECOND_ROUND_AFTER_MS = 3000;
/** First port a birthday search sprays: NATs allocate from 1024..65535 (Linux). */
const FIRST_PORT = 1024;
/** Ports a birthday search may spray. */
export const SPRAY_PORTS = 65536 - FIRST_PORT;

/**
 * The side of a birthday search behind the endpoint-independent NAT (or none): it sprays probes
 * from its main socket to random ports of the peer's public address.
 */
export interface SprayBirthdayOptions {
  role: "spray";
  /** Distinct random ports in 1024..65535 to probe (N); default 1024. */
  ports?: number;
  /** Most probes in any second, an integer in 1..1000; default 500. */
  probesPerSecond?: number;
  /** Time from the start after which the search gives up; default 15 000. */
  windowMs?: number;
}

/**
 * The side of a birthday search behind the symmetric NAT: from each extra socket it probes the
 * peer's `public` endpoint, opening as many mappings toward it; first with a low TTL, later with
 * the default one.
 */
export interface SocketsBirthdayOptions {
  role: "sockets";
  /** Ids of the extra sockets the host opened (K of them, e.g. {@linkcode BIRTHDAY_SOCKETS}). */
  sockets: number[];
  /**
   * Most probes that leave our network in any second, an integer in 1..1000; default 500. A
   * low-TTL first round is not paced: it dies in our own network.
   */
  probesPerSecond?: number;
  /** Time from the start after which the search gives up; default 15 000. */
  windowMs?: number;
  /**
   * Time from the start of the second round, with the default TTL; default 3000: after the
   * peer's default spray (1024 ports at 500 per second) is over.
   */
  secondRoundAfterMs?: number;
}

/** Options of a birthday search: which side we are, and the limits. */
export type BirthdayOptions = SprayBirthdayOptions | SocketsBirthdayOptions;

/** Validated {@linkcode BirthdayOptions} with the defaults filled in. */
export interface BirthdayPlan {
  role: BirthdayOptions["role"];
  /** `sockets`: the extra sockets, probed in this order in each round; `spray`: empty. */
  sockets: number[];
  /** Probes to send in all: N, or 2·K. */
  total: number;
  /** Most probes in any second. */
  rate: number;
  windowMs: number;
  /** `sockets`: from the start to the second round; `spray`: 0. */
  secondRoundAfterMs: number;
}

/** One probe of a birthday search, to be sent now. */
export interface BirthdayProbe {
  to: Endpoint;
  /** The local socket to send from (0: the main one). */
  socket: number;
  /** Its TTL; undefined for the socket's default. */
  ttl: number | undefined;
}

/**
 * Validates `options` and fills in the defaults. Throws `RangeError` on an invalid option.
 *
 * @example
 * ```ts
 * import { planBirthday } from "./birthday.ts";
 *
 * planBirthday({ role: "sockets", sockets: [1, 2] }).total; // 4: two rounds
 * ```
 */
export function planBirthday(options: BirthdayOptions): BirthdayPlan {
  const rate = options.probesPerSecond ?? BIRTHDAY_PROBES_PER_SECOND;
  if (!(Number.isInteger(rate) && rate >= 1 && rate <= 1000)) {
    throw new RangeError(`Invalid probesPerSecond ${rate}: must be an integer in 1..1000`);
  }
  const windowMs = options.windowMs ?? 15_000;
  if (!(Number.isFinite(windowMs) && windowMs >= 1)) {
    throw new RangeError(`Invalid windowMs ${windowMs}: must be a finite number >= 1`);
  }
  if (options.role === "spray") {
    const total = options.ports ?? 1024;
    if (!(Number.isInteger(total) && total >= 1 && total <= SPRAY_PORTS)) {
      throw new RangeError(`Invalid ports ${total}: must be an integer in 1..${SPRAY_PORTS}`);
    }
    return { role: "spray", sockets: [], total, rate, windowMs, secondRoundAfterMs: 0 };
  }
  const sockets = [...options.sockets];
  const total = 2 * sockets.length;
  if (total === 0) throw new RangeError("Invalid sockets: at least one is needed");
  const secondRoundAfterMs = options.secondRoundAfterMs ?? SECOND_ROUND_AFTER_MS;
  if (!(Number.isFinite(secondRoundAfterMs) && secondRoundAfterMs >= 0)) {
    throw new RangeError(
      `Invalid secondRoundAfterMs ${secondRoundAfterMs}: must be a finite number >= 0`,
    );
  }
  for (const [i, s] of sockets.entries()) {
    if (!(Number.isInteger(s) && s >= 1) || sockets.indexOf(s) !== i) {
      throw new RangeError(
        `Invalid socket ${s}: extra sockets must be distinct integers >= 1 (0 is the main one)`,
      );
    }
  }
  return { role: "sockets", sockets, total, rate, windowMs, secondRoundAfterMs };
}

/** Where and when a {@linkcode BirthdaySearch} starts. */
export interface BirthdayStart {
  /** `spray`: the peer's public address (the port is drawn per probe); `sockets`: its endpoint. */
  target: Endpoint;
  /** The start time, in ms. */
  now: number;
  /**
   * TTL of the `sockets` role's first round, which then goes out all at once; undefined for the
   * default TTL, paced like every probe that reaches the peer.
   */
  firstRoundTtl: number | undefined;
  /** Random u32, for the sprayed ports. */
  random: () => number;
}

/**
 * One running birthday search: which probe goes next, and when.
 *
 * @example
 * ```ts
 * import { BirthdaySearch, planBirthday } from "./birthday.ts";
 *
 * const search = new BirthdaySearch(planBirthday({ role: "sockets", sockets: [7, 8] }), {
 *   target: { host: "203.0.113.9", port: 4000 },
 *   now: 0,
 *   firstRoundTtl: 2,
 *   random: () => 0,
 * });
 * search.next(0); // { to: target, socket: 7, ttl: 2 }
 * search.next(0); // { to: target, socket: 8, ttl: 2 }: the low-TTL round goes all at once
 * search.nextDue; // 3000: the second round, with the default TTL
 * ```
 */
export class BirthdaySearch {
  readonly #role: BirthdayOptions["role"];
  readonly #target: Endpoint;
  readonly #sockets: readonly number[];
  readonly #total: number;
  readonly #rate: number;
  readonly #startAt: number;
  readonly #endAt: number;
  /** `sockets`: when the second round starts, and the TTL of the first one. */
  readonly #secondRoundAt: number;
  readonly #firstRoundTtl: number | undefined;
  readonly #random: () => number;
  #sent = 0;
  /** Times of the last `#rate` probes, oldest first: the next may go 1 s after the first. */
  #recent: number[] = [];
  /** Sparse Fisher-Yates shuffle of the port range, so that sprayed ports are distinct. */
  #swaps = new Map<number, number>();

  /** Starts a search as `plan` says, at `start.now`. */
  constructor(plan: BirthdayPlan, start: BirthdayStart) {
    this.#role = plan.role;
    this.#target = { ...start.target };
    this.#sockets = plan.sockets;
    this.#total = plan.total;
    this.#rate = plan.rate;
    this.#startAt = start.now;
    this.#endAt = start.now + plan.windowMs;
    this.#secondRoundAt = start.now + plan.secondRoundAfterMs;
    this.#firstRoundTtl = start.firstRoundTtl;
    this.#random = start.random;
  }

  /** Which side of the search this is. */
  get role(): BirthdayOptions["role"] {
    return this.#role;
  }

  /** The extra sockets it probes from (empty for `spray`). */
  get sockets(): readonly number[] {
    return this.#sockets;
  }

  /** When the search gives up. */
  get endAt(): number {
    return this.#endAt;
  }

  /** When the next probe may go, on schedule and within the rate; undefined once all went. */
  get nextDue(): number | undefined {
    if (this.#sent >= this.#total) return undefined;
    const k = this.#sockets.length;
    if (this.#burstFirstRound && this.#sent < k) return this.#startAt;
    const scheduled = this.#role === "sockets" && this.#sent >= k
      ? this.#secondRoundAt + ((this.#sent - k) * 1000) / this.#rate
      : this.#startAt + (this.#sent * 1000) / this.#rate;
    return this.#recent.length < this.#rate
      ? scheduled
      : Math.max(scheduled, this.#recent[0] + 1000);
  }

  /** `sockets` with a low-TTL first round: it goes all at once. */
  get #burstFirstRound(): boolean {
    return this.#role === "sockets" && this.#firstRoundTtl !== undefined;
  }

  /** Whether the window is over at `now`. */
  over(now: number): boolean {
    return now >= this.#endAt;
  }

  /**
   * The next probe if it is due at `now` (it counts as sent), else undefined. Call it until it
   * returns undefined: a late caller catches up, within the rate.
   */
  next(now: number): BirthdayProbe | undefined {
    const due = this.nextDue;
    if (due === undefined || due > now) return undefined;
    let to = this.#target;
    let socket = 0;
    let ttl: number | undefined;
    if (this.#role === "spray") to = { host: this.#target.host, port: this.#drawPort() };
    else {
      socket = this.#sockets[this.#sent % this.#sockets.length];
      if (this.#sent < this.#sockets.length) ttl = this.#firstRoundTtl;
    }
    this.#sent++;
    // A low-TTL probe dies in our own network: it does not count against the rate.
    if (ttl === undefined) {
      this.#recent.push(now);
      if (this.#recent.length > this.#rate) this.#recent.shift();
    }
    return { to, socket, ttl };
  }

  /** Draws a port of the range not drawn yet in this search (Fisher-Yates, lazily). */
  #drawPort(): number {
    const left = SPRAY_PORTS - this.#sent;
    const i = Math.floor(((this.#random() >>> 0) / 2 ** 32) * left);
    const last = left - 1;
    const value = this.#swaps.get(i) ?? i;
    this.#swaps.set(i, this.#swaps.get(last) ?? last);
    this.#swaps.delete(last);
    return FIRST_PORT + value;
  }
}

/**
 * The easy side's spray, armed and waiting for proof that the peer holds the public address it
 * aims at (docs/PROTOCOL.md §2.1): a proof counts once, and only within the spray's window.
 *
 * @example
 * ```ts
 * const proof = new SprayProof();
 * proof.arm(planBirthday({ role: "spray" }), 0);
 * proof.prove(40); // a valid probe from the peer's public address
 * proof.take(50, true); // the plan: start spraying now
 * ```
 */
export class SprayProof {
  #armed: { plan: BirthdayPlan; until: number } | undefined;
  /** When the last proof came (not used yet). */
  #provenAt: number | undefined;

  /** Whether a spray waits for its proof. */
  get armed(): boolean {
    return this.#armed !== undefined;
  }

  /** When the armed spray's window ends unproven. */
  get until(): number | undefined {
    return this.#armed?.until;
  }

  /** Arms `plan`'s spray at `now`, for its window. */
  arm(plan: BirthdayPlan, now: number): void {
    this.#armed = { plan, until: now + plan.windowMs };
  }

  /** Forgets the armed spray (a proof already in keeps for the next one). */
  disarm(): void {
    this.#armed = undefined;
  }

  /** The peer proved, at `now`, that it holds its public address. */
  prove(now: number): void {
    this.#provenAt = now;
  }

  /**
   * At `now`: the armed plan to start (its proof is used up), when a proof at most a window old is
   * in and `canStart`; `"expired"` once the window has ended unproven (disarmed); else nothing.
   */
  take(now: number, canStart: boolean): BirthdayPlan | "expired" | undefined {
    const armed = this.#armed;
    if (armed === undefined) return undefined;
    if (now >= armed.until) {
      this.#armed = undefined;
      return "expired";
    }
    const proof = this.#provenAt;
    if (proof === undefined || now - proof > armed.plan.windowMs || !canStart) return undefined;
    this.#armed = undefined;
    this.#provenAt = undefined;
    return armed.plan;
  }

  /** Forgets the spray and any proof. */
  clear(): void {
    this.#armed = undefined;
    this.#provenAt = undefined;
  }
}
