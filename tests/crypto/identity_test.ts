import assert from "node:assert/strict";
import { KnownPeers } from "../../lib/crypto/known_peers.ts";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  decodeKey,
  defaultConfigDir,
  encodeKey,
  fingerprint,
  fromHex,
  type Identity,
  IdentityError,
  loadOrCreateIdentity,
  openUserDir,
  safetyNumber,
  toHex,
  userDir,
  userDirName,
} from "../../lib/crypto/identity.ts";
import { prng } from "../support/prng.ts";

const POSIX = Deno.build.os !== "windows";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p_identity_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function modeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

Deno.test("identity: created on first use with 0600 file and 0700 dirs, then reloaded", async () => {
  await withTempDir(async (configDir) => {
    const first = await loadOrCreateIdentity({ username: "alice", configDir });
    assert.equal(first.created, true);
    assert.equal(first.username, "alice");
    assert.equal(first.path, join(configDir, "users", "alice", "identity.json"));
    assert.equal(first.dir, userDir(configDir, "alice"));
    assert.deepEqual(x25519.getPublicKey(first.secretKey), first.publicKey);
    if (POSIX) {
      assert.equal(await modeOf(first.path), 0o600);
      assert.equal(await modeOf(first.dir), 0o700);
      assert.equal(await modeOf(join(configDir, "users")), 0o700);
    }
    const data = JSON.parse(await Deno.readTextFile(first.path));
    assert.deepEqual(Object.keys(data).sort(), ["publicKey", "secretKey", "username", "version"]);
    assert.equal(data.publicKey, encodeKey(first.publicKey));
    // No temporary files left behind.
    assert.deepEqual([...Deno.readDirSync(first.dir)].map((e) => e.name), ["identity.json"]);

    const again = await loadOrCreateIdentity({ username: "alice", configDir });
    assert.equal(again.created, false);
    assert.deepEqual(again.publicKey, first.publicKey);
    assert.deepEqual(again.secretKey, first.secretKey);
  });
});

Deno.test("identity: one key pair per local username, names encoded safely", async () => {
  await withTempDir(async (configDir) => {
    const names = ["alice", "bob", "../evil", ".", "..", "Zoë 🙂", "a/b\\c", "%41"];
    const ids = await Promise.all(
      names.map((username) => loadOrCreateIdentity({ username, configDir })),
    );
    const keys = new Set(ids.map((id) => encodeKey(id.publicKey)));
    assert.equal(keys.size, names.length);
    const dirs = [...Deno.readDirSync(join(configDir, "users"))].map((e) => e.name).sort();
    assert.equal(dirs.length, names.length);
    for (const d of dirs) assert.match(d, /^[a-z0-9_%-]+$/);
    assert.equal(userDirName("../evil"), "%2e%2e%2fevil");
    assert.equal(userDirName("%41"), "%2541");
    assert.equal(userDirName("Zoë 🙂"), "%5ao%c3%ab%20%f0%9f%99%82");
    assert.deepEqual([...Deno.readDirSync(configDir)].map((e) => e.name), ["users"]);
  });
});

Deno.test("identity: concurrent first runs agree on one key pair", async () => {
  await withTempDir(async (configDir) => {
    const ids = await Promise.all(
      Array.from({ length: 4 }, () => loadOrCreateIdentity({ username: "alice", configDir })),
    );
    assert.equal(ids.filter((id) => id.created).length, 1);
    for (const id of ids) assert.deepEqual(id.secretKey, ids[0].secretKey);
    assert.deepEqual([...Deno.readDirSync(ids[0].dir)].map((e) => e.name), ["identity.json"]);
  });
});

Deno.test({
  name: "identity: a file readable by others is refused, not replaced",
  ignore: !POSIX,
  fn: async () => {
    await withTempDir(async (configDir) => {
      const id = await loadOrCreateIdentity({ username: "alice", configDir });
      for (const mode of [0o644, 0o640, 0o604, 0o660]) {
        await Deno.chmod(id.path, mode);
        await assert.rejects(
          loadOrCreateIdentity({ username: "alice", configDir }),
          (e) =>
            e instanceof IdentityError && /permissions 6\d\d/.test(e.message) &&
            /chmod 600/.test(e.message),
        );
      }
      await Deno.chmod(id.path, 0o600);
      const again = await loadOrCreateIdentity({ username: "alice", configDir });
      assert.deepEqual(again.secretKey, id.secretKey);
    });
  },
});

