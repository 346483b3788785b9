/**
 * The probes of NAT traversal awaiting an ack, by transaction id: each probe carries a random
 * 32-bit txid, and an ack counts only if it names one of ours, sent within the last 5 s and not
 * acknowledged before. Normal probes are remembered up to the last
 * {@linkcode MAX_PENDING_PROBES}; a birthday search's, which come by the thousand, each for 5 s
 * in a list of their own, so that they never push out the normal ones.
 *
 * Separate from the path finder (`traversal.ts`) because matching acks to probes is the same
 * whatever the probe was for; the finder decides what an answered probe means.
 *
 * @example
 * ```ts
 * import { ProbeTransactions } from "./probe_transactions.ts";
 *
 * const txns = new ProbeTransactions(() => crypto.getRandomValues(new Uint32Array(1))[0]);
 * const txid = txns.probe({ host: "203.0.113.9", port: 4000 }, 0, 100);
 * txns.take(txid, 150); // { probe: { endpoint, socket: 0, sentAt: 100 }, birthday: false }
 * txns.take(txid, 150); // undefined: acknowledged already
 * ```
 * @module
 */
import type { Endpoint } from "../protocol/endpoint.ts";

/**
 * Most probes whose txid is remembered (enough for the fast phase with every candidate).
 * Birthday probes are remembered apart, each for 5 s.
 */
export const MAX_PENDING_PROBES = 256;
/** How long an ack is accepted after its probe was sent. */
const PROBE_LIFETIME_MS = 5000;

/** A probe awaiting its ack. */
export interface PendingProbe {
  endpoint: Endpoint;
  /** The local socket it left from. */
  socket: number;
  sentAt: number;
}

/** An acknowledged probe, and whether a birthday search sent it. */
export interface AnsweredProbe {
  probe: PendingProbe;
  birthday: boolean;
}

/**
 * Txids of the probes in flight.
 *
 * @example
 * ```ts
 * import { ProbeTransactions } from "./probe_transactions.ts";
 *
 * const txns = new ProbeTransactions(() => crypto.getRandomValues(new Uint32Array(1))[0]);
 * const txid = txns.birthdayProbe({ host: "203.0.113.9", port: 31337 }, 0, 0);
 * txns.take(txid, 6000); // undefined: too late
 * ```
 */
export class ProbeTransactions {
  readonly #random: () => number;
  #probes = new Map<number, PendingProbe>();
  /** Txids of birthday probes, in the order sent. */
  #birthday = new Map<number, PendingProbe>();

  /** Creates an empty list; `random` returns a u32, for txids. */
  constructor(random: () => number) {
    this.#random = random;
  }

  /** Records a normal probe to `endpoint` from `socket` at `now`; returns its new txid. */
  probe(endpoint: Endpoint, socket: number, now: number): number {
    const txid = this.#newTxid();
    this.#probes.set(txid, { endpoint, socket, sentAt: now });
    if (this.#probes.size > MAX_PENDING_PROBES) {
      this.#probes.delete(this.#probes.keys().next().value!);
    }
    return txid;
  }

  /** Records a birthday probe to `endpoint` from `socket` at `now`; returns its new txid. */
  birthdayProbe(endpoint: Endpoint, socket: number, now: number): number {
    const txid = this.#newTxid();
    for (const [id, p] of this.#birthday) {
      if (now - p.sentAt <= PROBE_LIFETIME_MS) break;
      this.#birthday.delete(id);
    }
    this.#birthday.set(txid, { endpoint, socket, sentAt: now });
    return txid;
  }

  /**
   * Takes the probe an ack of `txid` at `now` answers: undefined when the txid is unknown,
   * already acknowledged, or older than 5 s. Either way the txid is forgotten.
   */
  take(txid: number, now: number): AnsweredProbe | undefined {
    const birthday = !this.#probes.has(txid);
    const probe = this.#probes.get(txid) ?? this.#birthday.get(txid);
    this.#probes.delete(txid);
    this.#birthday.delete(txid);
    if (probe === undefined || now - probe.sentAt > PROBE_LIFETIME_MS) return undefined;
    return { probe, birthday };
  }

  /** Forgets every probe. */
  clear(): void {
    this.#probes.clear();
    this.#birthday.clear();
  }

  /** A random txid not in use. */
  #newTxid(): number {
    let txid = this.#random() >>> 0;
    while (this.#probes.has(txid) || this.#birthday.has(txid)) {
      txid = this.#random() >>> 0;
    }
    return txid;
  }
}
