// Training rows and contrastive groups (DESIGN.md §1): rows `{"query": str, "pos": [str], "neg": [str]}`
// are read from a JSONL file, an array or an iterable, shuffled, and turned into groups of G passages =
// 1 random positive + (G−1) random negatives, the negative list repeated first when it is shorter than
// G−1 (FlagEmbedding's rule). The shuffle is the recipe's (the Hugging Face Trainer's sampler): a uniform
// permutation of all the rows each epoch, read by an index of the usable rows that the scan before
// training builds (a file's rows by byte offset, 12 bytes a row: one line at a time stays in memory);
// a source that cannot be scanned (an iterable, a function) is shuffled through a buffer of
// STREAM_BUFFER rows, and shuffleBuffer N asks for such a buffer of N rows (0 or 1: file order).
//
// Everything random derives from (seed, epoch), so an epoch replays identically: resuming at "epoch e,
// n groups consumed" re-reads the epoch and replays (without yielding) the first n groups.
//
// Rows that cannot make a group are skipped and counted, never fatal:
//   - `pos` empty: there is nothing to score against (FlagEmbedding would crash on random.choice);
//   - `neg` empty while G > 1: FlagEmbedding would crash too (ceil((G−1)/0)). We skip the row rather than
//     borrow other rows' positives: a borrowed "negative" may well be a paraphrase of the positive, and
//     in-batch negatives already supply other rows' passages. With G = 1 negatives are not needed.
import { closeSync, openSync, readSync } from 'node:fs';
import { DEFAULT_MAX_LINE_BYTES, invalidJson, LineError, lineText, pairRowProblem, readLines, type PairRow } from './jsonl.js';
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
  /**
   * 'all' (the default): a uniform permutation of all the rows each epoch (a file's or an array's; an
   * iterable's through a buffer of STREAM_BUFFER rows); N: a buffer of N rows, each read row swapped for
   * a random one of them (the order stays near the file's); 0 or 1: file order (pre-shuffled files).
   */
  shuffleBuffer?: number | 'all';
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
/** The buffer of shuffleBuffer 'all' for a source that cannot be scanned (an iterable, a function). */
export const STREAM_BUFFER = 10000;

