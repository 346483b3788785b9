/**
 * The receiving chat of `bench_history.ts --receiver-thread`, in a worker of its own: as two
 * chats are two processes, the receiver's work runs beside the sender's instead of in turn with
 * it. Told `{ server, username, configDir, dataDir, mode }`, it posts `"ready"` once logged in,
 * and closes (posting `"closed"`) when told `"close"`.
 * @module
 */
import { Peer } from "../lib/peer.ts";
import { History } from "../lib/store/history.ts";

/** What the bench tells the worker. */
export interface ReceiverSetup {
  server: { host: string; port: number };
  username: string;
  configDir: string;
  dataDir: string;
  mode: "off" | "normal" | "full";
}

const worker = self as unknown as Worker;
worker.onmessage = async (e: MessageEvent<ReceiverSetup>) => {
  const { server, username, configDir, dataDir, mode } = e.data;
  const history = mode === "off"
    ? undefined
    : await History.open({ username, configDir, dataDir, synchronous: mode });
  const peer = await Peer.start({
    server,
    username,
    bind: { host: "127.0.0.1", port: 0 },
    configDir,
    history,
    onEvent: () => {},
  });
  worker.onmessage = async () => {
    await peer.close();
    history?.close();
    worker.postMessage("closed");
    self.close();
  };
  worker.postMessage("ready");
};
