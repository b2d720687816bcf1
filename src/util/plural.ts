// Counts in messages: `1 row`, `2 rows` (every noun our messages count takes a plain -s).

/** `n` and `word`, plural unless n is 1. */
export const counted = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
