// The search page's corpus: texts embedded once at start, through the server's batcher (so serving
// goes on meanwhile, one batch on the device at a time), or read back from a saved .npy of their
// vectors; searched with the exact native k-NN (cosine).
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { nonFiniteValue } from '../model/text-error.js';
import { fsReason } from '../util/fs-error.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { npyBytes, parseNpy, type NpyMatrix } from '../util/npy.js';
import { knnOwned } from '../eval/knn.js';
import { cosine } from '../eval/knn.js';
import { Embeddings } from '../model/embeddings.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { QueueFullError, type Batcher } from './batcher.js';
import { toModelInputs } from './inputs.js';

/** Texts per corpus submission: small, so that requests interleave with the corpus's batches. */
const CHUNK = 64;
/** Rows of a saved vectors file embedded again at start to check it. */
const SAMPLE = 8;
/** A saved row and the text's embedding now count as the same vector at this cosine or above
 * (batch composition moves the last bits; another model or text falls far below). */
const SAME_VECTOR_COSINE = 0.999;
const MADE_FROM_FORMAT = 'l2e-corpus-vectors-1';

/** What a saved vectors file was made from, written beside it (FILE.json). */
interface MadeFrom {
  format: string;
  /** sha256 of the texts (each with its length) and the token limit they were cut at */
  texts: string;
  rows: number;
  dim: number;
  maxLength: number;
}

type EmbedOptions = Parameters<CorpusIndex['build']>[0];

const sidecarOf = (vectorsFile: string): string => `${vectorsFile}.json`;

function fingerprint(texts: readonly string[], maxLength: number): string {
  const h = createHash('sha256').update(`${maxLength}\n`);
  for (const t of texts) h.update(`${t.length}\n`).update(t);
  return h.digest('hex');
}

/** Writes the record beside vectors file `file`: what its rows [rows × dim] were made from. */
function writeMadeFrom(file: string, texts: readonly string[], rows: number, dim: number, maxLength: number): void {
  const made: MadeFrom = { format: MADE_FROM_FORMAT, texts: fingerprint(texts, maxLength), rows, dim, maxLength };
  writeFileAtomic(sidecarOf(file), `${JSON.stringify(made, null, 2)}\n`);
}

/**
 * The record beside vectors file `file` (FILE.json); null when there is none. One that is there but is
 * not such a record (damaged, or a file of the user's: the corpus itself once) is an error: it was
 * skipped, so stale vectors passed on the sample alone, and replaced by the next save without a word.
 */
function readMadeFrom(file: string): MadeFrom | null {
  const record = sidecarOf(file);
  if (!existsSync(record)) return null;
  let why: string;
  try {
    const v = JSON.parse(readFileSync(record, 'utf8')) as Partial<MadeFrom> | null;
    const ours =
      v !== null && typeof v === 'object' && v.format === MADE_FROM_FORMAT && typeof v.texts === 'string' &&
      [v.rows, v.dim, v.maxLength].every((x) => Number.isInteger(x));
    if (ours) return v as MadeFrom;
    why = `it is not the record of corpus vectors that the server writes beside ${file} (format ${MADE_FROM_FORMAT})`;
  } catch (err) {
    why = `it cannot be read as the record the server writes beside ${file}: ${err instanceof Error ? err.message : String(err)}`;
  }
  throw new CorpusVectorsError(file, `${record}: ${why}; the server reads and writes that name: move it away, or give --corpus-vectors another name`);
}

/**
 * Rows [texts.length × dim] of `texts`, truncated at maxLength, through the server's batcher, submitted
 * in parts of at most opts.submitTokens tokens (a longer text alone): 64 long texts in one submission
 * took the whole request queue, and requests were refused as long as the corpus was embedded.
 */
async function embedTexts(texts: string[], first: number, opts: EmbedOptions): Promise<Float32Array> {
  const limits = { maxInputs: CHUNK, maxChars: Infinity, maxLength: opts.maxLength };
  // errors name the text by its place in the corpus (1-based), not in this part of it
  const names = texts.map((_, i) => `corpus text ${first + i + 1}`);
  const ids = await toModelInputs({ kind: 'texts', texts, single: false, names }, opts.tokenizer, opts.vocabSize, limits, true, 'corpus');
  const out = new Float32Array(texts.length * opts.dim);
  for (let start = 0; start < ids.length; ) {
    let end = start + 1;
    let tokens = ids[start]!.length;
    while (end < ids.length && tokens + ids[end]!.length <= (opts.submitTokens ?? Infinity)) tokens += ids[end++]!.length;
    for (;;) {
      try {
        out.set(await opts.batcher.submit(ids.slice(start, end)), start * opts.dim);
        break;
      } catch (err) {
        if (!(err instanceof QueueFullError)) throw err;
        await sleep(50); // requests first: the corpus waits for room
      }
    }
    start = end;
  }
  return out;
}

