/**
 * Offline messages with real `p2p` processes and real SQLite files: alice sends 100 messages to
 * offline bob, the coordinator restarting (same `--data`) halfway; bob logs in and gets exactly
 * 100, in order, once; alice, back later, gets 100 `delivered`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { P2pProcess, TEST_CONFIG_HOME } from "./support/proc.ts";

const COUNT = 100;

function home(prefix: string): string {
  return Deno.makeTempDirSync({ dir: TEST_CONFIG_HOME, prefix });
}

async function serve(args: string[]): Promise<{ proc: P2pProcess; port: number; mailbox: number }> {
  const proc = new P2pProcess(["serve", "--host", "127.0.0.1", ...args]);
  const box = await proc.stderr.waitFor((l) => /mailbox on TCP \d+/.test(l), 15_000, "mailbox");
  const udp = await proc.stderr.waitFor((l) => / UDP \d+/.test(l), 1_000, "udp");
  return {
    proc,
    port: Number(/ UDP (\d+)/.exec(udp)![1]),
    mailbox: Number(/mailbox on TCP (\d+)/.exec(box)![1]),
  };
}

Deno.test("mailbox end to end: 100 messages to offline bob across a coordinator restart, each once, in order, then 100 delivered", async () => {
  const data = join(home("serve-"), "p2p");
  const homes = { alice: home("data-"), bob: home("data-") };
  let server = await serve(["--port", "0", "--data", data]);
  const procs: P2pProcess[] = [server.proc];
  const chat = (name: "alice" | "bob") => {
    const p = new P2pProcess(["chat", `${name}@127.0.0.1:${server.port}`, "--json"], {
      env: { XDG_DATA_HOME: homes[name] },
    });
    procs.push(p);
    return p;
  };
  const quit = async (p: P2pProcess) => {
    await p.closeStdin();
    assert.equal((await p.wait(30_000)).code, 0);
  };
  const events = (p: P2pProcess, kind: string) => p.events().filter((e) => e.event === kind);
  try {
    // bob registers his name, then leaves.
    const bob = chat("bob");
    await bob.event((e) => e.event === "ready", 15_000);
    await quit(bob);

    const alice = chat("alice");
    await alice.event((e) => e.event === "ready", 15_000);
    for (let i = 0; i < COUNT / 2; i++) await alice.write(`/msg bob message ${i}`);
    await alice.stdout.waitFor(
      () => events(alice, "deposited").length === COUNT / 2,
      30_000,
      "first half deposited",
    );

    // The coordinator restarts on the same ports with the same data.
    server.proc.kill("SIGTERM");
    assert.equal((await server.proc.wait()).code, 0);
    server = await serve([
      "--port",
      String(server.port),
      "--mailbox-port",
      String(server.mailbox),
      "--data",
      data,
    ]);
    procs.push(server.proc);
    await alice.event((e) => e.event === "coordinator" && e.state === "back", 30_000);
    for (let i = COUNT / 2; i < COUNT; i++) await alice.write(`/msg bob message ${i}`);
    await alice.stdout.waitFor(
      () => events(alice, "deposited").length === COUNT,
      30_000,
      "all deposited",
    );
    const uids = events(alice, "deposited").map((e) => e.uid);
    assert.equal(new Set(uids).size, COUNT);
    assert.equal(events(alice, "undelivered").length, 0);
    await quit(alice);

    const bob2 = chat("bob");
    await bob2.stdout.waitFor(
      () => events(bob2, "message").length >= COUNT,
      30_000,
      "100 messages",
    );
    await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up by now
    const got = events(bob2, "message");
    assert.equal(got.length, COUNT);
    assert.deepEqual(
      got.map((e) => e.text),
      Array.from({ length: COUNT }, (_, i) => `message ${i}`),
    );
    assert.deepEqual(got.map((e) => e.uid), uids);
    assert.ok(
      got.every((e) => e.via === "mailbox" && e.from === "alice" && typeof e.time === "string"),
    );
    await quit(bob2);

    const alice2 = chat("alice");
    await alice2.stdout.waitFor(
      () => events(alice2, "delivered").length >= COUNT,
      30_000,
      "100 delivered",
    );
    const delivered = events(alice2, "delivered");
    assert.equal(delivered.length, COUNT);
    assert.deepEqual(delivered.map((e) => e.uid), uids);
    assert.ok(delivered.every((e) => e.via === "mailbox" && e.to === "bob"));
    await quit(alice2);
  } finally {
    for (const p of procs) await p.dispose();
  }
});
