// Text inputs and embedding outputs of the CLI. Formats are decided by the file name (or forced with
// --format), never guessed from the content: a .txt line that starts with `{` is still a text.
// `-` is standard input / standard output.
import { nonFiniteValue } from '../model/text-error.js';
import { extname } from 'node:path';
import { readTextRows, type TextFormat } from '../data/texts.js';
import type { Embeddings } from '../model/embeddings.js';
import { float32ArrayJson } from '../util/float32-text.js';
import { npyBytes } from '../util/npy.js';
import { STDIO, type OutputWriter } from '../util/output.js';
import { writeModeFor } from '../util/atomic.js';
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
  /** JSONL input: each row's JSON text as written, so that its other fields (an id, ...) are carried through exactly. */
  rows?: string[];
  /** The input's name in errors (`stdin` for `-`), and the line of each text. */
  source?: string;
  lines?: number[];
}

/**
 * Reads texts from `path` (`-`: stdin). Text format: one text per line, every line (a blank line is an
 * empty text, so output row i is input line i; CRLF and LF both end a line); JSONL: one object per line
 * with a string `field`, blank lines skipped. Errors name file:line.
 */
export async function readTexts(path: string, opts: { field?: string; format: TextFormat }): Promise<TextInput> {
  const texts: string[] = [];
  const lines: number[] = [];
  const rows: string[] | undefined = opts.format === 'jsonl' ? [] : undefined;
  for await (const row of readTextRows(path, opts.format, [opts.field ?? 'text'])) {
    texts.push(row.values[0]!);
    lines.push(row.line);
    if (rows && row.raw !== undefined) rows.push(row.raw);
  }
  return { texts, rows, source: path === STDIO ? 'stdin' : path, lines };
}

export type EmbeddingFormat = 'jsonl' | 'npy';

/** A pipe, device or descriptor link (written through, util/atomic.ts), not a file. */
function isThrough(path: string): boolean {
  try {
    return writeModeFor(path).kind === 'through';
  } catch {
    return false; // checkOutput says what is wrong with it
  }
}

/** The output format of `encode` from the output name (a stream, e.g. /dev/stdout: JSONL); other extensions are refused. */
export function embeddingOutputFormat(path: string): EmbeddingFormat {
  if (path === STDIO) return 'jsonl';
  const ext = extname(path).toLowerCase();
  if (JSONL_EXTENSIONS.includes(ext)) return 'jsonl';
  if (ext === '.npy') return 'npy';
  if (isThrough(path)) return 'jsonl'; // /dev/stdout, a FIFO, >(gzip): a stream, as `-` is
  throw new UsageError(
    `--output ${path}: unknown extension${ext ? ` ${ext}` : ''}; use .jsonl (one {"text", "embedding"} per line), ` +
      '.npy (float32 matrix) or - (JSONL on stdout)',
  );
}

/**
 * One JSONL line per text: the input row's members (JSONL input) or {"text"}, plus "embedding" with
 * each value as the shortest text that reads back as the same float32. The row's members are carried
 * through as written (numbers such as 12345678901234567891, 1.0 or 1e400, strings with their escapes),
 * in their order, with the whitespace between tokens removed; a "text" member is added when the row
 * has none (the text came from another --field), and an "embedding" member of the row is replaced.
 */
export function embeddingLine(text: string, row: string | undefined, vector: ArrayLike<number>): string {
  const members = row === undefined ? [] : objectMembers(row);
  const parts = members.filter((m) => m.key !== 'embedding').map((m) => m.text);
  if (!members.some((m) => m.key === 'text')) parts.push(`"text":${JSON.stringify(text)}`);
  parts.push(`"embedding":${float32ArrayJson(vector)}`);
  return `{${parts.join(',')}}\n`;
}

/** `json` (valid JSON) without the whitespace outside its strings. */
function withoutSpace(json: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      i = stringEnd(json, i);
    } else if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      out += json.slice(from, i);
      from = i + 1;
    }
  }
  return out + json.slice(from);
}

/** The index of the quote that closes the JSON string opening at `start`. */
function stringEnd(json: string, start: number): number {
  let i = start + 1;
  while (json.charCodeAt(i) !== 0x22) i += json.charCodeAt(i) === 0x5c ? 2 : 1;
  return i;
}

/** The top-level members of a JSON object's text (valid JSON): each one's key and its text, as written less whitespace. */
function objectMembers(json: string): { key: string; text: string }[] {
  const s = withoutSpace(json);
  const members: { key: string; text: string }[] = [];
  let depth = 0;
  let from = 1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') i = stringEnd(s, i);
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    if ((c === ',' && depth === 1) || (c === '}' && depth === 0)) {
      if (i > from) members.push({ key: JSON.parse(s.slice(from, stringEnd(s, from) + 1)) as string, text: s.slice(from, i) });
      from = i + 1;
    }
  }
  return members;
}

/**
 * Refuses embeddings with a NaN or infinite value (an overflow in the model) before anything is
 * written, naming the input line of the first.
 */
function checkFinite(input: TextInput, emb: Embeddings, output: string): void {
  for (let row = 0; row < emb.rows; row++) {
    const bad = nonFiniteValue(emb.data, row, emb.dim);
    if (bad === null) continue;
    const line = input.lines?.[row];
    const where = input.source !== undefined && line !== undefined ? `${input.source}:${line}` : `text ${row + 1}`;
    throw new Error(`${where}: its embedding has a non-finite value (${bad}); nothing was written to ${output === STDIO ? 'stdout' : output}`);
  }
}

/**
 * Writes the embeddings of `input` through `w` (opened on `output` before the work, so that an output
 * that cannot be written fails first) in `format`, and commits; on failure the writer is aborted.
 */
export async function writeEmbeddings(w: OutputWriter, output: string, format: EmbeddingFormat, input: TextInput, emb: Embeddings): Promise<void> {
  try {
    checkFinite(input, emb, output);
    if (format === 'npy') {
      for (const part of npyBytes(emb.data, emb.rows, emb.dim)) await w.write(part);
    } else {
      let buf = '';
      for (let i = 0; i < input.texts.length; i++) {
        buf += embeddingLine(input.texts[i]!, input.rows?.[i], emb.row(i));
        if (buf.length >= 1 << 20) {
          await w.write(buf);
          buf = '';
        }
      }
      if (buf) await w.write(buf);
    }
    await w.commit();
  } catch (err) {
    w.abort();
    throw err;
  }
}
