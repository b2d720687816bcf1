// Text inputs and embedding outputs of the CLI. Formats are decided by the file name (or forced with
// --format), never guessed from the content: a .txt line that starts with `{` is still a text.
// `-` is standard input / standard output.
import { extname } from 'node:path';
import { readTextRows, type TextFormat } from '../data/texts.js';
import type { Embeddings } from '../model/embeddings.js';
import { float32ArrayJson } from '../util/float32-text.js';
import { npyBytes } from '../util/npy.js';
import { openOutput, STDIO, writeOutput } from '../util/output.js';
import { UsageError } from './args.js';
import type { OptionSpec } from './args.js';

export type { TextFormat };

/** The --format option of the commands that read texts. */
export const FORMAT_OPTION: OptionSpec = {
  kind: 'string',
  help: 'input format: text (one per line) or jsonl; default from the extension (.txt / .jsonl)',
  metavar: 'text|jsonl',
};

const TEXT_EXTENSIONS = ['.txt', '.text'];
const JSONL_EXTENSIONS = ['.jsonl', '.ndjson'];

/** The format of input `path`: `forced` when given, else by extension; `-` and other names need --format. */
export function inputFormat(path: string, forced?: string): TextFormat {
  if (forced !== undefined) {
    if (forced !== 'text' && forced !== 'jsonl') throw new UsageError(`--format must be text or jsonl, got ${forced}`);
    return forced;
  }
  const ext = extname(path).toLowerCase();
  if (TEXT_EXTENSIONS.includes(ext)) return 'text';
  if (JSONL_EXTENSIONS.includes(ext)) return 'jsonl';
  if (path === STDIO) throw new UsageError('reading texts from stdin (-): give --format text or --format jsonl');
  throw new UsageError(
    `cannot tell the format of ${path} from its name: use .txt (one text per line) or .jsonl, or give --format text|jsonl`,
  );
}

export interface TextInput {
  texts: string[];
  /** JSONL input: each line's object, so that its other fields (an id, ...) can be carried through. */
  records?: Record<string, unknown>[];
}

/**
 * Reads texts from `path` (`-`: stdin). Text format: one text per line, every line (a blank line is an
 * empty text, so output row i is input line i; CRLF and LF both end a line); JSONL: one object per line
 * with a string `field`, blank lines skipped. Errors name file:line.
 */
export async function readTexts(path: string, opts: { field?: string; format: TextFormat }): Promise<TextInput> {
  const texts: string[] = [];
  const records: Record<string, unknown>[] | undefined = opts.format === 'jsonl' ? [] : undefined;
  for await (const row of readTextRows(path, opts.format, [opts.field ?? 'text'])) {
    texts.push(row.values[0]!);
    if (records && row.record) records.push(row.record);
  }
  return { texts, records };
}

export type EmbeddingFormat = 'jsonl' | 'npy';

/** The output format of `encode` from the output name; other extensions are refused. */
export function embeddingOutputFormat(path: string): EmbeddingFormat {
  if (path === STDIO) return 'jsonl';
  const ext = extname(path).toLowerCase();
  if (JSONL_EXTENSIONS.includes(ext)) return 'jsonl';
  if (ext === '.npy') return 'npy';
  throw new UsageError(
    `--output ${path}: unknown extension${ext ? ` ${ext}` : ''}; use .jsonl (one {"text", "embedding"} per line), ` +
      '.npy (float32 matrix) or - (JSONL on stdout)',
  );
}

/**
 * One JSONL line per text: the input row's fields (JSONL input) or {"text"}, plus "embedding" with
 * each value as the shortest text that reads back as the same float32.
 */
export function embeddingLine(text: string, record: Record<string, unknown> | undefined, vector: ArrayLike<number>): string {
  const { embedding: _replaced, ...fields } = record ?? {};
  const head = JSON.stringify('text' in fields ? fields : { ...fields, text });
  return `${head.length > 2 ? `${head.slice(0, -1)},` : '{'}"embedding":${float32ArrayJson(vector)}}\n`;
}

/** Writes the embeddings of `input` to `output` (`-`: JSONL on stdout) in `format`. */
export async function writeEmbeddings(output: string, format: EmbeddingFormat, input: TextInput, emb: Embeddings): Promise<void> {
  if (format === 'npy') {
    await writeOutput(output, npyBytes(emb.data, emb.rows, emb.dim));
    return;
  }
  const w = openOutput(output);
  try {
    let buf = '';
    for (let i = 0; i < input.texts.length; i++) {
      buf += embeddingLine(input.texts[i]!, input.records?.[i], emb.row(i));
      if (buf.length >= 1 << 20) {
        await w.write(buf);
        buf = '';
      }
    }
    if (buf) await w.write(buf);
    await w.commit();
  } catch (err) {
    w.abort();
    throw err;
  }
}
