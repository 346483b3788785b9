import assert from "node:assert/strict";
import { PresenceView, type PresenceViewOptions } from "../../lib/peer/presence_view.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { prng } from "../support/prng.ts";

/** A presence line: a login with its endpoint, or a logout (compact lines carry no endpoint). */
type Line = ["login", string, string] | ["logout", string];

/** Applies one line, as the client does. */
function applyLine(view: PresenceView<string>, line: Line): void {
  if (line[0] === "login") view.applyLine("login", line[1], line[2]);
  else view.applyLine("logout", line[1]);
}

/** A view over text endpoints that logs its events, and a shorthand to feed it a datagram. */
function setup(options: Partial<PresenceViewOptions<string>> = {}) {
  const events: string[] = [];
  const view = new PresenceView<string>({
    self: "me",
    onOnline: (name, ep) => events.push(`+${name}@${ep}`),
    onOffline: (name) => events.push(`-${name}`),
    ...options,
  });
  const datagram = (range: [number, number] | undefined, ...lines: Line[]) => {
    view.beginDatagram(range && { from: range[0], to: range[1] });
    for (const line of lines) applyLine(view, line);
    view.endDatagram();
  };
  const list = (version: number | undefined, users: Record<string, string>) =>
    view.applyList({
      entries: Object.entries(users).map(([username, endpoint]) => ({ username, endpoint })),
      version,
    });
  const users = () => Object.fromEntries([...view.users].sort());
  const take = () => events.splice(0);
  return { view, datagram, list, users, take };
}

Deno.test("in order: a list, then datagrams extend the version and report changes", () => {
  const { view, datagram, list, users, take } = setup();
  assert.equal(view.mode, "waiting");
  assert.equal(view.version, undefined);
  assert.equal(list(10, { me: "m:1", bob: "b:1" }), "m:1");
  assert.equal(view.version, 10);
  assert.deepEqual(take(), ["+bob@b:1"]);
  datagram([10, 12], ["login", "carol", "c:1"], ["logout", "bob"]);
  assert.equal(view.version, 12);
  assert.deepEqual(take(), ["+carol@c:1", "-bob"]);
  // A move is reported, a repeated login is not.
  datagram([12, 13], ["login", "carol", "c:2"]);
  datagram([13, 14], ["login", "carol", "c:2"]);
  assert.deepEqual(take(), ["+carol@c:2"]);
  // Header only: our own change, or nothing for us.
  datagram([14, 20]);
  assert.equal(view.version, 20);
  assert.equal(view.behind(20), false);
  assert.equal(view.behind(21), true);
  assert.deepEqual(users(), { carol: "c:2" });
});

Deno.test("lines about ourselves are ignored; the list's entry about us is returned", () => {
  const { view, datagram, list, users, take } = setup();
  assert.equal(list(0, { alice: "a:1" }), undefined);
  datagram([0, 1], ["login", "me", "m:9"], ["login", "bob", "b:1"]);
  datagram([1, 2], ["logout", "me"]);
  assert.deepEqual(take(), ["+alice@a:1", "+bob@b:1"]);
  assert.deepEqual(users(), { alice: "a:1", bob: "b:1" });
  assert.equal(view.version, 2);
});

Deno.test("reordered datagrams never undo newer state; the version waits for the gap", () => {
  const { view, datagram, list, users, take } = setup();
  list(10, { me: "m:1", bob: "b:1" });
  take();
  // (12, 14] overtakes (10, 12]: bob left in it, and carol moved.
  datagram([12, 14], ["logout", "bob"], ["login", "carol", "c:2"]);
  assert.equal(view.version, 10);
  assert.equal(view.behind(14), true);
  assert.deepEqual(take(), ["-bob", "+carol@c:2"]);
  // The older datagram: bob's login and carol's first endpoint are stale (tombstone, record).
  datagram([10, 12], ["login", "bob", "b:1"], ["login", "carol", "c:1"], ["login", "dave", "d:1"]);
  assert.deepEqual(take(), ["+dave@d:1"]);
  assert.equal(view.version, 14);
  assert.equal(view.behind(14), false);
  assert.deepEqual(users(), { carol: "c:2", dave: "d:1" });
});

