/**
 * The coordinator's text protocol: the seed's messages (`login`, `Accept`, the online list,
 * `logout`) and our extensions (`heartbeat`/`Alive`, `Expired`, `Reject`, `Error`, `connect` with
 * `Knock`/`Introduce`/`Unavailable`, and `Challenge` with the login that answers it: a proof of
 * key for a registered name), and contacts (`contact`/`listed` with `Request`, `Contact`,
 * `Uncontact`; the named list fetch and the `contact`/`request` lines of its answer), and the
 * announced candidates (`candidates`, passed on in `Introduce`: `./candidates.ts`).
 * See docs/PROTOCOL.md. Pure functions, no I/O.
 *
 * @example
 * ```ts
 * const msg = parseClientMessage("login,alice,192.0.2.1:4000");
 * // { type: "login", username: "alice", endpoint: { host: "192.0.2.1", port: 4000 } }
 * encodeServerMessage({ type: "accept", tcpPort: 7000 }); // "Accept,7000"
 * ```
 * @module
 */
import {
  type Endpoint,
  EndpointError,
  formatCompactEndpoint,
  formatEndpoint,
  parseCompactEndpoint,
  parseEndpoint,
} from "./endpoint.ts";
import { isNatKind, isWhoamiRequest, MAX_WHOAMI, type NatKind, WHOAMI_REQUEST } from "./whoami.ts";
import {
  type AnnouncedCandidate,
  CandidateListError,
  formatCandidateList,
  parseCandidateList,
} from "./candidates.ts";
import { usernameProblem } from "./username.ts";
import { parseTurnUri, TurnUriError } from "./turn_credentials.ts";

/** Longest text datagram either side accepts, in bytes. Longer ones are refused, not parsed. */
export const MAX_TEXT_DATAGRAM = 512;
/**
 * Longest datagram the coordinator sends a client that speaks our extensions: several messages,
 * one per line, may share it.
 */
export const MAX_BATCH_DATAGRAM = 1400;

/** Thrown by the parsers when a message is malformed; the message says what and why. */
export class SeedProtocolError extends Error {
  override name = "SeedProtocolError";
}

/** Messages a client sends the coordinator over UDP. */
export type ClientMessage =
  | { type: "login"; username: string; endpoint: Endpoint; ext?: LoginExtension }
  /** `secret`: an extension client's proof that the logout is its own (§1.3). */
  | { type: "logout"; username: string; endpoint: Endpoint; secret?: string }
  | { type: "heartbeat"; username: string; secret?: string }
  | { type: "connect"; username: string; target: string }
  | { type: "whoami" }
  | { type: "nat"; username: string; nat: NatKind }
  /**
   * A contact operation of the name's owner (docs/PROTOCOL.md §1.5), authenticated by its
   * `secret`; `note` only with `add` (a few words for the recipient).
   */
  | {
    type: "contact";
    username: string;
    secret: string;
    op: ContactOp;
    target: string;
    note?: string;
  }
  /** Whether a contacts-mode coordinator lists the user to seed-only clients (`--public`). */
  | { type: "listed"; username: string; secret: string; listed: boolean }
  /**
   * The extra endpoints of the owner's socket (docs/PROTOCOL.md §1.7), all of them (an empty list
   * withdraws every one); also tells the coordinator that the client reads them in `Introduce`.
   */
  | { type: "candidates"; username: string; secret: string; candidates: AnnouncedCandidate[] };

/**
 * What a `contact` message asks: `add` (a request, or the acceptance of one from `target`),
 * `accept`, `decline`, `remove`, `block`, `unblock`.
 */
export type ContactOp = "add" | "accept" | "decline" | "remove" | "block" | "unblock";

/** The operations a `contact` message may carry. */
export const CONTACT_OPS: readonly ContactOp[] = [
  "add",
  "accept",
  "decline",
  "remove",
  "block",
  "unblock",
];

/** Longest note of a contact request, in UTF-8 bytes. */
export const MAX_NOTE_BYTES = 140;

/**
 * What a client that speaks our extensions adds to `login`: its public key (base64url, 43
 * characters) and a per-process secret (base64url, 22 characters) that lets it keep its name when
 * its NAT mapping changes.
 */
export interface LoginExtension {
  key: string;
  secret: string;
  /** The answer to a `Challenge` (docs/PROTOCOL.md §1.3, _Names owned by keys_). */
  proof?: LoginProof;
}

