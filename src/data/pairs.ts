// Training rows and contrastive groups (DESIGN.md §1): rows `{"query": str, "pos": [str], "neg": [str]}`
// are streamed from a JSONL file (bounded memory: one line at a time plus the shuffle buffer), shuffled
// through a bounded buffer, and turned into groups of G passages = 1 random positive + (G−1) random
// negatives, the negative list repeated first when it is shorter than G−1 (FlagEmbedding's rule).
//
// Everything random derives from (seed, epoch), so an epoch replays identically: resuming at "epoch e,
// n groups consumed" re-reads the epoch and replays (without yielding) the first n groups.
//
// Rows that cannot make a group are skipped and counted, never fatal:
//   - `pos` empty: there is nothing to score against (FlagEmbedding would crash on random.choice);
//   - `neg` empty while G > 1: FlagEmbedding would crash too (ceil((G−1)/0)). We skip the row rather than
//     borrow other rows' positives: a borrowed "negative" may well be a paraphrase of the positive, and
//     in-batch negatives already supply other rows' passages. With G = 1 negatives are not needed.
import { DEFAULT_MAX_LINE_BYTES, invalidJson, LineError, pairRowProblem, readLines, type PairRow } from './jsonl.js';
import { Rng } from '../util/random.js';
import { counted } from '../util/plural.js';
import { statOrNull } from '../util/fs-error.js';
import { specialFileKind } from '../util/regular-file.js';
import { checkOptions, optionKeys, wrongOption } from '../util/options.js';
import { describeValue, positiveInteger } from '../util/describe.js';

export type TrainRow = PairRow;

/** One query and its G passages; passages[0] is the positive (the InfoNCE target). */
export interface TrainGroup {
  query: string;
  passages: string[];
}

/** Rows as a file path, an (async) iterable, or a function returning a fresh one per epoch. */
export type RowSource =
  | string
  | Iterable<unknown>
  | AsyncIterable<unknown>
  | (() => Iterable<unknown> | AsyncIterable<unknown>);

export interface PairDataOptions {
  /** Passages per query (1 positive + G−1 negatives). */
  groupSize: number;
  seed: number;
  /** Rows held for shuffling; 0 or 1 reads in file order (for pre-shuffled files). Default 10000. */
  shuffleBuffer?: number;
  /** Count and skip malformed lines instead of failing on the first one. */
  skipBadLines?: boolean;
  /** Longest line accepted, in bytes (default 64 MiB). */
  maxLineBytes?: number;
  /** Told after each read of a file with lines that are not UTF-8 (see LineReadOptions; default stderr). */
  onInvalidUtf8?: (message: string) => void;
}

const PAIR_DATA_OPTIONS = optionKeys<PairDataOptions>({
  groupSize: true, seed: true, shuffleBuffer: true, skipBadLines: true, maxLineBytes: true, onInvalidUtf8: true,
});

/** Counts for one pass over the data. */
export interface DataStats {
  /** Rows that produced groups. */
  rows: number;
  /** Malformed lines skipped (only with skipBadLines). */
  badLines: number;
  /** Line numbers (rows, for an iterable source) of the first few malformed lines skipped. */
  firstBadLines: number[];
  /** Rows skipped because `pos` is empty. */
  noPositive: number;
  /** Rows skipped because `neg` is empty and G > 1. */
  noNegative: number;
}

/**
 * The rows `s` counts as skipped, for messages: `2 malformed lines (FILE:2,4), 1 row with an empty
 * "pos", 0 with an empty "neg"` (the malformed lines left out when `badLines` is false).
 */
export function describeSkipped(s: DataStats, file: string, badLines = true): string {
  const more = s.badLines > s.firstBadLines.length ? ',…' : '';
  const where = s.badLines ? ` (${file}:${s.firstBadLines.join(',')}${more})` : '';
  const bad = badLines ? `${counted(s.badLines, 'malformed line')}${where}, ` : '';
  return `${bad}${counted(s.noPositive, 'row')} with an empty "pos", ${s.noNegative} with an empty "neg"`;
}

