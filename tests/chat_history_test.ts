/**
 * History with real `p2p` processes and real SQLite files: messages pending when the sender is
 * killed (SIGKILL) are delivered once after it restarts; history survives a restart and answers
 * `/history` and `/search`; the files hold no plaintext; a passphrase is needed once set;
 * `--no-history` writes nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { History } from "../lib/store/history.ts";
import { P2pProcess, runP2p, startServe, TEST_CONFIG_HOME } from "./support/proc.ts";

/** A data home of its own, kept across a process's restarts. */
function dataHome(): string {
  return Deno.makeTempDirSync({ dir: TEST_CONFIG_HOME, prefix: "data-" });
}

async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) found.push(...await filesUnder(path));
    else found.push(path);
  }
  return found;
}

Deno.test("SIGKILL with messages pending: at the next start they are delivered, once each", async () => {
  const { proc: serve, port } = await startServe(["--peer-timeout", "2"]);
  const data = { alice: dataHome(), bob: dataHome() };
  const chat = (name: "alice" | "bob") =>
    new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json", "--keepalive", "0.5"], {
      env: { XDG_DATA_HOME: data[name] },
    });
  const procs: P2pProcess[] = [];
  try {
    const bob = chat("bob");
    procs.push(bob);
    await bob.event((e) => e.event === "ready", 15_000);
    const alice = chat("alice");
    procs.push(alice);
    await alice.event((e) => e.event === "online" && e.user === "bob", 15_000);
    // bob is listed online but answers nothing: alice's messages stay pending.
    bob.kill("SIGSTOP");
    const texts = ["first", "second", "third"];
    for (const text of texts) await alice.write(`/msg bob ${text}`);
    await alice.stdout.waitFor(
      () => alice.events().filter((e) => e.event === "sent").length === 3,
      5000,
      "three sent",
    );
    const uids = alice.events().filter((e) => e.event === "sent").map((e) => e.uid);
    alice.kill("SIGKILL");
    await alice.wait();
    assert.equal(alice.events().filter((e) => e.event === "delivered").length, 0);
    // Both names expire (no logout came); bob, resumed, logs in again by himself.
    await serve.stderr.waitFor((l) => / expired alice /.test(l), 10_000, "alice expired");
    await serve.stderr.waitFor((l) => / expired bob /.test(l), 10_000, "bob expired");
    bob.kill("SIGCONT");

    const again = chat("alice");
    procs.push(again);
    const backlog = await again.event((e) => e.event === "history" && e.text === "first", 15_000);
    assert.equal(backlog.state, "sending");
    for (const uid of uids) {
      const resumed = await again.event((e) => e.event === "sent" && e.uid === uid, 15_000);
      assert.equal(resumed.resumed, true);
      await again.event((e) => e.event === "delivered" && e.uid === uid, 15_000);
    }
    await bob.event((e) => e.event === "message" && e.text === "third", 5000);
    // Give a duplicate time to show up, if one were coming.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const got = bob.events().filter((e) => e.event === "message");
    assert.deepEqual(got.map((e) => e.text), texts);
    assert.deepEqual(got.map((e) => e.uid), uids);
  } finally {
    for (const p of procs) {
      p.kill("SIGCONT");
      await p.dispose();
    }
    await serve.dispose();
  }
});

Deno.test("history survives a restart, answers /history and /search, and is not plaintext on disk", async () => {
  const { proc: serve, port } = await startServe();
  const data = { alice: dataHome(), bob: dataHome() };
  const chat = (name: "alice" | "bob", env: Record<string, string> = {}) =>
    new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json"], {
      env: { XDG_DATA_HOME: data[name], ...env },
    });
  const withPassphrase = { P2P_PASSPHRASE: "correct horse battery staple" };
  const procs: P2pProcess[] = [];
  try {
    const bob = chat("bob");
    const alice = chat("alice", withPassphrase);
    procs.push(alice, bob);
    await alice.event((e) => e.event === "online" && e.user === "bob", 15_000);
    await alice.write("/msg bob MARKER-hello from alice");
    const sent = await alice.event((e) => e.event === "sent");
    assert.match(String(sent.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    await alice.event((e) => e.event === "delivered", 10_000);
    await bob.event((e) => e.event === "message" && e.uid === sent.uid && e.time === sent.time);
    await bob.write("/msg alice MARKER-reply from bob");
    await alice.event((e) => e.event === "message" && e.text === "MARKER-reply from bob", 10_000);
    await alice.closeStdin();
    assert.equal((await alice.wait()).code, 0);

    for (const file of [...await filesUnder(data.alice), ...await filesUnder(data.bob)]) {
      const bytes = new TextDecoder("latin1").decode(await Deno.readFile(file));
      assert.equal(bytes.includes("MARKER"), false, `plaintext in ${file}`);
    }

    // Without the passphrase, or with a wrong one, alice's history stays shut, and she is told.
    const refusals: Record<string, string>[] = [{}, { P2P_PASSPHRASE: "wrong" }];
    for (const env of refusals) {
      const denied = chat("alice", env);
      procs.push(denied);
      const error = await denied.event((e) => e.event === "error", 15_000);
      assert.match(String(error.message), /passphrase/);
      assert.equal((await denied.wait()).code, 1);
    }

    const again = chat("alice", withPassphrase);
    procs.push(again);
    await again.event((e) => e.event === "ready", 15_000);
    const backlog = again.events().filter((e) => e.event === "history");
    assert.deepEqual(
      backlog.map((e) => [e.source, e.from, e.to, e.text, e.state]),
      [
        ["backlog", "alice", "bob", "MARKER-hello from alice", "delivered"],
        ["backlog", "bob", "alice", "MARKER-reply from bob", "received"],
      ],
    );
    assert.equal(backlog[0].uid, sent.uid);
    assert.equal(backlog[0].time, sent.time);
    await again.write("/history bob 1");
    const last = await again.event((e) => e.event === "history" && e.source === "history");
    assert.equal(last.text, "MARKER-reply from bob");
    await again.write("/search marker-HELLO");
    const found = await again.event((e) => e.event === "history" && e.source === "search");
    assert.equal(found.text, "MARKER-hello from alice");
  } finally {
    for (const p of procs) await p.dispose();
    await serve.dispose();
  }
});

