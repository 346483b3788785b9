/**
 * UPnP-IGD's I/O for the port mapper: finds the gateway's Internet Gateway Device by SSDP
 * (multicast, and unicast to the gateway), reads its description, and calls its WAN connection
 * service by SOAP over HTTP. The texts are `upnp_codec.ts`'s.
 *
 * Only the default gateway is believed: an SSDP answer from another host, or a description or
 * control URL on another host, is ignored (anyone on the LAN can answer SSDP; we fetch nothing
 * from anywhere else).
 *
 * Why not `@achingbrain/nat-port-mapper` (the npm library the issue named): it runs under Deno
 * and stays on the LAN, but its `unmap` sends `DeletePortMapping` with the internal port as the
 * external one and an empty protocol, which miniupnpd 2.3.1 does not match, so a mapping would
 * outlive the client; and it brings fifteen packages for what is three SOAP calls here.
 *
 * @example
 * ```ts
 * import { UpnpGateway } from "./upnp_client.ts";
 *
 * const igd = new UpnpGateway({ gateway: "10.1.0.1", internalHost: "10.1.0.2", timeoutMs: 2000 });
 * const m = await igd.map({ internalPort: 4000, externalPort: 4000, lifetime: 7200 });
 * await igd.unmap(m.external.port);
 * ```
 * @module
 */
import { UdpSocket } from "../net/udp.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import {
  findWanService,
  parseSoapResponse,
  parseSsdpResponse,
  soapRequest,
  SSDP_ADDRESS,
  SSDP_PORT,
  ssdpSearch,
  type WanService,
} from "./upnp_codec.ts";

/** Options for {@linkcode UpnpGateway}. */
export interface UpnpGatewayOptions {
  /** The default gateway: the only host we talk to. */
  gateway: string;
  /** Our address on its link (the mapping's internal client). */
  internalHost: string;
  /** Longest wait for each step (search, description, each call). Default 2000. */
  timeoutMs?: number;
}

/** What {@linkcode UpnpGateway.map} granted. */
export interface UpnpMapping {
  external: Endpoint;
  /** Seconds (0: the gateway's lease never ends by itself). */
  lifetime: number;
}

/** A UPnP failure, said in words (`UPnP: ...`). */
export class UpnpError extends Error {
  override name = "UpnpError";
}

/** Largest description or SOAP answer read. */
const MAX_BODY = 64 * 1024;
/** UPnP's ConflictInMappingEntry: the external port is someone else's. */
const CONFLICT = 718;
/** OnlyPermanentLeasesSupported (IGD:1 gateways that refuse a lease duration). */
const ONLY_PERMANENT = 725;

/** The gateway's IGD: found once, then called for each map, renewal and delete. */
export class UpnpGateway {
  readonly #o: UpnpGatewayOptions;
  #service: WanService | undefined;

  constructor(options: UpnpGatewayOptions) {
    this.#o = options;
  }

