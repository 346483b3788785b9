import assert from "node:assert/strict";
import { exposedScavenge, ScavengePacer } from "../../lib/files/scavenge_pacer.ts";

Deno.test("ScavengePacer collects once per everyBytes of file data, not per chunk", () => {
  let collections = 0;
  const pacer = new ScavengePacer({ everyBytes: 100, collect: () => collections++ });
  for (let i = 0; i < 9; i++) pacer.add(30); // 270 bytes: at 120 and 240
  assert.equal(collections, 2);
  pacer.add(30); // 60 since the last
  assert.equal(collections, 2);
});

Deno.test("ScavengePacer does nothing without V8's gc (no --expose-gc)", () => {
  const pacer = new ScavengePacer({ everyBytes: 1, collect: undefined });
  pacer.add(1 << 30); // must not throw
  // This test process runs without --expose-gc.
  assert.equal(exposedScavenge(), undefined);
});

Deno.test("exposedScavenge runs V8's young-generation collection when gc is exposed", async () => {
  // `p2p` runs with --expose-gc (V8_FLAGS): a child process with it, as the executable runs.
  const code = `
    import { exposedScavenge } from ${
    JSON.stringify(import.meta.resolve("../../lib/files/scavenge_pacer.ts"))
  };
    exposedScavenge()();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc,--trace-gc", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.match(new TextDecoder().decode(out.stdout), /Scavenge .*testing/);
});
