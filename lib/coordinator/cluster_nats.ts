/**
 * The NATS connection of a cluster member: the thin layer between `cluster.ts` and the NATS
 * client (`@nats-io/transport-node`). It connects with the operator's credentials (a token, or an
 * nkey seed), subscribes to the community's subjects, hands every message up as bytes, publishes,
 * and says when the connection is lost and back. It decides nothing.
 *
 * Loaded only with `--cluster` (by a dynamic import in `wiring.ts`), so that a coordinator on its
 * own never loads the NATS client.
 *
 * @example
 * ```ts
 * const link = await openNatsLink({
 *   url: "nats://127.0.0.1:4222", token: "secret", name: "p2p a", subjects: ["p2p.demo.>"],
 *   onMessage: (subject, data) => console.log(subject, data.length),
 *   onState: (up, detail) => console.log(up ? "connected" : "lost", detail),
 * });
 * link.publish("p2p.demo.want.a", new Uint8Array());
 * await link.close();
 * ```
 * @module
 */
import {
  connect,
  type ConnectionOptions,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";

/** Options for {@linkcode openNatsLink}. */
export interface NatsLinkOptions {
  /** `nats://HOST:PORT` (several, comma-separated, for a NATS cluster). */
  url: string;
  /** The server's `authorization { token }`. */
  token?: string;
  /** An nkey seed (`SU…`), for a server that lists the user's public nkey. */
  nkeySeed?: string;
  /** The connection's name, shown by the server's monitoring. */
  name: string;
  /** What to subscribe to (wildcard subjects). */
  subjects: readonly string[];
  onMessage: (subject: string, data: Uint8Array) => void;
  /** The connection came up (`true`, again after a loss) or was lost (`false`). */
  onState: (up: boolean, detail: string) => void;
}

/** A member's open connection to NATS. */
export interface NatsLink {
  /** Publishes (dropped while disconnected past the client's buffer: state is resent on return). */
  publish(subject: string, data: Uint8Array): void;
  /** Whether the connection is up now. */
  readonly up: boolean;
  close(): Promise<void>;
}

/** Thrown when NATS refuses our credentials: the operator must fix them, retrying cannot. */
export class NatsAuthError extends Error {
  override name = "NatsAuthError";
}

function isAuthError(err: unknown): boolean {
  const text = `${(err as Error)?.message ?? err} ${(err as { code?: string })?.code ?? ""}`;
  return /authori[sz]ation|authentication|AUTHORIZATION/i.test(text);
}

/**
 * After NATS refused our credentials and closed, the Node socket under the client may still
 * report the reset once the client stopped listening to it (seen under Deno's `node:net`): an
 * uncaught `ECONNRESET` would take the process down before it could say why it stops. For a
 * moment, that one error is taken as handled.
 */
function swallowLateReset(): void {
  const onError = (event: ErrorEvent): void => {
    if ((event.error as { code?: string })?.code === "ECONNRESET") event.preventDefault();
  };
  globalThis.addEventListener("error", onError);
  setTimeout(() => globalThis.removeEventListener("error", onError), 1000);
}

/** Between attempts to reach a NATS that was not there at start. */
const RETRY_FIRST_CONNECT_MS = 1000;

/**
 * Connects and subscribes. Credentials NATS refuses reject the promise ({@linkcode NatsAuthError});
 * a NATS that cannot be reached does not: the link keeps trying in the background (`onState`
 * says when it is up), so that the coordinator serves its own users meanwhile.
 */
export async function openNatsLink(options: NatsLinkOptions): Promise<NatsLink> {
  const base: ConnectionOptions = {
    servers: options.url.split(",").map((s) => s.trim().replace(/^nats:\/\//, "")),
    name: options.name,
    noEcho: true,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 2000,
    maxPingOut: 2,
    ...(options.token !== undefined ? { token: options.token } : {}),
    ...(options.nkeySeed !== undefined
      ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed)) }
      : {}),
  };
  let nc: NatsConnection | undefined;
  let closed = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let up = false;
  const attach = (conn: NatsConnection): void => {
    nc = conn;
    up = true;
    for (const subject of options.subjects) {
      conn.subscribe(subject, {
        callback: (err, msg) => {
          if (err === null) options.onMessage(msg.subject, msg.data);
        },
      });
    }
    (async () => {
      for await (const s of conn.status()) {
        if (s.type === "disconnect") {
          up = false;
          options.onState(false, `lost NATS at ${options.url}`);
        } else if (s.type === "reconnect") {
          up = true;
          options.onState(true, `NATS at ${options.url} is back`);
        }
      }
    })().catch(() => {});
    conn.closed().then((err) => {
      up = false;
      if (!closed) options.onState(false, `NATS connection closed: ${err?.message ?? "by server"}`);
    });
  };
  try {
    attach(await connect(base));
  } catch (err) {
    if (isAuthError(err)) {
      swallowLateReset();
      throw new NatsAuthError(
        `NATS at ${options.url} refused our credentials: ${(err as Error).message}`,
      );
    }
    options.onState(false, `cannot reach NATS at ${options.url}: ${(err as Error).message}`);
    // Keep trying in the background, in attempts of our own that close() can end (the client's
    // own wait for a first connection cannot be cancelled); the coordinator serves its own
    // users meanwhile.
    const again = (): void => {
      retry = setTimeout(async () => {
        retry = undefined;
        try {
          const conn = await connect(base);
          if (closed) return void await conn.close();
          attach(conn);
          options.onState(true, `connected to NATS at ${options.url}`);
        } catch (e) {
          if (closed) return;
          if (isAuthError(e)) swallowLateReset();
          options.onState(false, `still cannot reach NATS: ${(e as Error).message}`);
          again();
        }
      }, RETRY_FIRST_CONNECT_MS);
    };
    again();
  }
  return {
    publish(subject, data) {
      if (nc === undefined || nc.isClosed()) return;
      try {
        nc.publish(subject, data);
      } catch {
        // Disconnected past the client's buffer: the state is sent again when NATS is back.
      }
    },
    get up() {
      return up;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      if (nc !== undefined && !nc.isClosed()) {
        // What we published last (our users' goodbye) goes out, unless NATS is away: then the
        // other members drop us when our silence has lasted, and we do not wait for it.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const away = new Promise<void>((resolve) => timer = setTimeout(resolve, 1000));
        await Promise.race([nc.flush().catch(() => {}), away]);
        clearTimeout(timer);
        await nc.close();
      }
    },
  };
}
