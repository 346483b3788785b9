/**
 * File names from a peer, made safe to create under our download directory: the name in an
 * offer is untrusted (docs/SECURITY.md). Pure functions; the disk layer (`disk.ts`) still refuses
 * to follow symlinks and never overwrites.
 *
 * Each `/`- or `\`-separated part is cleaned on its own: control, format (bidi overrides,
 * zero-width) and Windows-forbidden characters become `_`, trailing dots and spaces go, `.` and
 * `..` parts are dropped, a drive letter (`C:`) or a leading `/` makes nothing absolute, and
 * Windows' reserved device names (`CON`, `NUL`, `COM1`…, with any extension) get a `_` in front.
 * A name with nothing left becomes `file`.
 *
 * @example
 * ```ts
 * safeRelativePath("../../etc/passwd"); // ["etc", "passwd"]
 * safeRelativePath("C:\\Windows\\con.txt"); // ["Windows", "_con.txt"]
 * ```
 * @module
 */

/** Longest part we create, in UTF-16 code units (most file systems allow 255 bytes). */
const MAX_PART = 120;
/** Deepest directory tree an offer may create. */
const MAX_DEPTH = 32;

// deno-lint-ignore no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f<>:"|?*\p{Cf}\u2028\u2029]/gu;
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i;

/** One path part made safe; empty when nothing of it may stay. */
export function safePart(part: string): string {
  let clean = part.normalize("NFC").replace(FORBIDDEN, "_").replace(/[. ]+$/, "");
  if (clean === "" || /^\.+$/.test(clean)) return "";
  if (RESERVED.test(clean)) clean = "_" + clean;
  if (clean.length > MAX_PART) {
    const dot = clean.lastIndexOf(".");
    const ext = dot > 0 && clean.length - dot <= 16 ? clean.slice(dot) : "";
    clean = clean.slice(0, MAX_PART - ext.length) + ext;
  }
  return clean;
}

/**
 * The parts of a peer's file name, safe to join under the download directory: never empty,
 * never absolute, no `..`, at most 32 deep.
 */
export function safeRelativePath(name: string): string[] {
  // A drive letter or a UNC prefix is no part of where the file goes.
  const parts = name.replace(/^[a-zA-Z]:/, "").split(/[\\/]+/).map(safePart)
    .filter((p) => p !== "");
  if (parts.length === 0) return ["file"];
  // Too deep: the tree is flattened into its last part rather than refused.
  return parts.length > MAX_DEPTH ? [...parts.slice(0, MAX_DEPTH - 1), parts.at(-1)!] : parts;
}

/**
 * The `n`th alternative to a taken name: `photo.jpg` → `photo (1).jpg`.
 *
 * @example
 * ```ts
 * withSuffix("photo.jpg", 2); // "photo (2).jpg"
 * ```
 */
export function withSuffix(name: string, n: number): string {
  if (n === 0) return name;
  const dot = name.lastIndexOf(".");
  return dot > 0 ? `${name.slice(0, dot)} (${n})${name.slice(dot)}` : `${name} (${n})`;
}
