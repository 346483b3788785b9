/**
 * `p2p serve --metrics HOST:PORT`: an HTTP server (Deno.serve) that answers `GET /metrics` with
 * the coordinator's metrics in the Prometheus text format (`metrics.ts` makes the text), and 404
 * or 405 to anything else. Its own module: the only HTTP the coordinator speaks.
 *
 * @example
 * ```ts
 * const server = serveMetrics({ hostname: "127.0.0.1", port: 0, render: () => "" });
 * console.log(server.port);
 * await server.close();
 * ```
 * @module
 */
import { METRICS_CONTENT_TYPE } from "./metrics.ts";

/** Options for {@linkcode serveMetrics}. */
export interface MetricsServerOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** The text served at `/metrics`, made at each request. */
  render: () => string;
}

/** A running metrics server. */
export interface MetricsServer {
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening and waits for requests under way. */
  close(): Promise<void>;
}

/**
 * Listens on `hostname:port` and serves `render()` at `GET /metrics` (and `HEAD`). Throws
 * `Deno.errors.AddrInUse` when the port is taken.
 *
 * @example
 * ```ts
 * const server = serveMetrics({ hostname: "127.0.0.1", port: 9464, render: () => "up 1\n" });
 * await server.close();
 * ```
 */
export function serveMetrics(options: MetricsServerOptions): MetricsServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => {},
  }, (request) => {
    if (new URL(request.url).pathname !== "/metrics") {
      return new Response("not found: metrics are at /metrics\n", { status: 404 });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("only GET\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    return new Response(request.method === "HEAD" ? null : options.render(), {
      headers: { "content-type": METRICS_CONTENT_TYPE },
    });
  });
  return {
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}
