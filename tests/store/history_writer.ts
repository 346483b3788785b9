/**
 * Test helper process: writes outgoing messages to alice's history as fast as it can, printing
 * each count, until killed (history_test.ts kills it with SIGKILL mid-write).
 *
 *   deno run -A tests/store/history_writer.ts DATA_DIR CONFIG_DIR
 * @module
 */
import { randomUid } from "../../lib/protocol/chat_message.ts";
import { History } from "../../lib/store/history.ts";

const [dataDir, configDir] = Deno.args;
const history = await History.open({ username: "alice", dataDir, configDir });
const encoder = new TextEncoder();
for (let i = 0;; i++) {
  history.addOutgoing({
    uid: randomUid(),
    peer: "bob",
    group: false,
    time: i,
    text: `message ${i}`,
  });
  Deno.stdout.writeSync(encoder.encode(`${i + 1}\n`));
}