/** Where each usable row of a scanned source is: a file's lines (byte offset, length) or an array's indices. */
interface RowIndex {
  /** Byte offset of each row's line in the file, or its index in the array. */
  at: Float64Array;
  /** Bytes of each row's line, with its '\n' if it has one (files). */
  bytes: Uint32Array;
  /** The counts of the scan: the rows skipped, as every epoch skips them. */
  stats: DataStats;
}

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
  readonly shuffleBuffer: number | 'all';
  readonly skipBadLines: boolean;
  /** The usable rows of a scan (shuffleBuffer 'all', a file or an array). */
  private index: RowIndex | null = null;
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
    this.shuffleBuffer = options.shuffleBuffer ?? 'all';
    if (this.shuffleBuffer !== 'all' && (!Number.isInteger(this.shuffleBuffer) || this.shuffleBuffer < 0)) {
      throw new Error(`shuffleBuffer must be 'all' or a non-negative integer, got ${describeValue(this.shuffleBuffer)}`);
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
    const keep = this.shuffleBuffer === 'all';
    let at = new Float64Array(keep ? 1024 : 0);
    let bytes = new Uint32Array(keep ? 1024 : 0);
    let count = 0;
    for await (const { where } of this.rows(stats)) {
      if (!keep) continue;
      if (count === at.length) {
        const moreAt = new Float64Array(count * 2);
        moreAt.set(at);
        at = moreAt;
        const moreBytes = new Uint32Array(count * 2);
        moreBytes.set(bytes);
        bytes = moreBytes;
      }
      at[count] = where.at;
      bytes[count++] = where.bytes;
    }
    if (stats.rows === 0) throw new Error(this.emptyMessage(0, stats));
    if (keep) this.index = { at: at.subarray(0, count), bytes: bytes.subarray(0, count), stats };
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

  /** Valid rows in the epoch's order: permuted (shuffleBuffer 'all'), buffer-shuffled, or in file order (a buffer ≤ 1). */
  private async *shuffled(epoch: number, stats: DataStats): AsyncGenerator<TrainRow> {
    const rng = new Rng(this.seed, SHUFFLE_STREAM + epoch * 2);
    if (this.shuffleBuffer === 'all' && (typeof this.source === 'string' || Array.isArray(this.source))) {
      if (this.index === null) await this.scan();
      yield* this.permuted(this.index!, rng, stats);
      return;
    }
    const size = this.shuffleBuffer === 'all' ? STREAM_BUFFER : this.shuffleBuffer;
    if (size <= 1) {
      for await (const { row } of this.rows(stats)) yield row;
      return;
    }
    const buffer: TrainRow[] = [];
    for await (const { row } of this.rows(stats)) {
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

  /**
   * The scanned rows in a uniform random order (Fisher–Yates over the index), each read again from the
   * file by its offset (or from the array) and checked again: a row that no longer reads as one is the
   * file changed since the scan. `stats` gets the scan's skipped rows at once (every pass skips the
   * same), and counts the rows as they are read.
   */
  private async *permuted(index: RowIndex, rng: Rng, stats: DataStats): AsyncGenerator<TrainRow> {
    Object.assign(stats, { ...index.stats, rows: 0, firstBadLines: [...index.stats.firstBadLines] });
    const order = rng.shuffle(Uint32Array.from({ length: index.at.length }, (_, i) => i));
    const src = this.source;
    const fd = typeof src === 'string' ? openSync(src, 'r') : null;
    let buf = Buffer.alloc(0);
    try {
      for (let i = 0; i < order.length; i++) {
        const k = order[i]!;
        let value: unknown;
        if (fd !== null) {
          const n = index.bytes[k]!;
          if (buf.length < n) buf = Buffer.alloc(Math.max(n, buf.length * 2));
          const got = readSync(fd, buf, 0, n, index.at[k]!);
          const line = buf.subarray(0, got > 0 && buf[got - 1] === 0x0a ? got - 1 : got);
          const text = lineText(line, index.at[k] === 0);
          try {
            value = JSON.parse(text) as unknown;
          } catch {
            value = undefined;
          }
        } else {
          value = (src as unknown[])[index.at[k]!];
        }
        const row = value as TrainRow;
        if (pairRowProblem(value) !== null || this.unusable(row) !== null) {
          throw new Error(`${this.name}: a row read before training (at ${fd !== null ? `byte ${index.at[k]}` : `index ${index.at[k]}`}) is not one now: the data changed during training`);
        }
        stats.rows++;
        yield { query: row.query, pos: row.pos, neg: row.neg };
        // (a yield gives the event loop back only when the consumer awaits: every 256 rows, a turn of its own)
        if ((i & 255) === 255) await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }

  /** Why a well-formed row makes no group (the count it is skipped under), or null. */
  private unusable(row: TrainRow): 'noPositive' | 'noNegative' | null {
    if (row.pos.length === 0) return 'noPositive';
    return row.neg.length === 0 && this.groupSize > 1 ? 'noNegative' : null;
  }

  /** Valid rows in source order and where each is, counted in `stats`; malformed ones throw (or are counted with skipBadLines). */
  private async *rows(stats: DataStats): AsyncGenerator<{ row: TrainRow; where: { at: number; bytes: number } }> {
    for await (const item of this.items()) {
      const value = item.value;
      const problem = item.parseError ?? pairRowProblem(value);
      if (problem !== null) {
        if (!this.skipBadLines) throw new LineError(item.where, item.line, problem);
        if (stats.badLines++ < FIRST_BAD_LINES) stats.firstBadLines.push(item.line);
        continue;
      }
      const row = value as TrainRow;
      const unusable = this.unusable(row);
      if (unusable !== null) {
        stats[unusable]++;
        continue;
      }
      stats.rows++;
      // keep only the three fields: extra keys could hold large data we need not buffer
      yield { row: { query: row.query, pos: row.pos, neg: row.neg }, where: { at: item.at, bytes: item.bytes } };
    }
  }

  /** The source's items; `at`: a file line's byte offset (`bytes` its length, with its '\n' if it has one), an array item's index. */
  private async *items(): AsyncGenerator<{ where: string; line: number; at: number; bytes: number; value?: unknown; parseError?: string }> {
    const src = this.source;
    if (typeof src === 'string') {
      const maxLineBytes = this.options.maxLineBytes;
      let offset = 0;
      for await (const { line, text, bytes, tooLong } of readLines(src, { maxLineBytes, onInvalidUtf8: this.options.onInvalidUtf8, yieldTooLong: true })) {
        const at = offset;
        offset += bytes;
        if (tooLong) {
          yield { where: src, line, at, bytes: 0, parseError: `line longer than ${maxLineBytes ?? DEFAULT_MAX_LINE_BYTES} bytes` };
          continue;
        }
        if (text.trim() === '') continue;
        try {
          yield { where: src, line, at, bytes, value: JSON.parse(text) as unknown };
        } catch (err) {
          yield { where: src, line, at, bytes, parseError: invalidJson(err) };
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
      yield { where: 'row', line: ++n, at: n - 1, bytes: 0, value };
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
