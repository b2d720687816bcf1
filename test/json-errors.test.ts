// Errors from whole-file JSON (config.json, tokenizer.json, a .json corpus or texts file, a
// safetensors index, trainer_state.json) say where the text went wrong as line and column, not as
// V8's character position (src/util/json.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCorpus } from '../src/mine/corpus.js';
import { parseConfig } from '../src/model/config.js';
import { jsonErrorMessage, parseJson } from '../src/util/json.js';
import { makeTempDir } from './helpers/tinyModel.js';

/** V8's own message for `text` (its words differ between Node versions; the position is what we change). */
const v8 = (text: string): string => {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`${text} parsed`);
};

describe('JSON parse errors', () => {
  it('a position becomes the line and column it falls on (1-based, UTF-16 units)', () => {
    const text = '{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n'; // the missing comma: "c" opens line 4 at column 3
    expect(v8(text)).toMatch(/at position 23\b/);
    const msg = jsonErrorMessage(new SyntaxError(v8(text)), text);
    expect(msg).toBe(v8(text).replace(/at position 23( \(line \d+ column \d+\))?/, 'at line 4, column 3'));
    expect(msg).not.toContain('position');
    // a character outside the BMP counts two, as V8 counts it
    const astral = '["😀"\n, 1 2]';
    expect(jsonErrorMessage(new SyntaxError(v8(astral)), astral)).toContain('at line 2, column 5');
    // newer V8 appends its own "(line L column C)": said once, our way
    expect(jsonErrorMessage(new SyntaxError('Bad control character in string literal in JSON at position 9 (line 2 column 7)'), 'ab\ncdefghijk')).toBe(
      'Bad control character in string literal in JSON at line 2, column 7',
    );
  });

  it('one line says only the column; messages without a position are left as they are', () => {
    expect(jsonErrorMessage(new SyntaxError(v8('[1,,2]')), '[1,,2]')).toBe(v8('[1,,2]').replace(/at position 3\b/, 'at column 4'));
    expect(v8('[1,\n')).not.toMatch(/position/);
    expect(jsonErrorMessage(new SyntaxError(v8('[1,\n')), '[1,\n')).toBe(v8('[1,\n'));
    expect(() => parseJson('{"a": 1}\n{"b": 2}')).toThrow(SyntaxError);
    expect(() => parseJson('{"a": 1}\n{"b": 2}')).toThrow(/at line 2, column 1$/);
    expect(parseJson(' [1, "x"]\n')).toEqual([1, 'x']);
  });

  it('config.json and a .json corpus name the file and the line', async () => {
    expect(() => parseConfig('{\n  "hidden_size": 64\n  "vocab_size": 10\n}', 'm/config.json')).toThrow(
      /^m\/config\.json: invalid JSON \(.* at line 3, column 3\)$/,
    );
    const dir = makeTempDir();
    const corpus = join(dir, 'pool.json');
    writeFileSync(corpus, '[\n  "satu",\n  "dua"\n  "tiga"\n]\n');
    await expect(readCorpus(corpus)).rejects.toThrow(new RegExp(`^${corpus.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .* at line 4, column 3$`));
    // the element that is not a string is named (the message said only what a corpus should be)
    writeFileSync(corpus, '["a",\n"b",\n 3]\n');
    await expect(readCorpus(corpus)).rejects.toThrow(
      new Error(`${corpus}: element [2] of the array is 3, not a string: expected a JSON array of strings or an object keyed by text`),
    );
    writeFileSync(corpus, '"a"\n');
    await expect(readCorpus(corpus)).rejects.toThrow(new Error(`${corpus}: expected a JSON array of strings or an object keyed by text, got the string "a"`));
  });
});