/**
 * A login's proof that it holds the private key of its `key`: the `nonce` of the coordinator's
 * `Challenge` and `mac`, the 16-byte key proof over it (both base64url, 22 characters).
 */
export interface LoginProof {
  nonce: string;
  mac: string;
}

/** Messages the coordinator sends a client over UDP. */
export type ServerMessage =
  | { type: "accept"; tcpPort: number }
  | { type: "reject"; reason: string }
  | { type: "error"; reason: string }
  | { type: "login"; username: string; endpoint: Endpoint }
  | { type: "logout"; username: string; endpoint: Endpoint }
  /**
   * Batched presence lines (only after a `Presence` header): `+<username>,<endpoint>` (online
   * there, compact endpoint: see {@linkcode formatCompactEndpoint}) and `-<username>` (offline).
   * The same news as `login`/`logout` in about half the bytes.
   */
  | { type: "online"; username: string; endpoint: Endpoint }
  | { type: "offline"; username: string }
  /**
   * `version`, for clients that speak our extensions: every presence change up to this version
   * has been sent to the client before this answer (see {@linkcode PresenceRange}).
   */
  | { type: "alive"; endpoint: Endpoint; version?: number }
  | { type: "expired"; username: string }
  | { type: "you"; endpoint: Endpoint }
  | {
    type: "introduce";
    username: string;
    observed: Endpoint;
    claimed: Endpoint;
    key: string;
    token: string;
    /** The introduced peer's NAT, when it reported it. */
    nat?: NatKind;
    /** The endpoints the introduced peer announced (`candidates`), when it has any. */
    candidates?: AnnouncedCandidate[];
  }
  | { type: "unavailable"; username: string; reason: string }
  /**
   * `username` (whose public key is `key`) asked to talk to the recipient, which has not asked
   * for it: the recipient consents by sending `connect` itself, or lets the request lapse.
   */
  | { type: "knock"; username: string; key: string }
  /** The coordinator is shutting down: look for it again later (log in with backoff). */
  | { type: "bye"; reason: string }
  /**
   * TURN REST credentials for the coordinator's TURN server (`uri`: `turn:HOST:PORT`), sent
   * with each introduction when the coordinator has one: `username` is `<expiry>:<name>`,
   * `password` base64(HMAC-SHA1(secret, username)) (docs/PROTOCOL.md §1.6).
   */
  | { type: "turn"; uri: string; username: string; password: string }
  /**
   * The mailbox listens on TCP `port`, and `waiting` messages wait for the recipient there
   * (docs/PROTOCOL.md §5.3); sent only to clients that logged in with a key.
   */
  | { type: "mailbox"; port: number; waiting: number }
  /**
   * The largest file transfer the relay carries, in bytes (`p2p serve --relay-file-limit`); sent
   * once a client that logged in with a key is online (docs/PROTOCOL.md §2.6). Larger transfers
   * between two peers without a direct path are refused by the sender.
   */
  | { type: "relay-limit"; fileBytes: number }
  /**
   * The login's name is registered to its key and held by another session: prove the key (log in
   * again with a {@linkcode LoginProof} over `nonce`, keyed with the coordinator's `serverKey`).
   */
  | { type: "challenge"; serverKey: string; nonce: string }
  /**
   * Another session of the same key took the name over (docs/PROTOCOL.md §1.3): this one is
   * logged out, and must not log in again by itself (the two would take turns).
   */
  | { type: "replaced"; username: string }
  /** A contact request from `username` (whose key is `key`), with its note (maybe empty). */
  | { type: "request"; username: string; key: string; note: string }
  /** The recipient and `username` (whose key is `key`) are now contacts: both accepted. */
  | { type: "contact"; username: string; key: string }
  /** `username` is no longer a contact of the recipient. */
  | { type: "uncontact"; username: string }
  /**
   * First line of a batched presence datagram: the lines after it in the same datagram are every
   * presence change with a version in (`from`, `to`] (only each name's latest; none about the
   * recipient itself).
   */
  | PresenceRange;

/** `Presence,<from>,<to>`: the header of a batched presence datagram. */
export interface PresenceRange {
  type: "presence";
  from: number;
  to: number;
}

