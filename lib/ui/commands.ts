/**
 * The chat commands users type (and scripts send in `--json` mode): a pure parser.
 *
 * @example
 * ```ts
 * parseCommand("/msg bob hello there"); // { kind: "msg", to: "bob", text: "hello there" }
 * ```
 * @module
 */

/** A parsed command line. */
export type Command =
  | { kind: "msg"; to: string; text: string }
  | { kind: "who" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "none" }
  | { kind: "invalid"; message: string };

/** One-line help for each command, in the order `/help` shows them. */
export const COMMAND_HELP: readonly string[] = [
  "/msg USER TEXT   send TEXT to USER",
  "/who             list who is online",
  "/help            show this help",
  "/quit            log out and leave (also Ctrl-C, Ctrl-D)",
];

/** Parses one input line. Blank lines are `none`; anything unknown is `invalid` with a reason. */
export function parseCommand(line: string): Command {
  const trimmed = line.trim();
  if (trimmed === "") return { kind: "none" };
  const [word] = trimmed.split(/\s+/, 1);
  const rest = trimmed.slice(word.length).trimStart();
  switch (word) {
    case "/msg": {
      const space = rest.search(/\s/);
      if (rest === "" || space < 0) {
        return { kind: "invalid", message: "Usage: /msg USER TEXT" };
      }
      const text = rest.slice(space).trimStart();
      return { kind: "msg", to: rest.slice(0, space), text };
    }
    case "/who":
      return { kind: "who" };
    case "/help":
      return { kind: "help" };
    case "/quit":
      return { kind: "quit" };
    default:
      return {
        kind: "invalid",
        message: word.startsWith("/")
          ? `Unknown command ${word}: type /help for the list`
          : "Messages need a recipient: /msg USER TEXT (type /help for the list)",
      };
  }
}
