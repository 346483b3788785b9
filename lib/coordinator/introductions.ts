/**
 * `connect`: introductions happen only with both sides' consent (docs/PROTOCOL.md §1.4).
 *
 * `connect,<me>,<target>` records that `me` wants to talk to `target`. When `target` has asked
 * for `me` too (each from its own endpoint: the caller checked that), both get `Introduce` (the
 * pair's token, the key and NAT kind of the other), the relay opens for the pair, and the pair
 * stays consented while both stay online, so that either side's later `connect` (a
 * re-introduction) goes through at once, with the same token: a new token only comes with a new
 * consent, so that a re-introduction never invalidates a handshake under way (its frames carry
 * `mac1` under the token it started with). Otherwise `target` gets `Knock,<me>,<key>` and
 * decides by its own policy; `me` hears nothing until `target` asks back, or until the want
 * lapses (`wantTtlMs`), when its next `connect` gets `Unavailable,<target>,<target> did not
 * accept…` (or `…is receiving too many requests…` if no knock of that want was sent). Knocks are
 * rate-limited per pair (one per want, repeated once) and by a {@linkcode KnockBudget} per target
 * and requester's address, so that a requester cannot make us spam anybody, and the names on one
 * address cannot use up a target's budget.
 *
 * The claimed (LAN) endpoint goes only to a user behind the same public address: anyone else gets
 * the observed endpoint in both fields, which clients read as "no LAN candidate".
 *
 * Plain state with an injected clock; the caller sends.
 *
 * @example
 * ```ts
 * const introductions = new Introductions({ registry, relay, now: () => Date.now(),
 *   send: (msg, to) => reply(msg, to) });
 * introductions.connect(alice, "bob"); // Knock to bob (or Unavailable to alice)
 * introductions.connect(bob, "alice"); // Introduce to both
 * ```
 * @module
 */
import { encodeBase64url } from "../protocol/base64url.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import type { ServerMessage } from "../protocol/seed.ts";
import { KnockBudget, type KnockBudgetOptions } from "./knock_budget.ts";
import { addressKey } from "./limits.ts";
import type { Registry, User } from "./registry.ts";
import type { RelayPolicy } from "./relay.ts";

/** Options for {@linkcode Introductions}. */
export interface IntroductionsOptions {
  registry: Registry;
  relay: RelayPolicy;
  /**
   * Sends a message to an online user's endpoint; `user` is that user (a cluster routes a remote
   * user's messages through its member).
   */
  send: (msg: ServerMessage, to: Endpoint, user?: User) => void;
  /** Clock in milliseconds. */
  now: () => number;
  /** A new token for a newly consented pair; default 16 random bytes in base64url. */
  token?: () => string;
  /**
   * How long a one-sided want waits for the other side's consent; default 20 s, below the 30 s
   * after which a client reports its messages undelivered, so that its user sees our reason.
   */
  wantTtlMs?: number;
  /** Knocks a user may receive, per requester's address and in all; see {@linkcode KnockBudget}. */
  knocks?: KnockBudgetOptions;
  /**
   * Whether two users may be introduced at all; default: any two. In contacts mode only contacts
   * may, and a `connect` to anyone else gets exactly what one to an offline name gets.
   */
  mayMeet?: (a: User, b: User) => boolean;
  /**
   * A message sent to each side right after its `Introduce` (the TURN credentials of
   * `turn_grants.ts`); none by default.
   */
  alsoSend?: (to: User) => ServerMessage | undefined;
}

/** One user's wish to talk to another, not answered yet. */
interface Want {
  requester: User;
  target: User;
  since: number;
  /** Knocks sent for it. */
  knocks: number;
  /** When its first knock was sent. */
  knockedAt?: number;
}

/** A pair both of whose sides consented, as they were then (same login, same key). */
interface Consent {
  a: User;
  b: User;
  aKey: string;
  bKey: string;
  /** Sent in every introduction of the pair while the consent lasts. */
  token: string;
}