/** Where a reader stands: enough to resume exactly (see PairData.groups). */
export interface DataPosition {
  epoch: number;
  /** Groups consumed in this epoch. */
  groups: number;
  /** State of the epoch's group-sampling RNG after those groups (checked on resume). */
  rngState: number[];
}

const SHUFFLE_STREAM = 0x5f1;
const GROUP_STREAM = 0x6a7;

/**
 * FlagEmbedding's group: one random positive, then G−1 distinct draws from the negatives, the list
 * repeated ceil((G−1)/len) times first when it is too short. `row.neg` must be non-empty when G > 1.
 */
export function sampleGroup(row: TrainRow, groupSize: number, rng: Rng): TrainGroup {
  const r = row as Partial<TrainRow> | null;
  if (typeof r !== 'object' || r === null || typeof r.query !== 'string' || !Array.isArray(r.pos) || !Array.isArray(r.neg))
    throw new TypeError(`sampleGroup: row must be a pair row {query, pos: [...], neg: [...]}, got ${describeValue(row)}`);
  const problem = pairRowProblem(row); // (passages of other kinds came out as passages: [1, null, {}])
  if (problem !== null) throw new TypeError(`sampleGroup: row must be a pair row {query, pos: [...], neg: [...]}: ${problem}`);
  if (r.pos.length === 0) throw new RangeError('sampleGroup: row.pos is empty (a group starts with one of its positives)');
  positiveInteger('sampleGroup: groupSize', groupSize);
  if (groupSize > 1 && r.neg.length === 0) throw new RangeError(`sampleGroup: row.neg is empty, and a group of ${groupSize} needs negatives`);
  if (!(rng instanceof Rng)) throw new TypeError(`sampleGroup: rng must be an Rng, got ${describeValue(rng)}`);
  const positive = row.pos[rng.int(row.pos.length)]!;
  const want = groupSize - 1;
  if (want === 0) return { query: row.query, passages: [positive] };
  let pool = row.neg;
  if (pool.length < want) {
    const times = Math.ceil(want / pool.length);
    pool = Array.from({ length: times }, () => row.neg).flat();
  }
  return { query: row.query, passages: [positive, ...rng.sample(pool, want)] };
}

/** A training data source: yields the groups of one epoch, deterministically for (seed, epoch). */
export class PairData {
  readonly groupSize: number;
  readonly seed: number;
  readonly shuffleBuffer: number;
  readonly skipBadLines: boolean;
  /**
   * Counts of the epoch being read (reset when an epoch starts): of every line read so far, ahead of
   * the groups used when rows wait in the shuffle buffer or a batch is read ahead.
   */
  stats: DataStats = emptyStats();
  private groupRng: Rng | null = null;

  constructor(
    readonly source: RowSource,
    private readonly options: PairDataOptions,
  ) {
    checkOptions('PairData', options, PAIR_DATA_OPTIONS);
    this.groupSize = positiveInteger('PairData: groupSize', options.groupSize);
    // (a missing seed failed only when the groups were drawn, as "Rng: seed must be a number")
    if (!Number.isInteger(options.seed)) throw wrongOption('PairData', 'seed', 'an integer', options.seed);
    this.seed = options.seed;
    this.shuffleBuffer = options.shuffleBuffer ?? 10000;
    if (!Number.isInteger(this.shuffleBuffer) || this.shuffleBuffer < 0) {
      throw new Error(`shuffleBuffer must be a non-negative integer, got ${describeValue(this.shuffleBuffer)}`);
    }
    if (options.skipBadLines !== undefined && typeof options.skipBadLines !== 'boolean') throw wrongOption('PairData', 'skipBadLines', 'true or false', options.skipBadLines);
    this.skipBadLines = options.skipBadLines ?? false;
  }

