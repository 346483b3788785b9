/**
 * A chat client's links (`link.ts`), one per peer, made on first need: what they share — our
 * name and key pair, our instance id, the clock, the timings and one {@linkcode ProbeQuota} —
 * given to each explicitly, their counters summed, and closing them. The peer (`lib/peer.ts`)
 * says how a link reaches the network and reports (per peer); this room keeps the bookkeeping.
 *
 * The quota is the point of sharing: every link charges its probes to the same budget
 * (`probe_quota.ts`), so more names buy an attacker nothing.
 *
 * Early priming ("Early priming" in `traversal.ts`) is kept here too: it happens when we send
 * `connect`, before there need be a link (a knock we answer), and the introduction that follows
 * may skip the priming delay if it was recent.
 *
 * @example
 * ```ts
 * const links = new Links({ me: "alice", staticKeyPair, instanceId: 1, quota: new ProbeQuota(),
 *   wiring: (peer) => ({ verifyKey: () => true, transport, events }) });
 * links.open("bob").send({ group: false, id: 1, text: "hi" });
 * links.closeAll("the client closed");
 * ```
 * @module
 */
import { realClock } from "../clock.ts";
import { type Endpoint, sameEndpoint } from "../protocol/endpoint.ts";
import { type PathKind, pathKindOf } from "./events.ts";
import { type Introduction, Link, type LinkOptions } from "./link.ts";
import type { ProbeQuota } from "./probe_quota.ts";
import { DEFAULT_PRIME_TTLS } from "./traversal.ts";

/**
 * How long an early priming probe counts for the introduction that follows: the coordinator's
 * wait for the other side's consent (20 s, `wantTtlMs`). The NAT mapping it made must outlive
 * it; RFC 4787 (REQ-5) asks NATs to keep a UDP mapping at least 2 minutes, Linux keeps an
 * unanswered one 30 s.
 */
export const EARLY_PRIME_VALID_MS = 20_000;

/** What differs from one link to the next: the trust decision, the transport, the events. */
export type LinkWiring = Pick<LinkOptions, "verifyKey" | "transport" | "events">;

/** Options for {@linkcode Links}: what every link shares, and how to wire one to a peer. */
export interface LinksOptions extends Omit<LinkOptions, "peer" | keyof LinkWiring> {
  /** The probe budget every link charges (unless `pathOptions.quota` overrides it). */
  quota: ProbeQuota;
  /** The per-peer parts of the link to `peer`. */
  wiring: (peer: string) => LinkWiring;
}

/** The links of one client, by peer name. */
export class Links {
  readonly #o: LinksOptions;
  readonly #links = new Map<string, Link>();
  /** Our last early priming probe toward each peer: where, and when. */
  readonly #primes = new Map<string, { endpoint: Endpoint; at: number }>();

  constructor(options: LinksOptions) {
    this.#o = options;
  }

  /** The link to `peer`, if there is one. */
  get(peer: string): Link | undefined {
    return this.#links.get(peer);
  }

  /** The link to `peer`, made now if there is none. */
  open(peer: string): Link {
    let link = this.#links.get(peer);
    if (link) return link;
    const { quota, wiring, ...shared } = this.#o;
    link = new Link({
      ...shared,
      ...wiring(peer),
      peer,
      pathOptions: { quota, ...shared.pathOptions },
    });
    this.#links.set(peer, link);
    return link;
  }

  /**
   * We are about to send `connect` for `peer`, listed at `endpoint`: the TTL of the early priming
   * probe to send it first from the main socket (an empty datagram: it must only leave our NAT),
   * which is recorded; undefined when priming is off (`primeTtls: []`).
   *
   * @example
   * ```ts
   * const ttl = links.earlyPrime("bob", listed);
   * if (ttl !== undefined) socket.send(new Uint8Array(), listed, { ttl });
   * coordinator.connect("bob");
   * ```
   */
  earlyPrime(peer: string, endpoint: Endpoint): number | undefined {
    const ttls = this.#o.pathOptions?.primeTtls ?? DEFAULT_PRIME_TTLS;
    if (ttls.length === 0) return undefined;
    const now = (this.#o.clock ?? realClock).now();
    for (const [p, { at }] of this.#primes) {
      if (now - at > EARLY_PRIME_VALID_MS) this.#primes.delete(p);
    }
    this.#primes.set(peer, { endpoint: { ...endpoint }, at: now });
    return Math.min(...ttls);
  }

  /**
   * Hands an introduction to the link to `peer` (made now if there is none), with the endpoint
   * we primed early toward `peer` if that was within {@linkcode EARLY_PRIME_VALID_MS} and it is
   * the introduced `public` one: the link skips the priming delay if the introduction is a new
   * consent.
   *
   * @example
   * ```ts
   * links.introduce("bob", introductionFrom(msg)!);
   * ```
   */
  introduce(peer: string, intro: Introduction): void {
    const clock = this.#o.clock ?? realClock;
    const prime = this.#primes.get(peer);
    const fresh = prime !== undefined && clock.now() - prime.at <= EARLY_PRIME_VALID_MS &&
      intro.candidates.some((c) => c.kind === "public" && sameEndpoint(c.endpoint, prime.endpoint));
    this.open(peer).introduce(intro, fresh ? { primed: [prime.endpoint] } : {});
  }

  /** The kind of path to `peer` (`none` without a link). */
  pathTo(peer: string): PathKind {
    const link = this.#links.get(peer);
    return link ? pathKindOf(link.path) : "none";
  }

  /** Every link. */
  all(): Link[] {
    return [...this.#links.values()];
  }

  /** The peers reached otherwise than directly (the relay, or not yet). */
  indirect(): string[] {
    return [...this.#links.values()].filter((l) => l.path.kind !== "direct").map((l) => l.peer);
  }

  /** Every link's counters (`LinkStats`), summed. */
  stats(): Record<string, number> {
    const total: Record<string, number> = {};
    for (const link of this.#links.values()) {
      for (const [k, v] of Object.entries(link.stats)) total[k] = (total[k] ?? 0) + v;
    }
    return total;
  }

  /** Closes and forgets the link to `peer`; its unsettled messages are undelivered (`reason`). */
  close(peer: string, reason: string): void {
    this.#primes.delete(peer);
    const link = this.#links.get(peer);
    if (!link) return;
    this.#links.delete(peer);
    link.close(reason);
  }

  /** Closes and forgets every link. */
  closeAll(reason: string): void {
    for (const link of this.#links.values()) link.close(reason);
    this.#links.clear();
    this.#primes.clear();
  }
}
