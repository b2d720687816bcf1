// A small coverage-guided mutation fuzzer for our TypeScript (and, through it, native) parsers.
// Coverage is V8's own precise block coverage (node:inspector, Profiler.takePreciseCoverage with call
// counts): after each input, every block of our source files (src/) that ran is a feature, keyed by
// script, range and a bucketed hit count (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+). An input that
// reaches a feature never seen before joins the corpus; new inputs are corpus entries put through
// 1-6 stacked mutations (bit flips, interesting bytes and numbers, insertions, deletions, copies,
// dictionary tokens, splices with another entry).
//
// The property of every target: `run` returns (a correct result, checked by the target itself) or
// throws an Error its `accept` says is a clear error. Anything else — another exception, an error
// message not naming the input, a run slower than `slowMs` — is a finding. A native crash ends the
// process: the input being run is always in `currentFile` first, for the caller to keep.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

export interface FuzzTarget {
  name: string;
  /** Seed inputs (also read from test/fuzz/corpus/<name>/ by the runner). */
  seeds: () => Uint8Array[];
  /** Runs one input; throws for a bad input. */
  run: (data: Uint8Array) => void | Promise<void>;
  /** Whether a thrown error is an acceptable, clear one (e.g. its message names the file). */
  accept: (err: unknown) => boolean;
  /** Tokens the mutator inserts (JSON keys, magic strings). */
  dictionary?: string[];
  /** Run once before the first input, outside the timing (builds a tokenizer, starts a server). */
  setup?: () => Promise<void>;
  /** Longest input generated (default 4096 bytes). */
  maxLen?: number;
  /** A run taking longer is a finding (a hang or an unbounded loop). Default 5000 ms (generous: runs share 2 cores, under ASan too). */
  slowMs?: number;
}

export interface Finding {
  input: Uint8Array;
  reason: string;
}

export interface FuzzStats {
  execs: number;
  corpus: number;
  features: number;
  findings: Finding[];
}

/** Runs one input against the property; the reason when it fails, else null. */
export async function check(target: FuzzTarget, data: Uint8Array): Promise<string | null> {
  await target.setup?.();
  const t0 = performance.now();
  try {
    await target.run(data);
  } catch (err) {
    if (!target.accept(err)) {
      const e = err as { name?: string; message?: string; stack?: string };
      return `unexpected ${e?.name ?? typeof err}: ${e?.message ?? String(err)}\n${e?.stack ?? ''}`;
    }
  }
  const ms = performance.now() - t0;
  const slow = target.slowMs ?? 5000;
  if (ms > slow) return `slow: ${ms.toFixed(0)} ms (limit ${slow} ms)`;
  return null;
}

// ---- coverage ----

interface CoverageRange {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: { ranges: CoverageRange[] }[];
}

function bucket(count: number): number {
  if (count <= 3) return Math.max(0, count);
  if (count < 8) return 4;
  if (count < 16) return 5;
  if (count < 32) return 6;
  if (count < 128) return 7;
  return 8;
}

/** Block coverage of the scripts whose URL `include` accepts, reset at every take. */
export class Coverage {
  private readonly session = new Session();

  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  private post(method: string, params?: object): unknown {
    let out: unknown;
    let error: Error | null = null;
    // an in-thread session answers synchronously
    this.session.post(method, params ?? {}, (err, res) => {
      error = err;
      out = res;
    });
    if (error) throw error;
    return out;
  }

  /** Every range ever listed, per function: a later run that does not list one ran it as often as its parent. */
  private readonly known = new Map<string, Set<string>>();

