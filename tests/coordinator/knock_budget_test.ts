import assert from "node:assert/strict";
import { KnockBudget } from "../../lib/coordinator/knock_budget.ts";
import { FakeClock } from "../support/fake_clock.ts";

const A = "192.0.2.1";
const B = "198.51.100.7";

Deno.test("knock budget: one address gets its share of a target, at once and per minute", () => {
  const clock = new FakeClock();
  const budget = new KnockBudget({ perAddressBurst: 2, perAddressPerMinute: 2 });
  const allow = (target: string, address: string) => budget.allow(target, address, clock.now());
  assert.deepEqual([allow("bob", A), allow("bob", A), allow("bob", A)], [true, true, false]);
  assert.equal(allow("bob", B), true, "another address has its own share");
  assert.equal(allow("carol", A), true, "and so has another target");
  clock.advance(29_999);
  assert.equal(allow("bob", A), false);
  clock.advance(1);
  assert.equal(allow("bob", A), true, "one knock's worth refilled in 30 s");
});

Deno.test("knock budget: a target's cap across addresses; what an address holds back costs it nothing", () => {
  const clock = new FakeClock();
  const budget = new KnockBudget({ perAddressBurst: 2, burst: 5, perMinute: 6 });
  const allow = (address: string) => budget.allow("bob", address, clock.now());
  // One address knocking on and on spends two of bob's five, however often it tries.
  for (let i = 0; i < 50; i++) allow(A);
  const others = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].map(allow);
  assert.deepEqual(others, [true, true, true, false], "2 + 3 = bob's burst of 5");
  clock.advance(10_000);
  assert.equal(allow("10.0.0.5"), true, "one knock's worth refilled in 10 s");
  assert.equal(allow("10.0.0.6"), false);
});

Deno.test("knock budget: refilled address buckets are dropped; forget drops a target's", () => {
  const clock = new FakeClock();
  const budget = new KnockBudget({ perAddressBurst: 1, perAddressPerMinute: 1, burst: 1000 });
  for (let i = 0; i < 100; i++) budget.allow("bob", `10.0.0.${i}`, clock.now());
  assert.equal(budget.addressesTracked("bob"), 100);
  clock.advance(60_000);
  budget.allow("bob", A, clock.now());
  assert.equal(budget.addressesTracked("bob"), 1, "only the address just used");
  budget.forget("bob");
  assert.equal(budget.addressesTracked("bob"), 0);
  assert.equal(budget.allow("bob", "10.0.0.1", clock.now()), true);
});
