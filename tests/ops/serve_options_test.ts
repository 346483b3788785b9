import assert from "node:assert/strict";
import { runP2p } from "../support/proc.ts";

Deno.test("p2p serve refuses bad --turn and --metrics options with a clear message (exit 2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-serve-options-" });
  try {
    await Deno.writeTextFile(`${dir}/empty`, "\n");
    const cases: [string[], RegExp][] = [
      [["--turn", "turn:192.0.2.7:3478"], /--turn and --turn-secret-file go together/],
      [
        ["--turn", "stun:x", "--turn-secret-file", `${dir}/empty`],
        /--turn: "stun:x" is not a TURN/,
      ],
      [["--turn", "turn:192.0.2.7", "--turn-secret-file", `${dir}/none`], /cannot read/],
      [["--turn", "turn:192.0.2.7", "--turn-secret-file", `${dir}/empty`], /empty first line/],
      [["--metrics", "localhost:9464"], /--metrics must be HOST:PORT or PORT/],
    ];
    const results = await Promise.all(cases.map(([args]) => runP2p(["serve", ...args])));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, cases[i][1]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
