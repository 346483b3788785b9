/**
 * Standard STUN clients against a real `p2p serve` (loopback): coturn's `turnutils_stunclient`
 * (RFC 5389 Binding, 20-byte request) and stun-client's `stun` (classic RFC 3489, with
 * CHANGE-REQUEST) get the endpoint they asked from. Skipped where the binaries are missing.
 */
import assert from "node:assert/strict";
import { startServe } from "./support/proc.ts";

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
