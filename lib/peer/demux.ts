/**
 * What a datagram on a chat client's socket is, before anyone acts on it: the coordinator's text
 * (one message per line), the answer of its second port to our `whoami`, a STUN message, a peer
 * frame received directly, or one relayed by the coordinator — or nothing worth reading. One socket carries all
 * of them (NAT traversal relies on that), so this sorting is one pure function, tested alone.
 *
 * @example
 * ```ts
 * const what = demuxDatagram(data, from, { server });
 * if (what?.kind === "frame") links.get(what.frame.from)?.receive(what.frame, what.via);
 * ```
 * @module
 */
import { type Endpoint, sameEndpoint } from "../protocol/endpoint.ts";
import { decodeFrame, type Frame, FrameError, isFrame } from "../protocol/frame.ts";
import {
  decodeText,
  MAX_BATCH_DATAGRAM,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "../protocol/seed.ts";
import { isStun } from "../protocol/stun.ts";
import { parseWhoamiAnswer, secondPort } from "../protocol/whoami.ts";

/** A frame from a peer: never a RELAY or RELAYED wrapper, always with its sender's name. */
export type PeerFrame = Exclude<Frame, { type: "relay" | "relayed" }>;

/** What a datagram is. */
export type Demuxed =
  /** The coordinator's messages, in order (a datagram's lines are one unit). */
  | { kind: "coordinator"; messages: ServerMessage[] }
  /** Text from the coordinator that does not parse: the whole datagram is void. */
  | { kind: "malformed"; reason: string }
  /** The coordinator's second port saw us at `seen`. */
  | { kind: "whoami"; seen: Endpoint }
  /** A STUN message (maybe the answer to our `--stun` request): for the NAT detector to judge. */
  | { kind: "stun"; data: Uint8Array }
  /** A peer's frame, received from an endpoint or through the relay. */
  | { kind: "frame"; frame: PeerFrame; via: Endpoint | "relay" };

/** Options for {@linkcode demuxDatagram}. */
export interface DemuxOptions {
  /** The coordinator's main port. */
  server: Endpoint;
  /**
   * The datagram came to an extra socket of a birthday search: those only ever talk to one peer,
   * directly, so only its frames count.
   */
  extraSocket?: boolean;
}

/**
 * Sorts one datagram received from `from`; undefined when it is to be dropped (malformed frames,
 * text from anyone but the coordinator, relay wrappers that are not the coordinator's, a relayed
 * frame whose inner sender is not the one the coordinator vouches for).
 */
export function demuxDatagram(
  data: Uint8Array,
  from: Endpoint,
  options: DemuxOptions,
): Demuxed | undefined {
  if (options.extraSocket) {
    const frame = decode(data);
    return frame && isPeerFrame(frame) ? { kind: "frame", frame, via: from } : undefined;
  }
  const fromServer = sameEndpoint(from, options.server);
  // Before frames: STUN's first byte is below 0x20 too.
  if (isStun(data)) return { kind: "stun", data };
  if (!isFrame(data)) {
    if (sameEndpoint(from, secondPort(options.server))) {
      const seen = parseWhoamiAnswer(data);
      return seen && { kind: "whoami", seen };
    }
    if (!fromServer) return undefined;
    try {
      // Several messages may share a datagram, one per line: a `Presence` header and the
      // changes it covers are one unit, so a malformed line voids the whole datagram.
      const lines = decodeText(data, MAX_BATCH_DATAGRAM).split("\n").filter((l) => l !== "");
      return { kind: "coordinator", messages: lines.map(parseServerMessage) };
    } catch (err) {
      if (!(err instanceof SeedProtocolError)) throw err;
      return { kind: "malformed", reason: err.message };
    }
  }
  const frame = decode(data);
  if (frame?.type === "relayed") {
    if (!fromServer) return undefined;
    const inner = decode(frame.inner);
    // The coordinator vouches for the sender's name; the inner frame must agree.
    if (!inner || !isPeerFrame(inner) || inner.from !== frame.from) return undefined;
    return { kind: "frame", frame: inner, via: "relay" };
  }
  return frame && isPeerFrame(frame) ? { kind: "frame", frame, via: from } : undefined;
}

function decode(data: Uint8Array): Frame | undefined {
  try {
    return decodeFrame(data);
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    return undefined;
  }
}

function isPeerFrame(frame: Frame): frame is PeerFrame {
  return frame.type !== "relay" && frame.type !== "relayed";
}
