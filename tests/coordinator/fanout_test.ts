import assert from "node:assert/strict";
import {
  type FanoutBatch,
  PresenceFanout,
  type PresenceLines,
} from "../../lib/coordinator/fanout.ts";
import {
  formatCompactEndpoint,
  formatEndpoint,
  parseEndpoint,
} from "../../lib/protocol/endpoint.ts";
import { parseServerMessage } from "../../lib/protocol/seed.ts";
import { prng } from "../support/prng.ts";

interface Member {
  name: string;
}

const decoder = new TextDecoder();

/** A datagram's lines, without its `Presence` header if it has one. */
function linesOf(datagram: Uint8Array): string[] {
  const lines = decoder.decode(datagram).split("\n");
  return lines[0].startsWith("Presence,") ? lines.slice(1) : lines;
}

/** What each member received, as lines (headers left out), in order. */
function delivered(batches: FanoutBatch<Member>[]): Map<string, string[][]> {
  const out = new Map<string, string[][]>();
  for (const { members, datagrams } of batches) {
    for (const m of members) {
      const list = out.get(m.name) ?? [];
      for (const d of datagrams) list.push(linesOf(d));
      out.set(m.name, list);
    }
  }
  return out;
}

/** What each member received, as whole texts, in order. */
function texts(batches: FanoutBatch<Member>[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const { members, datagrams } of batches) {
    for (const m of members) {
      out.set(m.name, [...(out.get(m.name) ?? []), ...datagrams.map((d) => decoder.decode(d))]);
    }
  }
  return out;
}

/** `name` online at `ep` (192.0.2.1:`port` when a number), in both forms. */
function login(name: string, ep: number | string = 4000): PresenceLines {
  const endpoint = parseEndpoint(typeof ep === "number" ? `192.0.2.1:${ep}` : ep);
  return {
    seed: `login,${name},${formatEndpoint(endpoint)}`,
    batched: `+${name},${formatCompactEndpoint(endpoint)}`,
  };
}

/** `name` offline (it was at `ep`), in both forms. */
function logout(name: string, ep = "192.0.2.1:4000"): PresenceLines {
  return { seed: `logout,${name},${ep}`, batched: `-${name}` };
}

/** The batched (compact) line of each change. */
function batched(...changes: PresenceLines[]): string[] {
  return changes.map((c) => c.batched);
}

/**
 * A change as a member applies it, from either form: the name, and where it is online (`null`:
 * offline). `isBatched`: the member reads compact lines (otherwise seed messages).
 */
function change(line: string, isBatched: boolean): [string, string | null] {
  const msg = parseServerMessage(line);
  const expected = isBatched ? ["online", "offline"] : ["login", "logout"];
  assert.ok(expected.includes(msg.type), `${isBatched ? "batched" : "seed"} member got ${line}`);
  if (msg.type === "online" || msg.type === "login") {
    return [msg.username, formatEndpoint(msg.endpoint)];
  }
  assert.ok(msg.type === "offline" || msg.type === "logout"); // (narrows the type)
  return [msg.username, null];
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
  const lines = datagrams.flatMap(linesOf);
  assert.deepEqual(lines, Array.from({ length: 200 }, (_, i) => `+u${i},wAACAQ-g`));
  // Each datagram says which versions it covers; together they cover (0, 200].
  const headers = datagrams.map((d) => decoder.decode(d).split("\n")[0]);
  const bounds = headers.map((h) => h.split(",").slice(1).map(Number));
  assert.equal(bounds[0][0], 0);
  assert.equal(bounds.at(-1)![1], 200);
  bounds.slice(1).forEach(([from], i) => assert.equal(from, bounds[i][1], headers.join(" ")));
  // 12-14-byte compact lines: about 95 per datagram, so 200 changes take 3 datagrams, not 200
  // (nor the 5 that 23-25-byte seed messages would take).
  assert.equal(datagrams.length, 3);
  assert.equal(fanout.pending, 0);
  assert.deepEqual(fanout.take(), [], "everything was handed out");
});

