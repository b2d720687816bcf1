// `mine` end to end: read the corpus, embed it in blocks, mine every text, write JSONL atomically.
import { Embeddings } from '../model/embeddings.js';
import type { EmbeddingSource } from '../eval/source.js';
import { AtomicWriter } from '../util/atomic.js';
import { readCorpus } from './corpus.js';
import { minePairs, validateMineOptions, type MineOptions, type MineStats } from './mine.js';

export interface MineRunOptions extends MineOptions {
  input: string;
  output: string;
  fields?: string[];
  /** Texts embedded per call (progress and memory granularity). */
  encodeBlock?: number;
  onStage?: (stage: 'embed' | 'mine', done: number, total: number) => void;
}

export interface MineRunResult extends MineStats {
  texts: number;
  rows: number;
}

/** Embeds `texts` block by block into one matrix. */
export async function embedInBlocks(
  texts: string[],
  source: EmbeddingSource,
  block: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Embeddings> {
  let out: Embeddings | undefined;
  for (let start = 0; start < texts.length; start += block) {
    // progress within the block too: one block on a large model can take minutes
    const part = await source.embed(texts.slice(start, start + block), (done) => onProgress?.(start + done, texts.length));
    out ??= new Embeddings(texts.length, part.dim);
    if (part.dim !== out.dim) throw new Error(`embedding width changed from ${out.dim} to ${part.dim}`);
    out.data.set(part.data, start * out.dim);
    onProgress?.(Math.min(start + block, texts.length), texts.length);
  }
  if (!out) throw new Error('nothing to embed');
  return out;
}

export async function mineToFile(source: EmbeddingSource, opts: MineRunOptions): Promise<MineRunResult> {
  validateMineOptions(opts); // fail on bad thresholds before any embedding work
  const corpus = await readCorpus(opts.input, opts.fields);
  if (corpus.texts.length === 0) throw new Error(`${opts.input}: no texts`);
  const vectors = await embedInBlocks(corpus.texts, source, opts.encodeBlock ?? 4096, (d, t) => opts.onStage?.('embed', d, t));
  const writer = new AtomicWriter(opts.output);
  try {
    let buf: string[] = [];
    const stats = await minePairs(
      corpus,
      vectors,
      opts,
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
  }
}
