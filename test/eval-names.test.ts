// `l2e eval` names each test file in the table and the JSON: its basename, and for files that share
// one, as many of their folders as tell them apart, so no result is dropped from the JSON.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniqueTestNames } from '../src/cli/eval.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir } from './helpers/tinyModel.js';

describe('eval test names', () => {
  it('are the basename, or the shortest tail of folders that tells files apart', () => {
    expect(uniqueTestNames(['a/test.jsonl', 'b.jsonl'])).toEqual(['test', 'b']);
    expect(uniqueTestNames(['d1/test.jsonl', 'd2/test.jsonl', 'other.jsonl'])).toEqual(['d1/test', 'd2/test', 'other']);
    expect(uniqueTestNames(['x/d/test.jsonl', 'y/d/test.jsonl'])).toEqual(['x/d/test', 'y/d/test']);
    expect(uniqueTestNames(['d1/test.jsonl', 'd1/test.jsonl', 'd2/test.jsonl'])).toEqual(['d1/test', 'd1/test (2)', 'd2/test']);
    expect(uniqueTestNames(['t.jsonl', 't.jsonl'])).toEqual(['t', 't (2)']);
  });

  it('two test.jsonl files in different folders are two rows and two JSON keys', async () => {
    const dir = makeTempDir();
    const rows = ['{"query": "satu", "pos": ["dua"], "neg": ["tiga"]}\n', '{"query": "satu", "pos": ["tiga"], "neg": ["dua"]}\n'];
    const tests = ['d1', 'd2'].map((d, i) => {
      mkdirSync(join(dir, d));
      writeFileSync(join(dir, d, 'test.jsonl'), rows[i]!);
      return join(dir, d, 'test.jsonl');
    });
    const vectors = join(dir, 'v.jsonl');
    writeFileSync(vectors, ['satu', 'dua', 'tiga'].map((t, i) => JSON.stringify({ text: t, embedding: [1, i] })).join('\n') + '\n');
    const out = join(dir, 'dup.json');
    const r = await l2e('eval', '--embeddings', vectors, '--test', ...tests, '--json', out);
    expect(r.code).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as Record<string, { 'positive score': number }>;
    expect(Object.keys(json)).toEqual(['d1/test', 'd2/test']);
    expect(json['d1/test']!['positive score']).not.toBe(json['d2/test']!['positive score']);
    expect(r.out.split('\n').slice(2, 4).map((l) => l.split(/\s+/)[0])).toEqual(['d1/test', 'd2/test']);
  });
});
