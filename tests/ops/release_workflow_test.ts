import assert from "node:assert/strict";
import { TARGETS } from "../../scripts/compile.ts";

const workflow = Deno.readTextFileSync(
  new URL("../../.github/workflows/release.yml", import.meta.url),
);

/** The `- target: X` entries of the workflow's build matrix, with the runner each names. */
function matrix(text: string): { target: string; os: string }[] {
  const entries = [...text.matchAll(/^\s*- target: (\S+)\s*\n\s*os: (\S+)\s*$/gm)];
  return entries.map((m) => ({ target: m[1], os: m[2] }));
}

Deno.test("the release workflow builds every target of scripts/compile.ts, and only those", () => {
  const targets = matrix(workflow).map((e) => e.target);
  assert.deepEqual([...targets].sort(), [...TARGETS].sort());
});

Deno.test("each release target is built on a runner of its own OS and architecture", () => {
  // The compile test runs the executable it builds: it must be able to run on the runner.
  for (const { target, os } of matrix(workflow)) {
    const want = target.includes("linux")
      ? (target.startsWith("aarch64") ? /^ubuntu-.*-arm$/ : /^ubuntu-[0-9.]+$/)
      : target.includes("darwin")
      ? (target.startsWith("aarch64") ? /^macos-1[4-9]$/ : /^macos-13$/)
      : /^windows-/;
    assert.match(os, want, `${target} on ${os}`);
  }
});

Deno.test("the release workflow runs on tags, compiles each target, runs the compile test", () => {
  assert.match(workflow, /^on:\n\s+push:\n\s+tags: \["v\*"\]/m);
  assert.match(workflow, /scripts\/compile\.ts --target \$\{\{ matrix\.target \}\}/);
  assert.match(workflow, /deno test -A tests\/compile_test\.ts/);
  assert.match(workflow, /gh release upload/);
});

Deno.test("the release workflow builds with the Deno version scripts/deno pins", () => {
  const script = Deno.readTextFileSync(new URL("../../scripts/deno", import.meta.url));
  const pinned = script.match(/^DENO_VERSION=(\S+)$/m)?.[1];
  assert.ok(pinned, "scripts/deno names no DENO_VERSION");
  assert.match(workflow, new RegExp(`deno-version: v${pinned.replaceAll(".", "\\.")}\\n`));
});
