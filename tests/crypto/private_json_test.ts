import assert from "node:assert/strict";
import {
  looseFolderMode,
  readPrivateJson,
  writePrivateJson,
} from "../../lib/crypto/private_json.ts";

const errors = {
  loose: (mode: string) => new Error(`loose ${mode}`),
  corrupt: (why: string) => new Error(`corrupt: ${why}`),
};

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("private JSON: written 0600 in a 0700 folder, read back; a missing file is null", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/sub/state.json`;
    assert.equal(await readPrivateJson(path, 1, errors), null);
    assert.equal(await writePrivateJson(path, { version: 1, a: [1, 2] }, { replace: true }), true);
    assert.deepEqual(await readPrivateJson(path, 1, errors), { version: 1, a: [1, 2] });
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(`${dir}/sub`)).mode! & 0o777, 0o700);
    }
    // No temporary file is left behind.
    assert.deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), ["state.json"]);
  });
});

Deno.test("private JSON: replace: false never replaces an existing file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.json`;
    assert.equal(await writePrivateJson(path, { version: 1, n: 1 }, { replace: false }), true);
    assert.equal(await writePrivateJson(path, { version: 1, n: 2 }, { replace: false }), false);
    assert.deepEqual(await readPrivateJson(path, 1, errors), { version: 1, n: 1 });
    assert.equal(await writePrivateJson(path, { version: 1, n: 3 }, { replace: true }), true);
    assert.deepEqual(await readPrivateJson(path, 1, errors), { version: 1, n: 3 });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["state.json"]);
  });
});

Deno.test("private JSON: loose permissions, bad JSON and other versions are refused", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.json`;
    await writePrivateJson(path, { version: 1 }, { replace: true });
    if (Deno.build.os !== "windows") {
      await Deno.chmod(path, 0o640);
      await assert.rejects(readPrivateJson(path, 1, errors), /loose 640/);
      await Deno.chmod(path, 0o600);
    }
    for (
      const [text, pattern] of [
        ["{", /corrupt: it is not valid JSON/],
        ["7", /corrupt: it is not a JSON object/],
        ['{"version":2}', /corrupt: version 2 is not 1/],
      ] as const
    ) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(readPrivateJson(path, 1, errors), pattern);
    }
  });
});

Deno.test({
  name: "private JSON: a folder group or others may write in is loose; readable is fine",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      assert.equal(await looseFolderMode(dir), undefined);
      assert.equal(await looseFolderMode(`${dir}/missing`), undefined);
      await Deno.chmod(dir, 0o755);
      assert.equal(await looseFolderMode(dir), undefined);
      for (const mode of [0o777, 0o775, 0o757, 0o730]) {
        await Deno.chmod(dir, mode);
        assert.equal(await looseFolderMode(dir), mode.toString(8));
      }
      await Deno.chmod(dir, 0o700);
    });
  },
});
