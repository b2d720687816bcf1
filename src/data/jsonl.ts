// Streaming line and JSONL readers with bounded memory: the file is read in chunks, split on '\n'
// at the byte level (so a multi-byte UTF-8 character split across chunks is never corrupted), and
// each line is decoded on its own. Errors name `file:line`. Shared by eval, mining, combine and the
// training data loader.
import { isUtf8 } from 'node:buffer';
import { createReadStream, fstatSync } from 'node:fs';
import { readFailure } from '../util/fs-error.js';
import { checkOptions, checkPathArg, optionKeys } from '../util/options.js';

/** An error about one line of an input file; `message` starts with `file:line:`. */
export class LineError extends Error {
  override name = 'LineError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
  }
}

export interface LineReadOptions {
  /** Longest line accepted, in bytes (default 64 MiB): a bound on memory for a file without newlines. */
  maxLineBytes?: number;
  /** Read chunk size in bytes (default 1 MiB). */
  chunkBytes?: number;
  /**
   * Told once, when reading ends, when lines had bytes that are not UTF-8 (read as U+FFFD): the
   * message names the file, how many lines and the first. Default: a line on stderr.
   */
  onInvalidUtf8?: (message: string) => void;
  /**
   * A line longer than maxLineBytes is yielded with `tooLong` (its text empty, its bytes dropped as
   * they are read) instead of ending the read with a LineError: for readers that can skip bad lines.
   */
  yieldTooLong?: boolean;
  /** How errors and warnings name the file (default: `path`, or stdin for `-`). */
  name?: string;
}

/** The warning about lines with invalid UTF-8 bytes (null when there were none). */
export function invalidUtf8Message(file: string, lines: number, first: number): string | null {
  if (lines === 0) return null;
  return `${file}: ${lines} line${lines === 1 ? ' has' : 's have'} bytes that are not UTF-8, read as U+FFFD (the first: ${file}:${first})`;
}

export interface TextLine {
  /** 1-based line number in the file. */
  line: number;
  /** The line without its '\n' (and without a trailing '\r'). */
  text: string;
  /** Bytes of the line in the file including its terminator: lets callers measure progress. */
  bytes: number;
  /** The line was longer than maxLineBytes and was not kept (only with yieldTooLong). */
  tooLong?: boolean;
}

const NEWLINE = 0x0a;

/** The longest line readLines accepts unless told otherwise: a bound on memory for a file without newlines. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** Whether standard input is a folder (`< dir`), which Node reads as empty. */
export function stdinIsFolder(): boolean {
  try {
    return fstatSync(0).isDirectory();
  } catch {
    return false; // no stdin at all (`<&-`): the stream says so when read
  }
}

/**
 * The start of a file that cannot be UTF-8 text: a compressed file's magic bytes, or UTF-16's byte-order
 * mark (bytes no UTF-8 text begins with; bzip2's letters only with the block magic after them). Said as
 * what the file is and what to do: read as text, it failed at its first line as invalid JSON, or was
 * embedded as garbage with a warning.
 */
function notText(head: Buffer): string | null {
  const starts = (bytes: number[]): boolean => head.length >= bytes.length && bytes.every((b, i) => head[i] === b);
  const compressed: [string, number[], string][] = [
    ['gzip', [0x1f, 0x8b], 'gunzip -k'],
    ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'unxz -k'],
    ['zstd', [0x28, 0xb5, 0x2f, 0xfd], 'unzstd'],
    ['bzip2', [0x42, 0x5a, 0x68], 'bunzip2 -k'],
    ['zip', [0x50, 0x4b, 0x03, 0x04], 'unzip'],
  ];
  for (const [kind, magic, tool] of compressed) {
    if (kind === 'bzip2' && !(starts(magic) && /^BZh[1-9]1AY&SY/.test(head.toString('latin1', 0, 10)))) continue;
    if (starts(magic)) return `${kind}-compressed data, not text: decompress it first (e.g. ${tool} FILE)`;
  }
  if (starts([0xff, 0xfe]) || starts([0xfe, 0xff])) {
    return 'UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8: convert it first (iconv -f UTF-16 -t UTF-8)';
  }
  return null;
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * The text of a line's bytes as readLines gives it (without its '\n'): UTF-8 (an invalid byte is
 * U+FFFD), a trailing '\r' dropped, and the file's first line without its BOM.
 */
export function lineText(buf: Buffer, firstLine: boolean): string {
  let text = buf.toString('utf8');
  if (firstLine && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.endsWith('\r')) text = text.slice(0, -1);
  return text;
}

/**
 * Yields every line of a UTF-8 text file (a leading BOM is dropped), including blank ones. The file
 * `-` is standard input (named "stdin" in errors).
 */
