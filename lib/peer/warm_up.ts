/**
 * Runs a chat's first message once in memory, between two throwaway links, before the client
 * logs in: the introduction, the probes and their acknowledgements, the Noise XX handshake, the
 * message and its acknowledgement, through {@linkcode Link} with its path finder, handshake,
 * session and reliable channel, and the frame codecs. A process runs such code cold the first
 * time (V8 has not compiled it yet, and `node:crypto` sets up its X25519 on first use): in memory
 * the exchange takes 55–70 ms the first time and 5–15 ms later on (2 shared cores under load), and
 * in the lab a first message took 54 ms (p50) with only the handshake warmed after login, 29 ms
 * with this before login (docs/NAT.md, "Where the time of a first message goes").
 *
 * Separate from the peer because it is a small self-contained exercise of the link, and run
 * once per process (the compiled code is the process's), before login, so that no peer can be
 * waiting on it: a knock that arrived during it would be answered late.
 *
 * @example
 * ```ts
 * import { warmUpLinks } from "./warm_up.ts";
 *
 * warmUpLinks(); // true: the message went through, and was acknowledged
 * ```
 * @module
 */
import { generateKeyPair } from "../crypto/noise.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { decodeFrame } from "../protocol/frame.ts";
import { type Introduction, Link, type LinkEvents } from "./link.ts";

/** Frames the exercise may carry before it gives up (it needs about a dozen). */
const MAX_FRAMES = 100;

let warmed = false;

/**
 * Sends one message between two links in memory, the first time it is called in the process;
 * true when it arrived and was acknowledged (or was done before). Later calls do nothing: the
 * code is warm for the whole process.
 *
 * @example
 * ```ts
 * import { warmUpLinks } from "./warm_up.ts";
 *
 * warmUpLinks();
 * ```
 */
export function warmUpLinks(): boolean {
  if (warmed) return true;
  warmed = true;
  const names = ["alice", "bob"] as const;
  const keys = { alice: generateKeyPair(), bob: generateKeyPair() };
  const at: Record<string, Endpoint> = {
    alice: { host: "192.0.2.1", port: 1 },
    bob: { host: "192.0.2.2", port: 2 },
  };
  const wire: { to: "alice" | "bob"; frame: Uint8Array; from: Endpoint }[] = [];
  let received = false;
  let delivered = false;
  const links = {} as Record<"alice" | "bob", Link>;
  for (const me of names) {
    const peer = me === "alice" ? "bob" : "alice";
    const events: LinkEvents = {
      onMessage: () => received = true,
      onDelivered: () => delivered = true,
      onUndelivered: () => {},
      onPath: () => {},
    };
    links[me] = new Link({
      me,
      peer,
      staticKeyPair: keys[me],
      instanceId: 1,
      verifyKey: () => true,
      events,
      transport: {
        sendTo: (frame) => wire.push({ to: peer, frame, from: at[me] }),
        sendViaRelay: () => {},
        openSockets: () => Promise.resolve([]),
        closeSockets: () => {},
        localNat: () => undefined,
        requestIntroduction: () => {},
      },
    });
  }
  try {
    const token = crypto.getRandomValues(new Uint8Array(16));
    for (const me of names) {
      const peer = me === "alice" ? "bob" : "alice";
      const endpoint = at[peer];
      const intro: Introduction = {
        candidates: [{ kind: "public", endpoint }],
        key: keys[peer].publicKey,
        token,
      };
      links[me].introduce(intro, { primed: [endpoint] });
    }
    links.alice.send({ group: false, id: 1, text: "warm-up" });
    for (let n = 0; n < MAX_FRAMES && wire.length > 0 && !delivered; n++) {
      const { to, frame, from } = wire.shift()!;
      links[to].receive(decodeFrame(frame), from);
    }
    return received && delivered;
  } finally {
    for (const me of names) links[me].close("warm-up over");
  }
}
