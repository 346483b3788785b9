import assert from "node:assert/strict";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { Registry, type RegistryOptions } from "../../lib/coordinator/registry.ts";
import { prng } from "../support/prng.ts";

const CLAIMED: Endpoint = { host: "10.0.0.2", port: 4000 };
const ALICE: Endpoint = { host: "192.0.2.1", port: 4000 };
const ALICE_OTHER_PORT: Endpoint = { host: "192.0.2.1", port: 4001 };
const MALLORY: Endpoint = { host: "198.51.100.9", port: 4000 };
const BOB: Endpoint = { host: "2001:db8::2", port: 5000 };

/** A registry on a fake clock that the test moves by hand. */
function setup(options: Partial<RegistryOptions> = {}): { reg: Registry; clock: { t: number } } {
  const clock = { t: 1_000 };
  const reg = new Registry({ now: () => clock.t, peerTimeoutMs: 45_000, ...options });
  return { reg, clock };
}

function names(users: { name: string }[]): string[] {
  return users.map((u) => u.name);
}

const NOBODY = { admitted: [], refused: [] };

Deno.test("a login is pending until a list fetch from the same IP admits it", () => {
  const { reg, clock } = setup();
  const result = reg.login("alice", CLAIMED, ALICE);
  assert.equal(result.kind, "pending");
  assert.deepEqual(reg.get("alice"), {
    name: "alice",
    skeleton: "alice",
    claimed: CLAIMED,
    observed: ALICE,
    state: "pending",
    lastSeen: 1_000,
    since: 1_000,
  });
  assert.equal(reg.size, 1);
  assert.deepEqual(reg.online(), []);

  assert.deepEqual(reg.admitFrom("203.0.113.1"), NOBODY); // another IP proves nothing
  assert.deepEqual(reg.admitFrom("::ffff:192.0.2.1"), NOBODY); // exact address match only
  assert.equal(reg.get("alice")?.state, "pending");

  clock.t = 3_000;
  // The TCP connection comes from another port of the same host (or NAT): the IP is what counts.
  const { admitted } = reg.admitFrom("192.0.2.1");
  assert.deepEqual(names(admitted), ["alice"]);
  assert.equal(admitted[0].state, "online");
  assert.equal(admitted[0].lastSeen, 3_000);
  assert.equal(admitted[0].since, 1_000);
  assert.deepEqual(names(reg.online()), ["alice"]);
  // A second fetch admits nobody new: the broadcast must not repeat.
  assert.deepEqual(reg.admitFrom("192.0.2.1"), NOBODY);
});

Deno.test("admitFrom admits every pending login from the IP, and only those", () => {
  const { reg } = setup();
  reg.login("alice", CLAIMED, ALICE);
  reg.login("carol", CLAIMED, ALICE_OTHER_PORT); // a second client behind the same NAT
  reg.login("bob", CLAIMED, BOB);
  assert.deepEqual(names(reg.admitFrom("192.0.2.1").admitted), ["alice", "carol"]);
  assert.equal(reg.get("bob")?.state, "pending");
  assert.equal(reg.pendingCount, 1);
  assert.deepEqual(names(reg.admitFrom("2001:db8::2").admitted), ["bob"]);
  assert.equal(reg.pendingCount, 0);
  assert.equal(reg.onlineCount, 3);
  assert.deepEqual(names(reg.online()), ["alice", "carol", "bob"]);
});

Deno.test("a name held from another endpoint is rejected", () => {
  const { reg } = setup();
  reg.login("alice", CLAIMED, ALICE);
  for (const from of [MALLORY, ALICE_OTHER_PORT]) {
    assert.deepEqual(reg.login("alice", CLAIMED, from), {
      kind: "rejected",
      reason: 'name "alice" is already in use',
      why: "in-use",
    });
  }
  reg.admitFrom("192.0.2.1");
  assert.deepEqual(reg.login("alice", { host: "10.9.9.9", port: 1 }, MALLORY), {
    kind: "rejected",
    reason: 'name "alice" is already in use',
    why: "in-use",
  });
  assert.deepEqual(reg.get("alice")?.observed, ALICE);
  assert.deepEqual(reg.get("alice")?.claimed, CLAIMED);
  assert.equal(reg.size, 1);
});

