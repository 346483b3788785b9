import assert from "node:assert/strict";
import { scrollInto } from "../../lib/ui/screen.ts";
import { textWidth } from "../../lib/ui/text_width.ts";

Deno.test("the input row scrolls sideways to keep the cursor in view, padded to the width", () => {
  assert.deepEqual(scrollInto("> hello", 7, 10), { shown: "> hello   ", cursor: 7 });
  const long = "> " + "abcdefghij".repeat(3);
  const end = scrollInto(long, long.length, 10);
  assert.deepEqual(end, { shown: "bcdefghij ", cursor: 9 }, "the end, and room for the cursor");
  // Wide characters are never cut in half, and the row is exactly as wide as asked.
  for (let at = 0; at <= 40; at += 2) {
    const wide = scrollInto("> " + "你好".repeat(10), at, 11);
    assert.equal(textWidth(wide.shown), 11);
    assert.ok(wide.cursor >= 0 && wide.cursor <= 10, `${at}: ${wide.cursor}`);
  }
});
