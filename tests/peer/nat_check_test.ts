import assert from "node:assert/strict";
import { Coordinator } from "../../lib/coordinator.ts";
import { checkNat, natKindOf, type NatReport } from "../../lib/peer/nat_check.ts";
import { encodeWhoami } from "../../lib/protocol/whoami.ts";
import { UdpSocket } from "../../lib/net/udp.ts";
import { type Endpoint, formatEndpoint } from "../../lib/protocol/endpoint.ts";
import { encodeServerMessage } from "../../lib/protocol/seed.ts";
import { runP2p } from "../support/proc.ts";

/**
 * Runs `p2p nat` against two loopback sockets standing in for the coordinator's ports: each
 * answers a whoami with the endpoint `seen` gives it (a NAT's public one), or stays silent.
 * Returns the report and the requests each port received.
 */
async function againstFakePorts(
  seen: [Endpoint | undefined, Endpoint | undefined],
): Promise<{ report: NatReport; requests: string[][] }> {
  const ports = await Promise.all([0, 1].map(() => UdpSocket.bind({ host: "127.0.0.1" })));
  const requests: string[][] = [[], []];
  try {
    ports.forEach((socket, i) =>
      socket.onMessage((data, from) => {
        requests[i].push(new TextDecoder().decode(data));
        const endpoint = seen[i];
        if (endpoint) {
          socket.send(
            new TextEncoder().encode(encodeServerMessage({ type: "you", endpoint })),
            from,
          );
        }
      })
    );
    const report = await checkNat({
      server: ports[0].local,
      altPort: ports[1].local.port,
      timeoutMs: 300,
    });
    return { report, requests };
  } finally {
    await Promise.all(ports.map((s) => s.close()));
  }
}

const PUBLIC = { host: "203.0.113.5", port: 40000 };
const WHOAMI = new TextDecoder().decode(encodeWhoami());

Deno.test("p2p nat sends the padded whoami to both ports and tells the two NAT kinds apart", async () => {
  const easy = await againstFakePorts([PUBLIC, PUBLIC]);
  assert.equal(easy.report.mapping, "endpoint-independent");
  assert.equal(easy.report.kind, "easy");
  assert.equal(easy.report.public, formatEndpoint(PUBLIC));
  assert.equal(easy.report.publicAlt, formatEndpoint(PUBLIC));
  assert.match(easy.report.summary, /hole punching works/);
  for (const port of easy.requests) {
    assert.ok(port.length >= 1 && port.every((r) => r === WHOAMI), JSON.stringify(port));
  }

  const hard = await againstFakePorts([PUBLIC, { ...PUBLIC, port: 40001 }]);
  assert.equal(hard.report.mapping, "endpoint-dependent");
  assert.equal(hard.report.kind, "hard");
  assert.equal(hard.report.publicAlt, "203.0.113.5:40001");
  assert.match(hard.report.summary, /symmetric NAT/);
});

Deno.test("p2p nat: a silent second port leaves the NAT kind unknown, after 3 tries", async () => {
  const { report, requests } = await againstFakePorts([PUBLIC, undefined]);
  assert.equal(report.mapping, "unknown");
  assert.equal(report.kind, undefined);
  assert.equal(report.public, formatEndpoint(PUBLIC));
  assert.equal(report.publicAlt, undefined);
  assert.match(report.summary, /second port did not answer/);
  // The silent port is asked 3 times in all (the main port until it answers).
  assert.ok(requests[0].length >= 1 && requests[0].every((r) => r === WHOAMI));
  assert.deepEqual(requests[1], [WHOAMI, WHOAMI, WHOAMI]);
});

Deno.test("p2p nat on loopback: no NAT, both coordinator ports agree", async () => {
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, log: () => {} });
  try {
    assert.ok(coordinator.altPort !== undefined);
    const report = await checkNat({
      server: { host: "127.0.0.1", port: coordinator.udpPort },
      altPort: coordinator.altPort,
    });
    assert.equal(report.mapping, "none");
    assert.equal(report.kind, "easy");
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

Deno.test("the same endpoint from both ports is an easy NAT, another one a hard NAT", () => {
  const main = { host: "203.0.113.5", port: 4000 };
  assert.equal(natKindOf(main, { host: "203.0.113.5", port: 4000 }), "easy");
  assert.equal(natKindOf(main, { host: "203.0.113.5", port: 4001 }), "hard");
  // Another address (a NAT with a pool of public addresses) is a different mapping too.
  assert.equal(natKindOf(main, { host: "203.0.113.6", port: 4000 }), "hard");
  const v6 = { host: "2001:db8::7", port: 4000 };
  assert.equal(natKindOf(v6, { ...v6 }), "easy");
});
