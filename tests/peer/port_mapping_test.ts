// The port mapping's I/O layer says why it does nothing, and never talks to a router, on loopback
// or without a gateway.
import assert from "node:assert/strict";
import { checkPortMapping, PortMapping } from "../../lib/peer/port_mapping.ts";

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
