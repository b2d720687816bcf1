// A progress bar on stderr, drawn only when stderr is a terminal (and not under CI): long work shows
// done/total, rate and ETA. Elsewhere it is silent, or with `plainLines` writes one plain line at
// every tenth of the work, so logs show progress without carriage-return noise. Rate and ETA count
// only the work this bar has seen: work done before it started (`initial`, e.g. the steps before a
// resume) is shown in done/total but is not counted as done in this bar's time.

export interface ProgressOptions {
  label: string;
  total: number;
  unit?: string;
  /** How counts and the rate are written (e.g. bytes as "1.20 GB"); with it `unit` is not appended. */
  format?: (n: number) => string;
  stream?: NodeJS.WriteStream;
  /** When not drawing a bar, print a plain line at each 10% of the work. */
  plainLines?: boolean;
  /** Work already done before this bar started (default 0): counted in done/total, not in the rate. */
  initial?: number;
  /**
   * Work done before the rate's clock started (default `initial`): for a bar made at its first report,
   * the work that report counts (else a first block done in no time gave 'embed 32/300 32000.0/s').
   */
  unclocked?: number;
}

/**
 * Whether a bar may be drawn on `stream`: a terminal that can move the cursor (not TERM=dumb: an Emacs
 * shell, a build log), outside CI (CI set to anything but "false" or "0", as CI services set it).
 */
export function canDraw(stream: { isTTY?: boolean }): boolean {
  const ci = process.env['CI'];
  return Boolean(stream.isTTY) && process.env['TERM'] !== 'dumb' && (ci === undefined || ci === '' || ci === 'false' || ci === '0');
}

export class ProgressBar {
  private readonly start = Date.now();
  private last = 0;
  private done: number;
  private readonly initial: number;
  private readonly unclocked: number;
  private extra = '';
  private readonly enabled: boolean;
  private readonly stream: NodeJS.WriteStream;
  private lastTenth = 0;
  private finished = false;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.enabled = canDraw(this.stream);
    this.initial = opts.initial ?? 0;
    this.unclocked = opts.unclocked ?? this.initial;
    this.done = this.initial;
    if (opts.total > 0) this.lastTenth = Math.floor((10 * this.initial) / opts.total);
  }

  /** Whether a bar is being redrawn in place (a terminal): other output should start on a new line. */
  get drawing(): boolean {
    return this.enabled;
  }

  /** Sets the count done so far, with optional extra text (e.g. "loss 0.41"). */
  update(done: number, extra = ''): void {
    if (this.finished) return; // a caller may report the final count more than once
    this.done = done;
    this.extra = extra;
    const now = Date.now();
    if (this.enabled && (now - this.last > 100 || done >= this.opts.total)) {
      this.last = now;
      this.draw();
    } else if (!this.enabled && this.opts.plainLines && this.opts.total > 0) {
      const tenth = Math.floor((10 * done) / this.opts.total);
      if (tenth > this.lastTenth) {
        this.lastTenth = tenth;
        this.stream.write(`${this.line()}\n`);
      }
    }
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.enabled) {
      this.draw();
      this.stream.write('\n');
    }
  }

  private draw(): void {
    this.stream.write(`\r${this.line(true).slice(0, (this.stream.columns ?? 120) - 1)}\x1b[K`);
  }

  private line(withBar = false): string {
    const { total, label, unit = '', format } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const secs = (Date.now() - this.start) / 1000;
    // no rate before this bar has seen work take time (a bar made at its first report, in the same
    // millisecond, would say 0/s and ETA 0s with the work ahead): '?' then
    const rate = secs > 0 && this.done > this.unclocked ? (this.done - this.unclocked) / secs : NaN;
    const eta = this.done >= total ? 0 : rate > 0 ? (total - this.done) / rate : NaN;
    const bar = withBar ? ' ' + '█'.repeat(filled) + '░'.repeat(width - filled) : '';
    const rateText = Number.isNaN(rate) ? '?' : format ? format(rate) : rate.toFixed(1);
    const counts = format ? `${format(this.done)}/${format(total)} ${rateText}/s` : `${this.done}/${total}${unit} ${rateText}${unit}/s`;
    return `${label}${bar} ${counts} ETA ${formatSeconds(eta)} ${this.extra}`;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
