// Outputs are checked before any work: an existing file is replaced only with --overwrite, an input
// never (the same file through a link, too), and a missing folder, a folder as the output or a
// dangling link are reported up front. `-`, pipes and devices are written through, never refused.
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkOutput } from '../src/util/output.js';
import { mineToFile } from '../src/mine/run.js';
import { combineFiles } from '../src/data/combine.js';
import { loadVectorTable } from '../src/eval/vectors.js';
import { tableSource } from '../src/eval/source.js';
import { l2e } from './helpers/cli.js';
import { hasTinyMha, skipNote } from './helpers/fixture.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const firstLine = (s: string): string => s.split('\n')[0]!;

describe('checkOutput', () => {
  it('refuses an existing file without overwrite, an input always, and names flag and files', () => {
    const dir = makeTempDir();
    const keep = join(dir, 'keep.jsonl');
    writeFileSync(keep, 'precious\n');
    expect(() => checkOutput(keep)).toThrow(`--output ${keep} already exists (pass --overwrite to replace it)`);
    expect(() => checkOutput(keep, { name: 'output', overwriteName: 'overwrite: true' })).toThrow(
      `output ${keep} already exists (pass overwrite: true to replace it)`,
    );
    expect(() => checkOutput(keep, { overwrite: true })).not.toThrow();
    const input = [{ name: '--input', path: keep }];
    expect(() => checkOutput(keep, { overwrite: true, inputs: input })).toThrow(`--output ${keep} is also an input: --input ${keep} is the same file`);
    // through a link, either way round
    const link = join(dir, 'alink.jsonl');
    symlinkSync('keep.jsonl', link);
    expect(() => checkOutput(keep, { overwrite: true, inputs: [{ name: 'the input', path: link }] })).toThrow(
      `--output ${keep} is also an input: the input ${link} is the same file`,
    );
    expect(() => checkOutput(link, { overwrite: true, inputs: [{ name: 'the input', path: keep }] })).toThrow(
      `--output ${link} is also an input: the input ${keep} is the same file`,
    );
    // neither exists yet: the same name is the same file
    const fresh = join(dir, 'fresh.jsonl');
    expect(() => checkOutput(fresh, { inputs: [{ name: '--input', path: fresh }] })).toThrow(`--output ${fresh} is also an input: --input ${fresh} is the same file`);
    expect(readFileSync(keep, 'utf8')).toBe('precious\n');
  });

  it('reports a missing folder, a folder, a dangling link and an empty name', () => {
    const dir = makeTempDir();
    expect(() => checkOutput(join(dir, 'nodir', 'x.npy'))).toThrow(`--output ${join(dir, 'nodir', 'x.npy')}: the folder ${join(dir, 'nodir')} does not exist`);
    mkdirSync(join(dir, 'sub'));
    expect(() => checkOutput(join(dir, 'sub'))).toThrow(`--output ${join(dir, 'sub')} is a folder: give a file name`);
    // a name ending in / is a folder's, whether or not one is there (writing made the file without the /)
    for (const name of [join(dir, 'sub') + '/', join(dir, 'new.jsonl') + '/'])
      expect(() => checkOutput(name, { name: '--json' })).toThrow(`--json ${name} ends in /, as a folder's name does: give a file name`);
    writeFileSync(join(dir, 'file'), '');
    expect(() => checkOutput(join(dir, 'file', 'x.jsonl'))).toThrow(`--output ${join(dir, 'file', 'x.jsonl')}: ${join(dir, 'file')} is not a folder`);
    symlinkSync('nonexist-dir/x.jsonl', join(dir, 'dangling.jsonl'));
    expect(() => checkOutput(join(dir, 'dangling.jsonl'))).toThrow(
      `--output ${join(dir, 'dangling.jsonl')}: the folder ${join(dir, 'nonexist-dir')} does not exist`,
    );
    expect(() => checkOutput('', { name: 'output' })).toThrow('output is empty: give a file name, or - for stdout');
    expect(() => checkOutput(join(dir, 'new.jsonl'))).not.toThrow();
  });

  it('never refuses -, /dev/stdout, a device or a FIFO', () => {
    const dir = makeTempDir();
    expect(() => checkOutput('-', { inputs: [{ name: '--input', path: '-' }] })).not.toThrow();
    expect(() => checkOutput('/dev/null')).not.toThrow();
    if (process.platform === 'linux') expect(() => checkOutput('/dev/stdout')).not.toThrow();
    const fifo = join(dir, 'pipe');
    if (spawnSync('mkfifo', [fifo]).status === 0) expect(() => checkOutput(fifo, { inputs: [{ name: '--input', path: fifo }] })).not.toThrow();
  });
});

