// Embeddings computed elsewhere, looked up by text: JSONL lines {"text": str, "embedding": [numbers]}
// (what `l2e encode` writes) or a 2-D float32/float64 .npy matrix plus a texts file (one text per line,
// or a JSON array) giving each row's text. Texts are matched after pyStrip, like the eval pool.
import { readFileSync } from 'node:fs';
import { Embeddings } from '../model/embeddings.js';
import { LineError, readJsonl } from '../data/jsonl.js';
import { pyStrip } from './strip.js';
import { parseNpy } from '../util/npy.js';
import { parseJson } from '../util/json.js';
import { jsonShown } from '../util/describe.js';

export class VectorTable {
  private readonly index = new Map<string, number>();
  /** Per row: the text as given (before stripping) and where it was, for messages. */
  private readonly given: { text: string; where: string }[] = [];
  private chunks: Float32Array[] = [];
  private data: Float32Array | undefined;
  rows = 0;

  constructor(
    readonly dim: number,
    readonly source: string,
  ) {}

  /**
   * Adds the vector of `text` (found at `where`, e.g. "line 3"). Texts are looked up stripped, as the
   * reference strips them: of several rows whose texts strip alike, the one given stripped wins, else the
   * first. The same text twice with two different vectors is an error naming both places: which one
   * the file meant cannot be known.
   */
  add(text: string, vec: Float32Array, where: string): void {
    const key = pyStrip(text);
    const row = this.index.get(key);
    if (row === undefined) {
      this.index.set(key, this.rows++);
      this.chunks.push(vec);
      this.given.push({ text, where });
      this.data = undefined;
      return;
    }
    const before = this.given[row]!;
    if (before.text === text) {
      const old = this.chunks[row]!;
      if (old.some((x, i) => x !== vec[i])) {
        throw new Error(`${this.source}: the text ${JSON.stringify(clip(text))} has two different embeddings, at ${before.where} and at ${where}`);
      }
    } else if (text === key && before.text !== key) {
      this.chunks[row] = vec; // the row of the text as it is looked up
      this.given[row] = { text, where };
      this.data = undefined;
    }
  }

  has(text: string): boolean {
    return this.index.has(pyStrip(text));
  }

  /** The vectors of `texts`, in order; a text without a vector is an error naming it. */
  embeddingsFor(texts: readonly string[]): Embeddings {
    const all = this.matrix();
    const out = new Embeddings(texts.length, this.dim);
    texts.forEach((t, i) => {
      const r = this.index.get(pyStrip(t));
      if (r === undefined) throw new Error(`${this.source}: no embedding for the text ${JSON.stringify(clip(t))}`);
      out.data.set(all.subarray(r * this.dim, (r + 1) * this.dim), i * this.dim);
    });
    return out;
  }

  private matrix(): Float32Array {
    if (!this.data) {
      const m = new Float32Array(this.rows * this.dim);
      let off = 0;
      for (const c of this.chunks) {
        m.set(c, off);
        off += c.length;
      }
      this.chunks = [m];
      this.data = m;
    }
    return this.data;
  }
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Loads a vector table: `.npy` (needs `textsFile`) or JSONL {"text","embedding"} (`onInvalidUtf8`:
 * where its warning about bytes that are not UTF-8 goes, as readLines says).
 */
/** A vectors file read as a .npy matrix (by its name, in any case); else JSONL. */
export const isNpyFile = (file: string): boolean => file.toLowerCase().endsWith('.npy');

export async function loadVectorTable(file: string, opts: { textsFile?: string; onInvalidUtf8?: (message: string) => void } = {}): Promise<VectorTable> {
  if (isNpyFile(file)) {
    if (!opts.textsFile) throw new Error(`${file}: a .npy matrix needs --texts FILE naming each row's text`);
    return loadNpyTable(file, opts.textsFile);
  }
  return loadJsonlTable(file, opts.onInvalidUtf8);
}

async function loadJsonlTable(file: string, onInvalidUtf8?: (message: string) => void): Promise<VectorTable> {
  let table: VectorTable | undefined;
  for await (const { line, value } of readJsonl(file, onInvalidUtf8 ? { onInvalidUtf8 } : {})) {
    const v = value as { text?: unknown; embedding?: unknown } | null;
    if (!v || typeof v !== 'object' || typeof v.text !== 'string' || !Array.isArray(v.embedding)) {
      throw new LineError(file, line, 'expected {"text": string, "embedding": [numbers]}');
    }
    const emb = v.embedding as unknown[];
    if (!table) {
      if (emb.length === 0) throw new LineError(file, line, 'empty embedding');
      table = new VectorTable(emb.length, file);
    }
    if (emb.length !== table.dim) {
      throw new LineError(file, line, `embedding has ${emb.length} values, expected ${table.dim} (from the first line)`);
    }
    const vec = new Float32Array(emb.length);
    for (let i = 0; i < emb.length; i++) {
      const x = emb[i];
      vec[i] = typeof x === 'number' ? x : NaN;
      if (!Number.isFinite(vec[i])) throw new LineError(file, line, `embedding[${i}] is not a finite float32 (${jsonShown(x)})`);
    }
    table.add(v.text, vec, `line ${line}`);
  }
  if (!table) throw new Error(`${file}: no embeddings`);
  return table;
}

/**
 * Texts of a --texts file: a .json file holds a JSON array of strings, any other one text per line
 * (a trailing empty line ignored), whatever its first character.
 */
export function readTextsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (file.toLowerCase().endsWith('.json')) {
    let arr: unknown;
    try {
      arr = parseJson(text);
    } catch (err) {
      throw new Error(`${file}: invalid JSON array (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!Array.isArray(arr) || arr.some((s) => typeof s !== 'string')) throw new Error(`${file}: expected a JSON array of strings`);
    return arr as string[];
  }
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function loadNpyTable(file: string, textsFile: string): VectorTable {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new Error(`${file}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  const m = parseNpy(bytes, file);
  const texts = readTextsFile(textsFile);
  if (texts.length !== m.rows) throw new Error(`${file} has ${m.rows} rows but ${textsFile} has ${texts.length} texts`);
  if (m.cols === 0) throw new Error(`${file}: embeddings have 0 columns`);
  const table = new VectorTable(m.cols, file);
  for (let i = 0; i < m.rows; i++) {
    const vec = m.data.subarray(i * m.cols, (i + 1) * m.cols);
    const bad = vec.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new Error(`${file}: row ${i} (text #${i + 1} of ${textsFile}) has a non-finite value at column ${bad}`);
    table.add(texts[i]!, vec, `row ${i} (text #${i + 1} of ${textsFile})`);
  }
  return table;
}