Deno.test("seed-only members get one seed message per datagram", () => {
  const fanout = new PresenceFanout<Member>();
  fanout.add({ name: "seed" }, { batched: false });
  fanout.record("a", login("a"));
  fanout.record("b", logout("b"));
  const [batch] = fanout.take();
  assert.deepEqual(batch.datagrams.map((d) => decoder.decode(d)), [
    "login,a,192.0.2.1:4000",
    "logout,b,192.0.2.1:4000",
  ]);
});

Deno.test("in one take, seed-only members get seed messages and batched ones compact lines", () => {
  const fanout = new PresenceFanout<Member>();
  const seed = { name: "seed" };
  const ext = { name: "ext" };
  fanout.add(seed, { batched: false });
  fanout.add(ext, { batched: true });
  fanout.record("carol", login("carol", "127.1.39.16:40123"));
  fanout.record("dave", logout("dave", "192.0.2.8:4000"));
  fanout.record("erin", login("erin", "[2001:db8::7]:4000"));
  const got = texts(fanout.take());
  assert.deepEqual(got.get("seed"), [
    "login,carol,127.1.39.16:40123",
    "logout,dave,192.0.2.8:4000",
    "login,erin,[2001:db8::7]:4000",
  ]);
  assert.deepEqual(got.get("ext"), [
    "Presence,0,3\n+carol,fwEnEJy7\n-dave\n+erin,[2001:db8::7]:4000",
  ]);
});

Deno.test("only a name's latest change is sent", () => {
  const fanout = new PresenceFanout<Member>();
  fanout.add({ name: "m" }, { batched: true });
  fanout.record("a", login("a", 1));
  fanout.record("b", login("b"));
  fanout.record("a", logout("a", "192.0.2.1:1"));
  fanout.record("a", login("a", 2));
  assert.equal(fanout.pending, 2);
  assert.deepEqual(delivered(fanout.take()).get("m"), [batched(login("b"), login("a", 2))]);
});

Deno.test("pendingBytes counts the batched lines waiting, a newline each, until take", () => {
  const encoder = new TextEncoder();
  const bytes = (...changes: PresenceLines[]) =>
    changes.reduce((n, c) => n + 1 + encoder.encode(c.batched).length, 0);
  const fanout = new PresenceFanout<Member>();
  fanout.add({ name: "m" }, { batched: true });
  assert.equal(fanout.pendingBytes, 0);
  fanout.record("bob", login("bob"));
  assert.equal(fanout.pendingBytes, 14, "+bob,wAACAQ-g and its newline");
  // Bytes, not characters: "张伟" is 6 bytes in 2 characters.
  const zhang = login("张伟", "127.1.39.16:40123");
  fanout.record("张伟", zhang);
  assert.equal(fanout.pendingBytes, 14 + 17);
  assert.equal(fanout.pendingBytes, bytes(login("bob"), zhang));
  // bob's logout replaces his login: its bytes count instead of the login's, not as well.
  fanout.record("bob", logout("bob"));
  assert.equal(fanout.pendingBytes, 17 + 5);
  assert.equal(fanout.pendingBytes, bytes(zhang, logout("bob")));
  fanout.record("bob", login("bob", 5));
  assert.equal(fanout.pendingBytes, bytes(zhang, login("bob", 5)));
  // It is what the lines take in a datagram, after the header.
  const pending = fanout.pendingBytes;
  const [{ datagrams }] = fanout.take();
  assert.equal(datagrams.length, 1);
  assert.equal(datagrams[0].length, "Presence,0,4".length + pending);
  assert.equal(fanout.pendingBytes, 0);
  // Nothing of the taken changes lingers: a name recorded again counts once.
  fanout.record("bob", logout("bob"));
  assert.equal(fanout.pendingBytes, 5);
  fanout.take();
  assert.equal(fanout.pendingBytes, 0);
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
  fanout.record("a", logout("a")); // supersedes a's login for everyone
  fanout.add({ name: "last" }, { batched: true }); // nothing after it: nothing for it
  const got = delivered(fanout.take());
  assert.deepEqual(got.get("early"), [batched(login("late"), login("b"), logout("a"))]);
  assert.deepEqual(got.get("late"), [batched(login("b"), logout("a"))]);
  assert.deepEqual(got.get("seed"), [[logout("a").seed]]);
  assert.equal(got.has("last"), false);
  // After a take everyone is at the same version: one group again.
  fanout.record("c", login("c"));
  const next = fanout.take();
  assert.equal(next.length, 2, "one batched group and one seed group");
  assert.deepEqual(next.map((b) => b.members.length).sort(), [1, 3]);
});

