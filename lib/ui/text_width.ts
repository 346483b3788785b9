/**
 * How many terminal columns text takes, and word wrapping by that measure: the line mode needs it
 * to know how many rows the input and each printed line take (CJK and emoji take two columns,
 * combining marks none), and wrapping between words keeps fingerprints whole on screen.
 *
 * @example
 * ```ts
 * textWidth("你好"); // 4
 * wrapText("ab12 cd34 ef56", 10); // ["ab12 cd34", "ef56"]
 * ```
 * @module
 */

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

// East Asian Wide and Fullwidth blocks (UAX #11), and emoji presentation.
const WIDE =
  /[\u1100-\u115f\u231a\u231b\u2329\u232a\u23e9-\u23ec\u23f0\u23f3\u25fd\u25fe\u2614\u2615\u2648-\u2653\u267f\u2693\u26a1\u26aa\u26ab\u26bd\u26be\u26c4\u26c5\u26ce\u26d4\u26ea\u26f2\u26f3\u26f5\u26fa\u26fd\u2705\u270a\u270b\u2728\u274c\u274e\u2753-\u2755\u2757\u2795-\u2797\u27b0\u27bf\u2b1b\u2b1c\u2b50\u2b55\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\ua960-\ua97f\uac00-\ud7a3\uf900-\ufaff\ufe10-\ufe19\ufe30-\ufe6f\uff00-\uff60\uffe0-\uffe6\u{16fe0}-\u{18cff}\u{1b000}-\u{1b2ff}\u{1f004}\u{1f0cf}\u{1f18e}\u{1f191}-\u{1f19a}\u{1f200}-\u{1f251}\u{1f300}-\u{1f64f}\u{1f680}-\u{1f6ff}\u{1f7e0}-\u{1f7eb}\u{1f90c}-\u{1f9ff}\u{1fa70}-\u{1faff}\u{20000}-\u{3fffd}]/u;
const ZERO = /^[\p{Mn}\p{Me}\p{Cf}\u200b-\u200f\ufe00-\ufe0f]+$/u;

/** Columns one grapheme cluster takes: 2 for wide and emoji, 0 for marks alone, else 1. */
function clusterWidth(cluster: string): number {
  if (ZERO.test(cluster)) return 0;
  // An emoji-style variation selector turns a narrow symbol into a wide emoji.
  return WIDE.test(cluster) || cluster.includes("\ufe0f") ? 2 : 1;
}

/**
 * Terminal columns `text` takes (no control characters expected: sanitize first).
 *
 * @example
 * ```ts
 * textWidth("héllo 😀"); // 8
 * ```
 */
export function textWidth(text: string): number {
  if (/^[\u0020-\u007e]*$/.test(text)) return text.length; // the common case, fast
  let width = 0;
  for (const { segment } of segmenter.segment(text)) width += clusterWidth(segment);
  return width;
}

/**
 * Splits `text` into rows of at most `width` columns, breaking at spaces where it can (a word
 * longer than a row is cut between grapheme clusters). Rows after the first get `indent` columns
 * less, so that the caller can indent them.
 *
 * @example
 * ```ts
 * wrapText("one two three", 8); // ["one two", "three"]
 * ```
 */
export function wrapText(text: string, width: number, indent = 0): string[] {
  const rows: string[] = [];
  let row = "";
  let rowWidth = 0;
  const room = () => Math.max(1, rows.length === 0 ? width : width - indent);
  const push = () => {
    rows.push(row.trimEnd());
    row = "";
    rowWidth = 0;
  };
  for (const word of text.split(/(?<= )/)) {
    const w = textWidth(word.trimEnd());
    if (rowWidth > 0 && rowWidth + w > room()) push();
    if (w > room()) {
      for (const { segment } of segmenter.segment(word)) {
        const cw = clusterWidth(segment);
        if (rowWidth + cw > room()) push();
        row += segment;
        rowWidth += cw;
      }
      continue;
    }
    row += word;
    rowWidth += textWidth(word);
  }
  if (row !== "" || rows.length === 0) rows.push(row.trimEnd());
  return rows;
}
