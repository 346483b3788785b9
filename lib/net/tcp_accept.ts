/**
 * The accept loop of the coordinator's TCP services (the list, the mailbox): every connection
 * handed to its service, and a failed accept (out of file descriptors, say) noted and waited out
 * rather than ending the service.
 *
 * @example
 * ```ts
 * import { acceptEach } from "./tcp_accept.ts";
 * import { realClock } from "../clock.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * let closed = false;
 * const done = acceptEach(listener, {
 *   closed: () => closed,
 *   serve: (conn) => conn.close(),
 *   failed: (err) => console.error(`accept: ${err.message}`),
 *   clock: realClock,
 * });
 * closed = true;
 * listener.close();
 * await done;
 * ```
 * @module
 */
import type { Clock } from "../clock.ts";

/** Options for {@linkcode acceptEach}. */
export interface AcceptEachOptions<C extends Deno.Conn> {
  /** Whether the service is closing: a failed accept then ends the loop quietly. */
  closed(): boolean;
  serve(conn: C): void;
  /** A failed accept while open; the loop waits 10 ms and goes on. */
  failed(err: Error): void;
  clock: Clock;
}

/** Accepts connections on `listener` until it is closed. */
export async function acceptEach<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  options: AcceptEachOptions<C>,
): Promise<void> {
  while (!options.closed()) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (err) {
      if (options.closed() || err instanceof Deno.errors.BadResource) return;
      options.failed(err as Error);
      await new Promise((resolve) => options.clock.setTimeout(() => resolve(undefined), 10));
      continue;
    }
    options.serve(conn);
  }
}

/** Closes a connection that may already be closed. */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
