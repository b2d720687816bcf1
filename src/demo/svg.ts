// Two small charts for the demo, written as plain SVG text: the training loss per step (with a
// moving average) and the before/after retrieval metrics as grouped bars.

const FONT = 'font-family="Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

/** Loss per optimizer step (light) and its moving average over `window` steps (bold). */
export function lossCurveSvg(losses: number[], title = 'Training loss (InfoNCE)', window = 20): string {
  const W = 720;
  const H = 360;
  const m = { l: 60, r: 20, t: 40, b: 45 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const finite = losses.filter(Number.isFinite);
  const hi = finite.length ? Math.max(...finite) : 1;
  const lo = Math.min(0, ...finite);
  const x = (i: number): number => m.l + (losses.length > 1 ? (i / (losses.length - 1)) * pw : pw / 2);
  const y = (v: number): number => m.t + ph - ((v - lo) / (hi - lo || 1)) * ph;
  const path = (vals: number[]): string =>
    vals.map((v, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const avg = losses.map((_, i) => {
    const s = losses.slice(Math.max(0, i - window + 1), i + 1);
    return s.reduce((a, b) => a + b, 0) / s.length;
  });
  const yTicks = niceTicks(lo, hi, 5);
  const xTicks = niceTicks(1, Math.max(1, losses.length), 6).filter((t) => t >= 1);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" ${FONT}>${esc(title)}</text>`,
    ...yTicks.map(
      (t) =>
        `<line x1="${m.l}" x2="${W - m.r}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>` +
        `<text x="${m.l - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11" ${FONT}>${t}</text>`,
    ),
    ...xTicks.map(
      (t) => `<text x="${x(t - 1).toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle" font-size="11" ${FONT}>${t}</text>`,
    ),
    `<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle" font-size="12" ${FONT}>optimizer step</text>`,
    `<text x="16" y="${m.t + ph / 2}" text-anchor="middle" font-size="12" ${FONT} transform="rotate(-90 16 ${m.t + ph / 2})">loss</text>`,
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`,
    `<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`,
    losses.length ? `<path d="${path(losses)}" fill="none" stroke="#9ecae1" stroke-width="1"/>` : '',
    losses.length ? `<path d="${path(avg)}" fill="none" stroke="#08519c" stroke-width="2.5"/>` : '',
    `<text x="${W - m.r}" y="${m.t - 6}" text-anchor="end" font-size="11" ${FONT} fill="#08519c">moving average (${window} steps)</text>`,
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}

/** Grouped bars: each metric before (grey) and after (blue) training, values in [0, 1]. */
export function beforeAfterSvg(
  before: Record<string, number | null>,
  after: Record<string, number | null>,
  title = 'Retrieval on the held-out pairs',
): string {
  const keys = Object.keys(after).filter((k) => typeof after[k] === 'number' && typeof before[k] === 'number');
  const W = 720;
  const H = 360;
  const m = { l: 50, r: 20, t: 50, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const group = pw / Math.max(1, keys.length);
  const bw = Math.min(40, group / 3);
  const y = (v: number): number => m.t + ph - Math.max(0, Math.min(1, v)) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" ${FONT}>${esc(title)}</text>`,
    `<rect x="${W - 190}" y="32" width="12" height="12" fill="#bdbdbd"/><text x="${W - 172}" y="42" font-size="12" ${FONT}>before</text>`,
    `<rect x="${W - 110}" y="32" width="12" height="12" fill="#2171b5"/><text x="${W - 92}" y="42" font-size="12" ${FONT}>after</text>`,
    ...[0, 0.25, 0.5, 0.75, 1].map(
      (t) =>
        `<line x1="${m.l}" x2="${W - m.r}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e5e5"/>` +
        `<text x="${m.l - 8}" y="${y(t) + 4}" text-anchor="end" font-size="11" ${FONT}>${t}</text>`,
    ),
  ];
  keys.forEach((k, i) => {
    const cx = m.l + group * i + group / 2;
    const b = before[k] as number;
    const a = after[k] as number;
    parts.push(
      `<rect x="${(cx - bw - 2).toFixed(1)}" y="${y(b).toFixed(1)}" width="${bw}" height="${(m.t + ph - y(b)).toFixed(1)}" fill="#bdbdbd"/>`,
      `<rect x="${(cx + 2).toFixed(1)}" y="${y(a).toFixed(1)}" width="${bw}" height="${(m.t + ph - y(a)).toFixed(1)}" fill="#2171b5"/>`,
      `<text x="${(cx - bw / 2 - 2).toFixed(1)}" y="${(y(b) - 4).toFixed(1)}" text-anchor="middle" font-size="10" ${FONT}>${b.toFixed(2)}</text>`,
      `<text x="${(cx + bw / 2 + 2).toFixed(1)}" y="${(y(a) - 4).toFixed(1)}" text-anchor="middle" font-size="10" ${FONT}>${a.toFixed(2)}</text>`,
      `<text x="${cx.toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle" font-size="12" ${FONT}>${esc(k)}</text>`,
    );
  });
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`, '</svg>');
  return parts.join('\n') + '\n';
}