Deno.test("suffixes share whole datagrams and cover exactly their lines", () => {
  const fanout = new PresenceFanout<Member>({ maxDatagramBytes: 60 });
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
    assert.deepEqual(
      lines,
      Array.from({ length: 59 - i }, (_, k) => login(`u${i + 1 + k}`).batched),
    );
  }
  // Datagrams are shared, not built per member: few distinct arrays in all.
  const distinct = new Set(batches.flatMap((b) => b.datagrams));
  assert.ok(distinct.size < 60 * 2, `${distinct.size} distinct datagrams`);
  for (const d of distinct) assert.ok(d.length <= 60);
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
  assert.deepEqual(got.get("alice"), [batched(login("dave"))]);
  assert.deepEqual(got.get("bob"), [batched(login("alice", 5), login("dave"))]);
  assert.equal(got.has("carol"), false);
  // Adding a member again moves it to the current version (here, as seed-only).
  fanout.record("erin", login("erin"));
  fanout.add(bob, { batched: false });
  fanout.record("fred", login("fred"));
  const again = delivered(fanout.take());
  assert.deepEqual(again.get("bob"), [[login("fred").seed]]);
  assert.deepEqual(again.get("alice"), [batched(login("erin"), login("fred"))]);
});

Deno.test("random joins, leaves and changes: every member ends up with the true state", () => {
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const fanout = new PresenceFanout<Member>({ maxDatagramBytes: 200 });
  const truth = new Map<string, string>(); // name -> endpoint
  const views = new Map<string, Map<string, string>>();
  const members = new Map<string, Member>();
  for (let round = 0; round < 200; round++) {
    for (let k = random(20); k > 0; k--) {
      const name = `u${random(50)}`;
      if (truth.has(name) && random(2) === 0) {
        fanout.record(name, logout(name, truth.get(name)));
        truth.delete(name);
        fanout.remove(members.get(name)!);
        members.delete(name);
        views.delete(name);
      } else {
        const ep = `192.0.2.1:${1 + random(60000)}`;
        fanout.record(name, login(name, ep));
        truth.set(name, ep);
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
          for (const line of linesOf(d)) {
            const [name, ep] = change(line, fanout.isBatched(m));
            assert.notEqual(name, m.name, "no member hears of itself");
            if (ep !== null) view.set(name, ep);
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

Deno.test("batched datagrams start with Presence,<from>,<to>: exact examples", () => {
  const fanout = new PresenceFanout<Member>();
  const alice = { name: "alice" };
  const bob = { name: "bob" };
  fanout.add(alice, { batched: true });
  fanout.add(bob, { batched: true });
  fanout.record("carol", login("carol"));
  fanout.record("dave", login("dave"));
  assert.deepEqual(texts(fanout.take()).get("bob"), [
    "Presence,0,2\n+carol,wAACAQ-g\n+dave,wAACAQ-g",
  ]);
  // A member whose only change is its own still hears that it is up to date.
  fanout.record("alice", login("alice", 5));
  const moved = texts(fanout.take());
  assert.deepEqual(moved.get("alice"), ["Presence,2,3"]);
  assert.deepEqual(moved.get("bob"), ["Presence,2,3\n+alice,wAACAQAF"]);
  // Its own change among others: its datagram covers the same range without it.
  fanout.record("bob", login("bob", 6));
  fanout.record("erin", logout("erin"));
  const again = texts(fanout.take());
  assert.deepEqual(again.get("bob"), ["Presence,3,5\n-erin"]);
  assert.deepEqual(again.get("alice"), ["Presence,3,5\n+bob,wAACAQAG\n-erin"]);
  assert.deepEqual(fanout.take(), [], "nothing new, nothing sent");
});

Deno.test("a group's first datagram starts at the group's version, superseded changes or not", () => {
  const fanout = new PresenceFanout<Member>();
  const early = { name: "early" };
  const late = { name: "late" };
  fanout.add(early, { batched: true });
  fanout.record("u", login("u", 1)); // version 1
  fanout.add(late, { batched: true }); // at version 1
  fanout.record("u", login("u", 2)); // version 2 supersedes version 1
  fanout.record("v", login("v")); // version 3
  const got = texts(fanout.take());
  assert.deepEqual(got.get("early"), ["Presence,0,3\n+u,wAACAQAC\n+v,wAACAQ-g"]);
  assert.deepEqual(got.get("late"), ["Presence,1,3\n+u,wAACAQAC\n+v,wAACAQ-g"]);
});

Deno.test("whole chunks are shared between groups: a chunk's range is the same for all", () => {
  // Room for two 12-byte lines after a 12-byte header, not three.
  const fanout = new PresenceFanout<Member>({ maxDatagramBytes: 12 + 2 * (1 + 12) });
  const a = { name: "a" };
  const b = { name: "b" };
  fanout.add(a, { batched: true });
  fanout.record("u1", login("u1"));
  fanout.record("u2", login("u2"));
  fanout.add(b, { batched: true }); // at version 2, where a chunk starts
  fanout.record("u3", login("u3"));
  fanout.record("u4", login("u4"));
  const batches = fanout.take();
  const of = (m: Member) => batches.find((x) => x.members.includes(m))!.datagrams;
  assert.deepEqual(of(a).map((d) => decoder.decode(d)), [
    "Presence,0,2\n+u1,wAACAQ-g\n+u2,wAACAQ-g",
    "Presence,2,4\n+u3,wAACAQ-g\n+u4,wAACAQ-g",
  ]);
  assert.equal(of(b).length, 1);
  assert.equal(of(b)[0], of(a)[1], "the same bytes, not a copy");
});

Deno.test("the datagram limit includes the header", () => {
  // Nine 12-byte lines; headers `Presence,<from>,<to>` of 12 bytes (versions are single digits).
  for (const [max, perDatagram] of [[38, 2], [37, 1]]) {
    const fanout = new PresenceFanout<Member>({ maxDatagramBytes: max });
    fanout.add({ name: "m" }, { batched: true });
    for (let i = 1; i <= 9; i++) fanout.record(`u${i}`, login(`u${i}`));
    const [{ datagrams }] = fanout.take();
    assert.ok(datagrams.every((d) => d.length <= max), "every datagram within the limit");
    assert.equal(Math.max(...datagrams.map((d) => linesOf(d).length)), perDatagram);
    assert.equal(datagrams.flatMap(linesOf).length, 9);
    if (perDatagram === 2) assert.equal(datagrams.at(-1)!.length, 38, "exactly full");
  }
});

/** One member of the simulation: what it was told, and how far. */
interface Simulated {
  member: Member;
  batched: boolean;
  /** Its version: every change up to here is in its view (batched members only). */
  version: number;
  view: Map<string, string>;
}

/**
 * Plays random records, joins, leaves and takes against a fanout, as the coordinator makes them,
 * with members that apply every datagram as a client would.
 */
function simulate(seed: number, steps: number, maxDatagramBytes: number): void {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const fanout = new PresenceFanout<Member>({ maxDatagramBytes });
  const truth = new Map<string, string>(); // name -> endpoint, for names online
  const members = new Map<string, Simulated>();
  const where = (name: string) => `${name} (seed ${seed}, max ${maxDatagramBytes})`;
  const join = (name: string, batched: boolean) => {
    const member = members.get(name)?.member ?? { name };
    fanout.add(member, { batched });
    members.set(name, { member, batched, version: fanout.version, view: new Map(truth) });
  };
  for (let step = 0; step < steps; step++) {
    const name = `u${int(40)}`;
    const r = random();
    if (r < 0.45) {
      // A login, or a move of someone online (members included: their own change); now and then
      // from IPv6, whose compact form is its text.
      const ep = int(8) > 0
        ? `192.0.2.${1 + int(254)}:${1 + int(65535)}`
        : `[2001:db8::${int(0x10000).toString(16)}]:${1 + int(65535)}`;
      fanout.record(name, login(name, ep));
      truth.set(name, ep);
    } else if (r < 0.6 && truth.has(name)) {
      // A logout: a member that leaves stops being one.
      const leaving = members.get(name);
      if (leaving) fanout.remove(leaving.member);
      members.delete(name);
      fanout.record(name, logout(name, truth.get(name)));
      truth.delete(name);
    } else if (r < 0.8) {
      // An admission: its login is recorded, then it joins with the list as it is now. Someone
      // already a member joins again at the current version (it fetched a new list).
      if (!members.has(name)) {
        const ep = `198.51.100.${1 + int(254)}:${1 + int(65535)}`;
        fanout.record(name, login(name, ep));
        truth.set(name, ep);
      }
      join(name, int(4) > 0);
    } else {
      const to = fanout.version;
      const batches = fanout.take();
      const got = new Map<string, Uint8Array[]>();
      for (const { members: ms, datagrams } of batches) {
        for (const m of ms) {
          assert.ok(!got.has(m.name), `${where(m.name)} is in one batch only`);
          assert.equal(members.get(m.name)?.member, m, `${where(m.name)} is a member`);
          got.set(m.name, datagrams);
        }
      }
      for (const sim of members.values()) {
        const datagrams = got.get(sim.member.name) ?? [];
        let at = sim.version;
        const seen = new Set<string>();
        for (const d of datagrams) {
          assert.ok(d.length <= maxDatagramBytes || !sim.batched, `${where(sim.member.name)}`);
          let lines = decoder.decode(d).split("\n");
          if (sim.batched) {
            const range = parseServerMessage(lines[0]);
            assert.ok(range.type === "presence", `${where(sim.member.name)}: ${lines[0]}`);
            assert.equal(range.from, at, `${where(sim.member.name)}: ranges tile, no gap`);
            assert.ok(range.to > range.from || datagrams.length === 1, "no empty ranges");
            at = range.to;
            lines = lines.slice(1);
          } else {
            assert.ok(!lines[0].startsWith("Presence,"), "no header for seed-only members");
          }
          for (const line of lines) {
            const [who, ep] = change(line, sim.batched);
            assert.notEqual(who, sim.member.name, `${where(who)} is not told about itself`);
            assert.ok(!seen.has(who), `${where(who)}: one line per name per take`);
            seen.add(who);
            if (ep !== null) sim.view.set(who, ep);
            else sim.view.delete(who);
          }
        }
        if (sim.batched) {
          assert.equal(at, to, `${where(sim.member.name)}: ranges reach the version at take`);
          sim.version = to;
        }
        const expected = new Map(truth);
        const actual = new Map(sim.view);
        // A member's own entry is whatever its list and Alive say; compare the others.
        expected.delete(sim.member.name);
        actual.delete(sim.member.name);
        assert.deepEqual(actual, expected, `view of ${where(sim.member.name)} at step ${step}`);
      }
      assert.equal(fanout.pending, 0);
    }
  }
}

Deno.test("random records, joins, leaves and takes: ranges tile, views are true, sizes fit", () => {
  for (let seed = 1; seed <= 40; seed++) {
    simulate(seed, 400, [80, 120, 300, 1400][seed % 4]);
  }
});

Deno.test("presence fanout: with no member, a change only moves the version", () => {
  const fanout = new PresenceFanout<Member>();
  const unread: PresenceLines = {
    get seed(): string {
      throw new Error("seed read with nobody to tell");
    },
    get batched(): string {
      throw new Error("batched line read with nobody to tell");
    },
  };
  // A coordinator that has just started takes thousands of other members' users at once.
  for (let i = 0; i < 3; i++) fanout.record(`u${i}`, unread);
  assert.equal(fanout.version, 3);
  assert.equal(fanout.pending, 0);
  assert.equal(fanout.pendingBytes, 0);
  assert.deepEqual(fanout.take(), []);
  // A member that joins now is at version 3, and hears only what comes after.
  const alice = { name: "alice" };
  fanout.add(alice, { batched: true });
  assert.equal(fanout.versionFor(alice), 3);
  fanout.record("bob", login("bob"));
  assert.equal(fanout.version, 4);
  assert.deepEqual(delivered(fanout.take()).get("alice"), [[login("bob").batched]]);
  // Once the last member is gone, what was pending for it is dropped too.
  fanout.record("carol", login("carol"));
  fanout.remove(alice);
  fanout.record("dave", unread);
  assert.equal(fanout.version, 6);
  assert.equal(fanout.pending, 0);
});