/**
 * A saved vectors file that cannot be the corpus's: unreadable, not a .npy matrix, of another shape, or
 * holding other texts' or another model's vectors.
 */
export class CorpusVectorsError extends Error {
  override name = 'CorpusVectorsError';
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

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
  /** The record beside the vectors file (readSaved), when there is one. */
  private record: MadeFrom | null = null;
  /** The rows of a saved vectors file (readSaved), used by build() once the model has checked them. */
  private saved: { file: string; matrix: NpyMatrix; checked?: number } | null = null;

  constructor(readonly texts: string[]) {}

  /**
   * Reads a saved vectors file when there is one, and checks what needs no model: a .npy matrix with
   * one row per text (before the server listens). checkSaved() checks the rest once the model is
   * loaded; a file that is not there is written by build().
   */
  readSaved(file: string): void {
    this.record = readMadeFrom(file); // (a file there that is not our record is refused, before any work)
    if (!existsSync(file)) {
      // written after the embedding: a folder that cannot take it fails now, not once the corpus is embedded
      try {
        accessSync(dirname(resolve(file)), constants.W_OK);
      } catch (err) {
        throw new CorpusVectorsError(file, `${file}: the corpus vectors could not be saved there: ${fsReason(err, file)}`, { cause: err });
      }
      return;
    }
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new CorpusVectorsError(file, `${file} cannot be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    let matrix: NpyMatrix;
    try {
      matrix = parseNpy(bytes, file);
    } catch (err) {
      throw new CorpusVectorsError(file, err instanceof Error ? err.message : String(err), { cause: err });
    }
    const n = this.texts.length;
    if (matrix.rows !== n) {
      throw new CorpusVectorsError(file, `${file} holds ${matrix.rows}x${matrix.cols} vectors but the corpus has ${n} texts: expected ${n} rows, one per text`);
    }
    // (a row of NaN passed the sample check when not sampled, and every search then failed)
    for (let r = 0; r < matrix.rows; r++) {
      const bad = nonFiniteValue(matrix.data, r, matrix.cols);
      if (bad !== null) throw new CorpusVectorsError(file, `${file}: row ${r} has a non-finite value (${bad}); remove it to embed the corpus again`);
    }
    this.saved = { file, matrix };
  }

  /**
   * What needs the model, of a vectors file readSaved() read (before the server says it is ready): its
   * width against the model's, the fingerprint of the texts beside it when there is one, and a sample of
   * rows embedded again by `opts.embed` (rows [texts × dim] of texts cut at maxLength).
   */
  async checkSaved(opts: {
    dim: number;
    maxLength: number;
    embed: (texts: string[]) => Promise<Float32Array>;
    /** Said before a file without a record is checked row by row, and when its record cannot be written. */
    onLog?: (line: string) => void;
  }): Promise<void> {
    if (!this.saved) return;
    const { file, matrix: m } = this.saved;
    if (m.cols !== opts.dim) {
      throw new CorpusVectorsError(file, `${file} holds ${m.rows}x${m.cols} vectors but the model's embeddings have ${opts.dim} dims: expected ${m.rows}x${opts.dim}`);
    }
    const made = this.record;
    if (made && made.maxLength !== opts.maxLength) {
      throw new CorpusVectorsError(
        file,
        `${file} holds the vectors of texts cut at ${made.maxLength} tokens (${sidecarOf(file)} says so), and this server cuts at ${opts.maxLength} ` +
          `(--max-length): serve with --max-length ${made.maxLength}, or remove both to embed the corpus again`,
      );
    }
    if (made && (made.texts !== fingerprint(this.texts, opts.maxLength) || made.rows !== m.rows || made.dim !== m.cols)) {
      throw new CorpusVectorsError(file, `${file} holds the vectors of other texts (${sidecarOf(file)} says what it was made from); remove both to embed this corpus again`);
    }
    // without the record (a file of `l2e encode`, or one whose record was lost) an edit of the texts
    // between the sampled rows passed unseen, and the stale rows were served: every row is embedded
    // again once, and the record is written for the next start
    if (!made) opts.onLog?.(`corpus: ${file} has no ${sidecarOf(file)} (the fingerprint of its texts): checking all ${m.rows} rows against the model once`);
    this.saved.checked = await this.checkSample(file, new Embeddings(m.rows, m.cols, m.data), opts.embed, made === null);
    if (!made) {
      try {
        writeMadeFrom(file, this.texts, m.rows, m.cols, opts.maxLength);
      } catch (err) {
        opts.onLog?.(`corpus: ${sidecarOf(file)} could not be written (${err instanceof Error ? err.message : String(err)}): the next start checks every row again`);
      }
    }
  }

