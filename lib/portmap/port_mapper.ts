/**
 * Asks the gateway to map our chat socket's UDP port, so that peers behind any NAT can reach us
 * at the mapped endpoint: PCP (RFC 6887) first, then NAT-PMP (RFC 6886), then UPnP-IGD (an
 * injected {@linkcode UpnpPort}, as it is HTTP). A state machine over an injected clock and an
 * injected `send`; the caller hands it every datagram from the gateway's port 5351
 * ({@linkcode PortMapper.receive}). It keeps the mapping: renews it at half its
 * lifetime or every two minutes, whichever is sooner (so a gateway that restarted, its epoch gone
 * back, is noticed and the mapping made again), deletes it at {@linkcode PortMapper.stop}
 * (lifetime 0), and tries again later when the gateway said no.
 *
 * A gateway is trusted for nothing: an answer must come from the gateway's port 5351, echo our
 * nonce (PCP) and our internal port, and name the external address the coordinator sees (when
 * known); else it is ignored or the protocol counts as failed. A silent gateway costs two sends
 * per protocol and {@linkcode PortMapperOptions.firstWaitMs} × 3 of waiting each (750 ms by
 * default), plus what the UPnP port takes to give up, in the background: the chat never waits.
 *
 * @example
 * ```ts
 * import { PortMapper } from "./port_mapper.ts";
 *
 * const mapper = new PortMapper({
 *   gateway: "10.1.0.1",
 *   clientAddress: "10.1.0.2",
 *   internalPort: 4000,
 *   send: (data, to) => socket.send(data, to),
 *   onChange: (mapping) => console.log(mapping?.external),
 * });
 * socket.onMessage((data, from) => mapper.receive(data, from));
 * mapper.start();
 * // ...
 * await mapper.stop();
 * ```
 * @module
 */
import { type Clock, realClock, type TimerId } from "../clock.ts";
import { type Endpoint, formatEndpoint } from "../protocol/endpoint.ts";
import {
  decodeNatPmpResponse,
  encodeNatPmpAddressRequest,
  encodeNatPmpMapRequest,
  NATPMP_RESULTS,
  PORT_MAPPING_SERVER_PORT,
} from "./natpmp.ts";
import {
  decodePcpResponse,
  encodePcpMapRequest,
  PCP_OP_MAP,
  PCP_RESULTS,
  PROTOCOL_UDP,
} from "./pcp.ts";

/** The protocols, in the order they are tried. */
export type MappingProtocol = "pcp" | "natpmp" | "upnp";

/**
 * UPnP-IGD, which is HTTP rather than datagrams: the mapper calls it and awaits
 * (`upnp_client.ts`'s {@linkcode UpnpGateway} fits). Both reject with a message in words.
 */
export interface UpnpPort {
  map(
    request: { internalPort: number; externalPort: number; lifetime: number },
  ): Promise<{ external: Endpoint; lifetime: number }>;
  unmap(externalPort: number): Promise<void>;
}

/** A mapping the gateway granted. */
export interface PortMapping {
  protocol: MappingProtocol;
  /** Where peers reach our socket. */
  external: Endpoint;
  /** Seconds it lives from `grantedAt` unless renewed. */
  lifetime: number;
  /** Clock time (ms) of the answer that granted or renewed it. */
  grantedAt: number;
}

/** What the mapper is doing, for `p2p nat` and tests. */
export interface PortMapperStatus {
  state: "trying" | "mapped" | "failed" | "stopped";
  /** The gateway asked. */
  gateway: string;
  mapping?: PortMapping;
  /** What each protocol answered, or why it did not count (in words), latest last. */
  notes: string[];
}

