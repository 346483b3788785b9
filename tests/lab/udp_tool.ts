/**
 * A scriptable UDP socket for probing the NAT lab, and {@linkcode UdpProbe}, its driver.
 *
 * As a program (run inside a lab namespace): `udp_tool.ts [--port N] [--echo] [--ipv6]` binds
 * 0.0.0.0:N (0 = any; `[::]:N` with `--ipv6`), then speaks JSON lines:
 * - stdout: `{"ready":PORT}` once bound; `{"recv":{"ip":..,"port":..,"data":..}}` per datagram;
 *   `{"sent":COUNT}` after each send command; `{"error":MESSAGE}` when a command fails.
 * - stdin: `{"send":{"ip":..,"port":..,"data":..,"count"?:N,"ttl"?:T}}` per send command.
 *   It exits when stdin closes.
 *
 * With `--echo` it answers every datagram with `echo <ip>:<port> <data>`, the sender's address as
 * it saw it (and never answers an echo, so two echo sockets can't loop).
 *
 * @example
 * ```ts
 * const srv = await UdpProbe.start(lab, server, { port: 7000, echo: true });
 * const a = await UdpProbe.start(lab, hostA, { port: 4000 });
 * await a.send(server.ip, 7000, "hi");
 * const reply = await a.receive(2000); // reply?.seen is {ip: ra.publicIp, port: 4000}
 * await a.close();
 * await srv.close();
 * ```
 * @module
 */

import dgram from "node:dgram";
import type { Lab, LabNode } from "./netlab.ts";

/** A datagram a probe received. */
export interface Datagram {
  /** Source address as the receiving socket saw it. */
  ip: string;
  port: number;
  data: string;
  /** For a reply of an echo socket: the address the echo socket saw our datagram come from. */
  seen?: { ip: string; port: number };
}

/** Options of {@linkcode UdpProbe.start}. */
export interface ProbeOptions {
  /** Local port; 0 or absent picks a free one. */
  port?: number;
  /** Answer every datagram with the sender's address as seen. */
  echo?: boolean;
  /** Bind `::` (dual-stack: IPv6, and IPv4 as `::ffff:a.b.c.d`) instead of `0.0.0.0`. */
  ipv6?: boolean;
  /** How long to wait for the socket to be bound. Default 15000 ms (Deno starts slowly on CI). */
  startTimeoutMs?: number;
}

/** Options of {@linkcode UdpProbe.send}. */
export interface SendOptions {
  /** Send the datagram this many times. Default 1. */
  count?: number;
  /** IP TTL of these datagrams (then back to 64), e.g. 2 to die at the lab's core router. */
  ttl?: number;
}

interface ToolEvent {
  ready?: number;
  recv?: { ip: string; port: number; data: string };
  sent?: number;
  error?: string;
}

const ECHO_RE = /^echo (\d+\.\d+\.\d+\.\d+):(\d+) /;

/**
 * Drives one `udp_tool.ts` socket running in a lab namespace.
 *
 * @example
 * ```ts
 * const p = await UdpProbe.start(lab, host);
 * await p.send("198.51.100.2", 7000, "x", { count: 10 });
 * const got = await p.collect(500);
 * await p.close();
 * ```
 */
export class UdpProbe {
  /** The local port the socket is bound to. */
  readonly port: number;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #events: AsyncGenerator<ToolEvent, void, undefined>;
  readonly #inbox: Datagram[] = [];
  #pump: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #acks: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #ended = false;