Deno.test("duplicates change nothing, before and after the gap fills", () => {
  const { view, datagram, list, users, take } = setup();
  list(0, {});
  datagram([0, 1], ["login", "bob", "b:1"]);
  datagram([1, 2], ["logout", "bob"]);
  datagram([0, 1], ["login", "bob", "b:1"]); // a duplicate of an old datagram
  assert.deepEqual(take(), ["+bob@b:1", "-bob"]);
  datagram([3, 4], ["login", "carol", "c:1"]);
  datagram([4, 5], ["logout", "carol"]);
  datagram([3, 4], ["login", "carol", "c:1"]); // duplicated while beyond the gap
  assert.deepEqual(take(), ["+carol@c:1", "-carol"]);
  datagram([2, 3], ["login", "carol", "c:0"], ["login", "dave", "d:1"]);
  assert.equal(view.version, 5);
  datagram([3, 4], ["login", "carol", "c:1"]);
  datagram([2, 3], ["login", "carol", "c:0"]);
  assert.deepEqual(take(), ["+dave@d:1"]);
  assert.deepEqual(users(), { dave: "d:1" });
});

Deno.test("ranges beyond several gaps are held and joined as the gaps fill, in any order", () => {
  const { view, datagram, list } = setup();
  list(0, {});
  datagram([8, 10]);
  datagram([4, 6]);
  datagram([6, 7]);
  assert.equal(view.version, 0);
  datagram([2, 4]);
  assert.equal(view.version, 0);
  datagram([0, 2]);
  assert.equal(view.version, 7);
  datagram([7, 8]);
  assert.equal(view.version, 10);
});

Deno.test("a gap never filled: behind until a list is fetched again, which fixes the view", () => {
  const { view, datagram, list, users, take } = setup();
  list(10, { me: "m:1", bob: "b:1", carol: "c:1" });
  take();
  // (10, 12] is lost: carol left and dave came in it. (12, 15] arrives.
  datagram([12, 15], ["login", "erin", "e:1"], ["logout", "bob"]);
  assert.equal(view.behind(15), true);
  assert.deepEqual(take(), ["+erin@e:1", "-bob"]);
  // The resync list is written at 16, while (15, 16] (frank) is still on its way.
  assert.equal(list(16, { me: "m:1", dave: "d:1", erin: "e:1", frank: "f:1" }), "m:1");
  assert.equal(view.version, 16);
  assert.equal(view.behind(16), false);
  assert.deepEqual(take(), ["-carol", "+dave@d:1", "+frank@f:1"]);
  datagram([15, 16], ["login", "frank", "f:1"]); // late: nothing new
  datagram([10, 12], ["logout", "carol"], ["login", "dave", "d:1"]); // very late
  assert.deepEqual(take(), []);
  assert.deepEqual(users(), { dave: "d:1", erin: "e:1", frank: "f:1" });
});

Deno.test("a list is not undone by datagrams that overtook it, nor undoes them", () => {
  const { view, datagram, list, users, take } = setup();
  // Fresh login: the list is written at 5, and datagrams from 5 on arrive before it.
  datagram([6, 8], ["logout", "bob"], ["login", "dave", "d:2"]);
  datagram([5, 6], ["login", "carol", "c:1"]);
  assert.equal(view.mode, "waiting");
  assert.equal(view.behind(100), false);
  take();
  list(5, { me: "m:1", bob: "b:1", dave: "d:1", erin: "e:1" });
  assert.equal(view.version, 8);
  assert.deepEqual(users(), { carol: "c:1", dave: "d:2", erin: "e:1" });
  assert.deepEqual(take(), ["+erin@e:1"]);
  // A datagram from the previous membership (to ≤ 5) that arrived during the fetch is replaced.
  const second = setup();
  second.datagram([3, 4], ["login", "zed", "z:1"]);
  second.list(5, { me: "m:1" });
  assert.deepEqual(second.users(), {});
  assert.deepEqual(second.take(), ["+zed@z:1", "-zed"]);
});

Deno.test("a list no newer than the version changes nothing", () => {
  const { view, datagram, list, users, take } = setup();
  list(5, { me: "m:1", bob: "b:1" });
  datagram([5, 7], ["logout", "bob"]);
  take();
  assert.equal(list(6, { me: "m:2", bob: "b:1" }), "m:2");
  assert.equal(list(7, { me: "m:2", bob: "b:1" }), "m:2");
  assert.deepEqual(take(), []);
  assert.deepEqual(users(), {});
  assert.equal(view.version, 7);
});

