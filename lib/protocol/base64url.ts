/**
 * Base64url without padding (RFC 4648 §5): how keys, secrets and tokens travel inside the
 * coordinator's comma-separated text messages (the alphabet has no `,` or `;`).
 *
 * @example
 * ```ts
 * encodeBase64url(new Uint8Array([250, 251])); // "-vs"
 * decodeBase64url("-vs"); // Uint8Array [250, 251]
 * ```
 * @module
 */

/** Encodes bytes as base64url without padding. */
export function encodeBase64url(bytes: Uint8Array): string {
  let binary = "";
  // In chunks: spreading a whole large array into one call overflows the stack (~120 KiB).
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Decodes base64url without padding. Returns null for anything else, including non-canonical
 * forms (unused bits set), so that each value has exactly one text form.
 */
export function decodeBase64url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const bytes = Uint8Array.from(
    atob(text.replaceAll("-", "+").replaceAll("_", "/")),
    (c) => c.charCodeAt(0),
  );
  return encodeBase64url(bytes) === text ? bytes : null;
}