Deno.test("a login again from the same endpoint refreshes the entry", () => {
  const { reg, clock } = setup();
  reg.login("alice", CLAIMED, ALICE);
  clock.t = 2_000;
  const pending = reg.login("alice", { host: "10.0.0.3", port: 4000 }, ALICE);
  assert.equal(pending.kind, "refreshed");
  assert.equal(reg.get("alice")?.state, "pending"); // still needs its list fetch
  assert.deepEqual(reg.get("alice")?.claimed, { host: "10.0.0.3", port: 4000 });
  assert.equal(reg.get("alice")?.lastSeen, 2_000);
  assert.equal(reg.get("alice")?.since, 1_000);

  reg.admitFrom("192.0.2.1");
  clock.t = 5_000;
  const online = reg.login("alice", CLAIMED, ALICE);
  assert.equal(online.kind, "refreshed");
  if (online.kind === "refreshed") assert.equal(online.user, reg.get("alice"));
  assert.equal(reg.get("alice")?.state, "online"); // a lost Accept does not demote the user
  assert.equal(reg.get("alice")?.lastSeen, 5_000);
  assert.equal(reg.size, 1);
});

Deno.test("logout removes only when it comes from the owner", () => {
  const { reg } = setup();
  reg.login("alice", CLAIMED, ALICE);
  reg.admitFrom("192.0.2.1");

  const forged = reg.logout("alice", MALLORY);
  assert.equal(forged.kind, "forged");
  if (forged.kind === "forged") assert.deepEqual(forged.owner.observed, ALICE);
  assert.equal(reg.logout("alice", ALICE_OTHER_PORT).kind, "forged");
  assert.equal(reg.get("alice")?.state, "online");

  assert.deepEqual(reg.logout("nobody", ALICE), { kind: "unknown" });

  const removed = reg.logout("alice", ALICE);
  assert.equal(removed.kind, "removed");
  if (removed.kind === "removed") assert.equal(removed.user.state, "online");
  assert.equal(reg.get("alice"), undefined);
  assert.equal(reg.size, 0);
  assert.deepEqual(reg.logout("alice", ALICE), { kind: "unknown" });
  // The name is free again, for anyone.
  assert.equal(reg.login("alice", CLAIMED, MALLORY).kind, "pending");
});

Deno.test("logout of a pending login reports it as pending", () => {
  const { reg } = setup();
  reg.login("alice", CLAIMED, ALICE);
  const removed = reg.logout("alice", ALICE);
  assert.equal(removed.kind, "removed");
  // The coordinator broadcasts only online users' departures.
  if (removed.kind === "removed") assert.equal(removed.user.state, "pending");
});

Deno.test("a heartbeat from anyone but the owner is ignored", () => {
  const { reg, clock } = setup();
  reg.login("alice", CLAIMED, ALICE);
  reg.admitFrom("192.0.2.1");
  clock.t = 30_000;
  assert.deepEqual(reg.heartbeat("alice", MALLORY), { kind: "unknown" });
  assert.deepEqual(reg.heartbeat("alice", ALICE_OTHER_PORT), { kind: "unknown" });
  assert.deepEqual(reg.heartbeat("nobody", ALICE), { kind: "unknown" });
  assert.equal(reg.get("alice")?.lastSeen, 1_000);

  // So Mallory's heartbeats cannot keep Alice alive past her timeout.
  clock.t = 1_000 + 45_001;
  assert.deepEqual(names(reg.expire().expired), ["alice"]);
});

Deno.test("a heartbeat from the owner keeps the user online", () => {
  const { reg, clock } = setup();
  reg.login("alice", CLAIMED, ALICE);
  reg.admitFrom("192.0.2.1");
  for (let t = 10_000; t <= 200_000; t += 10_000) {
    clock.t = t;
    const beat = reg.heartbeat("alice", ALICE);
    const user = beat.kind === "alive" ? beat.user : undefined;
    assert.equal(user?.name, "alice");
    assert.equal(user?.lastSeen, t);
    assert.deepEqual(reg.expire(), { expired: [], abandoned: [] });
  }
  assert.deepEqual(names(reg.online()), ["alice"]);
});

Deno.test("heardFrom finds an online user at its own endpoint and notes it as heard from", () => {
  const { reg, clock } = setup();
  reg.login("alice", CLAIMED, ALICE);
  clock.t = 2_000;
  assert.equal(reg.heardFrom("alice", ALICE), undefined, "pending: not yet");
  assert.equal(reg.get("alice")?.lastSeen, 1_000);
  reg.admitFrom("192.0.2.1");
  clock.t = 40_000;
  assert.equal(reg.heardFrom("alice", ALICE_OTHER_PORT), undefined, "another endpoint");
  assert.equal(reg.heardFrom("alice", MALLORY), undefined);
  assert.equal(reg.heardFrom("bob", ALICE), undefined);
  assert.equal(reg.get("alice")?.lastSeen, 2_000, "nothing noted for the others");
  assert.equal(reg.heardFrom("alice", { ...ALICE })?.name, "alice");
  assert.equal(reg.get("alice")?.lastSeen, 40_000);
  clock.t = 80_000; // 40 s after: within the 45 s timeout only thanks to heardFrom
  assert.deepEqual(reg.expire(), { expired: [], abandoned: [] });
});