  private constructor(
    child: Deno.ChildProcess,
    events: AsyncGenerator<ToolEvent, void, undefined>,
    port: number,
  ) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#events = events;
    this.port = port;
  }

  /**
   * Starts a socket in a node's namespace and waits until it is bound.
   *
   * @example
   * ```ts
   * const echo = await UdpProbe.start(lab, srv, { port: 7000, echo: true });
   * ```
   */
  static async start(lab: Lab, node: LabNode, options: ProbeOptions = {}): Promise<UdpProbe> {
    const args = [Deno.execPath(), "run", "--no-config", "--allow-net", import.meta.filename!];
    args.push("--port", String(options.port ?? 0));
    if (options.echo) args.push("--echo");
    if (options.ipv6) args.push("--ipv6");
    const child = lab.spawn(node, args, { stdin: "piped", stdout: "piped", stderr: "inherit" });
    const events = readEvents(child.stdout);
    const timeoutMs = options.startTimeoutMs ?? 15_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) =>
      timer = setTimeout(() => resolve(null), timeoutMs)
    );
    const first = await Promise.race([events.next(), timeout]);
    clearTimeout(timer);
    if (first === null || first.done || first.value.ready === undefined) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await events.return(undefined);
      await child.stdin.close().catch(() => {});
      const why = first === null
        ? `not bound after ${timeoutMs} ms`
        : first.done
        ? "it exited"
        : JSON.stringify(first.value);
      throw new Error(`Cannot start UDP probe in '${node.name}': ${why}`);
    }
    const probe = new UdpProbe(child, events, first.value.ready);
    probe.#pump = probe.#run();
    return probe;
  }

  /**
   * Sends `data` to ip:port (`count` times, optionally with a TTL); resolves once sent.
   *
   * @example
   * ```ts
   * await probe.send(peer.ip, 9000, "punch", { ttl: 2 });
   * ```
   */
  send(ip: string, port: number, data: string, options: SendOptions = {}): Promise<void> {
    if (this.#ended) return Promise.reject(new Error("Cannot send: the UDP probe has exited"));
    const ack = new Promise<void>((resolve, reject) => this.#acks.push({ resolve, reject }));
    const line = JSON.stringify({ send: { ip, port, data, ...options } }) + "\n";
    return this.#writer.write(new TextEncoder().encode(line)).then(() => ack);
  }

  /**
   * The next datagram, or null if none arrives within `timeoutMs`.
   *
   * @example
   * ```ts
   * const d = await probe.receive(1000);
   * ```
   */
  async receive(timeoutMs: number): Promise<Datagram | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inbox.length === 0 && !this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
    return this.#inbox.shift() ?? null;
  }

  /**
   * Every datagram received until `ms` from now (including those already waiting).
   *
   * @example
   * ```ts
   * const all = await probe.collect(300);
   * ```
   */
  async collect(ms: number): Promise<Datagram[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.#inbox.splice(0);
  }

  /**
   * Closes the socket and waits for the program to exit.
   *
   * @example
   * ```ts
   * await probe.close();
   * ```
   */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 5_000)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
      await this.#child.status;
    }
    await this.#pump;
  }

  async #run(): Promise<void> {
    for (;;) {
      const { done, value } = await this.#events.next();
      if (done) break;
      if (value.recv !== undefined) {
        const { ip, port, data } = value.recv;
        const m = ECHO_RE.exec(data);
        this.#inbox.push(
          m ? { ip, port, data, seen: { ip: m[1], port: Number(m[2]) } } : { ip, port, data },
        );
        this.#wake?.();
      } else if (value.sent !== undefined) {
        this.#acks.shift()?.resolve();
      } else if (value.error !== undefined) {
        this.#acks.shift()?.reject(new Error(`UDP probe failed: ${value.error}`));
      }
    }
    this.#ended = true;
    for (const ack of this.#acks.splice(0)) ack.reject(new Error("UDP probe exited"));
    this.#wake?.();
  }
}

/** Parses the program's stdout into events. */
async function* readEvents(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<ToolEvent, void, undefined> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() !== "") yield JSON.parse(line) as ToolEvent;
    }
  }
}

/** The program: a UDP socket driven by JSON lines. */
async function main(args: string[]): Promise<void> {
  const portAt = args.indexOf("--port");
  const port = portAt >= 0 ? Number(args[portAt + 1]) : 0;
  const echo = args.includes("--echo");
  const emit = (event: ToolEvent): void => console.log(JSON.stringify(event));
  const ipv6 = args.includes("--ipv6");
  const socket = dgram.createSocket(ipv6 ? "udp6" : "udp4");
  const sendTo = (data: string, ip: string, p: number): Promise<void> =>
    new Promise((resolve, reject) => socket.send(data, p, ip, (e) => e ? reject(e) : resolve()));
  socket.on("message", (msg, rinfo) => {
    const data = new TextDecoder().decode(msg);
    emit({ recv: { ip: rinfo.address, port: rinfo.port, data } });
    if (echo && !ECHO_RE.test(data)) {
      sendTo(`echo ${rinfo.address}:${rinfo.port} ${data}`, rinfo.address, rinfo.port)
        .catch((e) => emit({ error: `echo to ${rinfo.address}:${rinfo.port}: ${e}` }));
    }
  });
  await new Promise<void>((resolve) => socket.bind(port, ipv6 ? "::" : "0.0.0.0", resolve));
  emit({ ready: socket.address().port });
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === "") continue;
      try {
        const { send } = JSON.parse(line) as {
          send: { ip: string; port: number; data: string; count?: number; ttl?: number };
        };
        if (send.ttl !== undefined) socket.setTTL(send.ttl);
        for (let i = 0; i < (send.count ?? 1); i++) await sendTo(send.data, send.ip, send.port);
        if (send.ttl !== undefined) socket.setTTL(64);
        emit({ sent: send.count ?? 1 });
      } catch (e) {
        emit({ error: `${line}: ${e}` });
      }
    }
  }
  socket.close();
}

if (import.meta.main) await main(Deno.args);
