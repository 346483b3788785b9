/**
 * Reads a child process's output stream line by line.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * await pumpLines(child.stdout, (line) => lines.push(line));
 * ```
 * @module
 */

/** Calls `push` with each line of `stream` (without its `\n`), the last one even if unterminated. */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  push: (line: string) => void,
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) push(buf);
}
