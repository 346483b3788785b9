/** Runs `p2p` (main.ts) as a subprocess, collecting its stdout and stderr lines. */
import { pumpLines } from "./lines.ts";
import { Collector } from "./wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Keys made by the processes of a test run live here, not in the user's config directory. */
export const TEST_CONFIG_HOME = Deno.makeTempDirSync({ prefix: "p2p-test-config-" });
globalThis.addEventListener("unload", () => Deno.removeSync(TEST_CONFIG_HOME, { recursive: true }));

/**
 * The environment of a `p2p` process of the tests: keys in the run's config home, and data
 * (history) and state (the coordinator's database) in fresh folders of their own, so that no test
 * writes in the real home or /var/lib, and no process sees what another test left there. A test
 * that restarts a process passes the same `XDG_DATA_HOME`/`XDG_STATE_HOME` to both runs.
 */
export function testEnv(env: Record<string, string> = {}): Record<string, string> {
  const fresh = () => Deno.makeTempDirSync({ dir: TEST_CONFIG_HOME, prefix: "home-" });
  return {
    NO_COLOR: "1",
    XDG_CONFIG_HOME: TEST_CONFIG_HOME,
    XDG_DATA_HOME: env.XDG_DATA_HOME ?? fresh(),
    XDG_STATE_HOME: env.XDG_STATE_HOME ?? fresh(),
    // Accepted files (`p2p chat --downloads`' default) never land in the real ~/Downloads.
    XDG_DOWNLOAD_DIR: env.XDG_DOWNLOAD_DIR ?? fresh(),
    ...env,
  };
}

/** A running `p2p` process. */
export class P2pProcess {
  readonly stdout = new Collector<string>();
  readonly stderr = new Collector<string>();
  readonly child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #done: Promise<unknown>;
  #status: Deno.CommandStatus | undefined;

  /**
   * `prefix` goes before the Deno executable (e.g. `ip netns exec`), `runFlags` after `deno run`
   * (e.g. `--cpu-prof`, as `deno task bench:files` passes them).
   */
  constructor(
    args: string[],
    options: { env?: Record<string, string>; prefix?: string[]; runFlags?: string[] } = {},
  ) {
    const cmd = [
      ...(options.prefix ?? []),
      Deno.execPath(),
      "run",
      "-A",
      ...(options.runFlags ?? []),
      MAIN,
      ...args,
    ];
    this.child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: testEnv(options.env),
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.#done = Promise.all([
      pumpLines(this.child.stdout, this.stdout.push),
      pumpLines(this.child.stderr, this.stderr.push),
      this.child.status.then((s) => this.#status = s),
    ]);
  }

  /** Parsed JSON events printed so far. */
  events(): Record<string, unknown>[] {
    return this.stdout.items.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  }

  /** Waits for a JSON event matching `pred`. */
  async event(
    pred: (e: Record<string, unknown>) => boolean,
    timeoutMs = 5000,
  ): Promise<Record<string, unknown>> {
    const line = await this.stdout.waitFor(
      (l) => l.startsWith("{") && pred(JSON.parse(l)),
      timeoutMs,
      "event",
    );
    return JSON.parse(line);
  }

  async write(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(line + "\n"));
  }

  async closeStdin(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for exit (killing after `timeoutMs`), returns the exit status. */
  async wait(timeoutMs = 10_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    await this.#done;
    clearTimeout(timer);
    return this.#status!;
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch {
      // already exited
    }
  }

  /** Kills (if still running) and releases everything; safe to call twice. */
  async dispose(): Promise<void> {
    await this.closeStdin();
    if (this.#status === undefined) this.kill("SIGKILL");
    await this.#done;
  }
}

/** Runs `p2p ARGS` to completion; returns exit code and output. */
export async function runP2p(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    env: testEnv(),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Starts `p2p serve` on a free loopback port and waits until it listens; returns it and the port. */
export async function startServe(
  extra: string[] = [],
): Promise<{ proc: P2pProcess; port: number }> {
  const proc = new P2pProcess(["serve", "--host", "127.0.0.1", "--port", "0", ...extra]);
  try {
    const line = await proc.stderr.waitFor((l) => / UDP \d+/.test(l), 15_000, "serve start");
    return { proc, port: Number(/ UDP (\d+)/.exec(line)![1]) };
  } catch (err) {
    await proc.dispose();
    throw err;
  }
}
