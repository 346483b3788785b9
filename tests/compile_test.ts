import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { build, V8_FLAGS } from "../scripts/compile.ts";

// `deno compile` needs Deno's runtime, downloaded from a host some machines cannot reach. Try
// once for this machine's own target; if the runtime cannot be had, say so plainly and skip.
const host = `${Deno.build.arch}-${
  Deno.build.os === "linux"
    ? "unknown-linux-gnu"
    : Deno.build.os === "darwin"
    ? "apple-darwin"
    : "pc-windows-msvc"
}`;
const outDir = await Deno.makeTempDir({ prefix: "p2p-compile-" });
const result = await build(host, outDir);
if (!result.ok && result.runtimeUnavailable) {
  console.error(`SKIPPED compile test: ${result.message}`);
}

Deno.test({
  name: result.ok || !result.runtimeUnavailable
    ? `deno compile builds a working standalone p2p for ${host}`
    : `deno compile for ${host} (SKIPPED: Deno's compile runtime cannot be downloaded here)`,
  ignore: !result.ok && result.runtimeUnavailable,
  fn: async () => {
    try {
      assert.ok(result.ok, result.ok ? "" : result.message);
      const out = await new Deno.Command(result.output, { args: ["--version"] }).output();
      assert.equal(new TextDecoder().decode(out.stdout).trim(), `p2p ${denoJson.version}`);
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});

if (!result.ok && result.runtimeUnavailable) await Deno.remove(outDir, { recursive: true });

Deno.test("deno task start runs p2p with the V8 flags its executables are built with", () => {
  assert.ok(denoJson.tasks.start.includes(` --v8-flags=${V8_FLAGS} `), denoJson.tasks.start);
});

Deno.test("scripts/p2p runs p2p with the same V8 flags", async () => {
  const launcher = await Deno.readTextFile(new URL("../scripts/p2p", import.meta.url));
  assert.ok(launcher.includes(` --v8-flags=${V8_FLAGS} `), launcher);
});
