/**
 * The coordinator's STUN Binding service on its UDP port: what is answered, how much, and the
 * per-address budget; the text protocol beside it is unaffected.
 */
import assert from "node:assert/strict";
import {
  Attr,
  attribute,
  decodeStun,
  encodeBindingRequest,
  encodeStun,
  parseBindingAnswer,
} from "../../lib/protocol/stun.ts";
import { RawUdp as Raw, withCoordinator } from "../support/raw_udp.ts";
import { sleep } from "../support/wait.ts";

const txid = () => crypto.getRandomValues(new Uint8Array(12));
const bare = (id: Uint8Array, cls: "request" | "indication" = "request") =>
  encodeStun({ method: 1, class: cls, transactionId: id, classic: false, attributes: [] });

Deno.test("coordinator: STUN Binding requests are answered beside the text protocol", async () => {
  await withCoordinator({ peerTimeoutMs: 45_000 }, async (c) => {
    const client = await Raw.open("127.0.0.41", c.udpPort);
    try {
      const me = { host: "127.0.0.41", port: client.port };
      // A bare request: the bare answer.
      const a = txid();
      client.send(bare(a));
      await client.until(() => client.received.length >= 1);
      assert.equal(client.received[0].length, 32);
      assert.deepEqual(parseBindingAnswer(client.received[0], a), me);
      // A padded one: SOFTWARE and FINGERPRINT too, no longer than the request.
      const b = txid();
      const padded = encodeBindingRequest({ transactionId: b, padTo: 64 });
      client.send(padded);
      await client.until(() => client.received.length >= 2);
      const full = client.received[1];
      assert.ok(full.length <= padded.length);
      assert.deepEqual(parseBindingAnswer(full, b), me);
      assert.equal(
        new TextDecoder().decode(attribute(decodeStun(full), Attr.SOFTWARE)),
        "p2p coordinator",
      );
      // An indication, an answer, garbage with a STUN-like first byte: nothing.
      client.send(bare(txid(), "indication"));
      client.send(
        encodeStun({
          method: 1,
          class: "success",
          transactionId: txid(),
          classic: false,
          attributes: [],
        }),
      );
      client.send(new Uint8Array([0, 1, 0, 4, 1, 2, 3]));
      // The text protocol still works on the same port.
      client.send("whoami," + "-".repeat(57));
      await client.until((t) => t.some((x) => x.startsWith("You,")));
      await sleep(50);
      assert.equal(client.received.length, 3, "only the two requests and whoami were answered");
      assert.equal(c.stats.stunAnswered, 2);
      assert.equal(c.stats.stunIgnored, 2, "the indication and the answer");
    } finally {
      await client.close();
    }
  });
});

Deno.test("coordinator: STUN answers are charged to the per-address request budget", async () => {
  await withCoordinator(
    { peerTimeoutMs: 45_000, limits: { loginsPerSecond: 5 } },
    async (c, log) => {
      const client = await Raw.open("127.0.0.42", c.udpPort);
      try {
        for (let i = 0; i < 30; i++) client.send(bare(txid()));
        await sleep(200);
        // A burst of twice the rate, and what refilled meanwhile.
        assert.ok(
          client.received.length >= 10 && client.received.length <= 12,
          `${client.received.length}`,
        );
        assert.ok(log.some((l) => l.includes("logins-per-address") && l.includes("STUN request")));
      } finally {
        await client.close();
      }
    },
  );
});
