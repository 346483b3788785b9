/**
 * The coordinator's metrics in the Prometheus text exposition format (version 0.0.4): what
 * `p2p serve --metrics` serves at `/metrics`. Pure: {@linkcode collectMetrics} reads a snapshot of
 * the counters and gauges the rooms keep ({@linkcode MetricsSource}), {@linkcode renderMetrics}
 * writes text. The HTTP side is `metrics_server.ts`; docs/METRICS.md lists every metric.
 *
 * Separate from `stats.ts` because the counters cost nothing to keep, and this formatting is
 * only paid for when a scraper asks.
 *
 * @example
 * ```ts
 * import { createStats } from "./stats.ts";
 *
 * const text = renderMetrics(collectMetrics({
 *   version: "0.1.0",
 *   stats: createStats(),
 *   online: 0,
 *   pending: 0,
 *   backlog: 0,
 *   listConnections: 0,
 *   relay: { pairs: 0, forwarded: 0, forwardedBytes: 0, dropped: {} },
 * }));
 * ```
 * @module
 */
import type { HistogramSnapshot } from "./histogram.ts";
import type { CoordinatorStats } from "./stats.ts";

/** The state of the NATS cluster a coordinator is a member of (`p2p serve --cluster`). */
export interface ClusterState {
  /** Whether the coordinator is connected to NATS now. */
  connected: boolean;
  /** Coordinators of the community it knows of, itself included. */
  members: number;
  /** How far behind the community's presence it is, in milliseconds (the hop's latest delay). */
  lagMs: number;
  /**
   * The coordinator-to-coordinator hop of other members' presence messages, in seconds: from
   * their publish to `applied` here (listed, queued for our clients) and to `sent` (the presence
   * datagram carrying it handed to the socket for every client). Absent in older snapshots.
   */
  hops?: { applied: HistogramSnapshot; sent: HistogramSnapshot };
}

/** What the metrics are made of: a snapshot of the coordinator's rooms. */
export interface MetricsSource {
  version: string;
  stats: Readonly<CoordinatorStats>;
  /** Users online, and logins waiting for their list fetch. */
  online: number;
  pending: number;
  /** Presence datagrams waiting to be sent. */
  backlog: number;
  /** TCP connections the list service holds open. */
  listConnections: number;
  /** Relay: introduced pairs, frames and bytes forwarded, frames dropped by reason. */
  relay: {
    pairs: number;
    forwarded: number;
    forwardedBytes: number;
    dropped: Readonly<Record<string, number>>;
  };
  /** Messages and bytes waiting in the mailbox; absent without a mailbox. */
  mailbox?: { count: number; bytes: number };
  /** The cluster's state; absent without `--cluster`. */
  cluster?: ClusterState;
  /** TURN credentials handed out; absent without `--turn`. */
  turnCredentials?: number;
}

/** One sample of a metric: its labels and value. */
export interface Sample {
  /** A histogram's series: `_bucket` (with an `le` label), `_sum` or `_count`. */
  suffix?: "_bucket" | "_sum" | "_count";
  labels?: Record<string, string>;
  value: number;
}

/** One metric family. */
export interface Metric {
  /** `p2p_…`, in Prometheus' form (`[a-zA-Z_:][a-zA-Z0-9_:]*`). */
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  samples: Sample[];
}

/** The content type of {@linkcode renderMetrics}' text. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Writes metric families in the text format: `# HELP`, `# TYPE`, then one line per sample.
 * Throws a `TypeError` on a name or label name the format does not allow (a bug, not input).
 *
 * @example
 * ```ts
 * renderMetrics([{ name: "p2p_users_online", help: "Users online.", type: "gauge",
 *   samples: [{ value: 3 }] }]);
 * // "# HELP p2p_users_online Users online.\n# TYPE p2p_users_online gauge\np2p_users_online 3\n"
 * ```
 */
