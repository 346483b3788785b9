/**
 * Builds standalone `p2p` executables with `deno compile`, one per target, into `dist/`.
 *
 *   scripts/deno task compile                       # every target
 *   scripts/deno task compile --target aarch64-unknown-linux-gnu   # e.g. for a Raspberry Pi
 *
 * `deno compile` needs Deno's runtime (`denort`) for each target, which it downloads from Deno's
 * release host; where that host cannot be reached, set `DENORT_BIN` to a local `denort` of the
 * same Deno version (only for the host's own target). Exits 1 if any target failed, saying why.
 * The executables run with {@linkcode V8_FLAGS}, as `deno task start` does.
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** Every target `deno compile` supports. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** Outcome of one target's build. */
export type BuildResult = { target: string; ok: true; output: string } | {
  target: string;
  ok: false;
  runtimeUnavailable: boolean;
  message: string;
};

/**
 * V8 flags `p2p` runs with: baked into the executables, and set by `deno task start` (deno.json)
 * and scripts/p2p. V8 sizes its young generation by the machine's memory, up to 2 × 32 MiB, and
 * under a coordinator's steady stream of short-lived sends it grows there and stays; 2 × 8 MiB
 * holds it to a quarter of that for a few more (cheap) scavenges. See docs/LOAD.md.
 * `--expose-gc` lets a chat client's file transfers collect their dead buffers themselves
 * (lib/files/scavenge_pacer.ts), which the one young generation of both roles would leave at
 * 60-80 MB (docs/FILES.md "RSS"); nothing else calls `gc`.
 */
export const V8_FLAGS = "--max-semi-space-size=8,--expose-gc";

// A platform path (`D:\a\p2p\` on Windows, where a URL's pathname would be `/D:/a/p2p/`): the
// release workflow builds on Windows too.
const root = fileURLToPath(new URL("..", import.meta.url));

/** Compiles main.ts for `target` into `outDir`. */
export async function build(target: string, outDir: string): Promise<BuildResult> {
  const output = `${outDir}/p2p-${target}${target.includes("windows") ? ".exe" : ""}`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "-A",
      `--v8-flags=${V8_FLAGS}`,
      "--target",
      target,
      "--output",
      output,
      `${root}main.ts`,
    ],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (result.success) return { target, ok: true, output };
  const text = new TextDecoder().decode(result.stderr);
  const runtimeUnavailable = /Setting up base binary|denort/.test(text);
  const lines = text.split("\n");
  const cause = lines.find((l) => /error sending request|No such file/.test(l)) ??
    lines.find((l) => /error:/.test(l));
  return {
    target,
    ok: false,
    runtimeUnavailable,
    message: runtimeUnavailable
      ? `Deno's compile runtime (denort) for ${target} could not be had: ${cause?.trim()}`
      : text.trim(),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string", multiple: true },
      out: { type: "string", default: `${root}dist` },
    },
  });
  const targets = values.target ?? [...TARGETS];
  await Deno.mkdir(values.out, { recursive: true });
  let failed = 0;
  for (const target of targets) {
    const r = await build(target, values.out);
    if (r.ok) {
      console.log(`built ${r.output}`);
    } else {
      failed++;
      console.error(`FAILED ${target}: ${r.message}`);
    }
  }
  if (failed > 0) {
    console.error(
      `${failed} of ${targets.length} targets failed. Where Deno's release host is unreachable, ` +
        `build on a machine that can reach it, or set DENORT_BIN to a local denort ` +
        `(host target only).`,
    );
    Deno.exit(1);
  }
}
