import assert from "node:assert/strict";
import type { Link } from "../../lib/peer/link.ts";
import { TurnRelay } from "../../lib/peer/turn_relay.ts";
import type { Path } from "../../lib/peer/traversal.ts";
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { decodeTurnMessage } from "../../lib/protocol/turn.ts";
import { FakeClock } from "../support/fake_clock.ts";

const SERVER = { host: "192.0.2.7", port: 3478 };

function setup() {
  const clock = new FakeClock(1_700_000_000_000);
  const sent: { bytes: Uint8Array; to: Endpoint }[] = [];
  const asked: string[] = [];
  let path: Path = { kind: "direct", endpoint: SERVER, via: "turn", socket: 0 };
  const link = {
    get path() {
      return path;
    },
    requestIntroduction: () => asked.push("bob"),
    offerTurn: () => {},
  } as unknown as Link;
  const relay = new TurnRelay({
    clock,
    send: (bytes, to) => sent.push({ bytes, to }),
    link: (name) => name === "bob" ? link : undefined,
    onData: () => {},
    onEvent: () => {},
  });
  const setPath = (p: Path) => path = p;
  return { clock, sent, asked, relay, setPath };
}

const credentials = (expirySeconds: number) => ({
  type: "turn" as const,
  uri: "turn:192.0.2.7:3478",
  username: `${expirySeconds}:alice`,
  password: "wjwSXO2ch1B6VaLTLMy2Avn5O9o=",
});

Deno.test("TurnRelay: the first credentials start an Allocate to the TURN server", async () => {
  const { sent, relay } = setup();
  relay.credentials(credentials(1_700_003_600));
  await Promise.resolve(); // the address is resolved asynchronously (here: an IP literal)
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].to, SERVER);
  assert.equal(decodeTurnMessage(sent[0].bytes).method, "allocate");
  // Only the server's address reaches the allocation.
  assert.equal(relay.fromServer(new Uint8Array(20), { host: "192.0.2.8", port: 3478 }), false);
  assert.equal(relay.fromServer(new Uint8Array(20), SERVER), true);
  relay.close();
});

Deno.test("TurnRelay: at 4/5 of the credentials' lifetime, a turn peer is introduced again", () => {
  const { clock, asked, relay, setPath } = setup();
  relay.introduced("bob", "203.0.113.9");
  relay.credentials(credentials(1_700_000_000 + 100)); // valid 100 s
  clock.advance(79_999);
  assert.deepEqual(asked, []);
  clock.advance(1);
  assert.deepEqual(asked, ["bob"]);
  // Not for a peer on another path.
  setPath({ kind: "relay" });
  relay.credentials(credentials(1_700_000_080 + 100));
  clock.advance(100_000);
  assert.deepEqual(asked, ["bob"]);
  relay.close();
});
