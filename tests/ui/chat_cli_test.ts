/** `p2p chat` and `p2p id` as real processes: signals, a busy --bind port, offline refusal, help. */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { P2pProcess, runP2p, startServe, TEST_CONFIG_HOME } from "../support/proc.ts";

Deno.test("SIGTERM and SIGHUP each log the chat out at once: the coordinator logs the logout", async () => {
  const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
  try {
    for (const signal of ["SIGTERM", "SIGHUP", "SIGINT"] as const) {
      const name = `sig${signal.slice(3).toLowerCase()}`;
      const chat = new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json"]);
      try {
        await chat.event((e) => e.event === "ready", 15_000);
        const before = serve.stderr.count((l) => l.includes(`logout ${name}`));
        const sent = Date.now();
        chat.kill(signal);
        await serve.stderr.waitFor(
          () => serve.stderr.count((l) => l.includes(`logout ${name}`)) > before,
          1000,
          `logout of ${name} after ${signal}`,
        );
        assert.ok(Date.now() - sent < 1000);
        assert.equal((await chat.wait()).code, 0, `exit code after ${signal}`);
      } finally {
        await chat.dispose();
      }
    }
  } finally {
    await serve.dispose();
  }
});

Deno.test("a --bind port in use is a clear error, not a raw EADDRINUSE", async () => {
  const taken = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => taken.bind(0, "127.0.0.1", resolve));
  const { port: busy } = taken.address();
  const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
  try {
    const chat = new P2pProcess([
      "chat",
      `binder@127.0.0.1:${port}`,
      "--json",
      "--bind",
      `127.0.0.1:${busy}`,
    ]);
    try {
      const err = await chat.event((e) => e.event === "error", 15_000);
      assert.match(
        String(err.message),
        new RegExp(`--bind 127\\.0\\.0\\.1:${busy}.*already in use`),
      );
      assert.doesNotMatch(String(err.message), /EADDRINUSE/);
      assert.equal((await chat.wait()).code, 1);
    } finally {
      await chat.dispose();
    }
  } finally {
    await serve.dispose();
    taken.close();
  }
});

Deno.test("a message to someone who just went offline is refused at once, saying so", async () => {
  const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
  const alice = new P2pProcess(["chat", `alice@127.0.0.1:${port}`, "--json"]);
  const bob = new P2pProcess(["chat", `bob@127.0.0.1:${port}`, "--json"]);
  try {
    await alice.event((e) => e.event === "online" && e.user === "bob", 15_000);
    await bob.closeStdin(); // bob logs out
    await alice.event((e) => e.event === "offline" && e.user === "bob", 10_000);
    const asked = Date.now();
    await alice.write("/msg Bob are you there?");
    const err = await alice.event((e) => e.event === "error", 2000);
    assert.ok(Date.now() - asked < 2000);
    assert.match(String(err.message), /^Cannot send to bob: bob is offline/);
    assert.equal(alice.events().filter((e) => e.event === "sent").length, 0);
  } finally {
    await alice.dispose();
    await bob.dispose();
    await serve.dispose();
  }
});

Deno.test("p2p id refuses a name without a key, unless --create", async () => {
  const name = `zed${crypto.getRandomValues(new Uint32Array(1))[0]}`;
  const missing = await runP2p(["id", name]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, new RegExp(`no key for ${name} on this machine`));
  assert.match(missing.stderr, /--create/);
  assert.equal(missing.stdout, "");
  const created = await runP2p(["id", name, "--create"]);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /\(created now\)/);
  const shown = await runP2p(["id", name]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.equal(shown.stdout.split("\n")[0], created.stdout.split("\n")[0]);
  assert.doesNotMatch(shown.stdout, /created now/);
  assert.ok(TEST_CONFIG_HOME.length > 0);
});

Deno.test("every help text lists the options its command takes", async () => {
  const chat = (await runP2p(["chat", "--help"])).stdout;
  assert.match(chat, /^Usage: p2p chat NAME@HOST\[:PORT\] .*\[--bind ADDR\[:PORT\]\]/);
  const id = (await runP2p(["id", "--help"])).stdout;
  const serve = (await runP2p(["serve", "--help"])).stdout;
  const options: [string, string[]][] = [
    [chat, ["--json", "--keepalive", "--bind", "--config", "--accept", "--help"]],
    [id, ["--create", "--config", "--help"]],
    [serve, ["--host", "--port", "--tcp-port", "--peer-timeout", "--batch-ms", "--max-line"]],
  ];
  for (const [help, flags] of options) {
    for (const flag of flags) assert.match(help, new RegExp(`^ +(-\\w, )?${flag}\\b`, "m"), flag);
  }
  for (const word of ["/chat", "/query", "/r ", "/msg", "/all", "/who", "/fingerprint", "/trust"]) {
    assert.ok(chat.includes(word), word);
  }
  assert.match(serve, /--max-line BYTES +longest line of the coordinator protocol/);
});

Deno.test("--json takes the conversation commands too: /chat, plain text, /r, names in any case", async () => {
  const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
  const alice = new P2pProcess(["chat", `alice@127.0.0.1:${port}`, "--json"]);
  const bob = new P2pProcess(["chat", `bob@127.0.0.1:${port}`, "--json"]);
  try {
    await alice.event((e) => e.event === "online" && e.user === "bob", 15_000);
    await alice.write("hello?");
    const refused = await alice.event((e) => e.event === "error");
    assert.match(String(refused.message), /^Whom to\? \/chat USER/);
    await alice.write("/CHAT BOB");
    await alice.write("plain text to bob");
    await bob.event((e) => e.event === "message" && e.text === "plain text to bob", 10_000);
    await bob.write("/r got it");
    await alice.event((e) => e.event === "message" && e.text === "got it", 10_000);
    await alice.write("/r back to you");
    await bob.event((e) => e.event === "message" && e.text === "back to you", 10_000);
    await alice.write("/all");
    await alice.write("now nobody");
    await alice.stdout.waitFor(
      () => alice.events().filter((e) => e.event === "error").length === 2,
      5000,
      "a second refusal",
    );
    // Back to bob with nothing unread: the conversation opens on its last lines.
    await alice.write("/chat bob");
    await alice.event((e) =>
      e.event === "history" && e.source === "history" && e.text === "back to you"
    );
  } finally {
    await alice.dispose();
    await bob.dispose();
    await serve.dispose();
  }
});
