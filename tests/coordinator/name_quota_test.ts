import assert from "node:assert/strict";
import { NameQuota } from "../../lib/coordinator/name_quota.ts";
import { FakeClock } from "../support/fake_clock.ts";

const HOUR = 60 * 60 * 1000;

function setup(options: { perAddress?: number; perAddressPerDay?: number; max?: number } = {}) {
  const clock = new FakeClock();
  const quota = new NameQuota({
    now: () => clock.now(),
    perAddress: options.perAddress ?? 3,
    perAddressPerDay: options.perAddressPerDay ?? 5,
    maxRemembered: options.max,
  });
  return { clock, quota };
}

Deno.test("NameQuota: names online at once per address", () => {
  const { quota } = setup();
  for (const name of ["a", "b", "c"]) {
    assert.equal(quota.refusal("192.0.2.1", name), undefined);
    quota.admit("192.0.2.1", name);
  }
  assert.equal(quota.onlineAt("192.0.2.1"), 3);
  assert.equal(quota.refusal("192.0.2.1", "d"), "names-per-address");
  assert.equal(quota.refusal("192.0.2.2", "d"), undefined, "another address has its own");
  quota.leave("192.0.2.1");
  assert.equal(quota.refusal("192.0.2.1", "d"), undefined);
  // A name that moved in (its NAT mapping changed) counts online, not as new.
  quota.arrive("192.0.2.1");
  assert.equal(quota.refusal("192.0.2.1", "d"), "names-per-address");
  assert.equal(quota.newToday("192.0.2.1"), 3);
});

Deno.test("NameQuota: distinct new names per address per rolling day", () => {
  const { clock, quota } = setup();
  const come = (name: string) => {
    assert.equal(quota.refusal("192.0.2.1", name), undefined, name);
    quota.admit("192.0.2.1", name);
    quota.leave("192.0.2.1");
  };
  for (const name of ["a", "b", "c", "d", "e"]) {
    come(name);
    clock.advance(HOUR);
  }
  assert.equal(quota.newToday("192.0.2.1"), 5);
  assert.equal(quota.refusal("192.0.2.1", "f"), "new-names-per-address-per-day");
  come("a"); // a name already counted today comes back for free, as often as it likes
  come("c");
  assert.equal(quota.newToday("192.0.2.1"), 5);
  // 24 hours after "a" first came, its record lapses and one new name fits.
  clock.advance(19 * HOUR - 1);
  assert.equal(quota.refusal("192.0.2.1", "f"), "new-names-per-address-per-day");
  clock.advance(1);
  come("f");
  assert.equal(quota.refusal("192.0.2.1", "g"), "new-names-per-address-per-day");
  // A day after the last, the address has forgotten everything.
  clock.advance(24 * HOUR);
  quota.sweep();
  assert.equal(quota.newToday("192.0.2.1"), 0);
  assert.equal(quota.remembered, 0);
});

Deno.test("NameQuota: memory is bounded; the address heard from least recently goes first", () => {
  const { quota } = setup({ perAddress: 100, perAddressPerDay: 100, max: 10 });
  for (let i = 0; i < 6; i++) quota.admit("192.0.2.1", `a${i}`);
  for (let i = 0; i < 4; i++) quota.admit("192.0.2.2", `b${i}`);
  assert.equal(quota.remembered, 10);
  quota.admit("192.0.2.1", "a6"); // one too many: 192.0.2.2, heard from less recently, goes
  assert.equal(quota.newToday("192.0.2.2"), 0, "forgotten");
  assert.equal(quota.newToday("192.0.2.1"), 7);
  assert.equal(quota.remembered, 7);
});
