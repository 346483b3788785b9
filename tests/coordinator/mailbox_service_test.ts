import assert from "node:assert/strict";
import { realClock } from "../../lib/clock.ts";
import {
  DEFAULT_MAILBOX_SERVICE_LIMITS,
  MailboxService,
  type MailboxServiceLimits,
} from "../../lib/coordinator/mailbox_service.ts";
import {
  DEFAULT_MAILBOX_QUOTAS,
  MAILBOX_MIGRATIONS,
  type MailboxQuotas,
  MailboxStore,
} from "../../lib/coordinator/mailbox_store.ts";
import { ServerLog } from "../../lib/coordinator/server_log.ts";
import { keyProof } from "../../lib/crypto/key_proof.ts";
import { generateKeyPair, type KeyPair } from "../../lib/crypto/noise.ts";
import { decodeBase64url, encodeBase64url } from "../../lib/protocol/base64url.ts";
import { encodeMailboxRequest } from "../../lib/protocol/mailbox.ts";
import { MailboxClient, MailboxClientError } from "../../lib/peer/mailbox_client.ts";
import { openDatabase } from "../../lib/store/database.ts";

interface Fixture {
  port: number;
  service: MailboxService;
  store: MailboxStore;
  keys: Map<string, KeyPair>;
  logs: string[];
  client(): Promise<MailboxClient>;
}

