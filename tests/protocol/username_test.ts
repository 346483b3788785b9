import assert from "node:assert/strict";
import {
  MAX_USERNAME_LENGTH,
  normalizeUsername,
  usernameProblem,
  usernameSkeleton,
} from "../../lib/protocol/username.ts";
import { randomText } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const LONG_CHINESE = "张伟李娜王芳刘洋陈静杨磊赵敏黄勇周杰吴刚徐丽孙强马超朱琳胡斌郭峰";

Deno.test("usernameProblem accepts names up to 32 code points, Chinese included", () => {
  assert.equal([...LONG_CHINESE].length, MAX_USERNAME_LENGTH);
  for (
    const name of [
      "a",
      "alice",
      "张伟",
      LONG_CHINESE,
      "x".repeat(32),
      "😀".repeat(32), // 64 UTF-16 units, but 32 code points
      "Zoë O'Brien",
      "a b",
      "end2",
      "End",
      "a:b",
      "bob@home",
    ]
  ) {
    assert.equal(usernameProblem(name), undefined, name);
  }
});

Deno.test("usernameProblem explains every rejection", () => {
  const cases: [string, string][] = [
    ["", "username is empty"],
    ["x".repeat(33), "username is 33 characters long, the limit is 32"],
    [LONG_CHINESE + "张", "username is 33 characters long, the limit is 32"],
    ["😀".repeat(33), "username is 33 characters long, the limit is 32"],
    ["a,b", "username must not contain ',' or ';'"],
    ["a;b", "username must not contain ',' or ';'"],
    ["a\tb", "username must not contain control characters"],
    ["a\u0000b", "username must not contain control characters"],
    ["a\nb", "username must not contain control characters"],
    ["a\x1b[31mb", "username must not contain control characters"],
    ["a\u007fb", "username must not contain control characters"],
    ["a\u0085b", "username must not contain control characters"],
    ["a\u009bb", "username must not contain control characters"],
    ["a\u2028b", "username must not contain control characters"],
    [" alice", "username must not start or end with white space"],
    ["alice ", "username must not start or end with white space"],
    ["\u00a0alice", "username must not start or end with white space"],
    ["张伟\u3000", "username must not start or end with white space"],
    ["\ufeffalice", "username must not contain invisible formatting characters"],
    ["bob\u200b", "username must not contain invisible formatting characters"],
    ["\u202ebob", "username must not contain invisible formatting characters"],
    ["a\u2066b\u2069", "username must not contain invisible formatting characters"],
    [" ", "username must not start or end with white space"],
    ["end", 'username "end" is reserved (it ends the online list)'],
    ["a\ufffdb", "username is not valid UTF-8"],
    ["a\ud800b", "username is not valid UTF-8"],
    ["\udc00", "username is not valid UTF-8"],
  ];
  for (const [name, problem] of cases) {
    assert.equal(usernameProblem(name), problem, JSON.stringify(name));
  }
});

Deno.test("usernameProblem refuses invisible default-ignorable and blank characters, by code point", () => {
  // Each of these made `alice` + an invisible character a second "alice" (issue: lookalike names).
  for (
    const [c, code] of [
      ["\u034f", "034F"], // combining grapheme joiner
      ["\ufe0f", "FE0F"], // variation selector 16
      ["\u180b", "180B"], // Mongolian free variation selector
      ["\u3164", "3164"], // Hangul filler
      ["\u2800", "2800"], // Braille pattern blank
      ["\u115f", "115F"], // Hangul choseong filler
    ]
  ) {
    assert.equal(
      usernameProblem(`alice${c}`),
      `username must not contain invisible characters (U+${code})`,
      code,
    );
    assert.equal(usernameProblem(`${c}bob`)?.includes(`U+${code}`), true, code);
  }
});

Deno.test("usernameProblem refuses names not in NFC; normalizeUsername makes them so", () => {
  const decomposed = "alice\u0301"; // an accent on a letter with no precomposed form
  assert.equal(
    usernameProblem("alic" + "e\u0301"),
    "username must be in Unicode NFC form (composed characters)",
  );
  assert.equal(normalizeUsername("alic" + "e\u0301"), "alic\u00e9");
  assert.equal(usernameProblem(normalizeUsername("alic" + "e\u0301")), undefined);
  // A combining mark with no precomposed form stays as it is, and is valid.
  assert.equal(usernameProblem(normalizeUsername(decomposed)), undefined);
  // Already NFC (Chinese, Latin, emoji) is unchanged.
  for (const name of ["张伟", LONG_CHINESE, "Zo\u00eb", "😀 smile"]) {
    assert.equal(normalizeUsername(name), name);
  }
  // A lone surrogate is left for usernameProblem to refuse, not silently repaired.
  assert.equal(normalizeUsername("a\ud800"), "a\ud800");
  assert.equal(usernameProblem(normalizeUsername("a\ud800")), "username is not valid UTF-8");
});

Deno.test("lookalike names share a skeleton; different names do not", () => {
  const alice = usernameSkeleton("alice");
  for (
    const lookalike of [
      "\u0430lice", // Cyrillic а
      "\uff41\uff4c\uff49\uff43\uff45", // fullwidth
      "\ud835\udc1a\ud835\udc25\ud835\udc22\ud835\udc1c\ud835\udc1e", // mathematical bold
      "a1ice", // digit one for l
      "alic\u0435", // Cyrillic е
    ]
  ) {
    assert.equal(usernameSkeleton(lookalike), alice, JSON.stringify(lookalike));
  }
  assert.equal(usernameSkeleton("rn"), usernameSkeleton("m"));
  // Composed and decomposed é are one name to the skeleton as well.
  assert.equal(usernameSkeleton("alic\u00e9"), usernameSkeleton("alic" + "e\u0301"));
  for (const other of ["alicia", "bob", "Alice", "张伟", "张伟伟", "alice2"]) {
    assert.notEqual(usernameSkeleton(other), alice, other);
  }
  assert.notEqual(usernameSkeleton("张伟"), usernameSkeleton("张伟伟"));
});

Deno.test("usernameProblem and usernameSkeleton never throw on random text", () => {
  const random = prng(39);
  for (let i = 0; i < 5_000; i++) {
    const text = randomText(random, ["a", "\u0301", "\u034f", "张", "\ud835\udc1a", ","], {
      maxPieces: 40,
      pieceShare: 0.3,
    });
    const problem = usernameProblem(text);
    assert.ok(problem === undefined || typeof problem === "string");
    assert.equal(typeof usernameSkeleton(text), "string");
    assert.equal(typeof normalizeUsername(text), "string");
  }
});
