/** A chat client for tests: a real `Peer` on loopback whose events are collected. */
import type { Coordinator } from "../../lib/coordinator.ts";
import { Peer, type PeerOptions } from "../../lib/peer.ts";
import type { PeerEvent } from "../../lib/peer/events.ts";
import { Collector } from "./wait.ts";

/** A started peer and what it has reported so far. */
export interface TestPeer {
  peer: Peer;
  events: Collector<PeerEvent>;
}

/**
 * Starts `name` against `coordinator` on 127.0.0.1 (any port), keeping its identity in
 * `configDir`; `extra` overrides any option. The caller closes the peer.
 */
export async function startPeer(
  coordinator: Coordinator,
  configDir: string,
  name: string,
  extra: Partial<PeerOptions> = {},
): Promise<TestPeer> {
  const events = new Collector<PeerEvent>();
  const peer = await Peer.start({
    server: { host: "127.0.0.1", port: coordinator.udpPort },
    username: name,
    bind: { host: "127.0.0.1", port: 0 },
    configDir,
    onEvent: events.push,
    ...extra,
  });
  return { peer, events };
}
