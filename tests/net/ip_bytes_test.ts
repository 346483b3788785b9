import assert from "node:assert/strict";
import { isIPv4, isIPv6 } from "node:net";
import {
  AddressError,
  addressFromBytes16,
  addressToBytes16,
  formatIp,
  ipBytes,
  ipv4ToBytes,
} from "../../lib/net/ip_bytes.ts";
import { prng } from "../support/prng.ts";

Deno.test("ipBytes and formatIp: both families, RFC 5952 text, a dotted tail", () => {
  assert.deepEqual(ipBytes("192.0.2.1"), new Uint8Array([192, 0, 2, 1]));
  assert.deepEqual(
    ipBytes("::ffff:192.0.2.1").subarray(10),
    new Uint8Array([255, 255, 192, 0, 2, 1]),
  );
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
  ];
  for (const [text, canonical] of cases) assert.equal(formatIp(ipBytes(text)), canonical, text);
  assert.throws(() => formatIp(new Uint8Array(5)), AddressError);
});

Deno.test("ipBytes refuses what is not an address, saying what it expected", () => {
  const cases: [string, string][] = [
    ["x", '"x" is not an IP address'],
    ["1.2.3", '"1.2.3" is not an IPv4 address'],
    ["256.0.0.1", '"256.0.0.1" is not an IPv4 address'],
    ["1::2::3", `"1::2::3" is not an IPv6 address (two '::')`],
    ["1:2:3:4:5:6:7:8:9", '"1:2:3:4:5:6:7:8:9" is not an IPv6 address (wrong number of groups)'],
    ["1:2:3:4:5:6:7:8::", '"1:2:3:4:5:6:7:8::" is not an IPv6 address (wrong number of groups)'],
    ["::ffff:1.2.3", '"::ffff:1.2.3" is not an IPv6 address'],
    ["1.2.3.4::", '"1.2.3.4::" is not an IPv6 address'],
    ["fe80::1%eth0", '"fe80::1%eth0" is not an IPv6 address'],
    ["12345::", '"12345::" is not an IPv6 address'],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => ipBytes(text), (err: Error) => {
      assert.ok(err instanceof AddressError && err instanceof RangeError);
      assert.equal(err.message, message);
      return true;
    });
  }
  assert.throws(() => ipv4ToBytes("::1"), /'::1' is not an IPv4 address \(expected a\.b\.c\.d\)/);
});

Deno.test("16-byte fields: IPv4 as IPv4-mapped and back as a dotted quad", () => {
  assert.deepEqual([...addressToBytes16("203.0.113.5").subarray(10)], [255, 255, 203, 0, 113, 5]);
  assert.equal(addressFromBytes16(addressToBytes16("203.0.113.5")), "203.0.113.5");
  assert.equal(addressFromBytes16(addressToBytes16("::ffff:203.0.113.5")), "203.0.113.5");
  assert.equal(addressFromBytes16(addressToBytes16("2001:db8::1")), "2001:db8::1");
  assert.throws(() => addressToBytes16("10.1.0"), /'10\.1\.0' is not an IPv4 address/);
  assert.throws(() => addressFromBytes16(new Uint8Array(4)), AddressError);
});

Deno.test("fuzz: 20,000 random addresses print as the URL parser does and read back", () => {
  const random = prng(7);
  for (let i = 0; i < 20_000; i++) {
    const v6 = random() < 0.7;
    const bytes = new Uint8Array(v6 ? 16 : 4);
    // Runs of zero groups are what the printer has to get right.
    for (let j = 0; j < bytes.length; j++) bytes[j] = random() < 0.5 ? 0 : random() * 256 | 0;
    const text = formatIp(bytes);
    assert.ok(v6 ? isIPv6(text) : isIPv4(text), text);
    assert.deepEqual(ipBytes(text), bytes, text);
    if (v6) assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
  }
});
