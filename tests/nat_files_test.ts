// File transfers in the NAT lab (tests/lab/netlab.ts): real Linux NATs, real `p2p serve` and
// `p2p chat` processes. Home ↔ home: a 50 MiB file arrives intact while chat goes on, and another
// arrives intact at 10 % loss. Symmetric ↔ symmetric (the relay): a file above the coordinator's
// relay limit is refused with "no direct path", a small one goes. Needs root; skipped with the
// reason otherwise, unless P2P_LAB=require.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Host } from "./lab/netlab.ts";
import {
  labGate,
  LabProcess,
  type PairScenario,
  SERVER_PORT,
  withPair,
} from "./support/lab_chat.ts";

const { ignore, requireLab } = await labGate("NAT files");

async function makeFile(path: string, size: number, seed: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + seed + (i >> 9)) & 0xff;
  for (let at = 0; at < size; at += chunk.length) {
    const n = Math.min(chunk.length, size - at);
    for (let done = 0; done < n;) done += await file.write(chunk.subarray(done, n));
  }
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buf)) !== null;) hash.update(buf.subarray(0, n));
  return hash.digest("hex");
}

/** The coordinator and two chats whose downloads go under the scenario's own folder. */
async function start(s: PairScenario): Promise<{ alice: LabProcess; bob: LabProcess }> {
  const env = {
    XDG_CONFIG_HOME: s.configHome,
    XDG_DATA_HOME: `${s.configHome}/data`,
    XDG_STATE_HOME: `${s.configHome}/state`,
    XDG_DOWNLOAD_DIR: `${s.configHome}/downloads`,
  };
  const server = new LabProcess(s.lab, s.srv, "serve", [
    "serve",
    "--host",
    "0.0.0.0",
    "--port",
    String(SERVER_PORT),
  ], env);
  s.processes.push(server);
  await server.stderr.waitFor((l) => l.includes(` UDP ${SERVER_PORT}`), 60_000, "serve");
  const chat = (user: string, node: Host): LabProcess => {
    const p = new LabProcess(s.lab, node, user, [
      "chat",
      `${user}@${s.srv.ip}:${SERVER_PORT}`,
      "--json",
      "--keepalive",
      "2",
      "--no-history",
      "--downloads",
      join(s.configHome, "downloads", user),
    ], env);
    s.processes.push(p);
    return p;
  };
  const alice = chat("alice", s.a);
  await alice.event((e) => e.event === "ready", 60_000, "ready");
  const bob = chat("bob", s.b);
  await Promise.all([
    alice.event((e) => e.event === "online" && e.user === "bob", 60_000, "bob online"),
    bob.event((e) => e.event === "online" && e.user === "alice", 60_000, "alice online"),
  ]);
  return { alice, bob };
}

/** alice offers `path`, bob accepts; resolves with bob's end of it (`file-done` or failure). */
async function transfer(
  alice: LabProcess,
  bob: LabProcess,
  path: string,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const before = bob.events.items.length;
  await alice.write(`/send bob ${path}`);
  const offer = await bob.event(
    (e) => e.event === "file-offer" && bob.events.items.indexOf(e) >= before,
    30_000,
    "offer",
  );
  await bob.write(`/accept ${offer.id}`);
  const end = await bob.event(
    (e) => (e.event === "file-done" || e.event === "file-failed") && e.id === offer.id,
    timeoutMs,
    "end of transfer",
  );
  return end;
}

Deno.test({
  name: "nat files: home ↔ home, 50 MiB intact with chat during it, and intact at 10 % loss",
  ignore,
}, async () => {
  requireLab();
  await withPair("home/home", async (s) => {
    const { alice, bob } = await start(s);
    const big = join(s.configHome, "big.bin");
    await makeFile(big, 50 << 20, 1);
    const running = transfer(alice, bob, big, 240_000);
    await bob.event((e) => e.event === "file-progress", 60_000, "progress");
    // Chat both ways while it runs.
    for (let i = 0; i < 3; i++) {
      await alice.write(`/msg bob during ${i}`);
      await bob.write(`/msg alice back ${i}`);
    }
    const done = await running;
    assert.equal(done.event, "file-done", JSON.stringify(done));
    assert.equal(await fileHash(done.path as string), await fileHash(big));
    for (let i = 0; i < 3; i++) {
      await bob.event((e) => e.event === "message" && e.text === `during ${i}`, 30_000);
      await alice.event((e) => e.event === "message" && e.text === `back ${i}`, 30_000);
    }
    assert.equal(alice.events.items.filter((e) => e.event === "undelivered").length, 0);
    assert.equal(
      bob.events.items.filter((e) => e.event === "path" && e.path === "relay").length,
      0,
    );

    await s.lab.setLoss(s.routers[0], 10);
    const lossy = join(s.configHome, "lossy.bin");
    await makeFile(lossy, 8 << 20, 2);
    const done2 = await transfer(alice, bob, lossy, 240_000);
    assert.equal(done2.event, "file-done", JSON.stringify(done2));
    assert.equal(await fileHash(done2.path as string), await fileHash(lossy));
    await s.lab.setLoss(s.routers[0], 0);
  });
});

Deno.test({
  name:
    "nat files: symmetric ↔ symmetric, over the relay: above the limit refused, a small one sent",
  ignore,
}, async () => {
  requireLab();
  await withPair("symmetric/symmetric", async (s) => {
    const { alice, bob } = await start(s);
    // A message first: the link settles on the relay (no direct path between two hard NATs).
    await alice.write("/msg bob hello");
    await bob.event((e) => e.event === "message" && e.text === "hello", 30_000, "hello");
    const big = join(s.configHome, "big.bin");
    await makeFile(big, 2 << 20, 3);
    const refused = await transfer(alice, bob, big, 60_000);
    assert.equal(refused.event, "file-failed", JSON.stringify(refused));
    assert.match(refused.reason as string, /no direct path to bob/);
    const small = join(s.configHome, "small.bin");
    await makeFile(small, 100 * 1024, 4);
    const done = await transfer(alice, bob, small, 60_000);
    assert.equal(done.event, "file-done", JSON.stringify(done));
    assert.equal(await fileHash(done.path as string), await fileHash(small));
  });
});
