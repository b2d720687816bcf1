// `mine` end to end: read the corpus, embed it in blocks, mine every text, write JSONL atomically.
import { Embeddings } from '../model/embeddings.js';
import type { EmbeddingSource } from '../eval/source.js';
import { checkOutput, openOutput } from '../util/output.js';
import { readCorpusAs, type Corpus, type CorpusFormat } from './corpus.js';
import { checkThreshold, MINE_DEFAULTS, mineOptionsOf, minePairs, thresholdOverlap, validateMineOptions, type MineOptions, type MineStats } from './mine.js';
import { neighbourStats, resolveThreshold, type NeighbourStats, type Threshold } from './stats.js';
import { FileStore, MemoryStore, type VectorStore } from './store.js';
import { atItsLine, TextError } from '../model/text-error.js';
import { optionItself, type NamingContext, type OptionNamer } from '../util/options.js';

export interface MineRunOptions extends Omit<MineOptions, 'posThreshold' | 'negThreshold'> {
  /** The corpus (`-`: stdin); its format by name unless `format` is given. */
  input: string;
  format?: CorpusFormat;
  /** The pairs JSONL (`-`: stdout). */
  output: string;
  /** Replace an existing `output` file (never the input); default false: an existing file is refused. */
  overwrite?: boolean;
  fields?: string[];
  /** Distances, or percentiles of the corpus's k-nearest distances (stats.ts). */
  posThreshold: Threshold;
  negThreshold: Threshold;
  /** Called with the thresholds as distances when either was a percentile. */
  onThresholds?: (pos: number, neg: number, stats: NeighbourStats) => void;
  /** Texts embedded per call (progress and memory granularity). */
  encodeBlock?: number;
  onStage?: (stage: 'embed' | 'mine', done: number, total: number) => void;
}

export interface MineRunResult extends MineStats {
  texts: number;
  rows: number;
}

/**
 * Embeds `texts` block by block into a vector store: one matrix in memory when all vectors fit in
 * half of `memoryMb`, else a temp file (then mining reads it back in blocks).
 */
export async function embedToStore(
  texts: string[],
  source: EmbeddingSource,
  block: number,
  memoryMb: number,
  onProgress?: (done: number, total: number) => void,
): Promise<VectorStore> {
  let store: MemoryStore | FileStore | undefined;
  try {
    for (let start = 0; start < texts.length; start += block) {
      const part = await source.embed(texts.slice(start, start + block), (done) => onProgress?.(start + done, texts.length)).catch((err: unknown) => {
        // the block's index is the corpus's from `start` on
        throw err instanceof TextError && err.index !== undefined ? err.at(start + err.index) : err;
      });
      if (!store) {
        const bytes = texts.length * part.dim * 4;
        store = bytes <= (memoryMb * 1024 * 1024) / 2 ? new MemoryStore(new Embeddings(texts.length, part.dim)) : new FileStore(texts.length, part.dim);
      }
      if (part.dim !== store.dim) throw new Error(`embedding width changed from ${store.dim} to ${part.dim}`);
      if (store instanceof MemoryStore) store.matrix.data.set(part.data, start * store.dim);
      else store.append(part);
      onProgress?.(Math.min(start + block, texts.length), texts.length);
    }
  } catch (err) {
    store?.close();
    throw err;
  }
  if (!store) throw new Error('nothing to embed');
  return store;
}

type CorpusOptions = Pick<MineRunOptions, 'input' | 'format' | 'fields' | 'memoryMb' | 'encodeBlock' | 'onStage'>;

/** Reads the corpus of `opts.input` and embeds it into a vector store. */
async function embedCorpus(source: EmbeddingSource, opts: CorpusOptions, n: OptionNamer): Promise<{ corpus: Corpus; vectors: VectorStore; memoryMb: number }> {
  const corpus = await readCorpusAs(opts.input, opts.fields ?? ['text'], opts.format, n('format')); // (its hints name the option)
  if (corpus.texts.length === 0) throw new Error(`${opts.input}: no texts`);
  const memoryMb = opts.memoryMb ?? MINE_DEFAULTS.memoryMb;
  const vectors = await embedToStore(corpus.texts, source, opts.encodeBlock ?? 4096, memoryMb, (d, t) => opts.onStage?.('embed', d, t)).catch(
    (err: unknown) => {
      throw atItsLine(err, corpus);
    },
  );
  return { corpus, vectors, memoryMb };
}

