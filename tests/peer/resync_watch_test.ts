import assert from "node:assert/strict";
import { PresenceView } from "../../lib/peer/presence_view.ts";
import { CONFIRM_MS, RESYNC_GRACE_MS, ResyncWatch } from "../../lib/peer/resync_watch.ts";
import { FakeClock } from "../support/fake_clock.ts";

/** A view at version 5 (a list with bob), a watch on it, and what it did. */
function setup(options: { keepaliveMs?: number; canResync?: () => boolean } = {}) {
  const clock = new FakeClock();
  const view = new PresenceView<string>({ self: "me", onOnline: () => {}, onOffline: () => {} });
  view.applyList({ entries: [{ username: "bob", endpoint: "b:1" }], version: 5 });
  const resyncs: number[] = [];
  const errors: string[] = [];
  const watch = new ResyncWatch({
    view,
    keepaliveMs: options.keepaliveMs ?? 500,
    canResync: options.canResync ?? (() => true),
    resync: () => resyncs.push(clock.now()),
    onError: (message) => errors.push(message),
    clock,
  });
  /** A datagram carrying the changes (from, to]. */
  const datagram = (from: number, to: number) => {
    view.beginDatagram({ from, to });
    view.endDatagram();
  };
  return { clock, view, watch, resyncs, errors, datagram, start: clock.now() };
}

Deno.test("resync watch: still behind a grace second after an Alive: the list is fetched again", () => {
  const { clock, watch, resyncs, start } = setup();
  watch.onAlive(5);
  clock.advance(5 * RESYNC_GRACE_MS);
  assert.deepEqual(resyncs, [], "caught up: nothing to do");
  const at = clock.now();
  watch.onAlive(7);
  watch.onAlive(7); // one grace period at a time
  clock.advance(RESYNC_GRACE_MS - 1);
  assert.deepEqual(resyncs, [], "the missing datagram may still come");
  clock.advance(1);
  assert.deepEqual(resyncs, [at + RESYNC_GRACE_MS]);
  assert.ok(at > start);
});

Deno.test("resync watch: a reordered datagram arriving within the grace second avoids the fetch", () => {
  const { clock, watch, resyncs, datagram } = setup();
  watch.onAlive(7);
  clock.advance(RESYNC_GRACE_MS / 2);
  datagram(5, 7);
  clock.advance(10 * RESYNC_GRACE_MS);
  assert.deepEqual(resyncs, []);
});

Deno.test("resync watch: at most one fetch per heartbeat interval; a refused one waits for an Alive", () => {
  let allowed = false;
  const { clock, watch, resyncs, start } = setup({ keepaliveMs: 1500, canResync: () => allowed });
  // Always behind: an Alive every 100 ms, each grace second ends in a wish to fetch. The first
  // two are refused (a login under way, say); then one every 2 s, since 1 s after a fetch is too
  // soon for a heartbeat interval of 1.5 s.
  for (let t = 0; t <= 9000; t += 100) {
    if (t === 2000) allowed = true;
    watch.onAlive(10);
    clock.advance(100);
  }
  assert.deepEqual(resyncs.map((at) => at - start), [3000, 5000, 7000, 9000]);
});

Deno.test("resync watch: versions forgotten: the list is fetched at the next Alive, no grace", () => {
  const { watch, view, resyncs, clock } = setup();
  view.reset();
  watch.onAlive(5);
  assert.deepEqual(resyncs, [clock.now()]);
});

Deno.test("resync watch: a version never confirmed within the window is forgotten and the list fetched", () => {
  const { clock, watch, view, resyncs, errors, datagram } = setup({ keepaliveMs: 300 });
  // A forged datagram claims a far version (and would make us ignore the real ones).
  datagram(5, 9_000);
  assert.equal(view.newest, 9_000);
  const t0 = clock.now();
  watch.onAlive(5);
  // The coordinator's Alives stay at 5; within the window that is no proof of forgery.
  while (clock.now() + 300 < t0 + CONFIRM_MS) {
    clock.advance(300);
    watch.onAlive(5);
  }
  assert.deepEqual(errors, []);
  assert.deepEqual(resyncs, []);
  clock.advance(t0 + CONFIRM_MS - clock.now());
  watch.onAlive(5);
  assert.equal(errors.length, 1);
  assert.match(
    errors[0],
    /presence version 9000 was never confirmed by the coordinator \(it is at 5\)/,
  );
  assert.equal(view.mode, "waiting", "every version forgotten");
  assert.equal(resyncs.length, 1, "and the list fetched again");
});

Deno.test("resync watch: the window is twice the heartbeat when that is longer; a login resets it", () => {
  const { clock, watch, errors, datagram } = setup({ keepaliveMs: 4000 });
  datagram(5, 100);
  watch.onAlive(5);
  clock.advance(2 * 4000 - 1);
  watch.onAlive(5);
  assert.deepEqual(errors, [], "8 s, not 5 s");
  // A fresh login forgets the mark: the next Alive starts a new window.
  watch.reset();
  clock.advance(2);
  watch.onAlive(5);
  assert.deepEqual(errors, []);
  clock.advance(2 * 4000);
  watch.onAlive(5);
  assert.equal(errors.length, 1);
});

Deno.test("resync watch: close stops a pending grace timer", () => {
  const { clock, watch, resyncs } = setup();
  watch.onAlive(9);
  watch.close();
  clock.advance(10 * RESYNC_GRACE_MS);
  assert.deepEqual(resyncs, []);
  assert.equal(clock.pending, 0);
});
