// The default gateway from /proc/net/route's text.
import assert from "node:assert/strict";
import { parseProcNetRoute } from "../../lib/portmap/gateway.ts";

const HEAD =
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

Deno.test("gateway: the default route with the lowest metric, little-endian hex", () => {
  const text = HEAD +
    "eth0\t0000010A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" + // the LAN, no gateway
    "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
    "eth0\t00000000\t0100010A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  assert.equal(parseProcNetRoute(text), "10.1.0.1");
});

Deno.test("gateway: none without a default route that is up and has a gateway", () => {
  assert.equal(parseProcNetRoute(HEAD), undefined);
  assert.equal(parseProcNetRoute(""), undefined);
  assert.equal(
    parseProcNetRoute(HEAD + "eth0\t00000000\t0100010A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"),
    undefined,
    "down",
  );
  assert.equal(
    parseProcNetRoute(HEAD + "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"),
    undefined,
    "on-link default, no gateway",
  );
  assert.equal(parseProcNetRoute(HEAD + "garbage line\n\tzz\tqq\n"), undefined);
});
