// The port mapper against fake gateways on a fake clock: PCP first, NAT-PMP after, renewals,
// a gateway restart, the delete at stop, and gateways that lie or stay silent.
import assert from "node:assert/strict";
import {
  PortMapper,
  type PortMapperOptions,
  type PortMapping,
} from "../../lib/portmap/port_mapper.ts";
import { encodeNatPmpAddressResponse, encodeNatPmpMapResponse } from "../../lib/portmap/natpmp.ts";
import { encodePcpMapResponse } from "../../lib/portmap/pcp.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { FakeClock } from "../support/fake_clock.ts";

const GW = "10.1.0.1";
const FROM_GW = { host: GW, port: 5351 };

interface Sent {
  data: Uint8Array;
  to: Endpoint;
}

/** A mapper on a fake clock, with what it sent and what it reported. */
function harness(options: Partial<PortMapperOptions> = {}) {
  const clock = new FakeClock();
  const sent: Sent[] = [];
  const changes: (PortMapping | undefined)[] = [];
  const mapper = new PortMapper({
    gateway: GW,
    clientAddress: "10.1.0.2",
    internalPort: 4000,
    send: (data, to) => sent.push({ data, to }),
    onChange: (m) => changes.push(m),
    clock,
    ...options,
  });
  return { clock, sent, changes, mapper };
}

/** A PCP gateway's answer to a request (its nonce echoed), with what it grants. */
function pcpAnswer(
  request: Uint8Array,
  grant: { port?: number; address?: string; lifetime?: number; epoch?: number; result?: number },
): Uint8Array {
  const view = new DataView(request.buffer, request.byteOffset);
  return encodePcpMapResponse({
    version: 2,
    opcode: 1,
    result: grant.result ?? 0,
    lifetime: grant.lifetime ?? 7200,
    epoch: grant.epoch ?? 100,
    map: {
      nonce: request.slice(24, 36),
      protocol: 17,
      internalPort: view.getUint16(40),
      externalPort: grant.port ?? view.getUint16(42),
      externalAddress: grant.address ?? "203.0.113.2",
    },
  });
}

Deno.test("port mapper: PCP maps, renews at half the lifetime, deletes at stop", async () => {
  const { clock, sent, changes, mapper } = harness({ checkMs: 10 * 60_000 });
  mapper.start();
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].to, FROM_GW);
  assert.equal(sent[0].data[0], 2, "PCP first");
  assert.equal(
    mapper.receive(pcpAnswer(sent[0].data, { port: 40000, lifetime: 600 }), FROM_GW),
    true,
  );
  assert.deepEqual(changes.map((m) => m?.external), [{ host: "203.0.113.2", port: 40000 }]);
  assert.equal(mapper.status().state, "mapped");

  clock.advance(299_000);
  assert.equal(sent.length, 1, "no renewal before half the lifetime");
  clock.advance(1_000);
  assert.equal(sent.length, 2, "renewal at half the lifetime");
  const renewal = sent[1].data;
  assert.deepEqual(renewal.slice(24, 36), sent[0].data.slice(24, 36), "same nonce");
  assert.equal(new DataView(renewal.buffer).getUint16(42), 40000, "asks for the port it has");
  mapper.receive(pcpAnswer(renewal, { lifetime: 600, epoch: 400 }), FROM_GW);
  assert.equal(changes.length, 1, "an unchanged renewal is not news");

  const stopping = mapper.stop();
  const del = sent[2].data;
  assert.equal(new DataView(del.buffer).getUint32(4), 0, "the delete asks for lifetime 0");
  mapper.receive(pcpAnswer(del, { lifetime: 0, epoch: 401 }), FROM_GW);
  await stopping;
  assert.equal(mapper.status().state, "stopped");
});

Deno.test("port mapper: a NAT-PMP-only gateway: PCP's refusal moves on at once", () => {
  const { sent, changes, mapper } = harness();
  mapper.start();
  // NAT-PMP's "unsupported version" to our PCP request.
  mapper.receive(new Uint8Array([0, 129, 0, 1, 0, 0, 0, 5]), FROM_GW);
  assert.deepEqual([...sent[1].data], [0, 0], "then NAT-PMP's address request");
  mapper.receive(
    encodeNatPmpAddressResponse({
      op: "address",
      result: 0,
      epoch: 5,
      externalAddress: "203.0.113.2",
    }),
    FROM_GW,
  );
  assert.equal(sent[2].data[1], 1, "then its map request");
  mapper.receive(
    encodeNatPmpMapResponse({
      op: "map-udp",
      result: 0,
      epoch: 5,
      internalPort: 4000,
      externalPort: 4000,
      lifetime: 7200,
    }),
    FROM_GW,
  );
  assert.deepEqual(changes, [{
    protocol: "natpmp",
    external: { host: "203.0.113.2", port: 4000 },
    lifetime: 7200,
    grantedAt: changes[0]!.grantedAt,
  }]);
});

