import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { encodeKey, IdentityError } from "../../lib/crypto/identity.ts";
import { KnownPeers, KnownPeersError, knownPeersPath } from "../../lib/crypto/known_peers.ts";

const POSIX = Deno.build.os !== "windows";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p_known_peers_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

Deno.test("known peers: new, pin, match, changed, trust", async () => {
  await withTempDir(async (configDir) => {
    let clock = Date.UTC(2025, 0, 31, 12);
    const peers = await KnownPeers.open({ username: "alice", configDir, now: () => clock });
    assert.equal(peers.path, join(configDir, "users", "alice", "known_peers.json"));
    assert.equal(peers.check("bob", key(1)), "new");
    assert.equal(peers.get("bob"), undefined);

    await peers.pin("bob", key(1));
    assert.equal(peers.check("bob", key(1)), "match");
    assert.equal(peers.check("bob", key(2)), "changed");
    assert.equal(peers.check("carol", key(1)), "new");
    assert.deepEqual(peers.get("bob"), { name: "bob", publicKey: key(1), since: clock });

    clock += 1000;
    await peers.pin("bob", key(1)); // same key: no change
    assert.equal(peers.get("bob")!.since, clock - 1000);
    await assert.rejects(peers.pin("bob", key(2)), KnownPeersError);
    assert.equal(peers.check("bob", key(1)), "match");

    await peers.trust("bob", key(2));
    assert.equal(peers.check("bob", key(2)), "match");
    assert.equal(peers.check("bob", key(1)), "changed");
    assert.equal(peers.get("bob")!.since, clock);
    await assert.rejects(peers.trust("bob", new Uint8Array(31)), KnownPeersError);
  });
});

Deno.test("known peers: persisted atomically with mode 0600 in the documented format", async () => {
  await withTempDir(async (configDir) => {
    const peers = await KnownPeers.open({ username: "alice", configDir, now: () => 0 });
    // Not written until something is pinned.
    await assert.rejects(Deno.stat(peers.path), Deno.errors.NotFound);
    // Overlapping saves: the file must end with every pin.
    const names = ["bob", "carol", "__proto__", "constructor", 'dave, the "great"'];
    await Promise.all(names.map((name, i) => peers.pin(name, key(i + 1))));
    if (POSIX) {
      assert.equal((await Deno.stat(peers.path)).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(dirname(peers.path))).mode! & 0o777, 0o700);
    }
    assert.deepEqual([...Deno.readDirSync(dirname(peers.path))].map((e) => e.name), [
      "known_peers.json",
    ]);
    const data = JSON.parse(await Deno.readTextFile(peers.path));
    assert.equal(data.version, 1);
    assert.deepEqual(data.peers[0], {
      name: "bob",
      key: encodeKey(key(1)),
      since: "1970-01-01T00:00:00.000Z",
    });

    const reopened = await KnownPeers.open({ username: "alice", configDir });
    names.forEach((name, i) => assert.equal(reopened.check(name, key(i + 1)), "match", name));
    assert.equal(reopened.check("toString", key(1)), "new");
    // Stores are per local user.
    const other = await KnownPeers.open({ username: "bob", configDir });
    assert.equal(other.check("bob", key(1)), "new");
  });
});

Deno.test("known peers: corrupt stores are refused, never silently reset", async () => {
  await withTempDir(async (configDir) => {
    const path = knownPeersPath(configDir, "alice");
    await Deno.mkdir(dirname(path), { recursive: true });
    const entry = { name: "bob", key: encodeKey(key(1)), since: "2025-01-01T00:00:00.000Z" };
    const cases = [
      "",
      "{",
      "null",
      JSON.stringify({ version: 2, peers: [] }),
      JSON.stringify({ version: 1 }),
      JSON.stringify({ version: 1, peers: [null] }),
      JSON.stringify({ version: 1, peers: [{ ...entry, key: "bad" }] }),
      JSON.stringify({ version: 1, peers: [{ ...entry, name: 5 }] }),
      JSON.stringify({ version: 1, peers: [{ ...entry, since: "yesterday" }] }),
      JSON.stringify({ version: 1, peers: [entry, entry] }),
    ];
    for (const text of cases) {
      await Deno.writeTextFile(path, text, { mode: 0o600 });
      await assert.rejects(
        KnownPeers.open({ username: "alice", configDir }),
        KnownPeersError,
        text,
      );
      assert.equal(await Deno.readTextFile(path), text);
    }
    await Deno.writeTextFile(path, JSON.stringify({ version: 1, peers: [entry] }));
    const peers = await KnownPeers.open({ username: "alice", configDir });
    assert.equal(peers.get("bob")!.since, Date.UTC(2025, 0, 1));
  });
});

