import assert from "node:assert/strict";
import v8 from "node:v8";
import { summarize } from "../../scripts/heap_summary.ts";

/** Objects of a class of our own, held while the snapshot is taken, so their group must show. */
class HeapSummaryProbe {
  readonly payload = [1, 2, 3];
}

Deno.test("summarize groups a real heap snapshot's objects by constructor, largest first", () => {
  const held = Array.from({ length: 1000 }, () => new HeapSummaryProbe());
  const dir = Deno.makeTempDirSync();
  try {
    const file = v8.writeHeapSnapshot(`${dir}/test.heapsnapshot`);
    const groups = summarize(JSON.parse(Deno.readTextFileSync(file)));
    const probe = groups.find((g) => g.group === "object HeapSummaryProbe");
    assert.equal(probe?.count, held.length);
    assert.ok(probe.bytes >= held.length * 12, `${probe.bytes} bytes for ${held.length} objects`);
    for (let i = 1; i < groups.length; i++) assert.ok(groups[i - 1].bytes >= groups[i].bytes);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
