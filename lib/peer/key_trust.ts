/**
 * Trust on first use for the keys peers prove in handshakes: a new name's key is pinned, the
 * pinned key accepted, and a different one refused — and reported once as `key-changed` — until
 * the user accepts it with `/trust`. The store itself is {@linkcode KnownPeers}; this room holds
 * the keys waiting for `/trust`, the events the decisions raise, and fingerprints to compare.
 *
 * @example
 * ```ts
 * const trust = new KeyTrust({ known, me: { name: "alice", publicKey }, onEvent: console.log });
 * if (trust.verify("bob", key)) {
 *   // go on with the handshake
 * }
 * await trust.accept("bob"); // after `key-changed`, checked out of band
 * ```
 * @module
 */
import { encodeKey, fingerprint, safetyNumber } from "../crypto/identity.ts";
import type { KnownPeers } from "../crypto/known_peers.ts";
import type { EventSink } from "./events.ts";

/** Options for {@linkcode KeyTrust}. */
export interface KeyTrustOptions {
  known: KnownPeers;
  /** Our name and public key, for safety numbers. */
  me: { name: string; publicKey: Uint8Array };
  /** Receives `key-changed`, `trusted`, and `error` when a key cannot be saved. */
  onEvent: EventSink;
}

/** Pinned keys and changed ones waiting for `/trust`. */
export class KeyTrust {
  readonly #o: KeyTrustOptions;
  /** Keys that differ from the pinned ones, waiting for `/trust`. */
  readonly #changed = new Map<string, Uint8Array>();

  constructor(options: KeyTrustOptions) {
    this.#o = options;
  }

  /** The key pinned for `peer`, if any. */
  pinned(peer: string): Uint8Array | undefined {
    return this.#o.known.get(peer)?.publicKey;
  }

  /**
   * Reports the fingerprint of `peer`'s key and our safety number, or that none is known. While
   * the key is changed and not accepted, that is the NEW key (marked `unaccepted`, with the
   * pinned one as `previous`): it is the one to compare before `/trust`.
   */
  showFingerprint(peer: string): void {
    const pinned = this.pinned(peer);
    const changed = this.#changed.get(peer);
    const key = changed ?? pinned;
    if (!key) {
      this.#o.onEvent({
        event: "error",
        message: `No key known for ${peer} yet: it is learned on the first conversation`,
      });
      return;
    }
    const { name, publicKey } = this.#o.me;
    const safety = safetyNumber(name, publicKey, peer, key);
    this.#o.onEvent(
      changed && pinned
        ? {
          event: "fingerprint",
          user: peer,
          fingerprint: fingerprint(key),
          safety,
          unaccepted: true,
          previous: fingerprint(pinned),
        }
        : { event: "fingerprint", user: peer, fingerprint: fingerprint(key), safety },
    );
  }

  /** Whether `peer` proved a key other than the pinned one, not trusted yet. */
  hasChanged(peer: string): boolean {
    return this.#changed.has(peer);
  }

  /** The trust decision: pin a new key, accept the pinned one, refuse (and warn) on a change. */
  verify(peer: string, key: Uint8Array): boolean {
    const known = this.#o.known;
    const status = known.check(peer, key);
    if (status === "match") return true;
    if (status === "new") {
      known.pin(peer, key).catch((err) =>
        this.#o.onEvent({ event: "error", message: `Cannot save ${peer}'s key: ${err.message}` })
      );
      return true;
    }
    const previous = this.#changed.get(peer);
    if (!previous || encodeKey(previous) !== encodeKey(key)) {
      this.#changed.set(peer, key);
      this.#o.onEvent({
        event: "key-changed",
        user: peer,
        fingerprint: fingerprint(key),
        previous: fingerprint(this.pinned(peer)!),
      });
    }
    return false;
  }

  /**
   * Accepts `peer`'s changed key (the user checked it out of band) and reports `trusted`;
   * resolves with false, reporting an error, when its key has not changed.
   */
  async accept(peer: string): Promise<boolean> {
    const key = this.#changed.get(peer);
    if (!key) {
      this.#o.onEvent({
        event: "error",
        message: `Nothing to trust: ${peer}'s key has not changed`,
      });
      return false;
    }
    await this.#o.known.trust(peer, key);
    this.#changed.delete(peer);
    this.#o.onEvent({ event: "trusted", user: peer, fingerprint: fingerprint(key) });
    return true;
  }
}