/** What {@linkcode Introductions} has done, for tests and the log. */
export interface IntroductionStats {
  introductions: number;
  knocks: number;
  /** Knocks not sent: the knock budget (the target's, or its requester address's) was spent. */
  knocksLimited: number;
  /** Wants that lapsed unanswered (their requester was told). */
  lapsed: number;
}

function directed(a: string, b: string): string {
  return `${a}\n${b}`;
}

function pairKey(a: string, b: string): string {
  return a < b ? directed(a, b) : directed(b, a);
}

/** Introduces online users to each other, when both want it. */
export class Introductions {
  readonly #o: Required<Omit<IntroductionsOptions, "knocks" | "alsoSend">> & IntroductionsOptions;
  /** Wants by `requester\ntarget`, oldest first (a want is never re-inserted). */
  readonly #wants = new Map<string, Want>();
  readonly #consents = new Map<string, Consent>();
  /** Each user's consented partners, to forget its pairs when it leaves. */
  readonly #partners = new Map<string, Set<string>>();
  readonly #knockBudget: KnockBudget;
  readonly stats: IntroductionStats = { introductions: 0, knocks: 0, knocksLimited: 0, lapsed: 0 };

  constructor(options: IntroductionsOptions) {
    this.#o = {
      token: randomToken,
      wantTtlMs: 20_000,
      mayMeet: () => true,
      ...options,
    };
    this.#knockBudget = new KnockBudget(options.knocks);
  }

  /** Number of wants remembered (answered or not yet swept). */
  get wants(): number {
    return this.#wants.size;
  }

  /** Answers `requester`'s `connect` to `targetName`. */
  connect(requester: User, targetName: string): void {
    const now = this.#o.now();
    this.#sweep(now);
    const found = this.#o.registry.get(targetName);
    // A user we may not introduce the requester to is, to the requester, not online.
    const target = found && this.#o.mayMeet(requester, found) ? found : undefined;
    const reason = !target || target.state !== "online"
      ? `${targetName} is not online`
      : !target.key
      ? `${targetName} uses a client without direct messaging`
      : targetName === requester.name
      ? "cannot connect to yourself"
      : undefined;
    if (reason || !target?.key || !requester.key) {
      this.#unavailable(requester, targetName, reason ?? "log in with a key first");
      return;
    }
    const consent = this.#consented(requester, target);
    if (consent) return this.#introduce(requester, target, consent.token);
    const theirs = this.#wants.get(directed(target.name, requester.name));
    if (theirs && this.#current(theirs) && now - theirs.since < this.#o.wantTtlMs) {
      this.#wants.delete(directed(target.name, requester.name));
      this.#wants.delete(directed(requester.name, target.name));
      return this.#introduce(requester, target, this.#consent(requester, target).token);
    }
    const key = directed(requester.name, target.name);
    const mine = this.#wants.get(key);
    if (!mine || !this.#current(mine)) {
      this.#wants.delete(key);
      const want = { requester, target, since: now, knocks: 0 };
      this.#wants.set(key, want);
      this.#knock(want, now);
    } else if (now - mine.since >= this.#o.wantTtlMs) {
      this.#wants.delete(key);
      this.stats.lapsed++;
      this.#unavailable(
        requester,
        target.name,
        mine.knocks > 0
          ? `${target.name} did not accept your request to talk`
          // The target never heard of it: its budget held every knock back.
          : `${target.name} is receiving too many requests: try again later`,
      );
    } else if (mine.knocks === 0) {
      this.#knock(mine, now); // held back so far: maybe the budget has refilled
    } else if (mine.knocks < 2 && now - mine.knockedAt! >= this.#o.wantTtlMs / 2) {
      this.#knock(mine, now); // the first knock may have been lost
    }
  }

  /** Forgets the pairs and knock budget of a user who logged out or expired. */
  forget(name: string): void {
    for (const other of this.#partners.get(name) ?? []) {
      this.#consents.delete(pairKey(name, other));
      this.#partners.get(other)?.delete(name);
    }
    this.#partners.delete(name);
    this.#knockBudget.forget(name);
  }

  /** Forgets the consent of `a` and `b` (they stopped being contacts) and their wants. */
  forgetPair(a: string, b: string): void {
    this.#consents.delete(pairKey(a, b));
    this.#partners.get(a)?.delete(b);
    this.#partners.get(b)?.delete(a);
    this.#wants.delete(directed(a, b));
    this.#wants.delete(directed(b, a));
  }

  /** Whether `user` is still the login the record was made with. */
  #isCurrent(user: User): boolean {
    return user.state === "online" && this.#o.registry.get(user.name) === user;
  }

  #current(want: Want): boolean {
    return this.#isCurrent(want.requester) && this.#isCurrent(want.target);
  }

  /** The pair's consent, if it still holds (same logins, same keys). */
  #consented(a: User, b: User): Consent | undefined {
    const c = this.#consents.get(pairKey(a.name, b.name));
    const holds = c !== undefined && this.#isCurrent(c.a) && this.#isCurrent(c.b) &&
      c.a.key === c.aKey && c.b.key === c.bKey;
    return holds ? c : undefined;
  }

  /** Records a new consent of the pair, with a new token. */
  #consent(a: User, b: User): Consent {
    const consent = { a, b, aKey: a.key!, bKey: b.key!, token: this.#o.token() };
    this.#consents.set(pairKey(a.name, b.name), consent);
    for (const [user, other] of [[a, b], [b, a]]) {
      let set = this.#partners.get(user.name);
      if (!set) this.#partners.set(user.name, set = new Set());
      set.add(other.name);
    }
    return consent;
  }

  #knock(want: Want, now: number): void {
    const address = addressKey(want.requester.observed.host);
    if (!this.#knockBudget.allow(want.target.name, address, now)) {
      this.stats.knocksLimited++;
      return;
    }
    want.knocks++;
    want.knockedAt ??= now;
    this.stats.knocks++;
    this.#o.send(
      { type: "knock", username: want.requester.name, key: want.requester.key! },
      want.target.observed,
      want.target,
    );
  }

  #introduce(requester: User, target: User, token: string): void {
    this.#o.relay.introduce(requester.name, target.name);
    this.stats.introductions++;
    for (const [to, about] of [[requester, target], [target, requester]]) {
      // Only a user behind the same public address can use the other's LAN endpoint; anyone
      // else would learn a private address and probe where an attacker told it to.
      const sameAddress = to.observed.host === about.observed.host;
      // Announced candidates only to a client that announced too: older ones refuse the field.
      const candidates = to.candidates !== undefined && about.candidates?.length
        ? { candidates: about.candidates }
        : {};
      this.#o.send(
        {
          type: "introduce",
          username: about.name,
          observed: about.observed,
          claimed: sameAddress ? about.claimed : about.observed,
          key: about.key!,
          token,
          ...(about.nat ? { nat: about.nat } : {}),
          ...candidates,
        },
        to.observed,
        to,
      );
      // A user of another cluster member gets its extras (TURN credentials) from its own member.
      const also = to.member === undefined ? this.#o.alsoSend?.(to) : undefined;
      if (also) this.#o.send(also, to.observed, to);
    }
  }

  #unavailable(requester: User, target: string, reason: string): void {
    this.#o.send({ type: "unavailable", username: target, reason }, requester.observed, requester);
  }

  /**
   * Drops wants twice their lifetime old, from the oldest on: past that, nobody is asking for
   * them any more (a client asks every 2 s while it waits), so memory stays bounded by the
   * `connect` rate.
   */
  #sweep(now: number): void {
    for (const [key, want] of this.#wants) {
      if (now - want.since < 2 * this.#o.wantTtlMs) return;
      this.#wants.delete(key);
    }
  }
}

function randomToken(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
}
