/**
 * The events a peer reports to its front end. The `--json` mode prints each as one JSON line,
 * so these shapes are a public interface: fields may be added, never renamed.
 *
 * @example
 * ```ts
 * const e: PeerEvent = { event: "message", from: "bob", text: "hi", id: 1 };
 * console.log(JSON.stringify(e));
 * ```
 * @module
 */

/** An online user as the peer knows it. */
export interface OnlineUser {
  user: string;
  /** The endpoint the coordinator saw for it, `a.b.c.d:port`. */
  endpoint: string;
}

/** Everything a peer reports. */
export type PeerEvent =
  | { event: "ready"; user: string; server: string; endpoint: string }
  | { event: "online"; user: string; endpoint: string }
  | { event: "offline"; user: string }
  | { event: "who"; users: OnlineUser[] }
  | { event: "sent"; to: string; id: number }
  | { event: "message"; from: string; text: string; id: number }
  | { event: "delivered"; to: string; id: number }
  | { event: "undelivered"; to: string; id: number; reason: string }
  | { event: "error"; message: string };

/** Receives a peer's events. */
export type EventSink = (event: PeerEvent) => void;
