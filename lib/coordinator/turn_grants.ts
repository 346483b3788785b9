/**
 * TURN credentials the coordinator hands out (`p2p serve --turn URI --turn-secret-file F`): with
 * each introduction, each side gets a `Turn` message with its own time-limited TURN REST
 * credentials for the coordinator's TURN server, so that a pair that cannot go direct relays on
 * the TURN server rather than on the coordinator (docs/PROTOCOL.md §1.6). Its own module: the
 * secret lives here and nowhere else in the coordinator.
 *
 * @example
 * ```ts
 * const grants = new TurnGrants({
 *   uri: "turn:192.0.2.7:3478",
 *   secret: new TextEncoder().encode("s3cret"),
 *   now: () => Date.now(),
 * });
 * grants.grant("alice"); // { type: "turn", uri, username: "<expiry>:alice", password }
 * ```
 * @module
 */
import type { ServerMessage } from "../protocol/seed.ts";
import {
  DEFAULT_TURN_TTL_MS,
  parseTurnUri,
  turnCredentials,
} from "../protocol/turn_credentials.ts";

/** The coordinator's TURN server: `p2p serve --turn`. */
export interface TurnSettings {
  /** `turn:HOST:PORT`, as clients are to reach it. */
  uri: string;
  /** The secret shared with the TURN server (coturn's `static-auth-secret`). */
  secret: Uint8Array;
  /** How long credentials are valid; default one hour. */
  ttlMs?: number;
}

/** Options of {@linkcode TurnGrants}. */
export interface TurnGrantsOptions extends TurnSettings {
  /** Wall-clock time in milliseconds since the epoch (the TURN server checks the expiry). */
  now: () => number;
}

/** Makes the `Turn` messages. */
export class TurnGrants {
  readonly #o: TurnGrantsOptions;
  /** Credentials handed out so far. */
  issued = 0;

  /** Throws `TurnUriError` for a URI clients could not read, `RangeError` for an empty secret. */
  constructor(options: TurnGrantsOptions) {
    parseTurnUri(options.uri);
    if (options.secret.length === 0) throw new RangeError("the TURN secret is empty");
    const ttl = options.ttlMs ?? DEFAULT_TURN_TTL_MS;
    if (!(ttl >= 60_000)) {
      throw new RangeError(`TURN credentials must last at least 60 s, not ${ttl} ms`);
    }
    this.#o = options;
  }

  /** The `Turn` message for `name`. */
  grant(name: string): Extract<ServerMessage, { type: "turn" }> {
    this.issued++;
    const { username, password } = turnCredentials({
      secret: this.#o.secret,
      name,
      nowMs: this.#o.now(),
      ttlMs: this.#o.ttlMs,
    });
    return { type: "turn", uri: this.#o.uri, username, password };
  }
}
