/**
 * Consent at a chat client's door (docs/PROTOCOL.md §1.4): what arrives that we did not ask for,
 * and what becomes of it. A knock (someone asked the coordinator for us) is decided by our policy
 * (`consent.ts`) and reported as a `knock` event; if accepted, we give our consent (`connect`). An
 * introduction we never consented to is refused, unless our policy accepts it as it would a
 * knock (a coordinator that does not ask us first). A frame from someone we have no link with is
 * dropped; when the coordinator vouches for the sender's name, we ask for an introduction at most
 * every {@linkcode ASK_INTERVAL_MS} per user, if our policy accepts it. What is dropped is counted.
 *
 * Separate from the peer so that these rules are one I/O-free room: the caller passes in what
 * arrived; asking the coordinator and reporting knocks are callbacks; time is the injected clock.
 *
 * @example
 * ```ts
 * const door = new Door({
 *   me: "alice", policy: "known", pinned: (user) => known.get(user)?.publicKey,
 *   listed: (user) => online.get(user), ask: (user) => connect(user), onKnock: console.log,
 * });
 * door.knock("mallory", key); // reports { event: "knock", user: "mallory", accepted: false, … }
 * door.strangerFrame("mallory", "relay"); // counted in door.drops.refusedRelayed
 * ```
 * @module
 */
import { type Clock, realClock } from "../clock.ts";
import { decodeKey, fingerprint } from "../crypto/identity.ts";
import { type Endpoint, sameEndpoint } from "../protocol/endpoint.ts";
import { Consent, type ConsentOptions } from "./consent.ts";
import type { PeerEvent } from "./events.ts";

/** Asks for an introduction on someone's traffic at most this often per user (ms). */
export const ASK_INTERVAL_MS = 2000;

/** The `knock` event: a decision on someone's request to talk. */
export type KnockEvent = Extract<PeerEvent, { event: "knock" }>;

/** Options for {@linkcode Door}: the policy's (`consent.ts`), and how the door reaches out. */
export interface DoorOptions extends ConsentOptions {
  /** Our username: our own name at the door is ignored. */
  me: string;
  /** The endpoint the online list shows for `user`, if it is listed. */
  listed: (user: string) => Endpoint | undefined;
  /** Gives our consent to talk to `user`: asks the coordinator to introduce us (`connect`). */
  ask: (user: string) => void;
  /** Reports a decision on a request to talk. */
  onKnock: (event: KnockEvent) => void;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
}

/** What the door dropped, before any link saw it. */
export interface DoorDrops {
  /** Frames sent straight to us by someone we have no link with. */
  unsolicitedFrames: number;
  /** Relayed frames from someone we have no link with. */
  refusedRelayed: number;
  /** Introductions to someone we never consented to (a coordinator that does not ask us). */
  refusedIntroductions: number;
}

/** Decides on knocks, unasked introductions and strangers' frames; counts what it drops. */
export class Door {
  readonly #o: DoorOptions;
  readonly #consent: Consent;
  readonly #clock: Clock;
  /** When we last asked for an introduction on a user's knock or traffic. */
  readonly #asked = new Map<string, number>();
  readonly #drops: DoorDrops = { unsolicitedFrames: 0, refusedRelayed: 0, refusedIntroductions: 0 };

  constructor(options: DoorOptions) {
    this.#o = options;
    this.#consent = new Consent(options);
    this.#clock = options.clock ?? realClock;
  }

  /** Counters of what was dropped at the door (a copy). */
  get drops(): DoorDrops {
    return { ...this.#drops };
  }

  /** We want to talk to `user` (we wrote to them): that is our consent. */
  want(user: string): void {
    this.#consent.want(user);
  }

  /** `user` knocked, with its `key` as the coordinator has it (text): decide, report, consent. */
  knock(user: string, key: string): void {
    if (user === this.#o.me) return;
    const decoded = decodeKey(key);
    if (decoded && this.#decide(user, decoded)) this.#ask(user);
  }

  /**
   * Whether to take an introduction to `user` (with its `key`) that no link of ours waits for: yes
   * if we consented, or if our policy accepts `user` as it would a knock (reported as one).
   * A coordinator that asks both sides never introduces us unasked; an older one does.
   */
  admitIntroduction(user: string, key: Uint8Array): boolean {
    if (this.#consent.consented(user) || this.#decide(user, key)) return true;
    this.#drops.refusedIntroductions++;
    return false;
  }

  /**
   * A frame from `user`, which we have no link with, received from `via`: dropped. It may be a
   * peer that restarted, or one whose introduction is still on its way: if the coordinator
   * vouches for the sender's name (it relayed the frame) or the frame comes from the endpoint the
   * online list shows for that user, and our policy accepts the user, we ask for an introduction
   * (our consent; theirs is needed too). A frame from anywhere else names whoever the sender
   * likes: it gets nothing.
   */
  strangerFrame(user: string, via: Endpoint | "relay"): void {
    if (via === "relay") this.#drops.refusedRelayed++;
    else this.#drops.unsolicitedFrames++;
    const listed = this.#o.listed(user);
    const vouched = via === "relay" || (listed !== undefined && sameEndpoint(listed, via));
    if (!vouched || user === this.#o.me) return;
    const last = this.#asked.get(user);
    if (last !== undefined && this.#clock.now() - last < ASK_INTERVAL_MS) return;
    if (this.#consent.decide(user, undefined, this.#clock.now()).accepted) this.#ask(user);
  }

  /** Our consent to talk to `user`: `connect` (once our NAT kind is known). */
  #ask(user: string): void {
    this.#asked.set(user, this.#clock.now());
    this.#o.ask(user);
  }

  /** Decides on `user`'s request to talk (its key as the coordinator has it), and reports it. */
  #decide(user: string, key: Uint8Array): boolean {
    const decision = this.#consent.decide(user, key, this.#clock.now());
    this.#o.onKnock({
      event: "knock",
      user,
      fingerprint: fingerprint(key),
      accepted: decision.accepted,
      ...(decision.accepted ? {} : { reason: decision.reason }),
    });
    return decision.accepted;
  }
}