/** Options for {@linkcode PortMapper}. */
export interface PortMapperOptions {
  /** The default gateway's IPv4 address. */
  gateway: string;
  /** Our address on the gateway's link (PCP needs it, and it must be the requests' source). */
  clientAddress: string;
  /** Our chat socket's port: the port to map. */
  internalPort: number;
  /** Sends a datagram (any local socket: the answer comes back to it). */
  send(data: Uint8Array, to: Endpoint): void;
  /** The mapping was granted, moved, or lost (`undefined`). */
  onChange(mapping: PortMapping | undefined): void;
  /**
   * Our public address as the coordinator sees it, when known: a mapping on another external
   * address is refused (a gateway behind another NAT, or one that lies).
   */
  publicHost?: () => string | undefined;
  /** Seconds to ask for; default 7200 (gateways may grant less). */
  lifetime?: number;
  /** First wait for an answer; each request is sent twice, the second wait doubled. Default 250. */
  firstWaitMs?: number;
  /**
   * Renew at least this often, even when half the lifetime is longer: a renewal's answer shows
   * whether the gateway restarted (and so lost the mapping). Default 120000 (2 minutes).
   */
  checkMs?: number;
  /** After every protocol failed, try again this much later. Default 10 minutes. */
  retryMs?: number;
  /** UPnP-IGD, tried after NAT-PMP; none by default. */
  upnp?: UpnpPort;
  /** Default {@linkcode realClock}. */
  clock?: Clock;
  /** 12 random bytes for a PCP nonce; default `crypto.getRandomValues`. */
  nonce?: () => Uint8Array;
}

type Step =
  | { kind: "pcp"; renew: boolean }
  | { kind: "natpmp-address" }
  | { kind: "natpmp-map"; externalAddress: string; renew: boolean }
  | { kind: "upnp"; renew: boolean };

const MAX_NOTES = 8;
const NAMES: Record<MappingProtocol, string> = { pcp: "PCP", natpmp: "NAT-PMP", upnp: "UPnP" };
/** Timers cannot wait longer (setTimeout's signed 32-bit milliseconds). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Keeps one UDP mapping of our chat port on the gateway. */
export class PortMapper {
  readonly #o: PortMapperOptions;
  readonly #clock: Clock;
  readonly #gateway: Endpoint;
  #state: PortMapperStatus["state"] = "trying";
  #step: Step | undefined;
  #sends = 0;
  #timer: TimerId | undefined;
  #nonce: Uint8Array;
  #mapping: PortMapping | undefined;
  /** Last epoch seen, and when (RFC 6886 §3.6: a gateway that restarted lost our mapping). */
  #epoch: { value: number; at: number } | undefined;
  readonly #notes: string[] = [];
  readonly #settled: (() => void)[] = [];
  /** Set when the gateway restarted: the next grant is reported even if unchanged. */
  #restarted = false;
  /** Resolves {@linkcode stop}'s wait when the gateway answers the delete. */
  #onDeleted: (() => void) | undefined;

  constructor(options: PortMapperOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    this.#gateway = { host: options.gateway, port: PORT_MAPPING_SERVER_PORT };
    this.#nonce = this.#newNonce();
  }

