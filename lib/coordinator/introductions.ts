/**
 * `connect`: introductions happen only with both sides' consent (docs/PROTOCOL.md §1.4).
 *
 * `connect,<me>,<target>` records that `me` wants to talk to `target`. When `target` has asked
 * for `me` too (each from its own endpoint: the caller checked that), both get `Introduce` (a fresh
 * token both sides share, the key and NAT kind of the other), the relay opens for the pair, and
 * the pair stays consented while both stay online, so that either side's later `connect` (a
 * re-introduction) goes through at once. Otherwise `target` gets `Knock,<me>,<key>` and decides
 * by its own policy; `me` hears nothing until `target` asks back, or until the want lapses
 * (`wantTtlMs`), when its next `connect` gets `Unavailable,<target>,<target> did not accept…`.
 * Knocks are rate-limited per pair (one per want, repeated once) and per target (a token bucket),
 * so that a requester cannot make us spam anybody.
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
import type { Registry, User } from "./registry.ts";
import type { RelayPolicy } from "./relay.ts";

/** Options for {@linkcode Introductions}. */
export interface IntroductionsOptions {
  registry: Registry;
  relay: RelayPolicy;
  /** Sends a message to an online user's endpoint. */
  send: (msg: ServerMessage, to: Endpoint) => void;
  /** Clock in milliseconds. */
  now: () => number;
  /** A fresh token for a pair; default 16 random bytes in base64url. */
  token?: () => string;
  /**
   * How long a one-sided want waits for the other side's consent; default 20 s, below the 30 s
   * after which a client reports its messages undelivered, so that its user sees our reason.
   */
  wantTtlMs?: number;
  /** Knocks a user may receive at once; default 20. */
  knockBurst?: number;
  /** Knocks a user may receive per minute, sustained; default 20. */
  knocksPerMinute?: number;
}

/** One user's wish to talk to another, not answered yet. */
interface Want {
  requester: User;
  target: User;
  since: number;
  knocks: number;
}

/** A pair both of whose sides consented, as they were then (same login, same key). */
interface Consent {
  a: User;
  b: User;
  aKey: string;
  bKey: string;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** What {@linkcode Introductions} has done, for tests and the log. */
export interface IntroductionStats {
  introductions: number;
  knocks: number;
  /** Knocks not sent: the target's knock budget was spent. */
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
  readonly #o: Required<Omit<IntroductionsOptions, "token">> & { token: () => string };
  /** Wants by `requester\ntarget`, oldest first (a want is never re-inserted). */
  readonly #wants = new Map<string, Want>();
  readonly #consents = new Map<string, Consent>();
  /** Each user's consented partners, to forget its pairs when it leaves. */
  readonly #partners = new Map<string, Set<string>>();
  readonly #knockBudgets = new Map<string, Bucket>();
  readonly stats: IntroductionStats = { introductions: 0, knocks: 0, knocksLimited: 0, lapsed: 0 };

  constructor(options: IntroductionsOptions) {
    this.#o = {
      token: randomToken,
      wantTtlMs: 20_000,
      knockBurst: 20,
      knocksPerMinute: 20,
      ...options,
    };
  }

  /** Number of wants remembered (answered or not yet swept). */
  get wants(): number {
    return this.#wants.size;
  }

  /** Answers `requester`'s `connect` to `targetName`. */
  connect(requester: User, targetName: string): void {
    const now = this.#o.now();
    this.#sweep(now);
    const target = this.#o.registry.get(targetName);
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
    if (this.#consented(requester, target)) return this.#introduce(requester, target);
    const theirs = this.#wants.get(directed(target.name, requester.name));
    if (theirs && this.#current(theirs) && now - theirs.since < this.#o.wantTtlMs) {
      this.#wants.delete(directed(target.name, requester.name));
      this.#wants.delete(directed(requester.name, target.name));
      this.#consent(requester, target);
      return this.#introduce(requester, target);
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
        `${target.name} did not accept your request to talk`,
      );
    } else if (mine.knocks < 2 && now - mine.since >= this.#o.wantTtlMs / 2) {
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
    this.#knockBudgets.delete(name);
  }

  /** Whether `user` is still the login the record was made with. */
  #isCurrent(user: User): boolean {
    return user.state === "online" && this.#o.registry.get(user.name) === user;
  }

  #current(want: Want): boolean {
    return this.#isCurrent(want.requester) && this.#isCurrent(want.target);
  }

  #consented(a: User, b: User): boolean {
    const c = this.#consents.get(pairKey(a.name, b.name));
    return c !== undefined && this.#isCurrent(c.a) && this.#isCurrent(c.b) &&
      c.a.key === c.aKey && c.b.key === c.bKey;
  }

  #consent(a: User, b: User): void {
    this.#consents.set(pairKey(a.name, b.name), { a, b, aKey: a.key!, bKey: b.key! });
    for (const [user, other] of [[a, b], [b, a]]) {
      let set = this.#partners.get(user.name);
      if (!set) this.#partners.set(user.name, set = new Set());
      set.add(other.name);
    }
  }

  #knock(want: Want, now: number): void {
    want.knocks++;
    const name = want.target.name;
    let bucket = this.#knockBudgets.get(name);
    if (!bucket) this.#knockBudgets.set(name, bucket = { tokens: this.#o.knockBurst, at: now });
    const refill = (Math.max(0, now - bucket.at) / 60_000) * this.#o.knocksPerMinute;
    bucket.tokens = Math.min(this.#o.knockBurst, bucket.tokens + refill);
    bucket.at = Math.max(bucket.at, now);
    if (bucket.tokens < 1) {
      this.stats.knocksLimited++;
      return;
    }
    bucket.tokens--;
    this.stats.knocks++;
    this.#o.send(
      { type: "knock", username: want.requester.name, key: want.requester.key! },
      want.target.observed,
    );
  }

  #introduce(requester: User, target: User): void {
    const token = this.#o.token();
    this.#o.relay.introduce(requester.name, target.name);
    this.stats.introductions++;
    for (const [to, about] of [[requester, target], [target, requester]]) {
      // Only a user behind the same public address can use the other's LAN endpoint; anyone
      // else would learn a private address and probe where an attacker told it to.
      const sameAddress = to.observed.host === about.observed.host;
      this.#o.send({
        type: "introduce",
        username: about.name,
        observed: about.observed,
        claimed: sameAddress ? about.claimed : about.observed,
        key: about.key!,
        token,
        ...(about.nat ? { nat: about.nat } : {}),
      }, to.observed);
    }
  }

  #unavailable(requester: User, target: string, reason: string): void {
    this.#o.send({ type: "unavailable", username: target, reason }, requester.observed);
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
