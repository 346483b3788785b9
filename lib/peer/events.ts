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
import { formatEndpoint } from "../protocol/endpoint.ts";
import type { ContactInfo, RequestInfo } from "./contacts.ts";
import type { LinkEvents } from "./link.ts";

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
  /**
   * `unaccepted`: the key is a changed one, not accepted yet (`/trust`); `previous` is then the
   * pinned key's fingerprint.
   */
  | {
    event: "fingerprint";
    user: string;
    fingerprint: string;
    safety?: string;
    unaccepted?: boolean;
    previous?: string;
  }
  | { event: "coordinator"; state: "lost" | "back" }
  /**
   * `user` asked to talk to us; `accepted` by our policy (`--accept`) or not, with the `reason`.
   * Accepting is our consent: the coordinator then introduces us.
   */
  | { event: "knock"; user: string; fingerprint: string; accepted: boolean; reason?: string }
  /** `user` (whose key has `fingerprint`) asks to be our contact (`/accept` or `/decline`). */
  | { event: "contact-request"; user: string; fingerprint: string; note: string }
  /** We asked `user` to be our contact: nothing more is told until they accept. */
  | { event: "contact-request-sent"; user: string }
  /** We blocked `user` (its requests never reach us), or unblocked it. */
  | { event: "contact-blocked"; user: string; blocked: boolean }
  /** `user` and we are contacts now (both accepted): we see each other's presence. */
  | { event: "contact-added"; user: string; fingerprint: string }
  /** `user` is no longer our contact (we or they removed it). */
  | { event: "contact-removed"; user: string }
  /** Our contacts (`/contacts`), online or not, and the requests waiting for our answer. */
  | { event: "contacts"; contacts: ContactInfo[]; requests: RequestInfo[] }
  | { event: "error"; message: string };

/** Receives a peer's events. */
export type EventSink = (event: PeerEvent) => void;

/**
 * What the link to `peer` reports, as events of ours (we are `me`): its messages, the fate of
 * ours (`settle` hears of each first), and the paths it finds.
 *
 * @example
 * ```ts
 * const events = linkEventsFor({ peer: "bob", me: "alice", emit: console.log, settle: () => {} });
 * events.onDelivered(1); // emits { event: "delivered", to: "bob", id: 1 }
 * ```
 */
export function linkEventsFor(
  options: { peer: string; me: string; emit: EventSink; settle: (id: number) => void },
): LinkEvents {
  const { peer, me, emit, settle } = options;
  return {
    onMessage: (msg, path) =>
      emit({
        event: "message",
        from: peer,
        to: msg.group ? "*" : me,
        text: msg.text,
        id: msg.id,
        path: path.kind,
      }),
    onDelivered: (id) => {
      settle(id);
      emit({ event: "delivered", to: peer, id });
    },
    onUndelivered: (id, reason) => {
      settle(id);
      emit({ event: "undelivered", to: peer, id, reason });
    },
    onPath: (path) => {
      if (path.kind === "none") return;
      emit(
        path.kind === "direct"
          ? { event: "path", user: peer, path: "direct", endpoint: formatEndpoint(path.endpoint) }
          : { event: "path", user: peer, path: "relay" },
      );
    },
  };
}
