/**
 * How a chat client finds out what kind of NAT it is behind, against the coordinator's two ports:
 * it asks the second port (`port + 1`), and any STUN servers it was given (`--stun`), where they
 * see us and compares the first answer with what the main port saw at login. The coordinator passes the answer on in introductions, so that two peers can plan the
 * same birthday search; introductions asked for meanwhile wait for it here.
 *
 * Separate from the peer because it is a small state machine of its own (a probe, three tries a
 * second apart, a queue), driven by an injected clock.
 *
 * @example
 * ```ts
 * const nat = new NatDetector({ server, send, connect, onDetected: report, indirect: () => [] });
 * nat.detect();
 * nat.connect("bob"); // waits until the kind is known, or detection gave up
 * // When the second port answers (its `You`), with our endpoint as the main port saw it:
 * nat.answer(observed, seenByAlt);
 * ```
 * @module
 */
import { type Clock, realClock, type TimerId } from "../clock.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { encodeWhoami, type NatKind, secondPort } from "../protocol/whoami.ts";
import { natKindOf } from "./nat_check.ts";
import { StunAsker } from "./stun_client.ts";

/** Requests sent to the second port before giving up. */
const NAT_PROBES = 3;
/** How long to wait for each answer. */
const NAT_PROBE_MS = 1000;

/** Options for {@linkcode NatDetector}. */
export interface NatDetectorOptions {
  /** The coordinator's main port; the request goes to its second port. */
  server: Endpoint;
  /** Sends a datagram from the client's main socket. */
  send: (data: Uint8Array, to: Endpoint) => void;
  /** Asks the coordinator for an introduction to `peer`. */
  connect: (peer: string) => void;
  /** Our NAT kind is known: report it. Called before any introduction is asked for again. */
  onDetected: (kind: NatKind) => void;
  /** The peers we have a link with that found no direct path. */
  indirect: () => Iterable<string>;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
  /**
   * STUN servers to ask as well (`--stun`), from the same socket: the first view of it that
   * comes back, theirs or the second port's, decides. Those of the other IP family than the
   * coordinator's are not asked (their view cannot be compared).
   */
  stunServers?: readonly Endpoint[];
}

/** Finds out our NAT kind, and holds back introductions until it is known. */
export class NatDetector {
  readonly #o: NatDetectorOptions;
  readonly #clock: Clock;
  readonly #stun = new StunAsker();
  readonly #stunServers: readonly Endpoint[];
  #kind: NatKind | undefined;
  #probe: TimerId | undefined;
  /** Introductions asked for while our NAT kind was being found out. */
  readonly #waiting = new Set<string>();
  #closed = false;

  constructor(options: NatDetectorOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    const v6 = options.server.host.includes(":");
    this.#stunServers = (options.stunServers ?? []).filter((s) => s.host.includes(":") === v6);
  }

  /** How our NAT maps our socket, once the coordinator's two ports have told us. */
  get kind(): NatKind | undefined {
    return this.#kind;
  }

  /**
   * Asks the coordinator's second port where it sees us (again: a new coordinator knows nothing
   * of our NAT). No answer after three tries: nothing is reported, and introductions go ahead
   * without a NAT kind.
   */
  detect(attempt = 0): void {
    this.#clock.clearTimeout(this.#probe);
    this.#probe = undefined;
    if (this.#closed) return;
    if (attempt >= NAT_PROBES) {
      this.#flush(); // no answer: introductions go ahead without our NAT kind
      return;
    }
    this.#o.send(encodeWhoami(), secondPort(this.#o.server));
    for (const server of this.#stunServers) this.#o.send(this.#stun.request(server), server);
    this.#probe = this.#clock.setTimeout(() => this.detect(attempt + 1), NAT_PROBE_MS);
  }

  /**
   * The second port saw us at `seenByAlt`; `observed` is where the main port sees us. Ignored
   * when no request is out (a late or unsolicited answer) or we do not know `observed` yet.
   */
  answer(observed: Endpoint | undefined, seenByAlt: Endpoint): void {
    if (!observed || this.#probe === undefined) return;
    this.#clock.clearTimeout(this.#probe);
    this.#probe = undefined;
    this.#kind = natKindOf(observed, seenByAlt);
    this.#o.onDetected(this.#kind);
    // Introductions made before the coordinator knew our NAT kind could not plan a birthday
    // search: redo those that have not found a direct path.
    for (const peer of this.#o.indirect()) {
      if (!this.#waiting.has(peer)) this.#o.connect(peer);
    }
    this.#flush();
  }

  /**
   * A datagram from `from`: when it is a STUN answer to one of our requests, what that server saw
   * is taken as the second port's answer would be (see {@linkcode answer}), and true says it was
   * ours.
   */
  stunAnswer(observed: Endpoint | undefined, data: Uint8Array, from: Endpoint): boolean {
    const seen = this.#stun.answer(data, from);
    if (seen) this.answer(observed, seen);
    return seen !== undefined;
  }

  /**
   * Asks for an introduction to `peer` — once our NAT kind is known (or its detection gave up),
   * so that the coordinator can pass it on and both sides can plan the same search.
   */
  connect(peer: string): void {
    if (this.#probe !== undefined) this.#waiting.add(peer);
    else this.#o.connect(peer);
  }

  /** Stops probing. */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#probe);
  }

  #flush(): void {
    for (const peer of this.#waiting) this.#o.connect(peer);
    this.#waiting.clear();
  }
}
