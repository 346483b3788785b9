/**
 * The smallest terminal the chat's full screen takes. A module of its own so that the help texts
 * (`lib/cli/help.ts`, which `p2p serve` loads) can name it without loading the chat's screen code.
 *
 * @example
 * ```ts
 * import { FULL_SCREEN_FROM } from "./full_screen.ts";
 * console.log(`${FULL_SCREEN_FROM.columns}×${FULL_SCREEN_FROM.rows}`); // 100×20
 * ```
 * @module
 */

/** The smallest terminal the full screen takes; smaller ones get the line mode. */
export const FULL_SCREEN_FROM = { columns: 100, rows: 20 } as const;