Deno.test("--no-history writes nothing, and /history says it is off", async () => {
  const { proc: serve, port } = await startServe();
  const data = dataHome();
  const chat = (name: string) =>
    new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json", "--no-history"], {
      env: { XDG_DATA_HOME: data },
    });
  const alice = chat("alice");
  const bob = chat("bob");
  try {
    await alice.event((e) => e.event === "online" && e.user === "bob", 15_000);
    await alice.write("/msg bob not kept");
    await bob.event((e) => e.event === "message" && e.text === "not kept", 10_000);
    await alice.write("/history bob");
    const error = await alice.event((e) => e.event === "error");
    assert.match(String(error.message), /History is off/);
    await alice.closeStdin();
    await bob.closeStdin();
    await alice.wait();
    await bob.wait();
    assert.deepEqual(await filesUnder(data), []);
  } finally {
    await alice.dispose();
    await bob.dispose();
    await serve.dispose();
  }
});

Deno.test("history flags: --passphrase needs a terminal; --no-history takes no other history flag", async () => {
  const prompt = await runP2p(["chat", "alice@127.0.0.1:9", "--passphrase"]);
  assert.equal(prompt.code, 1);
  assert.match(prompt.stderr, /--passphrase asks on a terminal.*set P2P_PASSPHRASE instead/);
  const both = await runP2p(["chat", "alice@127.0.0.1:9", "--no-history", "--data", "/tmp/x"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--no-history keeps no history: leave out --data and --passphrase/);
  const help = await runP2p(["chat", "--help"]);
  for (
    const flag of ["--data DIR", "--passphrase", "--no-history", "/history USER [N]", "/search"]
  ) {
    assert.ok(help.stdout.includes(flag), flag);
  }
});

Deno.test("a chat stopped by SIGTERM or SIGHUP writes its last records before it exits", async () => {
  const { proc: serve, port } = await startServe();
  const data = { alice: dataHome(), bob: dataHome(), carol: dataHome() };
  const chat = (name: "alice" | "bob" | "carol") =>
    new P2pProcess(["chat", `${name}@127.0.0.1:${port}`, "--json"], {
      env: { XDG_DATA_HOME: data[name] },
    });
  const procs: P2pProcess[] = [];
  try {
    const [alice, bob, carol] = [chat("alice"), chat("bob"), chat("carol")];
    procs.push(alice, bob, carol);
    for (const user of ["bob", "carol"]) {
      await alice.event((e) => e.event === "online" && e.user === user, 15_000);
    }
    // Each is stopped the moment it shows the message: its record is still in the 20 ms batch.
    for (
      const [proc, name, signal] of [[bob, "bob", "SIGTERM"], [carol, "carol", "SIGHUP"]] as const
    ) {
      await alice.write(`/msg ${name} last words to ${name}`);
      await proc.event((e) => e.event === "message", 10_000);
      proc.kill(signal);
      assert.equal((await proc.wait()).code, 0);
    }
    for (const name of ["bob", "carol"] as const) {
      const history = await History.open({
        username: name,
        dataDir: join(data[name], "p2p"),
        configDir: join(TEST_CONFIG_HOME, "p2p"),
      });
      try {
        assert.deepEqual(
          history.conversation("alice", 5).map((m) => [m.text, m.state]),
          [[`last words to ${name}`, "received"]],
        );
      } finally {
        history.close();
      }
    }
  } finally {
    for (const p of procs) await p.dispose();
    await serve.dispose();
  }
});
