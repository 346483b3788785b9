/** Tools the tests run, which CI (`.ci/run`) installs from Debian. */

/**
 * Whether `command` is on the PATH. Tests that need a tool CI installs say so when it is missing,
 * rather than fail on a spawn error.
 */
export function installed(command: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${command}`).isFile;
    } catch {
      return false;
    }
  });
}
