// Text inputs and embedding outputs of the CLI. Formats are decided by the file name (or forced with
// --format), never guessed from the content: a .txt line that starts with `{` is still a text.
// `-` is standard input / standard output.
import { nonFiniteValue, type TextLines } from '../model/text-error.js';
import { extname } from 'node:path';
import { readTextRows, textFormatOf, type TextFormat } from '../data/texts.js';
import type { Embeddings } from '../model/embeddings.js';
import { float32ArrayJson } from '../util/float32-text.js';
import { npyHeader } from '../util/npy.js';
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

/** The format of input `path`: `forced` when given, else by extension; `-` and other names need --format. */
export function inputFormat(path: string, forced?: string): TextFormat {
  if (forced !== undefined) {
    if (forced !== 'text' && forced !== 'jsonl') throw new UsageError(`--format must be text or jsonl, got ${forced}`);
    return forced;
  }
  const byName = textFormatOf(path);
  if (byName !== undefined) return byName;
  if (path === STDIO) throw new UsageError('reading texts from stdin (-): give --format text or --format jsonl');
  throw new UsageError(
    `cannot tell the format of ${path} from its name: use .txt (one text per line) or .jsonl, or give --format text|jsonl`,
  );
}

/** `source`: the input's name in errors (`stdin` for `-`); `lines`: the line of each text. */
export interface TextInput extends TextLines {
  texts: string[];
  /** JSONL input: each row's JSON text as written, so that its other fields (an id, ...) are carried through exactly. */
  rows?: string[];
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
  if (textFormatOf(path) === 'jsonl') return 'jsonl';
  const ext = extname(path).toLowerCase();
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
 * Writes the embeddings of `input` through `w` (opened on `output` before the work, so that an output
 * that cannot be written fails first) in `format`, a part at a time in input order: the .npy header
 * first (its shape is the input's), then each part as it comes; `commit` ends the file. A row with a
 * NaN or infinite value (an overflow in the model) is refused, naming its input line. On failure the
 * writer is aborted: a file output is left as it was; stdout keeps the rows written before.
 */
export class EmbeddingsWriter {
  private written = 0;
  private begun = false;

  constructor(
    private readonly w: OutputWriter,
    private readonly output: string,
    private readonly format: EmbeddingFormat,
    private readonly input: TextInput,
    private readonly dim: number,
  ) {}

  /** The rows `emb` of texts[start…], which must follow the rows written so far. */
  async append(start: number, emb: Embeddings): Promise<void> {
    await this.guarded(async () => {
      if (start !== this.written || emb.dim !== this.dim || start + emb.rows > this.input.texts.length) {
        throw new Error(`embeddings writer: rows ${start}+${emb.rows} of width ${emb.dim} do not follow ${this.written} rows of width ${this.dim}`);
      }
      this.checkFinite(start, emb);
      if (this.format === 'npy') {
        if (!this.begun) await this.w.write(npyHeader('<f4', this.input.texts.length, this.dim));
        await this.w.write(new Uint8Array(emb.data.buffer, emb.data.byteOffset, emb.data.byteLength));
      } else {
        let buf = '';
        for (let i = 0; i < emb.rows; i++) {
          buf += embeddingLine(this.input.texts[start + i]!, this.input.rows?.[start + i], emb.row(i));
          if (buf.length >= 1 << 20) {
            await this.w.write(buf);
            buf = '';
          }
        }
        if (buf) await this.w.write(buf);
      }
      this.begun = true;
      this.written += emb.rows;
    });
  }

  /** Ends the output once every row is written. */
  async commit(): Promise<void> {
    await this.guarded(async () => {
      if (this.written !== this.input.texts.length) throw new Error(`embeddings writer: ${this.written} of ${this.input.texts.length} rows written`);
      if (this.format === 'npy' && !this.begun) await this.w.write(npyHeader('<f4', 0, this.dim));
      await this.w.commit();
    });
  }

  private async guarded(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.w.abort();
      throw err;
    }
  }

  private checkFinite(start: number, emb: Embeddings): void {
    for (let row = 0; row < emb.rows; row++) {
      const bad = nonFiniteValue(emb.data, row, emb.dim);
      if (bad === null) continue;
      const at = start + row;
      const line = this.input.lines?.[at];
      const where = this.input.source !== undefined && line !== undefined ? `${this.input.source}:${line}` : `text ${at + 1}`;
      const kept = this.output === STDIO && this.written > 0 ? `stdout has the ${this.written} rows before it` : `nothing was written to ${this.output === STDIO ? 'stdout' : this.output}`;
      throw new Error(`${where}: its embedding has a non-finite value (${bad}); ${kept}`);
    }
  }
}

/** Writes all of `emb` (the embeddings of `input`) through `w`, and commits: an EmbeddingsWriter's one part. */
export async function writeEmbeddings(w: OutputWriter, output: string, format: EmbeddingFormat, input: TextInput, emb: Embeddings): Promise<void> {
  const writer = new EmbeddingsWriter(w, output, format, input, emb.dim);
  await writer.append(0, emb);
  await writer.commit();
}