export async function* readLines(path: string, opts: LineReadOptions = {}): AsyncGenerator<TextLine> {
  const maxLine = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const file = opts.name ?? (path === '-' ? 'stdin' : path);
  // a folder redirected to stdin (`< dir`) reads as empty: said, like a folder named as the input
  if (path === '-' && stdinIsFolder()) throw readFailure(file, Object.assign(new Error('EISDIR'), { code: 'EISDIR' }));
  const stream = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: opts.chunkBytes ?? 1024 * 1024 });
  let pending: Buffer[] = []; // pieces of the current, unfinished line
  let pendingBytes = 0;
  let dropped = 0; // bytes of the current line not kept: it is too long (yieldTooLong)
  let lineNo = 0;
  let invalid = 0;
  let firstInvalid = 0;
  const decode = (buf: Buffer): string => {
    const text = lineText(buf, lineNo === 1);
    // U+FFFD in the text is a replaced byte unless the file holds that character itself
    if (text.includes('\uFFFD') && !isUtf8(buf) && invalid++ === 0) firstInvalid = lineNo;
    return text;
  };
  let first = true;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (first) {
        first = false;
        const not = notText(chunk);
        if (not) throw new LineError(file, 1, not);
      }
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(NEWLINE, start);
        if (nl < 0) break;
        lineNo++;
        const piece = chunk.subarray(start, nl);
        start = nl + 1;
        if (dropped > 0 || pendingBytes + piece.length > maxLine) {
          const bytes = dropped + pendingBytes + piece.length + 1;
          if (!opts.yieldTooLong) throw new LineError(file, lineNo, `line longer than ${maxLine} bytes`);
          pending = [];
          pendingBytes = 0;
          dropped = 0;
          yield { line: lineNo, text: '', bytes, tooLong: true };
          continue;
        }
        const whole = pendingBytes ? Buffer.concat([...pending, piece]) : piece;
        pending = [];
        pendingBytes = 0;
        yield { line: lineNo, text: decode(whole), bytes: whole.length + 1 };
      }
      if (start < chunk.length) {
        if (dropped > 0) {
          dropped += chunk.length - start;
          continue;
        }
        pending.push(chunk.subarray(start));
        pendingBytes += chunk.length - start;
        if (pendingBytes > maxLine) {
          if (!opts.yieldTooLong) throw new LineError(file, lineNo + 1, `line longer than ${maxLine} bytes`);
          dropped = pendingBytes; // the rest of the line is dropped as it comes, not held
          pending = [];
          pendingBytes = 0;
        }
      }
    }
    if (dropped > 0) {
      lineNo++;
      yield { line: lineNo, text: '', bytes: dropped, tooLong: true };
    } else if (pendingBytes > 0) {
      const whole = Buffer.concat(pending);
      // a file of a BOM alone holds no line, as an empty file holds none
      if (lineNo > 0 || !whole.equals(UTF8_BOM)) {
        lineNo++;
        yield { line: lineNo, text: decode(whole), bytes: whole.length };
      }
    }
  } catch (err) {
    if (err instanceof LineError) throw err;
    throw readFailure(file, err);
  } finally {
    stream.destroy();
    const warning = invalidUtf8Message(file, invalid, firstInvalid);
    if (warning) (opts.onInvalidUtf8 ?? ((m: string) => process.stderr.write(`llama2-embedding: ${m}\n`)))(warning);
  }
}

export interface JsonLine<T = unknown> {
  /** 1-based line number in the file. */
  line: number;
  value: T;
  /** The line's text as read (useful to copy it through unchanged). */
  text: string;
  bytes: number;
}

/** Yields the parsed value of every non-blank line; a line that is not JSON is a LineError. */
const LINE_READ_OPTIONS = optionKeys<LineReadOptions>({ maxLineBytes: true, chunkBytes: true, onInvalidUtf8: true, yieldTooLong: true, name: true });

export async function* readJsonl(file: string, opts: LineReadOptions = {}): AsyncGenerator<JsonLine> {
  checkPathArg('readJsonl', 'file', file, 'file');
  checkOptions('readJsonl', opts, LINE_READ_OPTIONS);
  for await (const { line, text, bytes } of readLines(file, opts)) {
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      // the parser quotes the line: its control characters escaped, so none reaches the terminal raw
      throw new LineError(file, line, invalidJson(err));
    }
    yield { line, value, text, bytes };
  }
}

/**
 * `text` with C0 and C1 control characters (an ESC, a gzip header's bytes) and invisible ones (a byte
 * order mark inside a file, zero-width spaces, line separators) written as \u escapes.
 */
function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The reason a line is not JSON, from JSON.parse's error, its quote of the line escaped (escapeControls). */
export function invalidJson(err: unknown): string {
  return `invalid JSON (${escapeControls(err instanceof Error ? err.message : String(err))})`;
}

/** A parsed JSONL training/test row: `{"query": str, "pos": [str], "neg": [str]}`. */
export interface PairRow {
  query: string;
  pos: string[];
  neg: string[];
}

/**
 * Checks that `value` is a pair row; returns the reason it is not, or null when it is.
 * Extra keys are allowed (they are carried along by tools that copy lines through).
 */
export function pairRowProblem(value: unknown): string | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'expected a JSON object';
  const v = value as Record<string, unknown>;
  if (typeof v['query'] !== 'string') return v['query'] === undefined ? 'missing "query"' : '"query" must be a string';
  for (const key of ['pos', 'neg'] as const) {
    const list = v[key];
    if (list === undefined) return `missing "${key}"`;
    if (!Array.isArray(list)) return `"${key}" must be an array of strings`;
    const bad = list.findIndex((s) => typeof s !== 'string');
    if (bad >= 0) return `"${key}"[${bad}] must be a string`;
  }
  return null;
}

/** Yields validated pair rows; the first invalid line is a LineError naming the field. */
export async function* readPairRows(file: string, opts: LineReadOptions = {}): AsyncGenerator<JsonLine<PairRow>> {
  checkPathArg('readPairRows', 'file', file, 'file');
  for await (const row of readJsonl(file, opts)) {
    const problem = pairRowProblem(row.value);
    if (problem) throw new LineError(file, row.line, problem);
    yield row as JsonLine<PairRow>;
  }
}