/** The online list as the list service writes it; `version` only for extension clients. */
export interface OnlineList {
  entries: ListEntry[];
  /** The presence version the list reflects: it holds every change up to this one. */
  version?: number;
  /**
   * Every contact of the fetching user, online or not (only in the answer to a named fetch from
   * a contacts-mode coordinator: {@linkcode encodeListRequest}).
   */
  contacts?: ContactEntry[];
  /** The contact requests waiting for the fetching user's answer (the same fetches only). */
  requests?: ContactRequestEntry[];
}

/** A contact: a name and the key it is bound to. */
export interface ContactEntry {
  username: string;
  key: string;
}

/** A contact request waiting for an answer: who asks, with which key, and its note. */
export interface ContactRequestEntry extends ContactEntry {
  note: string;
}

/** The reason a login for a name registered to another key is refused with. */
export const NAME_OWNED_REASON = "name belongs to another key";

/** Largest presence version either side handles (changes are counted from 0). */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;

const KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const SECRET_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** Last characters of canonical base64url: 32 bytes end in a multiple of 4, 16 bytes of 16. */
const KEY_LAST = /^[AEIMQUYcgkosw048]$/;
const SECRET_LAST = /^[AQgw]$/;

function checkNat(text: string, what: string): NatKind {
  if (!isNatKind(text)) {
    throw new SeedProtocolError(`Cannot parse ${what}: NAT kind "${text}" is not easy or hard`);
  }
  return text;
}

function checkPattern(text: string, pattern: RegExp, what: string, field: string): string {
  if (!pattern.test(text)) {
    throw new SeedProtocolError(
      `Cannot parse ${what}: ${field} is not ${
        pattern === KEY_PATTERN ? "43" : "22"
      } base64url characters`,
    );
  }
  // Canonical only: a value has one text form, so what we pass on decodes at the peer. The bits
  // past the value's end in the last character must be zero (a 32-byte key leaves 2, a 16-byte
  // secret 4): tested on that character, as decoding every heartbeat's secret costs 3 KB of garbage.
  if (!(pattern === KEY_PATTERN ? KEY_LAST : SECRET_LAST).test(text.at(-1)!)) {
    throw new SeedProtocolError(`Cannot parse ${what}: ${field} is not canonical base64url`);
  }
  return text;
}

/** One entry of the online list. */
export interface ListEntry {
  username: string;
  endpoint: Endpoint;
}

function checkUsername(name: string, what: string): string {
  const problem = usernameProblem(name);
  if (problem) throw new SeedProtocolError(`Cannot parse ${what}: ${problem}`);
  return name;
}

function checkEndpoint(text: string, what: string, parse = parseEndpoint): Endpoint {
  try {
    return parse(text);
  } catch (e) {
    if (e instanceof EndpointError) {
      throw new SeedProtocolError(`Cannot parse ${what}: ${e.message}`);
    }
    throw e;
  }
}

