/**
 * What goes inside a sealed mailbox message (docs/PROTOCOL.md §5.2): a chat message left for an
 * offline user, or a receipt saying which of those arrived. Pure functions, bytes ↔ values, no
 * I/O, so they can be fuzzed; sealing is `lib/crypto/seal.ts`, the mailbox's own lines
 * `mailbox.ts`. The sender's name travels here, inside the ciphertext, so the coordinator never
 * learns it.
 *
 * Layout (all integers big-endian):
 *
 * ```text
 * version u8 = 1 | kind u8 (1 message, 2 receipt) | from: u8 length + UTF-8
 * | uid: u8 length + ASCII | time u64 (ms since the epoch)
 * | message: text, UTF-8, the rest
 * | receipt: count u16, then count × (u8 length + ASCII uid)
 * ```
 *
 * @example
 * ```ts
 * const bytes = encodeMailPayload({ kind: "message", from: "alice", uid: "m1", time: 0,
 *   text: "hi" });
 * decodeMailPayload(bytes); // the same value
 * ```
 * @module
 */
import { usernameProblem } from "./username.ts";

/** A chat message left in a mailbox. */
export interface MailMessage {
  kind: "message";
  /** The sender's name (its key is the sealed message's static key). */
  from: string;
  /** The message's id, the same as over a direct link: a message arriving both ways shows once. */
  uid: string;
  /** When the sender sent it, in ms since the epoch. */
  time: number;
  text: string;
}

/** A receipt: the recipient got these messages of ours from its mailbox. */
export interface MailReceipt {
  kind: "receipt";
  /** Who got them (the recipient of the messages, the sender of the receipt). */
  from: string;
  /** The receipt's own id, to drop duplicates. */
  uid: string;
  time: number;
  /** The uids of the messages received, at most {@linkcode MAX_RECEIPT_UIDS}. */
  uids: string[];
}

/** Either payload. */
export type MailPayload = MailMessage | MailReceipt;

/** Thrown by {@linkcode decodeMailPayload} and {@linkcode encodeMailPayload} on bad input. */
export class MailPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MailPayloadError";
  }
}

/** Longest uid, in characters. */
export const MAX_UID_LENGTH = 64;
/** Most uids one receipt carries. */
export const MAX_RECEIPT_UIDS = 500;

const VERSION = 1;
const KINDS = { message: 1, receipt: 2 } as const;
const UID = /^[A-Za-z0-9_-]+$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether `uid` is a valid message id: 1–64 characters of `A–Z a–z 0–9 _ -`. */
export function isUid(uid: string): boolean {
  return uid.length <= MAX_UID_LENGTH && UID.test(uid);
}

/**
 * Encodes a payload.
 *
 * @throws {MailPayloadError} if the name, a uid, the time or the receipt's length is invalid.
 */
export function encodeMailPayload(payload: MailPayload): Uint8Array {
  const problem = usernameProblem(payload.from);
  if (problem) throw new MailPayloadError(`Cannot encode mail: ${problem}`);
  const uids = payload.kind === "receipt" ? payload.uids : [];
  for (const uid of [payload.uid, ...uids]) {
    if (!isUid(uid)) {
      throw new MailPayloadError(`Cannot encode mail: bad uid ${JSON.stringify(uid)}`);
    }
  }
  if (!Number.isSafeInteger(payload.time) || payload.time < 0) {
    throw new MailPayloadError(`Cannot encode mail: bad time ${payload.time}`);
  }
  if (uids.length > MAX_RECEIPT_UIDS) {
    throw new MailPayloadError(
      `Cannot encode receipt: ${uids.length} uids, more than ${MAX_RECEIPT_UIDS}`,
    );
  }
  const from = encoder.encode(payload.from);
  const head = [VERSION, KINDS[payload.kind], from.length, ...from, ...short(payload.uid)];
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(payload.time));
  const body = payload.kind === "message"
    ? encoder.encode(payload.text)
    : new Uint8Array([uids.length >> 8, uids.length & 0xff, ...uids.flatMap(short)]);
  const out = new Uint8Array(head.length + 8 + body.length);
  out.set(head);
  out.set(time, head.length);
  out.set(body, head.length + 8);
  return out;
}

/**
 * Decodes a payload.
 *
 * @throws {MailPayloadError} saying what is wrong: version, kind, name, uid, time, text (not
 * UTF-8), receipt length, trailing bytes.
 */
export function decodeMailPayload(bytes: Uint8Array): MailPayload {
  let at = 0;
  const fail = (why: string): never => {
    throw new MailPayloadError(`Cannot decode mail: ${why}`);
  };
  const byte = (): number => at < bytes.length ? bytes[at++] : fail("it is truncated");
  const take = (n: number): Uint8Array =>
    at + n <= bytes.length ? bytes.subarray(at, at += n) : fail("it is truncated");
  const text = (b: Uint8Array, what: string): string => {
    try {
      return decoder.decode(b);
    } catch {
      return fail(`the ${what} is not UTF-8`);
    }
  };
  const uid = (): string => {
    const value = text(take(byte()), "uid");
    return isUid(value) ? value : fail(`bad uid ${JSON.stringify(value)}`);
  };
  const version = byte();
  if (version !== VERSION) fail(`version ${version} is not ${VERSION}`);
  const kind = byte();
  if (kind !== KINDS.message && kind !== KINDS.receipt) fail(`unknown kind ${kind}`);
  const from = text(take(byte()), "name");
  const problem = usernameProblem(from);
  if (problem) fail(problem);
  const id = uid();
  const high = new DataView(take(8).slice().buffer).getBigUint64(0);
  if (high > BigInt(Number.MAX_SAFE_INTEGER)) fail("the time is out of range");
  const time = Number(high);
  if (kind === KINDS.message) {
    return { kind: "message", from, uid: id, time, text: text(bytes.subarray(at), "text") };
  }
  const count = (byte() << 8) | byte();
  if (count > MAX_RECEIPT_UIDS) fail(`${count} uids, more than ${MAX_RECEIPT_UIDS}`);
  const uids: string[] = [];
  for (let i = 0; i < count; i++) uids.push(uid());
  if (at !== bytes.length) fail(`${bytes.length - at} bytes after the receipt`);
  return { kind: "receipt", from, uid: id, time, uids };
}

/** A short ASCII string with its length byte. */
function short(value: string): number[] {
  return [value.length, ...encoder.encode(value)];
}
