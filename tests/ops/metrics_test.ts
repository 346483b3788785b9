import assert from "node:assert/strict";
import { metricsOption } from "../../lib/cli/options.ts";
import { collectMetrics, renderMetrics } from "../../lib/coordinator/metrics.ts";
import { countBy, createStats } from "../../lib/coordinator/stats.ts";
import { Histogram, HOP_BUCKETS_SECONDS } from "../../lib/coordinator/histogram.ts";
import { installed } from "../support/tools.ts";
import { startServe } from "../support/proc.ts";
import { SeedClient, seedLogin } from "../support/seed_client.ts";

/** Runs `promtool check metrics` on `text`; returns its exit code and everything it printed. */
async function promtool(text: string): Promise<{ code: number; out: string }> {
  if (!installed("promtool")) {
    throw new Error("promtool is not installed (Debian: apt install prometheus; .ci/run does)");
  }
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, out: (dec.decode(r.stdout) + dec.decode(r.stderr)).trim() };
}

/** The value of the sample `line` (`name{labels}`) in `text`. */
function sample(text: string, line: string): number | undefined {
  const found = text.split("\n").find((l) => l.startsWith(line + " "));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

Deno.test("a real p2p serve serves /metrics that promtool accepts, counting a login", async () => {
  const { proc, port } = await startServe(["--metrics", "127.0.0.1:0"]);
  const client = await SeedClient.open({ host: "127.0.0.1", port });
  try {
    const line = await proc.stderr.waitFor((l) => / metrics on http:/.test(l), 10_000, "metrics");
    const url = /(http:\S+)/.exec(line)![1];
    assert.ok(!line.includes("not loopback"), line);
    await seedLogin(client, "alice");
    const response = await fetch(url);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.equal(sample(text, "p2p_users_online"), 1);
    assert.equal(sample(text, "p2p_logins_total"), 1);
    assert.ok(sample(text, "p2p_datagrams_received_total")! >= 1);
    assert.equal(sample(text, "p2p_mailbox_messages"), 0);
    assert.equal(
      sample(text, "p2p_cluster_connected"),
      undefined,
      "no cluster, no cluster metrics",
    );
    const check = await promtool(text);
    assert.deepEqual(check, { code: 0, out: "" });
    const other = await fetch(url.replace("/metrics", "/"));
    assert.equal(other.status, 404);
    await other.body?.cancel();
  } finally {
    await client.close();
    await proc.dispose();
  }
});

Deno.test("every metric, with labels, cluster, mailbox and TURN, passes promtool", async () => {
  const stats = createStats();
  countBy(stats.refusals, "in-use");
  countBy(stats.refusals, "bad-proof");
  countBy(stats.limitsHit, "max-users");
  const applied = new Histogram(HOP_BUCKETS_SECONDS);
  const sent = new Histogram(HOP_BUCKETS_SECONDS);
  for (const s of [0.0008, 0.003, 0.004]) applied.observe(s);
  for (const s of [0.02, 0.07, 9]) sent.observe(s);
  const text = renderMetrics(collectMetrics({
    version: "0.1.0",
    stats,
    online: 3,
    pending: 1,
    backlog: 0,
    listConnections: 2,
    relay: { pairs: 1, forwarded: 5, forwardedBytes: 500, dropped: { "not-introduced": 2 } },
    mailbox: { count: 4, bytes: 400 },
    cluster: {
      connected: true,
      members: 3,
      lagMs: 12,
      hops: { applied: applied.snapshot(), sent: sent.snapshot() },
    },
    turnCredentials: 7,
  }));
  assert.equal(sample(text, 'p2p_login_refusals_total{reason="in-use"}'), 1);
  assert.equal(sample(text, 'p2p_limits_hit_total{limit="max-users"}'), 1);
  assert.equal(sample(text, "p2p_cluster_lag_seconds"), 0.012);
  assert.equal(sample(text, "p2p_cluster_members"), 4, "the status counts the other members");
  assert.equal(sample(text, "p2p_turn_credentials_total"), 7);
  // The hop histogram: cumulative buckets per stage, up to +Inf, then sum and count.
  const hop = (s: string) => sample(text, `p2p_cluster_hop_seconds_${s}`);
  assert.equal(hop('bucket{stage="applied",le="0.001"}'), 1);
  assert.equal(hop('bucket{stage="applied",le="0.005"}'), 3);
  assert.equal(hop('bucket{stage="sent",le="0.05"}'), 1);
  assert.equal(hop('bucket{stage="sent",le="5"}'), 2);
  assert.equal(hop('bucket{stage="sent",le="+Inf"}'), 3);
  assert.equal(hop('count{stage="sent"}'), 3);
  assert.ok(Math.abs(hop('sum{stage="applied"}')! - 0.0078) < 1e-9);
  assert.match(text, /# TYPE p2p_cluster_hop_seconds histogram\n/);
  assert.deepEqual(await promtool(text), { code: 0, out: "" });
});

Deno.test("renderMetrics escapes label values and refuses names the format does not allow", () => {
  const text = renderMetrics([{
    name: "p2p_x",
    help: "a\\b\nc",
    type: "gauge",
    samples: [{ labels: { v: 'q"\\\n' }, value: NaN }],
  }]);
  assert.equal(text, '# HELP p2p_x a\\\\b\\nc\n# TYPE p2p_x gauge\np2p_x{v="q\\"\\\\\\n"} NaN\n');
  assert.throws(
    () => renderMetrics([{ name: "p2p-x", help: "", type: "gauge", samples: [] }]),
    TypeError,
  );
});

Deno.test("--metrics takes HOST:PORT or a bare port on loopback", () => {
  assert.deepEqual(metricsOption("9464"), { host: "127.0.0.1", port: 9464 });
  assert.deepEqual(metricsOption("[::1]:9464"), { host: "::1", port: 9464 });
  assert.deepEqual(metricsOption("0.0.0.0:9464"), { host: "0.0.0.0", port: 9464 });
  assert.throws(() => metricsOption("localhost:9464"), /--metrics must be HOST:PORT/);
  assert.throws(() => metricsOption("127.0.0.1"), /--metrics must be HOST:PORT/);
});