  /** Stops a build in progress after its current chunk (server shutdown). */
  cancel(): void {
    this.cancelled = true;
  }

  get ready(): boolean {
    return this.vectors !== null;
  }

  /**
   * Fills the index: from the vectors file readSaved() read and checkSaved() checked, when there was
   * one, else by embedding every text (truncated at maxLength), then saving them to `vectorsFile` when
   * given, with the fingerprint beside it (FILE.json).
   */
  async build(opts: {
    batcher: Batcher;
    tokenizer: TextTokenizer;
    vocabSize: number;
    dim: number;
    maxLength: number;
    /** Where to save the vectors embedded (when readSaved() found none). */
    vectorsFile?: string;
    /** Most tokens of one submission to the batcher (the server's maxBatchTokens); default no limit. */
    submitTokens?: number;
    /** A save of the vectors that failed after the embedding (they still serve); default: thrown. */
    onSaveFailed?: (message: string) => void;
    onProgress?: (done: number, total: number) => void;
    /** The vectors were read from the saved file instead: its rows, and how many were checked. */
    onRead?: (rows: number, checked: number) => void;
  }): Promise<void> {
    const { vectorsFile, dim } = opts;
    if (this.saved) {
      const { matrix: m, checked } = this.saved;
      if (checked === undefined) throw new Error('corpus: build() before checkSaved()');
      this.vectors = new Embeddings(m.rows, m.cols, m.data);
      this.embedded = m.rows;
      opts.onRead?.(m.rows, checked);
      return;
    }
    const out = new Embeddings(this.texts.length, dim);
    for (let start = 0; start < this.texts.length; start += CHUNK) {
      if (this.cancelled) throw new Error('corpus embedding cancelled: the server is closing');
      const texts = this.texts.slice(start, start + CHUNK);
      out.data.set(await embedTexts(texts, start, opts), start * dim);
      this.embedded = start + texts.length;
      opts.onProgress?.(this.embedded, this.texts.length);
    }
    if (vectorsFile) {
      try {
        writeFileAtomic(vectorsFile, npyBytes(out.data, out.rows, out.dim));
        writeMadeFrom(vectorsFile, this.texts, out.rows, out.dim, opts.maxLength);
      } catch (err) {
        // (a disk that filled while the corpus was embedded: the hours of embedding still serve)
        if (!opts.onSaveFailed) throw err;
        opts.onSaveFailed(err instanceof Error ? err.message : String(err));
      }
    }
    this.vectors = out;
  }

  /**
   * A saved file's rows against the texts embedded now, at SAMPLE rows spread over the corpus (all of
   * a smaller one, or with `all`): vectors of another model, or of other texts, are refused. Only the
   * fingerprint beside the file sees an edit between sampled rows. Returns the rows checked.
   */
  private async checkSample(file: string, stored: Embeddings, embed: (texts: string[]) => Promise<Float32Array>, all: boolean): Promise<number> {
    const n = this.texts.length;
    const rows = n <= SAMPLE || all ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: SAMPLE }, (_, i) => Math.round((i * (n - 1)) / (SAMPLE - 1)));
    const now = await embed(rows.map((r) => this.texts[r]!));
    rows.forEach((r, i) => {
      const cos = cosine(now.subarray(i * stored.dim, (i + 1) * stored.dim), stored.row(r));
      if (!(cos >= SAME_VECTOR_COSINE)) {
        throw new CorpusVectorsError(
          file,
          `${file} does not hold this model's vectors of the corpus: row ${r} (${JSON.stringify(this.texts[r]!.slice(0, 40))}) is at cosine ${cos.toFixed(4)} to its embedding now; remove it to embed the corpus again`,
        );
      }
    });
    return rows.length;
  }

  /** The k texts nearest to `query` (one embedded row), best first. */
  async search(query: Float32Array, k: number): Promise<SearchHit[]> {
    if (!this.vectors) throw new Error('the corpus is not ready');
    const q = new Embeddings(1, this.vectors.dim, query);
    const r = await knnOwned(q, this.vectors, k, { metric: 'cosine' });
    const hits: SearchHit[] = [];
    // (a cosine is at most 1: float rounding gave 1.0000002)
    for (let i = 0; i < r.k; i++) hits.push({ index: r.indices[i]!, text: this.texts[r.indices[i]!]!, score: Math.max(-1, Math.min(1, r.scores[i]!)) });
    return hits;
  }
}
