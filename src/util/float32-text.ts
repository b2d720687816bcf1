// Float32 values as text: the shortest decimal that reads back (through Math.fround) as the same
// float32. An embedding stored this way in JSONL loses nothing and takes ~9 characters per value
// instead of the ~19 of its float64 text.

/** The shortest decimal text of `v` (taken as a float32) that parses back to the same float32. */
export function float32Text(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) throw new Error(`float32Text: ${v} is not a finite number`);
  if (f === 0) return '0'; // -0 too: JSON has no use for the sign of zero
  // Nine significant digits always round-trip a float32; fewer often do.
  for (let p = 1; p < 9; p++) {
    const s = Number(f.toPrecision(p));
    if (Math.fround(s) === f) return String(s);
  }
  return String(Number(f.toPrecision(9)));
}

/** A JSON array of the values of `row`, each as float32Text. */
export function float32ArrayJson(row: ArrayLike<number>): string {
  const parts = new Array<string>(row.length);
  for (let i = 0; i < row.length; i++) parts[i] = float32Text(row[i]!);
  return `[${parts.join(',')}]`;
}