describe('encode checks its output before loading the model', () => {
  it('refuses an existing output, the input itself, a missing folder and a folder', async () => {
    const dir = makeTempDir();
    const input = join(dir, 'a.txt');
    writeFileSync(input, 'satu\n');
    const keep = join(dir, 'keep.jsonl');
    writeFileSync(keep, 'precious\n');
    const encode = (...rest: string[]) => l2e('encode', '--model', join(dir, 'no-such-model'), ...rest);
    const r = await encode('--input', input, '--output', keep);
    expect([r.code, firstLine(r.err)]).toEqual([1, `l2e encode: error: --output ${keep} already exists (pass --overwrite to replace it)`]);
    const self = await encode('--input', keep, '--output', keep, '--overwrite');
    expect([self.code, firstLine(self.err)]).toEqual([1, `l2e encode: error: --output ${keep} is also an input: --input ${keep} is the same file`]);
    expect(readFileSync(keep, 'utf8')).toBe('precious\n');
    const npy = join(dir, 'nodir', 'x.npy');
    const nodir = await encode('--input', input, '--output', npy);
    expect([nodir.code, firstLine(nodir.err)]).toEqual([1, `l2e encode: error: --output ${npy}: the folder ${join(dir, 'nodir')} does not exist`]);
    mkdirSync(join(dir, 'out.jsonl'));
    const folder = await encode('--input', input, '--output', join(dir, 'out.jsonl'));
    expect(firstLine(folder.err)).toBe(`l2e encode: error: --output ${join(dir, 'out.jsonl')} is a folder: give a file name`);
    const slash = await encode('--input', input, '--output', join(dir, 'vectors.jsonl') + '/');
    expect([slash.code, firstLine(slash.err)]).toEqual([1, `l2e encode: error: --output ${join(dir, 'vectors.jsonl')}/ ends in /, as a folder's name does: give a file name`]);
    expect(existsSync(join(dir, 'vectors.jsonl'))).toBe(false);
    // with --overwrite the check passes and the missing model is what fails
    const over = await encode('--input', input, '--output', keep, '--overwrite');
    expect(over.code).toBe(1);
    expect(over.err).not.toContain('already exists');
    expect(readFileSync(keep, 'utf8')).toBe('precious\n');
  });

  it.skipIf(!hasTinyMha)(`--overwrite replaces the file ${hasTinyMha ? '' : skipNote('the shared tokenizer')}`, async () => {
    const dir = makeTempDir();
    const model = writeTinyModel(join(dir, 'model')).dir;
    const input = join(dir, 'a.txt');
    writeFileSync(input, 'satu\n');
    const keep = join(dir, 'keep.npy');
    writeFileSync(keep, 'precious\n');
    const r = await l2e('encode', '--model', model, '--input', input, '--output', keep, '--overwrite');
    expect(r.code).toBe(0);
    expect(r.err).toContain(`encoded 1 text (16 dims) → ${keep}`);
    expect(readFileSync(keep).subarray(1, 6).toString()).toBe('NUMPY');
  });
});

describe('mine checks its output before embedding', () => {
  it('refuses the corpus, the embeddings and an existing file; mineToFile the same', async () => {
    const dir = makeTempDir();
    const corpus = join(dir, 'c.jsonl');
    writeFileSync(corpus, '{"text": "satu"}\n{"text": "dua"}\n');
    const vectors = join(dir, 'v.jsonl');
    writeFileSync(vectors, '{"text": "satu", "embedding": [1, 0]}\n{"text": "dua", "embedding": [0, 1]}\n');
    const mine = (...rest: string[]) => l2e('mine', '--embeddings', vectors, '--input', corpus, '--pos-threshold', '0.5', '--neg-threshold', '1', ...rest);
    const self = await mine('--output', corpus, '--overwrite');
    expect([self.code, firstLine(self.err)]).toEqual([1, `l2e mine: error: --output ${corpus} is also an input: --input ${corpus} is the same file`]);
    const emb = await mine('--output', vectors, '--overwrite');
    expect(firstLine(emb.err)).toBe(`l2e mine: error: --output ${vectors} is also an input: --embeddings ${vectors} is the same file`);
    const nodir = await mine('--output', join(dir, 'nodir', 'p.jsonl'));
    expect(firstLine(nodir.err)).toBe(`l2e mine: error: --output ${join(dir, 'nodir', 'p.jsonl')}: the folder ${join(dir, 'nodir')} does not exist`);
    expect(nodir.err).not.toContain('embed'); // no progress: nothing was embedded
    const pairs = join(dir, 'p.jsonl');
    expect((await mine('--output', pairs)).code).toBe(0);
    const again = await mine('--output', pairs);
    expect(firstLine(again.err)).toBe(`l2e mine: error: --output ${pairs} already exists (pass --overwrite to replace it)`);
    expect((await mine('--output', pairs, '--overwrite')).code).toBe(0);
    expect(readFileSync(corpus, 'utf8')).toBe('{"text": "satu"}\n{"text": "dua"}\n');
    const source = tableSource(await loadVectorTable(vectors));
    const opts = { input: corpus, posThreshold: 0.5, negThreshold: 1 };
    await expect(mineToFile(source, { ...opts, output: pairs })).rejects.toThrow(`output ${pairs} already exists (pass overwrite: true to replace it)`);
    await expect(mineToFile(source, { ...opts, output: corpus, overwrite: true })).rejects.toThrow(`output ${corpus} is also an input: input ${corpus} is the same file`);
    expect((await mineToFile(source, { ...opts, output: pairs, overwrite: true })).texts).toBe(2);
  });
});