/** A mailbox service on loopback over a real SQLite file; bob and carol are registered. */
async function withMailbox(
  fn: (f: Fixture) => Promise<void>,
  options: { quotas?: Partial<MailboxQuotas>; limits?: Partial<MailboxServiceLimits> } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-mailbox-service-" });
  const db = openDatabase({
    path: `${dir}/mailbox.db`,
    kind: "mailbox",
    migrations: MAILBOX_MIGRATIONS,
  });
  const clock = realClock;
  const store = new MailboxStore({
    db,
    clock,
    quotas: { ...DEFAULT_MAILBOX_QUOTAS, ...options.quotas },
    ttlMs: 60_000,
  });
  const logs: string[] = [];
  const log = new ServerLog({ clock, write: (l) => logs.push(l), stats: { limited: 0 } });
  const keys = new Map([["bob", generateKeyPair()], ["carol", generateKeyPair()]]);
  const service = new MailboxService({
    clock,
    store,
    log,
    limits: { ...DEFAULT_MAILBOX_SERVICE_LIMITS, ...options.limits },
    serverKey: generateKeyPair(),
    keyOf: (name) => keys.get(name)?.publicKey,
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  service.listen(listener);
  const port = (listener.addr as Deno.NetAddr).port;
  const clients: MailboxClient[] = [];
  try {
    await fn({
      port,
      service,
      store,
      keys,
      logs,
      client: async () => {
        const c = await MailboxClient.connect({ host: "127.0.0.1", port });
        clients.push(c);
        return c;
      },
    });
  } finally {
    for (const c of clients) c.close();
    await service.close();
    await store.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Sends raw lines, returns everything the server sent back until it closed or went quiet. */
async function raw(port: number, text: string, quietMs = 300): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(text));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const quiet = new Promise<null>((r) => timer = setTimeout(() => r(null), quietMs));
      const n = await Promise.race([conn.read(buffer).catch(() => null), quiet]);
      clearTimeout(timer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

const FETCH_BOB = encodeMailboxRequest({ type: "fetch", name: "bob" });
const KEY_BOB = encodeMailboxRequest({ type: "key", name: "bob" });

const sealed = (i: number) => new Uint8Array(120).fill(i % 256);

Deno.test("mailbox service: 100 pipelined deposits are fetched in order, once, then deleted by ack", async () => {
  await withMailbox(async (f) => {
    const alice = await f.client();
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => alice.deposit("bob", sealed(i))),
    );
    assert.ok(results.every((r) => r.ok));
    const bob = await f.client();
    const mail = await bob.fetch("bob", f.keys.get("bob")!);
    assert.deepEqual(mail.map((m) => m.sealed[0]), Array.from({ length: 100 }, (_, i) => i));
    assert.equal(await bob.ack(mail.map((m) => m.id)), 100);
    assert.deepEqual(await bob.fetch("bob", f.keys.get("bob")!), []);
    assert.equal(f.store.total.count, 0);
    assert.deepEqual(await alice.key("bob"), f.keys.get("bob")!.publicKey);
    assert.equal(await alice.key("nobody"), undefined);
    assert.deepEqual(await alice.deposit("nobody", sealed(1)), {
      ok: false,
      reason: "unknown user",
    });
  });
});

Deno.test("mailbox service: nobody but the key's holder reads or deletes a name's mail", async () => {
  await withMailbox(async (f) => {
    const alice = await f.client();
    const deposit = await alice.deposit("bob", sealed(7));
    assert.ok(deposit.ok);
    // carol proves her own key for bob's name: refused
    const carol = await f.client();
    await assert.rejects(carol.fetch("bob", f.keys.get("carol")!), /bad proof/);
    // carol's proof for her own name opens only her mail: acking bob's id deletes nothing
    const carol2 = await f.client();
    assert.deepEqual(await carol2.fetch("carol", f.keys.get("carol")!), []);
    assert.equal(await carol2.ack([deposit.id]), 0);
    // acking without a proof is refused (here, after a deposit gave the connection room for the
    // answer; alone, the short ack line would only be closed)
    const stranger = await f.client();
    await stranger.deposit("carol", sealed(1));
    await assert.rejects(stranger.ack([deposit.id]), /not yours/);
    assert.equal(f.store.waiting("bob"), 1);
    assert.equal(f.service.counters.badProofs, 1);
  });
});

Deno.test("mailbox service: a proof is good for its own nonce once, never replayed", async () => {
  await withMailbox(async (f) => {
    await (await f.client()).deposit("bob", sealed(3));
    const bob = f.keys.get("bob")!;
    // An eavesdropper's capture of a whole fetch, replayed on a new connection: the server's
    // new nonce makes the old proof worthless.
    const first = await raw(f.port, `${FETCH_BOB}\n`);
    const [, serverKey, nonce] = first.trim().split(",");
    const proof = encodeBase64url(keyProof({
      privateKey: bob.secretKey,
      publicKey: decodeBase64url(serverKey)!,
      purpose: "mailbox",
      nonce: decodeBase64url(nonce)!,
      name: "bob",
    }));
    const replayed = await raw(f.port, `${FETCH_BOB}\nproof,${proof}\n`);
    assert.match(replayed, /^Challenge,[^\n]+\nRefused,bad proof\n$/);
    // The right proof, sent twice on its own connection: the second finds no challenge.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.port });
    const reader = conn.readable.getReader();
    await conn.write(new TextEncoder().encode(`${FETCH_BOB}\n`));
    const challenge = new TextDecoder().decode((await reader.read()).value).trim().split(",");
    const good = encodeBase64url(keyProof({
      privateKey: bob.secretKey,
      publicKey: decodeBase64url(challenge[1])!,
      purpose: "mailbox",
      nonce: decodeBase64url(challenge[2])!,
      name: "bob",
    }));
    await conn.write(new TextEncoder().encode(`proof,${good}\nproof,${good}\n`));
    let text = "";
    while (!text.includes("Refused")) text += new TextDecoder().decode((await reader.read()).value);
    assert.match(text, /^Mail,\d+,[^\n]+\nEnd,1\nRefused,no challenge/);
    reader.releaseLock();
    conn.close();
  });
});

Deno.test("mailbox service: a malformed line is refused and ends the connection; others are served", async () => {
  await withMailbox(async (f) => {
    assert.match(
      await raw(f.port, `${KEY_BOB}\nsteal,bob\n${KEY_BOB}\n`),
      /^Key,bob,[^\n]+\nRefused,Malformed mailbox line: unknown request "steal"\n$/,
    );
    assert.match(
      await raw(f.port, "x".repeat(100_000)),
      /^Refused,Malformed mailbox line: longer than 90000 bytes\n$/,
    );
    assert.match(await raw(f.port, `${KEY_BOB}\r\n`), /^Key,bob,/);
    const client = await f.client();
    assert.ok((await client.deposit("bob", sealed(1))).ok);
    assert.equal(f.service.counters.malformed, 2);
  });
});

Deno.test("mailbox service: a connection that proved no key never gets more bytes than it sent", async () => {
  await withMailbox(async (f) => {
    // Unpadded, a key lookup would be answered with more than it sent: the service closes instead.
    assert.equal(await raw(f.port, "key,bob\n"), "");
    assert.equal(await raw(f.port, "fetch,bob\n"), "");
    assert.equal(await raw(f.port, "ack,1\n"), "");
    assert.equal(await raw(f.port, "x\n"), "");
    assert.equal(f.service.counters.overBudget, 4);
    // Padded, or after a larger request, they are answered.
    assert.match(await raw(f.port, `${KEY_BOB}\nack,1\n`), /^Key,bob,[^\n]+\nRefused,not yours/);
    // A stranger's session of every kind of request: never more back than sent.
    const lines = [
      encodeMailboxRequest({ type: "deposit", recipient: "carol", sealed: sealed(1) }),
      KEY_BOB,
      FETCH_BOB,
      `proof,${encodeBase64url(new Uint8Array(16))}`,
      "ack,1,2,3",
      encodeMailboxRequest({ type: "deposit", recipient: "nobody", sealed: sealed(2) }),
    ].join("\n") + "\n";
    const back = await raw(f.port, lines);
    assert.equal(back.split("\n").length, 7, back);
    assert.ok(back.length <= lines.length, `${back.length} bytes back for ${lines.length}`);
  });
});

Deno.test("mailbox service: quota and size refusals reach the depositor with their reasons", async () => {
  await withMailbox(async (f) => {
    const alice = await f.client();
    const results = await Promise.all([1, 2, 3].map((i) => alice.deposit("bob", sealed(i))));
    assert.deepEqual(results.map((r) => r.ok ? "ok" : r.reason), ["ok", "ok", "mailbox full"]);
    assert.deepEqual(await alice.deposit("carol", new Uint8Array(201)), {
      ok: false,
      reason: "too large",
    });
  }, { quotas: { perRecipientCount: 2, maxMailBytes: 200 } });
});

Deno.test("mailbox service: deposits and lookups beyond the per-address rate are told to slow down", async () => {
  await withMailbox(async (f) => {
    const alice = await f.client();
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => alice.deposit("bob", sealed(i))),
    );
    const slowed = results.filter((r) => !r.ok && r.reason === "slow down").length;
    assert.ok(slowed >= 10 && slowed <= 20, `${slowed} slowed`);
  }, { limits: { requestsPerSecond: 5 } });
});

Deno.test("mailbox service: a client error names what failed", async () => {
  await withMailbox(async (f) => {
    const client = await f.client();
    await assert.rejects(
      client.fetch("nobody", generateKeyPair()),
      (e) => e instanceof MailboxClientError && /unknown user/.test(e.message),
    );
  });
});