Deno.test("port mapper: a silent gateway costs 2 sends and 750 ms per protocol, then a retry later", async () => {
  const { clock, sent, changes, mapper } = harness({ retryMs: 60_000 });
  mapper.start();
  const settled = mapper.settled();
  clock.advance(749);
  assert.equal(sent.length, 2, "PCP sent twice");
  clock.advance(1);
  assert.equal(sent.length, 3, "then NAT-PMP");
  clock.advance(750);
  const status = await settled;
  assert.equal(status.state, "failed");
  assert.equal(sent.length, 4);
  assert.deepEqual(changes, []);
  assert.match(status.notes.join("\n"), /PCP: no answer.*\n.*NAT-PMP: no answer/);
  clock.advance(60_000);
  assert.equal(sent.length, 5, "tries again after retryMs");
  assert.equal(sent[4].data[0], 2);
});

Deno.test("port mapper: lies are not believed", async (t) => {
  await t.step(
    "an answer from elsewhere, another nonce or another internal port is ignored",
    () => {
      const { sent, changes, mapper } = harness();
      mapper.start();
      const req = sent[0].data;
      assert.equal(mapper.receive(pcpAnswer(req, {}), { host: "10.1.0.9", port: 5351 }), false);
      assert.equal(mapper.receive(pcpAnswer(req, {}), { host: GW, port: 5350 }), false);
      const otherNonce = req.slice();
      otherNonce[24] ^= 1;
      mapper.receive(pcpAnswer(otherNonce, {}), FROM_GW);
      const otherPort = req.slice();
      new DataView(otherPort.buffer).setUint16(40, 4001);
      mapper.receive(pcpAnswer(otherPort, {}), FROM_GW);
      mapper.receive(new Uint8Array([1, 2, 3]), FROM_GW);
      assert.deepEqual(changes, []);
      assert.equal(mapper.status().state, "trying");
      assert.match(mapper.status().notes.join("\n"), /another nonce or internal port/);
      // The true answer still counts.
      mapper.receive(pcpAnswer(req, {}), FROM_GW);
      assert.equal(changes.length, 1);
    },
  );
  await t.step("an external address the coordinator does not see is refused", () => {
    const { sent, changes, mapper } = harness({ publicHost: () => "198.51.100.77" });
    mapper.start();
    mapper.receive(pcpAnswer(sent[0].data, { address: "203.0.113.2" }), FROM_GW);
    assert.deepEqual(changes, []);
    assert.match(mapper.status().notes.join("\n"), /coordinator sees us at 198\.51\.100\.77/);
    assert.deepEqual([...sent[1].data], [0, 0], "moves on to NAT-PMP");
  });
  await t.step("a NAT-PMP mapping of another internal port is ignored", () => {
    const { sent, changes, mapper } = harness();
    mapper.start();
    mapper.receive(new Uint8Array([0, 129, 0, 1, 0, 0, 0, 5]), FROM_GW);
    mapper.receive(
      encodeNatPmpAddressResponse({
        op: "address",
        result: 0,
        epoch: 5,
        externalAddress: "203.0.113.2",
      }),
      FROM_GW,
    );
    mapper.receive(
      encodeNatPmpMapResponse({
        op: "map-udp",
        result: 0,
        epoch: 5,
        internalPort: 5000,
        externalPort: 5000,
        lifetime: 60,
      }),
      FROM_GW,
    );
    assert.deepEqual(changes, []);
    assert.equal(sent.length, 3);
  });
});

