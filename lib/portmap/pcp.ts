/**
 * PCP (RFC 6887), the subset a chat client needs: the MAP opcode for UDP, request and response,
 * with its nonce, lifetime (0 deletes), suggested and assigned external port and address, result
 * code and epoch. Options in a response are skipped (their layout is checked); ANNOUNCE and PEER
 * are not used. Pure codec, no I/O; {@linkcode decodePcpResponse} throws only
 * {@linkcode PcpError}, whatever the gateway sent (it is fuzzed).
 *
 * A NAT-PMP-only gateway answers a PCP request with NAT-PMP's "unsupported version" (RFC 6887
 * §9): that decodes as `{ version: 0, result }`, so the caller can fall back at once.
 *
 * @example
 * ```ts
 * import { decodePcpResponse, encodePcpMapRequest } from "./pcp.ts";
 *
 * const request = encodePcpMapRequest({
 *   clientAddress: "10.1.0.2",
 *   nonce: crypto.getRandomValues(new Uint8Array(12)),
 *   internalPort: 4000,
 *   suggestedPort: 4000,
 *   lifetime: 7200,
 * });
 * // const answer = decodePcpResponse(bytes); // { version: 2, opcode: 1, result: 0, map: {...} }
 * ```
 * @module
 */
import { AddressError, addressFromBytes16, addressToBytes16 } from "../net/ip_bytes.ts";

/** PCP's version number. */
export const PCP_VERSION = 2;
/** The MAP opcode. */
export const PCP_OP_MAP = 1;
/** IANA protocol number of UDP, the only protocol we map. */
export const PROTOCOL_UDP = 17;
/** A PCP message is never longer (RFC 6887 §7). */
export const PCP_MAX_LENGTH = 1100;

/** Result codes (RFC 6887 §7.4), by number, in words. */
export const PCP_RESULTS: Readonly<Record<number, string>> = {
  0: "success",
  1: "unsupported version",
  2: "not authorized",
  3: "malformed request",
  4: "unsupported opcode",
  5: "unsupported option",
  6: "malformed option",
  7: "network failure",
  8: "no resources",
  9: "unsupported protocol",
  10: "user exceeded quota",
  11: "cannot provide external",
  12: "address mismatch",
  13: "excessive remote peers",
};

/** A PCP message that cannot be read or written. */
export class PcpError extends Error {
  override name = "PcpError";
}

/** What to map, in {@linkcode encodePcpMapRequest}. */
export interface PcpMapRequest {
  /** Our address as the gateway sees it: the request's source address (else ADDRESS_MISMATCH). */
  clientAddress: string;
  /** 12 random bytes; a renewal repeats them, an answer must echo them. */
  nonce: Uint8Array;
  /** Our socket's port. */
  internalPort: number;
  /** The external port we would like (0: any). */
  suggestedPort: number;
  /** The external address we would like; default any IPv4 (`0.0.0.0`). */
  suggestedAddress?: string;
  /** Seconds; 0 deletes the mapping. */
  lifetime: number;
}

/** The MAP part of a response. */
export interface PcpMapData {
  nonce: Uint8Array;
  protocol: number;
  internalPort: number;
  /** The external port assigned. */
  externalPort: number;
  /** The external address assigned (dotted quad for IPv4). */
  externalAddress: string;
}

/** A PCP response (version 2). */
export interface PcpResponse {
  version: 2;
  opcode: number;
  /** 0 is success; see {@linkcode PCP_RESULTS}. */
  result: number;
  /** Seconds the mapping lives (on an error: how long the error is likely to last). */
  lifetime: number;
  /** Seconds since the gateway's mapping table was (re)started. */
  epoch: number;
  /** Present for MAP responses long enough to carry it (always on success). */
  map?: PcpMapData;
}

/** A NAT-PMP answer to our PCP request: the gateway speaks only NAT-PMP. */
export interface PcpDowngrade {
  version: 0;
  result: number;
}

/**
 * A MAP request for UDP (60 bytes).
 *
 * @example
 * ```ts
 * const nonce = new Uint8Array(12);
 * encodePcpMapRequest({ clientAddress: "10.1.0.2", nonce, internalPort: 4000, suggestedPort: 0, lifetime: 0 });
 * ```
 */