Deno.test("a fresh login (restarted coordinator) forgets versions, keeps users, reports diffs", () => {
  const { view, datagram, list, users, take } = setup();
  list(500, { me: "m:1", bob: "b:1", carol: "c:1" });
  datagram([500, 510], ["login", "dave", "d:1"]);
  datagram([520, 530], ["login", "erin", "e:1"]); // beyond a gap, held
  take();
  view.reset();
  assert.equal(view.mode, "waiting");
  assert.equal(view.version, undefined);
  // The new coordinator counts from 0: its list at 2 is not "older" than 510.
  list(2, { me: "m:1", bob: "b:1", dave: "d:2" });
  assert.equal(view.version, 2);
  assert.deepEqual(take(), ["-carol", "-erin", "+dave@d:2"]);
  datagram([2, 3], ["login", "carol", "c:1"]);
  assert.equal(view.version, 3);
  assert.deepEqual(users(), { bob: "b:1", carol: "c:1", dave: "d:2" });
});

Deno.test("unversioned mode: lines apply as they come, no gaps; changes during the fetch win", () => {
  const { view, datagram, list, users, take } = setup();
  list(0, { me: "m:1", bob: "b:1" });
  take();
  view.reset();
  // An old coordinator: no headers, and its list has no version.
  datagram(undefined, ["logout", "bob"]);
  datagram(undefined, ["login", "carol", "c:1"]);
  assert.deepEqual(take(), ["-bob", "+carol@c:1"]);
  assert.equal(list(undefined, { me: "m:1", bob: "b:1", dave: "d:1" }), "m:1");
  assert.equal(view.mode, "unversioned");
  assert.equal(view.version, undefined);
  assert.deepEqual(users(), { carol: "c:1", dave: "d:1" });
  assert.deepEqual(take(), ["+dave@d:1"]);
  // Headers (a seed client shares our address, the coordinator has versions) are ignored.
  datagram([50, 60], ["logout", "dave"]);
  datagram([10, 20], ["login", "dave", "d:1"]);
  assert.deepEqual(take(), ["-dave", "+dave@d:1"]);
  assert.equal(view.behind(1000), false);
  // The next fresh login with a versioned list leaves unversioned mode.
  view.reset();
  list(70, { me: "m:1", carol: "c:1", dave: "d:1" });
  assert.equal(view.version, 70);
});

Deno.test("a datagram without a header in versioned mode is applied as it comes", () => {
  const { view, datagram, list, users } = setup();
  list(3, { me: "m:1" });
  datagram(undefined, ["login", "bob", "b:1"]);
  assert.deepEqual(users(), { bob: "b:1" });
  assert.equal(view.version, 3);
});

Deno.test("memory is bounded: too many held ranges or names drop what is held; a list recovers", () => {
  const ranges = setup();
  ranges.list(0, {});
  // Gaps everywhere: every other range lost.
  for (let v = 1; v < 400; v += 2) ranges.datagram([v, v + 1], ["login", `u${v}`, "x:1"]);
  assert.equal(ranges.view.version, 0);
  ranges.datagram([0, 1]);
  assert.ok(ranges.view.version! < 400, "the dropped ranges leave a gap");
  assert.ok(ranges.view.behind(400));
  ranges.list(400, { me: "m:1", u399: "x:1" });
  assert.equal(ranges.view.version, 400);
  assert.deepEqual(ranges.users(), { u399: "x:1" });

  const names = setup({ maxHeld: 10 });
  names.list(0, {});
  names.datagram([1, 2], ...Array.from({ length: 30 }, (_, i): Line => ["login", `n${i}`, "x:1"]));
  names.datagram([0, 1], ["login", "n0", "old:1"]);
  // The range (1, 2] was dropped with its names: the version waits for a list.
  assert.equal(names.view.version, 1);
  assert.ok(names.view.behind(2));
  names.list(2, { me: "m:1", n0: "x:1" });
  assert.deepEqual(names.users(), { n0: "x:1" });
  assert.equal(names.view.behind(2), false);
});