Deno.test("silent online users expire after the peer timeout, not before", () => {
  const { reg, clock } = setup();
  reg.login("alice", CLAIMED, ALICE);
  reg.login("bob", CLAIMED, BOB);
  reg.admitFrom("192.0.2.1");
  reg.admitFrom("2001:db8::2");
  clock.t = 21_000;
  reg.heartbeat("bob", BOB);

  clock.t = 1_000 + 45_000; // exactly the timeout: still alive
  assert.deepEqual(reg.expire(), { expired: [], abandoned: [] });
  clock.t = 1_000 + 45_001;
  const { expired, abandoned } = reg.expire();
  assert.deepEqual(names(expired), ["alice"]);
  assert.equal(expired[0].state, "online");
  assert.deepEqual(abandoned, []);
  assert.equal(reg.get("alice"), undefined);
  assert.deepEqual(names(reg.online()), ["bob"]);

  clock.t = 21_000 + 45_001;
  assert.deepEqual(names(reg.expire().expired), ["bob"]);
  assert.equal(reg.size, 0);
});

Deno.test("pending logins never confirmed are abandoned after the pending timeout", () => {
  const { reg, clock } = setup({ pendingTimeoutMs: 5_000 });
  reg.login("forged", CLAIMED, MALLORY); // never fetches the list: never online, never broadcast
  reg.login("alice", CLAIMED, ALICE);
  clock.t = 3_000;
  reg.admitFrom("192.0.2.1");

  clock.t = 1_000 + 5_000;
  assert.deepEqual(reg.expire(), { expired: [], abandoned: [] });
  clock.t = 1_000 + 5_001;
  const { expired, abandoned } = reg.expire();
  assert.deepEqual(expired, []);
  assert.deepEqual(names(abandoned), ["forged"]);
  assert.equal(reg.get("forged"), undefined);
  assert.deepEqual(names(reg.online()), ["alice"]); // online users use the peer timeout
  // The abandoned name is free again.
  assert.equal(reg.login("forged", CLAIMED, ALICE).kind, "pending");
});

Deno.test("the pending timeout defaults to 10 s", () => {
  const { reg, clock } = setup();
  reg.login("alice", CLAIMED, ALICE);
  clock.t = 1_000 + 10_000;
  assert.deepEqual(reg.expire().abandoned, []);
  clock.t = 1_000 + 10_001;
  assert.deepEqual(names(reg.expire().abandoned), ["alice"]);
});

Deno.test("maxUsers caps online users; a login finding the server full is refused", () => {
  const { reg } = setup({ maxUsers: 2 });
  assert.equal(reg.login("a", CLAIMED, ALICE).kind, "pending");
  reg.admitFrom("192.0.2.1");
  assert.equal(reg.login("b", CLAIMED, BOB).kind, "pending");
  // Pending logins do not count: the server is not full yet.
  assert.equal(reg.login("c", CLAIMED, MALLORY).kind, "pending");
  reg.admitFrom("2001:db8::2");
  assert.deepEqual(reg.login("d", CLAIMED, { host: "203.0.113.4", port: 1 }), {
    kind: "rejected",
    reason: "the server is full",
    why: "full",
  });
  assert.equal(reg.get("d"), undefined);
  // A pending login admitted once the server is full is forgotten, not admitted.
  const { admitted, refused } = reg.admitFrom("198.51.100.9");
  assert.deepEqual(admitted, []);
  assert.deepEqual(refused.map(({ user, why }) => [user.name, why]), [["c", "full"]]);
  assert.equal(reg.get("c"), undefined);
  // Users already in may still refresh; a taken name is reported as taken, not as full.
  assert.equal(reg.login("a", CLAIMED, ALICE).kind, "refreshed");
  assert.deepEqual(reg.login("b", CLAIMED, MALLORY), {
    kind: "rejected",
    reason: 'name "b" is already in use',
    why: "in-use",
  });
  reg.logout("b", BOB);
  assert.equal(reg.login("c", CLAIMED, MALLORY).kind, "pending");
});

Deno.test("the default maxUsers is 20,000", () => {
  const { reg } = setup();
  for (let i = 0; i < 20_000; i++) {
    reg.login(`u${i}`, CLAIMED, { host: `10.${i >> 8}.${i & 255}.1`, port: 1 });
    reg.admitFrom(`10.${i >> 8}.${i & 255}.1`);
  }
  assert.equal(reg.onlineCount, 20_000);
  assert.deepEqual(reg.login("one more", CLAIMED, MALLORY), {
    kind: "rejected",
    reason: "the server is full",
    why: "full",
  });
});

