import assert from "node:assert/strict";
import { type Command, COMMAND_HELP, parseCommand } from "../lib/ui/commands.ts";

const USAGE: Command = { kind: "invalid", message: "Usage: /msg USER TEXT" };

Deno.test("parseCommand reads /msg USER TEXT", () => {
  const cases: [string, Command][] = [
    ["/msg bob hello there", { kind: "msg", to: "bob", text: "hello there" }],
    ["/msg bob hi", { kind: "msg", to: "bob", text: "hi" }],
    ["  /msg   bob    hi  there  ", { kind: "msg", to: "bob", text: "hi  there" }],
    ["/msg\tbob\thi", { kind: "msg", to: "bob", text: "hi" }],
    ["/msg 张伟 你好，世界", { kind: "msg", to: "张伟", text: "你好，世界" }],
    ["/msg bob /quit", { kind: "msg", to: "bob", text: "/quit" }],
    ["/msg bob a,b;c", { kind: "msg", to: "bob", text: "a,b;c" }],
    ["/msg bob 😀", { kind: "msg", to: "bob", text: "😀" }],
  ];
  for (const [line, command] of cases) assert.deepEqual(parseCommand(line), command, line);
});

Deno.test("parseCommand wants both a recipient and a text for /msg", () => {
  for (const line of ["/msg", "/msg ", "/msg bob", "  /msg bob   ", "/msg\tbob\t"]) {
    assert.deepEqual(parseCommand(line), USAGE, JSON.stringify(line));
  }
});

Deno.test("parseCommand reads the commands without arguments", () => {
  assert.deepEqual(parseCommand("/who"), { kind: "who" });
  assert.deepEqual(parseCommand("  /who  "), { kind: "who" });
  assert.deepEqual(parseCommand("/help"), { kind: "help" });
  assert.deepEqual(parseCommand("/quit"), { kind: "quit" });
  assert.deepEqual(parseCommand("/quit now"), { kind: "quit" });
});

Deno.test("parseCommand treats blank lines as nothing", () => {
  for (const line of ["", " ", "\t", "  \t  ", "\r", "\u3000"]) {
    assert.deepEqual(parseCommand(line), { kind: "none" }, JSON.stringify(line));
  }
});

Deno.test("parseCommand explains unknown commands", () => {
  for (
    const [line, word] of [["/frobnicate x", "/frobnicate"], ["/msgbob hi", "/msgbob"], ["/", "/"]]
  ) {
    assert.deepEqual(parseCommand(line), {
      kind: "invalid",
      message: `Unknown command ${word}: type /help for the list (//TEXT sends /TEXT)`,
    });
  }
});

Deno.test("command words are case-insensitive: /MSG is /msg", () => {
  assert.deepEqual(parseCommand("/MSG bob hi"), { kind: "msg", to: "bob", text: "hi" });
  assert.deepEqual(parseCommand("/Who"), { kind: "who" });
  assert.deepEqual(parseCommand("/QUERY Bob"), { kind: "chat", user: "Bob" });
});

Deno.test("plain text goes to the current conversation; //TEXT is text starting with /", () => {
  assert.deepEqual(parseCommand("hello"), { kind: "say", text: "hello" });
  assert.deepEqual(parseCommand("  bob hi  "), { kind: "say", text: "bob hi" });
  assert.deepEqual(parseCommand("//help is a command"), {
    kind: "say",
    text: "/help is a command",
  });
});

Deno.test("/chat and /query open a conversation; alone, and /all alone, the everyone view", () => {
  assert.deepEqual(parseCommand("/chat bob"), { kind: "chat", user: "bob" });
  assert.deepEqual(parseCommand("/query bob"), { kind: "chat", user: "bob" });
  assert.deepEqual(parseCommand("/chat"), { kind: "chat" });
  assert.deepEqual(parseCommand("/all"), { kind: "chat" });
  assert.deepEqual(parseCommand("/all  hi all "), { kind: "all", text: "hi all" });
  assert.equal(parseCommand("/chat bob carol").kind, "invalid");
});

Deno.test("/r TEXT replies; /r alone is a usage error", () => {
  assert.deepEqual(parseCommand("/r sure"), { kind: "reply", text: "sure" });
  assert.equal(parseCommand("/r").kind, "invalid");
});

Deno.test("COMMAND_HELP lists every command", () => {
  for (const word of ["/chat", "/msg", "/r", "/all", "/who", "/fingerprint", "/trust", "/help"]) {
    assert.ok(COMMAND_HELP.some((line) => line.startsWith(word + " ")), word);
  }
});

