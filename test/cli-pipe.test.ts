// `l2e ... --output - | head`: when the reader of stdout goes away, the command stops quietly and
// exits 141 (128 + SIGPIPE), as a Unix tool killed by SIGPIPE does. The process cases run the built
// CLI (bin/l2e.js over dist/: `npx tsc -p tsconfig.build.json` after a change).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { openOutput, OutputClosedError } from '../src/util/output.js';
import { repoRoot } from './helpers/fixture.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const hasDist = existsSync(join(repoRoot, 'dist', 'cli', 'main.js'));

/** Runs `l2e args | head -c 100` in bash: the exit status of l2e and what it wrote to stderr. */
function intoHead(args: string[], cwd: string): { status: string; err: string } {
  const quoted = args.map((a) => `'${a}'`).join(' ');
  const r = spawnSync('bash', ['-c', `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}" ${quoted} 2>err.txt | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"; cat err.txt`], {
    cwd,
    encoding: 'utf8',
  });
  const [status, ...err] = r.stdout.split('\n');
  return { status: status!, err: err.join('\n') };
}

describe('stdout whose reader went away', () => {
  it('openOutput("-") turns EPIPE into OutputClosedError, other errors into a message', async () => {
    const failing = (code: string) =>
      new Writable({
        write(_chunk, _enc, cb) {
          cb(Object.assign(new Error(`write ${code}`), { code }));
        },
      });
    const w = openOutput('-', { stream: failing('EPIPE') });
    await w.write('x').catch(() => {});
    await expect(w.write('y')).rejects.toBeInstanceOf(OutputClosedError);
    const other = openOutput('-', { stream: failing('ENOSPC') });
    await other.write('x').catch(() => {});
    await expect(other.write('y')).rejects.toThrow('could not write to stdout: write ENOSPC');
  });

  it.skipIf(!hasDist || process.platform === 'win32')(`combine and mine stop quietly with status 141 ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
    const dir = makeTempDir();
    const rows = Array.from({ length: 20000 }, (_, i) => JSON.stringify({ query: `q${i} ${'x'.repeat(50)}`, pos: ['p'], neg: ['n'] }));
    writeFileSync(join(dir, 'big.jsonl'), rows.join('\n') + '\n');
    expect(intoHead(['combine', 'big.jsonl', '--output', '-'], dir)).toEqual({ status: '141', err: '' });
    const texts = Array.from({ length: 3000 }, (_, i) => `teks nombor ${i}`);
    writeFileSync(join(dir, 'corpus.txt'), texts.join('\n') + '\n');
    writeFileSync(join(dir, 'v.jsonl'), texts.map((t, i) => JSON.stringify({ text: t, embedding: [Math.cos(i / 100), Math.sin(i / 100)] })).join('\n') + '\n');
    const mine = intoHead(['mine', '--embeddings', 'v.jsonl', '--input', 'corpus.txt', '--output', '-', '--pos-threshold', '0.05', '--neg-threshold', '0.5', '--random-negatives'], dir);
    expect(mine.status).toBe('141');
    expect(mine.err).not.toMatch(/error|EPIPE/);
  });
});

describe.skipIf(!hasDist || process.platform === 'win32')(`text written straight to stdout or stderr ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
  // help, eval's table, mine --stats, --version: a closed stdout was an unhandled 'error' event (a stack
  // trace, exit 1); a closed stderr turned a finished command into exit 1
  it('a reader that has gone ends the command quietly with 141; a closed stderr changes nothing', () => {
    const dir = makeTempDir();
    const l2e = `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}"`;
    for (const args of ['--help', 'encode --help', '--version']) {
      const r = spawnSync('bash', ['-c', `${l2e} ${args} 2>err.txt | true; echo "\${PIPESTATUS[0]}"; cat err.txt`], { cwd: dir, encoding: 'utf8' });
      expect(r.stdout, args).toBe('141\n');
    }
    writeTinyModel(join(dir, 'model'));
    writeFileSync(join(dir, 't.jsonl'), '{"query":"satu","pos":["one"],"neg":["dua"]}\n{"query":"tiga","pos":["three"],"neg":["empat"]}\n');
    const evalInto = spawnSync('bash', ['-c', `${l2e} eval --model model --test t.jsonl 2>err.txt | true; echo "\${PIPESTATUS[0]}"; cat err.txt`], { cwd: dir, encoding: 'utf8' });
    expect(evalInto.stdout.split('\n')[0]).toBe('141');
    expect(evalInto.stdout).not.toMatch(/EPIPE|Unhandled|node:events/);
    const quietErr = spawnSync('bash', ['-c', `${l2e} encode --model model --input t.jsonl --field query --output v.npy 2>&1 | head -c1 >/dev/null; echo "\${PIPESTATUS[0]}"`], { cwd: dir, encoding: 'utf8' });
    expect(quietErr.stdout).toBe('0\n');
    expect(existsSync(join(dir, 'v.npy'))).toBe(true);
  });
});

describe.skipIf(!hasDist || process.platform !== 'linux')(`stdout opened on an input, or on a full disk ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
  const bash = (line: string, dir: string) => spawnSync('bash', ['-c', `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}" ${line}`], { cwd: dir, encoding: 'utf8' });

  it('combine, encode and tokenize refuse a stdout appended to their input (combine grew it until the disk was full)', () => {
    const dir = makeTempDir();
    const row = '{"query":"satu","pos":["one"],"neg":["dua"]}\n';
    writeFileSync(join(dir, 'a.jsonl'), row);
    const c = bash('combine a.jsonl --output - >> a.jsonl', dir);
    expect([c.status, c.stderr]).toEqual([1, 'l2e combine: error: --output - (stdout) is also an input: the input a.jsonl is the same file as stdout\n']);
    const viaStdin = bash('combine - --output - < a.jsonl >> a.jsonl', dir);
    expect([viaStdin.status, viaStdin.stderr]).toEqual([1, 'l2e combine: error: --output - (stdout) is also an input: stdin is the same file as stdout\n']);
    expect(readFileSync(join(dir, 'a.jsonl'), 'utf8')).toBe(row);
    writeTinyModel(join(dir, 'model'), { hidden: 16, layers: 1, dense: 8 });
    writeFileSync(join(dir, 't.txt'), 'satu\n');
    const t = bash('tokenize --model model < t.txt >> t.txt', dir);
    expect([t.status, t.stderr]).toEqual([1, 'l2e tokenize: error: stdout is also an input: stdin is the same file as stdout\n']);
    const e = bash('encode --model model --input t.txt --output - >> t.txt', dir);
    expect([e.status, e.stderr]).toEqual([1, 'l2e encode: error: --output - (stdout) is also an input: --input t.txt is the same file as stdout\n']);
    expect(readFileSync(join(dir, 't.txt'), 'utf8')).toBe('satu\n');
    // another file on stdout is fine
    expect(bash('combine a.jsonl --output - > b.jsonl', dir).status).toBe(0);
    expect(readFileSync(join(dir, 'b.jsonl'), 'utf8')).toBe(row);
  });

  it('one pipe given as two inputs (- and /dev/stdin) is refused: the second read got no rows', () => {
    const dir = makeTempDir();
    const r = bash(`combine - /dev/stdin --output out.jsonl < <(echo '{"query":"q","pos":["p"],"neg":["n"]}')`, dir);
    expect([r.status, r.stderr.split('\n')[0]]).toEqual([2, 'l2e combine: - (stdin) and /dev/stdin are the same pipe, which can be read once (the second read got no rows): give it as one input']);
    expect(existsSync(join(dir, 'out.jsonl'))).toBe(false);
  });

  it('a stdout that cannot be written (a full disk) is said, not a bare exit 1', () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'a.jsonl'), '{"query":"satu","pos":["one"],"neg":["dua"]}\n');
    const r = bash('combine a.jsonl --output - > /dev/full', dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('could not write to stdout: ENOSPC');
  });
});

