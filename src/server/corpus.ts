// The search page's corpus: texts embedded once at start, through the server's batcher (so serving
// goes on meanwhile, one batch on the device at a time), or read back from a saved .npy of their
// vectors; searched with the exact native k-NN (cosine).
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { npyBytes, parseNpy } from '../util/npy.js';
import { knn } from '../eval/knn.js';
import { Embeddings } from '../model/embeddings.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { QueueFullError, type Batcher } from './batcher.js';
import { toModelInputs } from './inputs.js';

/** Texts per corpus submission: small, so that requests interleave with the corpus's batches. */
const CHUNK = 64;

export interface SearchHit {
  index: number;
  text: string;
  score: number;
}

export class CorpusIndex {
  private vectors: Embeddings | null = null;
  /** Texts embedded so far (progress while loading). */
  embedded = 0;
  error: Error | null = null;
  private cancelled = false;

  constructor(readonly texts: string[]) {}

  /** Stops a build in progress after its current chunk (server shutdown). */
  cancel(): void {
    this.cancelled = true;
  }

  get ready(): boolean {
    return this.vectors !== null;
  }

  /**
   * Fills the index: from `vectorsFile` when it exists (it must match the corpus), else by embedding
   * every text (truncated at maxLength), then saving them to `vectorsFile` when given.
   */
  async build(opts: {
    batcher: Batcher;
    tokenizer: TextTokenizer;
    vocabSize: number;
    dim: number;
    maxLength: number;
    vectorsFile?: string;
    onProgress?: (done: number, total: number) => void;
  }): Promise<void> {
    const { vectorsFile, dim } = opts;
    if (vectorsFile && existsSync(vectorsFile)) {
      const m = parseNpy(readFileSync(vectorsFile), vectorsFile);
      if (m.rows !== this.texts.length || m.cols !== dim) {
        throw new Error(`${vectorsFile} holds ${m.rows}x${m.cols} vectors but the corpus has ${this.texts.length} texts of ${dim} dims`);
      }
      this.vectors = new Embeddings(m.rows, m.cols, m.data);
      this.embedded = m.rows;
      opts.onProgress?.(m.rows, m.rows);
      return;
    }
    const out = new Embeddings(this.texts.length, dim);
    const limits = { maxInputs: CHUNK, maxChars: Infinity, maxLength: opts.maxLength };
    for (let start = 0; start < this.texts.length; start += CHUNK) {
      if (this.cancelled) throw new Error('corpus embedding cancelled: the server is closing');
      const texts = this.texts.slice(start, start + CHUNK);
      const ids = await toModelInputs({ kind: 'texts', texts, single: false }, opts.tokenizer, opts.vocabSize, limits, true, 'corpus');
      for (;;) {
        try {
          out.data.set(await opts.batcher.submit(ids), start * dim);
          break;
        } catch (err) {
          if (!(err instanceof QueueFullError)) throw err;
          await sleep(50); // requests first: the corpus waits for room
        }
      }
      this.embedded = start + texts.length;
      opts.onProgress?.(this.embedded, this.texts.length);
    }
    if (vectorsFile) writeFileAtomic(vectorsFile, npyBytes(out.data, out.rows, out.dim));
    this.vectors = out;
  }

  /** The k texts nearest to `query` (one embedded row), best first. */
  async search(query: Float32Array, k: number): Promise<SearchHit[]> {
    if (!this.vectors) throw new Error('the corpus is not ready');
    const q = new Embeddings(1, this.vectors.dim, query);
    const r = await knn(q, this.vectors, k, { metric: 'cosine' });
    const hits: SearchHit[] = [];
    for (let i = 0; i < r.k; i++) hits.push({ index: r.indices[i]!, text: this.texts[r.indices[i]!]!, score: r.scores[i]! });
    return hits;
  }
}
