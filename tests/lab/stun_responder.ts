/**
 * A minimal STUN Binding responder (RFC 8489) for the NAT lab, run as a program inside a lab
 * namespace: `stun_responder.ts PORT`. It answers every Binding request with XOR-MAPPED-ADDRESS
 * (and MAPPED-ADDRESS, for RFC 3489 clients), always from the port it was asked on: a
 * CHANGE-REQUEST is ignored.
 *
 * Why it exists: miniupnpd refuses to map ports while its WAN address is a reserved one (and the
 * lab's "internet" is made of documentation prefixes), unless `ext_perform_stun` tells it that its
 * WAN is reachable: it sends four Binding requests, and wants four answers that show its own
 * address and ports unchanged. This responder gives it those answers (docs/LAB.md).
 *
 * @example
 * ```ts
 * const child = lab.spawn(srv, [Deno.execPath(), "run", "-A", "tests/lab/stun_responder.ts", "3478"]);
 * ```
 * @module
 */
import dgram from "node:dgram";

const MAGIC = 0x2112a442;

/**
 * The answer to a Binding request `req` seen from `ip:port` (IPv4), or undefined when `req` is
 * not a Binding request.
 *
 * @example
 * ```ts
 * const answer = bindingAnswer(request, "203.0.113.2", 4000);
 * ```
 */
export function bindingAnswer(req: Uint8Array, ip: string, port: number): Uint8Array | undefined {
  if (req.length < 20 || req[0] !== 0x00 || req[1] !== 0x01) return undefined;
  const octets = ip.split(".").map(Number);
  if (octets.length !== 4) return undefined;
  const out = new Uint8Array(20 + 24);
  const view = new DataView(out.buffer);
  view.setUint16(0, 0x0101);
  view.setUint16(2, 24);
  out.set(req.subarray(4, 20), 4); // the cookie (or RFC 3489's id part) and the transaction id
  const cookie = view.getUint32(4) === MAGIC;
  // XOR-MAPPED-ADDRESS, then MAPPED-ADDRESS.
  view.setUint16(20, cookie ? 0x0020 : 0x8020);
  view.setUint16(22, 8);
  view.setUint16(24, 0x0001);
  view.setUint16(26, port ^ (MAGIC >>> 16));
  view.setUint32(
    28,
    ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) ^ MAGIC,
  );
  view.setUint16(32, 0x0001);
  view.setUint16(34, 8);
  view.setUint16(36, 0x0001);
  view.setUint16(38, port);
  out.set(octets, 40);
  return out;
}

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? "3478");
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, rinfo) => {
    const answer = bindingAnswer(new Uint8Array(msg), rinfo.address, rinfo.port);
    if (answer) socket.send(answer, rinfo.port, rinfo.address);
  });
  socket.bind(port, "0.0.0.0", () => console.log(JSON.stringify({ ready: port })));
}
