/**
 * The events a peer reports to its front end. The `--json` mode prints each as one JSON line,
 * so these shapes are a public interface: fields may be added, never renamed.
 *
 * @example
 * ```ts
 * const e: PeerEvent = { event: "message", from: "bob", to: "alice", text: "hi", id: 1,
 *   path: "direct", uid: "5f0e…", time: "2026-12-07T01:02:03.456Z" };
 * console.log(JSON.stringify(e));
 * ```
 * @module
 */
import { formatEndpoint } from "../protocol/endpoint.ts";
import type { ContactInfo, RequestInfo } from "./contacts.ts";
import type { DeliveryState, MessagePath } from "../store/message_log.ts";
import type { LinkEvents } from "./link.ts";
import type { FileEvent } from "../files/file_events.ts";
import type { Path } from "./traversal.ts";
import type { PeerMailboxEvents } from "./mailbox.ts";
import type { Messages } from "./messages.ts";

/**
 * How messages to a peer travel: straight to it, through a TURN server (`turn`: ours or the
 * peer's), or through the coordinator's relay.
 */
export type PathKind = "direct" | "turn" | "relay" | "none";

/**
 * The kind of a path finder's path as we report it: a direct path by way of a TURN server is
 * `turn`.
 *
 * @example
 * ```ts
 * pathKindOf({ kind: "relay" }); // "relay"
 * ```
 */
export function pathKindOf(path: Path): PathKind {
  return path.kind === "direct" && path.via === "turn" ? "turn" : path.kind;
}

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
  | {
    event: "sent";
    to: string;
    /** This session's number for the message (`#3`); `uid` names it for good. */
    id: number;
    text: string;
    group?: boolean;
    uid: string;
    /** When it was first sent, ISO 8601 (UTC). */
    time: string;
    /** Sent again after a restart: it was still pending when the client last stopped. */
    resumed?: boolean;
  }
  | {
    event: "message";
    from: string;
    /** Our name, or `*` for a copy of a group message (`/all`). */
    to: string;
    text: string;
    id: number;
    path: PathKind;
    uid: string;
    /** When the sender sent it (by its clock), ISO 8601 (UTC). */
    time: string;
    /** It came out of our mailbox at the coordinator (then `id` is 0 and `path` `none`). */
    via?: "mailbox";
  }
  /** `via: "mailbox"`: the recipient's receipt for a message it got from its mailbox. */
  | { event: "delivered"; to: string; id: number; uid: string; via?: "mailbox" }
  /**
   * Our message was left in the recipient's mailbox (it was offline or unreachable); `delivered`
   * follows when it has fetched it. `firstContact`: sealed to the key the coordinator has for
   * the name (never talked to), which is now pinned. `id` is 0 for a message of an earlier run.
   */
  | { event: "deposited"; to: string; id: number; uid: string; firstContact?: boolean }
  | { event: "undelivered"; to: string; id: number; reason: string; uid: string }
  /** A line of history: the backlog at start, `/history` or `/search` (`source` says which). */
  | {
    event: "history";
    source: "backlog" | "history" | "search";
    /** The sender: us, or the peer. */
    from: string;
    /** The recipient: the peer, or us (`*` for a copy of a group message we received). */
    to: string;
    text: string;
    /** A copy of a group message (`/all`). */
    group?: boolean;
    uid: string;
    /** When it was sent, by the sender's clock, ISO 8601 (UTC). */
    time: string;
    /** For our messages: `sending`, `delivered`, `undelivered`, `deposited`; else `received`. */
    state: DeliveryState;
    reason?: string;
    path?: MessagePath;
  }
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
   * The gateway mapped our chat port (`protocol`, `endpoint` peers may reach us at, `lifetime`
   * in seconds, renewed before it ends), moved it, or lost it; or no mapping could be had
   * (`reason`, without `endpoint`). `--no-port-mapping` turns it all off.
   */
  | {
    event: "port-mapping";
    protocol?: "pcp" | "natpmp" | "upnp";
    endpoint?: string;
    lifetime?: number;
    reason?: string;
  }
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
  /**
   * Our allocation on the coordinator's TURN server (`--turn`): `ready` (with our `relayed`
   * address), or `failed` with the `reason`: then pairs that cannot go direct use the
   * coordinator's relay.
   */
  | {
    event: "turn";
    state: "ready" | "failed";
    server: string;
    relayed?: string;
    reason?: string;
  }
  | { event: "error"; message: string }
  /** File transfers: `lib/files/file_events.ts`. */
  | FileEvent;

/** Receives a peer's events. */
export type EventSink = (event: PeerEvent) => void;

/**
 * What the link to `peer` reports, as events of ours: its messages and the fate of ours go
 * through `messages` (which records, drops duplicates and reports them), the paths it finds are
 * reported as `path` events.
 *
 * @example
 * ```ts
 * const events = linkEventsFor({ peer: "bob", emit: console.log, messages });
 * events.onDelivered(1); // messages.delivered("bob", 1, "none")
 * ```
 */
export function linkEventsFor(
  options: { peer: string; emit: EventSink; messages: Messages },
): LinkEvents {
  const { peer, emit, messages } = options;
  let path: PathKind = "none";
  return {
    onMessage: (msg, via) => messages.received(peer, msg, pathKindOf(via)),
    onDelivered: (id) => messages.delivered(peer, id, path),
    onUndelivered: (id, reason) => messages.undelivered(peer, id, reason),
    onPath: (found) => {
      if (found.kind === "none") return;
      const kind = path = pathKindOf(found);
      emit(
        found.kind === "direct"
          ? { event: "path", user: peer, path: kind, endpoint: formatEndpoint(found.endpoint) }
          : { event: "path", user: peer, path: "relay" },
      );
    },
  };
}

/**
 * What our mailbox reports, turned into our messages' records (`messages.ts`) and events.
 *
 * @example
 * ```ts
 * const events = mailboxEventsFor({ emit: console.log, messages });
 * events.onReceipt("bob", [uid]); // messages.receipt("bob", [uid]): `delivered`
 * ```
 */
export function mailboxEventsFor(
  options: { emit: EventSink; messages: Messages },
): PeerMailboxEvents {
  const { emit, messages } = options;
  return {
    onMessage: (mail) => messages.fromMailbox(mail.from, mail),
    onDeposited: (to, uid, first) => messages.deposited(to, uid, first),
    onUndelivered: (to, uid, reason) => messages.depositRefused(to, uid, reason),
    onReceipt: (from, uids) => messages.receipt(from, uids),
    onHeld: (from, count) =>
      emit({
        event: "error",
        message: `${count} message(s) from ${from} wait in your mailbox, sealed with a key ` +
          `other than the one you pinned: compare /fingerprint ${from} with them, then ` +
          `/trust ${from} to read them`,
      }),
    onError: (message) => emit({ event: "error", message }),
  };
}