/** Reads and embeds the corpus of `opts.input` and measures its nearest-neighbour distances (a dry run). */
export async function corpusNeighbourStats(
  source: EmbeddingSource,
  opts: CorpusOptions & Pick<MineRunOptions, 'k' | 'metric'>,
  context: NamingContext = {},
): Promise<NeighbourStats> {
  for (const key of ['k', 'memoryMb'] as const) {
    const v = opts[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`${key} must be a positive integer, got ${v}`);
  }
  const { corpus, vectors, memoryMb } = await embedCorpus(source, opts, context.optionName ?? optionItself);
  let stats: NeighbourStats;
  try {
    stats = await neighbourStats(corpus, vectors, { k: opts.k, metric: opts.metric, memoryMb });
  } finally {
    vectors.close();
  }
  if (stats.all.length === 0) {
    throw new Error(`${opts.input}: no distances to measure: the corpus needs two distinct texts of more than one character`);
  }
  return stats;
}

/**
 * Mines `run.input` into `run.output`. `source` gives the vectors: a source, or a function that opens
 * one (called once the output is open, so that an output that cannot be written fails before a model
 * loads; the source it returns is closed here). `context.optionName` names the options in messages (the CLI: its flags).
 */
export async function mineToFile(
  source: EmbeddingSource | (() => Promise<EmbeddingSource>),
  run: MineRunOptions,
  context: NamingContext = {},
): Promise<MineRunResult> {
  const n = context.optionName ?? optionItself;
  // fail on bad thresholds before any embedding work (a percentile is checked once it is a distance)
  const { posThreshold: pos, negThreshold: neg } = run;
  checkThreshold('posThreshold', pos, true);
  checkThreshold('negThreshold', neg, true);
  const overlap = thresholdOverlap(pos, neg, run.metric, n);
  if (overlap) throw new Error(overlap);
  const known = { pos: typeof pos === 'number' ? pos : 0, neg: typeof neg === 'number' ? neg : typeof pos === 'number' ? pos : 0 };
  validateMineOptions({ ...run, posThreshold: known.pos, negThreshold: known.neg });
  checkOutput(run.output, { name: 'output', overwrite: run.overwrite, overwriteName: 'overwrite: true', inputs: [{ name: 'input', path: run.input }] });
  // opened before the long work: a folder that cannot take the output fails now, not after the embedding
  const writer = openOutput(run.output, { replace: run.overwrite ?? false }); // `-`: stdout
  let vectors: VectorStore | undefined;
  let opened: EmbeddingSource | undefined;
  try {
    const embedded = await embedCorpus(typeof source === 'function' ? (opened = await source()) : source, run, n);
    const { corpus, memoryMb } = embedded;
    vectors = embedded.vectors;
    let opts: MineRunOptions & MineOptions;
    if (typeof pos === 'number' && typeof neg === 'number') opts = { ...run, posThreshold: pos, negThreshold: neg };
    else {
      const stats = await neighbourStats(corpus, vectors, { k: run.k, metric: run.metric, memoryMb });
      if (stats.all.length === 0) {
        // (a corpus of one usable text: no pair to measure)
        throw new Error(`${run.input === '-' ? 'stdin' : run.input}: no two texts to measure a distance between, so no percentile threshold (${stats.texts} texts, ${stats.short} of one character)`);
      }
      opts = { ...run, posThreshold: resolveThreshold(pos, stats), negThreshold: resolveThreshold(neg, stats) };
      run.onThresholds?.(opts.posThreshold, opts.negThreshold, stats);
      // a percentile and a distance that overlap once resolved: said with the percentile it came from
      if (opts.posThreshold > opts.negThreshold) {
        const said = (t: Threshold, d: number): string => (typeof t === 'number' ? String(t) : `p${t.percentile} (${d})`);
        throw new Error(
          `${n('posThreshold')} ${said(pos, opts.posThreshold)} is above ${n('negThreshold')} ${said(neg, opts.negThreshold)}: ` +
            'positives (distance ≤ pos) and negatives (distance > neg) would overlap',
        );
      }
    }
    let buf: string[] = [];
    const stats = await minePairs(
      corpus,
      vectors,
      mineOptionsOf({ ...opts, memoryMb }),
      async (row) => {
        buf.push(JSON.stringify(row) + '\n');
        if (buf.length >= 512) {
          await writer.write(buf.join(''));
          buf = [];
        }
      },
      (d, t) => opts.onStage?.('mine', d, t),
    );
    if (buf.length) await writer.write(buf.join(''));
    await writer.commit();
    return { ...stats, texts: corpus.texts.length, rows: corpus.rows };
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    vectors?.close();
    opened?.close();
  }
}
