import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { P2pProcess, runP2p, startServe } from "./support/proc.ts";

Deno.test("--help, --version and per-command help work as in any CLI", async () => {
  const help = await runP2p(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /p2p serve/);
  assert.match(help.stdout, /p2p chat NAME@HOST/);
  const version = await runP2p(["--version"]);
  assert.equal(version.stdout.trim(), `p2p ${denoJson.version}`);
  const serve = await runP2p(["serve", "--help"]);
  assert.match(serve.stdout, /--peer-timeout SECONDS/);
  const chat = await runP2p(["chat", "--help"]);
  assert.match(chat.stdout, /--json/);
  assert.match(chat.stdout, /\/msg USER TEXT/);
});

Deno.test("mistakes on the command line are clear errors with exit code 2", async () => {
  for (
    const [args, pattern] of [
      [["frobnicate"], /unknown command "frobnicate"/],
      [["serve", "--port", "http"], /--port must be a port number/],
      [["serve", "--bogus"], /bogus/],
      [["chat"], /chat takes one argument/],
      [["chat", "alice"], /missing "@"/],
      [["chat", "a,b@127.0.0.1"], /must not contain ','/],
      [["chat", "alice@127.0.0.1:0"], /port "0"/],
      [["chat", "alice@127.0.0.1", "--accept", "friends"], /--accept takes anyone or known/],
    ] as const
  ) {
    const r = await runP2p([...args]);
    assert.equal(r.code, 2, `exit code of ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

Deno.test("chat --json: scripted peers log in, chat, and see a killed peer expire", async () => {
  const { proc: serve, port } = await startServe(["--peer-timeout", "2"]);
  const target = (
    name: string,
  ) => [`chat`, `${name}@127.0.0.1:${port}`, "--json", "--keepalive", "0.5"];
  const alice = new P2pProcess(target("alice"));
  const bob = new P2pProcess(target("bob"));
  try {
    const ready = await alice.event((e) => e.event === "ready", 15_000);
    assert.equal(ready.user, "alice");
    assert.equal(ready.server, `127.0.0.1:${port}`);
    assert.match(String(ready.endpoint), /^127\.0\.0\.1:\d+$/);
    await bob.event((e) => e.event === "ready", 15_000);
    await alice.event((e) => e.event === "online" && e.user === "bob");
    await bob.event((e) => e.event === "online" && e.user === "alice");

    await alice.write("/msg bob hello, 鲍勃!");
    const sent = await alice.event((e) => e.event === "sent");
    await alice.event((e) => e.event === "delivered" && e.to === "bob" && e.id === sent.id);
    const msg = await bob.event((e) => e.event === "message");
    assert.deepEqual(
      { from: msg.from, text: msg.text },
      { from: "alice", text: "hello, 鲍勃!" },
    );
    await bob.write("/who");
    const who = await bob.event((e) => e.event === "who");
    assert.deepEqual((who.users as { user: string }[]).map((u) => u.user), ["alice"]);
    await bob.write("/frobnicate");
    await bob.event((e) => e.event === "error" && /Unknown command/.test(String(e.message)));

    // Killed without a logout: the coordinator expires bob and alice hears it.
    bob.kill("SIGKILL");
    await alice.event((e) => e.event === "offline" && e.user === "bob", 8000);
    assert.ok(serve.stderr.items.some((l) => / expired bob /.test(l)));

    // End of input: alice logs out and exits 0.
    await alice.closeStdin();
    assert.equal((await alice.wait()).code, 0);
    await serve.stderr.waitFor((l) => / logout alice /.test(l));
    // SIGTERM stops the coordinator cleanly.
    serve.kill("SIGTERM");
    assert.equal((await serve.wait()).code, 0);
  } finally {
    await alice.dispose();
    await bob.dispose();
    await serve.dispose();
  }
});

Deno.test("chat --json reports a refused login and exits 1: the name belongs to another key", async () => {
  const { proc: serve, port } = await startServe();
  const first = new P2pProcess(["chat", `alice@127.0.0.1:${port}`, "--json"]);
  const otherKeys = await Deno.makeTempDir({ prefix: "p2p-other-alice-" });
  let second: P2pProcess | undefined;
  try {
    await first.event((e) => e.event === "ready", 15_000);
    // Another identity (another machine, another --config) for the same name.
    second = new P2pProcess(["chat", `alice@127.0.0.1:${port}`, "--json", "--config", otherKeys]);
    const err = await second.event((e) => e.event === "error", 15_000);
    assert.match(String(err.message), /the name "alice" belongs to another key/);
    assert.equal((await second.wait()).code, 1);
    assert.ok(serve.stderr.items.some((l) => /rejected login alice .*another key/.test(l)));
  } finally {
    await first.dispose();
    await second?.dispose();
    await serve.dispose();
    await Deno.remove(otherKeys, { recursive: true });
  }
});
