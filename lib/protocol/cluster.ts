/**
 * The messages coordinators of one community exchange over NATS (docs/CLUSTER.md,
 * docs/PROTOCOL.md §7): pure codecs, bytes ↔ {@linkcode ClusterMessage}, no I/O, so that they can
 * be fuzzed. Everything that comes from NATS is input like any datagram: {@linkcode
 * decodeClusterMessage} checks every field (names, endpoints, keys, sizes) and throws a
 * {@linkcode ClusterProtocolError} that says what is wrong, never anything else.
 *
 * The body is one JSON object; its `t` says which message it is. The sending member's id is not
 * in the body: it is the last token of the subject ({@linkcode clusterSubject}), which NATS
 * permissions can pin to one member's credentials.
 *
 * @example
 * ```ts
 * const bytes = encodeClusterMessage({ t: "beat", boot: "b1", seq: 4, users: 2 });
 * decodeClusterMessage(bytes); // { t: "beat", boot: "b1", seq: 4, users: 2 }
 * ```
 * @module
 */
import { type Endpoint, formatEndpoint, parseEndpoint } from "./endpoint.ts";
import {
  encodeServerMessage,
  parseServerMessage,
  SeedProtocolError,
  type ServerMessage,
} from "./seed.ts";
import { usernameProblem } from "./username.ts";
import { isNatKind, type NatKind } from "./whoami.ts";

/** Largest message we send or accept (NATS' default `max_payload` is 1 MiB). */
export const MAX_CLUSTER_MESSAGE = 512 * 1024;
/** Most users in one snapshot part or one presence message. */
export const MAX_CLUSTER_ENTRIES = 2_000;
/** Largest relayed frame carried in a `relay` message. */
export const MAX_RELAY_INNER = 2048;

/** A community name or member id: one NATS subject token. */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** A message from NATS that is not one of ours, or is one with a bad field. */
export class ClusterProtocolError extends Error {
  override name = "ClusterProtocolError";
}

/** One online user as its member admitted it. */
export interface ClusterUser {
  name: string;
  /** The endpoint its member observed (its NAT's public mapping). */
  observed: Endpoint;
  /** The endpoint the client claimed (its LAN address). */
  claimed: Endpoint;
  /** Its public key (base64url of 32 bytes); none for a seed-only client. */
  key?: string;
  nat?: NatKind;
}

/** A change in a `presence` message: a user online (or moved) there, or gone. */
export type ClusterChange = ClusterUser | { name: string; gone: true };

/**
 * What members say to each other. `boot` names one run of the sender (a restarted member starts
 * afresh); `seq` numbers its presence messages, so that a gap is seen.
 */
export type ClusterMessage =
  /** I am alive, my last presence message was `seq`, I hold `users` users. */
  | { t: "beat"; boot: string; seq: number; users: number }
  /**
   * My users changed: message `seq` of this boot. `at`: when I published it, in ms since the Unix
   * epoch on my clock (the receiver times the hop with it; absent from older members).
   */
  | { t: "presence"; boot: string; seq: number; changes: ClusterChange[]; at?: number }
  /** Send me your snapshot (a member that starts, reconnects or saw a gap). */
  | { t: "want" }
  /** Part `part` of `parts` of my users as of presence message `seq`. */
  | { t: "snapshot"; boot: string; seq: number; part: number; parts: number; users: ClusterUser[] }
  /** (To the member that decides the pair.) My user `from` sent `connect` to `to`. */
  | { t: "connect"; from: string; to: string }
  /** (To the member holding `to`.) Send your user `to` this server message. */
  | { t: "deliver"; to: string; msg: ServerMessage }
  /** (To the member holding `to`.) A relayed peer frame from my user `from`. */
  | { t: "relay"; from: string; to: string; inner: Uint8Array };

/** What {@linkcode deliver} may carry: introductions are all members route to each other. */
const DELIVERABLE = new Set(["introduce", "knock", "unavailable"]);

/** The kinds of subject: broadcasts end in the sender, `to` names the addressee first. */
export type ClusterSubjectKind = "beat" | "presence" | "want" | "snapshot" | "to";

