/**
 * `p2p serve`: its options read and checked (limits, mailbox, presence), the coordinator
 * (`lib/coordinator.ts`) started with its metrics server if asked (`--metrics`) and TURN
 * credentials to hand out (`--turn`), what it serves
 * logged, and a clean stop on SIGINT or SIGTERM.
 *
 * @example
 * ```ts
 * const code = await serve(["--port", "7000", "--data", "/tmp/p2p"]);
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import {
  Coordinator,
  DEFAULT_MAILBOX_QUOTAS as Q,
  defaultDataDir,
  type Limits,
  type MailboxQuotas,
  PRESENCE_MODES,
  resolveLimits,
} from "../coordinator.ts";
import { fingerprint } from "../crypto/identity.ts";
import { DatabaseError } from "../store/database.ts";
import { SERVE_HELP, VERSION } from "./help.ts";
import { collectMetrics, renderMetrics, snapshot } from "../coordinator/metrics.ts";
import { type MetricsServer, serveMetrics } from "../coordinator/metrics_server.ts";
import type { TurnSettings } from "../coordinator/turn_grants.ts";
import { formatEndpoint } from "../protocol/endpoint.ts";
import { parseTurnUri, TurnUriError } from "../protocol/turn_credentials.ts";
import { CLUSTER_FLAGS, clusterOptions } from "./cluster_options.ts";
import {
  durationOption,
  isLoopback,
  metricsOption,
  portOption,
  secondsOption,
  sizeOption,
} from "./options.ts";
import { UsageError } from "./target.ts";

/**
 * `--turn URI --turn-secret-file F [--turn-ttl TIME]`: both or neither; the secret is the file's
 * first line (coturn's `static-auth-secret`), which must not be empty.
 */
async function turnOption(
  uri: string | undefined,
  file: string | undefined,
  ttl: string,
): Promise<TurnSettings | undefined> {
  if (uri === undefined && file === undefined) return undefined;
  if (uri === undefined || file === undefined) {
    throw new UsageError("--turn and --turn-secret-file go together: give both, or neither");
  }
  try {
    parseTurnUri(uri);
  } catch (err) {
    if (err instanceof TurnUriError) throw new UsageError(`--turn: ${err.message}`);
    throw err;
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new UsageError(`--turn-secret-file: cannot read ${file}: ${(err as Error).message}`);
  }
  const secret = text.split(/\r?\n/)[0];
  if (secret === "") throw new UsageError(`--turn-secret-file: ${file} has an empty first line`);
  const ttlMs = durationOption(ttl, "--turn-ttl");
  if (ttlMs < 60_000) throw new UsageError("--turn-ttl must be at least 1m");
  return { uri, secret: new TextEncoder().encode(secret), ttlMs };
}

