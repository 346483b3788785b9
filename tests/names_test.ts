/**
 * Names owned by keys with real processes (docs/PROTOCOL.md §1.3): a `p2p chat` killed with
 * SIGKILL and started again at once is logged in at once (its key takes the name over from the
 * dead session, which used to hold it for the peer timeout), and the others see it at its new
 * endpoint; a name unused for `--name-ttl` may be taken by another key. Every chat of this file
 * shares one config home, so a name has one key here; `--config DIR` gives another.
 */
import assert from "node:assert/strict";
import { P2pProcess, startServe } from "./support/proc.ts";

const chat = (port: number, name: string, extra: string[] = []) =>
  new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json", "--keepalive", "1", ...extra]);

Deno.test("a chat killed with SIGKILL and started again at once is back at once", async () => {
  // The default peer timeout (45 s): without a takeover the name would stay held for 22 s.
  const { proc: serve, port } = await startServe();
  const bob = chat(port, "bob");
  const alice = chat(port, "alice");
  let again: P2pProcess | undefined;
  try {
    const first = await alice.event((e) => e.event === "ready", 15_000);
    await bob.event((e) => e.event === "online" && e.user === "alice", 15_000);
    alice.kill("SIGKILL");
    await alice.wait();
    const started = Date.now();
    again = chat(port, "alice");
    const ready = await again.event((e) => e.event === "ready", 15_000);
    const took = Date.now() - started;
    assert.notEqual(ready.endpoint, first.endpoint, "a new process, a new port");
    // Bob sees alice move to the new process's endpoint (no offline in between).
    await bob.event(
      (e) => e.event === "online" && e.user === "alice" && e.endpoint === ready.endpoint,
      10_000,
    );
    assert.equal(bob.events().filter((e) => e.event === "offline" && e.user === "alice").length, 0);
    assert.ok(serve.stderr.items.some((l) => /alice proved its key .* took over from/.test(l)));
    // And they talk, on the new session.
    await bob.write("/msg alice welcome back");
    await again.event((e) => e.event === "message" && e.text === "welcome back", 15_000);
    console.log(`restarted alice logged in ${took} ms after it was started`);
  } finally {
    await alice.dispose();
    await again?.dispose();
    await bob.dispose();
    await serve.dispose();
  }
});

Deno.test("p2p serve --name-ttl: a name unused that long goes to the next key", async () => {
  const { proc: serve, port } = await startServe(["--name-ttl", "0.00003"]); // 2.6 s
  const otherKeys = await Deno.makeTempDir({ prefix: "p2p-other-carol-" });
  const procs: P2pProcess[] = [];
  const start = (extra: string[] = []) => {
    const p = chat(port, "carol", extra);
    procs.push(p);
    return p;
  };
  try {
    const carol = start();
    await carol.event((e) => e.event === "ready", 15_000);
    await carol.write("/quit");
    assert.equal((await carol.wait()).code, 0);
    const refused = start(["--config", otherKeys]);
    const err = await refused.event((e) => e.event === "error", 15_000);
    assert.match(String(err.message), /the name "carol" belongs to another key/);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const taken = start(["--config", otherKeys]);
    await taken.event((e) => e.event === "ready", 15_000);
  } finally {
    for (const p of procs) await p.dispose();
    await serve.dispose();
    await Deno.remove(otherKeys, { recursive: true });
  }
});