Deno.test("beyond maxPending the oldest pending login is forgotten, never an online user", () => {
  const { reg } = setup({ maxPending: 3 });
  reg.login("alice", CLAIMED, ALICE);
  reg.admitFrom("192.0.2.1");
  for (const i of [1, 2, 3]) {
    assert.equal(reg.login(`f${i}`, CLAIMED, { host: `203.0.113.${i}`, port: 9 }).kind, "pending");
  }
  const result = reg.login("bob", CLAIMED, BOB);
  assert.equal(result.kind, "pending");
  assert.equal(result.kind === "pending" && result.evicted?.name, "f1");
  assert.equal(reg.get("f1"), undefined);
  assert.equal(reg.pendingCount, 3);
  // The evicted login's address admits nobody; the others still can be admitted.
  assert.deepEqual(reg.admitFrom("203.0.113.1"), NOBODY);
  assert.deepEqual(names(reg.admitFrom("2001:db8::2").admitted), ["bob"]);
  assert.deepEqual(names(reg.online()), ["alice", "bob"]);
});

Deno.test("online() is in order of admission and clear() empties the registry", () => {
  const { reg } = setup();
  reg.login("carol", CLAIMED, BOB);
  reg.login("alice", CLAIMED, ALICE);
  reg.login("pending", CLAIMED, MALLORY);
  reg.admitFrom("192.0.2.1");
  reg.admitFrom("2001:db8::2");
  assert.deepEqual(names(reg.online()), ["alice", "carol"]);
  assert.deepEqual(names(reg.clear()), ["alice", "carol"]);
  assert.equal(reg.size, 0);
  assert.equal(reg.pendingCount, 0);
  assert.deepEqual(reg.online(), []);
  assert.equal(reg.get("pending"), undefined);
  assert.equal(text(reg.listParts()), "");
});

function text(parts: Uint8Array[]): string {
  return parts.map((part) => new TextDecoder().decode(part)).join("");
}

Deno.test("listParts follows joins, leaves and moves, and never changes bytes it handed out", () => {
  // Many names from one address: no name quota in the way.
  const { reg } = setup({ namesPerAddress: 1_000, newNamesPerAddressPerDay: 1_000 });
  const ext = { key: "k".repeat(43), secret: "s".repeat(22) };
  assert.equal(text(reg.listParts()), "");
  reg.login("alice", CLAIMED, ALICE, ext);
  reg.admitFrom("192.0.2.1");
  const first = reg.listParts();
  assert.equal(text(first), "alice,192.0.2.1:4000;");
  reg.login("bob", CLAIMED, BOB);
  assert.equal(text(reg.listParts()), "alice,192.0.2.1:4000;", "pending users are not listed");
  reg.admitFrom("2001:db8::2");
  const second = reg.listParts();
  assert.equal(text(second), "alice,192.0.2.1:4000;bob,[2001:db8::2]:5000;");
  // Many joins grow the buffer; what was handed out stays intact.
  for (let i = 0; i < 500; i++) {
    reg.login(`u${i}`, CLAIMED, { host: "203.0.113.5", port: 1000 + i });
  }
  reg.admitFrom("203.0.113.5");
  const big = text(reg.listParts());
  assert.equal(big.split(";").length - 1, 502);
  assert.ok(big.endsWith("u499,203.0.113.5:1499;"));
  assert.equal(text(first), "alice,192.0.2.1:4000;");
  assert.equal(text(second), "alice,192.0.2.1:4000;bob,[2001:db8::2]:5000;");
  // A move changes the entry in place; a logout removes it.
  reg.heartbeat("alice", ALICE_OTHER_PORT, ext.secret);
  reg.logout("bob", BOB);
  for (let i = 0; i < 500; i++) reg.logout(`u${i}`, { host: "203.0.113.5", port: 1000 + i });
  assert.equal(text(reg.listParts()), "alice,192.0.2.1:4001;");
  assert.equal(text(second), "alice,192.0.2.1:4000;bob,[2001:db8::2]:5000;");
  // The body is exactly what the codec's list holds, without its "end".
  reg.login("张伟", CLAIMED, MALLORY);
  reg.admitFrom("198.51.100.9");
  assert.equal(text(reg.listParts()) + "end", "alice,192.0.2.1:4001;张伟,198.51.100.9:4000;end");
});

