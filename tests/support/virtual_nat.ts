/**
 * A tiny virtual internet of hosts and NAT routers, driven by a fake clock, for unit tests of
 * NAT traversal. It models what matters for hole punching the way Linux conntrack NATs (the lab's
 * routers, `tests/lab/netlab.ts`) behave:
 * - **Mapping.** Each router keeps conntrack-like entries `(inside, remote) -> public port`.
 *   `home` and `open` routers keep the inside port when the tuple `(public port, remote)` is free
 *   (endpoint-independent, port-preserving masquerade) and pick a random one otherwise;
 *   `symmetric` routers pick a random port for every new `(inside, remote)` (`fully-random`).
 * - **Filtering.** An inbound packet is forwarded inside only if it matches an entry (its source
 *   is the entry's remote, its destination port the entry's public port). Otherwise a `home` or
 *   `symmetric` router drops it without a trace, while an `open` router (no input filter) accepts
 *   it for itself: that creates an `[UNREPLIED]` router-local entry which blocks the tuple, so a
 *   later outbound packet of an inside host toward that remote gets a *different* public port.
 * - **TTL.** Every router forwarding a packet (NAT routers and the `internetHops` core routers)
 *   drops it if its TTL is 1 or less, else decrements it. A NAT router translates inbound packets
 *   (and so refreshes or creates entries) before that check, as Linux does in PREROUTING; outbound
 *   packets are checked before they are translated, so a packet dying in a router creates no
 *   mapping there.
 * - **Timeouts.** Entries expire `udpTimeoutMs` after the last packet matching them, either way.
 * - Hosts behind the same router reach each other directly (`lanLatencyMs`); a packet to the
 *   router's own public address from inside is dropped (no hairpinning). Private addresses are
 *   not routed on the internet.
 * - **Sockets.** A host has as many sockets as endpoints listening on its address (`listen`);
 *   each port is mapped on its own, so a host behind a `symmetric` router gets one public port
 *   per socket and destination. `unlisten` closes one: later packets to it are dropped.
 *
 * Packets carry any JavaScript value; nothing is serialized.
 *
 * @example
 * ```ts
 * const net = new VirtualNetwork({ latencyMs: 20 });
 * const server = net.addPublicHost("198.51.100.1");
 * const router = net.addRouter({ kind: "home", wanIp: "203.0.113.1" });
 * const host = net.addHost(router, "10.1.0.2");
 * net.listen({ host: server.ip, port: 7000 }, (payload, from) => console.log(payload, from));
 * net.send({ host: host.ip, port: 4000 }, { host: server.ip, port: 7000 }, "hello");
 * net.run(1000); // logs "hello" { host: "203.0.113.1", port: 4000 }
 * ```
 * @module
 */
import type { Endpoint } from "../../lib/protocol/endpoint.ts";
import { prng } from "./prng.ts";

/** How a virtual router maps and filters; see the module documentation. */
export type NatKind = "home" | "open" | "symmetric";

/** Receives a packet delivered to a listening endpoint. */
export type Receiver = (payload: unknown, from: Endpoint, ttl: number) => void;

/** A host: public when it has no router. */
export interface VirtualHost {
  readonly ip: string;
  readonly router: VirtualRouter | undefined;
}

/** One conntrack-like entry; `inside` undefined marks a router-local `[UNREPLIED]` entry. */
export interface NatEntry {
  inside: Endpoint | undefined;
  remote: Endpoint;
  port: number;
  createdAt: number;
  lastSeen: number;
}

/** Options of {@linkcode VirtualNetwork.addRouter}. */
export interface RouterOptions {
  kind: NatKind;
  /** Its WAN address: public, or inside `upstream`'s LAN for double NAT. */
  wanIp: string;
  /** The router whose LAN its WAN is on; default none (its WAN is on the internet). */
  upstream?: VirtualRouter;
  /** Idle lifetime of an entry; default 30 000 ms (Linux's unreplied UDP timeout). */
  udpTimeoutMs?: number;
}

function same(a: Endpoint, b: Endpoint): boolean {
  return a.host === b.host && a.port === b.port;
}

/** A NAT router. */
export class VirtualRouter {
  readonly kind: NatKind;
  readonly upstream: VirtualRouter | undefined;
  readonly udpTimeoutMs: number;
  /** Drops everything crossing it while true (a cut link). */
  down = false;
  #wanIp: string;
  #entries: NatEntry[] = [];
  readonly #random: () => number;

  constructor(options: RouterOptions, random: () => number) {
    this.kind = options.kind;
    this.#wanIp = options.wanIp;
    this.upstream = options.upstream;
    this.udpTimeoutMs = options.udpTimeoutMs ?? 30_000;
    this.#random = random;
  }