describe.skipIf(!hasDist)(`stdin that is a folder ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
  // `l2e combine - < somefolder` read it as empty (exit 0, or "no rows" further on): said, as for a
  // folder named as the input
  it('is refused by name', () => {
    const dir = makeTempDir();
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}" combine - --output out.jsonl < .`], { cwd: dir, encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([1, 'l2e combine: error: stdin: it is a folder, not a file\n']);
    expect(existsSync(join(dir, 'out.jsonl'))).toBe(false);
  });
});

// `--output /dev/stdout > file`: a second open of /dev/stdout has an offset of its own, so the summary
// written through fd 1 overwrote the data (util/atomic.ts now writes through the descriptor itself),
// and the summary belongs on stderr whenever the data is stdout, as with `-`
describe.skipIf(!hasDist || process.platform !== 'linux')(`--output /dev/stdout redirected to a file ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
  const run = (args: string, dir: string) =>
    spawnSync('bash', ['-c', `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}" ${args} > out.txt 2> err.txt`], { cwd: dir, encoding: 'utf8' });

  it('combine, mine and eval put the data alone in the file and their summaries on stderr; encode writes JSONL there', () => {
    const dir = makeTempDir();
    const rows = ['{"query":"satu","pos":["one"],"neg":["dua"]}', '{"query":"tiga","pos":["three"],"neg":["empat"]}'];
    writeFileSync(join(dir, 'c.jsonl'), rows.join('\n') + '\n');
    for (const out of ['/dev/stdout', '/dev/fd/1', '/proc/self/fd/1']) {
      expect(run(`combine c.jsonl --output ${out}`, dir).status).toBe(0);
      expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe(rows.join('\n') + '\n');
      expect(readFileSync(join(dir, 'err.txt'), 'utf8')).toMatch(/total +2 rows → stdout\n$/);
    }
    const texts = ['kucing hitam', 'kucing putih', 'kereta merah', 'kereta biru'];
    writeFileSync(join(dir, 'corpus.txt'), texts.join('\n') + '\n');
    const angles = [0, 0.1, 1.5, 1.6]; // two close pairs, far apart
    writeFileSync(join(dir, 'v.jsonl'), texts.map((t, i) => JSON.stringify({ text: t, embedding: [Math.cos(angles[i]!), Math.sin(angles[i]!)] })).join('\n') + '\n');
    expect(run('mine --embeddings v.jsonl --input corpus.txt --output /dev/stdout --pos-threshold 0.2 --neg-threshold 0.5', dir).status).toBe(0);
    const mined = readFileSync(join(dir, 'out.txt'), 'utf8').trimEnd().split('\n');
    expect(mined).toHaveLength(4);
    for (const line of mined) expect(Object.keys(JSON.parse(line) as object)).toEqual(['query', 'pos', 'neg']);
    expect(readFileSync(join(dir, 'err.txt'), 'utf8')).toMatch(/written to stdout/);
    writeFileSync(join(dir, 'test.jsonl'), '{"query":"kucing hitam","pos":["kucing putih"],"neg":["kereta biru"]}\n');
    expect(run('eval --embeddings v.jsonl --test test.jsonl --json /dev/stdout', dir).status).toBe(0);
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'out.txt'), 'utf8')) as object)).toEqual(['test']);
    expect(readFileSync(join(dir, 'err.txt'), 'utf8')).toMatch(/top1/);
  });

  it('encode --output /dev/stdout writes JSONL, as - does', () => {
    const dir = makeTempDir();
    const model = writeTinyModel(makeTempDir()).dir;
    writeFileSync(join(dir, 't.txt'), 'hello\nworld\n');
    const r = run(`encode --model "${model}" --input t.txt --output /dev/stdout`, dir);
    expect(r.status, readFileSync(join(dir, 'err.txt'), 'utf8')).toBe(0);
    const lines = readFileSync(join(dir, 'out.txt'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { text: string; embedding: number[] });
    expect(lines.map((l) => l.text)).toEqual(['hello', 'world']);
    expect(lines[0]!.embedding.length).toBeGreaterThan(0);
    expect(readFileSync(join(dir, 'err.txt'), 'utf8')).toMatch(/encoded 2 texts \(\d+ dims\) → stdout\n$/);
  });
});