Deno.test({
  name: "identity and known peers: a config folder others may write in is refused, as ssh does",
  ignore: !POSIX,
  fn: async () => {
    await withTempDir(async (configDir) => {
      const id = await loadOrCreateIdentity({ username: "alice", configDir });
      for (const folder of [configDir, join(configDir, "users"), id.dir]) {
        for (const mode of [0o777, 0o770, 0o757, 0o720]) {
          await Deno.chmod(folder, mode);
          for (const open of [loadOrCreateIdentity, KnownPeers.open]) {
            await assert.rejects(
              open({ username: "alice", configDir }),
              (e) =>
                e instanceof Error && e.message.includes(`Cannot use ${folder}:`) &&
                e.message.includes(`permissions ${mode.toString(8)}`) &&
                e.message.includes(`chmod go-w ${folder}`),
              `${folder} ${mode.toString(8)}`,
            );
          }
        }
        // Readable by others is not the danger here: only writable is refused.
        await Deno.chmod(folder, 0o755);
        assert.deepEqual(
          (await loadOrCreateIdentity({ username: "alice", configDir })).secretKey,
          id.secretKey,
        );
        await Deno.chmod(folder, 0o700);
      }
    });
  },
});

Deno.test("identity: corrupt files are refused with a clear error", async () => {
  await withTempDir(async (configDir) => {
    const id = await loadOrCreateIdentity({ username: "alice", configDir });
    const good = JSON.parse(await Deno.readTextFile(id.path));
    const other = encodeKey(x25519.getPublicKey(x25519.utils.randomSecretKey()));
    const cases: [string, RegExp][] = [
      ["{not json", /not valid JSON/],
      ["[]", /version/],
      ["42", /not a JSON object/],
      [JSON.stringify({ ...good, version: 2 }), /version 2/],
      [JSON.stringify({ ...good, username: "bob" }), /belongs to "bob"/],
      [JSON.stringify({ ...good, secretKey: "short" }), /not 32 bytes/],
      [JSON.stringify({ ...good, publicKey: undefined }), /missing/],
      [JSON.stringify({ ...good, publicKey: other }), /does not match/],
    ];
    for (const [text, pattern] of cases) {
      await Deno.writeTextFile(id.path, text, { mode: 0o600 });
      await assert.rejects(
        loadOrCreateIdentity({ username: "alice", configDir }),
        (e) => e instanceof IdentityError && pattern.test(e.message),
        text,
      );
    }
  });
});

Deno.test("identity: unusable usernames and I/O failures become IdentityError", async () => {
  await withTempDir(async (configDir) => {
    for (const username of ["", "x".repeat(201), "\ud800"]) {
      await assert.rejects(loadOrCreateIdentity({ username, configDir }), IdentityError);
    }
    // The config dir is a file, so the user dir cannot be created.
    const file = join(configDir, "file");
    await Deno.writeTextFile(file, "");
    await assert.rejects(
      loadOrCreateIdentity({ username: "alice", configDir: file }),
      IdentityError,
    );
  });
});

Deno.test("identity: default config dir follows XDG, then HOME", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(
    defaultConfigDir(env({ XDG_CONFIG_HOME: "/x/cfg", HOME: "/home/a" })),
    join("/x/cfg", "p2p"),
  );
  assert.equal(
    defaultConfigDir(env({ XDG_CONFIG_HOME: "rel", HOME: "/home/a" })),
    join("/home/a", ".config", "p2p"),
  );
  assert.equal(defaultConfigDir(env({ HOME: "/home/a" })), join("/home/a", ".config", "p2p"));
  assert.throws(() => defaultConfigDir(env({})), IdentityError);
});

