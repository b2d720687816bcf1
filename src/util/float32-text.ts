// Float32 values as text: the shortest decimal that reads back (through Math.fround) as the same
// float32. An embedding stored this way in JSONL loses nothing and takes ~10 characters per value
// instead of the ~19 of its float64 text.

/** Powers of ten that are exact doubles. */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/** The shortest decimal text of `v` (taken as a float32) that parses back to the same float32. */
export function float32Text(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) throw new Error(`float32Text: ${v} is not a finite number`);
  if (f === 0) return '0'; // -0 too: JSON has no use for the sign of zero
  // If p significant digits read back as f, so do p + 1 (the nearest (p+1)-digit decimal is at least
  // as close), and 9 always do: walk down from 9 until a length fails. Fast path: p digits are
  // m × 10^-k with m = round(f × 10^k); with 10^k exact, m / 10^k is the double nearest that decimal
  // (what parsing its text gives) and String() prints it back as that decimal.
  const e = Math.floor(Math.log10(Math.abs(f)));
  if (e >= -13 && e <= 13) {
    let best: number | undefined;
    for (let p = 9; p >= 1; p--) {
      const k = p - 1 - e;
      const d = k >= 0 ? Math.round(f * POW10[k]!) / POW10[k]! : Math.round(f / POW10[-k]!) * POW10[-k]!;
      if (Math.fround(d) !== f) break;
      best = d;
    }
    if (best !== undefined) return String(best);
  }
  // exact path (toPrecision rounds exactly), for the rest
  let best = f.toPrecision(9);
  for (let p = 8; p >= 1; p--) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) !== f) break;
    best = s;
  }
  return String(Number(best));
}

/** A JSON array of the values of `row`, each as float32Text. */
export function float32ArrayJson(row: ArrayLike<number>): string {
  const parts = new Array<string>(row.length);
  for (let i = 0; i < row.length; i++) parts[i] = float32Text(row[i]!);
  return `[${parts.join(',')}]`;
}
