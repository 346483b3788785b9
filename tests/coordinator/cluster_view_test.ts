/** What a member knows of the others (lib/coordinator/cluster_view.ts), on a hand-driven clock. */
import assert from "node:assert/strict";
import { ClusterView } from "../../lib/coordinator/cluster_view.ts";
import type { ClusterUser } from "../../lib/protocol/cluster.ts";

function user(name: string, port = 4000): ClusterUser {
  const ep = { host: "192.0.2.1", port };
  return { name, observed: ep, claimed: ep };
}

function setup() {
  let now = 0;
  const view = new ClusterView({ now: () => now, memberTimeoutMs: 5000 });
  return { view, advance: (ms: number) => now += ms };
}

Deno.test("cluster view: presence in order applies; a gap asks for the snapshot", () => {
  const { view, advance } = setup();
  let e = view.receive("b", { t: "snapshot", boot: "x", seq: 3, part: 0, parts: 1, users: [] });
  e = view.receive("b", { t: "presence", boot: "x", seq: 4, changes: [user("alice")] });
  assert.deepEqual(e.upserts.map((u) => u.user.name), ["alice"]);
  assert.equal(e.want, false);
  // A repeat changes nothing.
  e = view.receive("b", { t: "presence", boot: "x", seq: 4, changes: [user("alice")] });
  assert.deepEqual(e.upserts, []);
  // Message 5 lost: 6 is applied, and the snapshot asked for, once a second at most.
  e = view.receive("b", { t: "presence", boot: "x", seq: 6, changes: [user("bob")] });
  assert.equal(e.want, true);
  e = view.receive("b", { t: "beat", boot: "x", seq: 7, users: 2 });
  assert.equal(e.want, false);
  advance(1000);
  e = view.receive("b", { t: "beat", boot: "x", seq: 7, users: 2 });
  assert.equal(e.want, true);
  // The snapshot (in two parts) replaces what we had: carol came, alice went meanwhile.
  e = view.receive("b", { t: "snapshot", boot: "x", seq: 7, part: 1, parts: 2, users: [] });
  assert.deepEqual(e.upserts, []);
  e = view.receive("b", {
    t: "snapshot",
    boot: "x",
    seq: 7,
    part: 0,
    parts: 2,
    users: [user("bob"), user("carol")],
  });
  assert.deepEqual(e.removals, [{ member: "b", name: "alice" }]);
  assert.deepEqual(e.upserts.map((u) => u.user.name).sort(), ["bob", "carol"]);
  assert.equal(view.users, 2);
  e = view.receive("b", { t: "beat", boot: "x", seq: 7, users: 2 });
  assert.equal(e.want, false);
});

Deno.test("cluster view: an unknown member or a new boot asks for the snapshot", () => {
  const { view } = setup();
  let e = view.receive("b", { t: "beat", boot: "x", seq: 0, users: 0 });
  assert.equal(e.want, true);
  view.receive("b", { t: "snapshot", boot: "x", seq: 0, part: 0, parts: 1, users: [user("a")] });
  e = view.receive("b", { t: "beat", boot: "y", seq: 0, users: 0 });
  assert.deepEqual(e.removals, [{ member: "b", name: "a" }]);
  assert.equal(e.want, true);
  assert.equal(view.users, 0);
});

Deno.test("cluster view: after asking everyone, a member is not asked again alone at once", () => {
  const { view, advance } = setup();
  view.wantedAll(); // we started: everyone was asked for its snapshot
  advance(300);
  // Their beats come before their answers: neither is asked again (each would send it twice).
  let e = view.receive("b", { t: "beat", boot: "x", seq: 4, users: 1 });
  assert.equal(e.want, false);
  e = view.receive("c", { t: "presence", boot: "z", seq: 9, changes: [user("k")] });
  assert.equal(e.want, false);
  e = view.receive("b", {
    t: "snapshot",
    boot: "x",
    seq: 4,
    part: 0,
    parts: 1,
    users: [user("a")],
  });
  assert.equal(e.snapshot, 1);
  // c's answer was lost: a second after we asked, its next beat asks it alone.
  advance(700);
  e = view.receive("c", { t: "beat", boot: "z", seq: 9, users: 1 });
  assert.equal(e.want, true);
  e = view.receive("b", { t: "beat", boot: "x", seq: 4, users: 1 });
  assert.equal(e.want, false);
});

Deno.test("cluster view: a silent member is dropped with its users", () => {
  const { view, advance } = setup();
  view.receive("b", { t: "snapshot", boot: "x", seq: 0, part: 0, parts: 1, users: [user("a")] });
  view.receive("c", { t: "snapshot", boot: "z", seq: 0, part: 0, parts: 1, users: [user("k")] });
  advance(3000);
  view.receive("c", { t: "beat", boot: "z", seq: 0, users: 1 });
  assert.equal(view.lagMs(), 3000);
  advance(2001);
  const e = view.expire();
  assert.deepEqual(e.dropped, ["b"]);
  assert.deepEqual(e.removals, [{ member: "b", name: "a" }]);
  assert.equal(view.size, 1);
});