Deno.test("identity: key text encoding is base64url, canonical and separator-free", () => {
  for (let i = 0; i < 200; i++) {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const text = encodeKey(key);
    assert.match(text, /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(decodeKey(text), key);
  }
  const zero = encodeKey(new Uint8Array(32));
  assert.equal(zero, "A".repeat(43));
  assert.equal(decodeKey("A".repeat(42) + "B"), null); // unused low bits set: not canonical
  for (
    const bad of [
      "",
      "A".repeat(42),
      "A".repeat(44),
      "A".repeat(42) + "=",
      "A".repeat(42) + "+",
      "A,B;C",
    ]
  ) {
    assert.equal(decodeKey(bad), null, bad);
  }
  assert.throws(() => encodeKey(new Uint8Array(31)), RangeError);
  assert.equal(toHex(new Uint8Array([0, 15, 255])), "000fff");
  assert.deepEqual(fromHex("000FfF"), new Uint8Array([0, 15, 255]));
  assert.equal(fromHex("abc"), null);
  assert.equal(fromHex("zz"), null);
});

Deno.test("identity: fingerprint is 8 groups of 4 hex of SHA-256", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const fp = fingerprint(key);
  assert.match(fp, /^[0-9a-f]{4}( [0-9a-f]{4}){7}$/);
  assert.equal(fp.replaceAll(" ", ""), toHex(sha256(key)).slice(0, 32));
  assert.notEqual(fingerprint(new Uint8Array(32)), fingerprint(new Uint8Array(32).fill(1)));
});

Deno.test("identity: safety number is symmetric and changes with any name or key", () => {
  const a = crypto.getRandomValues(new Uint8Array(32));
  const b = crypto.getRandomValues(new Uint8Array(32));
  const n = safetyNumber("alice", a, "bob", b);
  assert.match(n, /^\d{5}( \d{5}){5}$/);
  assert.equal(safetyNumber("bob", b, "alice", a), n);
  assert.equal(safetyNumber("alice", a, "bob", b), n);
  const variants = [
    safetyNumber("alice", a, "bob", a),
    safetyNumber("alice", b, "bob", a),
    safetyNumber("alicf", a, "bob", b),
    safetyNumber("alice", a, "carol", b),
    safetyNumber("alice", crypto.getRandomValues(new Uint8Array(32)), "bob", b),
  ];
  for (const v of variants) assert.notEqual(v, n);
  // Same name on both sides (two devices of one user) is still symmetric.
  assert.equal(safetyNumber("x", a, "x", b), safetyNumber("x", b, "x", a));
  assert.throws(() => safetyNumber("a", new Uint8Array(3), "b", b), RangeError);
});

