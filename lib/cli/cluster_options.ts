/**
 * `p2p serve`'s cluster flags (`--cluster`, `--community`, `--member`, `--cluster-token-file`,
 * `--cluster-nkey-file`, `--member-timeout`) read and checked into the coordinator's
 * {@linkcode ClusterOptions} (docs/CLUSTER.md). Separate from `serve_command.ts` so that the
 * cluster's flags stay in one place.
 *
 * @example
 * ```ts
 * const cluster = await clusterOptions({ cluster: "nats://127.0.0.1:4222", community: "demo",
 *   "cluster-token-file": "/etc/p2p/nats-token" });
 * ```
 * @module
 */
import type { ClusterOptions } from "../coordinator.ts";
import { checkToken, ClusterProtocolError } from "../protocol/cluster.ts";
import { secondsOption } from "./options.ts";
import { UsageError } from "./target.ts";

/** The `parseArgs` options of the cluster flags, to spread into `p2p serve`'s. */
export const CLUSTER_FLAGS = {
  cluster: { type: "string" },
  community: { type: "string" },
  member: { type: "string" },
  "cluster-token-file": { type: "string" },
  "cluster-nkey-file": { type: "string" },
  "member-timeout": { type: "string" },
} as const;

/** The cluster flags' values as `parseArgs` gives them. */
export interface ClusterFlags {
  cluster?: string;
  community?: string;
  member?: string;
  "cluster-token-file"?: string;
  "cluster-nkey-file"?: string;
  "member-timeout"?: string;
}

/**
 * The cluster options the flags ask for, or `undefined` without `--cluster`. Throws a
 * {@linkcode UsageError} for a missing `--community`, a bad name, missing credentials (NATS must
 * authenticate its clients) or a credentials file that cannot be read.
 */
export async function clusterOptions(flags: ClusterFlags): Promise<ClusterOptions | undefined> {
  const url = flags.cluster;
  if (url === undefined) {
    for (const name of Object.keys(CLUSTER_FLAGS) as (keyof ClusterFlags)[]) {
      if (flags[name] !== undefined) throw new UsageError(`--${name} needs --cluster`);
    }
    return undefined;
  }
  if (!/^nats:\/\/[^\s,]+(,nats:\/\/[^\s,]+)*$/.test(url)) {
    throw new UsageError(`--cluster takes nats://HOST:PORT, not "${url}"`);
  }
  if (flags.community === undefined) throw new UsageError("--cluster needs --community NAME");
  try {
    checkToken(flags.community);
    if (flags.member !== undefined) checkToken(flags.member);
  } catch (err) {
    if (err instanceof ClusterProtocolError) throw new UsageError(err.message);
    throw err;
  }
  const tokenFile = flags["cluster-token-file"];
  const nkeyFile = flags["cluster-nkey-file"];
  if ((tokenFile === undefined) === (nkeyFile === undefined)) {
    throw new UsageError(
      "--cluster needs one of --cluster-token-file FILE or --cluster-nkey-file FILE: " +
        "run NATS with authentication",
    );
  }
  const read = async (file: string, flag: string): Promise<string> => {
    let text: string;
    try {
      text = (await Deno.readTextFile(file)).trim();
    } catch (err) {
      throw new UsageError(`${flag}: cannot read ${file}: ${(err as Error).message}`);
    }
    if (text === "") throw new UsageError(`${flag}: ${file} is empty`);
    return text;
  };
  const timeout = flags["member-timeout"];
  return {
    url,
    community: flags.community,
    ...(flags.member !== undefined ? { member: flags.member } : {}),
    ...(tokenFile !== undefined
      ? { token: await read(tokenFile, "--cluster-token-file") }
      : { nkeySeed: await read(nkeyFile!, "--cluster-nkey-file") }),
    ...(timeout !== undefined
      ? { memberTimeoutMs: secondsOption(timeout, "--member-timeout") * 1000 }
      : {}),
  };
}