function checkVersion(text: string, what: string): number {
  const n = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : NaN;
  if (!(n <= MAX_VERSION)) {
    throw new SeedProtocolError(`Cannot parse ${what}: "${text.slice(0, 20)}" is not a version`);
  }
  return n;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a datagram as UTF-8 text (at most `limit` bytes), throwing
 * {@linkcode SeedProtocolError} if it is longer or not text.
 */
export function decodeText(bytes: Uint8Array, limit: number = MAX_TEXT_DATAGRAM): string {
  if (bytes.length > limit) {
    throw new SeedProtocolError(
      `Cannot parse message: ${bytes.length} bytes is longer than the ${limit}-byte limit`,
    );
  }
  try {
    return decoder.decode(bytes);
  } catch {
    throw new SeedProtocolError("Cannot parse message: it is not valid UTF-8");
  }
}

function fields(text: string, count: number, what: string): string[] {
  const parts = text.split(",");
  if (parts.length !== count) {
    throw new SeedProtocolError(
      `Cannot parse ${what}: expected ${count} comma-separated fields, got ${parts.length}`,
    );
  }
  return parts;
}

/**
 * The username and endpoint that `login` and `logout` (either way) carry after their verb, in
 * `<verb>,<username>,<endpoint>[,…]`; the caller has checked the number of fields.
 */
function nameAndEndpoint(text: string, verb: string): { username: string; endpoint: Endpoint } {
  const [, username, ep] = text.split(",", 3);
  return { username: checkUsername(username, verb), endpoint: checkEndpoint(ep, verb) };
}

function verbOf(text: string): string {
  const comma = text.indexOf(",");
  return comma < 0 ? text : text.slice(0, comma);
}

/** Parses a client→server datagram's text. Throws {@linkcode SeedProtocolError} when malformed. */
export function parseClientMessage(text: string): ClientMessage {
  // Tolerate a trailing newline from hand-typed clients (netcat, scripts).
  text = text.replace(/\r?\n$/, "");
  const verb = verbOf(text);
  switch (verb) {
    case "login": {
      // The seed's three fields, five with our extension, seven with a proof of key.
      const n = text.split(",").length;
      const count = n === 5 || n === 7 ? n : 3;
      const [key, secret, nonce, mac] = fields(text, count, verb).slice(3);
      const msg: ClientMessage = { type: verb, ...nameAndEndpoint(text, verb) };
      if (count >= 5) {
        msg.ext = {
          key: checkPattern(key, KEY_PATTERN, verb, "key"),
          secret: checkPattern(secret, SECRET_PATTERN, verb, "secret"),
        };
        if (count === 7) {
          msg.ext.proof = {
            nonce: checkPattern(nonce, SECRET_PATTERN, verb, "nonce"),
            mac: checkPattern(mac, SECRET_PATTERN, verb, "proof"),
          };
        }
      }
      return msg;
    }
    case "logout": {
      const withSecret = text.split(",").length === 4;
      const [secret] = fields(text, withSecret ? 4 : 3, verb).slice(3);
      const msg: ClientMessage = { type: verb, ...nameAndEndpoint(text, verb) };
      if (withSecret) msg.secret = checkPattern(secret, SECRET_PATTERN, verb, "secret");
      return msg;
    }
    case "heartbeat": {
      const parts = text.split(",");
      const [, username, secret] = fields(text, parts.length === 3 ? 3 : 2, verb);
      const msg: ClientMessage = { type: "heartbeat", username: checkUsername(username, verb) };
      if (parts.length === 3) msg.secret = checkPattern(secret, SECRET_PATTERN, verb, "secret");
      return msg;
    }
    case "connect": {
      const [, username, target] = fields(text, 3, verb);
      return {
        type: "connect",
        username: checkUsername(username, verb),
        target: checkUsername(target, verb),
      };
    }
    case "whoami": {
      // `whoami` or `whoami,<padding>`: the padding makes the request as long as the answer.
      fields(text, text.includes(",") ? 2 : 1, verb);
      if (!isWhoamiRequest(text)) {
        throw new SeedProtocolError(
          `Cannot parse whoami: padding must be printable ASCII, ${MAX_WHOAMI} bytes in all at most`,
        );
      }
      return { type: "whoami" };
    }
    case "nat": {
      const [, username, nat] = fields(text, 3, verb);
      return { type: "nat", username: checkUsername(username, verb), nat: checkNat(nat, verb) };
    }
    case "contact": {
      // The note is the rest of the line: it may hold commas.
      const parts = text.split(",");
      const [, username, secret, op, target] = parts;
      if (parts.length < 5 || (op !== "add" && parts.length !== 5)) {
        throw new SeedProtocolError(
          `Cannot parse contact: expected contact,<username>,<secret>,<op>,<target>` +
            `[,<note>] (a note only with add)`,
        );
      }
      if (!(CONTACT_OPS as readonly string[]).includes(op)) {
        throw new SeedProtocolError(
          `Cannot parse contact: "${op.slice(0, 20)}" is not one of ${CONTACT_OPS.join(", ")}`,
        );
      }
      const msg: ClientMessage = {
        type: "contact",
        username: checkUsername(username, verb),
        secret: checkPattern(secret, SECRET_PATTERN, verb, "secret"),
        op: op as ContactOp,
        target: checkUsername(target, verb),
      };
      if (parts.length > 5) msg.note = checkNote(parts.slice(5).join(","), verb);
      return msg;
    }
    case "listed": {
      const [, username, secret, listed] = fields(text, 4, verb);
      if (listed !== "yes" && listed !== "no") {
        throw new SeedProtocolError(
          `Cannot parse listed: "${listed.slice(0, 20)}" is not yes or no`,
        );
      }
      return {
        type: "listed",
        username: checkUsername(username, verb),
        secret: checkPattern(secret, SECRET_PATTERN, verb, "secret"),
        listed: listed === "yes",
      };
    }
    case "candidates": {
      const parts = text.split(",");
      const [, username, secret, list] = fields(text, parts.length === 3 ? 3 : 4, verb);
      if (list === "") {
        throw new SeedProtocolError(
          "Cannot parse candidates: an empty list is written without a comma",
        );
      }
      return {
        type: "candidates",
        username: checkUsername(username, verb),
        secret: checkPattern(secret, SECRET_PATTERN, verb, "secret"),
        candidates: checkCandidates(list ?? ""),
      };
    }
    default:
      throw new SeedProtocolError(
        `Cannot parse message: unknown message type "${verb.slice(0, 20)}"`,
      );
  }
}

function checkCandidates(text: string): AnnouncedCandidate[] {
  try {
    return parseCandidateList(text);
  } catch (e) {
    if (e instanceof CandidateListError) throw new SeedProtocolError(e.message);
    throw e;
  }
}

/**
 * A note as it may travel: at most {@linkcode MAX_NOTE_BYTES} of UTF-8, no control characters
 * (it is shown to a user: no terminal escapes) and no line separators. Throws when it is not.
 */
function checkNote(note: string, what: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(note)) {
    throw new SeedProtocolError(`Cannot parse ${what}: the note holds a control character`);
  }
  if (encoder.encode(note).length > MAX_NOTE_BYTES) {
    throw new SeedProtocolError(`Cannot parse ${what}: the note is over ${MAX_NOTE_BYTES} bytes`);
  }
  return note;
}

