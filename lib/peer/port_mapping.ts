/**
 * The port mapping's thin I/O layer: finds the default gateway, opens the small UDP socket the
 * mapper talks to it on, runs a {@linkcode PortMapper} (`lib/portmap/`: PCP, NAT-PMP, then
 * UPnP-IGD through {@linkcode UpnpGateway}) for one local port, and says why it does nothing
 * when it cannot help. Shared by the chat client (its chat socket's
 * port, for as long as it runs) and `p2p nat` (one check, then the mapping is deleted).
 *
 * Port mapping is skipped when the coordinator is on a loopback address or our socket is bound
 * to one: no gateway stands between, and tests on loopback must never talk to the machine's
 * real router. A chat client's {@linkcode FollowingPortMapping} decides that again whenever the
 * coordinator in use changes (a failover, `alice@c1,c2`).
 *
 * @example
 * ```ts
 * const mapping = await PortMapping.open({
 *   port: 4000,
 *   server: { host: "198.51.100.2", port: 7000 },
 *   onChange: (m) => console.log(m?.external),
 * });
 * // ...
 * await mapping.close();
 * ```
 * @module
 */
import { type Clock, realClock } from "../clock.ts";
import { localAddressFor, UdpSocket } from "../net/udp.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { defaultGateway, type GatewayLookup } from "../portmap/gateway.ts";
import { UpnpGateway } from "../portmap/upnp_client.ts";
import {
  type MappingProtocol,
  PortMapper,
  type PortMapperStatus,
  type PortMapping as Mapping,
} from "../portmap/port_mapper.ts";

/** Options for {@linkcode PortMapping.open}. */
export interface PortMappingOptions {
  /** The local UDP port to map (our chat socket's). */
  port: number;
  /** The host our socket is bound to, if not all interfaces. */
  bindHost?: string;
  /** The coordinator: on loopback, nothing is mapped. */
  server: Endpoint;
  /** Our public address as the coordinator sees it, when known (a mapping elsewhere is refused). */
  publicHost?: () => string | undefined;
  /** The mapping was granted, moved, or lost. */
  onChange?: (mapping: Mapping | undefined) => void;
  /** Every protocol failed, or none could be tried (not on loopback): why, in words. */
  onFailed?: (reason: string) => void;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
  /** Where the gateway comes from; default {@linkcode defaultGateway} (tests inject one). */
  gateway?: () => Promise<GatewayLookup>;
  /** Seconds to ask for; default the mapper's (7200). */
  lifetime?: number;
}

/** A running port mapping, or the reason there is none. */
export class PortMapping {
  readonly #mapper: PortMapper | undefined;
  readonly #socket: UdpSocket | undefined;
  /** Why nothing is mapped at all (no gateway, loopback…), when so. */
  readonly skipped: string | undefined;

  private constructor(mapper?: PortMapper, socket?: UdpSocket, skipped?: string) {
    this.#mapper = mapper;
    this.#socket = socket;
    this.skipped = skipped;
  }

  /** Finds the gateway and starts asking it; never rejects (a reason is kept instead). */
  static async open(options: PortMappingOptions): Promise<PortMapping> {
    const skip = (reason: string): PortMapping => {
      options.onFailed?.(reason);
      return new PortMapping(undefined, undefined, reason);
    };
    if (onLoopback(options)) {
      // Nothing to tell: on loopback no router is involved, so nothing is missing.
      const reason = "the coordinator or our socket is on loopback: no gateway to ask";
      return new PortMapping(undefined, undefined, reason);
    }
    const found = await (options.gateway ?? defaultGateway)();
    if ("reason" in found) return skip(found.reason);
    let socket: UdpSocket;
    try {
      socket = await UdpSocket.bind({ host: "0.0.0.0" });
    } catch (err) {
      return skip(`cannot open a socket to ask the gateway: ${(err as Error).message}`);
    }
    const clientAddress = localAddressFor({ host: found.gateway, port: 5351 });
    const mapper: PortMapper = new PortMapper({
      gateway: found.gateway,
      clientAddress,
      internalPort: options.port,
      send: (data, to) => socket.send(data, to),
      onChange: (m) => options.onChange?.(m),
      publicHost: options.publicHost,
      lifetime: options.lifetime,
      upnp: new UpnpGateway({
        gateway: found.gateway,
        internalHost: clientAddress,
        timeoutMs: 1000,
      }),
      clock: options.clock ?? realClock,
    });
    socket.onMessage((data, from) => mapper.receive(data, from));
    mapper.start();
    // Told once, for the first round of attempts; later rounds report only what they map.
    mapper.settled().then((status) => {
      if (status.state === "failed") options.onFailed?.(status.notes.join("; "));
    });
    return new PortMapping(mapper, socket);
  }

