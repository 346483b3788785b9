/**
 * Test helper process: writes outgoing messages to alice's history as fast as it can, printing
 * each count once it is written (flushed), until killed (history_test.ts kills it with SIGKILL
 * mid-write). With `--queue-one`, queues one message, prints `queued`, and waits to be killed
 * (the crash bound: a record queued longer than the batch window is on disk).
 *
 *   deno run -A tests/store/history_writer.ts DATA_DIR CONFIG_DIR [--queue-one]
 * @module
 */
import { randomUid } from "../../lib/protocol/chat_message.ts";
import { History } from "../../lib/store/history.ts";

const [dataDir, configDir] = Deno.args;
const history = await History.open({ username: "alice", dataDir, configDir });
const encoder = new TextEncoder();
if (Deno.args[2] === "--queue-one") {
  history.addOutgoing({ uid: randomUid(), peer: "bob", group: false, time: 0, text: "queued" });
  Deno.stdout.writeSync(encoder.encode("queued\n"));
  setInterval(() => {}, 60_000); // the batch timer alone must write it
} else {
  for (let i = 0;; i++) {
    history.addOutgoing({
      uid: randomUid(),
      peer: "bob",
      group: false,
      time: i,
      text: `message ${i}`,
    });
    // Batches of 7, as a busy chat's: the kill lands inside or between transactions.
    if (i % 7 === 6) {
      history.flush();
      Deno.stdout.writeSync(encoder.encode(`${i + 1}\n`));
    }
  }
}
