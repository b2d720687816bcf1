// What the CLI says when a user gets something wrong: a short hint instead of the whole help, "did
// you mean" for typos, `l2e` alone prints help, no doubled prefixes, no temp-file names, skipped
// lines counted with their line numbers.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/cli/args.js';
import { closest, editDistance } from '../src/util/closest.js';
import { loadCommands } from '../src/cli/commands.js';
import { combineFiles } from '../src/data/combine.js';
import { openOutput, writeOutput } from '../src/util/output.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';
import { hasTinyMha, repoRoot, skipNote } from './helpers/fixture.js';


const row = (q: string): string => JSON.stringify({ query: q, pos: [`${q} pos`], neg: [`${q} neg`] });

describe('usage errors', () => {
  it('print the message, the usage synopsis and a hint, not the whole help', async () => {
    const r = await l2e('encode', '--model', 'm', '--input', 'in.txt', '--output', 'o.npy', '--device', 'tpu');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const lines = r.err.trimEnd().split('\n');
    expect(lines[0]).toBe('l2e encode: --device must be cpu or cuda, got tpu');
    expect(lines[1]).toMatch(/^Usage: l2e encode /);
    expect(lines[lines.length - 1]).toBe("Run 'l2e encode --help' for all options.");
    expect(r.err).not.toMatch(/Options:/);
  });

  it('--precision bf16 or int8 with --device cuda is a usage error, in every command that takes both', async () => {
    for (const cmd of [['encode', '--input', 'i.txt', '--output', 'o.npy'], ['eval', '--test', 't.jsonl'], ['mine', '--input', 'c.txt', '--output', 'o.jsonl', '--pos-threshold', '1', '--neg-threshold', '2']]) {
      const r = await l2e(cmd[0]!, '--model', 'm', ...cmd.slice(1), '--device', 'cuda', '--precision', 'int8');
      expect(r.code, cmd[0]).toBe(2);
      expect(r.err.split('\n')[0]).toBe(`l2e ${cmd[0]}: --precision int8 is for --device cpu (the CUDA backend runs its weights in bf16 already)`);
    }
  });

  it('an unknown option suggests the nearest one', async () => {
    const r = await l2e('encode', '--model', 'm', '--input', 'i', '--output', 'o.npy', '--bach-size', '4');
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('l2e encode: unknown option --bach-size (did you mean --batch-size?)');
    const far = await l2e('encode', '--zzzzzz');
    expect(far.err.split('\n')[0]).toBe('l2e encode: unknown option --zzzzzz');
  });

  it('an unknown command suggests the nearest one', async () => {
    const r = await l2e('encod');
    expect(r.code).toBe(2);
    expect(r.err).toBe('l2e: unknown command "encod" (did you mean "encode"?)\nRun \'l2e --help\' for the commands.\n');
    const far = await l2e('frobnicate');
    expect(far.err).toBe('l2e: unknown command "frobnicate"\nRun \'l2e --help\' for the commands.\n');
  });

  it('an empty value names the flag and nothing runs (train --output \'\' trained and saved nothing)', async () => {
    const dir = makeTempDir();
    const r = await l2e('train', '--model', join(dir, 'm'), '--data', join(dir, 'd.jsonl'), '--output', '');
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('l2e train: --output needs a value, got ""');
    const e = await l2e('encode', '--model', 'm', '--input=', '--output', 'o.npy');
    expect(e.err.split('\n')[0]).toBe('l2e encode: --input needs a value, got ""');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a value option followed by a flag says the value is missing (no folder named --max-steps)', async () => {
    const dir = makeTempDir();
    const r = await l2e('train', '--model', join(dir, 'm'), '--data', join(dir, 'd.jsonl'), '--output', '--max-steps', '1');
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('l2e train: --output needs a value, got --max-steps');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a stray argument is refused by the commands that take none, naming it', async () => {
    const dir = makeTempDir();
    const runs: [string[], string][] = [
      [['train', '--model', 'm', '--data', 'd.jsonl', '--output', join(dir, 'o'), 'extra'], 'l2e train: unexpected argument "extra"'],
      [['encode', '--model', 'm', '--input', 'a.txt', 'b.txt', '--output', 'o.npy'], 'l2e encode: unexpected argument "b.txt"'],
      [['demo', '--output', join(dir, 'demo'), 'extra'], 'l2e demo: unexpected argument "extra"'],
      [['tokenize', '--model', 'm', 'hello'], 'l2e tokenize: unexpected argument "hello"'],
      [['mine', '--model', 'm', '--input', 'c.txt', 'd.txt', '--output', 'o.jsonl'], 'l2e mine: unexpected argument "d.txt"'],
      [['serve', '--model', 'm', '--', 'x'], 'l2e serve: unexpected argument "x"'],
    ];
    for (const [args, first] of runs) {
      const r = await l2e(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.split('\n')[0]).toBe(first);
    }
    expect(readdirSync(dir)).toEqual([]);
    // combine, pull and eval take them: their inputs, the repo id, more test files
    expect((await l2e('pull', 'a/b', 'c/d')).err.split('\n')[0]).toBe('l2e pull: give one repo id, e.g. mesolitica/llama2-embedding-600m-8k');
  });

  it('a non-list option given twice is refused (the first value was silently dropped)', async () => {
    const r = await l2e('train', '--model', 'm', '--data', 'a.jsonl', '--data', 'b.jsonl', '--output', 'o');
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('l2e train: --data given twice');
  });

  it('closest() takes near misses and unique prefixes only', () => {
    expect(editDistance('bach-size', 'batch-size')).toBe(1);
    expect(editDistance('mien', 'mine')).toBe(1); // a transposition
    expect(closest('trian', ['train', 'tokenize'])).toBe('train');
    expect(closest('tok', ['train', 'tokenize'])).toBe('tokenize');
    expect(closest('xyz', ['train', 'tokenize'])).toBeUndefined();
    expect(() => parseArgs(['--shufle'], { shuffle: { kind: 'boolean', help: '' } })).toThrow('unknown option --shufle (did you mean --shuffle?)');
  });
});