describe('combine never replaces an input, even through a link', () => {
  it('refuses output = input through a symbolic link either way, and an existing file without --overwrite', async () => {
    const dir = makeTempDir();
    const row = '{"query": "q", "pos": ["p"], "neg": ["n"]}\n';
    const a = join(dir, 'a.jsonl');
    const b = join(dir, 'b.jsonl');
    writeFileSync(a, row);
    writeFileSync(b, row);
    const alink = join(dir, 'alink.jsonl');
    symlinkSync('a.jsonl', alink);
    const viaLink = await l2e('combine', alink, b, '--output', a, '--overwrite');
    expect([viaLink.code, viaLink.err]).toEqual([1, `l2e combine: error: --output ${a} is also an input: the input ${alink} is the same file\n`]);
    const toLink = await l2e('combine', a, b, '--output', alink, '--overwrite');
    expect(toLink.err).toBe(`l2e combine: error: --output ${alink} is also an input: the input ${a} is the same file\n`);
    expect(readFileSync(a, 'utf8')).toBe(row);
    const all = join(dir, 'all.jsonl');
    writeFileSync(all, 'precious\n');
    const exists = await l2e('combine', a, b, '--output', all);
    expect(exists.err).toBe(`l2e combine: error: --output ${all} already exists (pass --overwrite to replace it)\n`);
    expect((await l2e('combine', a, b, '--output', all, '--overwrite')).code).toBe(0);
    expect(readFileSync(all, 'utf8')).toBe(row + row);
    await expect(combineFiles([alink], { output: a, overwrite: true })).rejects.toThrow(`output ${a} is also an input: the input ${alink} is the same file`);
    await expect(combineFiles([a], { output: all })).rejects.toThrow(`output ${all} already exists (pass overwrite: true to replace it)`);
    await expect(combineFiles([a], { output: '' })).rejects.toThrow('output is empty: give a file name, or - for stdout');
  });
});

describe('eval checks --json OUT before loading the model', () => {
  it('refuses a test file as OUT and an existing OUT without --overwrite', async () => {
    const dir = makeTempDir();
    const test = join(dir, 'test.jsonl');
    const t2 = join(dir, 't2.jsonl');
    const row = '{"query": "satu", "pos": ["dua"], "neg": ["tiga"]}\n';
    writeFileSync(test, row);
    writeFileSync(t2, row);
    const evaluate = (...rest: string[]) => l2e('eval', '--model', join(dir, 'no-such-model'), '--test', test, ...rest);
    const second = await evaluate('--json', t2);
    expect([second.code, firstLine(second.err)]).toEqual([1, `l2e eval: error: --json ${t2} already exists (pass --overwrite to replace it)`]);
    const self = await evaluate('--json', test, '--overwrite');
    expect(firstLine(self.err)).toBe(`l2e eval: error: --json ${test} is also an input: --test ${test} is the same file`);
    const nodir = await evaluate('--json', join(dir, 'nodir', 'm.json'));
    expect(firstLine(nodir.err)).toBe(`l2e eval: error: --json ${join(dir, 'nodir', 'm.json')}: the folder ${join(dir, 'nodir')} does not exist`);
    expect(readFileSync(t2, 'utf8')).toBe(row);
    const idle = await evaluate('--overwrite');
    expect([idle.code, firstLine(idle.err)]).toEqual([2, 'l2e eval: --overwrite replaces an existing --json OUT file; without one it would do nothing']);
  });
});
