/**
 * Shared helpers of the fuzz tests: random edits of valid inputs, random bytes and random text.
 *
 * @example
 * ```ts
 * const bad = mutate(prng(1), new TextEncoder().encode("login,alice,192.0.2.1:4000"));
 * ```
 * @module
 */

/** Bytes that matter to our text protocol (separators, NUL, invalid UTF-8 leads): edits favour them. */
export const SEPARATORS: readonly number[] = [
  0x2c,
  0x3b,
  0x3a,
  0x5b,
  0x5d,
  0x0a,
  0x00,
  0x20,
  0xff,
  0xc3,
  0xe5,
  0xf0,
  0x80,
];

/** One (mostly) to four random edits: flip, insert, delete, truncate, duplicate a slice. */
export function mutate(
  rand: () => number,
  input: Uint8Array,
  special: readonly number[] = SEPARATORS,
): Uint8Array {
  let bytes = [...input];
  const edits = rand() < 0.6 ? 1 : 2 + Math.floor(rand() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    const byte = rand() < 0.5
      ? special[Math.floor(rand() * special.length)]
      : Math.floor(rand() * 256);
    switch (Math.floor(rand() * 5)) {
      case 0:
        if (at < bytes.length) bytes[at] = byte;
        break;
      case 1:
        bytes.splice(at, 0, byte);
        break;
      case 2:
        bytes.splice(at, 1 + Math.floor(rand() * 4));
        break;
      case 3:
        bytes = bytes.slice(0, at);
        break;
      case 4:
        bytes.splice(at, 0, ...bytes.slice(Math.floor(rand() * bytes.length)).slice(0, 30));
        break;
    }
  }
  return new Uint8Array(bytes);
}

/** Up to `max - 1` random bytes. */
export function randomBytes(rand: () => number, max: number): Uint8Array {
  const bytes = new Uint8Array(Math.floor(rand() * max));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
  return bytes;
}

/**
 * Random text: up to `maxPieces - 1` parts, each one of `pieces` (with probability `pieceShare`)
 * or a random character (mostly ASCII, sometimes anywhere in the BMP, lone surrogates included).
 */
export function randomText(
  rand: () => number,
  pieces: readonly string[],
  options: { maxPieces: number; pieceShare: number },
): string {
  let out = "";
  const n = Math.floor(rand() * options.maxPieces);
  for (let i = 0; i < n; i++) {
    out += rand() < options.pieceShare
      ? pieces[Math.floor(rand() * pieces.length)]
      : String.fromCharCode(Math.floor(rand() * (rand() < 0.8 ? 0x80 : 0x10000)));
  }
  return out;
}