Deno.test("a leave re-encodes only its part of a long list, and parts merge as they shrink", () => {
  const { reg } = setup({ namesPerAddress: 10_000, newNamesPerAddressPerDay: 10_000 });
  const host = "203.0.113.5";
  const at = (i: number) => ({ host, port: 1000 + i });
  for (let i = 0; i < 10_000; i++) {
    reg.login(`u${i}`, CLAIMED, at(i));
    if (i % 1000 === 999) reg.admitFrom(host); // fewer pending at once than the limit
  }
  const full = reg.listParts();
  const expected = Array.from({ length: 10_000 }, (_, i) => `u${i},${host}:${1000 + i};`);
  // (assert.ok: a failing assert.equal would print both 300 KB lists)
  assert.ok(text(full) === expected.join(""), "the list, in order of admission");
  assert.ok(full.length > 4 && full.every((part) => part.length <= 33 * 1024), "parts of ~32 KB");
  // One leave: one part is new, the others are the very same bytes.
  reg.logout("u5000", at(5000));
  const after = reg.listParts();
  assert.ok(text(after) === expected.filter((_, i) => i !== 5000).join(""), "u5000 is gone");
  const fresh = after.filter((part) => !full.some((old) => old.buffer === part.buffer));
  assert.equal(fresh.length, 1);
  assert.ok(text(full) === expected.join(""), "bytes handed out never change");
  // Most leave: what is left is in few parts again.
  for (let i = 0; i < 10_000; i++) if (i % 100 !== 0 && i !== 5000) reg.logout(`u${i}`, at(i));
  const sparse = reg.listParts();
  assert.ok(text(sparse) === expected.filter((_, i) => i % 100 === 0 && i !== 5000).join(""));
  assert.ok(sparse.length <= 2, `${sparse.length} parts for 99 entries`);
});

Deno.test("the holder's secret moves a name to a new endpoint; anyone else is still refused", () => {
  const { reg } = setup();
  const ext = { key: "k".repeat(43), secret: "s".repeat(22) };
  reg.login("alice", CLAIMED, ALICE, ext);
  reg.admitFrom("192.0.2.1");
  // Without the secret (or with another), the name stays where it is.
  assert.equal(reg.login("alice", CLAIMED, MALLORY).kind, "rejected");
  assert.equal(
    reg.login("alice", CLAIMED, MALLORY, { ...ext, secret: "x".repeat(22) }).kind,
    "rejected",
  );
  assert.deepEqual(reg.heartbeat("alice", MALLORY, "x".repeat(22)), { kind: "unknown" });
  // A heartbeat with the secret from a new mapping rebinds, and says from where.
  const moved = reg.heartbeat("alice", ALICE_OTHER_PORT, ext.secret);
  assert.deepEqual(moved.kind === "alive" && moved.previous, ALICE);
  assert.deepEqual(reg.get("alice")?.observed, ALICE_OTHER_PORT);
  assert.equal(reg.get("alice")?.state, "online");
  // So does a login with the secret.
  const r = reg.login("alice", CLAIMED, ALICE, ext);
  assert.equal(r.kind, "rebound");
  assert.deepEqual(r.kind === "rebound" && r.previous, ALICE_OTHER_PORT);
  assert.equal(reg.get("alice")?.key, ext.key);
});

Deno.test("hasSeedOnlyAt: a seed-only user, pending or online, at that IP address", () => {
  const { reg, clock } = setup({ pendingTimeoutMs: 1_000 });
  const ext = { key: "k".repeat(43), secret: "s".repeat(22) };
  assert.equal(reg.hasSeedOnlyAt("192.0.2.1"), false);
  reg.login("alice", CLAIMED, ALICE, ext);
  assert.equal(reg.hasSeedOnlyAt("192.0.2.1"), false, "a user with a key does not count");
  reg.login("seed", CLAIMED, ALICE_OTHER_PORT);
  assert.equal(reg.hasSeedOnlyAt("192.0.2.1"), true, "pending counts");
  assert.equal(reg.hasSeedOnlyAt("198.51.100.9"), false, "only at its own address");
  reg.admitFrom("192.0.2.1");
  assert.equal(reg.hasSeedOnlyAt("192.0.2.1"), true, "online counts");
  reg.login("seed2", CLAIMED, { host: "192.0.2.1", port: 4002 });
  reg.logout("seed", ALICE_OTHER_PORT);
  assert.equal(reg.hasSeedOnlyAt("192.0.2.1"), true, "one of two left");
  // Logging in again with a key from the same endpoint makes it an extension client.
  reg.login("seed2", CLAIMED, { host: "192.0.2.1", port: 4002 }, ext);
  assert.equal(reg.hasSeedOnlyAt("192.0.2.1"), false);
  // Abandoned and expired users stop counting.
  reg.login("p", CLAIMED, MALLORY);
  clock.t += 2_000;
  reg.expire();
  assert.equal(reg.hasSeedOnlyAt("198.51.100.9"), false);
  reg.login("q", CLAIMED, MALLORY);
  reg.admitFrom("198.51.100.9");
  clock.t += 50_000;
  reg.expire();
  assert.equal(reg.hasSeedOnlyAt("198.51.100.9"), false);
  reg.login("r", CLAIMED, BOB);
  reg.clear();
  assert.equal(reg.hasSeedOnlyAt("2001:db8::2"), false);
});

