import assert from "node:assert/strict";
import { FakeClock } from "./support/fake_clock.ts";

Deno.test("the fake clock fires timers in due order, each at its own time, and intervals again", () => {
  const clock = new FakeClock(1000);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
  clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
  const cancelled = clock.setTimeout(() => fired.push("never"), 15);
  clock.clearTimeout(cancelled);
  const every = clock.setInterval(() => fired.push(`i@${clock.now()}`), 8);
  clock.advance(25);
  assert.deepEqual(fired, ["i@1008", "a@1010", "i@1016", "b@1020", "i@1024"]);
  assert.equal(clock.now(), 1025);
  clock.clearInterval(every);
  clock.advance(100);
  assert.equal(fired.length, 5);
  assert.equal(clock.pending, 0);
});

Deno.test("a timer set by a firing timer fires in the same advance when it falls due", () => {
  const clock = new FakeClock(0);
  const fired: number[] = [];
  clock.setTimeout(() => clock.setTimeout(() => fired.push(clock.now()), 5), 5);
  clock.advance(9);
  assert.deepEqual(fired, []);
  clock.advance(1);
  assert.deepEqual(fired, [10]);
});