describe('help', () => {
  it('`l2e` alone prints the command list and exits 0', async () => {
    const r = await l2e();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^l2e — train, run, evaluate and mine/);
    for (const c of await loadCommands()) expect(r.out).toContain(`  ${c.name} `);
  });

  it('`l2e --version` prints the package\'s version, and the command list says so', async () => {
    const r = await l2e('--version');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${(JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version}\n`);
    expect((await l2e()).out).toContain('\nl2e --version prints the version.\n');
  });

  it('a command\'s help lists --help with its options, aligned, and says how on/off options are turned off', async () => {
    const encode = (await l2e('encode', '--help')).out.split('\n');
    const at = (flag: string) => encode.find((l) => l.startsWith(`  ${flag} `))!;
    expect(at('--help').indexOf('show this help (also -h)')).toBe(at('--overwrite').indexOf('replace an existing'));
    expect(encode).toContain('On/off options also take --no-NAME, and --NAME=true|false.');
    expect((await l2e('tokenize', '--help')).out).not.toContain('On/off'); // it has none
  });

  it('--help wins over the rest of the line; `l2e --help encode` is encode\'s help; `--version extra` and `l2e ""` are refused', async () => {
    const help = (await l2e('encode', '--help')).out;
    for (const line of [['encode', '--help', '--bogus'], ['encode', '--model', 'x', '--model', 'y', '-h'], ['--help', 'encode']]) {
      const r = await l2e(...line);
      expect([r.code, r.out], line.join(' ')).toEqual([0, help]);
    }
    expect((await l2e('help', 'help')).out).toBe((await l2e()).out);
    const version = await l2e('--version', 'extra');
    expect([version.code, version.err]).toEqual([2, 'l2e: unexpected argument "extra" after --version\n']);
    const empty = await l2e('');
    expect([empty.code, empty.err.split('\n')[0]]).toEqual([2, 'l2e: unknown command ""']);
  });

  it('`l2e help COMMAND` prints that command\'s help', async () => {
    const r = await l2e('help', 'mine');
    expect(r.code).toBe(0);
    expect(r.out).toBe((await l2e('mine', '--help')).out);
    expect(r.out).toMatch(/^Usage: l2e mine /);
  });

  it('`l2e help NAME` of no command is the unknown-command error; a second name is refused', async () => {
    const r = await l2e('help', 'encod');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toBe('l2e: unknown command "encod" (did you mean "encode"?)\nRun \'l2e --help\' for the commands.\n');
    const far = await l2e('help', 'nonexist');
    expect(far.code).toBe(2);
    expect(far.err).toBe('l2e: unknown command "nonexist"\nRun \'l2e --help\' for the commands.\n');
    const two = await l2e('help', 'mine', 'encode');
    expect(two.code).toBe(2);
    expect(two.err).toBe('l2e help: unexpected argument "encode"\nUsage: l2e help [COMMAND]\n');
    expect((await l2e('help', '--help')).out).toBe((await l2e()).out);
  });
});

describe('error lines', () => {
  it('name the command once (no "l2e combine: error: combine: ...")', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, row('x') + '\n');
    const r = await l2e('combine', a, '--output', a);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`l2e combine: error: --output ${a} is also an input: the input ${a} is the same file\n`);
  });

  it('combine: --seed without --shuffle, and stdin twice, are usage errors (they would do nothing)', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, row('x') + '\n');
    const seed = await l2e('combine', a, '--output', join(dir, 'o.jsonl'), '--seed', '3');
    expect([seed.code, seed.err.split('\n')[0]]).toEqual([2, 'l2e combine: --seed orders the --shuffle; without --shuffle it would do nothing']);
    const twice = await l2e('combine', '-', '-', '--output', join(dir, 'o.jsonl'));
    expect([twice.code, twice.err.split('\n')[0]]).toEqual([2, 'l2e combine: stdin (-) can be read once: give it as one input']);
    expect(existsSync(join(dir, 'o.jsonl'))).toBe(false);
  });

  it('never name the temp file of an atomic write', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, row('x') + '\n');
    const out = join(dir, 'missing', 'all.jsonl');
    const r = await l2e('combine', a, '--output', out);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`l2e combine: error: --output ${out}: the folder ${join(dir, 'missing')} does not exist\n`);
    expect(r.err).not.toMatch(/\.tmp-/);
  });

  it('never name the bucket folder of an external shuffle', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, Array.from({ length: 4000 }, (_, i) => row(`baris ${i} `.repeat(10))).join('\n') + '\n'); // > 1 MiB / 3
    const out = join(dir, 'missing', 'all.jsonl');
    const r = await l2e('combine', a, '--output', out, '--shuffle', '--memory-mb', '1');
    expect(r.code).toBe(1);
    expect(r.err).toBe(`l2e combine: error: --output ${out}: the folder ${join(dir, 'missing')} does not exist\n`);
    expect(r.err).not.toContain('.l2e-combine-');
  });

  it('a bad line names the flag that drops it', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, [row('1'), '{"query": 1}'].join('\n') + '\n');
    const r = await l2e('combine', a, '--output', join(dir, 'all.jsonl'));
    expect(r.code).toBe(1);
    expect(r.err).toBe(`l2e combine: error: ${a}:2: "query" must be a string (use --skip-bad-lines to drop such lines)\n`);
  });

  it('skipped bad lines are reported at the end with their line numbers', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    const lines = [row('1'), '{bad', row('3'), '{"query": 1}', row('5'), 'x', 'y', 'z', 'w', row('10')];
    writeFileSync(a, lines.join('\n') + '\n');
    const b = join(dir, 'b.jsonl');
    writeFileSync(b, [row('b1'), 'oops'].join('\n') + '\n');
    mkdirSync(join(dir, 'out'));
    const r = await l2e('combine', a, b, '--output', join(dir, 'out', 'all.jsonl'), '--skip-bad-lines');
    expect(r.code).toBe(0);
    expect(r.err.trimEnd().split('\n').pop()).toBe(`skipped 7 bad lines (${a}:2,4,6,7,8,…; ${b}:2)`);
    expect(readdirSync(join(dir, 'out'))).toEqual(['all.jsonl']);
  });

  it('a count of one is singular: 1 row, 1 bad line, 1 input row, 1 distinct text', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, [row('1'), '{bad'].join('\n') + '\n');
    const out = join(dir, 'all.jsonl');
    const c = await l2e('combine', a, '--output', out, '--skip-bad-lines');
    expect(c.out.split('\n')).toEqual([`  ${a}           1 row  1 bad line dropped`, `  ${'total'.padEnd(a.length)}           1 row → ${out}`, '']);
    expect(c.err.trimEnd().split('\n').pop()).toBe(`skipped 1 bad line (${a}:2)`);
    const corpus = join(dir, 'one.txt');
    writeFileSync(corpus, 'satu\n');
    const vectors = join(dir, 'v.jsonl');
    writeFileSync(vectors, '{"text": "satu", "embedding": [1, 0]}\n');
    const m = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--output', join(dir, 'p.jsonl'), '--pos-threshold', '1', '--neg-threshold', '2');
    expect(m.out.split('\n')[0]).toBe(`1 input row, 1 distinct text → 0 rows written to ${join(dir, 'p.jsonl')}`);
  });

  it('an empty output name is refused with a clear message (library callers too)', async () => {
    const dir = makeTempDir();
    const a = join(dir, 'a.jsonl');
    writeFileSync(a, row('1') + '\n');
    await expect(combineFiles([a], { output: '' })).rejects.toThrow('output is empty: give a file name, or - for stdout');
    await expect(writeOutput('', 'x')).rejects.toThrow('output is empty: give a file name, or - for stdout');
    expect(() => openOutput('')).toThrow('output is empty: give a file name, or - for stdout');
  });
});

describe.skipIf(!hasTinyMha)(`an input that is a folder ${hasTinyMha ? '' : skipNote('the shared tokenizer')}`, () => {
  it('is named by every command that reads it ("<path>: it is a folder, not a file"), and nothing is written', async () => {
    const dir = makeTempDir();
    const model = writeTinyModel(join(dir, 'model')).dir;
    const folder = join(dir, 'data.jsonl');
    const pool = join(dir, 'pool.json'); // mine reads a .json pool whole
    mkdirSync(folder);
    mkdirSync(pool);
    const mine = ['--model', model, '--output', join(dir, 'm.jsonl'), '--pos-threshold', '0.1', '--neg-threshold', '0.5'];
    const runs: [string, string[]][] = [
      [folder, ['encode', '--model', model, '--input', folder, '--output', join(dir, 'o.jsonl')]],
      [folder, ['mine', ...mine, '--input', folder]],
      [pool, ['mine', ...mine, '--input', pool]],
      [folder, ['eval', '--model', model, '--test', folder]],
      [folder, ['train', '--model', model, '--data', folder, '--output', join(dir, 'run')]], // it was a bare EISDIR
      [folder, ['combine', folder, '--output', join(dir, 'c.jsonl')]],
      [folder, ['serve', '--model', model, '--corpus', folder, '--port', '0']],
    ];
    for (const [path, args] of runs) {
      const r = await l2e(...args);
      expect([args[0], r.code, r.err.trimEnd().split('\n').pop()]).toEqual([args[0], 1, `l2e ${args[0]}: error: ${path}: it is a folder, not a file`]);
    }
    expect(readdirSync(dir).sort()).toEqual(['data.jsonl', 'model', 'pool.json']);
  });
});
