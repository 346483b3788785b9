/**
 * The coordinator's log: every line made printable (no input can forge or garble a line), lines
 * that input decides the rate of throttled ({@linkcode LogThrottle}), and one kind of line for a
 * limit that was hit, counted in {@linkcode CoordinatorStats.limited}. Its own module because
 * every room of the coordinator writes to it.
 *
 * @example
 * ```ts
 * import { realClock } from "../clock.ts";
 * import { createStats } from "./stats.ts";
 *
 * const log = new ServerLog({ clock: realClock, write: console.error, stats: createStats() });
 * log.limited("max-tcp", "1024 TCP connections open; closed one from 192.0.2.1");
 * ```
 * @module
 */
import type { Clock } from "../clock.ts";
import { formatEndpoint } from "../protocol/endpoint.ts";
import { LogThrottle } from "./limits.ts";
import type { User } from "./registry.ts";
import { type CoordinatorStats, countBy } from "./stats.ts";

/** The counters {@linkcode ServerLog.limited} adds to. */
export type LimitCounters =
  & Pick<CoordinatorStats, "limited">
  & Partial<Pick<CoordinatorStats, "limitsHit">>;

/** Options for {@linkcode ServerLog}. */
export interface ServerLogOptions {
  clock: Clock;
  /** Where lines go. */
  write: (line: string) => void;
  /** Counts the limits hit, and by limit if `limitsHit` is there (the metrics read it). */
  stats: LimitCounters;
}

/** The coordinator's log. */
export class ServerLog {
  readonly #write: (line: string) => void;
  readonly #throttle: LogThrottle;
  readonly #stats: LimitCounters;

  constructor(options: ServerLogOptions) {
    const write = options.write;
    this.#write = (line) => write(printable(line));
    this.#throttle = new LogThrottle({ now: () => options.clock.now(), log: this.#write });
    this.#stats = options.stats;
  }

  /** Writes a line (one the server's own pace decides the rate of). */
  line(text: string): void {
    this.#write(text);
  }

  /** Writes a line of a kind that input decides the rate of: throttled per `kind`. */
  throttled(kind: string, text: string): void {
    this.#throttle.line(kind, text);
  }

  /** Notes a limit that was hit: counted, and logged as `limit <limit> reached: <detail>`. */
  limited(limit: string, detail: string): void {
    this.#stats.limited++;
    if (this.#stats.limitsHit) countBy(this.#stats.limitsHit, limit);
    this.#throttle.line(`limit ${limit}`, `limit ${limit} reached: ${detail}`);
  }

  /** Reports the throttled lines held back since the last flush. */
  flush(): void {
    this.#throttle.flush();
  }
}

/**
 * A user as the log names it: name, observed and claimed endpoints.
 *
 * @example
 * ```ts
 * describe(user); // "alice 192.0.2.1:4000 (claimed 10.0.0.2:4000)"
 * ```
 */
export function describe(user: User): string {
  return `${user.name} ${formatEndpoint(user.observed)} (claimed ${formatEndpoint(user.claimed)})`;
}

/**
 * Escapes control characters so that no input can forge or garble log lines.
 *
 * @example
 * ```ts
 * printable("a\nb"); // "a\\u000ab"
 * ```
 */
export function printable(line: string): string {
  return line.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
