/**
 * What of the peer's event stream a person wants as lines on screen: one line for a message to
 * everyone (`/all`), not one per recipient and another per acknowledgement; a path notice only
 * when the path changes while messages are on their way (a peer that goes away while nothing is
 * sent is no news, and the same notice twice is noise). The `--json` stream keeps every event;
 * this is the terminal's reading of it. Pure state, no I/O.
 *
 * @example
 * ```ts
 * const digest = new Digest();
 * digest.beginGroup("hello");
 * digest.take({ event: "sent", to: "bob", id: 1, text: "hello", group: true }); // []
 * digest.endGroup(); // "[all] you → bob: hello  (#1, sending…)"
 * ```
 * @module
 */
import type { PathKind, PeerEvent } from "../peer/events.ts";

interface Group {
  text: string;
  recipients: string[];
  ids: number[];
  delivered: string[];
  settled: number;
}

/** A line to show for an event: the event itself, or a summary line styled as `kind`. */
export type Shown = { event: PeerEvent } | { summary: string; kind: PeerEvent["event"] };

/** Filters and summarises events for the terminal. */
export class Digest {
  #collecting: Group | undefined;
  readonly #groups = new Map<number, Group>();
  /** Messages sent to each user and not settled yet. */
  readonly #unsettled = new Map<string, number>();
  /** The last path announced for each user. */
  readonly #shownPath = new Map<string, PathKind>();

  /** The `sent` events that follow, until {@linkcode endGroup}, are one message to everyone. */
  beginGroup(text: string): void {
    this.#collecting = { text, recipients: [], ids: [], delivered: [], settled: 0 };
  }

  /** Ends a group; returns its one line, or `undefined` if nothing was sent. */
  endGroup(): string | undefined {
    const group = this.#collecting;
    this.#collecting = undefined;
    if (!group || group.ids.length === 0) return undefined;
    for (const id of group.ids) this.#groups.set(id, group);
    const ids = group.ids.length === 1
      ? `#${group.ids[0]}`
      : `#${group.ids[0]}–#${group.ids[group.ids.length - 1]}`;
    return `[all] you → ${group.recipients.join(", ")}: ${group.text}  (${ids}, sending…)`;
  }

  /** What to show for `e`: nothing, itself, or summaries. */
  take(e: PeerEvent): Shown[] {
    switch (e.event) {
      case "sent":
        this.#unsettled.set(e.to, (this.#unsettled.get(e.to) ?? 0) + 1);
        if (e.group && this.#collecting) {
          this.#collecting.recipients.push(e.to);
          this.#collecting.ids.push(e.id);
          return [];
        }
        return [{ event: e }];
      case "delivered":
      case "undelivered": {
        const left = (this.#unsettled.get(e.to) ?? 1) - 1;
        if (left > 0) this.#unsettled.set(e.to, left);
        else this.#unsettled.delete(e.to);
        const group = this.#groups.get(e.id);
        if (!group) return [{ event: e }];
        this.#groups.delete(e.id);
        group.settled++;
        if (e.event === "delivered") group.delivered.push(e.to);
        // A failure is news at once; the deliveries are one line when all are settled.
        const shown: Shown[] = e.event === "undelivered" ? [{ event: e }] : [];
        if (group.settled === group.ids.length && group.delivered.length > 0) {
          shown.push({
            summary: `✓ [all] delivered to ${group.delivered.join(", ")}`,
            kind: "delivered",
          });
        }
        return shown;
      }
      case "path": {
        if (this.#shownPath.get(e.user) === e.path) return [];
        if (e.path === "relay" && !this.#unsettled.has(e.user)) return [];
        this.#shownPath.set(e.user, e.path);
        return [{ event: e }];
      }
      default:
        return [{ event: e }];
    }
  }
}