  /**
   * Features since the last take. V8 reports, per function that ran, the function's range and each
   * nested range whose count differs from its enclosing range's (a branch not taken is a count-0
   * range; a branch taken exactly as often as its parent is not listed, and then gets its parent's
   * count here: the innermost listed range around it). `blocks`: each range of those functions,
   * taken or not (range:1 / range:0); `counts`: each listed range with its bucketed hit count (1, 2,
   * 3, 4-7, 8-15, 16-31, 32-127, 128+).
   */
  take(): { blocks: Set<string>; counts: Set<string> } {
    const res = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const blocks = new Set<string>();
    const counts = new Set<string>();
    for (const s of res.result) {
      if (!this.include(s.url)) continue;
      for (const f of s.functions) {
        const fn = f.ranges[0];
        if (!fn || fn.count === 0) continue;
        const fnKey = `${s.url}:${fn.startOffset}:${fn.endOffset}`;
        let known = this.known.get(fnKey);
        if (!known) this.known.set(fnKey, (known = new Set()));
        const listed = new Set<string>();
        for (const r of f.ranges) {
          const key = `${r.startOffset}:${r.endOffset}`;
          listed.add(key);
          known.add(key);
          blocks.add(`${s.url}:${key}:${r.count > 0 ? 1 : 0}`);
          counts.add(`${s.url}:${key}:${bucket(r.count)}`);
        }
        for (const key of known) {
          if (listed.has(key)) continue;
          const [start, end] = key.split(':').map(Number) as [number, number];
          let inner = fn;
          for (const r of f.ranges) {
            if (r.startOffset <= start && end <= r.endOffset && r.endOffset - r.startOffset < inner.endOffset - inner.startOffset) inner = r;
          }
          blocks.add(`${s.url}:${key}:${inner.count > 0 ? 1 : 0}`);
        }
      }
    }
    return { blocks, counts };
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}

// ---- mutation ----

/** xorshift32: reproducible runs for a seed. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
}

const INTERESTING_BYTES = [0, 1, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x0a, 0x2d, 0x30, 0x39, 0xc3, 0xe2, 0xf0];
const INTERESTING_NUMBERS = [
  '0', '-1', '1', '2', '7', '255', '65536', '2147483647', '2147483648', '4294967296', '1e12', '1000000000000',
  '9007199254740993', '18446744073709551615', '1.5', '-0', '1e308', 'NaN', 'null', 'true', '""', '[]', '{}',
];

function splice(a: Uint8Array, at: number, del: number, ins: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length - del + ins.length);
  out.set(a.subarray(0, at), 0);
  out.set(ins, at);
  out.set(a.subarray(at + del), at + ins.length);
  return out;
}

const enc = new TextEncoder();

/** One mutation of `data`; `other` is a second corpus entry for crossover. */
export function mutateOnce(data: Uint8Array, rng: Prng, dict: Uint8Array[], other: Uint8Array): Uint8Array {
  const n = data.length;
  switch (rng.below(10)) {
    case 0: {
      if (n === 0) break;
      const out = data.slice();
      const i = rng.below(n);
      out[i] = out[i]! ^ (1 << rng.below(8));
      return out;
    }
    case 1: {
      if (n === 0) break;
      const out = data.slice();
      out[rng.below(n)] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.length)]!;
      return out;
    }
    case 2: {
      if (n === 0) break;
      const out = data.slice();
      out[rng.below(n)] = rng.below(256);
      return out;
    }
    case 3: {
      const len = 1 + rng.below(8);
      const ins = new Uint8Array(len);
      for (let i = 0; i < len; i++) ins[i] = rng.below(256);
      return splice(data, rng.below(n + 1), 0, ins);
    }
    case 4: {
      if (n === 0) break;
      const at = rng.below(n);
      return splice(data, at, 1 + rng.below(Math.min(16, n - at)), new Uint8Array(0));
    }
    case 5: {
      if (n === 0) break;
      const from = rng.below(n);
      const len = 1 + rng.below(Math.min(32, n - from));
      return splice(data, rng.below(n + 1), 0, data.slice(from, from + len));
    }
    case 6:
    case 7: {
      if (dict.length === 0) break;
      const tok = dict[rng.below(dict.length)]!;
      const at = rng.below(n + 1);
      // either insert the token or overwrite the bytes under it
      return rng.below(2) === 0 ? splice(data, at, 0, tok) : splice(data, at, Math.min(tok.length, n - at), tok);
    }
    case 8: {
      // replace a run of digits (a JSON number) with an interesting one
      const starts: number[] = [];
      for (let i = 0; i < n; i++) if (data[i]! >= 0x30 && data[i]! <= 0x39 && (i === 0 || !(data[i - 1]! >= 0x30 && data[i - 1]! <= 0x39))) starts.push(i);
      if (starts.length === 0) break;
      const at = starts[rng.below(starts.length)]!;
      let end = at;
      while (end < n && ((data[end]! >= 0x30 && data[end]! <= 0x39) || data[end] === 0x2e || data[end] === 0x65)) end++;
      return splice(data, at, end - at, enc.encode(INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.length)]!));
    }
    case 9: {
      if (other.length === 0) break;
      const cut = rng.below(n + 1);
      const from = rng.below(other.length);
      return splice(data.subarray(0, cut), cut, 0, other.subarray(from));
    }
  }
  return splice(data, rng.below(n + 1), 0, Uint8Array.of(rng.below(256)));
}

