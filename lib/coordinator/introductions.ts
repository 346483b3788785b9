/**
 * Introductions (`connect,<me>,<target>`): the coordinator tells two online users with keys about
 * each other (`Introduce`, with a fresh token both sides share, and the NAT kind each reported),
 * and lets the relay carry frames between them; any other request gets `Unavailable` with the
 * reason. The requester has been checked by the caller (online, from its own endpoint, within its
 * budget); this room decides whom to tell what.
 *
 * @example
 * ```ts
 * const introductions = new Introductions({ registry, relay, send: (msg, to) => reply(msg, to) });
 * introductions.connect(alice, "bob"); // Introduce to both, or Unavailable to alice
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
  /** A fresh token for a pair; default 16 random bytes in base64url. */
  token?: () => string;
}

/** Introduces online users to each other. */
export class Introductions {
  readonly #registry: Registry;
  readonly #relay: RelayPolicy;
  readonly #send: (msg: ServerMessage, to: Endpoint) => void;
  readonly #token: () => string;

  constructor(options: IntroductionsOptions) {
    this.#registry = options.registry;
    this.#relay = options.relay;
    this.#send = options.send;
    this.#token = options.token ?? randomToken;
  }

  /** Answers `requester`'s `connect` to `targetName`. */
  connect(requester: User, targetName: string): void {
    const target = this.#registry.get(targetName);
    const reason = !target || target.state !== "online"
      ? `${targetName} is not online`
      : !target.key
      ? `${targetName} uses a client without direct messaging`
      : targetName === requester.name
      ? "cannot connect to yourself"
      : undefined;
    if (reason || !target?.key || !requester.key) {
      this.#send(
        { type: "unavailable", username: targetName, reason: reason ?? "log in with a key first" },
        requester.observed,
      );
      return;
    }
    const token = this.#token();
    this.#relay.introduce(requester.name, target.name);
    for (const [to, about] of [[requester, target], [target, requester]]) {
      this.#send({
        type: "introduce",
        username: about.name,
        observed: about.observed,
        claimed: about.claimed,
        key: about.key!,
        token,
        ...(about.nat ? { nat: about.nat } : {}),
      }, to.observed);
    }
  }
}

function randomToken(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(16)));
}
