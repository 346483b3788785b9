/**
 * The plaintext of one chat message inside the encrypted, reliable stream between two peers.
 *
 * ```
 * kinds 2, 3 (since history):                   kinds 0, 1 (before; still decoded):
 * +------+--------+----------+---------+------   +------+--------+--------------
 * | kind | id     | uid      | time    | text    | kind | id     | text ...
 * | 1 B  | u32 BE | 16 bytes | u64 BE  | ...     | 1 B  | u32 BE |
 * +------+--------+----------+---------+------   +------+--------+--------------
 * ```
 * `kind` 2 (0) is a message to this peer only, 3 (1) a copy of a group message (`/all`). `id` is
 * the sender's message number in its session, so both ends can name the same message while it is
 * in flight. `uid` is random and names the message for good: the receiver drops a second copy
 * from the same sender (one resent after the sender restarted, or one that came through the
 * mailbox too). `time` is when the sender sent it, in ms since 1970 (UTC).
 *
 * @example
 * ```ts
 * const msg = { group: false, id: 3, text: "hi", uid: randomUid(), time: Date.now() };
 * decodeChatMessage(encodeChatMessage(msg)); // deep-equals msg
 * ```
 * @module
 */

/** A decoded chat message. `uid` and `time` are absent only from a sender of before history. */
export interface ChatMessage {
  group: boolean;
  id: number;
  text: string;
  /** The message's lasting id: 16 random bytes as 32 lowercase hex digits. */
  uid?: string;
  /** When the sender sent it, ms since 1970 (UTC). */
  time?: number;
}

/**
 * Thrown by {@linkcode decodeChatMessage} on malformed input, and by
 * {@linkcode encodeChatMessage} for an id, uid or time it cannot write.
 */
export class ChatMessageError extends Error {
  override name = "ChatMessageError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const UID_BYTES = 16;
const UID = /^[0-9a-f]{32}$/;
/** Header length of kinds 2 and 3: kind, id, uid, time. */
const HEADER = 1 + 4 + UID_BYTES + 8;

/**
 * A new message uid: 16 random bytes as 32 lowercase hex digits.
 *
 * @example
 * ```ts
 * randomUid(); // e.g. "3f0c…" (32 hex digits)
 * ```
 */
export function randomUid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(UID_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `text` is a well-formed uid (32 lowercase hex digits). */
export function isUid(text: string): boolean {
  return UID.test(text);
}

/**
 * Encodes a chat message: kinds 2/3 when it has a uid and time, else the older kinds 0/1.
 * Throws {@linkcode ChatMessageError} if `id` is not a u32, `uid` is not 32 lowercase hex digits,
 * `time` is not a whole number of ms from 0 to 2^53 − 1, or only one of `uid` and `time` is set.
 */
export function encodeChatMessage(msg: ChatMessage): Uint8Array {
  // setUint32 would wrap -1 or 2**32 and truncate 1.5 silently: the peer would see another id.
  if (!Number.isInteger(msg.id) || msg.id < 0 || msg.id > 0xffff_ffff) {
    throw new ChatMessageError(`Cannot encode chat message: id ${msg.id} is not a u32`);
  }
  const text = encoder.encode(msg.text);
  if (msg.uid === undefined && msg.time === undefined) {
    const out = new Uint8Array(5 + text.length);
    out[0] = msg.group ? 1 : 0;
    new DataView(out.buffer).setUint32(1, msg.id);
    out.set(text, 5);
    return out;
  }
  if (msg.uid === undefined || !isUid(msg.uid)) {
    throw new ChatMessageError(
      `Cannot encode chat message: uid ${msg.uid} is not 32 lowercase hex digits`,
    );
  }
  const time = msg.time;
  if (time === undefined || !Number.isSafeInteger(time) || time < 0) {
    throw new ChatMessageError(`Cannot encode chat message: time ${time} is not ms since 1970`);
  }
  const out = new Uint8Array(HEADER + text.length);
  const view = new DataView(out.buffer);
  out[0] = msg.group ? 3 : 2;
  view.setUint32(1, msg.id);
  for (let i = 0; i < UID_BYTES; i++) out[5 + i] = parseInt(msg.uid.slice(2 * i, 2 * i + 2), 16);
  view.setBigUint64(5 + UID_BYTES, BigInt(time));
  out.set(text, HEADER);
  return out;
}

/** Decodes a chat message; throws {@linkcode ChatMessageError} (only) when malformed. */
export function decodeChatMessage(bytes: Uint8Array): ChatMessage {
  if (bytes.length < 5) {
    throw new ChatMessageError(`Cannot decode chat message: ${bytes.length} bytes is too short`);
  }
  const kind = bytes[0];
  if (kind > 3) throw new ChatMessageError(`Cannot decode chat message: unknown kind ${kind}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const id = view.getUint32(1);
  const group = kind === 1 || kind === 3;
  if (kind < 2) return { group, id, text: decodeText(bytes.subarray(5)) };
  if (bytes.length < HEADER) {
    throw new ChatMessageError(
      `Cannot decode chat message: ${bytes.length} bytes is too short for kind ${kind}`,
    );
  }
  const time = view.getBigUint64(5 + UID_BYTES);
  if (time > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ChatMessageError(`Cannot decode chat message: time ${time} is out of range`);
  }
  const uid = Array.from(
    bytes.subarray(5, 5 + UID_BYTES),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return { group, id, text: decodeText(bytes.subarray(HEADER)), uid, time: Number(time) };
}

function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ChatMessageError("Cannot decode chat message: the text is not valid UTF-8");
  }
}
