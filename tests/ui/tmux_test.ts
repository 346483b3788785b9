/**
 * The terminal chat as a person sees it: a real `p2p chat` in tmux (80×24), typed into with
 * `send-keys` and read with `capture-pane`, talking to real `p2p chat --json` processes through
 * a real coordinator. Skipped, saying why, when tmux is not installed.
 */
import assert from "node:assert/strict";
import { P2pProcess, startServe, testEnv } from "../support/proc.ts";
import { sleep } from "../support/wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

const hasTmux = (() => {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();
if (!hasTmux) console.error("tests/ui/tmux_test.ts: tmux is not installed: screen tests skipped");

/** A tmux server of our own (its own socket), running one command in an 80×24 window. */
class Tmux {
  readonly socket = `p2p-test-${Deno.pid}-${crypto.getRandomValues(new Uint32Array(1))[0]}`;

  async run(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", { args: ["-L", this.socket, ...args] }).output();
    if (!out.success) throw new Error(`tmux ${args[0]}: ${decoder.decode(out.stderr)}`);
    return decoder.decode(out.stdout);
  }

  start(command: string[], env: Record<string, string>): Promise<string> {
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const vars = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`);
    const shell = `env ${vars.join(" ")} ${command.map(quote).join(" ")}`;
    return this.run("new-session", "-d", "-x", "80", "-y", "24", shell);
  }

  /** Types `text` literally (no key names). */
  type(text: string): Promise<string> {
    return this.run("send-keys", "-l", text);
  }

  key(name: string): Promise<string> {
    return this.run("send-keys", name);
  }

  /** The screen's rows; `history`: with the scrollback; wrapped rows joined into lines. */
  async screen(history = false): Promise<string[]> {
    const text = await this.run("capture-pane", "-p", "-J", ...(history ? ["-S", "-"] : []));
    return text.replace(/\n+$/, "").split("\n");
  }

  /** Polls the screen until `pred` holds; fails after `timeoutMs` showing the screen. */
  async waitFor(
    what: string,
    pred: (rows: string[]) => boolean,
    options: { history?: boolean; timeoutMs?: number } = {},
  ): Promise<string[]> {
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    while (true) {
      const rows = await this.screen(options.history);
      if (pred(rows)) return rows;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; the screen:\n${rows.join("\n")}`);
      }
      await sleep(100);
    }
  }

  /**
   * Resizes the window. tmux changes its own grid at once and tells the program (the pty's size,
   * SIGWINCH) a moment later; a real terminal does both together. The pause leaves that moment
   * out of the test.
   */
  async resize(columns: number): Promise<void> {
    await this.run("resize-window", "-x", String(columns));
    await sleep(500);
  }

  async kill(): Promise<void> {
    await this.run("kill-server").catch(() => "");
  }
}

/** The screen as one line: our own wrapping (between words, indented) undone. */
const flat = (rows: string[]) => rows.join(" ").replace(/\s+/g, " ");

/** The input line: the last non-empty row (wrapped rows joined by capture-pane). */
const input = (rows: string[]) => (rows.filter((r) => r.trim() !== "").at(-1) ?? "").trimEnd();