Deno.test("hasSeedOnlyAt agrees with a scan of every user through random logins and leaves", () => {
  const random = prng(11);
  const int = (n: number) => Math.floor(random() * n);
  const { reg, clock } = setup({ pendingTimeoutMs: 5_000, maxPending: 20, maxUsers: 30 });
  const hosts = ["192.0.2.1", "192.0.2.2", "198.51.100.9", "2001:db8::2"];
  const names = Array.from({ length: 40 }, (_, i) => `u${i}`);
  const secret = (name: string) => name.padEnd(22, "s");
  const ext = (name: string) => ({ key: "k".repeat(43), secret: secret(name) });
  for (let step = 0; step < 3000; step++) {
    const name = names[int(names.length)];
    const at = { host: hosts[int(hosts.length)], port: 4000 + int(3) };
    const r = random();
    if (r < 0.4) reg.login(name, CLAIMED, at, int(2) === 0 ? ext(name) : undefined);
    else if (r < 0.55) reg.admitFrom(hosts[int(hosts.length)]);
    else if (r < 0.7) reg.logout(name, reg.get(name)?.observed ?? at);
    else if (r < 0.85) reg.heartbeat(name, at, secret(name)); // moves a user that has a key
    else {
      clock.t += int(8_000);
      reg.expire();
    }
    for (const host of hosts) {
      const scan = names.some((n) => {
        const user = reg.get(n);
        return user !== undefined && user.key === undefined && user.observed.host === host;
      });
      assert.equal(reg.hasSeedOnlyAt(host), scan, `${host} at step ${step}`);
    }
  }
});

Deno.test("a name that looks like one online is refused; its own holder is not", () => {
  const { reg } = setup();
  reg.login("alice", CLAIMED, ALICE);
  reg.admitFrom("192.0.2.1");
  for (const lookalike of ["\uff41\uff4c\uff49\uff43\uff45", "\u{1d41a}lice", "a1ice"]) {
    const r = reg.login(lookalike, CLAIMED, MALLORY);
    assert.equal(
      r.kind === "rejected" && r.reason,
      `name "${lookalike}" looks like "alice" who is online`,
    );
  }
  assert.equal(reg.login("alice", CLAIMED, ALICE).kind, "refreshed", "the holder itself");
  assert.equal(reg.login("alicé", CLAIMED, MALLORY).kind, "pending", "another letter");
  assert.equal(reg.login("张伟", CLAIMED, BOB).kind, "pending");
  assert.equal(reg.login("张伟伟", CLAIMED, BOB).kind, "pending");
  // Once alice is gone, her lookalike is free.
  reg.logout("alice", ALICE);
  assert.equal(reg.login("\u0430lice", CLAIMED, MALLORY).kind, "pending");
});

Deno.test("a pending lookalike keeps nobody out: the first of two lookalikes to fetch its list is the one", () => {
  const { reg, clock } = setup({ pendingTimeoutMs: 10_000 });
  // A squatter keeps "аlice" (Cyrillic а) pending, from two ports in turn, and never fetches.
  const SQUAT = { host: "198.51.100.9", port: 4001 };
  for (let round = 0; round < 8; round++) {
    clock.t += 2_500;
    reg.login("\u0430lice", CLAIMED, round % 2 === 0 ? MALLORY : SQUAT);
    reg.expire();
  }
  // The real alice logs in and fetches her list: she is online.
  assert.equal(reg.login("alice", CLAIMED, ALICE).kind, "pending");
  assert.deepEqual(names(reg.admitFrom(ALICE.host).admitted), ["alice"]);
  // The squatter's fetch now admits nobody, and says why.
  const late = reg.admitFrom(MALLORY.host);
  assert.deepEqual(late.admitted, []);
  assert.deepEqual(late.refused.map(({ user, why }) => [user.name, why]), [[
    "\u0430lice",
    "lookalike",
  ]]);
  assert.equal(reg.get("\u0430lice"), undefined);
  assert.deepEqual(reg.login("\u0430lice", CLAIMED, MALLORY), {
    kind: "rejected",
    reason: 'name "\u0430lice" looks like "alice" who is online',
    why: "lookalike",
  });
});

