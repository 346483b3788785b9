/**
 * The events a peer reports to its front end. The `--json` mode prints each as one JSON line,
 * so these shapes are a public interface: fields may be added, never renamed.
 *
 * @example
 * ```ts
 * const e: PeerEvent = { event: "message", from: "bob", to: "alice", text: "hi", id: 1,
 *   path: "direct" };
 * console.log(JSON.stringify(e));
 * ```
 * @module
 */

/** How messages to a peer travel: straight to it, or through the coordinator's relay. */
export type PathKind = "direct" | "relay" | "none";

/** An online user as the peer knows it. */
export interface OnlineUser {
  user: string;
  /** The endpoint the coordinator saw for it, `a.b.c.d:port`. */
  endpoint: string;
  /** The path to it now (`none` until we have talked to it). */
  path: PathKind;
}

/** Everything a peer reports. */
export type PeerEvent =
  | { event: "ready"; user: string; server: string; endpoint: string; fingerprint: string }
  | { event: "online"; user: string; endpoint: string }
  | { event: "offline"; user: string }
  | { event: "who"; users: OnlineUser[] }
  | { event: "sent"; to: string; id: number; text: string; group?: boolean }
  | {
    event: "message";
    from: string;
    /** Our name, or `*` for a copy of a group message (`/all`). */
    to: string;
    text: string;
    id: number;
    path: PathKind;
  }
  | { event: "delivered"; to: string; id: number }
  | { event: "undelivered"; to: string; id: number; reason: string }
  | { event: "path"; user: string; path: PathKind; endpoint?: string }
  | { event: "key-changed"; user: string; fingerprint: string; previous: string }
  | { event: "trusted"; user: string; fingerprint: string }
  | { event: "fingerprint"; user: string; fingerprint: string; safety?: string }
  | { event: "coordinator"; state: "lost" | "back" }
  | { event: "error"; message: string };

/** Receives a peer's events. */
export type EventSink = (event: PeerEvent) => void;