  /**
   * Maps UDP `internalPort` for `lifetime` seconds, on `externalPort` if free, else on a random
   * one; returns the external endpoint. Rejects with a {@linkcode UpnpError}.
   */
  async map(
    request: { internalPort: number; externalPort: number; lifetime: number },
  ): Promise<UpnpMapping> {
    const service = await this.#find();
    const ip = await this.#call(service, "GetExternalIPAddress", []);
    const host = ip.NewExternalIPAddress ?? "";
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) {
      throw new UpnpError(`UPnP: the gateway has no usable external address ('${host}')`);
    }
    let lifetime = request.lifetime;
    const ports = [request.externalPort, 1024 + Math.floor(Math.random() * 64512)];
    for (let i = 0; i < ports.length;) {
      try {
        await this.#call(service, "AddPortMapping", [
          ["NewRemoteHost", ""],
          ["NewExternalPort", String(ports[i])],
          ["NewProtocol", "UDP"],
          ["NewInternalPort", String(request.internalPort)],
          ["NewInternalClient", this.#o.internalHost],
          ["NewEnabled", "1"],
          ["NewPortMappingDescription", "p2p chat"],
          ["NewLeaseDuration", String(lifetime)],
        ]);
        return { external: { host, port: ports[i] }, lifetime };
      } catch (err) {
        const code = (err as UpnpError & { code?: number }).code;
        if (code === ONLY_PERMANENT && lifetime !== 0) {
          lifetime = 0; // we delete it at exit ourselves
          continue;
        }
        if (code !== CONFLICT || i === ports.length - 1) throw err;
        i++;
      }
    }
    throw new UpnpError("UPnP: no port could be mapped");
  }

  /** Deletes our mapping of external UDP `port`. Rejects with a {@linkcode UpnpError}. */
  async unmap(port: number): Promise<void> {
    const service = await this.#find();
    await this.#call(service, "DeletePortMapping", [
      ["NewRemoteHost", ""],
      ["NewExternalPort", String(port)],
      ["NewProtocol", "UDP"],
    ]);
  }

  async #find(): Promise<WanService> {
    if (this.#service) return this.#service;
    const location = await this.#search();
    const xml = await this.#fetch(location, { method: "GET" }, "the device description");
    const service = findWanService(xml, location);
    if (!service) throw new UpnpError("UPnP: the gateway's device has no WAN connection service");
    if (new URL(service.controlUrl).hostname !== this.#o.gateway) {
      throw new UpnpError(`UPnP: the control URL ${service.controlUrl} is not on the gateway`);
    }
    return this.#service = service;
  }

  /** SSDP: the first LOCATION the gateway itself gives. */
  async #search(): Promise<string> {
    const socket = await UdpSocket.bind({ host: "0.0.0.0" });
    try {
      return await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new UpnpError(`UPnP: no SSDP answer from ${this.#o.gateway}`)),
          this.#timeout(),
        );
        socket.onMessage((data, from) => {
          if (from.host !== this.#o.gateway) return;
          const location = parseSsdpResponse(new TextDecoder().decode(data));
          if (!location || new URL(location).hostname !== this.#o.gateway) return;
          clearTimeout(timer);
          resolve(location);
        });
        const search = ssdpSearch();
        socket.send(search, { host: SSDP_ADDRESS, port: SSDP_PORT });
        socket.send(search, { host: this.#o.gateway, port: SSDP_PORT });
      });
    } finally {
      await socket.close();
    }
  }

  async #call(
    service: WanService,
    action: string,
    args: [string, string][],
  ): Promise<Record<string, string>> {
    const { body, soapAction } = soapRequest(service.serviceType, action, args);
    const xml = await this.#fetch(
      service.controlUrl,
      {
        method: "POST",
        headers: { "Content-Type": 'text/xml; charset="utf-8"', SOAPAction: soapAction },
        body,
      },
      action,
      true,
    );
    const answer = parseSoapResponse(xml, action);
    if (!answer.ok) {
      const err = new UpnpError(
        `UPnP: ${action} failed: ${answer.code} ${answer.description}`.trim(),
      ) as UpnpError & { code: number };
      err.code = answer.code;
      throw err;
    }
    return answer.values;
  }

  /** An HTTP exchange with the gateway, bounded in time and size. */
  async #fetch(url: string, init: RequestInit, what: string, faultOk = false): Promise<string> {
    let response: Response;
    try {
      response = await fetch(url, { ...init, signal: AbortSignal.timeout(this.#timeout()) });
    } catch (err) {
      throw new UpnpError(`UPnP: ${what}: ${(err as Error).message}`);
    }
    // A SOAP fault comes with status 500 and a body that says why.
    if (!response.ok && !(faultOk && response.status === 500)) {
      await response.body?.cancel();
      throw new UpnpError(`UPnP: ${what}: HTTP ${response.status}`);
    }
    const reader = response.body?.getReader();
    if (!reader) return "";
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_BODY) {
        await reader.cancel();
        throw new UpnpError(`UPnP: ${what}: the answer is larger than ${MAX_BODY} bytes`);
      }
      chunks.push(value);
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  }

  #timeout(): number {
    return this.#o.timeoutMs ?? 2000;
  }
}
