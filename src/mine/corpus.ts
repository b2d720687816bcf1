// The corpus to mine: distinct stripped texts (the pool) and, for multi-field rows such as
// {"left": ..., "en": ..., "ms": ...}, the groups of texts that are versions of one another.
// Inputs: JSONL (a "text" field, or the fields named), plain text one per line, or a .json file
// holding an array of strings or an object whose keys are the texts (the shared eval pools). The
// format comes from the name (.jsonl / .ndjson, .txt / .text, .json) unless given; `-` is stdin.
import { extname } from 'node:path';
import { readTextRows, textFormatOf } from '../data/texts.js';
import { pyStrip } from '../eval/strip.js';
import { readLines } from '../data/jsonl.js';
import { parseJson } from '../util/json.js';
import { describeValue } from '../util/describe.js';
import type { TextLines } from '../model/text-error.js';

export interface Corpus extends TextLines {
  /** Distinct stripped non-empty texts, in order of first appearance. */
  texts: string[];
  /** For multi-field input: each row's versions as text indices (rows with fewer than 2 dropped). */
  groups: number[][];
  /** Input rows read. */
  rows: number;
  // (TextLines: the input's name and, for .txt and .jsonl, the line where each text first appears)
}

export type CorpusFormat = 'jsonl' | 'text' | 'json';

/** The corpus format of `file` by its name; undefined when the name does not say. */
export function corpusFormatOf(file: string): CorpusFormat | undefined {
  return extname(file).toLowerCase() === '.json' ? 'json' : textFormatOf(file);
}

export async function readCorpus(file: string, fields: string[] = ['text'], format?: CorpusFormat): Promise<Corpus> {
  if (typeof file !== 'string') throw new TypeError(`readCorpus: file must be a file name (or - for stdin), got ${describeValue(file)}`);
  if (!Array.isArray(fields) || !fields.every((f) => typeof f === 'string')) throw new TypeError(`readCorpus: fields must be an array of field names, got ${describeValue(fields)}`);
  if (format !== undefined && format !== 'jsonl' && format !== 'text' && format !== 'json') throw new TypeError(`readCorpus: format must be jsonl, text or json, got ${describeValue(format)}`);
  return readCorpusAs(file, fields, format, "readCorpus's format argument"); // (the CLI names its flag)
}

/** readCorpus, its hints naming `formatFlag` as the option that forces the format. */
export async function readCorpusAs(file: string, fields: string[], format: CorpusFormat | undefined, formatFlag: string): Promise<Corpus> {
  const fmt = format ?? corpusFormatOf(file);
  if (fmt === undefined) {
    throw new Error(`cannot tell the format of ${file === '-' ? 'stdin' : file} from its name: use .jsonl, .txt or .json, or give ${formatFlag} text|jsonl|json`);
  }
  if (fields.length === 0) fields = ['text'];
  const name = file === '-' ? 'stdin' : file;
  const index = new Map<string, number>();
  const texts: string[] = [];
  const lines: number[] = [];
  const groups: number[][] = [];
  const elements: number[] = [];
  const add = (s: string, line?: number, element?: number): number | undefined => {
    const t = pyStrip(s);
    if (t === '') return undefined;
    let i = index.get(t);
    if (i === undefined) {
      i = texts.length;
      index.set(t, i);
      texts.push(t);
      if (line !== undefined) lines.push(line);
      if (element !== undefined) elements.push(element);
    }
    return i;
  };
  let rows = 0;

  if (fmt === 'json') {
    let value: unknown;
    // read by the line reader, as .txt and .jsonl are: the same warning for bytes that are not UTF-8,
    // the same BOM, stdin and read errors (the file is held whole either way: no line bound)
    const lines: string[] = [];
    for await (const { text } of readLines(file, { maxLineBytes: Number.MAX_SAFE_INTEGER })) lines.push(text);
    const text = lines.join('\n'); // (a '\r' dropped from a line's end is whitespace to JSON)
    try {
      value = parseJson(text);
    } catch (err) {
      throw new Error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const list: unknown[] | null = Array.isArray(value) ? value : value && typeof value === 'object' ? Object.keys(value) : null;
    const expected = 'expected a JSON array of strings or an object keyed by text';
    if (!list) throw new Error(`${name}: ${expected}, got ${describeValue(value)}`);
    const bad = list.findIndex((s) => typeof s !== 'string');
    if (bad >= 0) throw new Error(`${name}: element [${bad}] of the array is ${describeValue(list[bad])}, not a string: ${expected}`);
    (list as string[]).forEach((s, i) => add(s, undefined, i));
    return { texts, groups, rows: list.length, source: name, elements: { of: Array.isArray(value) ? 'array' : 'object', at: elements } };
  }

  // the one reader of text inputs keeps a .txt's blank lines as empty texts: the corpus drops them,
  // and (in add) empty and repeated texts, itself
  const found = new Set<number>(); // the fields some row has
  for await (const { line, values } of readTextRows(file, fmt, fields, formatFlag)) {
    if (fmt === 'text' && values[0]!.trim() === '') continue;
    rows++;
    const ids: number[] = [];
    values.forEach((v, i) => {
      if (v !== undefined) found.add(i);
      const id = v === undefined ? undefined : add(v, line);
      if (id !== undefined && !ids.includes(id)) ids.push(id);
    });
    if (fields.length > 1 && ids.length > 1) groups.push(ids);
  }
  // a misspelt field among several is in no row: each row would quietly lack that version
  const missing = fmt === 'jsonl' && rows > 0 ? fields.filter((_, i) => !found.has(i)) : [];
  if (missing.length > 0) {
    const named = missing.map((f) => `"${f}"`).join(', ');
    throw new Error(`${name}: no row has the field${missing.length > 1 ? 's' : ''} ${named} (of ${fields.join(', ')})`);
  }
  return { texts, groups, rows, source: name, lines };
}