  /** A name for messages: the file, or "rows". */
  get name(): string {
    return typeof this.source === 'string' ? this.source : 'training rows';
  }

  /** The current epoch's group RNG state (after the groups yielded so far). */
  rngState(): number[] {
    return this.groupRng ? this.groupRng.getState() : [];
  }

  /**
   * The groups of epoch `epoch` (0-based), after skipping the first `skip` (replayed, so the RNG ends
   * where it was). With `expectRngState` (a saved DataPosition's), the replayed state must match it:
   * otherwise the data, seed or group size changed since the checkpoint. An epoch with no usable row
   * is an error that says why.
   */
  async *groups(epoch: number, skip = 0, expectRngState?: readonly number[]): AsyncGenerator<TrainGroup> {
    this.stats = emptyStats();
    const rng = new Rng(this.seed, GROUP_STREAM + epoch * 2);
    this.groupRng = rng;
    let index = 0;
    const check = (): void => {
      const expected = expectRngState;
      if (expected === undefined || expected.length === 0) return;
      const now = rng.getState();
      if (now.some((x, i) => x !== expected[i])) {
        throw new Error(
          `${this.name}: cannot resume at group ${skip} of epoch ${epoch + 1}: replaying the data does not reproduce the ` +
            'checkpoint\'s sampling state (did the data, seed or group size change?)',
        );
      }
      expectRngState = undefined;
    };
    for await (const row of this.shuffled(epoch, this.stats)) {
      if (index === skip) check();
      const group = sampleGroup(row, this.groupSize, rng);
      if (index++ < skip) continue;
      yield group;
    }
    if (this.stats.rows === 0) throw new Error(this.emptyMessage(epoch));
    if (index < skip) {
      throw new Error(`${this.name}: cannot resume at group ${skip} of epoch ${epoch + 1}: the data now yields only ${index} (did the data change?)`);
    }
    if (index === skip) check();
  }

  /**
   * Reads the whole source once without keeping it (one line at a time) and counts its rows as an
   * epoch will: every line is checked now, so a malformed one fails here with the message an epoch
   * would give (file:line), or is counted with skipBadLines. Null for a source that cannot be read
   * twice (an iterable or a function: reading it here could use it up or cost as much as an epoch).
   * Throws as an epoch would when no row is usable.
   */
  async scan(): Promise<DataStats | null> {
    if (typeof this.source !== 'string' && !Array.isArray(this.source)) return null;
    if (typeof this.source === 'string') refuseOneShotFile(this.source);
    const stats = emptyStats();
    for await (const row of this.rows(stats)) void row;
    if (stats.rows === 0) throw new Error(this.emptyMessage(0, stats));
    return stats;
  }

  private emptyMessage(epoch: number, s: DataStats = this.stats): string {
    const skipped = s.badLines + s.noPositive + s.noNegative;
    if (skipped === 0) {
      return epoch > 0 && typeof this.source !== 'string' && typeof this.source !== 'function' && !Array.isArray(this.source)
        ? `${this.name}: the data source yielded nothing in epoch ${epoch + 1}; a one-shot iterable cannot be re-read — pass a file, an array or a function returning a fresh iterable`
        : `${this.name}: no training rows (the data is empty)`;
    }
    return (
      `${this.name}: no usable training rows: ${s.badLines} malformed, ${s.noPositive} with an empty "pos", ` +
      `${s.noNegative} with an empty "neg"` +
      (s.noNegative > 0 ? ` (group size ${this.groupSize} needs negatives)` : '')
    );
  }

