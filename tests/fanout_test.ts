import assert from "node:assert/strict";
import { type FanoutBatch, PresenceFanout } from "../lib/fanout.ts";

interface Member {
  name: string;
}

const decoder = new TextDecoder();

/** What each member received, as lines, in order. */
function delivered(batches: FanoutBatch<Member>[]): Map<string, string[][]> {
  const out = new Map<string, string[][]>();
  for (const { members, datagrams } of batches) {
    for (const m of members) {
      const list = out.get(m.name) ?? [];
      for (const d of datagrams) list.push(decoder.decode(d).split("\n"));
      out.set(m.name, list);
    }
  }
  return out;
}

function login(name: string, port = 4000): string {
  return `login,${name},192.0.2.1:${port}`;
}

Deno.test("batched members get the changes packed into shared datagrams", () => {
  const fanout = new PresenceFanout<Member>();
  const members = Array.from({ length: 100 }, (_, i) => ({ name: `m${i}` }));
  for (const m of members) fanout.add(m, { batched: true });
  assert.deepEqual(fanout.take(), [], "nothing recorded, nothing sent");
  for (let i = 0; i < 200; i++) fanout.record(`u${i}`, login(`u${i}`));
  assert.equal(fanout.pending, 200);
  const batches = fanout.take();
  assert.equal(batches.length, 1, "one group, one set of datagrams for everyone");
  assert.equal(batches[0].members.length, 100);
  const { datagrams } = batches[0];
  assert.ok(datagrams.every((d) => d.length <= 1400));
  const lines = datagrams.flatMap((d) => decoder.decode(d).split("\n"));
  assert.deepEqual(lines, Array.from({ length: 200 }, (_, i) => login(`u${i}`)));
  // ~25-byte lines: about 50 per datagram, so 200 changes take 4-5 datagrams, not 200.
  assert.ok(datagrams.length <= 5, `${datagrams.length} datagrams`);
  assert.equal(fanout.pending, 0);
  assert.deepEqual(fanout.take(), [], "everything was handed out");
});

Deno.test("seed-only members get one message per datagram", () => {
  const fanout = new PresenceFanout<Member>();
  fanout.add({ name: "seed" }, { batched: false });
  fanout.record("a", login("a"));
  fanout.record("b", "logout,b,192.0.2.1:4000");
  const [batch] = fanout.take();
  assert.deepEqual(batch.datagrams.map((d) => decoder.decode(d)), [
    login("a"),
    "logout,b,192.0.2.1:4000",
  ]);
});

Deno.test("only a name's latest change is sent", () => {
  const fanout = new PresenceFanout<Member>();
  fanout.add({ name: "m" }, { batched: true });
  fanout.record("a", login("a", 1));
  fanout.record("b", login("b"));
  fanout.record("a", "logout,a,192.0.2.1:1");
  fanout.record("a", login("a", 2));
  assert.equal(fanout.pending, 2);
  assert.deepEqual(delivered(fanout.take()).get("m"), [[login("b"), login("a", 2)]]);
});

Deno.test("a member joining later gets only the changes after it joined", () => {
  const fanout = new PresenceFanout<Member>();
  const early = { name: "early" };
  const late = { name: "late" };
  const seed = { name: "seed" };
  fanout.add(early, { batched: true });
  fanout.record("a", login("a"));
  fanout.record("late", login("late")); // late's own admission: its list has it already
  fanout.add(late, { batched: true });
  fanout.record("b", login("b"));
  fanout.add(seed, { batched: false });
  fanout.record("a", "logout,a,192.0.2.1:4000"); // supersedes a's login for everyone
  fanout.add({ name: "last" }, { batched: true }); // nothing after it: nothing for it
  const got = delivered(fanout.take());
  assert.deepEqual(got.get("early"), [[login("late"), login("b"), "logout,a,192.0.2.1:4000"]]);
  assert.deepEqual(got.get("late"), [[login("b"), "logout,a,192.0.2.1:4000"]]);
  assert.deepEqual(got.get("seed"), [["logout,a,192.0.2.1:4000"]]);
  assert.equal(got.has("last"), false);
  // After a take everyone is at the same version: one group again.
  fanout.record("c", login("c"));
  const next = fanout.take();
  assert.equal(next.length, 2, "one batched group and one seed group");
  assert.deepEqual(next.map((b) => b.members.length).sort(), [1, 3]);
});

