/**
 * What becomes of a message to someone who is not online. Until there is an offline mailbox it
 * is refused at once, with a reason the user sees (rather than accepted and reported undelivered
 * half a minute later); the mailbox replaces this one decision.
 *
 * @example
 * ```ts
 * offlineRefusal({ user: "bob", seen: true }); // "bob is offline: …"
 * ```
 * @module
 */

/**
 * Why a message to `user`, who is not online now, is not sent; `seen`: they were online during
 * this session (else we may not know the name at all).
 */
export function offlineRefusal(options: { user: string; seen: boolean }): string {
  const { user, seen } = options;
  return seen
    ? `${user} is offline: messages are not kept for people who are away, so send it again ` +
      `when ${user} is back (you will see "${user} is online")`
    : `${user} is not online`;
}