Deno.test({
  name: "known peers: a store writable or readable by others is refused",
  ignore: !POSIX,
  fn: async () => {
    await withTempDir(async (configDir) => {
      const peers = await KnownPeers.open({ username: "alice", configDir });
      await peers.pin("bob", key(1));
      await Deno.chmod(peers.path, 0o666);
      await assert.rejects(
        KnownPeers.open({ username: "alice", configDir }),
        (e) => e instanceof KnownPeersError && /permissions 666/.test(e.message),
      );
      await Deno.chmod(peers.path, 0o600);
      assert.equal(
        (await KnownPeers.open({ username: "alice", configDir })).check("bob", key(1)),
        "match",
      );
    });
  },
});

Deno.test("known peers: save failures and bad usernames are reported", async () => {
  await withTempDir(async (configDir) => {
    await assert.rejects(KnownPeers.open({ username: "", configDir }), IdentityError);
    const peers = await KnownPeers.open({ username: "alice", configDir });
    // The user dir path is now taken by a file, so saving cannot create the store...
    await Deno.mkdir(join(configDir, "users"));
    await Deno.writeTextFile(join(configDir, "users", "alice"), "");
    await assert.rejects(peers.pin("bob", key(1)), KnownPeersError);
    // ...and neither can opening read it.
    await assert.rejects(KnownPeers.open({ username: "alice", configDir }), KnownPeersError);
    // A later save still runs after a failed one.
    await Deno.remove(join(configDir, "users", "alice"));
    await peers.pin("carol", key(2));
    const reopened = await KnownPeers.open({ username: "alice", configDir });
    assert.equal(reopened.check("carol", key(2)), "match");
    assert.equal(reopened.check("bob", key(1)), "match");
  });
});

Deno.test("known peers: Bob's and bob's stores stay apart, even ignoring case", async () => {
  await withTempDir(async (configDir) => {
    const upper = await KnownPeers.open({ username: "Bob", configDir });
    const lower = await KnownPeers.open({ username: "bob", configDir });
    // A case-insensitive file system (macOS, Windows) would make equal paths one file.
    assert.notEqual(upper.path.toLowerCase(), lower.path.toLowerCase());
    assert.equal(upper.path, join(configDir, "users", "%42ob", "known_peers.json"));
    await upper.pin("carol", key(1));
    await lower.pin("carol", key(2));
    const reopened = await KnownPeers.open({ username: "Bob", configDir });
    assert.equal(reopened.check("carol", key(1)), "match");
    assert.equal(
      (await KnownPeers.open({ username: "bob", configDir })).check("carol", key(2)),
      "match",
    );
  });
});

Deno.test("known peers: a store of the earlier layout is moved and keeps its pins", async () => {
  await withTempDir(async (configDir) => {
    const peers = await KnownPeers.open({ username: "Bob", configDir, now: () => 0 });
    await peers.pin("carol", key(3));
    // Back to the earlier layout, where the directory was named `Bob`.
    await Deno.rename(dirname(peers.path), join(configDir, "users", "Bob"));
    const moved = await KnownPeers.open({ username: "Bob", configDir });
    assert.equal(moved.path, knownPeersPath(configDir, "Bob"));
    assert.deepEqual(moved.get("carol"), { name: "carol", publicKey: key(3), since: 0 });
    assert.deepEqual([...Deno.readDirSync(join(configDir, "users"))].map((e) => e.name), ["%42ob"]);
    if (POSIX) assert.equal((await Deno.stat(moved.path)).mode! & 0o777, 0o600);
  });
});
