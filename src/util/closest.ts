// What a mistyped name most likely meant: the CLI's flags and commands, the library's option names.

/** Edit distance (insertions, deletions, substitutions, adjacent transpositions) between a and b. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate a mistyped `word` most likely meant: the nearest by edit distance when that is at
 * most a third of the word's length (at least 1), or one that starts with the word; else undefined.
 */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestDist) {
      best = c;
      bestDist = dist;
    }
  }
  if (best !== undefined && bestDist <= Math.max(1, Math.floor(word.length / 3))) return best;
  const prefixed = candidates.filter((c) => word.length >= 2 && c.startsWith(word));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}