Deno.test("a pending login is forgotten a pending timeout after it first came, however often re-sent", () => {
  const { reg, clock } = setup({ pendingTimeoutMs: 10_000 });
  reg.login("bob", CLAIMED, MALLORY);
  for (let t = 1_000; t <= 11_000; t += 1_000) {
    clock.t = 1_000 + t;
    reg.login("bob", CLAIMED, MALLORY); // refreshes its entry, not its time
    reg.heartbeat("bob", MALLORY);
    if (t <= 10_000) assert.deepEqual(names(reg.expire().abandoned), [], `at ${t}`);
  }
  assert.deepEqual(names(reg.expire().abandoned), ["bob"]);
});

Deno.test("a pending login a quarter of the pending timeout old gives way to another endpoint", () => {
  const { reg, clock } = setup({ pendingTimeoutMs: 10_000 });
  reg.login("bob", CLAIMED, MALLORY);
  clock.t += 2_499; // a client fetches its list a round trip after its Accept: still in time
  assert.equal(reg.login("bob", CLAIMED, BOB).kind, "rejected");
  clock.t += 1;
  const r = reg.login("bob", CLAIMED, BOB);
  assert.equal(r.kind, "pending");
  assert.deepEqual(reg.get("bob")?.observed, BOB);
  assert.deepEqual(reg.admitFrom("198.51.100.9"), NOBODY, "the squatter's fetch admits nothing");
  assert.deepEqual(names(reg.admitFrom("2001:db8::2").admitted), ["bob"]);
  // Online names never give way.
  clock.t += 60_000;
  reg.heartbeat("bob", BOB);
  assert.equal(reg.login("bob", CLAIMED, MALLORY).kind, "rejected");
});

Deno.test("a user with a secret logs out and heartbeats only with it, even from its endpoint", () => {
  const { reg, clock } = setup();
  const ext = { key: "k".repeat(43), secret: "s".repeat(22) };
  reg.login("alice", CLAIMED, ALICE, ext);
  reg.admitFrom("192.0.2.1");
  clock.t = 30_000;
  assert.equal(reg.heartbeat("alice", ALICE).kind, "forged");
  assert.equal(reg.heartbeat("alice", ALICE, "x".repeat(22)).kind, "forged");
  assert.equal(reg.get("alice")?.lastSeen, 1_000, "a forged heartbeat keeps nobody alive");
  assert.equal(reg.heartbeat("alice", ALICE, ext.secret).kind, "alive");
  assert.equal(reg.get("alice")?.lastSeen, 30_000);
  const forged = reg.logout("alice", ALICE);
  assert.equal(forged.kind === "forged" && forged.why, "secret");
  assert.equal(reg.logout("alice", ALICE, "x".repeat(22)).kind, "forged");
  assert.equal(reg.get("alice")?.state, "online");
  assert.equal(reg.logout("alice", ALICE, ext.secret).kind, "removed");
  // Seed-only users keep the seed's rule: their endpoint is their proof.
  reg.login("seed", CLAIMED, BOB);
  reg.admitFrom("2001:db8::2");
  assert.equal(reg.heartbeat("seed", BOB).kind, "alive");
  assert.equal(reg.logout("seed", BOB).kind, "removed");
});

Deno.test("names per address: online at once and new per day, counted when admitted", () => {
  const { reg, clock } = setup({ namesPerAddress: 2, newNamesPerAddressPerDay: 3 });
  const at = (port: number) => ({ host: "192.0.2.1", port });
  for (const [i, name] of ["a", "b", "c"].entries()) reg.login(name, CLAIMED, at(i));
  // Logins are pending until the fetch; it admits what the quota allows.
  const { admitted, refused } = reg.admitFrom("192.0.2.1");
  assert.deepEqual(names(admitted), ["a", "b"]);
  assert.deepEqual(refused.map(({ user, why }) => [user.name, why]), [["c", "names-per-address"]]);
  assert.deepEqual(reg.login("c", CLAIMED, at(2)), {
    kind: "rejected",
    reason: "too many names online from your address",
    why: "names-per-address",
  });
  reg.logout("a", at(0));
  reg.login("c", CLAIMED, at(2));
  reg.admitFrom("192.0.2.1");
  reg.logout("b", at(1));
  reg.logout("c", at(2));
  // Three new names today: a fourth is refused, the three may come back.
  assert.deepEqual(reg.login("d", CLAIMED, at(3)), {
    kind: "rejected",
    reason: "too many new names from your address today",
    why: "new-names-per-address-per-day",
  });
  assert.equal(reg.login("a", CLAIMED, at(0)).kind, "pending");
  // Forged logins from an address do not use up its quota: only admissions count.
  assert.equal(reg.quota.newToday("198.51.100.9"), 0);
  reg.login("m", CLAIMED, MALLORY);
  assert.equal(reg.quota.newToday("198.51.100.9"), 0);
  // A day later the address may bring new names again.
  clock.t += 24 * 60 * 60 * 1000;
  reg.expire();
  assert.equal(reg.login("d", CLAIMED, at(3)).kind, "pending");
});

