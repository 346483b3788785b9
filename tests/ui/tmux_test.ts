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

  start(
    command: string[],
    env: Record<string, string>,
    size = { columns: 80, rows: 24 },
  ): Promise<string> {
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const vars = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`);
    const shell = `env ${vars.join(" ")} ${command.map(quote).join(" ")}`;
    const { columns, rows } = size;
    return this.run("new-session", "-d", "-x", String(columns), "-y", String(rows), shell);
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
  async resize(columns: number, rows?: number): Promise<void> {
    await this.run("resize-window", "-x", String(columns), ...(rows ? ["-y", String(rows)] : []));
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
            // The lines, and the prompt drawn again after them (a write of its own).
            (rows) => rows.some((r) => r.includes("✓ #1 delivered to bob")) && input(rows) === ">",
          );
          assert.equal(after.filter((r) => r.startsWith("> /msg")).length, 0, "the echo is gone");
          for (let i = 1; i <= 3; i++) {
            assert.equal(after.filter((r) => r.endsWith(`bob: arriving ${i}`)).length, 1);
          }
          assert.equal(input(after), ">");
          // An empty line, and one of spaces only: the prompt stays, and nothing else changes.
          const shown = (rows: string[]) => rows.slice(0, -1).filter((r) => r.trim() !== "");
          await tmux.key("Enter");
          await tmux.type("   ");
          await tmux.key("Enter");
          await tmux.type("still here");
          const kept = await tmux.waitFor("the prompt", (rows) => input(rows) === "> still here");
          assert.deepEqual(shown(kept).slice(-3), shown(after).slice(-3));
          await tmux.key("C-u");
          await tmux.waitFor("an empty input", (rows) => input(rows) === ">");
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
            (rows) =>
              rows.some((r) => r.includes("bob: burst 100")) &&
              input(rows) === "[bob 2] > /msg carol half-typed while a burst comes",
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

Deno.test({
  name: "the full screen in tmux (120×30): the online list beside, unread counts, resize, exit",
  ignore: !hasTmux,
  fn: async () => {
    const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
    const server = `127.0.0.1:${port}`;
    const bob = new P2pProcess(["chat", `bob@${server}`, "--json"]);
    const carol = new P2pProcess(["chat", `carol@${server}`, "--json"]);
    const tmux = new Tmux();
    try {
      await bob.event((e) => e.event === "ready", 15_000);
      await carol.event((e) => e.event === "ready", 15_000);
      // A shell stays when the chat exits, to show what it left on the normal screen.
      await tmux.start([
        "sh",
        "-c",
        `"$0" run -A "$1" chat "$2"; sleep 60`,
        Deno.execPath(),
        MAIN,
        `alice@${server}`,
      ], {
        ...testEnv(),
        TERM: "xterm-256color",
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      }, { columns: 120, rows: 30 });
      const side = (rows: string[]) => rows.map((r) => r.split("│")[1]?.trim() ?? "");
      await tmux.waitFor(
        "the online list",
        (rows) =>
          side(rows).includes("online (2)") && side(rows).includes("bob") &&
          side(rows).includes("carol"),
      );

      await tmux.type("/chat bob");
      await tmux.key("Enter");
      await tmux.waitFor(
        "bob's conversation",
        (rows) =>
          side(rows).includes("▸bob") && rows.at(-1)!.trimEnd() === "bob>" &&
          rows.at(-2)!.includes("talking to bob"),
      );
      // An input longer than the row scrolls sideways; messages arrive above it meanwhile.
      const long = "typed into the input row, longer than the screen is wide, so that the row " +
        "scrolls sideways to keep the cursor in view while three messages arrive — 你好";
      await tmux.type(long);
      await tmux.waitFor("typed", (rows) => rows.at(-1)!.trimEnd().endsWith("你好"));
      for (let i = 1; i <= 3; i++) await carol.write(`/msg alice from carol ${i}`);
      const rows = await tmux.waitFor(
        "carol's messages, counted",
        (rows) =>
          [1, 2, 3].every((i) => rows.some((r) => r.includes(`» carol: from carol ${i}`))) &&
          side(rows).includes("carol (3)"),
      );
      assert.equal(rows.length, 30);
      await tmux.key("Enter");
      const got = await bob.event((e) => e.event === "message" && e.from === "alice", 15_000);
      assert.equal(got.text, long);

      // Narrower than the list needs: it goes; wider again: it is back. Nothing is lost.
      await tmux.resize(60, 20);
      await bob.write("/msg alice while narrow");
      await tmux.waitFor(
        "narrow",
        (rows) =>
          rows.some((r) => r.includes("bob: while narrow")) && !rows.some((r) => r.includes("│")),
      );
      await tmux.resize(120, 30);
      await tmux.waitFor(
        "wide",
        (rows) =>
          side(rows).includes("carol (3)") && rows.some((r) => r.includes("bob: while narrow")) &&
          rows.some((r) => r.includes("» carol: from carol 1")),
      );

      await tmux.type("/quit");
      await tmux.key("Enter");
      // The normal screen again, with the conversation in it.
      const after = await tmux.waitFor(
        "the conversation left on exit",
        (rows) =>
          !rows.some((r) => r.includes("│")) && rows.some((r) => r.includes("bob: while narrow")),
        {
          history: true,
        },
      );
      assert.ok(after.some((r) => r.includes("» carol: from carol 3")));
      await serve.stderr.waitFor((l) => /logout alice/.test(l), 10_000, "alice's logout");
    } finally {
      await tmux.kill();
      await bob.dispose();
      await carol.dispose();
      await serve.dispose();
    }
  },
});

Deno.test({
  name: "--passphrase asks twice for a new history, and two different answers create nothing",
  ignore: !hasTmux,
  fn: async () => {
    const tmux = new Tmux();
    const env = testEnv();
    const history = `${env.XDG_DATA_HOME}/p2p`;
    try {
      // No coordinator is needed: the passphrase is asked before logging in. The shell keeps the
      // window open after the chat exits, and shows its exit code.
      const chat = [
        Deno.execPath(),
        "run",
        "-A",
        MAIN,
        "chat",
        "alice@127.0.0.1:9",
        "--passphrase",
      ];
      const quoted = chat.map((s) => `'${s}'`).join(" ");
      await tmux.start(["sh", "-c", `${quoted}; echo "exit $?"; sleep 60`], {
        ...env,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      });
      await tmux.waitFor("first question", (rows) => flat(rows).includes("Passphrase for alice"));
      await tmux.type("correct horse");
      await tmux.key("Enter");
      await tmux.waitFor("second question", (rows) => flat(rows).includes("The same passphrase"));
      await tmux.type("correct h0rse");
      await tmux.key("Enter");
      const rows = await tmux.waitFor("exit", (rows) => flat(rows).includes("exit "));
      assert.match(flat(rows), /The two passphrases differ: no history was created/);
      assert.match(flat(rows), /exit 1/);
      assert.doesNotMatch(flat(rows), /correct h/, "the passphrase was echoed");
      const created = await Deno.stat(history).then(() => true, () => false);
      assert.ok(!created, "a history folder was created");
    } finally {
      await tmux.kill();
    }
  },
});

Deno.test({
  name: "the help in full at a first start, one line once the history has lines; /help in full",
  ignore: !hasTmux,
  fn: async () => {
    const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
    const server = `127.0.0.1:${port}`;
    const bob = new P2pProcess(["chat", `bob@${server}`, "--json"]);
    const env = testEnv();
    const tmux = new Tmux();
    try {
      await bob.event((e) => e.event === "ready", 15_000);
      // alice has chatted here before: one message, delivered, is in her history.
      const before = new P2pProcess(["chat", `alice@${server}`, "--json"], { env });
      await before.write("/msg bob hello from the last time");
      await before.event((e) => e.event === "delivered", 15_000);
      await before.closeStdin();
      assert.equal((await before.wait(15_000)).code, 0);
      await before.dispose();

      await tmux.start([Deno.execPath(), "run", "-A", MAIN, "chat", `alice@${server}`, "--plain"], {
        ...env,
        TERM: "xterm-256color",
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      });
      const rows = await tmux.waitFor(
        "the login and the brief help",
        (rows) => rows.some((r) => r.includes("/help lists the commands")) && input(rows) === ">",
      );
      assert.ok(rows.some((r) => r.includes("(backlog) you → bob: hello from the last time")));
      assert.ok(
        !rows.some((r) => r.includes("Keys:") || r.includes("/trust USER")),
        rows.join("\n"),
      );
      await tmux.type("/HELP");
      await tmux.key("Enter");
      await tmux.waitFor("the full help", (rows) => rows.some((r) => r.includes("Keys: Tab")));
    } finally {
      await tmux.kill();
      await bob.dispose();
      await serve.dispose();
    }
  },
});

Deno.test({
  name: "a file received in the terminal: progress redrawn in the prompt, the typed line intact",
  ignore: !hasTmux,
  fn: async () => {
    const { proc: serve, port } = await startServe(["--tcp-port", "0"]);
    const server = `127.0.0.1:${port}`;
    const bob = new P2pProcess(["chat", `bob@${server}`, "--json"]);
    const tmux = new Tmux();
    const dir = await Deno.makeTempDir({ prefix: "p2p-tmux-files-" });
    try {
      const src = `${dir}/big.bin`;
      {
        using f = await Deno.open(src, { write: true, create: true });
        await f.truncate(6 << 20);
      }
      await bob.event((e) => e.event === "ready", 15_000);
      await tmux.start(
        [
          Deno.execPath(),
          "run",
          "-A",
          MAIN,
          "chat",
          `alice@${server}`,
          "--plain",
          "--downloads",
          `${dir}/in`,
        ],
        { ...testEnv(), TERM: "xterm-256color", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      );
      await tmux.waitFor("login", (rows) => rows.some((r) => r.includes("bob is online")), {
        history: true,
      });
      await bob.write(`/send alice ${src}`);
      await tmux.waitFor(
        "the offer",
        (rows) => flat(rows).includes("/accept 1 [DIR] or /decline 1"),
      );
      await tmux.type("/accept");
      await tmux.key("Enter");
      await tmux.type("typing while it runs");
      const running = await tmux.waitFor(
        "progress in the prompt",
        (rows) => /^\[#1 ← bob \d+% .*\] > typing while it runs$/.test(input(rows)),
      );
      // Drawn in place: no line of progress above the prompt.
      assert.equal(running.filter((r) => r.includes("[#1 ←")).length, 1, running.join("\n"));
      const done = await tmux.waitFor(
        "received",
        (rows) =>
          flat(rows).includes("✓ received big.bin") && input(rows) === "> typing while it runs",
        { timeoutMs: 60_000 },
      );
      assert.ok(!done.some((r) => r.includes("[#1 ←")), done.join("\n"));
      assert.equal((await Deno.stat(`${dir}/in/big.bin`)).size, 6 << 20);
    } finally {
      await tmux.kill();
      await bob.dispose();
      await serve.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