  /** Valid rows in buffer-shuffled order (or file order with a buffer ≤ 1). */
  private async *shuffled(epoch: number, stats: DataStats): AsyncGenerator<TrainRow> {
    const size = this.shuffleBuffer;
    if (size <= 1) {
      yield* this.rows(stats);
      return;
    }
    const rng = new Rng(this.seed, SHUFFLE_STREAM + epoch * 2);
    const buffer: TrainRow[] = [];
    for await (const row of this.rows(stats)) {
      if (buffer.length < size) {
        buffer.push(row);
        continue;
      }
      // emit a random buffered row and keep the new one in its place
      const j = rng.int(size);
      const out = buffer[j]!;
      buffer[j] = row;
      yield out;
    }
    rng.shuffle(buffer);
    yield* buffer;
  }

  /** Valid rows in source order, counted in `stats`; malformed ones throw (or are counted with skipBadLines). */
  private async *rows(stats: DataStats): AsyncGenerator<TrainRow> {
    for await (const item of this.items()) {
      const value = item.value;
      const problem = item.parseError ?? pairRowProblem(value);
      if (problem !== null) {
        if (!this.skipBadLines) throw new LineError(item.where, item.line, problem);
        if (stats.badLines++ < FIRST_BAD_LINES) stats.firstBadLines.push(item.line);
        continue;
      }
      const row = value as TrainRow;
      if (row.pos.length === 0) {
        stats.noPositive++;
        continue;
      }
      if (row.neg.length === 0 && this.groupSize > 1) {
        stats.noNegative++;
        continue;
      }
      stats.rows++;
      // keep only the three fields: extra keys could hold large data we need not buffer
      yield { query: row.query, pos: row.pos, neg: row.neg };
    }
  }

  private async *items(): AsyncGenerator<{ where: string; line: number; value?: unknown; parseError?: string }> {
    const src = this.source;
    if (typeof src === 'string') {
      const maxLineBytes = this.options.maxLineBytes;
      for await (const { line, text, tooLong } of readLines(src, { maxLineBytes, onInvalidUtf8: this.options.onInvalidUtf8, yieldTooLong: true })) {
        if (tooLong) {
          yield { where: src, line, parseError: `line longer than ${maxLineBytes ?? DEFAULT_MAX_LINE_BYTES} bytes` };
          continue;
        }
        if (text.trim() === '') continue;
        try {
          yield { where: src, line, value: JSON.parse(text) as unknown };
        } catch (err) {
          yield { where: src, line, parseError: invalidJson(err) };
        }
      }
      return;
    }
    const iterable: unknown = typeof src === 'function' ? src() : src;
    const isIterable = typeof iterable === 'object' && iterable !== null && (Symbol.iterator in iterable || Symbol.asyncIterator in iterable);
    if (!isIterable) {
      // (it failed as "iterable is not async iterable", naming a variable of ours)
      throw new TypeError(`the data function must return an array or (async) iterable of rows, got ${describeValue(iterable)}`);
    }
    let n = 0;
    for await (const value of iterable as AsyncIterable<unknown>) {
      yield { where: 'row', line: ++n, value };
    }
  }
}

/** Malformed lines whose numbers are kept for the report. */
const FIRST_BAD_LINES = 5;

export function emptyStats(): DataStats {
  return { rows: 0, badLines: 0, firstBadLines: [], noPositive: 0, noNegative: 0 };
}

/** A copy of `s` that later counting does not change. */
export function copyStats(s: DataStats): DataStats {
  return { ...s, firstBadLines: [...s.firstBadLines] };
}

/**
 * Training reads its data file more than once (every line checked before step 1, then once an
 * epoch): stdin (`-`), a pipe (`<(cmd)`) or a device would be used up by the first read and the
 * training would find it empty.
 */
function refuseOneShotFile(path: string): void {
  const st = path === '-' ? null : statOrNull(path);
  if (path !== '-' && (st === null || st.isFile() || st.isDirectory())) return; // missing or a folder: the reader says so
  const what = path === '-' ? 'stdin' : specialFileKind(st!);
  throw new Error(
    `${path}: training reads its data more than once (checked whole before the first step, then once an epoch), ` +
      `and ${what} can be read only once: save the rows to a file and give that`,
  );
}
