/**
 * Asks for the history's passphrase on the terminal, without echoing it (`p2p chat
 * --passphrase`). Separate from the chat because it runs before the chat reads its input.
 *
 * @example
 * ```ts
 * const passphrase = await promptPassphrase("Passphrase for alice's history: ");
 * ```
 * @module
 */

/** Thrown when no passphrase can be read: no terminal, or the user gave up (Ctrl-C, Ctrl-D). */
export class PassphraseError extends Error {
  override name = "PassphraseError";
}

/**
 * Shows `prompt` on stderr and reads a line from the terminal with echo off. Backspace erases,
 * Ctrl-C and Ctrl-D give up. Refuses an empty passphrase.
 *
 * @throws {PassphraseError} if stdin is not a terminal, the user gives up, or types nothing.
 */
export async function promptPassphrase(prompt: string): Promise<string> {
  if (!Deno.stdin.isTerminal()) {
    throw new PassphraseError(
      "--passphrase asks on a terminal, and stdin is not one: set P2P_PASSPHRASE instead",
    );
  }
  const encoder = new TextEncoder();
  await Deno.stderr.write(encoder.encode(prompt));
  const bytes: number[] = [];
  const buffer = new Uint8Array(64);
  Deno.stdin.setRaw(true);
  try {
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) throw new PassphraseError("No passphrase: the input ended");
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 3 || byte === 4) throw new PassphraseError("No passphrase given");
        if (byte === 13 || byte === 10) {
          const passphrase = new TextDecoder().decode(new Uint8Array(bytes));
          if (passphrase === "") throw new PassphraseError("The passphrase is empty");
          return passphrase;
        }
        if (byte === 127 || byte === 8) {
          // Erase a whole UTF-8 character: continuation bytes, then its first byte.
          while (bytes.length > 0 && (bytes[bytes.length - 1] & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else bytes.push(byte);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
}