Deno.test("what is held beyond a gap is forgotten once the gap fills", () => {
  const { view, datagram, list } = setup({ maxHeld: 10 });
  list(0, {});
  for (let v = 0; v < 100; v += 2) {
    // (v + 1, v + 2] overtakes (v, v + 1], with 5 names (tombstones among them).
    const lines = Array.from(
      { length: 5 },
      (_, i): Line => i % 2 ? ["logout", `n${v}.${i}`] : ["login", `n${v}.${i}`, "x:1"],
    );
    datagram([v + 1, v + 2], ...lines);
    datagram([v, v + 1]);
    assert.equal(view.version, v + 2);
  }
});

Deno.test("endpoints are compared by value by default", () => {
  const online: string[] = [];
  const view = new PresenceView({ self: "me", onOnline: (name) => online.push(name) });
  const ep = (port: number): Endpoint => ({ host: "192.0.2.1", port });
  view.applyList({ entries: [{ username: "bob", endpoint: ep(1) }], version: 0 });
  view.beginDatagram({ from: 0, to: 1 });
  view.applyLine("login", "bob", ep(1));
  view.endDatagram();
  view.beginDatagram({ from: 1, to: 2 });
  view.applyLine("login", "bob", ep(2));
  view.endDatagram();
  assert.deepEqual(online, ["bob", "bob"]);
  assert.deepEqual(view.users.get("bob"), ep(2));
});

// ---------------------------------------------------------------------------------------------
// Fuzz against a reference model: a coordinator that numbers changes and flushes them as the
// spec says, a network that reorders, duplicates and drops, and list fetches that take a while.

interface Datagram {
  from: number;
  to: number;
  lines: Line[];
}

/** The coordinator's side, for one member ("me"). */
class Model {
  /** `changes[k - 1]` is change k: a name, and its endpoint or null (offline). */
  changes: [string, string | null][] = [];
  /** The member's version: what its flushes have covered. */
  member = 0;

  get version(): number {
    return this.changes.length;
  }

  /** Who is online after change `v`. */
  at(v: number): Map<string, string> {
    const state = new Map<string, string>();
    for (const [name, ep] of this.changes.slice(0, v)) {
      if (ep === null) state.delete(name);
      else state.set(name, ep);
    }
    return state;
  }

  /** The datagrams of a flush: each name's latest change since the member's version, tiled. */
  flush(rand: () => number): Datagram[] {
    const g = this.member;
    const t = this.version;
    if (t === g) return [];
    const latest = new Map<string, number>();
    for (let v = g + 1; v <= t; v++) latest.set(this.changes[v - 1][0], v);
    const versions = [...latest].filter(([name]) => name !== "me").map(([, v]) => v).sort((
      a,
      b,
    ) => a - b);
    const out: Datagram[] = [];
    let from = g;
    while (versions.length > 0) {
      const chunk = versions.splice(0, 1 + Math.floor(rand() * 3));
      const to = versions.length === 0 ? t : chunk.at(-1)!;
      const lines = chunk.map((v): Line => {
        const [name, ep] = this.changes[v - 1];
        return ep === null ? ["logout", name] : ["login", name, ep];
      });
      out.push({ from, to, lines });
      from = to;
    }
    if (out.length === 0) out.push({ from: g, to: t, lines: [] }); // only our own change
    this.member = t;
    return out;
  }
}

