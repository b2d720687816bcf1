// One reader of text inputs (src/data/texts.ts) for encode and mine: the same file reads the same way
// and fails with the same message in both; mine drops blank and repeated texts itself.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTexts } from '../src/cli/io.js';
import { readTextRows, type TextRow } from '../src/data/texts.js';
import { readCorpus, readCorpusAs } from '../src/mine/corpus.js';
import { makeTempDir } from './helpers/tinyModel.js';


async function rows(path: string, format: 'text' | 'jsonl', fields?: string[]): Promise<TextRow[]> {
  const out: TextRow[] = [];
  for await (const r of readTextRows(path, format, fields)) out.push(r);
  return out;
}

describe('text inputs', () => {
  it('plain text: every line a row, blank lines too; mine then drops blanks and repeats', async () => {
    const f = join(makeTempDir(), 'in.txt');
    writeFileSync(f, 'a\r\n\nb\n  \na\n');
    expect((await rows(f, 'text')).map((r) => [r.line, r.values])).toEqual([[1, ['a']], [2, ['']], [3, ['b']], [4, ['  ']], [5, ['a']]]);
    expect((await readTexts(f, { format: 'text' })).texts).toEqual(['a', '', 'b', '  ', 'a']);
    expect(await readCorpus(f)).toEqual({ texts: ['a', 'b'], groups: [], rows: 3, source: f, lines: [1, 3] });
  });

  it('JSONL: blank lines skipped; several fields may be missing, one field must be there', async () => {
    const f = join(makeTempDir(), 'in.jsonl');
    writeFileSync(f, '{"en":"x","ms":"y","id":1}\n\n{"en":"z"}\n');
    expect(await rows(f, 'jsonl', ['en', 'ms'])).toEqual([
      { line: 1, values: ['x', 'y'], record: { en: 'x', ms: 'y', id: 1 }, raw: '{"en":"x","ms":"y","id":1}' },
      { line: 3, values: ['z', undefined], record: { en: 'z' }, raw: '{"en":"z"}' },
    ]);
    expect(await readCorpus(f, ['en', 'ms'])).toEqual({ texts: ['x', 'y', 'z'], groups: [[0, 1]], rows: 2, source: f, lines: [1, 1, 3] });
    await expect(rows(f, 'jsonl', ['ms'])).rejects.toThrow(`${f}:3: expected a JSON object with a string "ms" field`);
  });

  it('encode and mine refuse a bad line with the same words', async () => {
    const dir = makeTempDir();
    const cases: [string, string][] = [
      ['{"text": 5}', 'expected a JSON object with a string "text" field'],
      ['[1]', 'expected a JSON object with a string "text" field'],
      ['{"text": "a"', 'not valid JSON'],
    ];
    for (const [i, [line, words]] of cases.entries()) {
      const f = join(dir, `bad${i}.jsonl`);
      writeFileSync(f, `{"text":"ok"}\n${line}\n`);
      const encodeErr = await readTexts(f, { format: 'jsonl' }).then(() => null, (e: Error) => e.message);
      // (as `l2e mine` reads it: its hints name the CLI's --format; the library's readCorpus names its argument)
      const mineErr = await readCorpusAs(f, ['text'], undefined, '--format').then(() => null, (e: Error) => e.message);
      expect(encodeErr).toContain(`${f}:2: ${words}`);
      expect(mineErr).toBe(encodeErr);
    }
    const multi = join(dir, 'multi.jsonl');
    writeFileSync(multi, '{"a":"x","b":3}\n');
    await expect(readCorpus(multi, ['a', 'b'])).rejects.toThrow(`${multi}:1: "b" must be a string`);
    writeFileSync(multi, '[]\n');
    await expect(readCorpus(multi, ['a', 'b'])).rejects.toThrow(`${multi}:1: expected a JSON object`);
  });
});