/**
 * Makes a note a user typed fit to send: control characters and line separators become spaces,
 * and it is cut at a character boundary to {@linkcode MAX_NOTE_BYTES}.
 *
 * @example
 * ```ts
 * cleanNote("hi\u001b[31m bob"); // "hi [31m bob"
 * ```
 */
export function cleanNote(note: string): string {
  // deno-lint-ignore no-control-regex
  const flat = note.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ");
  const { read } = encoder.encodeInto(flat, new Uint8Array(MAX_NOTE_BYTES));
  return flat.slice(0, read);
}

/** Encodes a client→server message. */
export function encodeClientMessage(msg: ClientMessage): string {
  switch (msg.type) {
    case "login":
      return `login,${msg.username},${formatEndpoint(msg.endpoint)}` +
        (msg.ext ? `,${msg.ext.key},${msg.ext.secret}` : "") +
        (msg.ext?.proof ? `,${msg.ext.proof.nonce},${msg.ext.proof.mac}` : "");
    case "logout":
      return `logout,${msg.username},${formatEndpoint(msg.endpoint)}` +
        (msg.secret ? `,${msg.secret}` : "");
    case "heartbeat":
      return `heartbeat,${msg.username}` + (msg.secret ? `,${msg.secret}` : "");
    case "connect":
      return `connect,${msg.username},${msg.target}`;
    case "whoami":
      return WHOAMI_REQUEST; // padded: see MAX_WHOAMI
    case "nat":
      return `nat,${msg.username},${msg.nat}`;
    case "contact":
      return `contact,${msg.username},${msg.secret},${msg.op},${msg.target}` +
        (msg.note !== undefined ? `,${msg.note}` : "");
    case "listed":
      return `listed,${msg.username},${msg.secret},${msg.listed ? "yes" : "no"}`;
    case "candidates":
      return `candidates,${msg.username},${msg.secret}` +
        (msg.candidates.length > 0 ? `,${formatCandidateList(msg.candidates)}` : "");
  }
}

const encoder = new TextEncoder();
/** Longest `Reject`/`Error` reason, in UTF-8 bytes: the datagram stays far below the limit. */
const MAX_REASON_BYTES = 200;

/**
 * Makes a reason safe to send: no separators, and no control characters (a reason can echo a
 * stranger's bytes, possibly to a spoofed address, so it must carry no terminal escapes). It is
 * cut at a character boundary so that the receiver's {@linkcode decodeText} accepts it.
 */
