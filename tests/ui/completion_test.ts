import assert from "node:assert/strict";
import { complete } from "../../lib/ui/completion.ts";

const names = ["bob", "Bea", "carol"];

Deno.test("Tab completes a command word, case-insensitively, in its own spelling", () => {
  assert.deepEqual(complete({ line: "/ms", cursor: 3, names }), {
    line: "/msg ",
    cursor: 5,
    candidates: ["/msg"],
  });
  assert.equal(complete({ line: "/MS", cursor: 3, names }).line, "/msg ");
  assert.equal(complete({ line: "/fin", cursor: 4, names }).line, "/fingerprint ");
});

Deno.test("several matches: completed as far as they agree, all listed", () => {
  const c = complete({ line: "/q", cursor: 2, names });
  assert.deepEqual(c.candidates, ["/query", "/quit"]);
  assert.equal(c.line, "/qu");
  assert.equal(c.cursor, 3);
  const b = complete({ line: "/msg B", cursor: 6, names });
  assert.deepEqual(b.candidates, ["Bea", "bob"]);
  assert.equal(b.line, "/msg B", "they agree no further than what was typed");
});

Deno.test("Tab completes names after a command and in plain text, where the cursor is", () => {
  assert.equal(complete({ line: "/chat CA", cursor: 8, names }).line, "/chat carol ");
  assert.equal(complete({ line: "hi ca", cursor: 5, names }).line, "hi carol ");
  // In the middle of a line: only the word before the cursor; no second space.
  const mid = complete({ line: "/msg bo hello", cursor: 7, names });
  assert.deepEqual([mid.line, mid.cursor], ["/msg bob hello", 8]);
});

Deno.test("nothing matches: the line is left alone", () => {
  assert.deepEqual(complete({ line: "/zz", cursor: 3, names }), {
    line: "/zz",
    cursor: 3,
    candidates: [],
  });
  assert.deepEqual(complete({ line: "hi zed", cursor: 6, names }).candidates, []);
});