Deno.test("a login from the holder's own endpoint without its secret replaces no key while the holder lives", () => {
  const { reg, clock } = setup();
  const ext = { key: "K".repeat(43), secret: "S".repeat(22) };
  reg.login("alice", CLAIMED, ALICE, ext);
  reg.admitFrom(ALICE.host);
  // A datagram spoofed from alice's exact endpoint, with the attacker's key: refused.
  const spoofed = { key: "M".repeat(43), secret: "m".repeat(22) };
  for (const other of [spoofed, undefined]) {
    assert.deepEqual(reg.login("alice", CLAIMED, ALICE, other), {
      kind: "rejected",
      reason: 'name "alice" is held by an earlier session at your address; try again in 23 s',
      why: "in-use",
    });
  }
  assert.equal(reg.get("alice")?.key, ext.key);
  // Alice herself (her secret) still refreshes.
  assert.equal(reg.login("alice", CLAIMED, ALICE, ext).kind, "refreshed");
  // Silent for half the peer timeout: a crashed client back on the same port, with a new
  // process's key and secret, takes its name back, and its new secret is the proof from then on.
  clock.t += 22_500;
  const restarted = { key: "R".repeat(43), secret: "r".repeat(22) };
  assert.equal(reg.login("alice", CLAIMED, ALICE, restarted).kind, "refreshed");
  assert.equal(reg.get("alice")?.key, restarted.key);
  assert.equal(reg.logout("alice", ALICE, ext.secret).kind, "forged");
  assert.equal(reg.logout("alice", ALICE, restarted.secret).kind, "removed");
});

Deno.test("connect or nat from a secret holder's endpoint keeps it alive no longer: only its heartbeats do", () => {
  const { reg, clock } = setup();
  const ext = { key: "K".repeat(43), secret: "S".repeat(22) };
  reg.login("alice", CLAIMED, ALICE, ext);
  reg.login("bob", CLAIMED, BOB); // seed-only: the seed's rules
  reg.admitFrom(ALICE.host);
  reg.admitFrom(BOB.host);
  for (let t = 0; t < 3; t++) {
    clock.t += 20_000;
    // Spoofed from alice's endpoint (or alice's own): answered, but not proof of life.
    assert.equal(reg.heardFrom("alice", ALICE)?.name, "alice");
    assert.equal(reg.heardFrom("bob", BOB)?.name, "bob");
    const { expired } = reg.expire();
    assert.deepEqual(names(expired), t < 2 ? [] : ["alice"], `after ${20 * (t + 1)} s`);
  }
  assert.equal(reg.get("bob")?.state, "online", "a seed-only user's connect is its heartbeat");
});

Deno.test("a name moves by its secret only to an address with room for one more name", () => {
  const { reg } = setup({ namesPerAddress: 2 });
  const FULL_HOST = "203.0.113.7";
  for (const [i, name] of ["a", "b"].entries()) {
    reg.login(name, CLAIMED, { host: FULL_HOST, port: 4000 + i });
  }
  reg.admitFrom(FULL_HOST);
  const ext = { key: "K".repeat(43), secret: "S".repeat(22) };
  reg.login("mover", CLAIMED, MALLORY, ext);
  reg.admitFrom(MALLORY.host);
  const into = { host: FULL_HOST, port: 4009 };
  assert.deepEqual(reg.heartbeat("mover", into, ext.secret), { kind: "unknown" });
  assert.deepEqual(reg.login("mover", CLAIMED, into, ext), {
    kind: "rejected",
    reason: "too many names online from your address",
    why: "names-per-address",
  });
  assert.deepEqual(reg.get("mover")?.observed, MALLORY, "it stays where it was");
  // Within its own address (a new port: the NAT mapping changed) it moves freely.
  const sameAddress = { host: MALLORY.host, port: 4100 };
  assert.equal(reg.heartbeat("mover", sameAddress, ext.secret).kind, "alive");
  assert.deepEqual(reg.get("mover")?.observed, sameAddress);
});