Deno.test("port mapper: a gateway restart (epoch back) is noticed at the next check and reported", () => {
  const { clock, sent, changes, mapper } = harness({ checkMs: 60_000 });
  mapper.start();
  mapper.receive(pcpAnswer(sent[0].data, { port: 40000, epoch: 1000 }), FROM_GW);
  clock.advance(60_000);
  assert.equal(sent.length, 2, "checked after checkMs although the lifetime is long");
  // The gateway rebooted: epoch 3 instead of about 1060; it maps again, here on the same port.
  mapper.receive(pcpAnswer(sent[1].data, { port: 40000, epoch: 3 }), FROM_GW);
  assert.equal(changes.length, 2, "the fresh mapping is reported");
  assert.match(mapper.status().notes.join("\n"), /restarted \(epoch 1000 → 3\)/);
  clock.advance(60_000);
  mapper.receive(pcpAnswer(sent[2].data, { port: 40001, epoch: 63 }), FROM_GW);
  assert.deepEqual(changes[2]?.external, { host: "203.0.113.2", port: 40001 }, "a moved port too");
});

Deno.test("port mapper: a renewal refused or unanswered until expiry loses the mapping", () => {
  const { clock, sent, changes, mapper } = harness({ checkMs: 1_000_000 });
  mapper.start();
  mapper.receive(pcpAnswer(sent[0].data, { lifetime: 8 }), FROM_GW);
  clock.advance(4_000); // renewal: no answer, ever
  clock.advance(10_000);
  assert.equal(changes.at(-1), undefined, "lost");
  assert.equal(changes.length, 2);
  assert.match(mapper.status().notes.join("\n"), /expired/);
  assert.ok(sent.length >= 4, `renewals were sent (${sent.length})`);
});

Deno.test("port mapper: UPnP after PCP and NAT-PMP are silent; renewed, and unmapped at stop", async () => {
  const calls: string[] = [];
  const upnp = {
    map: (r: { internalPort: number; externalPort: number; lifetime: number }) => {
      calls.push(`map ${r.internalPort}->${r.externalPort} ${r.lifetime}`);
      return Promise.resolve({ external: { host: "203.0.113.2", port: 4000 }, lifetime: 0 });
    },
    unmap: (port: number) => {
      calls.push(`unmap ${port}`);
      return Promise.resolve();
    },
  };
  const { clock, changes, mapper } = harness({ upnp, checkMs: 60_000 });
  mapper.start();
  clock.advance(1500); // PCP and NAT-PMP: no answer
  await Promise.resolve();
  assert.deepEqual(calls, ["map 4000->4000 7200"]);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(changes[0]?.protocol, "upnp");
  assert.equal(changes[0]?.lifetime, 7200, "a lease of 0 (until deleted) is renewed as 2 hours");
  clock.advance(60_000);
  assert.equal(calls.length, 2, "renewed at the check interval");
  await new Promise((r) => setTimeout(r, 0));
  await mapper.stop();
  assert.deepEqual(calls.at(-1), "unmap 4000");
});

Deno.test("port mapper: stopped while UPnP is granting: the late grant is deleted", async () => {
  const calls: string[] = [];
  let grant: (g: { external: { host: string; port: number }; lifetime: number }) => void = () => {};
  const upnp = {
    map: () => {
      calls.push("map");
      return new Promise<{ external: { host: string; port: number }; lifetime: number }>((r) =>
        grant = r
      );
    },
    unmap: (port: number) => {
      calls.push(`unmap ${port}`);
      return Promise.resolve();
    },
  };
  const { clock, changes, mapper } = harness({ upnp });
  mapper.start();
  clock.advance(1500); // PCP and NAT-PMP: no answer; UPnP asked
  await Promise.resolve();
  assert.deepEqual(calls, ["map"]);
  await mapper.stop(); // while the router is still answering
  grant({ external: { host: "203.0.113.2", port: 4000 }, lifetime: 7200 });
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(calls, ["map", "unmap 4000"]);
  assert.equal(changes.length, 0, "never reported as ours");
});

Deno.test("port mapper: UPnP refusing too: failed, with every protocol's reason", async () => {
  const upnp = {
    map: () => Promise.reject(new Error("UPnP: no SSDP answer from 10.1.0.1")),
    unmap: () => Promise.resolve(),
  };
  const { clock, mapper } = harness({ upnp });
  mapper.start();
  const settled = mapper.settled();
  clock.advance(1500);
  const status = await settled;
  assert.equal(status.state, "failed");
  assert.match(status.notes.join("\n"), /PCP: no answer[^]*NAT-PMP: no answer[^]*UPnP: no SSDP/);
});