/** Runs `p2p serve ARGS` until a signal stops it; resolves with the exit code. */
export async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string", default: "0.0.0.0" },
      port: { type: "string", default: "7000" },
      "tcp-port": { type: "string" },
      "peer-timeout": { type: "string", default: "45" },
      data: { type: "string" },
      "name-ttl": { type: "string", default: "180" },
      "mailbox-port": { type: "string" },
      "no-mailbox": { type: "boolean" },
      "mailbox-ttl": { type: "string", default: "14d" },
      "mailbox-per-user": { type: "string" },
      "mailbox-per-user-bytes": { type: "string" },
      "mailbox-per-ip": { type: "string" },
      "mailbox-per-ip-bytes": { type: "string" },
      "mailbox-max": { type: "string" },
      "mailbox-max-bytes": { type: "string" },
      "mailbox-max-message": { type: "string" },
      "mailbox-requests-per-ip": { type: "string" },
      presence: { type: "string", default: "everyone" },
      "batch-ms": { type: "string" },
      "max-users": { type: "string" },
      "max-pending": { type: "string" },
      "logins-per-ip": { type: "string" },
      "datagrams-per-ip": { type: "string" },
      "tcp-per-ip": { type: "string" },
      "max-tcp": { type: "string" },
      "tcp-idle": { type: "string" },
      "max-datagram": { type: "string" },
      "max-line": { type: "string" },
      "names-per-ip": { type: "string" },
      "new-names-per-ip-per-day": { type: "string" },
      "relay-bytes-per-user": { type: "string" },
      "relay-packets-per-user": { type: "string" },
      "relay-bytes-per-ip": { type: "string" },
      "relay-packets-per-ip": { type: "string" },
      "relay-file-limit": { type: "string" },
      metrics: { type: "string" },
      turn: { type: "string" },
      "turn-secret-file": { type: "string" },
      "turn-ttl": { type: "string", default: "1h" },
      ...CLUSTER_FLAGS,
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const count = (name: keyof typeof values): number | undefined => {
    const text = values[name];
    if (typeof text !== "string") return undefined;
    if (!/^[0-9]+$/.test(text) || Number(text) < 1) {
      throw new UsageError(`--${name} must be a whole number of at least 1, not "${text}"`);
    }
    return Number(text);
  };
  const idle = values["tcp-idle"];
  let limits: Limits;
  try {
    limits = resolveLimits({
      maxUsers: count("max-users"),
      maxPending: count("max-pending"),
      loginsPerSecond: count("logins-per-ip"),
      datagramsPerSecond: count("datagrams-per-ip"),
      tcpPerAddress: count("tcp-per-ip"),
      maxTcp: count("max-tcp"),
      tcpIdleMs: idle === undefined ? undefined : secondsOption(idle, "--tcp-idle") * 1000,
      maxDatagramBytes: count("max-datagram"),
      maxLineBytes: count("max-line"),
      namesPerAddress: count("names-per-ip"),
      newNamesPerAddressPerDay: count("new-names-per-ip-per-day"),
      relayBytesPerUser: count("relay-bytes-per-user"),
      relayPacketsPerUser: count("relay-packets-per-user"),
      relayBytesPerAddress: count("relay-bytes-per-ip"),
      relayPacketsPerAddress: count("relay-packets-per-ip"),
    });
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
  const batchMs = count("batch-ms");
  const port = portOption(values.port, "--port", true);
  const tcpPort = values["tcp-port"] === undefined
    ? undefined
    : portOption(values["tcp-port"], "--tcp-port", true);
  const timeout = secondsOption(values["peer-timeout"], "--peer-timeout");
  const ttlDays = Number(values["name-ttl"]);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(values["name-ttl"]) || ttlDays <= 0) {
    throw new UsageError(
      `--name-ttl must be a number of days above 0, not "${values["name-ttl"]}"`,
    );
  }
  const maxMessage = count("mailbox-max-message");
  if (maxMessage !== undefined && maxMessage > Q.maxMailBytes) {
    throw new UsageError(
      `--mailbox-max-message may be at most ${Q.maxMailBytes}, not ${maxMessage}`,
    );
  }
  const quotas: Partial<MailboxQuotas> = {
    perRecipientCount: count("mailbox-per-user"),
    perRecipientBytes: count("mailbox-per-user-bytes"),
    perSenderCount: count("mailbox-per-ip"),
    perSenderBytes: count("mailbox-per-ip-bytes"),
    totalCount: count("mailbox-max"),
    totalBytes: count("mailbox-max-bytes"),
    maxMailBytes: maxMessage,
  };
  const requests = count("mailbox-requests-per-ip");
  const mailbox = values["no-mailbox"] ? false as const : {
    port: values["mailbox-port"] === undefined
      ? undefined
      : portOption(values["mailbox-port"], "--mailbox-port", true),
    ttlMs: durationOption(values["mailbox-ttl"], "--mailbox-ttl"),
    quotas: Object.fromEntries(Object.entries(quotas).filter(([, v]) => v !== undefined)),
    limits: requests === undefined ? {} : { requestsPerSecond: requests },
  };
  const presence = PRESENCE_MODES.find((m) => m === values.presence);
  if (!presence) {
    throw new UsageError(`--presence takes everyone or contacts, not "${values.presence}"`);
  }
  const metricsAt = values.metrics === undefined ? undefined : metricsOption(values.metrics);
  const turn = await turnOption(values.turn, values["turn-secret-file"], values["turn-ttl"]);
  const cluster = await clusterOptions(values);
  let coordinator: Coordinator;
  let dataDir: string;
  try {
    dataDir = values.data ?? defaultDataDir();
    coordinator = await Coordinator.start({
      host: values.host,
      port,
      tcpPort,
      peerTimeoutMs: timeout * 1000,
      limits,
      batchMs,
      dataDir,
      nameTtlMs: ttlDays * 24 * 3600 * 1000,
      mailbox,
      presence,
      relayFileLimit: values["relay-file-limit"] === undefined
        ? undefined
        : sizeOption(values["relay-file-limit"], "--relay-file-limit"),
      turn,
      cluster,
    });
  } catch (err) {
    if (err instanceof Error && err.name === "NatsAuthError") {
      console.error(err.message);
      return 1;
    }
    if (!(err instanceof DatabaseError)) throw err;
    console.error(err.message);
    return 1;
  }
  let metrics: MetricsServer | undefined;
  if (metricsAt) {
    try {
      metrics = serveMetrics({
        hostname: metricsAt.host,
        port: metricsAt.port,
        render: () =>
          renderMetrics(collectMetrics(snapshot(coordinator, {
            version: VERSION,
            turnCredentials: coordinator.turn && (() => coordinator.turn!.issued),
            cluster: coordinator.cluster && (() => coordinator.clusterStatus()!),
          }))),
      });
    } catch (err) {
      await coordinator.close();
      throw err;
    }
  }
  // Listening for the signals before saying we listen: a Ctrl-C right after must still stop us
  // cleanly (exit 0), not kill us.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  console.error(
    `${new Date().toISOString()} p2p ${VERSION} coordinator on ${values.host} ` +
      `UDP ${coordinator.udpPort}, TCP ${coordinator.tcpPort}, peer timeout ${timeout} s, ` +
      `presence to ${presence}, up to ${limits.maxUsers} users`,
  );
  const box = coordinator.mailbox;
  console.error(
    `${new Date().toISOString()} ` +
      (box
        ? `mailbox on TCP ${box.port}: ${box.store.total.count} message(s) waiting`
        : "no mailbox"),
  );
  console.error(
    `${new Date().toISOString()} data in ${dataDir}: ${coordinator.owners.size} names ` +
      `registered, ${coordinator.contacts.pairs} contact pairs; coordinator key ${
        fingerprint(coordinator.store.keyPair.publicKey)
      }`,
  );
  if (metrics && metricsAt) {
    const where = formatEndpoint({ host: metricsAt.host, port: metrics.port });
    console.error(
      `${new Date().toISOString()} metrics on http://${where}/metrics` +
        (isLoopback(metricsAt.host)
          ? ""
          : " (not loopback: whoever reaches this address reads them; firewall it)"),
    );
  }
  if (turn) {
    console.error(
      `${new Date().toISOString()} TURN credentials for ${turn.uri}, valid ${
        values["turn-ttl"]
      }, with each introduction`,
    );
  }
  await stopped;
  await metrics?.close();
  await coordinator.close();
  console.error(`${new Date().toISOString()} coordinator stopped`);
  return 0;
}
