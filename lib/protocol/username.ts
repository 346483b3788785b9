/**
 * What a username may be, and when two usernames look alike. Pure functions, no I/O.
 *
 * A name is shown to people, who tell users apart by how their names look. So besides the
 * seed's separators and control characters, a name may not hide characters (invisible formatting,
 * default-ignorable code points, blank glyphs), must be in Unicode NFC form (so that `é` is one
 * name whether typed composed or decomposed: clients normalise what their user types), and two
 * names that look alike are told apart by their *skeleton* (Unicode UTS #39 §4, with the
 * confusables table of the `unhomoglyph` package): the coordinator refuses a name whose skeleton
 * is taken. Chinese, Japanese and other scripts keep working; only look-alike collisions are
 * refused.
 *
 * @example
 * ```ts
 * import { usernameProblem, usernameSkeleton } from "./username.ts";
 *
 * usernameProblem("张伟"); // undefined: valid
 * usernameProblem("alice\u034f"); // "username must not contain invisible characters (U+034F)"
 * usernameSkeleton("\u0430lice") === usernameSkeleton("alice"); // true: Cyrillic а looks like a
 * ```
 * @module
 */
import unhomoglyph from "unhomoglyph";

/** Longest username, in Unicode code points. */
export const MAX_USERNAME_LENGTH = 32;

/**
 * Code points that draw nothing and are not white space: the default-ignorable ones (combining
 * grapheme joiner, variation selectors, Hangul fillers…) and the blank Braille pattern.
 */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\u2800]/u;

/**
 * Returns why `name` is not a valid username, or `undefined` when it is valid.
 * Valid: 1–32 code points, no `,` `;`, no control, invisible formatting or other invisible
 * characters (zero-width, bidi, default-ignorable, blank), no leading or trailing white space,
 * well-formed, in Unicode NFC form, and not the list terminator `end`.
 *
 * @example
 * ```ts
 * import { usernameProblem } from "./username.ts";
 *
 * usernameProblem("bob"); // undefined
 * usernameProblem("a,b"); // "username must not contain ',' or ';'"
 * ```
 */
export function usernameProblem(name: string): string | undefined {
  const length = [...name].length;
  if (length === 0) return "username is empty";
  if (length > MAX_USERNAME_LENGTH) {
    return `username is ${length} characters long, the limit is ${MAX_USERNAME_LENGTH}`;
  }
  if (/[,;]/.test(name)) return "username must not contain ',' or ';'";
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) {
    return "username must not contain control characters";
  }
  // Zero-width and bidi controls make names that look like others (`bob\u200b`, reversed text).
  if (/\p{Cf}/u.test(name)) return "username must not contain invisible formatting characters";
  const invisible = INVISIBLE.exec(name);
  if (invisible) {
    const code = invisible[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    return `username must not contain invisible characters (U+${code})`;
  }
  if (name.trim() !== name) return "username must not start or end with white space";
  if (name === "end") return 'username "end" is reserved (it ends the online list)';
  // U+FFFD is what a lenient decoder made of bad bytes; a lone surrogate cannot be encoded.
  if (name.includes("\uFFFD") || !name.isWellFormed()) return "username is not valid UTF-8";
  if (name.normalize("NFC") !== name) {
    return "username must be in Unicode NFC form (composed characters)";
  }
  return undefined;
}

/**
 * The name as a user would type it: in NFC form, so that a decomposed `é` from a keyboard or a
 * pasted name is the same name as a composed one. Validate the result with
 * {@linkcode usernameProblem}.
 *
 * @example
 * ```ts
 * import { normalizeUsername } from "./username.ts";
 *
 * normalizeUsername("Zo\u0065\u0308") === "Zo\u00eb"; // true: e + diaeresis is ë
 * ```
 */
export function normalizeUsername(name: string): string {
  return name.isWellFormed() ? name.normalize("NFC") : name;
}

/**
 * The UTS #39 skeleton of a name: NFD, each character replaced by its prototype in the Unicode
 * confusables table, NFD again. Two names with the same skeleton look alike (`аlice` with a
 * Cyrillic а and `alice`; fullwidth `ａｌｉｃｅ`; `rn` and `m`), so only one of them may be in use.
 *
 * @example
 * ```ts
 * import { usernameSkeleton } from "./username.ts";
 *
 * usernameSkeleton("\uff41\uff4c\uff49\uff43\uff45"); // "alice" (fullwidth letters)
 * usernameSkeleton("张伟"); // "张伟"
 * ```
 */
export function usernameSkeleton(name: string): string {
  return unhomoglyph(name.normalize("NFD")).normalize("NFD");
}
