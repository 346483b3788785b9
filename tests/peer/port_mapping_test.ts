// The port mapping's I/O layer says why it does nothing, and never talks to a router, on loopback
// or without a gateway.
import assert from "node:assert/strict";
import {
  checkPortMapping,
  FollowingPortMapping,
  PortMapping,
} from "../../lib/peer/port_mapping.ts";

Deno.test("port mapping: skipped on loopback, silently, without asking for the gateway", async () => {
  let asked = false;
  const reasons: string[] = [];
  const gateway = () => {
    asked = true;
    return Promise.resolve({ gateway: "10.1.0.1" });
  };
  for (const [server, bindHost] of [["127.0.0.1", undefined], ["198.51.100.2", "127.0.0.1"]]) {
    const m = await PortMapping.open({
      port: 4000,
      server: { host: server!, port: 7000 },
      bindHost,
      gateway,
      onFailed: (r) => reasons.push(r),
    });
    assert.match(m.skipped ?? "", /loopback/);
    assert.equal(m.status(), undefined);
    await m.close();
  }
  assert.equal(asked, false);
  assert.deepEqual(reasons, [], "nothing to report: no router is involved");
});

Deno.test("port mapping: no gateway, no mapping, and p2p nat says why", async () => {
  const report = await checkPortMapping({
    port: 4000,
    server: { host: "198.51.100.2", port: 7000 },
    gateway: () => Promise.resolve({ reason: "no default IPv4 route (no gateway to ask)" }),
  });
  assert.deepEqual(report, { reason: "no default IPv4 route (no gateway to ask)" });
});

Deno.test("port mapping follows the coordinator in use, onto loopback and off it", async () => {
  let asked = 0;
  const reasons: string[] = [];
  // No gateway: nothing is sent anywhere, but asking for one shows that a mapping was tried.
  const gateway = () => {
    asked++;
    return Promise.resolve({ reason: "no default IPv4 route (no gateway to ask)" });
  };
  const server = { host: "127.0.0.1", port: 7000 };
  const mapping = new FollowingPortMapping({
    port: 4000,
    server,
    gateway,
    onFailed: (r) => reasons.push(r),
  });
  try {
    assert.match((await mapping.current).skipped ?? "", /loopback/);
    const first = mapping.current;
    mapping.followServer(); // still on loopback: the same one
    assert.equal(mapping.current, first);
    assert.equal(asked, 0);
    // A failover to a coordinator off loopback (Presence changes the endpoint in place).
    Object.assign(server, { host: "198.51.100.2", port: 7000 });
    mapping.followServer();
    assert.match((await mapping.current).skipped ?? "", /no default IPv4 route/);
    assert.equal(asked, 1);
    assert.deepEqual(reasons, ["no default IPv4 route (no gateway to ask)"]);
    // And back onto loopback: no router to ask.
    Object.assign(server, { host: "127.0.0.1", port: 7001 });
    mapping.followServer();
    assert.match((await mapping.current).skipped ?? "", /loopback/);
    assert.equal(asked, 1);
  } finally {
    await mapping.close();
  }
});
