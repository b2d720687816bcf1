// Summary statistics of timing samples, the results table and the comparison against an earlier run.

/** q-quantile of sorted xs (linear interpolation between closest ranks). */
function quantile(sorted, q) {
  if (sorted.length === 1) return sorted[0];
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The median of samples (the mean of the middle two of an even count): one median for every table and summary. */
export function median(samples) {
  return quantile([...samples].sort((a, b) => a - b), 0.5);
}

/** Median, min, max and quartiles of samples (seconds). */
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return {
    samples: s.length,
    median_s: quantile(s, 0.5),
    min_s: s[0],
    max_s: s[s.length - 1],
    q1_s: quantile(s, 0.25),
    q3_s: quantile(s, 0.75),
  };
}

export function formatSeconds(s) {
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(2)} ms`;
  return `${(s * 1e6).toFixed(1)} µs`;
}

export function formatRate(r) {
  if (!r) return '';
  let v = r.value;
  let prefix = '';
  if (v >= 1e6) (v /= 1e6), (prefix = 'M');
  else if (v >= 1e4) (v /= 1e3), (prefix = 'k');
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${prefix ? ` ${prefix}` : ' '}${r.unit}`;
}

function pad(text, width, right = false) {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Prints rows as a fixed-width table; columns = [{title, get, right}]. */
export function printTable(rows, columns) {
  const cells = rows.map((r) => columns.map((c) => String(c.get(r))));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i].length)));
  console.log(columns.map((c, i) => pad(c.title, widths[i], c.right)).join('  '));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of cells) console.log(row.map((cell, i) => pad(cell, widths[i], columns[i].right)).join('  '));
}

/** The standard results table: one row per timed case. */
export function printResults(results) {
  printTable(results, [
    { title: 'name', get: (r) => r.name },
    { title: 'median', get: (r) => formatSeconds(r.median_s), right: true },
    { title: 'min', get: (r) => formatSeconds(r.min_s), right: true },
    { title: 'max', get: (r) => formatSeconds(r.max_s), right: true },
    { title: 'IQR', get: (r) => `±${((100 * (r.q3_s - r.q1_s)) / 2 / r.median_s).toFixed(1)}%`, right: true },
    { title: 'n', get: (r) => r.samples, right: true },
    { title: 'throughput', get: (r) => formatRate(r.rate), right: true },
    { title: 'shape', get: (r) => r.shape ?? '' },
  ]);
}

/** Ratios of an earlier run's medians to this run's (> 1: faster now), by case name. */
export function printComparison(results, earlier, earlierPath) {
  const before = new Map((earlier.results ?? []).map((r) => [r.name, r]));
  const rows = results.filter((r) => before.has(r.name));
  if (rows.length === 0) {
    console.log(`\n--compare ${earlierPath}: no case names in common`);
    return [];
  }
  console.log(`\ncompared with ${earlierPath} (speedup = earlier median / this median; > 1 is faster now)`);
  const out = rows.map((r) => {
    const b = before.get(r.name);
    return { name: r.name, before_s: b.median_s, after_s: r.median_s, speedup: b.median_s / r.median_s };
  });
  printTable(out, [
    { title: 'name', get: (r) => r.name },
    { title: 'earlier', get: (r) => formatSeconds(r.before_s), right: true },
    { title: 'now', get: (r) => formatSeconds(r.after_s), right: true },
    { title: 'speedup', get: (r) => `${r.speedup.toFixed(2)}x`, right: true },
  ]);
  return out;
}
