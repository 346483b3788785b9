/**
 * The mailbox of a real `p2p serve` process, over its real SQLite file: quotas and TTL as the
 * command line sets them, mail surviving a restart with the same `--data`, expiry. Deposits and
 * fetches go through the client's `MailboxClient`; bob's name is registered by a real `p2p chat`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Coordinator } from "../../lib/coordinator.ts";
import { loadOrCreateIdentity } from "../../lib/crypto/identity.ts";
import { DatabaseError } from "../../lib/store/database.ts";
import { MailboxClient } from "../../lib/peer/mailbox_client.ts";
import { P2pProcess, TEST_CONFIG_HOME } from "../support/proc.ts";

async function serve(args: string[], env: Record<string, string>) {
  const proc = new P2pProcess(["serve", "--host", "127.0.0.1", ...args], { env });
  const line = await proc.stderr.waitFor((l) => /mailbox on TCP \d+/.test(l), 15_000, "mailbox");
  const udp = await proc.stderr.waitFor((l) => / UDP \d+/.test(l), 1_000, "udp");
  return {
    proc,
    port: Number(/ UDP (\d+)/.exec(udp)![1]),
    mailboxPort: Number(/mailbox on TCP (\d+)/.exec(line)![1]),
    waiting: Number(/: (\d+) message/.exec(line)![1]),
  };
}

async function register(name: string, port: number): Promise<void> {
  const chat = new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json"]);
  try {
    await chat.event((e) => e.event === "ready", 15_000);
    await chat.closeStdin();
    assert.equal((await chat.wait()).code, 0);
  } finally {
    await chat.dispose();
  }
}

Deno.test("p2p serve's mailbox: quotas from the command line, mail kept across a restart, then expired by the TTL", async () => {
  const state = await Deno.makeTempDir({ dir: TEST_CONFIG_HOME, prefix: "state-" });
  const env = { XDG_STATE_HOME: state };
  const data = join(state, "p2p");
  const flags = [
    "--data",
    data,
    "--mailbox-per-user",
    "3",
    "--mailbox-ttl",
    "4s",
    "--mailbox-max-message",
    "500",
  ];
  const first = await serve(["--port", "0", ...flags], env);
  let second: Awaited<ReturnType<typeof serve>> | undefined;
  try {
    assert.equal(first.waiting, 0);
    await register("mbob", first.port);
    const alice = await MailboxClient.connect({ host: "127.0.0.1", port: first.mailboxPort });
    const results = await Promise.all(
      [1, 2, 3, 4].map((i) => alice.deposit("mbob", new Uint8Array(100).fill(i))),
    );
    assert.deepEqual(results.map((r) => r.ok ? "ok" : r.reason), [
      "ok",
      "ok",
      "ok",
      "mailbox full",
    ]);
    assert.deepEqual(await alice.deposit("mbob", new Uint8Array(501)), {
      ok: false,
      reason: "too large",
    });
    assert.deepEqual(await alice.deposit("nobody", new Uint8Array(1)), {
      ok: false,
      reason: "unknown user",
    });
    alice.close();

    // A restart with the same data keeps the mail (and bob's registration).
    first.proc.kill("SIGTERM");
    assert.equal((await first.proc.wait()).code, 0);
    await first.proc.dispose();
    assert.ok(Deno.statSync(join(data, "mailbox.db")).isFile);
    second = await serve([
      "--port",
      String(first.port),
      "--mailbox-port",
      String(first.mailboxPort),
      ...flags,
    ], env);
    assert.equal(second.waiting, 3);
    const identity = await loadOrCreateIdentity({
      username: "mbob",
      configDir: join(TEST_CONFIG_HOME, "p2p"),
    });
    const bob = await MailboxClient.connect({ host: "127.0.0.1", port: second.mailboxPort });
    const mail = await bob.fetch("mbob", identity);
    assert.deepEqual(mail.map((m) => m.sealed[0]), [1, 2, 3]);
    bob.close();

    // Unacknowledged, it expires after the TTL (4 s, checked every second).
    await second.proc.stderr.waitFor(
      (l) => /mailbox: 3 message\(s\) expired unread/.test(l),
      15_000,
      "expiry",
    );
    const again = await MailboxClient.connect({ host: "127.0.0.1", port: second.mailboxPort });
    assert.deepEqual(await again.fetch("mbob", identity), []);
    again.close();
  } finally {
    await first.proc.dispose();
    await second?.proc.dispose();
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("a mailbox.db damaged past its header is refused at start, named, and left untouched", async () => {
  const dir = await Deno.makeTempDir({ dir: TEST_CONFIG_HOME, prefix: "damaged-" });
  try {
    const first = await Coordinator.start({
      host: "127.0.0.1",
      port: 0,
      dataDir: dir,
      log: () => {},
    });
    const mailbox = first.mailbox!;
    assert.ok(
      (await mailbox.store.deposit({ recipient: "x", sender: "a", sealed: new Uint8Array(9) }))
        .ok === true,
    );
    await first.close();
    const path = join(dir, "mailbox.db");
    // The mail table's root page overwritten with noise.
    const db = new DatabaseSync(path);
    const { rootpage } = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'mail'")
      .get() as { rootpage: number };
    const { page_size: size } = db.prepare("PRAGMA page_size").get() as { page_size: number };
    db.close();
    const file = Deno.openSync(path, { write: true });
    file.seekSync((rootpage - 1) * size, Deno.SeekMode.Start);
    file.writeSync(crypto.getRandomValues(new Uint8Array(size)));
    file.close();
    const before = Deno.readFileSync(path);
    await assert.rejects(
      () => Coordinator.start({ host: "127.0.0.1", port: 0, dataDir: dir, log: () => {} }),
      (err: Error) =>
        err instanceof DatabaseError && err.message.includes(path) &&
        /damaged.*Move it away/.test(err.message),
    );
    assert.deepEqual(Deno.readFileSync(path), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
