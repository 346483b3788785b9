import assert from "node:assert/strict";
import { installed } from "../support/tools.ts";

const root = new URL("../../", import.meta.url).pathname;
const unitPath = `${root}packaging/systemd/p2p.service`;
const unit = Deno.readTextFileSync(unitPath);
const INSTALLED = "/usr/local/bin/p2p";

/** Runs a command, returning its exit code and output. */
async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  return { code: r.code, out: text.decode(r.stdout) + text.decode(r.stderr) };
}

/** The values of `Key=` in the unit, in order. */
function values(key: string): string[] {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);
}

Deno.test("the systemd unit verifies clean with a real installed p2p as its ExecStart", async () => {
  // systemd-analyze checks that ExecStart's program exists and is executable. Rather than a
  // stand-in, install the real `p2p` command (scripts/install) in a temporary directory and point
  // a copy of the unit at it; the copy differs from the unit only by that path.
  const dir = await Deno.makeTempDir({ prefix: "p2p-unit-" });
  try {
    const install = await run(`${root}scripts/install`, ["--bin-dir", dir]);
    assert.equal(install.code, 0, install.out);
    const help = await run(`${dir}/p2p`, ["serve", "--help"]);
    assert.equal(help.code, 0, help.out);
    // Every option ExecStart passes is one `p2p serve` knows.
    const exec = values("ExecStart")[0];
    for (const flag of exec.match(/--[a-z-]+/g) ?? []) assert.ok(help.out.includes(flag), flag);
    assert.ok(exec.startsWith(`${INSTALLED} serve `), exec);
    const copy = `${dir}/p2p.service`;
    await Deno.writeTextFile(copy, unit.replaceAll(INSTALLED, `${dir}/p2p`));
    if (!installed("systemd-analyze")) {
      throw new Error(
        "systemd-analyze is not installed (Debian: apt install systemd; .ci/run does)",
      );
    }
    const verify = await run("systemd-analyze", ["verify", copy]);
    assert.equal(verify.out.trim(), "", "systemd-analyze verify said something");
    assert.equal(verify.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the systemd unit runs as its own user, in /var/lib/p2p, hardened", () => {
  assert.deepEqual(values("DynamicUser"), ["yes"]);
  assert.deepEqual(values("StateDirectory"), ["p2p"]);
  assert.match(values("ExecStart")[0], / --data %S\/p2p$/);
  for (
    const [key, value] of Object.entries({
      NoNewPrivileges: "yes",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
    })
  ) assert.deepEqual(values(key), [value], key);
  assert.ok(values("SystemCallFilter").includes("@system-service"));
  // No capability unless an override asks for one (a port below 1024).
  assert.deepEqual(values("AmbientCapabilities"), [""]);
  assert.deepEqual(values("CapabilityBoundingSet"), [""]);
  // V8's JIT writes code, then runs it: MemoryDenyWriteExecute would kill the process.
  assert.deepEqual(values("MemoryDenyWriteExecute"), []);
});