Deno.test("user names in commands are taken in NFC form, as the coordinator knows them", () => {
  const typed = "Zo" + "e\u0308"; // e + combining diaeresis, as some keyboards send it
  assert.deepEqual(parseCommand(`/msg ${typed} hi`), { kind: "msg", to: "Zo\u00eb", text: "hi" });
  assert.deepEqual(parseCommand(`/trust ${typed}`), { kind: "trust", user: "Zo\u00eb" });
  assert.deepEqual(parseCommand(`/fingerprint ${typed}`), {
    kind: "fingerprint",
    user: "Zo\u00eb",
  });
  // The message text is the user's own and stays as typed.
  assert.deepEqual(parseCommand(`/all ${typed}`), { kind: "all", text: typed });
});

Deno.test("contact commands: /add USER [NOTE], /accept, /decline, /remove, /block, /unblock, /contacts", () => {
  const cases: [string, Command][] = [
    ["/add bob", { kind: "contact", op: "add", user: "bob" }],
    ["/add bob hi, it's alice", {
      kind: "contact",
      op: "add",
      user: "bob",
      note: "hi, it's alice",
    }],
    ["/ADD 张伟  你好", { kind: "contact", op: "add", user: "张伟", note: "你好" }],
    ["/accept alice", { kind: "contact", op: "accept", user: "alice" }],
    ["/decline alice", { kind: "contact", op: "decline", user: "alice" }],
    ["/remove bob", { kind: "contact", op: "remove", user: "bob" }],
    ["/block mallory", { kind: "contact", op: "block", user: "mallory" }],
    ["/unblock mallory", { kind: "contact", op: "unblock", user: "mallory" }],
    ["/contacts", { kind: "contacts" }],
    ["/add", { kind: "invalid", message: "Usage: /add USER [NOTE]" }],
    ["/accept a b", {
      kind: "invalid",
      message: "Usage: /accept USER, or /accept [ID] for a file offer",
    }],
    ["/block a b", { kind: "invalid", message: "Usage: /block USER" }],
  ];
  for (const [line, command] of cases) assert.deepEqual(parseCommand(line), command, line);
});

Deno.test("parseCommand: /history USER [N] and /search TEXT", () => {
  assert.deepEqual(parseCommand("/history bob"), { kind: "history", user: "bob", limit: 20 });
  assert.deepEqual(parseCommand("/history  bob  5 "), { kind: "history", user: "bob", limit: 5 });
  assert.deepEqual(parseCommand("/history bob 99999"), {
    kind: "history",
    user: "bob",
    limit: 1000,
  });
  for (const bad of ["/history", "/history bob x", "/history bob 0", "/history bob 2 3"]) {
    assert.deepEqual(parseCommand(bad), { kind: "invalid", message: "Usage: /history USER [N]" });
  }
  assert.deepEqual(parseCommand("/search  Hello there "), { kind: "search", text: "Hello there" });
  assert.deepEqual(parseCommand("/search"), { kind: "invalid", message: "Usage: /search TEXT" });
});

Deno.test("file commands: /send, /accept and /decline with an ID or none, /files, /cancel", () => {
  const cases: [string, Command][] = [
    ["/send bob a.txt", { kind: "send", to: "bob", paths: ["a.txt"] }],
    ['/send Bob "my file.txt" dir/', { kind: "send", to: "Bob", paths: ["my file.txt", "dir/"] }],
    ["/send bob", { kind: "invalid", message: "Usage: /send USER PATH... (files or directories)" }],
    ["/accept", { kind: "accept-files", id: undefined }],
    ["/accept 3", { kind: "accept-files", id: 3 }],
    ["/accept #3 /tmp/in", { kind: "accept-files", id: 3, dir: "/tmp/in" }],
    ["/accept 3 a b", { kind: "invalid", message: "Usage: /accept [ID] [DIR]" }],
    ["/decline", { kind: "decline-files", id: undefined }],
    ["/decline 12", { kind: "decline-files", id: 12 }],
    ["/decline 1 x", { kind: "invalid", message: "Usage: /decline [ID]" }],
    // A name is still a contact request.
    ["/accept alice", { kind: "contact", op: "accept", user: "alice" }],
    ["/files", { kind: "files" }],
    ["/cancel 2", { kind: "cancel-files", id: 2 }],
    ["/cancel", { kind: "invalid", message: "Usage: /cancel ID (/files lists the transfers)" }],
    ["/cancel x", { kind: "invalid", message: "Usage: /cancel ID (/files lists the transfers)" }],
  ];
  for (const [line, command] of cases) assert.deepEqual(parseCommand(line), command, line);
});