describe.skipIf(!hasDist || process.platform === 'win32')(`stdin redirected from the output file ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
  // `--input - < out.jsonl --overwrite` replaced the very file it read
  it('is refused as an output that is also an input, even with --overwrite', () => {
    const dir = makeTempDir();
    const rows = '{"query":"satu","pos":["one"],"neg":[]}\n';
    writeFileSync(join(dir, 'c.jsonl'), rows);
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}" combine - --output c.jsonl --overwrite < c.jsonl`], { cwd: dir, encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([1, 'l2e combine: error: --output c.jsonl is also an input: the input - (stdin) is the same file\n']);
    expect(readFileSync(join(dir, 'c.jsonl'), 'utf8')).toBe(rows);
  });
});

// Node makes its own stderr non-blocking when it is a pipe: written through fd 2, a reader slower than
// the writer got 64 KiB, then EAGAIN ended the command with its message lost (descriptors other than a
// regular file's are opened anew, as before)
describe.skipIf(!hasDist || process.platform !== 'linux')(`--output /dev/stderr into a slow pipe ${hasDist ? '' : '(skipped: dist/ not built)'}`, () => {
  it('delivers every byte and exits 0', () => {
    const dir = makeTempDir();
    const rows = Array.from({ length: 40000 }, (_, i) => JSON.stringify({ query: `q${i} ${'x'.repeat(40)}`, pos: ['p'], neg: [] })).join('\n') + '\n';
    writeFileSync(join(dir, 'big.jsonl'), rows);
    const cli = `"${process.execPath}" "${join(repoRoot, 'bin', 'l2e.js')}"`;
    const r = spawnSync('bash', ['-c', `${cli} combine big.jsonl --output /dev/stderr 2>&1 >/dev/null | (sleep 2; wc -c); echo "\${PIPESTATUS[0]}"`], { cwd: dir, encoding: 'utf8' });
    expect(r.stdout.trim().split(/\s+/)).toEqual([String(Buffer.byteLength(rows)), '0']);
  });
});
