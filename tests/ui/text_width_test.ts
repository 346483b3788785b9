import assert from "node:assert/strict";
import { textWidth, wrapText } from "../../lib/ui/text_width.ts";

Deno.test("textWidth counts terminal columns: wide CJK and emoji 2, marks 0", () => {
  assert.equal(textWidth("hello"), 5);
  assert.equal(textWidth("你好"), 4);
  assert.equal(textWidth("😀"), 2);
  assert.equal(textWidth("👩‍👩‍👧"), 2);
  assert.equal(textWidth("e\u0301"), 1);
  assert.equal(textWidth("한국어"), 6);
  assert.equal(textWidth(""), 0);
});

Deno.test("wrapText breaks between words, so fingerprints wrap between groups", () => {
  const fp = "e04f 01d5 8b33 e6df ae9e 52d0 3057 35c7";
  for (let width = 12; width <= 40; width++) {
    const rows = wrapText(`fingerprint: ${fp}`, width, 2);
    for (const [i, row] of rows.entries()) {
      assert.ok(textWidth(row) <= (i === 0 ? width : width - 2), `${width}: ${row}`);
    }
    const groups = rows.join(" ").split(" ").filter((w) => /^[0-9a-f]{4}$/.test(w));
    assert.deepEqual(groups.join(" "), fp, `width ${width}: every group whole`);
  }
});

Deno.test("wrapText cuts a word longer than a row between characters, never mid-character", () => {
  assert.deepEqual(wrapText("abcdefghij", 4), ["abcd", "efgh", "ij"]);
  assert.deepEqual(wrapText("你好世界", 5), ["你好", "世界"]);
  assert.deepEqual(wrapText("", 10), [""]);
  assert.deepEqual(wrapText("a b", 10), ["a b"]);
});
