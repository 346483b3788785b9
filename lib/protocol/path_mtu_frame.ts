/**
 * Path-MTU frames: the probes a link sends to learn how large a datagram reaches the peer, and
 * their acknowledgements (docs/PROTOCOL.md §2.7). They travel inside sealed DATA after the
 * {@linkcode PATH_MTU_CHANNEL} byte, so they are authenticated like everything else on the link:
 * nobody but the peer can confirm a size. Pure functions, no I/O, so that they can be fuzzed.
 *
 * ```text
 * PROBE 0x01 | id u32 | zero bytes up to the probed length
 * ACK   0x02 | id u32 | length u32   (the length of the PROBE that arrived, its tag included)
 * ```
 * Integers are big-endian. The padding is all zero, so what decodes re-encodes byte for byte.
 *
 * @example
 * ```ts
 * const probe = encodePathMtuFrame({ type: "probe", id: 7, length: 1400 });
 * probe.length; // 1400
 * decodePathMtuFrame(probe); // { type: "probe", id: 7, length: 1400 }
 * ```
 * @module
 */

/**
 * First byte of a DATA plaintext that holds a path-MTU frame: chat segments start with 0x01 or
 * 0x02 and the file channel's with 0x46 (`lib/peer/link.ts`), so one byte tells them apart. A
 * peer without path-MTU probing drops the frame as a malformed chat segment: it never answers,
 * and the sender keeps its datagrams at the base size.
 */
export const PATH_MTU_CHANNEL = 0x50;

/** Type bytes of path-MTU frames (after {@linkcode PATH_MTU_CHANNEL}). */
export const PathMtuFrameType = { PROBE: 0x01, ACK: 0x02 } as const;

/** Bytes of a PROBE before its padding, and the smallest `length` a probe can have. */
export const PROBE_HEADER_LENGTH = 6;
/** Bytes of an ACK. */
export const ACK_LENGTH = 10;
/** Largest `length` a probe can have: the largest UDP payload over IPv4. */
export const MAX_PROBE_LENGTH = 65_507;

/** A path-MTU frame. `length` counts the whole frame, the {@linkcode PATH_MTU_CHANNEL} byte included. */
export type PathMtuFrame =
  | { type: "probe"; id: number; length: number }
  | { type: "ack"; id: number; length: number };

/** Thrown for bytes that are not a valid path-MTU frame, or a frame that cannot be encoded. */
export class PathMtuFrameError extends Error {
  override name = "PathMtuFrameError";
}

function checkU32(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new PathMtuFrameError(`Invalid path-MTU ${what} ${n}: must be an integer in 0..2^32-1`);
  }
}

function checkLength(n: number): void {
  if (!Number.isInteger(n) || n < PROBE_HEADER_LENGTH || n > MAX_PROBE_LENGTH) {
    throw new PathMtuFrameError(
      `Invalid path-MTU probe length ${n}: must be an integer in ` +
        `${PROBE_HEADER_LENGTH}..${MAX_PROBE_LENGTH}`,
    );
  }
}

/**
 * Encodes a frame, {@linkcode PATH_MTU_CHANNEL} byte first; a PROBE is `length` bytes long.
 * Throws {@linkcode PathMtuFrameError} for an id or length out of range.
 *
 * @example
 * ```ts
 * encodePathMtuFrame({ type: "ack", id: 7, length: 1400 }).length; // 10
 * ```
 */
export function encodePathMtuFrame(frame: PathMtuFrame): Uint8Array {
  checkU32("id", frame.id);
  checkLength(frame.length);
  const probe = frame.type === "probe";
  const bytes = new Uint8Array(probe ? frame.length : ACK_LENGTH);
  const view = new DataView(bytes.buffer);
  bytes[0] = PATH_MTU_CHANNEL;
  bytes[1] = probe ? PathMtuFrameType.PROBE : PathMtuFrameType.ACK;
  view.setUint32(2, frame.id);
  if (!probe) view.setUint32(6, frame.length);
  return bytes;
}

/**
 * Decodes a frame (its {@linkcode PATH_MTU_CHANNEL} byte first). Throws
 * {@linkcode PathMtuFrameError} for anything else: a wrong first byte or type, a wrong length,
 * padding that is not zero, an ACK's length out of range.
 *
 * @example
 * ```ts
 * decodePathMtuFrame(new Uint8Array([0x50, 1, 0, 0, 0, 9])); // { type: "probe", id: 9, length: 6 }
 * ```
 */
export function decodePathMtuFrame(bytes: Uint8Array): PathMtuFrame {
  if (bytes.length < PROBE_HEADER_LENGTH || bytes[0] !== PATH_MTU_CHANNEL) {
    throw new PathMtuFrameError(`Not a path-MTU frame (${bytes.length} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const id = view.getUint32(2);
  if (bytes[1] === PathMtuFrameType.PROBE) {
    if (bytes.length > MAX_PROBE_LENGTH) {
      throw new PathMtuFrameError(`Path-MTU probe of ${bytes.length} bytes is too long`);
    }
    for (let i = PROBE_HEADER_LENGTH; i < bytes.length; i++) {
      if (bytes[i] !== 0) throw new PathMtuFrameError("Path-MTU probe padding is not zero");
    }
    return { type: "probe", id, length: bytes.length };
  }
  if (bytes[1] === PathMtuFrameType.ACK) {
    if (bytes.length !== ACK_LENGTH) {
      throw new PathMtuFrameError(`Path-MTU ack of ${bytes.length} bytes, not ${ACK_LENGTH}`);
    }
    const length = view.getUint32(6);
    checkLength(length);
    return { type: "ack", id, length };
  }
  throw new PathMtuFrameError(`Unknown path-MTU frame type 0x${bytes[1].toString(16)}`);
}