  /** Its WAN address. */
  get wanIp(): string {
    return this.#wanIp;
  }

  /** The live entries at `now`. */
  entries(now: number): NatEntry[] {
    this.#expire(now);
    return this.#entries.map((e) => ({ ...e }));
  }

  /** Forgets every entry (`conntrack -F`, or a reboot); `wanIp` changes the WAN address. */
  flush(options: { wanIp?: string } = {}): void {
    this.#entries = [];
    if (options.wanIp !== undefined) this.#wanIp = options.wanIp;
  }

  /** Source NAT of an outbound packet: returns the public port, creating the entry if needed. */
  translateOut(inside: Endpoint, remote: Endpoint, now: number): number {
    this.#expire(now);
    const found = this.#entries.find((e) =>
      e.inside && same(e.inside, inside) && same(e.remote, remote)
    );
    if (found) {
      found.lastSeen = now;
      return found.port;
    }
    const taken = (port: number) =>
      this.#entries.some((e) => e.port === port && same(e.remote, remote));
    let port = inside.port;
    if (this.kind === "symmetric" || taken(port)) {
      do port = 1024 + Math.floor(this.#random() * 64512); while (taken(port));
    }
    this.#entries.push({
      inside: { ...inside },
      remote: { ...remote },
      port,
      createdAt: now,
      lastSeen: now,
    });
    return port;
  }

  /**
   * Destination NAT of an inbound packet from `remote` to public `port`: the inside endpoint,
   * `"local"` when it ends in the router itself, `"filtered"` when the filter drops it.
   */
  translateIn(remote: Endpoint, port: number, now: number): Endpoint | "local" | "filtered" {
    this.#expire(now);
    const found = this.#entries.find((e) => e.port === port && same(e.remote, remote));
    if (found) {
      found.lastSeen = now;
      return found.inside ?? "local";
    }
    if (this.kind !== "open") return "filtered";
    this.#entries.push({
      inside: undefined,
      remote: { ...remote },
      port,
      createdAt: now,
      lastSeen: now,
    });
    return "local";
  }

  #expire(now: number): void {
    this.#entries = this.#entries.filter((e) => now - e.lastSeen < this.udpTimeoutMs);
  }
}

/** Options of {@linkcode VirtualNetwork}. */
export interface VirtualNetworkOptions {
  /** One-way delay across the internet; default 20 ms. */
  latencyMs?: number;
  /** Delay between hosts of one LAN; default 1 ms. */
  lanLatencyMs?: number;
  /** Routers between the outer NAT routers (the lab has one, its core); default 1. */
  internetHops?: number;
  /** Seed of the port allocator's PRNG; default 1. */
  seed?: number;
}

interface Packet {
  src: Endpoint;
  dst: Endpoint;
  ttl: number;
  payload: unknown;
}

interface Clocked {
  deadline: () => number | undefined;
  poll: () => void;
}

/** The network and its fake clock. */
export class VirtualNetwork {
  /** The current time in ms. */
  now = 0;
  /** Packets dropped, by reason (e.g. `"ttl"`, `"filtered"`, `"router-local"`). */
  readonly drops = new Map<string, number>();
  readonly #latency: number;
  readonly #lanLatency: number;
  readonly #internetHops: number;
  readonly #random: () => number;
  readonly #hosts: VirtualHost[] = [];
  readonly #routers: VirtualRouter[] = [];
  readonly #listeners = new Map<string, Receiver>();
  readonly #clocked: Clocked[] = [];
  /** Packets in flight and scheduled actions, sorted by time (FIFO among equal times). */
  #queue: { at: number; run: () => void }[] = [];

  constructor(options: VirtualNetworkOptions = {}) {
    this.#latency = options.latencyMs ?? 20;
    this.#lanLatency = options.lanLatencyMs ?? 1;
    this.#internetHops = options.internetHops ?? 1;
    this.#random = prng(options.seed ?? 1);
  }

  /** Adds a host with a public address. */
  addPublicHost(ip: string): VirtualHost {
    const host = { ip, router: undefined };
    this.#hosts.push(host);
    return host;
  }