Deno.test({
  name: "the terminal chat in tmux: long input, completion, conversations, unread, resize, bursts",
  ignore: !hasTmux,
  fn: async (t) => {
    const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
    const server = `127.0.0.1:${port}`;
    const bob = new P2pProcess(["chat", `bob@${server}`, "--json"]);
    const carol = new P2pProcess(["chat", `carol@${server}`, "--json"]);
    const tmux = new Tmux();
    try {
      await bob.event((e) => e.event === "ready", 15_000);
      await carol.event((e) => e.event === "ready", 15_000);
      const env = testEnv();
      delete env.NO_COLOR; // colours on, as in a real terminal (capture-pane drops them)
      await tmux.start([Deno.execPath(), "run", "-A", MAIN, "chat", `alice@${server}`], {
        ...env,
        TERM: "xterm-256color",
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      });
      await tmux.waitFor(
        "login",
        (rows) => rows.some((r) => r.includes("carol is online")) && input(rows) === ">",
      );

      await t.step(
        "a half-typed line longer than the width while three messages arrive",
        async () => {
          const long = "this line is longer than the terminal is wide, so it wraps onto a second " +
            "row and a third one as well, and nothing may be lost — 你好 😀 included";
          await tmux.type(`/msg bob ${long}`);
          await tmux.waitFor("the typed line", (rows) => input(rows).endsWith("😀 included"));
          for (let i = 1; i <= 3; i++) await bob.write(`/msg alice arriving ${i}`);
          const rows = await tmux.waitFor(
            "three messages",
            (rows) =>
              [1, 2, 3].every((i) => rows.some((r) => r.includes(`bob: arriving ${i}`))) &&
              input(rows) === `> /msg bob ${long}`,
          );
          // The input is drawn once: no stray copy of its first row.
          assert.equal(rows.filter((r) => r.startsWith("> /msg bob")).length, 1, rows.join("\n"));
          await tmux.key("Enter");
          const got = await bob.event((e) => e.event === "message" && e.from === "alice", 15_000);
          assert.equal(got.text, long);
          const after = await tmux.waitFor(
            "delivered",
            (rows) => rows.some((r) => r.includes("✓ #1 delivered to bob")),
          );
          assert.equal(after.filter((r) => r.startsWith("> /msg")).length, 0, "the echo is gone");
          for (let i = 1; i <= 3; i++) {
            assert.equal(after.filter((r) => r.endsWith(`bob: arriving ${i}`)).length, 1);
          }
          assert.equal(input(after), ">");
        },
      );

      await t.step("Tab completes commands and names, case-insensitively; /chat mode", async () => {
        await tmux.type("/CH");
        await tmux.key("Tab");
        await tmux.waitFor("/chat completed", (rows) => input(rows) === "> /chat");
        await tmux.type("B");
        await tmux.key("Tab");
        await tmux.waitFor("bob completed", (rows) => input(rows) === "> /chat bob");
        await tmux.key("Enter");
        await tmux.waitFor(
          "bob's conversation",
          (rows) => rows.some((r) => r.includes("talking to bob")) && input(rows) === "bob>",
        );
        await tmux.type("plain text goes to bob now");
        await tmux.key("Enter");
        await bob.event((e) => e.event === "message" && e.text === "plain text goes to bob now");
      });

      await t.step("others' lines are marked and counted unread; /who lists them", async () => {
        await carol.write("/msg alice psst");
        await carol.write("/msg alice are you there?");
        await tmux.waitFor(
          "unread in the prompt",
          (rows) =>
            rows.some((r) => r.includes("» carol: are you there?")) &&
            input(rows) === "[carol 2] bob>",
        );
        await tmux.type("/r yes, one moment");
        await tmux.key("Enter");
        await carol.event((e) => e.event === "message" && e.text === "yes, one moment");
        await tmux.type("/who");
        await tmux.key("Enter");
        await tmux.waitFor("/who", (rows) => /carol \([^)]*, 2 unread\)/.test(flat(rows)));
        await tmux.type("/query Carol");
        await tmux.key("Enter");
        const rows = await tmux.waitFor(
          "carol's backlog",
          (rows) => rows.some((r) => r.includes("2 unread from carol")) && input(rows) === "carol>",
        );
        assert.ok(rows.some((r) => /\] carol: psst$/.test(r)), rows.join("\n"));
      });

      await t.step("a resize to 40 columns and back loses nothing", async () => {
        const text = "typed before the resize and long enough to wrap at forty columns";
        await tmux.type(text);
        await tmux.waitFor("typed", (rows) => input(rows) === `carol> ${text}`);
        await tmux.resize(40);
        await bob.write("/msg alice while narrow");
        await tmux.waitFor("narrow", (rows) =>
          rows.some((r) => r.includes("bob: while narrow")) &&
          input(rows) === `[bob 1] carol> ${text}`);
        await tmux.resize(80);
        await bob.write("/msg alice wide again");
        const rows = await tmux.waitFor(
          "wide",
          (rows) =>
            rows.some((r) => r.includes("bob: wide again")) &&
            input(rows) === `[bob 2] carol> ${text}`,
        );
        assert.equal(rows.filter((r) => r.includes(text.slice(0, 30))).length, 1, rows.join("\n"));
        await tmux.key("Enter");
        await carol.event((e) => e.event === "message" && e.text === text);
        const sent = await tmux.waitFor("sent", (rows) => flat(rows).includes(`carol: ${text}`));
        for (const line of ["bob: while narrow", "bob: wide again"]) {
          assert.equal(sent.filter((r) => r.endsWith(line)).length, 1, sent.join("\n"));
        }
      });

      await t.step(
        "a burst of 100 messages while typing: every one on screen, input intact",
        async () => {
          await tmux.type("/all");
          await tmux.key("Enter");
          await tmux.waitFor("everyone view", (rows) => input(rows) === "[bob 2] >");
          await tmux.type("/msg carol half-typed while a burst comes");
          await tmux.waitFor("typed", (rows) => input(rows).endsWith("burst comes"));
          for (let i = 1; i <= 100; i++) await bob.write(`/msg alice burst ${i}`);
          const rows = await tmux.waitFor(
            "100 messages",
            (rows) => rows.some((r) => r.includes("bob: burst 100")),
            { history: true, timeoutMs: 30_000 },
          );
          for (let i = 1; i <= 100; i++) {
            assert.equal(rows.filter((r) => r.endsWith(`bob: burst ${i}`)).length, 1, `burst ${i}`);
          }
          assert.equal(input(rows), "[bob 2] > /msg carol half-typed while a burst comes");
          await tmux.key("Enter");
          await carol.event((e) =>
            e.event === "message" && e.text === "half-typed while a burst comes"
          );
        },
      );
    } finally {
      await tmux.kill();
      await bob.dispose();
      await carol.dispose();
      await serve.dispose();
    }
  },
});