/**
 * The subject a member publishes on: `p2p.<community>.<kind>.<sender>`, or for a message to one
 * member `p2p.<community>.to.<addressee>.<sender>`.
 */
export function clusterSubject(
  community: string,
  kind: ClusterSubjectKind,
  sender: string,
  addressee?: string,
): string {
  for (const token of [community, sender, addressee ?? "x"]) checkToken(token);
  return kind === "to"
    ? `p2p.${community}.to.${addressee}.${sender}`
    : `p2p.${community}.${kind}.${sender}`;
}

/** Throws unless `token` may be a community name or member id (letters, digits, `_`, `-`). */
export function checkToken(token: string): string {
  if (!TOKEN.test(token)) {
    throw new ClusterProtocolError(
      `"${token}" is not a valid community or member name: use 1 to 64 letters, digits, _ or -`,
    );
  }
  return token;
}

/** Who sent a message on `subject` of `community`, and which kind it is; throws if not ours. */
export function parseClusterSubject(
  community: string,
  subject: string,
): { kind: ClusterSubjectKind; sender: string; addressee?: string } {
  const parts = subject.split(".");
  if (parts[0] !== "p2p" || parts[1] !== community) {
    throw new ClusterProtocolError(`subject ${subject} is not of community ${community}`);
  }
  const kind = parts[2];
  if (kind === "to" && parts.length === 5 && TOKEN.test(parts[3]) && TOKEN.test(parts[4])) {
    return { kind, addressee: parts[3], sender: parts[4] };
  }
  if (
    (kind === "beat" || kind === "presence" || kind === "want" || kind === "snapshot") &&
    parts.length === 4 && TOKEN.test(parts[3])
  ) {
    return { kind, sender: parts[3] };
  }
  throw new ClusterProtocolError(`subject ${subject} is not a cluster subject`);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function userJson(u: ClusterUser): Record<string, unknown> {
  return {
    name: u.name,
    observed: formatEndpoint(u.observed),
    claimed: formatEndpoint(u.claimed),
    ...(u.key !== undefined ? { key: u.key } : {}),
    ...(u.nat !== undefined ? { nat: u.nat } : {}),
  };
}

/** Encodes a message as its JSON body. */
export function encodeClusterMessage(msg: ClusterMessage): Uint8Array {
  let body: unknown;
  switch (msg.t) {
    case "presence":
      body = {
        ...msg,
        changes: msg.changes.map((c) => "gone" in c ? { name: c.name, gone: true } : userJson(c)),
      };
      break;
    case "snapshot":
      body = { ...msg, users: msg.users.map(userJson) };
      break;
    case "deliver":
      body = { t: msg.t, to: msg.to, msg: encodeServerMessage(msg.msg) };
      break;
    case "relay": {
      let inner = "";
      for (const b of msg.inner) inner += String.fromCharCode(b);
      body = { t: msg.t, from: msg.from, to: msg.to, inner: btoa(inner) };
      break;
    }
    default:
      body = msg;
  }
  return encoder.encode(JSON.stringify(body));
}

/** Decodes and checks a message body; throws {@linkcode ClusterProtocolError} if it is bad. */
export function decodeClusterMessage(bytes: Uint8Array): ClusterMessage {
  if (bytes.length > MAX_CLUSTER_MESSAGE) {
    throw new ClusterProtocolError(`message of ${bytes.length} bytes is over the limit`);
  }
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    throw new ClusterProtocolError(`not a JSON message: ${(err as Error).message}`);
  }
  const o = object(body, "message");
  switch (o.t) {
    case "beat":
      return {
        t: "beat",
        boot: boot(o.boot),
        seq: count(o.seq, "seq"),
        users: count(o.users, "users"),
      };
    case "presence":
      return {
        t: "presence",
        boot: boot(o.boot),
        seq: count(o.seq, "seq"),
        changes: list(o.changes, "changes").map(change),
        ...(o.at !== undefined ? { at: time(o.at, "at") } : {}),
      };
    case "want":
      return { t: "want" };
    case "snapshot": {
      const parts = count(o.parts, "parts");
      const part = count(o.part, "part");
      if (parts < 1 || part >= parts) {
        throw new ClusterProtocolError(`snapshot part ${part} of ${parts} is impossible`);
      }
      return {
        t: "snapshot",
        boot: boot(o.boot),
        seq: count(o.seq, "seq"),
        part,
        parts,
        users: list(o.users, "users").map(user),
      };
    }
    case "connect":
      return { t: "connect", from: name(o.from), to: name(o.to) };
    case "deliver": {
      const text = string(o.msg, "msg");
      let msg: ServerMessage;
      try {
        msg = parseServerMessage(text);
      } catch (err) {
        if (!(err instanceof SeedProtocolError)) throw err;
        throw new ClusterProtocolError(`deliver: ${err.message}`);
      }
      if (!DELIVERABLE.has(msg.type)) {
        throw new ClusterProtocolError(
          `deliver: a ${msg.type} message is not for members to route`,
        );
      }
      return { t: "deliver", to: name(o.to), msg };
    }
    case "relay": {
      let inner: Uint8Array;
      try {
        inner = Uint8Array.from(atob(string(o.inner, "inner")), (c) => c.charCodeAt(0));
      } catch {
        throw new ClusterProtocolError("relay: inner is not base64");
      }
      if (inner.length > MAX_RELAY_INNER) {
        throw new ClusterProtocolError(`relay: ${inner.length}-byte frame is over the limit`);
      }
      return { t: "relay", from: name(o.from), to: name(o.to), inner };
    }
    default:
      throw new ClusterProtocolError(`unknown message type ${JSON.stringify(o.t)}`);
  }
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ClusterProtocolError(`${what} is not an object`);
  }
  return v as Record<string, unknown>;
}

