/** `scripts/install`: a `p2p` command that runs this checkout, bannerless, and exits 0 on Ctrl-C. */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { pumpLines } from "../support/lines.ts";
import { testEnv } from "../support/proc.ts";
import { Collector } from "../support/wait.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

Deno.test("scripts/install puts a p2p command in --bin-dir (and under --prefix) that runs this checkout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-install-" });
  try {
    const install = await new Deno.Command(`${ROOT}scripts/install`, {
      args: ["--bin-dir", `${dir}/my bin`],
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    }).output();
    assert.equal(install.code, 0, decoder.decode(install.stderr));
    assert.match(decoder.decode(install.stdout), /installed .*my bin\/p2p/);
    assert.match(decoder.decode(install.stdout), /is not on your PATH/);
    const p2p = `${dir}/my bin/p2p`;
    assert.equal((await Deno.stat(p2p)).mode! & 0o777, 0o755);

    // Anywhere, with the user's environment: the version, and nothing else (no task banner).
    const version = await new Deno.Command(p2p, { args: ["--version"], cwd: dir, env: testEnv() })
      .output();
    assert.equal(version.code, 0);
    assert.equal(decoder.decode(version.stdout), `p2p ${denoJson.version}\n`);
    assert.equal(decoder.decode(version.stderr), "");

    const prefixed = await new Deno.Command(`${ROOT}scripts/install`, {
      args: ["--prefix", `${dir}/usr`],
    }).output();
    assert.equal(prefixed.code, 0, decoder.decode(prefixed.stderr));
    await Deno.stat(`${dir}/usr/bin/p2p`);

    const bad = await new Deno.Command(`${ROOT}scripts/install`, { args: ["--frobnicate"] })
      .output();
    assert.equal(bad.code, 2);
    assert.match(decoder.decode(bad.stderr), /unknown option --frobnicate/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ctrl-C (SIGINT) on the installed p2p serve exits 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-install-" });
  try {
    const install = await new Deno.Command(`${ROOT}scripts/install`, { args: ["--bin-dir", dir] })
      .output();
    assert.equal(install.code, 0, decoder.decode(install.stderr));
    const child = new Deno.Command(`${dir}/p2p`, {
      // Its own TCP port: the UDP port's number may be taken for TCP on a busy machine.
      args: ["serve", "--host", "127.0.0.1", "--port", "0", "--tcp-port", "0"],
      stdout: "null",
      stderr: "piped",
      env: testEnv(),
    }).spawn();
    const stderr = new Collector<string>();
    const pumped = pumpLines(child.stderr, stderr.push);
    try {
      await stderr.waitFor((l) => / UDP \d+/.test(l), 15_000, "serve start");
      child.kill("SIGINT");
      assert.equal((await child.status).code, 0);
      await pumped;
      assert.ok(stderr.items.some((l) => l.includes("coordinator stopped")));
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited already
      }
      await Promise.all([child.status, pumped]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
