// The port-mapping codecs: NAT-PMP (RFC 6886) and PCP (RFC 6887) requests and answers, byte for
// byte, real answers of miniupnpd 2.3.1 (captured in the lab), and 100,000 random and mutated
// answers each, which may only ever raise the codec's own error.
import assert from "node:assert/strict";
import {
  decodeNatPmpResponse,
  encodeNatPmpAddressRequest,
  encodeNatPmpAddressResponse,
  encodeNatPmpMapRequest,
  encodeNatPmpMapResponse,
  NatPmpError,
} from "../../lib/portmap/natpmp.ts";
import {
  decodePcpResponse,
  encodePcpMapRequest,
  encodePcpMapResponse,
  PcpError,
  type PcpResponse,
} from "../../lib/portmap/pcp.ts";
import { AddressError, addressFromBytes16, addressToBytes16 } from "../../lib/net/ip_bytes.ts";
import { mutate, randomBytes } from "../support/fuzz.ts";
import { prng } from "../support/prng.ts";

const hex = (text: string): Uint8Array =>
  new Uint8Array(text.replace(/\s/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

Deno.test("natpmp: requests are RFC 6886's bytes", () => {
  assert.deepEqual(encodeNatPmpAddressRequest(), hex("0000"));
  assert.deepEqual(
    encodeNatPmpMapRequest({ internalPort: 4000, suggestedPort: 4001, lifetime: 7200 }),
    hex("0001 0000 0fa0 0fa1 00001c20"),
  );
  // A delete: lifetime 0 and suggested port 0.
  assert.deepEqual(
    encodeNatPmpMapRequest({ internalPort: 4000, suggestedPort: 0, lifetime: 0 }),
    hex("0001 0000 0fa0 0000 00000000"),
  );
  assert.throws(
    () => encodeNatPmpMapRequest({ internalPort: 0, suggestedPort: 0, lifetime: 1 }),
    NatPmpError,
  );
  assert.throws(
    () => encodeNatPmpMapRequest({ internalPort: 1, suggestedPort: 0, lifetime: -1 }),
    NatPmpError,
  );
});

Deno.test("natpmp: miniupnpd's answers decode", () => {
  // Captured from miniupnpd 2.3.1 in the lab (tests/lab/netlab.ts startMiniupnpd).
  assert.deepEqual(decodeNatPmpResponse(hex("0080 0000 00000001 cb007102")), {
    op: "address",
    result: 0,
    epoch: 1,
    externalAddress: "203.0.113.2",
  });
  assert.deepEqual(decodeNatPmpResponse(hex("0081 0000 00000001 0fa0 0fa0 0000003c")), {
    op: "map-udp",
    result: 0,
    epoch: 1,
    internalPort: 4000,
    externalPort: 4000,
    lifetime: 60,
  });
  // Its "network failure" while it cannot forward (a reserved WAN address).
  assert.deepEqual(decodeNatPmpResponse(hex("0081 0003 00000002 0fa0 0fa0 0000003c")), {
    op: "map-udp",
    result: 3,
    epoch: 2,
  });
  // Short error answers are fine; short successes, other versions and opcodes are not.
  assert.equal(decodeNatPmpResponse(hex("0081 0001 00000000")).result, 1);
  assert.throws(() => decodeNatPmpResponse(hex("0081 0000 00000000")), NatPmpError);
  assert.throws(() => decodeNatPmpResponse(hex("0280 0000 00000001 cb007102")), NatPmpError);
  assert.throws(
    () => decodeNatPmpResponse(hex("0082 0000 00000001 0fa0 0fa0 0000003c")),
    NatPmpError,
  );
  assert.throws(() => decodeNatPmpResponse(hex("0001 0000 0fa0 0000 00000000")), NatPmpError);
});

Deno.test("natpmp: what the fake-gateway encoders write decodes back", () => {
  const address = { op: "address", result: 0, epoch: 77, externalAddress: "198.51.100.9" } as const;
  assert.deepEqual(decodeNatPmpResponse(encodeNatPmpAddressResponse(address)), address);
  const map = {
    op: "map-udp",
    result: 0,
    epoch: 78,
    internalPort: 1,
    externalPort: 65535,
    lifetime: 0xffffffff,
  } as const;
  assert.deepEqual(decodeNatPmpResponse(encodeNatPmpMapResponse(map)), map);
});

const NONCE = hex("0102030405060708090a0b0c");

Deno.test("pcp: a MAP request is RFC 6887's 60 bytes", () => {
  const request = encodePcpMapRequest({
    clientAddress: "10.1.0.2",
    nonce: NONCE,
    internalPort: 4000,
    suggestedPort: 4000,
    lifetime: 7200,
  });
  assert.deepEqual(
    request,
    hex(
      "02 01 0000 00001c20 00000000000000000000ffff0a010002" + // header: version, MAP, lifetime, client
        "0102030405060708090a0b0c 11 000000 0fa0 0fa0 00000000000000000000ffff00000000",
    ),
  );
  const v6 = encodePcpMapRequest({
    clientAddress: "2001:db8::2",
    nonce: NONCE,
    internalPort: 4000,
    suggestedPort: 0,
    suggestedAddress: "::",
    lifetime: 0,
  });
  assert.deepEqual(v6.subarray(8, 24), hex("20010db8000000000000000000000002"));
  assert.deepEqual(v6.subarray(44, 60), new Uint8Array(16));
  assert.throws(
    () => encodePcpMapRequest({ ...baseRequest(), nonce: new Uint8Array(11) }),
    PcpError,
  );
  assert.throws(() => encodePcpMapRequest({ ...baseRequest(), clientAddress: "10.1.0" }), PcpError);
  assert.throws(() => encodePcpMapRequest({ ...baseRequest(), internalPort: 70000 }), PcpError);
});

function baseRequest() {
  return {
    clientAddress: "10.1.0.2",
    nonce: NONCE,
    internalPort: 4000,
    suggestedPort: 0,
    lifetime: 60,
  };
}

Deno.test("pcp: MAP responses decode, options are skipped, NAT-PMP's refusal is a downgrade", () => {
  const ok: PcpResponse = {
    version: 2,
    opcode: 1,
    result: 0,
    lifetime: 120,
    epoch: 33,
    map: {
      nonce: NONCE,
      protocol: 17,
      internalPort: 4000,
      externalPort: 40123,
      externalAddress: "203.0.113.2",
    },
  };
  const bytes = encodePcpMapResponse(ok);
  assert.deepEqual(decodePcpResponse(bytes), ok);
  // With a 5-byte option padded to 8 (THIRD_PARTY-like layout): still decodes.
  const withOption = new Uint8Array([...bytes, 0x01, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
  assert.deepEqual(decodePcpResponse(withOption), ok);
  // An option longer than the message, and lengths not a multiple of 4, are refused.
  assert.throws(
    () => decodePcpResponse(new Uint8Array([...bytes, 0x01, 0x00, 0x00, 0x09, 1, 2, 3, 4])),
    PcpError,
  );
  assert.throws(() => decodePcpResponse(new Uint8Array([...bytes, 0])), PcpError);
  // An error answer may be the bare header.
  const refused = encodePcpMapResponse({
    version: 2,
    opcode: 1,
    result: 2,
    lifetime: 30,
    epoch: 1,
  });
  assert.deepEqual(decodePcpResponse(refused), {
    version: 2,
    opcode: 1,
    result: 2,
    lifetime: 30,
    epoch: 1,
  });
  // A success without the MAP data, a request (R bit clear), another version: refused.
  const bare = encodePcpMapResponse({ version: 2, opcode: 1, result: 0, lifetime: 30, epoch: 1 });
  assert.throws(() => decodePcpResponse(bare), PcpError);
  const request = encodePcpMapRequest(baseRequest());
  assert.throws(() => decodePcpResponse(request), PcpError);
  const v3 = bytes.slice();
  v3[0] = 3;
  assert.throws(() => decodePcpResponse(v3), PcpError);
  // A NAT-PMP gateway's answer: version 0, opcode 128 + 1, result 1 (unsupported version).
  assert.deepEqual(decodePcpResponse(hex("0081 0001 00000000")), { version: 0, result: 1 });
});

Deno.test("ip bytes: IPv4-mapped and IPv6 round trips, RFC 5952 text", () => {
  for (const ip of ["0.0.0.0", "203.0.113.2", "::", "::1", "2001:db8::1", "2001:db8:0:1:1:1:1:1"]) {
    assert.equal(addressFromBytes16(addressToBytes16(ip)), ip);
  }
  assert.equal(addressFromBytes16(addressToBytes16("2001:DB8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  assert.equal(addressFromBytes16(addressToBytes16("::ffff:192.0.2.1")), "192.0.2.1");
  for (const bad of ["1.2.3", "1.2.3.256", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::"]) {
    assert.throws(() => addressToBytes16(bad), AddressError, bad);
  }
});

/** Random inputs and mutations of valid answers: only the codec's own error may come out. */
function fuzz(
  seeds: Uint8Array[],
  decode: (b: Uint8Array) => unknown,
  ownError: new (...a: never[]) => Error,
): number {
  const rand = prng(15);
  let decoded = 0;
  for (let i = 0; i < 100_000; i++) {
    const input = i % 2 === 0
      ? randomBytes(rand, 80)
      : mutate(rand, seeds[i % seeds.length], [0, 1, 2, 0x80, 0x81, 0xff]);
    try {
      decode(input);
      decoded++;
    } catch (err) {
      if (!(err instanceof ownError)) throw new Error(`input ${input} threw ${err}`);
    }
  }
  return decoded;
}

Deno.test("fuzz: decodeNatPmpResponse throws only NatPmpError on 100,000 inputs", () => {
  const seeds = [
    hex("0080 0000 00000001 cb007102"),
    hex("0081 0000 00000001 0fa0 0fa0 0000003c"),
    hex("0081 0003 00000002"),
  ];
  const decoded = fuzz(seeds, decodeNatPmpResponse, NatPmpError);
  assert.ok(decoded > 1000, `only ${decoded} inputs decoded: the fuzzer misses the decoder`);
});

Deno.test("fuzz: decodePcpResponse throws only PcpError on 100,000 inputs", () => {
  const ok = encodePcpMapResponse({
    version: 2,
    opcode: 1,
    result: 0,
    lifetime: 120,
    epoch: 33,
    map: {
      nonce: NONCE,
      protocol: 17,
      internalPort: 4000,
      externalPort: 4000,
      externalAddress: "2001:db8::7",
    },
  });
  const seeds = [ok, new Uint8Array([...ok, 1, 0, 0, 4, 9, 9, 9, 9]), hex("0081 0001 00000000")];
  const decoded = fuzz(seeds, decodePcpResponse, PcpError);
  assert.ok(decoded > 1000, `only ${decoded} inputs decoded: the fuzzer misses the decoder`);
});