  /** The mapping in force, if any. */
  get mapping(): Mapping | undefined {
    return this.#mapper?.mapping;
  }

  /** What the mapper does and what the gateway said (undefined when skipped). */
  status(): PortMapperStatus | undefined {
    return this.#mapper?.status();
  }

  /** Resolves once a mapping is granted or every protocol failed. */
  async settled(): Promise<PortMapperStatus | undefined> {
    return await this.#mapper?.settled();
  }

  /** Deletes the mapping (lifetime 0; waits up to 300 ms for the gateway) and closes the socket. */
  async close(): Promise<void> {
    await this.#mapper?.stop();
    await this.#socket?.close();
  }
}

function isLoopback(host: string): boolean {
  return host.startsWith("127.") || host === "::1" || host === "localhost";
}

/** Whether the coordinator, or our socket, is on loopback: then there is no router to ask. */
function onLoopback(options: Pick<PortMappingOptions, "server" | "bindHost">): boolean {
  return isLoopback(options.server.host) || (!!options.bindHost && isLoopback(options.bindHost));
}

/**
 * The chat client's port mapping, for the coordinator in use: `options.server` is read again at
 * each {@linkcode FollowingPortMapping.followServer} (a failover changes it in place). Moving from
 * a loopback coordinator to another one starts a mapping; moving to a loopback one deletes ours
 * (reported through `onChange`, with no mapping).
 *
 * @example
 * ```ts
 * const server = { host: "198.51.100.2", port: 7000 };
 * const mapping = new FollowingPortMapping({ port: 4000, server });
 * // The client failed over to its next coordinator:
 * Object.assign(server, { host: "198.51.100.3", port: 7000 });
 * mapping.followServer();
 * await mapping.close();
 * ```
 */
export class FollowingPortMapping {
  readonly #o: PortMappingOptions;
  #loopback: boolean;
  #current: Promise<PortMapping>;

  /** Opens the mapping for the coordinator in use now. */
  constructor(options: PortMappingOptions) {
    this.#o = options;
    this.#loopback = onLoopback(options);
    this.#current = PortMapping.open(options);
  }

  /** The mapping for the coordinator in use (one that says why it maps nothing, on loopback). */
  get current(): Promise<PortMapping> {
    return this.#current;
  }

  /**
   * The coordinator in use may have changed: when it moved onto or off loopback, the mapping in
   * force is deleted and a new one opened (which maps nothing on loopback).
   */
  followServer(): void {
    const loopback = onLoopback(this.#o);
    if (loopback === this.#loopback) return;
    this.#loopback = loopback;
    this.#current = this.#current.then(async (previous) => {
      const had = previous.mapping !== undefined;
      await previous.close();
      if (had) this.#o.onChange?.(undefined);
      return await PortMapping.open(this.#o);
    });
  }

  /** Deletes the mapping in force, if any, and closes its socket. */
  async close(): Promise<void> {
    await (await this.#current).close();
  }
}

/** What the gateway offered, for `p2p nat`. */
export type PortMappingReport =
  | { protocol: MappingProtocol; external: string; lifetime: number }
  | { reason: string };

/**
 * Asks the gateway for a mapping of `port`, reports what it offered, and deletes it again
 * (`p2p nat`).
 *
 * @example
 * ```ts
 * const report = await checkPortMapping({ port: 4000, server: { host: "198.51.100.2", port: 7000 } });
 * console.log("external" in report ? report.external : report.reason);
 * ```
 */
export async function checkPortMapping(
  options: Pick<PortMappingOptions, "port" | "server" | "publicHost" | "gateway" | "clock">,
): Promise<PortMappingReport> {
  let reason = "";
  const mapping = await PortMapping.open({ ...options, onFailed: (why) => reason = why });
  try {
    const status = await mapping.settled();
    const m = status?.mapping;
    if (m) {
      const external = `${m.external.host}:${m.external.port}`;
      return { protocol: m.protocol, external, lifetime: m.lifetime };
    }
    return { reason: reason || (status?.notes.join("; ") ?? "no answer") };
  } finally {
    await mapping.close();
  }
}
