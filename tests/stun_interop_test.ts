/**
 * Standard STUN clients against a real `p2p serve` (loopback): coturn's `turnutils_stunclient`
 * (RFC 5389 Binding, 20-byte request) and stun-client's `stun` (classic RFC 3489, with
 * CHANGE-REQUEST) get the endpoint they asked from. Skipped where the binaries are missing.
 */
import assert from "node:assert/strict";
import { runP2p, startServe } from "./support/proc.ts";

async function has(binary: string): Promise<boolean> {
  try {
    const { code } = await new Deno.Command("sh", { args: ["-c", `command -v ${binary}`] })
      .output();
    return code === 0;
  } catch {
    return false;
  }
}

/** Runs a command to its end (killed after `ms`), returning its whole output. */
async function run(cmd: string, args: string[], ms = 10_000): Promise<string> {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  const out = await child.output();
  clearTimeout(timer);
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return decode(out.stdout) + decode(out.stderr);
}

Deno.test({
  name: "turnutils_stunclient gets its mapped address from p2p serve",
  ignore: !(await has("turnutils_stunclient")),
  fn: async () => {
    const { proc, port } = await startServe();
    try {
      const out = await run("turnutils_stunclient", [
        "-p",
        String(port),
        "-L",
        "127.0.0.1",
        "127.0.0.1",
      ]);
      // e.g. "INFO: IPv4. UDP reflexive addr: 127.0.0.1:40123"
      assert.match(out, /UDP reflexive addr: 127\.0\.0\.1:\d+/, out);
    } finally {
      await proc.dispose();
    }
  },
});

Deno.test({
  name: "stun (stun-client, RFC 3489) gets its mapped address from p2p serve",
  ignore: !(await has("stun")),
  fn: async () => {
    const { proc, port } = await startServe();
    try {
      const out = await run("stun", [`127.0.0.1:${port}`, "-v"]);
      // It prints the port it opened, then what the server saw: the same.
      const opened = /Opened port (\d+)/.exec(out)?.[1];
      assert.ok(opened, out);
      assert.match(out, new RegExp(`MappedAddress = 127\\.0\\.0\\.1:${opened}\\b`), out);
    } finally {
      await proc.dispose();
    }
  },
});

/** A UDP port free on loopback just now (a small race with other processes, fine in tests). */
function freeUdpPort(): number {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const { port } = socket.addr as Deno.NetAddr;
  socket.close();
  return port;
}

Deno.test({
  name: "p2p nat --stun asks a real coturn, with and without a coordinator beside it",
  ignore: !(await has("turnserver")),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "p2p-coturn-" });
    const port = freeUdpPort();
    // STUN only, on loopback, everything it writes in `dir`.
    const turn = new Deno.Command("turnserver", {
      args: [
        ...["-n", "--no-cli", "--stun-only", "--listening-ip", "127.0.0.1"],
        ...["--listening-port", String(port), "--no-tls", "--no-dtls", "--log-file", "stdout"],
        ...["--pidfile", `${dir}/pid`, "--db", `${dir}/turndb`],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const serve = await startServe();
    try {
      let result = await runP2p(["nat", "--stun", `127.0.0.1:${port}`, "--json"]);
      for (let i = 0; i < 20 && result.code !== 0; i++) {
        // coturn may take a moment to listen.
        await new Promise((r) => setTimeout(r, 250));
        result = await runP2p(["nat", "--stun", `127.0.0.1:${port}`, "--json"]);
      }
      const alone = JSON.parse(result.stdout);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(alone.public, alone.local);
      assert.deepEqual(alone.stun, [{ server: `127.0.0.1:${port}`, public: alone.local }]);
      assert.equal(alone.mapping, "none");
      // Beside the coordinator (which answers STUN too): three views of one socket agree.
      const both = await runP2p([
        ...["nat", `127.0.0.1:${serve.port}`, "--stun", `127.0.0.1:${port}`],
        ...["--stun", `127.0.0.1:${serve.port}`],
      ]);
      assert.equal(both.code, 0, both.stderr);
      assert.match(both.stdout, new RegExp(`STUN 127\\.0\\.0\\.1:${port}: 127\\.0\\.0\\.1:\\d+`));
      assert.match(both.stdout, /mapping: +none/);
      // Nobody there: exit code 1 and the reason.
      const none = await runP2p(["nat", "--stun", `127.0.0.1:${freeUdpPort()}`]);
      assert.equal(none.code, 1);
      assert.match(none.stdout, /No answer from STUN 127\.0\.0\.1:\d+/);
    } finally {
      turn.kill("SIGTERM");
      await turn.status;
      await serve.proc.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