  /** Starts asking (PCP first). */
  start(): void {
    if (this.#state === "stopped") return;
    this.#begin({ kind: "pcp", renew: false });
  }

  /** The mapping in force, if any. */
  get mapping(): PortMapping | undefined {
    return this.#mapping;
  }

  /** What the mapper is doing and what the gateway said. */
  status(): PortMapperStatus {
    return {
      state: this.#state,
      gateway: this.#o.gateway,
      mapping: this.#mapping,
      notes: [...this.#notes],
    };
  }

  /** Resolves once a mapping is granted or every protocol failed (or at once, if so already). */
  settled(): Promise<PortMapperStatus> {
    if (this.#state !== "trying") return Promise.resolve(this.status());
    return new Promise((resolve) => this.#settled.push(() => resolve(this.status())));
  }

  /**
   * Hands the mapper a datagram; returns true when it came from the gateway's port 5351 (and is
   * the mapper's, whatever it said).
   */
  receive(data: Uint8Array, from: Endpoint): boolean {
    if (from.host !== this.#o.gateway || from.port !== PORT_MAPPING_SERVER_PORT) return false;
    if (this.#state === "stopped") this.#onDeleted?.();
    if (this.#state === "stopped" || this.#step === undefined) return true;
    try {
      if (this.#step.kind === "pcp") this.#onPcp(data);
      else if (this.#step.kind !== "upnp") this.#onNatPmp(data);
    } catch (err) {
      this.#note(`ignored an answer from the gateway: ${(err as Error).message}`);
    }
    return true;
  }

  /**
   * Stops; a mapping in force is deleted (lifetime 0). Resolves when the gateway confirmed the
   * delete, or after `waitMs` (default 300) without an answer.
   */
  stop(waitMs = 300): Promise<void> {
    if (this.#state === "stopped") return Promise.resolve();
    const mapping = this.#mapping;
    this.#clock.clearTimeout(this.#timer);
    this.#state = "stopped";
    this.#step = undefined;
    this.#mapping = undefined;
    this.#wake();
    if (!mapping) return Promise.resolve();
    if (mapping.protocol === "upnp") {
      // Bounded by the UPnP client's own timeouts; a failed delete expires with its lease.
      return this.#o.upnp!.unmap(mapping.external.port).catch(() => {});
    }
    this.#send(this.#request(mapping.protocol, mapping, 0));
    return new Promise((resolve) => {
      const timer = this.#clock.setTimeout(resolve, waitMs);
      // Any answer from the gateway now is the delete's: we ask nothing else any more.
      this.#onDeleted = () => {
        this.#onDeleted = undefined;
        this.#clock.clearTimeout(timer);
        resolve();
      };
    });
  }

  #begin(step: Step): void {
    this.#clock.clearTimeout(this.#timer);
    if (this.#state !== "mapped") this.#state = "trying";
    this.#step = step;
    this.#sends = 0;
    this.#transmit();
  }

  #transmit(): void {
    const step = this.#step!;
    if (step.kind === "upnp") return this.#callUpnp(step);
    const m = this.#mapping;
    if (step.kind === "pcp") this.#send(this.#request("pcp", step.renew ? m : undefined));
    else if (step.kind === "natpmp-address") this.#send(encodeNatPmpAddressRequest());
    else this.#send(this.#request("natpmp", step.renew ? m : undefined));
    this.#sends++;
    const wait = (this.#o.firstWaitMs ?? 250) * (this.#sends === 1 ? 1 : 2);
    this.#timer = this.#clock.setTimeout(() => this.#timeout(), wait);
  }

  #timeout(): void {
    const step = this.#step!;
    if (this.#sends < 2) return this.#transmit();
    const renewing = "renew" in step && step.renew;
    if (renewing && this.#mapping) {
      // The gateway is quiet while our mapping still lives: ask again until it expires.
      const left = this.#expiresAt(this.#mapping) - this.#clock.now();
      if (left > 0) {
        this.#note(`no answer to a renewal; ${Math.round(left / 1000)} s of mapping left`);
        this.#step = undefined;
        this.#timer = this.#clock.setTimeout(
          () => this.#begin(step),
          Math.min(left / 4, MAX_TIMER_MS),
        );
        return;
      }
      this.#lose("the mapping expired: the gateway stopped answering");
      return this.#begin({ kind: "pcp", renew: false });
    }
    const wait = (this.#o.firstWaitMs ?? 250) * 3;
    const what = step.kind === "pcp" ? "PCP" : "NAT-PMP";
    this.#next(step, `${what}: no answer from ${formatEndpoint(this.#gateway)} in ${wait} ms`);
  }

  /** UPnP is one awaited call; an answer after the mapper moved on is dropped. */
  #callUpnp(step: Extract<Step, { kind: "upnp" }>): void {
    const m = step.renew ? this.#mapping : undefined;
    this.#o.upnp!.map({
      internalPort: this.#o.internalPort,
      externalPort: m?.external.port ?? this.#o.internalPort,
      lifetime: this.#o.lifetime ?? 7200,
    }).then(
      (granted) => {
        if (this.#state === "stopped") {
          // Stopped while the router was granting it: nobody will renew or delete it later.
          this.#o.upnp!.unmap(granted.external.port).catch(() => {});
          return;
        }
        if (this.#step !== step) return;
        this.#granted(step, "upnp", granted.external, granted.lifetime);
      },
      (err) => {
        if (this.#step !== step) return;
        if (step.renew && this.#mapping) {
          this.#sends = 2;
          return this.#timeout();
        }
        this.#next(step, (err as Error).message);
      },
    );
  }

  /** The protocol of `step` failed: try the next, or give up until `retryMs`. */
  #next(step: Step, why: string): void {
    this.#note(why);
    this.#clock.clearTimeout(this.#timer);
    const renewing = "renew" in step && step.renew;
    if (step.kind === "pcp" && !renewing) return this.#begin({ kind: "natpmp-address" });
    if (step.kind.startsWith("natpmp") && !renewing && this.#o.upnp) {
      return this.#begin({ kind: "upnp", renew: false });
    }
    this.#step = undefined;
    if (this.#mapping) this.#lose(`the gateway no longer maps our port (${why})`);
    this.#state = "failed";
    this.#wake();
    this.#timer = this.#clock.setTimeout(() => this.start(), this.#o.retryMs ?? 600_000);
  }

  #onPcp(data: Uint8Array): void {
    const step = this.#step as Extract<Step, { kind: "pcp" }>;
    const answer = decodePcpResponse(data);
    if (answer.version === 0) {
      return this.#next(step, "PCP: the gateway speaks only NAT-PMP");
    }
    if (answer.opcode !== PCP_OP_MAP) throw new Error(`PCP opcode ${answer.opcode}, not MAP`);
    const map = answer.map;
    // An answer that is not to our request is ignored: a late or forged one.
    if (map && (!sameBytes(map.nonce, this.#nonce) || map.internalPort !== this.#o.internalPort)) {
      throw new Error("a PCP answer with another nonce or internal port");
    }
    if (map && map.protocol !== PROTOCOL_UDP) throw new Error(`PCP protocol ${map.protocol}`);
    this.#checkEpoch(answer.epoch);
    if (answer.result !== 0) {
      const why = PCP_RESULTS[answer.result] ?? `result ${answer.result}`;
      return this.#next(step, `PCP: the gateway refused: ${why}`);
    }
    if (!map) throw new Error("a PCP success without MAP data");
    this.#granted(
      step,
      "pcp",
      { host: map.externalAddress, port: map.externalPort },
      answer.lifetime,
    );
  }

  #onNatPmp(data: Uint8Array): void {
    const step = this.#step as Exclude<Step, { kind: "pcp" }>;
    const answer = decodeNatPmpResponse(data);
    const wanted = step.kind === "natpmp-address" ? "address" : "map-udp";
    if (answer.op !== wanted) throw new Error(`a NAT-PMP ${answer.op} answer, not ${wanted}`);
    if (answer.op === "map-udp" && answer.result === 0) {
      if (answer.internalPort !== this.#o.internalPort) {
        throw new Error(`a NAT-PMP mapping of port ${answer.internalPort}, not ours`);
      }
    }
    this.#checkEpoch(answer.epoch);
    if (answer.result !== 0) {
      const why = NATPMP_RESULTS[answer.result] ?? `result ${answer.result}`;
      return this.#next(step, `NAT-PMP: the gateway refused: ${why}`);
    }
    if (answer.op === "address") {
      const externalAddress = answer.externalAddress!;
      this.#clock.clearTimeout(this.#timer);
      return this.#begin({ kind: "natpmp-map", externalAddress, renew: false });
    }
    if (step.kind !== "natpmp-map") return;
    const external = { host: step.externalAddress, port: answer.externalPort! };
    this.#granted(step, "natpmp", external, answer.lifetime!);
  }

  #granted(step: Step, protocol: MappingProtocol, external: Endpoint, lifetime: number): void {
    const name = NAMES[protocol];
    // UPnP's lease 0 is "until deleted": we delete it at exit, and renew as if it were 2 hours.
    if (protocol === "upnp" && lifetime === 0) lifetime = 7200;
    if (lifetime === 0 || external.port === 0) {
      return this.#next(step, `${name}: the gateway granted nothing (lifetime or port 0)`);
    }
    const seen = this.#o.publicHost?.();
    // Only an IPv4 address seen by the coordinator says anything about an IPv4 mapping (a
    // coordinator reached over IPv6 sees our IPv6 address).
    if (seen !== undefined && !seen.includes(":") && external.host !== seen) {
      return this.#next(
        step,
        `${name}: the gateway offered ${formatEndpoint(external)}, but the coordinator sees us ` +
          `at ${seen}: another NAT above it, or a gateway that lies; not used`,
      );
    }
    this.#clock.clearTimeout(this.#timer);
    const before = this.#mapping;
    this.#mapping = { protocol, external, lifetime, grantedAt: this.#clock.now() };
    this.#state = "mapped";
    this.#step = undefined;
    const moved = !before || this.#restarted || before.protocol !== protocol ||
      before.external.host !== external.host || before.external.port !== external.port;
    this.#restarted = false;
    if (moved) this.#note(`${name}: mapped ${formatEndpoint(external)} for ${lifetime} s`);
    this.#wake();
    const renew: Step = protocol === "natpmp"
      ? { kind: "natpmp-map", externalAddress: external.host, renew: true }
      : { kind: protocol, renew: true };
    const renewMs = Math.min((lifetime * 1000) / 2, this.#o.checkMs ?? 120_000, MAX_TIMER_MS);
    this.#timer = this.#clock.setTimeout(() => this.#begin(renew), renewMs);
    if (moved) this.#o.onChange(this.#mapping);
  }

  /**
   * A gateway whose epoch went back restarted and forgot its mappings (RFC 6886 §3.6). Every
   * answer we get is to a map request, which maps again, so noting it is all there is to do;
   * renewing every `checkMs` is what bounds how long a restart goes unnoticed.
   */
  #checkEpoch(epoch: number): void {
    const now = this.#clock.now();
    const last = this.#epoch;
    this.#epoch = { value: epoch, at: now };
    if (!last) return;
    const elapsed = (now - last.at) / 1000;
    if (epoch >= last.value + (elapsed * 7) / 8 - 2) return;
    this.#note(`the gateway restarted (epoch ${last.value} → ${epoch}): mapped again`);
    // A restarted gateway may give another port: report the mapping as new even if it is not.
    if (this.#mapping) this.#restarted = true;
  }

  #request(
    protocol: "pcp" | "natpmp",
    mapping: PortMapping | undefined,
    lifetime?: number,
  ): Uint8Array {
    const life = lifetime ?? this.#o.lifetime ?? 7200;
    if (protocol === "pcp") {
      return encodePcpMapRequest({
        clientAddress: this.#o.clientAddress,
        nonce: this.#nonce,
        internalPort: this.#o.internalPort,
        suggestedPort: mapping?.external.port ?? this.#o.internalPort,
        suggestedAddress: mapping?.external.host,
        lifetime: life,
      });
    }
    return encodeNatPmpMapRequest({
      internalPort: this.#o.internalPort,
      // RFC 6886 §3.4: a delete names no external port.
      suggestedPort: life === 0 ? 0 : mapping?.external.port ?? this.#o.internalPort,
      lifetime: life,
    });
  }

  #lose(why: string): void {
    this.#note(why);
    this.#mapping = undefined;
    this.#nonce = this.#newNonce();
    this.#o.onChange(undefined);
  }

  #expiresAt(m: PortMapping): number {
    return m.grantedAt + m.lifetime * 1000;
  }

  #send(data: Uint8Array): void {
    this.#o.send(data, this.#gateway);
  }

  #note(text: string): void {
    this.#notes.push(text);
    if (this.#notes.length > MAX_NOTES) this.#notes.shift();
  }

  #wake(): void {
    for (const fn of this.#settled.splice(0)) fn();
  }

  #newNonce(): Uint8Array {
    return this.#o.nonce?.() ?? crypto.getRandomValues(new Uint8Array(12));
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