/** Random usernames: ASCII of both cases, separators, and non-ASCII letters with case. */
function randomNames(seed: number, count: number): string[] {
  const rand = prng(seed);
  const alphabet = [...'aAbBzZ09-_.%~ ,/\\:*?"<>|', "é", "É", "ß", "İ", "ı", "Σ", "σ", "ς", "🙂"];
  return Array.from({ length: count }, () => {
    const length = 1 + Math.floor(rand() * 8);
    return Array.from({ length }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
  });
}

/** Every way of writing `name`'s ASCII letters in upper or lower case. */
function caseVariants(name: string): string[] {
  let variants = [""];
  for (const c of name) {
    const forms = new Set([c.toLowerCase(), c.toUpperCase()]);
    variants = variants.flatMap((v) => [...forms].map((f) => v + f));
  }
  return variants;
}

Deno.test("identity: directory names are injective, lowercase, and never collide ignoring case", () => {
  const names = new Set([
    ...caseVariants("bob"),
    ...caseVariants("Zoë"),
    ...randomNames(0x1d, 3000),
    "con",
    "CON",
    "nul",
    "com1",
    "lpt9",
    "aux",
    "prn",
    "console",
    ".",
    "..",
  ]);
  // A case-insensitive file system, simulated: one directory per case-folded name.
  const folded = new Map<string, string>();
  for (const name of names) {
    const dir = userDirName(name);
    assert.match(dir, /^[a-z0-9_%-]+$/, name);
    assert.equal(decodeURIComponent(dir), name, "the name can be read back");
    assert.doesNotMatch(dir, /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i, name);
    const key = dir.toLowerCase();
    assert.equal(folded.get(key), undefined, `${name} and ${folded.get(key)} share ${dir}`);
    folded.set(key, name);
  }
  assert.equal(userDirName("Bob"), "%42ob");
  assert.equal(userDirName("bob"), "bob");
  assert.equal(userDirName("con"), "co%6e");
  assert.equal(userDirName("com1"), "com%31");
});

/** Creates `username`'s identity, then renames its directory to `legacy`, the earlier layout. */
async function legacyIdentity(
  configDir: string,
  username: string,
  legacy: string,
): Promise<Identity> {
  const id = await loadOrCreateIdentity({ username, configDir });
  await Deno.rename(id.dir, join(configDir, "users", legacy));
  return id;
}

function listUsers(configDir: string): string[] {
  return [...Deno.readDirSync(join(configDir, "users"))].map((e) => e.name).sort();
}

Deno.test("identity: a directory of the earlier layout is moved on first use, keeping the key", async () => {
  await withTempDir(async (configDir) => {
    const cases: [string, string][] = [["Bob", "Bob"], ["Zoë", "Zo%C3%AB"], ["con", "con"]];
    const before: Identity[] = [];
    for (const [username, legacy] of cases) {
      before.push(await legacyIdentity(configDir, username, legacy));
    }
    assert.deepEqual(listUsers(configDir), ["Bob", "Zo%C3%AB", "con"]);
    // Concurrent first runs of the same user agree, whoever moves the directory.
    const ids = await Promise.all(
      [0, 1, 2].flatMap(() =>
        cases.map(([username]) => loadOrCreateIdentity({ username, configDir }))
      ),
    );
    for (const [i, id] of ids.entries()) {
      const old = before[i % cases.length];
      assert.equal(id.created, false, id.username);
      assert.deepEqual(id.secretKey, old.secretKey);
      assert.equal(id.dir, userDir(configDir, id.username));
    }
    assert.deepEqual(listUsers(configDir), ["%5ao%c3%ab", "%42ob", "co%6e"].sort());
    assert.equal(await openUserDir(configDir, "Bob"), userDir(configDir, "Bob"));
  });
});

Deno.test("identity: an earlier directory that a case-insensitive system would give bob is Bob's", async () => {
  await withTempDir(async (configDir) => {
    const bob = await legacyIdentity(configDir, "Bob", "Bob");
    // On macOS `users/bob` would open `users/Bob`: it is moved to Bob's current name first.
    const lower = await loadOrCreateIdentity({ username: "bob", configDir });
    assert.equal(lower.created, true);
    assert.deepEqual(listUsers(configDir), ["%42ob", "bob"]);
    const upper = await loadOrCreateIdentity({ username: "Bob", configDir });
    assert.equal(upper.created, false);
    assert.deepEqual(upper.secretKey, bob.secretKey);
    assert.notDeepEqual(lower.secretKey, upper.secretKey);
  });
});

Deno.test("identity: the current directory wins over an earlier one, which is left alone", async () => {
  await withTempDir(async (configDir) => {
    const old = await legacyIdentity(configDir, "Bob", "Bob");
    const current = await loadOrCreateIdentity({ username: "Bob", configDir });
    // A stale copy of the earlier layout reappears (restored from a backup, say).
    await Deno.mkdir(join(configDir, "users", "Bob"));
    const again = await loadOrCreateIdentity({ username: "Bob", configDir });
    assert.deepEqual(again.secretKey, current.secretKey);
    assert.deepEqual(current.secretKey, old.secretKey);
    assert.deepEqual(listUsers(configDir), ["%42ob", "Bob"]);
    // A name that only looks like the earlier layout (it would be `Eve`) is not taken for it.
    await Deno.mkdir(join(configDir, "users", "%45VE"));
    assert.equal(await openUserDir(configDir, "Eve"), join(configDir, "users", "%45ve"));
    assert.deepEqual(listUsers(configDir), ["%42ob", "%45VE", "Bob"]);
  });
});