export function renderMetrics(metrics: readonly Metric[]): string {
  const lines: string[] = [];
  for (const m of metrics) {
    if (!NAME.test(m.name)) throw new TypeError(`invalid metric name "${m.name}"`);
    lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      lines.push(`${m.name}${s.suffix ?? ""}${labels(s.labels)} ${number(s.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * The coordinator's metric families, from a snapshot. Counters kept by reason get one sample per
 * reason seen so far; the mailbox, cluster and TURN families appear only where those are on.
 *
 * @example
 * ```ts
 * import { createStats } from "./stats.ts";
 *
 * const names = collectMetrics({
 *   version: "0.1.0", stats: createStats(), online: 2, pending: 0, backlog: 0, listConnections: 0,
 *   relay: { pairs: 0, forwarded: 0, forwardedBytes: 0, dropped: {} },
 * }).map((m) => m.name);
 * ```
 */
export function collectMetrics(source: MetricsSource): Metric[] {
  const { stats, relay } = source;
  const gauge = (name: string, help: string, value: number): Metric => ({
    name,
    help,
    type: "gauge",
    samples: [{ value }],
  });
  const counter = (name: string, help: string, value: number): Metric => ({
    name,
    help,
    type: "counter",
    samples: [{ value }],
  });
  const byLabel = (name: string, help: string, label: string, counts: Record<string, number>) => ({
    name,
    help,
    type: "counter" as const,
    samples: Object.entries(counts).sort(([a], [b]) => a < b ? -1 : 1)
      .map(([key, value]) => ({ labels: { [label]: key }, value })),
  });
  const metrics: Metric[] = [
    {
      name: "p2p_build_info",
      help: "The p2p version this coordinator runs (always 1).",
      type: "gauge",
      samples: [{ labels: { version: source.version }, value: 1 }],
    },
    gauge("p2p_users_online", "Users online now.", source.online),
    gauge("p2p_logins_pending", "Logins waiting for their list fetch.", source.pending),
    counter(
      "p2p_logins_total",
      "Logins admitted (brought online by their list fetch).",
      stats.logins,
    ),
    byLabel("p2p_login_refusals_total", "Logins refused, by reason.", "reason", stats.refusals),
    counter("p2p_challenges_total", "Proof-of-key challenges sent.", stats.challenges),
    counter("p2p_takeovers_total", "Names taken over by a proved key.", stats.takeovers),
    counter("p2p_list_fetches_total", "Online list fetches served.", stats.listFetches),
    gauge(
      "p2p_list_connections",
      "TCP connections the list service holds open.",
      source.listConnections,
    ),
    counter("p2p_datagrams_received_total", "UDP datagrams received.", stats.datagrams),
    counter("p2p_datagrams_malformed_total", "UDP datagrams that did not parse.", stats.malformed),
    counter("p2p_datagrams_sent_total", "UDP datagrams sent, all kinds.", stats.sent),
    counter("p2p_sent_bytes_total", "Bytes of UDP datagrams sent, all kinds.", stats.sentBytes),
    counter("p2p_presence_datagrams_total", "Presence datagrams sent.", stats.presenceSent),
    counter("p2p_presence_bytes_total", "Bytes of presence datagrams sent.", stats.presenceBytes),
    gauge("p2p_presence_backlog", "Presence datagrams waiting to be sent.", source.backlog),
    gauge("p2p_relay_pairs", "Introduced pairs the relay holds a budget for.", relay.pairs),
    counter("p2p_relay_frames_total", "Frames relayed between introduced peers.", relay.forwarded),
    counter(
      "p2p_relay_bytes_total",
      "Bytes relayed between introduced peers.",
      relay.forwardedBytes,
    ),
    byLabel("p2p_relay_dropped_total", "Relay frames dropped, by reason.", "reason", relay.dropped),
    byLabel(
      "p2p_limits_hit_total",
      "Datagrams, logins and connections refused by a limit, by limit.",
      "limit",
      stats.limitsHit,
    ),
    counter("p2p_contact_requests_total", "Contact requests stored.", stats.contactRequests),
  ];
  if (source.mailbox) {
    metrics.push(
      gauge("p2p_mailbox_messages", "Messages waiting in the mailbox.", source.mailbox.count),
      gauge("p2p_mailbox_bytes", "Bytes waiting in the mailbox.", source.mailbox.bytes),
    );
  }
  if (source.cluster) {
    const { connected, members, lagMs } = source.cluster;
    metrics.push(
      gauge(
        "p2p_cluster_connected",
        "1 while connected to the cluster's NATS, else 0.",
        connected ? 1 : 0,
      ),
      gauge(
        "p2p_cluster_members",
        "Coordinators of the community known, this one included.",
        members + 1, // the status counts the others
      ),
      gauge(
        "p2p_cluster_lag_seconds",
        "Longest silence of another coordinator (beats come every second).",
        lagMs / 1000,
      ),
    );
    const { hops } = source.cluster;
    if (hops) {
      metrics.push({
        name: "p2p_cluster_hop_seconds",
        help: "Other members' presence messages, from their publish to applied here and to " +
          "sent to our clients (read against our clock).",
        type: "histogram",
        samples: [
          ...histogramSamples({ stage: "applied" }, hops.applied),
          ...histogramSamples({ stage: "sent" }, hops.sent),
        ],
      });
    }
  }
  if (source.turnCredentials !== undefined) {
    metrics.push(
      counter("p2p_turn_credentials_total", "TURN credentials handed out.", source.turnCredentials),
    );
  }
  return metrics;
}

/** The parts of a running coordinator (`lib/coordinator.ts`) the metrics read. */
export interface MetricsTarget {
  readonly stats: Readonly<CoordinatorStats>;
  readonly registry: { readonly localCount: number; readonly pendingCount: number };
  readonly backlog: number;
  readonly listConnections: number;
  readonly relay: {
    readonly size: number;
    readonly stats: Readonly<{
      forwarded: number;
      forwardedBytes: number;
      notIntroduced: number;
      overBudget: number;
      userOverBudget: number;
      addressOverBudget: number;
    }>;
  };
  readonly mailbox?: {
    readonly store: { readonly total: Readonly<{ count: number; bytes: number }> };
  };
}

/**
 * Takes a coordinator's snapshot for {@linkcode collectMetrics}. `cluster` is the slot for the
 * cluster's state (`--cluster`), `turnCredentials` the count of TURN credentials (`--turn`):
 * each absent when that is off, and so are its metrics.
 *
 * @example
 * ```ts ignore
 * const text = renderMetrics(collectMetrics(snapshot(coordinator, { version: "0.1.0" })));
 * ```
 */
export function snapshot(
  coordinator: MetricsTarget,
  extra: { version: string; cluster?: () => ClusterState; turnCredentials?: () => number },
): MetricsSource {
  const relay = coordinator.relay.stats;
  const total = coordinator.mailbox?.store.total;
  return {
    version: extra.version,
    stats: coordinator.stats,
    online: coordinator.registry.localCount,
    pending: coordinator.registry.pendingCount,
    backlog: coordinator.backlog,
    listConnections: coordinator.listConnections,
    relay: {
      pairs: coordinator.relay.size,
      forwarded: relay.forwarded,
      forwardedBytes: relay.forwardedBytes,
      dropped: {
        "not-introduced": relay.notIntroduced,
        "pair-over-budget": relay.overBudget,
        "user-over-budget": relay.userOverBudget,
        "address-over-budget": relay.addressOverBudget,
      },
    },
    mailbox: total && { count: total.count, bytes: total.bytes },
    cluster: extra.cluster?.(),
    turnCredentials: extra.turnCredentials?.(),
  };
}

/** A histogram's series for one label set: cumulative buckets up to `+Inf`, sum and count. */
function histogramSamples(set: Record<string, string>, h: HistogramSnapshot): Sample[] {
  let cumulative = 0;
  const buckets = h.counts.map((c, i): Sample => {
    cumulative += c;
    const le = i < h.bounds.length ? number(h.bounds[i]) : "+Inf";
    return { suffix: "_bucket", labels: { ...set, le }, value: cumulative };
  });
  return [
    ...buckets,
    { suffix: "_sum", labels: set, value: h.sum },
    { suffix: "_count", labels: set, value: h.count },
  ];
}

function labels(set: Record<string, string> | undefined): string {
  if (!set) return "";
  const parts = Object.entries(set).map(([k, v]) => {
    if (!LABEL.test(k) || k.startsWith("__")) throw new TypeError(`invalid label name "${k}"`);
    return `${k}="${v.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`)}"`;
  });
  return `{${parts.join(",")}}`;
}

function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
