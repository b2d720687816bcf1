// The one reader of text inputs (encode's texts, mine's and serve's corpora). The format is given,
// never guessed from the content. Plain text: every line is one row, a blank line an empty text (so row
// i is line i; CRLF and LF both end a line). JSONL: one object per line, blank lines skipped; its
// `fields` hold strings (with one field it must be there; with several a row may lack some).
// What a reader does with empty or repeated texts is its own business, done where it is used.
import { extname } from 'node:path';
import { LineError, readLines } from './jsonl.js';

export type TextFormat = 'text' | 'jsonl';

/** The text format `path`'s name says (.txt / .text, .jsonl / .ndjson); undefined when it says none. */
export function textFormatOf(path: string): TextFormat | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === '.txt' || ext === '.text') return 'text';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  return undefined;
}

export interface TextRow {
  /** 1-based line number. */
  line: number;
  /** One value per field (plain text: the line); undefined where a JSONL row lacks that field. */
  values: (string | undefined)[];
  /** JSONL: the row's object. */
  record?: Record<string, unknown>;
  /** JSONL: the row's JSON text as written, so that its other fields can be carried through exactly. */
  raw?: string;
}

/** The rows of `path` (`-`: stdin) in `format`; errors name file:line. */
/** `formatFlag`: how a hint names the option that forces the format (the CLI's --format, or serve's --corpus-format). */
export async function* readTextRows(path: string, format: TextFormat, fields: string[] = ['text'], formatFlag = '--format'): AsyncGenerator<TextRow> {
  const name = path === '-' ? 'stdin' : path;
  if (fields.length === 0) fields = ['text'];
  for await (const { line, text } of readLines(path)) {
    if (format === 'text') {
      yield { line, values: [text] };
      continue;
    }
    if (text.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      // a name that says plain text was read as JSONL only because the format was forced
      const hint =
        path === '-' ? `use ${formatFlag} text`
        : textFormatOf(path) === 'text' ? `drop ${formatFlag} jsonl (the name says plain text) or use ${formatFlag} text`
        : `use a .txt name or ${formatFlag} text`;
      throw new LineError(name, line, `not valid JSON (${(e as Error).message}); for plain texts ${hint}`);
    }
    const record = typeof obj === 'object' && obj !== null && !Array.isArray(obj) ? (obj as Record<string, unknown>) : undefined;
    const values = fields.map((f) => {
      const v = record?.[f];
      if (typeof v === 'string') return v;
      if (fields.length === 1) throw new LineError(name, line, `expected a JSON object with a string "${f}" field`);
      if (!record) throw new LineError(name, line, 'expected a JSON object');
      if (v === undefined || v === null) return undefined; // a version that this row lacks
      throw new LineError(name, line, `"${f}" must be a string`);
    });
    yield { line, values, record, raw: text };
  }
}
