/**
 * The mailbox service's lines (docs/PROTOCOL.md §5.3): what a client asks over TCP (deposit,
 * key, fetch, proof, ack) and what the coordinator answers. Pure functions, text ↔ values, and a
 * pure {@linkcode LineSplitter} that cuts a byte stream into lines with a length cap, so the
 * whole codec can be fuzzed. Each line is ASCII, fields separated by `,`, ended by `\n`; binary
 * values (sealed messages, keys, nonces, proofs) are base64url without padding.
 *
 * @example
 * ```ts
 * const line = encodeMailboxRequest({ type: "ack", ids: [1, 2] }); // "ack,1,2"
 * decodeMailboxRequest(line); // { type: "ack", ids: [1, 2] }
 * ```
 * @module
 */
import { concatBytes } from "@noble/hashes/utils.js";
import { decodeBase64url, encodeBase64url } from "./base64url.ts";
import { MAX_MESSAGE_LEN } from "../crypto/noise.ts";
import { usernameProblem } from "./username.ts";

const encoder = new TextEncoder();

/** A client's request. */
export type MailboxRequest =
  /** Leave `sealed` in `recipient`'s mailbox. */
  | { type: "deposit"; recipient: string; sealed: Uint8Array }
  /** The key registered for `name` (for a first message to someone never talked to). */
  | { type: "key"; name: string }
  /** Fetch `name`'s mail: a challenge follows, then the proof. */
  | { type: "fetch"; name: string }
  /** The proof of the key registered for the name fetched (lib/crypto/key_proof.ts). */
  | { type: "proof"; proof: Uint8Array }
  /** Delete these fetched messages. */
  | { type: "ack"; ids: number[] };

/** The coordinator's answer. */
export type MailboxReply =
  | { type: "deposited"; id: number }
  | { type: "key"; name: string; key: Uint8Array }
  | { type: "challenge"; serverKey: Uint8Array; nonce: Uint8Array }
  | { type: "mail"; id: number; sealed: Uint8Array }
  /** The last of a fetch: `count` messages were sent. */
  | { type: "end"; count: number }
  /** `count` of the acked messages were deleted. */
  | { type: "acked"; count: number }
  /** The request was refused, and why (free text, shown to users: `mailbox full`…). */
  | { type: "refused"; reason: string };

/** Thrown by the decoders on a malformed line, saying what is wrong. */
export class MailboxLineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MailboxLineError";
  }
}

/** The largest sealed message a line can carry (a Noise message's limit). */
export const MAX_SEALED_BYTES = MAX_MESSAGE_LEN;
/** Longest line either side sends, in bytes (a deposit of the largest sealed message fits). */
export const MAX_MAILBOX_LINE = 90_000;
/** Most ids one `ack` line carries. */
export const MAX_ACK_IDS = 1_000;
/**
 * `key` and `fetch` lines are padded (a third field of `-`) to at least this many bytes, so that
 * their answers (`Key`, at most 176 bytes; `Challenge`, 76) are never larger than the request: a
 * connection that has proved no key never gets more bytes than it sent (docs/PROTOCOL.md §5.3).
 */
export const PADDED_LINE = 200;
/** Length of a challenge's nonce and of a key, in bytes. */
export const NONCE_BYTES = 16;
const KEY_BYTES = 32;

/** Encodes a request as one line (without the `\n`). */
export function encodeMailboxRequest(request: MailboxRequest): string {
  switch (request.type) {
    case "deposit":
      return `deposit,${request.recipient},${encodeBase64url(request.sealed)}`;
    case "key":
    case "fetch": {
      const line = `${request.type},${request.name},`;
      return line + "-".repeat(Math.max(0, PADDED_LINE - encoder.encode(line).length));
    }
    case "proof":
      return `proof,${encodeBase64url(request.proof)}`;
    case "ack":
      return `ack,${request.ids.join(",")}`;
  }
}

/**
 * Decodes one request line (without the `\n`).
 *
 * @throws {MailboxLineError} on an unknown verb, a wrong number of fields, a bad name, bad
 * base64url, an empty or too large sealed message, a bad id.
 */
export function decodeMailboxRequest(line: string): MailboxRequest {
  const fields = line.split(",");
  const verb = fields[0];
  const arity = (n: number) => {
    if (fields.length !== n) fail(`${verb} takes ${n - 1} field(s), not ${fields.length - 1}`);
  };
  switch (verb) {
    case "deposit": {
      arity(3);
      const sealed = bytes(fields[2], "sealed message");
      if (sealed.length === 0 || sealed.length > MAX_SEALED_BYTES) {
        fail(`the sealed message is ${sealed.length} bytes, not 1..${MAX_SEALED_BYTES}`);
      }
      return { type: "deposit", recipient: name(fields[1]), sealed };
    }
    case "key":
    case "fetch":
      if (fields.length !== 2 && fields.length !== 3) {
        fail(`${verb} takes a name and padding, not ${fields.length - 1} field(s)`);
      }
      if (fields.length === 3 && !/^-*$/.test(fields[2])) fail("padding is made of '-'");
      return { type: verb, name: name(fields[1]) };
    case "proof":
      arity(2);
      return { type: "proof", proof: bytes(fields[1], "proof") };
    case "ack":
      if (fields.length < 2 || fields.length > MAX_ACK_IDS + 1) {
        fail(`ack takes 1..${MAX_ACK_IDS} ids, not ${fields.length - 1}`);
      }
      return { type: "ack", ids: fields.slice(1).map(id) };
    default:
      return fail(`unknown request ${JSON.stringify(verb.slice(0, 20))}`);
  }
}

