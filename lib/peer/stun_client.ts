/**
 * Asking STUN servers (`--stun HOST[:PORT]`) where they see one of our sockets: the requests a
 * client sends and the answers it accepts, matched by transaction id. No socket and no timer of
 * its own: `p2p nat` (`nat_check.ts`) and the chat client's NAT detection (`nat_detect.ts`) send
 * and wait as they already do for `whoami`. Separate because both use it, and so that only answers
 * to our own recent requests, from the servers we asked, are believed.
 *
 * @example
 * ```ts
 * const asker = new StunAsker();
 * const server = { host: "192.0.2.10", port: 3478 };
 * socket.send(asker.request(server), server);
 * // On a datagram from `from`:
 * const seen = asker.answer(data, from); // our endpoint as that server saw it, or undefined
 * ```
 * @module
 */
import { type Endpoint, sameEndpoint } from "../protocol/endpoint.ts";
import { encodeBindingRequest, isStun, parseBindingAnswer } from "../protocol/stun.ts";

/**
 * How long our requests are: room for a full answer (XOR-MAPPED-ADDRESS of IPv6, SOFTWARE and
 * FINGERPRINT) from a server that never answers with more than it got, as ours does.
 */
export const STUN_REQUEST_BYTES = 96;
/** Requests remembered per asker; older ones' answers are ignored. */
const MAX_OUTSTANDING = 16;

/** Sends and matches STUN Binding requests; see the module comment. *
 * @example
 * ```ts
 * const asker = new StunAsker();
 * socket.send(asker.request(server), server);
 * ```
 */
export class StunAsker {
  readonly #out: { server: Endpoint; transactionId: Uint8Array }[] = [];

  /** A new Binding request for `server`, remembered until it is answered. */
  request(server: Endpoint): Uint8Array {
    const transactionId = crypto.getRandomValues(new Uint8Array(12));
    this.#out.push({ server, transactionId });
    if (this.#out.length > MAX_OUTSTANDING) this.#out.shift();
    return encodeBindingRequest({ transactionId, padTo: STUN_REQUEST_BYTES });
  }

  /**
   * Our endpoint as `from` saw it, when `data` answers one of our requests to `from` (each is
   * believed once); undefined for anything else.
   */
  answer(data: Uint8Array, from: Endpoint): Endpoint | undefined {
    if (!isStun(data)) return undefined;
    for (const [i, out] of this.#out.entries()) {
      if (!sameEndpoint(out.server, from)) continue;
      const seen = parseBindingAnswer(data, out.transactionId);
      if (seen) {
        this.#out.splice(i, 1);
        return seen;
      }
    }
    return undefined;
  }

  /** Whether `from` is a server we asked and have not heard from yet. */
  waitingFor(from: Endpoint): boolean {
    return this.#out.some((o) => sameEndpoint(o.server, from));
  }
}