export function mutate(data: Uint8Array, rng: Prng, dict: Uint8Array[], corpus: Uint8Array[], maxLen: number): Uint8Array {
  let out = data;
  const k = rng.below(2) === 0 ? 1 : 2 + rng.below(5);
  for (let i = 0; i < k; i++) out = mutateOnce(out, rng, dict, corpus[rng.below(corpus.length)] ?? new Uint8Array(0));
  return out.length > maxLen ? out.subarray(0, maxLen) : out;
}

// ---- the loop ----

export interface FuzzOptions {
  seconds: number;
  seed: number;
  /** Extra corpus entries (the kept corpus and regression cases). */
  corpus: Uint8Array[];
  /** Written with the input before each run, so a native crash leaves it behind. */
  currentFile?: string;
  /** Called with each corpus addition (to keep it). */
  onNewInput?: (data: Uint8Array) => void;
  /** Which script URLs count for coverage (default: our src/ files). */
  include?: (url: string) => boolean;
  /** Stop after this many findings (default 1). */
  maxFindings?: number;
}

export async function fuzz(target: FuzzTarget, opts: FuzzOptions): Promise<FuzzStats> {
  const include = opts.include ?? ((url: string) => /\/src\/[^?]*\.ts/.test(url) && !url.includes('node_modules'));
  const cov = new Coverage(include);
  const rng = new Prng(opts.seed);
  const dict = (target.dictionary ?? []).map((t) => enc.encode(t));
  const maxLen = target.maxLen ?? 4096;
  const seenBlocks = new Set<string>();
  const seen = new Set<string>();
  const corpus: Uint8Array[] = [];
  const findings: Finding[] = [];
  const maxFindings = opts.maxFindings ?? 1;
  let execs = 0;
  await target.setup?.();

  const run = async (data: Uint8Array): Promise<boolean> => {
    if (opts.currentFile) writeFileSync(opts.currentFile, data);
    const reason = await check(target, data);
    execs++;
    if (reason) findings.push({ input: data, reason });
    return reason === null;
  };
  const fresh = (cov: { blocks: Set<string>; counts: Set<string> }): boolean => {
    let isNew = false;
    for (const b of cov.blocks) if (!seenBlocks.has(b)) (seenBlocks.add(b), (isNew = true));
    for (const c of cov.counts) if (!seen.has(c)) (seen.add(c), (isNew = true));
    return isNew;
  };
  /** Runs one input alone and says whether it reached a new feature. */
  const one = async (data: Uint8Array): Promise<boolean> => {
    coverage.take(); // drop whatever ran in between
    if (!(await run(data))) return false;
    return fresh(coverage.take());
  };

  // Taking coverage costs far more than most runs, so inputs run in batches with one take each;
  // only a batch that reached a new block is replayed input by input to find which input did.
  const BATCH = 24;
  const coverage = cov;
  try {
    for (const s of [...target.seeds(), ...opts.corpus]) {
      if ((await one(s)) || corpus.length === 0) corpus.push(s);
      if (findings.length >= maxFindings) return { execs, corpus: corpus.length, features: seen.size, findings };
    }
    const deadline = Date.now() + opts.seconds * 1000;
    while (Date.now() < deadline && findings.length < maxFindings) {
      const batch: Uint8Array[] = [];
      coverage.take();
      for (let i = 0; i < BATCH && findings.length < maxFindings; i++) {
        // half the time one of the newest entries: progress builds on the latest discovery
        const pick = rng.below(2) === 0 ? corpus.length - 1 - rng.below(Math.min(4, corpus.length)) : rng.below(corpus.length);
        const child = mutate(corpus[pick]!, rng, dict, corpus, maxLen);
        batch.push(child);
        await run(child);
      }
      if (findings.length >= maxFindings) break;
      const { blocks } = coverage.take();
      if (![...blocks].some((b) => !seenBlocks.has(b))) continue;
      for (const child of batch) {
        if (await one(child)) {
          corpus.push(child);
          opts.onNewInput?.(child);
        }
      }
    }
  } finally {
    cov.close();
  }
  return { execs, corpus: corpus.length, features: seen.size, findings };
}