/** Encodes a reply as one line (without the `\n`). */
export function encodeMailboxReply(reply: MailboxReply): string {
  switch (reply.type) {
    case "deposited":
      return `Deposited,${reply.id}`;
    case "key":
      return `Key,${reply.name},${encodeBase64url(reply.key)}`;
    case "challenge":
      return `Challenge,${encodeBase64url(reply.serverKey)},${encodeBase64url(reply.nonce)}`;
    case "mail":
      return `Mail,${reply.id},${encodeBase64url(reply.sealed)}`;
    case "end":
      return `End,${reply.count}`;
    case "acked":
      return `Acked,${reply.count}`;
    case "refused":
      // A reason is one line: anything that would end it early is replaced.
      return `Refused,${reply.reason.replace(/[\r\n]/g, " ")}`;
  }
}

/**
 * Decodes one reply line (without the `\n`).
 *
 * @throws {MailboxLineError} on anything malformed.
 */
export function decodeMailboxReply(line: string): MailboxReply {
  const comma = line.indexOf(",");
  const verb = comma < 0 ? line : line.slice(0, comma);
  if (verb === "Refused" && comma > 0) return { type: "refused", reason: line.slice(comma + 1) };
  const fields = line.split(",");
  const arity = (n: number) => {
    if (fields.length !== n) fail(`${verb} takes ${n - 1} field(s), not ${fields.length - 1}`);
  };
  switch (verb) {
    case "Deposited":
      arity(2);
      return { type: "deposited", id: id(fields[1]) };
    case "Key": {
      arity(3);
      return { type: "key", name: name(fields[1]), key: sized(fields[2], "key", KEY_BYTES) };
    }
    case "Challenge":
      arity(3);
      return {
        type: "challenge",
        serverKey: sized(fields[1], "server key", KEY_BYTES),
        nonce: sized(fields[2], "nonce", NONCE_BYTES),
      };
    case "Mail": {
      arity(3);
      const sealed = bytes(fields[2], "sealed message");
      if (sealed.length === 0 || sealed.length > MAX_SEALED_BYTES) {
        fail(`the sealed message is ${sealed.length} bytes, not 1..${MAX_SEALED_BYTES}`);
      }
      return { type: "mail", id: id(fields[1]), sealed };
    }
    case "End":
    case "Acked": {
      arity(2);
      const count = fields[1] === "0" ? 0 : id(fields[1]);
      return { type: verb === "End" ? "end" : "acked", count };
    }
    default:
      return fail(`unknown reply ${JSON.stringify(verb.slice(0, 20))}`);
  }
}

/** What {@linkcode LineSplitter.push} found: the lines completed, then perhaps an error. */
export interface SplitLines {
  /** The lines completed, in order, up to the error if any. */
  lines: string[];
  /**
   * A line longer than the cap, or not UTF-8: nothing after it can be trusted to be where a line
   * starts, so the caller answers the lines before it, then closes the connection.
   */
  error?: MailboxLineError;
}

/**
 * Cuts a byte stream into lines of at most `maxBytes` bytes each (the `\n` excluded), decoded as
 * UTF-8. Once it has reported an error it reports nothing more.
 *
 * @example
 * ```ts
 * const split = new LineSplitter(100);
 * split.push(new TextEncoder().encode("fetch,bo")); // { lines: [] }
 * split.push(new TextEncoder().encode("b\n")); // { lines: ["fetch,bob"] }
 * ```
 */
export class LineSplitter {
  readonly #max: number;
  #chunks: Uint8Array[] = [];
  #pending = 0;
  #failed = false;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes held of a line not ended yet. */
  get pending(): number {
    return this.#pending;
  }

  /** Adds `bytes`; returns the lines they complete, and the error that stopped it if any. */
  push(bytes: Uint8Array): SplitLines {
    const lines: string[] = [];
    if (this.#failed) return { lines };
    let start = 0;
    for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, start)) {
      const part = bytes.subarray(start, nl);
      if (this.#pending + part.length > this.#max) return this.#fail(lines, this.#tooLong());
      this.#chunks.push(part);
      const line = this.#decode();
      if (line === undefined) {
        return this.#fail(lines, new MailboxLineError("Malformed mailbox line: not UTF-8"));
      }
      lines.push(line);
      start = nl + 1;
    }
    const rest = bytes.subarray(start);
    if (rest.length > 0) {
      if (this.#pending + rest.length > this.#max) return this.#fail(lines, this.#tooLong());
      this.#chunks.push(rest.slice());
      this.#pending += rest.length;
    }
    return { lines };
  }

  #fail(lines: string[], error: MailboxLineError): SplitLines {
    this.#failed = true;
    this.#chunks = [];
    this.#pending = 0;
    return { lines, error };
  }

  #decode(): string | undefined {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#pending = 0;
    const whole = chunks.length === 1 ? chunks[0] : concatBytes(...chunks);
    try {
      return this.#decoder.decode(whole);
    } catch {
      return undefined;
    }
  }

  #tooLong(): MailboxLineError {
    return new MailboxLineError(`Malformed mailbox line: longer than ${this.#max} bytes`);
  }
}

function fail(why: string): never {
  throw new MailboxLineError(`Malformed mailbox line: ${why}`);
}

function name(text: string): string {
  const problem = usernameProblem(text);
  if (problem) fail(problem);
  return text;
}

function id(text: string): number {
  const value = Number(text);
  if (!/^[1-9][0-9]{0,15}$/.test(text) || !Number.isSafeInteger(value)) {
    fail(`bad id ${JSON.stringify(text.slice(0, 20))}`);
  }
  return value;
}

function bytes(text: string, what: string): Uint8Array {
  return decodeBase64url(text) ?? fail(`the ${what} is not base64url`);
}

function sized(text: string, what: string, length: number): Uint8Array {
  const value = bytes(text, what);
  if (value.length !== length) fail(`the ${what} is ${value.length} bytes, not ${length}`);
  return value;
}
