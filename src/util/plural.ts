// Counts in messages: `1 row`, `2 rows` (every noun our messages count takes a plain -s).

/** `word`, plural unless n is 1 (for a table that pads the number on its own). */
export const noun = (n: number, word: string): string => `${word}${n === 1 ? '' : 's'}`;

/** `n` and `word`, plural unless n is 1. */
export const counted = (n: number, word: string): string => `${n} ${noun(n, word)}`;