  /** Adds a NAT router. */
  addRouter(options: RouterOptions): VirtualRouter {
    const router = new VirtualRouter(options, this.#random);
    this.#routers.push(router);
    return router;
  }

  /** Adds a host with a private address in `router`'s LAN. */
  addHost(router: VirtualRouter, ip: string): VirtualHost {
    const host = { ip, router };
    this.#hosts.push(host);
    return host;
  }

  /** Delivers packets sent to `endpoint` (on one of the hosts) to `receiver`. */
  listen(endpoint: Endpoint, receiver: Receiver): void {
    this.#listeners.set(`${endpoint.host}:${endpoint.port}`, receiver);
  }

  /** Closes the socket at `endpoint`: packets sent to it are dropped from now on. */
  unlisten(endpoint: Endpoint): void {
    this.#listeners.delete(`${endpoint.host}:${endpoint.port}`);
  }

  /** The ports listening on `host` (its open sockets), in the order they were opened. */
  listening(host: string): number[] {
    return [...this.#listeners.keys()]
      .filter((key) => key.slice(0, key.lastIndexOf(":")) === host)
      .map((key) => Number(key.slice(key.lastIndexOf(":") + 1)));
  }

  /** Runs `poll` whenever the clock reaches `deadline()` (a state machine under test). */
  drive(deadline: () => number | undefined, poll: () => void): void {
    this.#clocked.push({ deadline, poll });
  }

  /** Runs `action` at time `at`. */
  at(at: number, action: () => void): void {
    let i = this.#queue.length;
    while (i > 0 && this.#queue[i - 1].at > at) i--;
    this.#queue.splice(i, 0, { at, run: action });
  }

  /** Sends a datagram from a host's socket `from` to `to` with IP TTL `ttl` (default 64). */
  send(from: Endpoint, to: Endpoint, payload: unknown, ttl = 64): void {
    const host = this.#hosts.find((h) => h.ip === from.host);
    if (!host) throw new Error(`Cannot send from ${from.host}: no such host`);
    const pkt: Packet = { src: { ...from }, dst: { ...to }, ttl, payload };
    const router = host.router;
    if (router && this.#hosts.some((h) => h.router === router && h.ip === to.host)) {
      this.at(this.now + this.#lanLatency, () => this.#deliver(pkt));
      return;
    }
    for (let r = router; r; r = r.upstream) {
      if (r.down) return this.#drop("down");
      if (to.host === r.wanIp) return this.#drop("no-hairpin");
      if (pkt.ttl <= 1) return this.#drop("ttl");
      pkt.ttl--;
      pkt.src = { host: r.wanIp, port: r.translateOut(pkt.src, pkt.dst, this.now) };
    }
    for (let i = 0; i < this.#internetHops; i++) {
      if (pkt.ttl <= 1) return this.#drop("ttl");
      pkt.ttl--;
    }
    this.at(this.now + this.#latency, () => this.#arrive(pkt));
  }

  /**
   * Advances the clock event by event until `done()` or time `until`; returns whether done.
   * Throws if a driven state machine keeps asking to be polled without the clock advancing.
   */
  run(until: number, done: () => boolean = () => false): boolean {
    let spins = 0;
    while (!done()) {
      const times = [this.#queue[0]?.at, ...this.#clocked.map((c) => c.deadline())]
        .filter((t): t is number => t !== undefined);
      const next = Math.max(this.now, Math.min(...times));
      if (times.length === 0 || next > until) {
        this.now = Math.max(this.now, until);
        return false;
      }
      spins = next === this.now ? spins + 1 : 0;
      if (spins > 10_000) throw new Error(`The clock is stuck at ${this.now} ms`);
      this.now = next;
      while (this.#queue.length > 0 && this.#queue[0].at <= this.now) this.#queue.shift()!.run();
      for (const c of this.#clocked) {
        const at = c.deadline();
        if (at !== undefined && at <= this.now) c.poll();
      }
    }
    return true;
  }

  /** A packet from the internet reaches its destination address. */
  #arrive(pkt: Packet): void {
    const router = this.#routers.find((r) => r.upstream === undefined && r.wanIp === pkt.dst.host);
    if (router) return this.#ingress(router, pkt);
    const host = this.#hosts.find((h) => h.router === undefined && h.ip === pkt.dst.host);
    if (!host) return this.#drop("unroutable");
    this.#deliver(pkt);
  }

  #ingress(router: VirtualRouter, pkt: Packet): void {
    if (router.down) return this.#drop("down");
    const inside = router.translateIn(pkt.src, pkt.dst.port, this.now);
    if (inside === "filtered" || inside === "local") return this.#drop(inside);
    if (pkt.ttl <= 1) return this.#drop("ttl");
    pkt.ttl--;
    pkt.dst = { ...inside };
    const inner = this.#routers.find((r) => r.upstream === router && r.wanIp === inside.host);
    if (inner) return this.#ingress(inner, pkt);
    this.#deliver(pkt);
  }

  #deliver(pkt: Packet): void {
    const receiver = this.#listeners.get(`${pkt.dst.host}:${pkt.dst.port}`);
    if (!receiver) return this.#drop("no-listener");
    receiver(pkt.payload, pkt.src, pkt.ttl);
  }

  #drop(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }
}
