import assert from "node:assert/strict";
import { Coordinator } from "../lib/coordinator.ts";
import { checkNat } from "../lib/nat_check.ts";
import { runP2p } from "./support/proc.ts";

Deno.test("p2p nat on loopback: no NAT, both coordinator ports agree", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  try {
    assert.ok(coordinator.altPort !== undefined);
    const report = await checkNat({
      server: { host: "127.0.0.1", port: coordinator.udpPort },
      altPort: coordinator.altPort,
    });
    assert.equal(report.mapping, "none");
    assert.equal(report.public, report.local);
    assert.equal(report.publicAlt, report.local);
    assert.match(report.summary, /No NAT/);
  } finally {
    await coordinator.close();
  }
});

Deno.test("p2p nat says so plainly when no coordinator answers", async () => {
  // A port nobody listens on (bound and closed at once), on loopback.
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const r = await runP2p(["nat", `127.0.0.1:${port}`, "--json"]);
  assert.equal(r.code, 1);
  const report = JSON.parse(r.stdout);
  assert.equal(report.mapping, "unknown");
  assert.match(report.summary, /No answer/);
});
