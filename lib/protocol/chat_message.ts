/**
 * The plaintext of one chat message inside the encrypted, reliable stream between two peers.
 *
 * ```
 * +------+---------+----------------------
 * | kind | id      | text (UTF-8) ...
 * | 1 B  | u32 BE  | to the end
 * +------+---------+----------------------
 * ```
 * `kind` 0 is a message to this peer only, 1 a copy of a group message (`/all`). `id` is the
 * sender's message id, so both ends can name the same message.
 *
 * @example
 * ```ts
 * const bytes = encodeChatMessage({ group: false, id: 3, text: "hi" });
 * decodeChatMessage(bytes); // { group: false, id: 3, text: "hi" }
 * ```
 * @module
 */

/** A decoded chat message. */
export interface ChatMessage {
  group: boolean;
  id: number;
  text: string;
}

/**
 * Thrown by {@linkcode decodeChatMessage} on malformed input, and by
 * {@linkcode encodeChatMessage} for an id that is not a u32.
 */
export class ChatMessageError extends Error {
  override name = "ChatMessageError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Encodes a chat message. Throws {@linkcode ChatMessageError} if `id` is not a u32. */
export function encodeChatMessage(msg: ChatMessage): Uint8Array {
  // setUint32 would wrap -1 or 2**32 and truncate 1.5 silently: the peer would see another id.
  if (!Number.isInteger(msg.id) || msg.id < 0 || msg.id > 0xffff_ffff) {
    throw new ChatMessageError(`Cannot encode chat message: id ${msg.id} is not a u32`);
  }
  const text = encoder.encode(msg.text);
  const out = new Uint8Array(5 + text.length);
  out[0] = msg.group ? 1 : 0;
  new DataView(out.buffer).setUint32(1, msg.id);
  out.set(text, 5);
  return out;
}

/** Decodes a chat message; throws {@linkcode ChatMessageError} (only) when malformed. */
export function decodeChatMessage(bytes: Uint8Array): ChatMessage {
  if (bytes.length < 5) {
    throw new ChatMessageError(`Cannot decode chat message: ${bytes.length} bytes is too short`);
  }
  if (bytes[0] > 1) {
    throw new ChatMessageError(`Cannot decode chat message: unknown kind ${bytes[0]}`);
  }
  let text: string;
  try {
    text = decoder.decode(bytes.subarray(5));
  } catch {
    throw new ChatMessageError("Cannot decode chat message: the text is not valid UTF-8");
  }
  const id = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
  return { group: bytes[0] === 1, id, text };
}
