import assert from "node:assert/strict";
import {
  DEFAULT_PORT,
  resolveServer,
  resolveServers,
  splitTarget,
  splitTargets,
  UsageError,
} from "../../lib/cli/target.ts";

function assertUsage(text: string, message: string): void {
  assert.throws(() => splitTarget(text), (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    assert.equal(err.name, "UsageError");
    assert.equal(err.message, message);
    return true;
  }, text);
}

Deno.test("splitTarget reads NAME@HOST[:PORT]", () => {
  const cases: [string, { username: string; host: string; port: number }][] = [
    ["alice@127.0.0.1:7000", { username: "alice", host: "127.0.0.1", port: 7000 }],
    ["alice@127.0.0.1", { username: "alice", host: "127.0.0.1", port: DEFAULT_PORT }],
    ["bob@example.org:1", { username: "bob", host: "example.org", port: 1 }],
    ["bob@example.org", { username: "bob", host: "example.org", port: 7000 }],
    ["张伟@[::1]:65535", { username: "张伟", host: "::1", port: 65535 }],
    ["张伟@[::1]", { username: "张伟", host: "::1", port: 7000 }],
    ["a@[fe80::1%eth0]:9", { username: "a", host: "fe80::1%eth0", port: 9 }],
    // A bare IPv6 address has no port: brackets are needed to give one.
    ["a@::1", { username: "a", host: "::1", port: 7000 }],
    ["a@2001:db8::1", { username: "a", host: "2001:db8::1", port: 7000 }],
    // The last "@" splits, so names may hold "@".
    ["me@home@10.0.0.1:80", { username: "me@home", host: "10.0.0.1", port: 80 }],
    ["Zoë O'Brien@10.0.0.1", { username: "Zoë O'Brien", host: "10.0.0.1", port: 7000 }],
  ];
  for (const [text, want] of cases) assert.deepEqual(splitTarget(text), want, text);
});

Deno.test("splitTarget explains a missing or bad name", () => {
  assertUsage("127.0.0.1:7000", '"127.0.0.1:7000" is not NAME@HOST[:PORT]: missing "@"');
  assertUsage("", '"" is not NAME@HOST[:PORT]: missing "@"');
  assertUsage("@127.0.0.1", 'Cannot use "" as a name: username is empty');
  assertUsage(
    `${"x".repeat(33)}@127.0.0.1`,
    `Cannot use "${"x".repeat(33)}" as a name: username is 33 characters long, the limit is 32`,
  );
  assertUsage("a,b@127.0.0.1", `Cannot use "a,b" as a name: username must not contain ',' or ';'`);
  assertUsage(
    "end@127.0.0.1",
    'Cannot use "end" as a name: username "end" is reserved (it ends ' +
      "the online list)",
  );
  assertUsage(
    " alice@127.0.0.1",
    'Cannot use " alice" as a name: username must not start or end with white space',
  );
});

Deno.test("splitTarget explains a bad host or port", () => {
  assertUsage("alice@", '"alice@" is not NAME@HOST[:PORT]: the host is empty');
  assertUsage("alice@:7000", '"alice@:7000" is not NAME@HOST[:PORT]: the host is empty');
  for (const port of ["0", "65536", "", "x", "-1", "1e3", "7000 ", "123456"]) {
    const text = `alice@127.0.0.1:${port}`;
    assertUsage(text, `"${text}": port "${port}" is not a number from 1 to 65535`);
  }
  assertUsage("alice@[::1]:0", '"alice@[::1]:0": port "0" is not a number from 1 to 65535');
  assertUsage("alice@[::1]:", '"alice@[::1]:": port "" is not a number from 1 to 65535');
  // Brackets hold an IPv6 literal, and nothing else is ever looked up in DNS.
  for (
    const rest of ["[::1", "[::1]x", "[::1]7000", "[]", "[]:7000", "[example.org]:1", "[1.2.3.4]"]
  ) {
    assertUsage(
      `alice@${rest}`,
      `"alice@${rest}" is not NAME@HOST[:PORT]: expected [IPv6 address] as HOST`,
    );
  }
});

Deno.test("resolveServer takes IP literals as they are", async () => {
  assert.deepEqual(await resolveServer("alice@127.0.0.1:7001"), {
    username: "alice",
    server: { host: "127.0.0.1", port: 7001 },
  });
  assert.deepEqual(await resolveServer("bob@[::1]"), {
    username: "bob",
    server: { host: "::1", port: 7000 },
  });
  await assert.rejects(() => resolveServer("nobody"), UsageError);
});

Deno.test("splitTarget takes the name in NFC form and refuses invisible characters", () => {
  assert.equal(splitTarget("Zo" + "e\u0308@127.0.0.1").username, "Zo\u00eb");
  assert.throws(
    () => splitTarget("alice\u034f@127.0.0.1"),
    (e) => e instanceof UsageError && /invisible characters \(U\+034F\)/.test(e.message),
  );
});

Deno.test("splitTargets reads several coordinators of one community", async () => {
  assert.deepEqual(splitTargets("alice@c1:7001,[::1]:7002,c3"), {
    username: "alice",
    servers: [
      { host: "c1", port: 7001 },
      { host: "::1", port: 7002 },
      { host: "c3", port: DEFAULT_PORT },
    ],
  });
  assert.throws(() => splitTargets("alice@c1,"), UsageError);
  assert.throws(() => splitTargets("alice@c1:99999,c2"), UsageError);
  assert.deepEqual(await resolveServers("bob@127.0.0.1:7000,127.0.0.2"), {
    username: "bob",
    server: { host: "127.0.0.1", port: 7000 },
    fallbacks: [{ host: "127.0.0.2", port: DEFAULT_PORT }],
  });
});
