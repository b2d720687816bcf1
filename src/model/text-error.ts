// An error about one text, from the tokenizer or the model: `reason` says what is wrong with the text,
// `index` its place in the list it came in (when it came in one), so that a caller holding the texts'
// sources (the CLI: a file and line; the server: a request's input) can name it there.
import { LineError } from '../data/jsonl.js';

export class TextError extends Error {
  override name = 'TextError';
  constructor(
    /** What refused the text: "tokenizer" or "encode". */
    readonly stage: string,
    readonly reason: string,
    readonly index?: number,
  ) {
    super(`${stage}: ${index === undefined ? '' : `texts[${index}]: `}${reason}`);
  }

  /** The same error, naming texts[index]. */
  at(index: number): TextError {
    return new TextError(this.stage, this.reason, index);
  }
}

/** Where a list of texts came from: the input's name in errors and each text's (first) line. */
export interface TextLines {
  source?: string;
  lines?: number[];
  /** For a JSON file of texts (no lines to name): each text's (first) place in its array, or key's. */
  elements?: { of: 'array' | 'object'; at: number[] };
}

/** A text's error from the tokenizer or the model, named by the input line that holds the text. */
export function atItsLine(err: unknown, texts: TextLines | undefined): unknown {
  if (!(err instanceof TextError) || err.index === undefined || !texts?.source) return err;
  const line = texts.lines?.[err.index];
  if (line !== undefined) return new LineError(texts.source, line, err.reason);
  const at = texts.elements?.at[err.index];
  if (at === undefined) return err;
  return new Error(`${texts.source}: ${texts.elements!.of === 'array' ? `element [${at}] of the array` : `key ${at + 1} of the object`}: ${err.reason}`);
}

/** "NaN at index 3" for the first non-finite value of row `row` (width `dim`) of `rows`, or null. */
export function nonFiniteValue(rows: Float32Array, row: number, dim: number): string | null {
  for (let i = row * dim, end = i + dim; i < end; i++) {
    const v = rows[i]!;
    if (v - v === 0) continue; // finite
    return `${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Inf' : '-Inf'} at index ${i - row * dim}`;
  }
  return null;
}

/** The reason for a row with a non-finite value (`where`: nonFiniteValue's). */
export function nonFiniteReason(where: string): string {
  return `its embedding has a non-finite value (${where}): the model's activations overflowed on it (are its weights sound?)`;
}