function cleanReason(reason: string): string {
  // deno-lint-ignore no-control-regex
  const flat = reason.replace(/[,;\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ");
  const { read } = encoder.encodeInto(flat, new Uint8Array(MAX_REASON_BYTES));
  return flat.slice(0, read);
}

/** Encodes a server→client message. */
export function encodeServerMessage(msg: ServerMessage): string {
  switch (msg.type) {
    case "accept":
      return `Accept,${msg.tcpPort}`;
    case "reject":
      return `Reject,${cleanReason(msg.reason)}`;
    case "error":
      return `Error,${cleanReason(msg.reason)}`;
    case "login":
    case "logout":
      return `${msg.type},${msg.username},${formatEndpoint(msg.endpoint)}`;
    case "online":
      return `+${msg.username},${formatCompactEndpoint(msg.endpoint)}`;
    case "offline":
      return `-${msg.username}`;
    case "alive":
      return `Alive,${formatEndpoint(msg.endpoint)}` +
        (msg.version === undefined ? "" : `,${msg.version}`);
    case "presence":
      return `Presence,${msg.from},${msg.to}`;
    case "expired":
      return `Expired,${msg.username}`;
    case "you":
      return `You,${formatEndpoint(msg.endpoint)}`;
    case "introduce":
      return `Introduce,${msg.username},${formatEndpoint(msg.observed)},${
        formatEndpoint(msg.claimed)
      },${msg.key},${msg.token}${msg.nat ? `,${msg.nat}` : ""}${
        msg.candidates?.length ? `,${formatCandidateList(msg.candidates)}` : ""
      }`;
    case "unavailable":
      return `Unavailable,${msg.username},${cleanReason(msg.reason)}`;
    case "knock":
      return `Knock,${msg.username},${msg.key}`;
    case "bye":
      return `Bye,${cleanReason(msg.reason)}`;
    case "turn":
      return `Turn,${msg.uri},${msg.username},${msg.password}`;
    case "mailbox":
      return `Mailbox,${msg.port},${msg.waiting}`;
    case "relay-limit":
      return `RelayLimit,${msg.fileBytes}`;
    case "challenge":
      return `Challenge,${msg.serverKey},${msg.nonce}`;
    case "replaced":
      return `Replaced,${msg.username}`;
    case "request":
      return `Request,${msg.username},${msg.key},${msg.note}`;
    case "contact":
      return `Contact,${msg.username},${msg.key}`;
    case "uncontact":
      return `Uncontact,${msg.username}`;
  }
}

/** Parses a server→client datagram's text. Throws {@linkcode SeedProtocolError} when malformed. */
export function parseServerMessage(text: string): ServerMessage {
  if (text.startsWith("+")) {
    const [username, ep] = fields(text.slice(1), 2, "online");
    return {
      type: "online",
      username: checkUsername(username, "online"),
      endpoint: checkEndpoint(ep, "online", parseCompactEndpoint),
    };
  }
  if (text.startsWith("-")) {
    return { type: "offline", username: checkUsername(text.slice(1), "offline") };
  }
  const verb = verbOf(text);
  const rest = text.slice(verb.length + 1);
  switch (verb) {
    case "Accept": {
      if (!/^[0-9]{1,5}$/.test(rest) || Number(rest) < 1 || Number(rest) > 65535) {
        throw new SeedProtocolError(`Cannot parse Accept: "${rest}" is not a port number`);
      }
      return { type: "accept", tcpPort: Number(rest) };
    }
    case "Reject":
      return { type: "reject", reason: rest };
    case "Error":
      return { type: "error", reason: rest };
    case "login":
    case "logout":
      fields(text, 3, verb);
      return { type: verb, ...nameAndEndpoint(text, verb) };
    case "Alive": {
      const [, ep, version] = fields(text, text.split(",").length === 3 ? 3 : 2, verb);
      const msg: ServerMessage = { type: "alive", endpoint: checkEndpoint(ep, verb) };
      if (version !== undefined) msg.version = checkVersion(version, verb);
      return msg;
    }
    case "Presence": {
      const [, from, to] = fields(text, 3, verb);
      const range: PresenceRange = {
        type: "presence",
        from: checkVersion(from, verb),
        to: checkVersion(to, verb),
      };
      if (range.from > range.to) {
        throw new SeedProtocolError(`Cannot parse Presence: version ${from} is after ${to}`);
      }
      return range;
    }
    case "Expired":
      return { type: "expired", username: checkUsername(rest, "Expired") };
    case "You":
      return { type: "you", endpoint: checkEndpoint(rest, "You") };
    case "Introduce": {
      // Six fields; then the NAT kind, the candidates (told apart by their `=`), or both.
      const n = text.split(",").length;
      const parts = fields(text, n === 7 || n === 8 ? n : 6, verb);
      const [, username, observed, claimed, key, token] = parts;
      const extra = parts.slice(6);
      const list = extra.at(-1)?.includes("=") ? extra.pop() : undefined;
      const nat = extra.pop();
      if (extra.length > 0) {
        throw new SeedProtocolError("Cannot parse Introduce: expected <nat>,<candidates> last");
      }
      const msg: ServerMessage = {
        type: "introduce",
        username: checkUsername(username, verb),
        observed: checkEndpoint(observed, verb),
        claimed: checkEndpoint(claimed, verb),
        key: checkPattern(key, KEY_PATTERN, verb, "key"),
        token: checkPattern(token, SECRET_PATTERN, verb, "token"),
      };
      if (nat !== undefined) msg.nat = checkNat(nat, verb);
      if (list !== undefined) {
        msg.candidates = checkCandidates(list);
        if (msg.candidates.length === 0) {
          throw new SeedProtocolError("Cannot parse Introduce: an empty candidate list");
        }
      }
      return msg;
    }
    case "Knock": {
      const [, username, key] = fields(text, 3, verb);
      return {
        type: "knock",
        username: checkUsername(username, verb),
        key: checkPattern(key, KEY_PATTERN, verb, "key"),
      };
    }
    case "Bye":
      return { type: "bye", reason: rest };
    case "Turn": {
      const [, uri, username, password] = fields(text, 4, verb);
      try {
        parseTurnUri(uri);
      } catch (err) {
        if (err instanceof TurnUriError) {
          throw new SeedProtocolError(`Cannot parse Turn: ${err.message}`);
        }
        throw err;
      }
      const user = /^([0-9]{1,12}):(.*)$/.exec(username);
      if (!user) throw new SeedProtocolError("Cannot parse Turn: username is not <expiry>:<name>");
      checkUsername(user[2], verb);
      if (!/^[A-Za-z0-9+/]{27}=$/.test(password)) {
        throw new SeedProtocolError("Cannot parse Turn: password is not 28 base64 characters");
      }
      return { type: "turn", uri, username, password };
    }
    case "Mailbox": {
      const [, port, waiting] = fields(text, 3, verb);
      if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
        throw new SeedProtocolError(`Cannot parse Mailbox: "${port}" is not a port number`);
      }
      if (!/^(0|[1-9][0-9]{0,8})$/.test(waiting)) {
        throw new SeedProtocolError(`Cannot parse Mailbox: "${waiting}" is not a count`);
      }
      return { type: "mailbox", port: Number(port), waiting: Number(waiting) };
    }
    case "RelayLimit":
      if (!/^(0|[1-9][0-9]{0,14})$/.test(rest)) {
        throw new SeedProtocolError(`Cannot parse RelayLimit: "${rest}" is not a byte count`);
      }
      return { type: "relay-limit", fileBytes: Number(rest) };
    case "Replaced":
      return { type: "replaced", username: checkUsername(rest, "Replaced") };
    case "Request":
      return { type: "request", ...requestFields(rest, verb) };
    case "Contact":
      return { type: "contact", ...contactFields(rest, verb) };
    case "Uncontact":
      return { type: "uncontact", username: checkUsername(rest, verb) };
    case "Challenge": {
      const [, serverKey, nonce] = fields(text, 3, verb);
      return {
        type: "challenge",
        serverKey: checkPattern(serverKey, KEY_PATTERN, verb, "key"),
        nonce: checkPattern(nonce, SECRET_PATTERN, verb, "nonce"),
      };
    }
    case "Unavailable": {
      const comma = rest.indexOf(",");
      if (comma < 0) throw new SeedProtocolError("Cannot parse Unavailable: missing reason");
      return {
        type: "unavailable",
        username: checkUsername(rest.slice(0, comma), verb),
        reason: rest.slice(comma + 1),
      };
    }
    default:
      throw new SeedProtocolError(
        `Cannot parse message: unknown message type "${verb.slice(0, 20)}"`,
      );
  }
}

/** Encodes the online list: `name1,ep1;name2,ep2;...;end` (just `end` when nobody is online). */
export function encodeList(entries: readonly ListEntry[]): string {
  return entries.map((e) => `${e.username},${formatEndpoint(e.endpoint)};`).join("") + "end";
}

/** The line the list service appends to an extension client's list: its presence version. */
export function encodeListVersion(version: number): string {
  return `\nversion,${version}`;
}

/** `<name>,<key>`: a contact, as `Contact` and the list's `contact` lines carry it. */
function contactFields(text: string, what: string): ContactEntry {
  const [username, key] = fields(text, 2, what);
  return {
    username: checkUsername(username, what),
    key: checkPattern(key, KEY_PATTERN, what, "key"),
  };
}

/** `<name>,<key>,<note>`: a request, as `Request` and the list's `request` lines carry it. */
function requestFields(text: string, what: string): ContactRequestEntry {
  const first = text.indexOf(",");
  const second = first < 0 ? -1 : text.indexOf(",", first + 1);
  if (second < 0) {
    throw new SeedProtocolError(`Cannot parse ${what}: expected <username>,<key>,<note>`);
  }
  return {
    ...contactFields(text.slice(0, second), what),
    note: checkNote(text.slice(second + 1), what),
  };
}

/** Encodes the lines a named fetch's list carries after `end`: contacts, then requests. */
export function encodeContactLines(
  contacts: readonly ContactEntry[],
  requests: readonly ContactRequestEntry[],
): string {
  return contacts.map((c) => `\ncontact,${c.username},${c.key}`).join("") +
    requests.map((r) => `\nrequest,${r.username},${r.key},${r.note}`).join("");
}

/**
 * What an extension client writes on its list connection at once: who is fetching, with the
 * secret it logged in with, so that a contacts-mode coordinator can write that user's own list
 * (its contacts, and its contact requests). Other coordinators ignore it.
 */
export function encodeListRequest(request: { username: string; secret: string }): string {
  return `list,${request.username},${request.secret}\n`;
}

/** Parses the line {@linkcode encodeListRequest} writes. Throws {@linkcode SeedProtocolError}. */
export function parseListRequest(text: string): { username: string; secret: string } {
  const [verb, username, secret] = fields(text.replace(/\r?\n$/, ""), 3, "list request");
  if (verb !== "list") throw new SeedProtocolError("Cannot parse list request: it is not list");
  return {
    username: checkUsername(username, "list request"),
    secret: checkPattern(secret, SECRET_PATTERN, "list request", "secret"),
  };
}

/**
 * Parses a complete online list (the text up to and including `end`; then, from a contacts-mode
 * coordinator, `contact,<name>,<key>` and `request,<name>,<key>,<note>` lines; then for
 * extension clients a line `version,<n>`). Throws {@linkcode SeedProtocolError} when malformed.
 */
export function parseOnlineList(text: string): OnlineList {
  // trimEnd, not /\s+$/: that regex takes quadratic time on long runs of inner white space.
  let body = text.trimEnd();
  let version: number | undefined;
  const newline = body.lastIndexOf("\n");
  if (newline >= 0 && body.startsWith("version,", newline + 1)) {
    version = checkVersion(body.slice(newline + 1 + "version,".length), "online list version");
    body = body.slice(0, newline);
  }
  const contacts: ContactEntry[] = [];
  const requests: ContactRequestEntry[] = [];
  const firstLine = body.indexOf("\n");
  if (firstLine >= 0) {
    for (const line of body.slice(firstLine + 1).split("\n")) {
      if (line.startsWith("contact,")) contacts.push(contactFields(line.slice(8), "list contact"));
      else if (line.startsWith("request,")) {
        requests.push(requestFields(line.slice(8), "list request line"));
      } else {
        throw new SeedProtocolError(
          `Cannot parse online list: it does not end with "end" (an unknown line follows it)`,
        );
      }
    }
    body = body.slice(0, firstLine);
  }
  const items = body.split(";");
  if (items.at(-1) !== "end") {
    throw new SeedProtocolError('Cannot parse online list: it does not end with "end"');
  }
  const entries = items.slice(0, -1).map((item) => {
    const [username, ep] = fields(item, 2, "online list entry");
    return {
      username: checkUsername(username, "online list entry"),
      endpoint: checkEndpoint(ep, "online list entry"),
    };
  });
  const list: OnlineList = version === undefined ? { entries } : { entries, version };
  if (firstLine >= 0) Object.assign(list, { contacts, requests });
  return list;
}

/**
 * Parses a complete online list, as {@linkcode parseOnlineList} does, and returns its entries.
 * Throws {@linkcode SeedProtocolError} when malformed.
 */
export function parseList(text: string): ListEntry[] {
  return parseOnlineList(text).entries;
}
