/**
 * Tab completion for the chat's input line: command words at the start of a line, user names
 * elsewhere, both case-insensitively. Pure: the terminal applies the result to its input.
 *
 * @example
 * ```ts
 * complete({ line: "/ms", cursor: 3, names: ["bob"] }); // { line: "/msg ", cursor: 5, candidates: ["/msg"] }
 * complete({ line: "/msg B", cursor: 6, names: ["bob", "Bea"] }); // candidates ["Bea", "bob"], line "/msg B"
 * ```
 * @module
 */
import { COMMAND_WORDS } from "./commands.ts";

/** What Tab does to an input line. */
export interface Completion {
  /** The line after completion (unchanged when nothing or several things match). */
  line: string;
  cursor: number;
  /** Everything that matches, sorted; the front end lists them when there are several. */
  candidates: string[];
}

/** Longest common prefix of `words`, ignoring case; in the first word's spelling. */
function commonPrefix(words: string[]): string {
  let end = words[0].length;
  for (const w of words) {
    let i = 0;
    while (i < end && i < w.length && w[i].toLowerCase() === words[0][i].toLowerCase()) i++;
    end = i;
  }
  return words[0].slice(0, end);
}

/**
 * Completes the word before `cursor` in `line`: a command word when it is the line's first
 * word and starts with `/`, else one of `names`. A single match is put in whole (with a space
 * after it); several are completed as far as they agree.
 */
export function complete(
  options: { line: string; cursor: number; names: Iterable<string> },
): Completion {
  const { line, cursor } = options;
  const before = line.slice(0, cursor);
  const start = before.search(/\S*$/);
  const word = before.slice(start);
  const isCommand = start === 0 && word.startsWith("/");
  const pool = isCommand ? COMMAND_WORDS : [...new Set(options.names)];
  const folded = word.toLowerCase();
  const candidates = pool.filter((c) => c.toLowerCase().startsWith(folded)).sort((a, b) =>
    a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0
  );
  if (candidates.length === 0) return { line, cursor, candidates };
  let insert: string;
  if (candidates.length === 1) {
    const after = line.slice(cursor);
    insert = candidates[0] + (after.startsWith(" ") ? "" : " ");
  } else {
    const prefix = commonPrefix(candidates);
    // Keep what was typed when the matches agree no further than it (Tab shows them instead).
    insert = prefix.length > word.length ? prefix : word;
  }
  return {
    line: line.slice(0, start) + insert + line.slice(cursor),
    cursor: start + insert.length,
    candidates,
  };
}
