/**
 * Two fresh Noise XX handshake states, an initiator and a responder with new key pairs: the start
 * of most handshake and session tests.
 *
 * @example
 * ```ts
 * const { init, resp } = handshakePair();
 * resp.readMessage(init.writeMessage());
 * ```
 * @module
 */
import { generateKeyPair, HandshakeState, prologueFor } from "../../lib/crypto/noise.ts";

/** An initiator (`prologue`) and a responder (`respPrologue`, by default the same), not started. */
export function handshakePair(
  prologue: Uint8Array = prologueFor("alice", "bob"),
  respPrologue: Uint8Array = prologue,
): { init: HandshakeState; resp: HandshakeState } {
  return {
    init: new HandshakeState({ role: "initiator", staticKeyPair: generateKeyPair(), prologue }),
    resp: new HandshakeState({
      role: "responder",
      staticKeyPair: generateKeyPair(),
      prologue: respPrologue,
    }),
  };
}