function string(v: unknown, what: string): string {
  if (typeof v !== "string") throw new ClusterProtocolError(`${what} is not a string`);
  return v;
}

function count(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ClusterProtocolError(`${what} is not a count`);
  }
  return v;
}

/** A time in ms since the Unix epoch (fractions allowed: the sender's clock is sub-ms). */
function time(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new ClusterProtocolError(`${what} is not a time`);
  }
  return v;
}

function boot(v: unknown): string {
  const s = string(v, "boot");
  if (!TOKEN.test(s)) throw new ClusterProtocolError("boot is not a token");
  return s;
}

function list(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new ClusterProtocolError(`${what} is not a list`);
  if (v.length > MAX_CLUSTER_ENTRIES) {
    throw new ClusterProtocolError(`${what}: ${v.length} entries is over the limit`);
  }
  return v;
}

function name(v: unknown): string {
  const s = string(v, "name");
  const problem = usernameProblem(s);
  if (problem !== undefined) {
    throw new ClusterProtocolError(`name ${JSON.stringify(s)}: ${problem}`);
  }
  return s;
}

function endpoint(v: unknown, what: string): Endpoint {
  try {
    return parseEndpoint(string(v, what));
  } catch (err) {
    throw new ClusterProtocolError(`${what}: ${(err as Error).message}`);
  }
}

/**
 * A public key: 32 bytes in canonical base64url (43 characters; the last one carries 4 bits, its
 * two unused bits zero). Checked by its form, not decoded: a snapshot holds thousands of keys, and
 * decoding each one was most of the time a member took to apply one (docs/CLUSTER.md).
 */
const KEY = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

function user(v: unknown): ClusterUser {
  const o = object(v, "user");
  const u: ClusterUser = {
    name: name(o.name),
    observed: endpoint(o.observed, "observed"),
    claimed: endpoint(o.claimed, "claimed"),
  };
  if (o.key !== undefined) {
    const key = string(o.key, "key");
    if (!KEY.test(key)) {
      throw new ClusterProtocolError(`key of ${u.name} is not 32 bytes of base64url`);
    }
    u.key = key;
  }
  if (o.nat !== undefined) {
    const nat = string(o.nat, "nat");
    if (!isNatKind(nat)) throw new ClusterProtocolError(`nat of ${u.name} is not a NAT kind`);
    u.nat = nat;
  }
  return u;
}

function change(v: unknown): ClusterChange {
  const o = object(v, "change");
  if (o.gone === true) return { name: name(o.name), gone: true };
  return user(o);
}