export function encodePcpMapRequest(request: PcpMapRequest): Uint8Array {
  if (request.nonce.length !== 12) {
    throw new PcpError(`a nonce is 12 bytes, got ${request.nonce.length}`);
  }
  checkPort(request.internalPort, "internal port", false);
  checkPort(request.suggestedPort, "suggested port", true);
  if (
    !Number.isInteger(request.lifetime) || request.lifetime < 0 || request.lifetime > 0xffffffff
  ) {
    throw new PcpError(`lifetime ${request.lifetime} is not a 32-bit count of seconds`);
  }
  const out = new Uint8Array(60);
  const view = new DataView(out.buffer);
  out[0] = PCP_VERSION;
  out[1] = PCP_OP_MAP;
  view.setUint32(4, request.lifetime);
  try {
    out.set(addressToBytes16(request.clientAddress), 8);
    out.set(addressToBytes16(request.suggestedAddress ?? "0.0.0.0"), 44);
  } catch (err) {
    if (err instanceof AddressError) throw new PcpError(err.message);
    throw err;
  }
  out.set(request.nonce, 24);
  out[36] = PROTOCOL_UDP;
  view.setUint16(40, request.internalPort);
  view.setUint16(42, request.suggestedPort);
  return out;
}

/**
 * Reads a gateway's answer to a PCP request.
 *
 * @example
 * ```ts
 * const answer = decodePcpResponse(bytes);
 * if (answer.version === 0) console.log("NAT-PMP only");
 * else if (answer.result === 0) console.log(answer.map?.externalPort);
 * ```
 */
export function decodePcpResponse(bytes: Uint8Array): PcpResponse | PcpDowngrade {
  if (bytes.length >= 4 && bytes[0] === 0) {
    // NAT-PMP's answer to a version it does not speak: version 0, opcode 128 + ours, result.
    if (bytes[1] < 128) throw new PcpError(`a NAT-PMP request, not an answer (opcode ${bytes[1]})`);
    return { version: 0, result: (bytes[2] << 8) | bytes[3] };
  }
  if (bytes.length < 24) throw new PcpError(`a response is at least 24 bytes, got ${bytes.length}`);
  if (bytes.length > PCP_MAX_LENGTH || bytes.length % 4 !== 0) {
    throw new PcpError(`a response's length is a multiple of 4 up to 1100, got ${bytes.length}`);
  }
  if (bytes[0] !== PCP_VERSION) throw new PcpError(`version ${bytes[0]} is not PCP's 2`);
  if ((bytes[1] & 0x80) === 0) throw new PcpError("a request, not a response (R bit clear)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const response: PcpResponse = {
    version: 2,
    opcode: bytes[1] & 0x7f,
    result: bytes[3],
    lifetime: view.getUint32(4),
    epoch: view.getUint32(8),
  };
  if (response.opcode !== PCP_OP_MAP) {
    if (response.result === 0) {
      throw new PcpError(`opcode ${response.opcode} is not one we ask for (MAP, 1)`);
    }
    return response;
  }
  if (bytes.length < 60) {
    if (response.result === 0) {
      throw new PcpError(`a successful MAP response is at least 60 bytes, got ${bytes.length}`);
    }
    return response;
  }
  checkOptions(bytes, 60);
  response.map = {
    nonce: bytes.slice(24, 36),
    protocol: bytes[36],
    internalPort: view.getUint16(40),
    externalPort: view.getUint16(42),
    externalAddress: addressFromBytes16(bytes.subarray(44, 60)),
  };
  return response;
}

/**
 * Encodes a MAP response; for tests and fake gateways.
 *
 * @example
 * ```ts
 * encodePcpMapResponse({
 *   version: 2, opcode: 1, result: 0, lifetime: 7200, epoch: 5,
 *   map: { nonce: new Uint8Array(12), protocol: 17, internalPort: 4000, externalPort: 4000,
 *     externalAddress: "203.0.113.2" },
 * });
 * ```
 */
export function encodePcpMapResponse(response: PcpResponse): Uint8Array {
  const out = new Uint8Array(response.map ? 60 : 24);
  const view = new DataView(out.buffer);
  out[0] = PCP_VERSION;
  out[1] = 0x80 | response.opcode;
  out[3] = response.result;
  view.setUint32(4, response.lifetime);
  view.setUint32(8, response.epoch);
  if (response.map) {
    out.set(response.map.nonce.subarray(0, 12), 24);
    out[36] = response.map.protocol;
    view.setUint16(40, response.map.internalPort);
    view.setUint16(42, response.map.externalPort);
    out.set(addressToBytes16(response.map.externalAddress), 44);
  }
  return out;
}

/** Options (code, reserved, length, data padded to 4 bytes) must fill the rest exactly. */
function checkOptions(bytes: Uint8Array, at: number): void {
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new PcpError("an option's header is cut short");
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    const next = at + 4 + Math.ceil(length / 4) * 4;
    if (next > bytes.length) {
      throw new PcpError(`option ${bytes[at]} claims ${length} bytes, more than the message has`);
    }
    at = next;
  }
}

function checkPort(port: number, what: string, zeroOk: boolean): void {
  if (!Number.isInteger(port) || port < (zeroOk ? 0 : 1) || port > 65535) {
    throw new PcpError(`${what} ${port} is not a port (${zeroOk ? 0 : 1}..65535)`);
  }
}
