/**
 * The main job on one box: a coordinator and two chat peers on loopback, exchanging messages
 * directly over UDP, narrated as they happen. Run: `scripts/deno task demo`.
 * @module
 */
import { Coordinator } from "../lib/coordinator.ts";
import type { PeerEvent } from "../lib/peer/events.ts";
import { Peer } from "../lib/peer.ts";
import { describeEvent } from "../lib/ui/terminal.ts";

const coordinator = await Coordinator.start({
  host: "127.0.0.1",
  port: 0,
  log: (line) => console.log(`  [coordinator] ${line}`),
});
const server = { host: "127.0.0.1", port: coordinator.udpPort };
console.log(`coordinator (p2p serve) listening on 127.0.0.1:${coordinator.udpPort}`);

const settled = new Map<string, () => void>();
const show = (who: string) => (e: PeerEvent) => {
  console.log(`  [${who}] ${describeEvent(e)}`);
  if (e.event === "delivered" || e.event === "undelivered") settled.get(`${who}:${e.id}`)?.();
};
const say = (from: Peer, to: string, text: string) =>
  new Promise<void>((resolve) => {
    const id = from.send(to, text);
    if (id === undefined) resolve();
    else settled.set(`${from.username}:${id}`, resolve);
  });

// Demo identities live in a throwaway directory, not among your real keys.
const configDir = await Deno.makeTempDir({ prefix: "p2p-demo-" });
const alice = await Peer.start({ server, username: "alice", configDir, onEvent: show("alice") });
const bob = await Peer.start({ server, username: "bob", configDir, onEvent: show("bob") });
try {
  await say(alice, "bob", "Hi Bob! This goes straight to you, not through the server.");
  await say(bob, "alice", "你好 Alice — got it, direct over UDP.");
  await say(alice, "bob", "Bye for now.");
} finally {
  await bob.close();
  await alice.close();
  await new Promise((r) => setTimeout(r, 100)); // let the coordinator log the logouts
  await coordinator.close();
  await Deno.remove(configDir, { recursive: true });
}
console.log("done: two peers chatted directly; try it by hand with the commands in README.md");
