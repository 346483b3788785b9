/**
 * Mailbox benchmark: the coordinator's mailbox (store, group commit, TCP service) in a process of
 * its own, over a real SQLite file in a temporary folder (`synchronous = FULL`: every
 * acknowledged deposit is on disk), driven over loopback TCP by {@linkcode MailboxClient}s. It
 * measures, and prints as one table (docs/MAILBOX.md has the results):
 *
 * - deposits per second sustained: `--connections` clients each keeping `--window` deposits in
 *   flight, `--deposits` in all, to 100 recipients;
 * - the time one user takes to fetch and acknowledge `--queued` waiting messages (login to
 *   inbox), from a fresh connection;
 * - the server's RSS and the database's bytes per stored message once `--stored` are stored.
 *
 * The server runs with the V8 flags `p2p` is built and started with ({@linkcode V8_FLAGS}).
 * The sealed messages are real (Noise X, a 100-character text inside: 263 bytes), sealed once and
 * reused: sealing is the senders' work, not the server's. The server role runs `Mailbox` as
 * `p2p serve` does, except that every name counts as registered (to one key), so that the
 * benchmark needs no logins; quotas and the per-address rate are raised to let one loopback
 * address offer the load.
 *
 * ```sh
 * scripts/deno task bench:mailbox
 * scripts/deno task bench:mailbox --deposits 50000 --connections 16 --window 128
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { realClock } from "../lib/clock.ts";
import { Mailbox } from "../lib/coordinator/mailbox.ts";
import { ServerLog } from "../lib/coordinator/server_log.ts";
import { generateKeyPair, keyPairFromSecretKey } from "../lib/crypto/noise.ts";
import { seal, sealPrologue } from "../lib/crypto/seal.ts";
import { decodeBase64url, encodeBase64url } from "../lib/protocol/base64url.ts";
import { encodeMailPayload } from "../lib/protocol/mailbox_payload.ts";
import { MailboxClient } from "../lib/peer/mailbox_client.ts";
import { V8_FLAGS } from "./compile.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    role: { type: "string", default: "bench" },
    data: { type: "string" },
    key: { type: "string" },
    deposits: { type: "string", default: "20000" },
    connections: { type: "string", default: "8" },
    window: { type: "string", default: "256" },
    queued: { type: "string", default: "10000" },
    stored: { type: "string", default: "100000" },
  },
});

if (args.values.role === "server") {
  // Every name is registered to the benchmark's one key.
  const key = keyPairFromSecretKey(decodeBase64url(args.values.key!)!);
  const log = new ServerLog({ clock: realClock, write: () => {}, stats: { limited: 0 } });
  const mailbox = Mailbox.open({
    host: "127.0.0.1",
    port: 0,
    dataDir: args.values.data,
    clock: realClock,
    log,
    serverKey: generateKeyPair(),
    keyOf: () => key.publicKey,
    quotas: { perRecipientCount: 200_000, perSenderCount: 1e9, perSenderBytes: 1e12 },
    limits: { requestsPerSecond: 1e9 },
  });
  console.log(mailbox.port);
  await new Promise(() => {});
}

const count = (name: "deposits" | "connections" | "window" | "queued" | "stored") =>
  Number(args.values[name]);

const dir = await Deno.makeTempDir({ prefix: "p2p-bench-mailbox-" });
const user = generateKeyPair();
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    `--v8-flags=${V8_FLAGS}`,
    import.meta.filename!,
    "--role",
    "server",
    "--data",
    dir,
    "--key",
    encodeBase64url(user.secretKey),
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
const port = Number((await reader.read()).value!.trim());
reader.releaseLock();

function rss(): number {
  const status = Deno.readTextFileSync(`/proc/${server.pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024;
}

const alice = generateKeyPair();
const text = "x".repeat(100);
const sealedFor = (recipient: string, i: number) =>
  seal({
    sender: alice,
    recipientKey: user.publicKey,
    prologue: sealPrologue(recipient),
    payload: encodeMailPayload({
      kind: "message",
      from: "alice",
      uid: i.toString(16).padStart(32, "0"),
      time: Date.now(),
      text,
    }),
  });
const recipients = Array.from({ length: 100 }, (_, i) => `user${i}`);
const samples = recipients.map((r, i) => sealedFor(r, i));

/** Deposits `total` messages over `connections` clients, each with `window` in flight. */
async function depositAll(total: number, to: (i: number) => number): Promise<number> {
  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: count("connections") }, async () => {
      const client = await MailboxClient.connect({ host: "127.0.0.1", port, timeoutMs: 60_000 });
      const worker = async () => {
        while (next < total) {
          const i = next++;
          const r = to(i);
          const result = await client.deposit(recipients[r], samples[r]);
          if (!result.ok) failed++;
        }
      };
      await Promise.all(Array.from({ length: count("window") }, worker));
      client.close();
    }),
  );
  if (failed > 0) throw new Error(`${failed} deposits refused`);
  return (performance.now() - started) / 1000;
}

const rows: [string, string][] = [];
try {
  rows.push(["server RSS idle, empty mailbox (MiB)", rss().toFixed(1)]);
  const deposits = count("deposits");
  const seconds = await depositAll(deposits, (i) => 1 + (i % 99));
  rows.push([
    `deposits/s sustained (${deposits}, ${count("connections")} conns × ${
      count("window")
    } in flight)`,
    (deposits / seconds).toFixed(0),
  ]);

  const queued = count("queued");
  await depositAll(queued, () => 0);
  const fetchStart = performance.now();
  const bob = await MailboxClient.connect({ host: "127.0.0.1", port, timeoutMs: 60_000 });
  const mail = await bob.fetch(recipients[0], user);
  const fetched = performance.now() - fetchStart;
  const acked = await bob.ack(mail.map((m) => m.id));
  const total = performance.now() - fetchStart;
  bob.close();
  if (mail.length !== queued || acked !== queued) {
    throw new Error(`fetched ${mail.length}, acked ${acked} of ${queued}`);
  }
  rows.push([`${queued} queued: fetched (ms)`, fetched.toFixed(0)]);
  rows.push([`${queued} queued: fetched and acked (ms)`, total.toFixed(0)]);

  const stored = count("stored");
  const have = deposits;
  if (stored > have) await depositAll(stored - have, (i) => 1 + (i % 99));
  // Let the WAL checkpoint settle, then measure the main file and the WAL together.
  await new Promise((r) => setTimeout(r, 500));
  let bytes = 0;
  for (const name of ["mailbox.db", "mailbox.db-wal"]) {
    try {
      bytes += Deno.statSync(`${dir}/${name}`).size;
    } catch {
      // no WAL
    }
  }
  rows.push([`server RSS with ${Math.max(stored, have)} stored (MiB)`, rss().toFixed(1)]);
  rows.push([
    `database bytes per stored message (sealed: ${samples[0].length} B)`,
    (bytes / Math.max(stored, have)).toFixed(0),
  ]);
} finally {
  server.kill();
  await server.status;
  await Deno.remove(dir, { recursive: true });
}

const width = Math.max(...rows.map(([k]) => k.length));
console.log(`| ${"measure".padEnd(width)} | value |`);
console.log(`| ${"-".repeat(width)} | ----: |`);
for (const [k, v] of rows) console.log(`| ${k.padEnd(width)} | ${v.padStart(5)} |`);
