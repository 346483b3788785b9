/**
 * A chat client's links (`link.ts`), one per peer, made on first need: what they share — our
 * name and key pair, our instance id, the clock, the timings and one {@linkcode ProbeQuota} —
 * given to each explicitly, their counters summed, and closing them. The peer (`lib/peer.ts`)
 * says how a link reaches the network and reports (per peer); this room keeps the bookkeeping.
 *
 * The quota is the point of sharing: every link charges its probes to the same budget
 * (`probe_quota.ts`), so more names buy an attacker nothing.
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
import { type PathKind, pathKindOf } from "./events.ts";
import { Link, type LinkOptions } from "./link.ts";
import type { ProbeQuota } from "./probe_quota.ts";

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
    const link = this.#links.get(peer);
    if (!link) return;
    this.#links.delete(peer);
    link.close(reason);
  }

  /** Closes and forgets every link. */
  closeAll(reason: string): void {
    for (const link of this.#links.values()) link.close(reason);
    this.#links.clear();
  }
}