function runFuzz(seed: number, loss: number, maxHeld?: number): void {
  const rand = prng(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)];
  const names = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "me"];
  let model = new Model();
  const mirror = new Map<string, string>();
  const view = new PresenceView<string>({
    self: "me",
    maxHeld,
    onOnline: (name, ep) => {
      assert.notEqual(mirror.get(name), ep, "an online event must be a change");
      mirror.set(name, ep);
    },
    onOffline: (name) => assert.ok(mirror.delete(name), "an offline event must be a change"),
  });
  let inflight: Datagram[] = [];
  /** A list fetch under way: its text is taken now, applied later. */
  let fetching: { version: number; entries: { username: string; endpoint: string }[] } | null =
    null;
  const startFetch = (fresh: boolean) => {
    if (fresh) view.reset();
    const v = model.version;
    const entries = [...model.at(v)].map(([username, endpoint]) => ({ username, endpoint }));
    fetching = { version: v, entries };
    // A fresh login joins the fan-out at the list's version; a resync does not move it.
    if (fresh) model.member = v;
  };
  const deliver = (d: Datagram) => {
    view.beginDatagram({ from: d.from, to: d.to });
    for (const line of d.lines) applyLine(view, line);
    view.endDatagram();
  };
  const check = (step: number) => {
    const what = `seed ${seed}, step ${step}`;
    assert.deepEqual(mirror, new Map(view.users), `events match the view (${what})`);
    const v = view.version;
    if (v !== undefined && v >= model.member) {
      const truth = model.at(v);
      truth.delete("me");
      assert.deepEqual(new Map([...view.users].sort()), new Map([...truth].sort()), what);
    }
    // Nothing lost and nothing on its way: never behind (no resync for nothing).
    if (loss === 0 && maxHeld === undefined && inflight.length === 0 && fetching === null) {
      assert.equal(view.behind(model.member), false, `spurious resync (${what})`);
    }
  };
  startFetch(true);
  for (let step = 0; step < 400; step++) {
    const r = rand();
    if (r < 0.3) {
      const name = pick(names);
      const online = model.at(model.version).has(name);
      model.changes.push([name, online && rand() < 0.6 ? null : `${name}:${step}`]);
    } else if (r < 0.45) {
      for (const d of model.flush(rand)) {
        inflight.push(d);
        if (rand() < 0.1) inflight.push(d);
      }
    } else if (r < 0.8) {
      if (inflight.length > 0) {
        const d = inflight.splice(Math.floor(rand() * inflight.length), 1)[0];
        if (rand() >= loss) deliver(d);
      }
    } else if (r < 0.9) {
      if (fetching !== null && rand() < 0.5) {
        view.applyList(fetching);
        fetching = null;
      } else if (fetching === null && inflight.length === 0 && view.behind(model.member)) {
        startFetch(false); // the grace period is over and we are still behind: resync
      } else if (fetching === null && rand() < 0.1) {
        startFetch(false);
      }
    } else if (r < 0.902) {
      // The coordinator restarts: new numbering, new population; we log in afresh.
      model = new Model();
      inflight = [];
      for (let i = 0; i < 3; i++) model.changes.push([pick(names), `${pick(names)}:${step}`]);
      startFetch(true);
    } else if (r < 0.905) {
      startFetch(true); // we expired and log in again: the old membership's datagrams linger
    }
    check(step);
  }
  // The end: everything flushed and delivered (no more loss), and a resync if still behind.
  for (const d of model.flush(rand)) inflight.push(d);
  for (const d of inflight.splice(0)) deliver(d);
  if (fetching !== null) view.applyList(fetching);
  fetching = null;
  if (view.behind(model.member)) {
    assert.ok(loss > 0 || maxHeld !== undefined, `seed ${seed}: behind without any loss`);
    startFetch(false);
    view.applyList(fetching!);
  }
  assert.equal(view.behind(model.version), false);
  assert.equal(view.version, model.version);
  const truth = model.at(model.version);
  truth.delete("me");
  assert.deepEqual(new Map([...view.users].sort()), new Map([...truth].sort()), `seed ${seed}`);
}

Deno.test("fuzz: reordering and duplicates, no loss: always right, never behind for nothing", () => {
  for (let seed = 1; seed <= 300; seed++) runFuzz(seed, 0);
});

Deno.test("fuzz: reordering, duplicates and loss: right whenever caught up, and after a resync", () => {
  for (let seed = 1; seed <= 300; seed++) runFuzz(seed, 0.2);
});

Deno.test("fuzz: a tiny memory bound only costs resyncs", () => {
  for (let seed = 1; seed <= 300; seed++) runFuzz(seed, 0.1, 2);
});

Deno.test("newest: the highest version claimed, held or not, until a reset", () => {
  const { view, datagram, list } = setup();
  assert.equal(view.newest, 0);
  list(10, { me: "m:1" });
  assert.equal(view.newest, 10);
  datagram([10, 12], ["login", "carol", "c:1"]);
  datagram([40, 41], ["login", "dave", "d:1"]); // beyond a gap: held, still claimed
  assert.equal(view.version, 12);
  assert.equal(view.newest, 41);
  datagram([5, 9]); // old news: ignored
  assert.equal(view.newest, 41);
  view.reset();
  assert.equal(view.newest, 0);
  list(undefined, { me: "m:1" }); // unversioned: no versions at all
  datagram([50, 60], ["login", "erin", "e:1"]);
  assert.equal(view.newest, 0);
});
