/**
 * The mailbox service under fire: 100,000 random and mutated request lines over TCP from one
 * address (127.0.0.1), on thousands of connections, while a legitimate pair on another address
 * (::1) deposits and fetches. The service must keep serving, the pair must get every message
 * exactly once and in order, the fuzzers must never get stored mail nor more bytes than they
 * sent, and the store must stay within its quotas.
 */
import assert from "node:assert/strict";
import { realClock } from "../../lib/clock.ts";
import { Mailbox } from "../../lib/coordinator/mailbox.ts";
import { ServerLog } from "../../lib/coordinator/server_log.ts";
import { generateKeyPair } from "../../lib/crypto/noise.ts";
import { encodeBase64url } from "../../lib/protocol/base64url.ts";
import { decodeMailboxRequest } from "../../lib/protocol/mailbox.ts";
import { MailboxClient } from "../../lib/peer/mailbox_client.ts";
import { mutate } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const LINES = 100_000;
/** A padded key lookup for a name nobody has: answered `Refused,unknown user`. */
const OPENER = new TextEncoder().encode(`key,nobody,${"-".repeat(3000)}\n`);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 13_013);
const encoder = new TextEncoder();

function generator(rand: () => number): () => Uint8Array {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const b64 = (n: number) => encodeBase64url(crypto.getRandomValues(new Uint8Array(n)));
  const name = () => pick(["carol", "dave", "nobody", "f1", "张伟", "x".repeat(33), "a;b", "end"]);
  const valid = (): string =>
    pick([
      () => `deposit,${name()},${b64(1 + int(400))}`,
      () => `key,${name()}`,
      () => `fetch,${name()}`,
      () => `proof,${b64(16)}`,
      () => `ack,${Array.from({ length: 1 + int(5) }, () => 1 + int(100_000)).join(",")}`,
    ])();
  return () => {
    const r = rand();
    if (r < 0.5) return encoder.encode(valid());
    if (r < 0.9) return mutate(rand, encoder.encode(valid()));
    return crypto.getRandomValues(new Uint8Array(int(200)));
  };
}

/** Whether the service reads `line` as a request (it contains no newline). */
function wellFormed(line: Uint8Array): boolean {
  if (line.includes(10)) return false;
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(line);
    decodeMailboxRequest(text.endsWith("\r") ? text.slice(0, -1) : text);
    return true;
  } catch {
    return false;
  }
}

Deno.test("mailbox fuzz: 100,000 random and mutated lines; a legitimate pair is served throughout", async () => {
  const keys = new Map([
    ["alice", generateKeyPair()],
    ["bob", generateKeyPair()],
    ["carol", generateKeyPair()],
    ["dave", generateKeyPair()],
  ]);
  const mailbox = Mailbox.open({
    host: "::",
    port: 0,
    clock: realClock,
    log: new ServerLog({ clock: realClock, write: () => {}, stats: { limited: 0 } }),
    serverKey: generateKeyPair(),
    keyOf: (name) => keys.get(name)?.publicKey,
    quotas: { perSenderCount: 2_000 },
    // Closed connections free their slots a moment after the client has moved on: room enough
    // that no fuzz connection is evicted before its lines are read (eviction has its own tests).
    limits: { tcpPerAddress: 64 },
  });
  const port = mailbox.port;
  let stop = false;
  let sent = 0;
  let received = 0;
  let connections = 0;
  const legit = (async () => {
    // alice deposits numbered messages to bob; bob fetches and acks; over ::1.
    let next = 0;
    const got: number[] = [];
    while (!stop || got.length < next) {
      const alice = await MailboxClient.connect({ host: "::1", port });
      for (let i = 0; i < 5; i++, next++) {
        const result = await alice.deposit("bob", encoder.encode(`legit ${next}`));
        assert.ok(result.ok, JSON.stringify(result));
      }
      alice.close();
      const bob = await MailboxClient.connect({ host: "::1", port });
      const mail = await bob.fetch("bob", keys.get("bob")!);
      for (const m of mail) got.push(Number(new TextDecoder().decode(m.sealed).split(" ")[1]));
      await bob.ack(mail.map((m) => m.id));
      bob.close();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(got, Array.from({ length: next }, (_, i) => i));
    return next;
  })();

  const next = generator(prng(SEED));
  const worker = async () => {
    const buffer = new Uint8Array(65536);
    while (sent < LINES) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      connections++;
      // A padded opener gives the connection room for the answers to come (no connection that
      // proved no key gets more bytes than it sent); then up to 15 lines, up to and including
      // the first one the service will refuse as malformed (it closes the connection there):
      // every line sent is read.
      const lines: Uint8Array[] = [OPENER];
      let malformed = false;
      for (let i = 0; i < 15 && sent < LINES && !malformed; i++) {
        const line = next();
        sent++;
        lines.push(line, encoder.encode("\n"));
        malformed = !wellFormed(line);
      }
      const bytes = new Uint8Array(lines.reduce((n, l) => n + l.length, 0));
      lines.reduce((at, l) => (bytes.set(l, at), at + l.length), 0);
      let back = 0;
      try {
        await conn.write(bytes);
        // The service closes after a malformed line: let it close first, so that the TIME_WAIT
        // is on its side (its one port), not on ours. Tens of thousands of our ephemeral ports
        // in TIME_WAIT would make later tests' listeners on random ports fail for a minute.
        if (!malformed) await conn.closeWrite();
        for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
          received += n;
          back += n;
          assert.ok(back <= bytes.length, `${back} bytes back for ${bytes.length}`);
          // Stored mail goes to nobody here: no fuzzer can prove a key.
          assert.ok(!new TextDecoder().decode(buffer.subarray(0, n)).includes("\nMail,"));
        }
      } catch {
        // reset by the server after a malformed line: fine
      } finally {
        try {
          conn.close();
        } catch {
          // closed
        }
      }
    }
  };
  const started = performance.now();
  try {
    await Promise.all(Array.from({ length: 6 }, worker));
    stop = true;
    const legitCount = await legit;
    const seconds = (performance.now() - started) / 1000;
    const c = mailbox.service.counters;
    console.log(
      `${sent} lines (${c.lines} read) in ${seconds.toFixed(1)} s; legit messages ${legitCount}; ` +
        `${connections} connections; malformed ${c.malformed}, refused ${c.refused}, ` +
        `deposited ${c.deposited}, bad proofs ${c.badProofs}, over budget ${c.overBudget}; ` +
        `${received} bytes back`,
    );
    assert.ok(legitCount >= 5);
    // Every fuzz line was read (the openers and the pair's lines come on top, and a mutation may
    // add a newline).
    assert.ok(c.lines - connections >= LINES, `${c.lines} lines read`);
    assert.ok(c.malformed > 10_000);
    assert.ok(mailbox.store.total.count <= 2_000 + 5);
    assert.equal(mailbox.service.open, 0);
  } finally {
    stop = true;
    await legit.catch(() => {});
    await mailbox.close();
  }
});
