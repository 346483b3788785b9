/**
 * The coordinator's counters, for tests, the load benchmark and the log: one plain object that
 * every room of the coordinator counts into, so that reading them costs nothing.
 *
 * @example
 * ```ts
 * const stats = createStats();
 * stats.datagrams++;
 * ```
 * @module
 */

/** What the coordinator has done so far. */
export interface CoordinatorStats {
  /** Datagrams received. */
  datagrams: number;
  malformed: number;
  frames: number;
  relayed: number;
  relayDropped: number;
  listFetches: number;
  /** Datagrams sent, all kinds. */
  sent: number;
  sentBytes: number;
  /** Of those, presence datagrams (batched `Presence`, or the seed's `login`/`logout`), and bytes. */
  presenceSent: number;
  presenceBytes: number;
  /** Logins admitted (brought online by their list fetch). */
  logins: number;
  /** Logins refused, by reason (`in-use`, `full`, `bad-proof`…). */
  refusals: Record<string, number>;
  /** Datagrams, logins and connections refused by a limit. */
  limited: number;
  /** The same, by limit (`max-users`, `datagrams-per-ip`…: the names the log gives). */
  limitsHit: Record<string, number>;
  /** `Challenge`s sent (a login for a registered name that another session holds). */
  challenges: number;
  /** Takeovers by a proved key, and proofs refused (forged, replayed, expired). */
  takeovers: number;
  proofsRefused: number;
  /** Contact requests stored, pairs made, and requests refused by the sender's limits. */
  contactRequests: number;
  contactsMade: number;
  contactsLimited: number;
  /** STUN Binding requests answered (success or 420), and STUN messages left unanswered. */
  stunAnswered: number;
  stunIgnored: number;
}

/** Counters all at zero. */
export function createStats(): CoordinatorStats {
  return {
    datagrams: 0,
    malformed: 0,
    frames: 0,
    relayed: 0,
    relayDropped: 0,
    listFetches: 0,
    sent: 0,
    sentBytes: 0,
    presenceSent: 0,
    presenceBytes: 0,
    logins: 0,
    refusals: {},
    limited: 0,
    limitsHit: {},
    challenges: 0,
    takeovers: 0,
    proofsRefused: 0,
    contactRequests: 0,
    contactsMade: 0,
    contactsLimited: 0,
    stunAnswered: 0,
    stunIgnored: 0,
  };
}

/**
 * Adds one to `counts[key]`: the counters kept by reason or by limit.
 *
 * @example
 * ```ts
 * const stats = createStats();
 * countBy(stats.refusals, "in-use");
 * ```
 */
export function countBy(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
