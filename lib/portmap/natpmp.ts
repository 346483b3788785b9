/**
 * NAT-PMP (RFC 6886), the subset a chat client needs: the external address request, the UDP
 * mapping request (lifetime 0 deletes) and their responses with result code and epoch. Pure
 * codec: bytes in, messages out, no I/O; {@linkcode decodeNatPmpResponse} throws only
 * {@linkcode NatPmpError}, whatever the gateway sent (it is fuzzed).
 *
 * @example
 * ```ts
 * import { decodeNatPmpResponse, encodeNatPmpMapRequest } from "./natpmp.ts";
 *
 * const request = encodeNatPmpMapRequest({ internalPort: 4000, suggestedPort: 4000, lifetime: 7200 });
 * // ... sent to the gateway's port 5351; its answer:
 * // const answer = decodeNatPmpResponse(bytes); // { op: "map-udp", result: 0, externalPort, ... }
 * ```
 * @module
 */
import { ipv4ToBytes } from "../net/ip_bytes.ts";

/** The UDP port NAT-PMP and PCP servers listen on. */
export const PORT_MAPPING_SERVER_PORT = 5351;

/** Result codes (RFC 6886 §3.5), by number, in words. */
export const NATPMP_RESULTS: Readonly<Record<number, string>> = {
  0: "success",
  1: "unsupported version",
  2: "not authorized/refused",
  3: "network failure",
  4: "out of resources",
  5: "unsupported opcode",
};

/** A NAT-PMP answer that cannot be read. */
export class NatPmpError extends Error {
  override name = "NatPmpError";
}

/** The answer to an external address request (opcode 128). */
export interface NatPmpAddressResponse {
  op: "address";
  /** 0 is success; see {@linkcode NATPMP_RESULTS}. */
  result: number;
  /** Seconds since the gateway's mapping table was (re)started. */
  epoch: number;
  /** The gateway's external IPv4 address (only on success). */
  externalAddress?: string;
}

/** The answer to a UDP mapping request (opcode 129). */
export interface NatPmpMapResponse {
  op: "map-udp";
  result: number;
  epoch: number;
  /** On success: the internal port mapped (must be the one we asked for). */
  internalPort?: number;
  /** On success: the external port assigned (0 after a delete). */
  externalPort?: number;
  /** On success: seconds the mapping lives (0 after a delete). */
  lifetime?: number;
}

/** A NAT-PMP answer. */
export type NatPmpResponse = NatPmpAddressResponse | NatPmpMapResponse;

/** What to map, in {@linkcode encodeNatPmpMapRequest}. */
export interface NatPmpMapRequest {
  /** Our socket's port. */
  internalPort: number;
  /** The external port we would like (0: any). */
  suggestedPort: number;
  /** Seconds; 0 deletes the mapping. */
  lifetime: number;
}

/**
 * The external address request: version 0, opcode 0.
 *
 * @example
 * ```ts
 * encodeNatPmpAddressRequest(); // Uint8Array [0, 0]
 * ```
 */
export function encodeNatPmpAddressRequest(): Uint8Array {
  return new Uint8Array([0, 0]);
}

/**
 * A UDP mapping request (12 bytes). Lifetime 0 with suggested port 0 deletes the mapping.
 *
 * @example
 * ```ts
 * encodeNatPmpMapRequest({ internalPort: 4000, suggestedPort: 0, lifetime: 0 }).length; // 12
 * ```
 */
export function encodeNatPmpMapRequest(request: NatPmpMapRequest): Uint8Array {
  checkPort(request.internalPort, "internal port", false);
  checkPort(request.suggestedPort, "suggested port", true);
  if (
    !Number.isInteger(request.lifetime) || request.lifetime < 0 || request.lifetime > 0xffffffff
  ) {
    throw new NatPmpError(`lifetime ${request.lifetime} is not a 32-bit count of seconds`);
  }
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  out[1] = 1; // map UDP
  view.setUint16(4, request.internalPort);
  view.setUint16(6, request.suggestedPort);
  view.setUint32(8, request.lifetime);
  return out;
}

/**
 * Reads a NAT-PMP answer. A non-zero result may come in a short (8-byte) answer; a successful one
 * must have its full length.
 *
 * @example
 * ```ts
 * const a = decodeNatPmpResponse(new Uint8Array([0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 5]));
 * // { op: "address", result: 0, epoch: 9, externalAddress: "203.0.113.5" }
 * ```
 */
export function decodeNatPmpResponse(bytes: Uint8Array): NatPmpResponse {
  if (bytes.length < 8) throw new NatPmpError(`an answer is at least 8 bytes, got ${bytes.length}`);
  if (bytes[0] !== 0) throw new NatPmpError(`version ${bytes[0]} is not NAT-PMP's 0`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const result = view.getUint16(2);
  const epoch = view.getUint32(4);
  switch (bytes[1]) {
    case 128: {
      if (result !== 0) return { op: "address", result, epoch };
      if (bytes.length !== 12) {
        throw new NatPmpError(`an address answer is 12 bytes, got ${bytes.length}`);
      }
      return {
        op: "address",
        result,
        epoch,
        externalAddress: [...bytes.subarray(8, 12)].join("."),
      };
    }
    case 129: {
      if (result !== 0) return { op: "map-udp", result, epoch };
      if (bytes.length !== 16) {
        throw new NatPmpError(`a map answer is 16 bytes, got ${bytes.length}`);
      }
      return {
        op: "map-udp",
        result,
        epoch,
        internalPort: view.getUint16(8),
        externalPort: view.getUint16(10),
        lifetime: view.getUint32(12),
      };
    }
    default:
      throw new NatPmpError(`opcode ${bytes[1]} is not an answer we ask for (128 or 129)`);
  }
}

/**
 * Encodes an address answer; for tests and fake gateways.
 *
 * @example
 * ```ts
 * encodeNatPmpAddressResponse({ op: "address", result: 0, epoch: 1, externalAddress: "192.0.2.1" });
 * ```
 */
export function encodeNatPmpAddressResponse(response: NatPmpAddressResponse): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  out[1] = 128;
  view.setUint16(2, response.result);
  view.setUint32(4, response.epoch);
  if (response.externalAddress) out.set(ipv4ToBytes(response.externalAddress), 8);
  return out;
}

/**
 * Encodes a map answer; for tests and fake gateways.
 *
 * @example
 * ```ts
 * encodeNatPmpMapResponse({
 *   op: "map-udp", result: 0, epoch: 1, internalPort: 4000, externalPort: 4000, lifetime: 7200,
 * });
 * ```
 */
export function encodeNatPmpMapResponse(response: NatPmpMapResponse): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  out[1] = 129;
  view.setUint16(2, response.result);
  view.setUint32(4, response.epoch);
  view.setUint16(8, response.internalPort ?? 0);
  view.setUint16(10, response.externalPort ?? 0);
  view.setUint32(12, response.lifetime ?? 0);
  return out;
}

function checkPort(port: number, what: string, zeroOk: boolean): void {
  if (!Number.isInteger(port) || port < (zeroOk ? 0 : 1) || port > 65535) {
    throw new NatPmpError(`${what} ${port} is not a port (${zeroOk ? 0 : 1}..65535)`);
  }
}