Deno.test("suffixes share whole datagrams and cover exactly their lines", () => {
  const fanout = new PresenceFanout<Member>({ maxDatagramBytes: 100 });
  const members: Member[] = [];
  for (let i = 0; i < 60; i++) {
    fanout.record(`u${i}`, login(`u${i}`));
    const m = { name: `m${i}` };
    members.push(m);
    fanout.add(m, { batched: true });
  }
  const batches = fanout.take();
  const got = delivered(batches);
  for (let i = 0; i < 60; i++) {
    const lines = (got.get(`m${i}`) ?? []).flat();
    assert.deepEqual(lines, Array.from({ length: 59 - i }, (_, k) => login(`u${i + 1 + k}`)));
  }
  // Datagrams are shared, not built per member: few distinct arrays in all.
  const distinct = new Set(batches.flatMap((b) => b.datagrams));
  assert.ok(distinct.size < 60 * 2, `${distinct.size} distinct datagrams`);
  for (const d of distinct) assert.ok(d.length <= 100);
});

Deno.test("a member is not sent its own change; removed members get nothing", () => {
  const fanout = new PresenceFanout<Member>();
  const alice = { name: "alice" };
  const bob = { name: "bob" };
  const carol = { name: "carol" };
  for (const m of [alice, bob, carol]) fanout.add(m, { batched: true });
  fanout.record("alice", login("alice", 5)); // alice moved
  fanout.record("dave", login("dave"));
  fanout.remove(carol);
  fanout.remove(carol); // twice: ignored
  assert.equal(fanout.size, 2);
  const got = delivered(fanout.take());
  assert.deepEqual(got.get("alice"), [[login("dave")]]);
  assert.deepEqual(got.get("bob"), [[login("alice", 5), login("dave")]]);
  assert.equal(got.has("carol"), false);
  // Adding a member again moves it to the current version.
  fanout.record("erin", login("erin"));
  fanout.add(bob, { batched: false });
  fanout.record("fred", login("fred"));
  const again = delivered(fanout.take());
  assert.deepEqual(again.get("bob"), [[login("fred")]]);
  assert.deepEqual(again.get("alice"), [[login("erin"), login("fred")]]);
});

Deno.test("random joins, leaves and changes: every member ends up with the true state", () => {
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const fanout = new PresenceFanout<Member>({ maxDatagramBytes: 200 });
  const truth = new Map<string, string>(); // name -> port
  const views = new Map<string, Map<string, string>>();
  const members = new Map<string, Member>();
  for (let round = 0; round < 200; round++) {
    for (let k = random(20); k > 0; k--) {
      const name = `u${random(50)}`;
      if (truth.has(name) && random(2) === 0) {
        fanout.record(name, `logout,${name},192.0.2.1:${truth.get(name)}`);
        truth.delete(name);
        fanout.remove(members.get(name)!);
        members.delete(name);
        views.delete(name);
      } else {
        const port = String(1 + random(60000));
        fanout.record(name, `login,${name},192.0.2.1:${port}`);
        truth.set(name, port);
        if (!members.has(name)) {
          // Joins with the list as it is now (its own entry included).
          const m = { name };
          members.set(name, m);
          views.set(name, new Map(truth));
          fanout.add(m, { batched: random(3) > 0 });
        }
      }
    }
    if (random(3) === 0) continue; // sometimes several rounds pile up before a take
    for (const { members: ms, datagrams } of fanout.take()) {
      for (const m of ms) {
        const view = views.get(m.name)!;
        for (const d of datagrams) {
          for (const line of decoder.decode(d).split("\n")) {
            const [verb, name, ep] = line.split(",");
            assert.notEqual(name, m.name, "no member hears of itself");
            if (verb === "login") view.set(name, ep.split(":")[1]);
            else view.delete(name);
          }
        }
      }
    }
    fanout.take();
    for (const [name, view] of views) {
      const expected = new Map(truth);
      const actual = new Map(view);
      // A member's own entry is whatever its list and Alive say; compare the others.
      expected.delete(name);
      actual.delete(name);
      assert.deepEqual(actual, expected, `view of ${name} after round ${round}`);
    }
  }
});
