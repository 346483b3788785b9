import assert from "node:assert/strict";
import { BucketMap, TokenBucket } from "../lib/token_bucket.ts";

/** Three tokens at once, one more a second. */
const SHAPE = { burst: 3, rate: 1 };

Deno.test("TokenBucket: a full burst at first, then the rate, never more than the burst", () => {
  const bucket = new TokenBucket(SHAPE, 0);
  assert.equal(bucket.intervalMs, 1000, "a rate per second by default");
  assert.ok(bucket.full(0));
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [
    true,
    true,
    true,
    false,
  ]);
  assert.equal(bucket.level(500), 0.5);
  assert.ok(!bucket.take(500), "half a token is not one");
  assert.ok(bucket.take(1000));
  assert.ok(!bucket.take(1000));
  assert.ok(!bucket.full(3_999));
  assert.ok(bucket.full(4_000));
  assert.equal(bucket.level(100_000), 3, "capped at the burst");
  // A rate given per minute.
  const perMinute = new TokenBucket({ burst: 30, rate: 10, intervalMs: 60_000 }, 0);
  assert.ok(perMinute.take(0, 30));
  assert.equal(perMinute.level(6_000), 1);
});

Deno.test("TokenBucket: a cost above one, and a cost it does not have spends nothing", () => {
  const bucket = new TokenBucket(SHAPE, 0);
  assert.ok(!bucket.take(0, 4));
  assert.equal(bucket.level(0), 3, "a refused take spends nothing");
  assert.ok(bucket.take(0, 2.5));
  assert.equal(bucket.level(0), 0.5);
  assert.ok(!bucket.take(2000, 3), "2.5 tokens are not 3");
  assert.ok(bucket.take(2000, 2.5));
  assert.equal(bucket.level(2000), 0);
});

Deno.test("TokenBucket: level, full and fullAt change nothing; a clock that stands still adds nothing", () => {
  const bucket = new TokenBucket(SHAPE, 0);
  bucket.take(0, 3);
  for (let i = 0; i < 5; i++) assert.equal(bucket.level(1500), 1.5);
  assert.equal(bucket.fullAt(1500), 3000);
  assert.ok(!bucket.full(1500));
  assert.equal(bucket.refill(1500), 1.5);
  assert.equal(bucket.refill(1500), 1.5, "the same time counts once");
  assert.ok(bucket.take(1500));
  assert.ok(!bucket.take(1500));
  assert.equal(bucket.fullAt(1500), 4000);
  assert.equal(bucket.fullAt(9000), 9000, "full already: its own time");
});

Deno.test("TokenBucket: a clock that steps back neither adds nor takes away, nor counts twice", () => {
  const bucket = new TokenBucket(SHAPE, 10_000);
  assert.ok(bucket.take(10_000, 3));
  assert.equal(bucket.refill(10_500), 0.5);
  assert.equal(bucket.level(5_000), 0.5, "the past takes nothing away");
  assert.ok(!bucket.take(5_000));
  assert.equal(bucket.fullAt(5_000), 13_000, "as of its own time, not the earlier one");
  // Back at the time it was last refilled: the half second is not refilled again.
  assert.equal(bucket.level(10_500), 0.5);
  assert.ok(bucket.take(11_000));
  assert.equal(bucket.level(11_000), 0);
});

Deno.test("BucketMap: at most maxKeys, the oldest made forgotten first", () => {
  const made: string[] = [];
  const map = new BucketMap({
    create: (now) => {
      made.push(`at ${now}`);
      return new TokenBucket(SHAPE, now);
    },
    maxKeys: 2,
  });
  assert.equal(map.get("a"), undefined, "get makes nothing");
  assert.equal(map.size, 0);
  map.obtain("a", 0).take(0, 3);
  map.obtain("b", 1);
  assert.equal(map.obtain("a", 2), map.get("a"), "the same bucket, not a new one");
  assert.ok(!map.get("a")!.take(2), "with its state");
  map.obtain("c", 3); // "a" was made first: it goes, though used last
  assert.equal(map.size, 2);
  assert.equal(map.get("a"), undefined);
  assert.notEqual(map.get("b"), undefined);
  assert.deepEqual(made, ["at 0", "at 1", "at 3"]);
  for (let i = 0; i < 1000; i++) map.obtain(`k${i}`, 4);
  assert.equal(map.size, 2);
});

Deno.test("BucketMap: in order of use, the key obtained least recently goes first", () => {
  const map = new BucketMap({
    create: (now) => new TokenBucket(SHAPE, now),
    maxKeys: 2,
    order: "used",
  });
  map.obtain("a", 0);
  map.obtain("b", 0);
  map.get("a"); // not a use
  map.obtain("b", 0);
  map.obtain("a", 0);
  map.obtain("c", 0);
  assert.equal(map.get("b"), undefined, "b was used least recently");
  assert.notEqual(map.get("a"), undefined);
  assert.notEqual(map.get("c"), undefined);
});

Deno.test("BucketMap: a sweep forgets the buckets that have refilled, and only those", () => {
  const map = new BucketMap({ create: (now) => new TokenBucket(SHAPE, now), maxKeys: 100 });
  map.obtain("idle", 0);
  map.obtain("spent", 0).take(0, 3);
  map.obtain("sipped", 0).take(0);
  map.sweep(999);
  assert.equal(map.size, 2, "an untouched bucket is full: forgotten");
  assert.equal(map.get("idle"), undefined);
  map.sweep(1000);
  assert.equal(map.get("sipped"), undefined, "refilled in a second");
  assert.equal(map.size, 1);
  assert.equal(map.get("spent")!.level(1000), 1, "a bucket still refilling keeps its state");
  map.sweep(3000);
  assert.equal(map.size, 0);
});
