// `combine`: counts, validation (file:line, --skip-bad-lines), shuffle is a permutation, the same
// seed gives the same order, and the external (bucketed) shuffle path.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { combineFiles, PID_SPACE, shuffleBuckets } from '../src/data/combine.js';
import { makeTempDir } from './helpers/tinyModel.js';

const dir = makeTempDir('l2e-combine-');
const row = (i: number): string => JSON.stringify({ query: `q${i} ${'x'.repeat(i % 50)}`, pos: [`p${i}`], neg: [`n${i}`, 'shared'] });
function makeFile(name: string, from: number, to: number, extra = ''): string {
  const f = join(dir, name);
  const lines: string[] = [];
  for (let i = from; i < to; i++) lines.push(row(i));
  writeFileSync(f, lines.join('\n') + '\n' + extra);
  return f;
}
const readOut = (f: string): string[] => readFileSync(f, 'utf8').split('\n').filter((l) => l !== '');

describe('combine', () => {
  const a = makeFile('a.jsonl', 0, 300);
  const b = makeFile('b.jsonl', 300, 1000, '\n\n'); // trailing blank lines are skipped

  it('concatenates in order and counts rows per file', async () => {
    const out = join(dir, 'all.jsonl');
    const res = await combineFiles([a, b], { output: out });
    expect(res.files.map((f) => [f.rows, f.badLines])).toEqual([[300, 0], [700, 0]]);
    expect(res.rows).toBe(1000);
    expect(res.buckets).toBe(0);
    expect(readOut(out)).toEqual(Array.from({ length: 1000 }, (_, i) => row(i)));
  });

  it('shuffles to a permutation, deterministically for a seed (in memory)', async () => {
    const o1 = join(dir, 's1.jsonl'), o2 = join(dir, 's2.jsonl'), o3 = join(dir, 's3.jsonl');
    await combineFiles([a, b], { output: o1, shuffle: true, seed: 5 });
    await combineFiles([a, b], { output: o2, shuffle: true, seed: 5 });
    await combineFiles([a, b], { output: o3, shuffle: true, seed: 6 });
    const l1 = readOut(o1);
    expect(readOut(o2)).toEqual(l1);
    expect(readOut(o3)).not.toEqual(l1);
    expect([...l1].sort()).toEqual(Array.from({ length: 1000 }, (_, i) => row(i)).sort());
    expect(l1).not.toEqual(Array.from({ length: 1000 }, (_, i) => row(i)));
  });

  it('shuffles externally through buckets when the input exceeds the memory budget', async () => {
    const big = makeFile('big.jsonl', 0, 30000); // ~2 MiB
    const tmp = mkdtempSync(join(dir, 'tmp-'));
    const o1 = join(dir, 'e1.jsonl'), o2 = join(dir, 'e2.jsonl');
    const r1 = await combineFiles([big], { output: o1, shuffle: true, seed: 9, memoryMb: 1, tmpDir: tmp });
    const r2 = await combineFiles([big], { output: o2, shuffle: true, seed: 9, memoryMb: 1, tmpDir: tmp });
    expect(r1.buckets).toBeGreaterThan(1);
    const l1 = readOut(o1);
    expect(readOut(o2)).toEqual(l1);
    const want = Array.from({ length: 30000 }, (_, i) => row(i));
    expect([...l1].sort()).toEqual([...want].sort());
    // well mixed: rows from the first tenth of the input are spread over the whole output
    const firstTenth = new Set(want.slice(0, 3000));
    const positions = l1.map((l, i) => (firstTenth.has(l) ? i : -1)).filter((i) => i >= 0);
    expect(Math.max(...positions)).toBeGreaterThan(27000);
    expect(Math.min(...positions)).toBeLessThan(3000);
    expect(readdirSync(tmp)).toEqual([]); // bucket files removed
    expect(r2.rows).toBe(30000);
  });

  it('names file:line for a bad line, or counts it with skipBadLines', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, [row(1), '{"query": "q", "pos": "p", "neg": []}', 'not json', '[1]', row(2), '{"query":"q","pos":[]}'].join('\n'));
    const out = join(dir, 'bad-out.jsonl');
    await expect(combineFiles([a, bad], { output: out })).rejects.toThrow(`${bad}:2: "pos" must be an array of strings`);
    expect(existsSync(out)).toBe(false); // nothing half-written
    const res = await combineFiles([bad], { output: out, skipBadLines: true });
    expect(res.files[0]).toEqual({ file: bad, rows: 2, badLines: 4, firstBadLines: [2, 3, 4, 6] });
    expect(readOut(out)).toEqual([row(1), row(2)]);
    // a terminal's control characters in a bad line are shown escaped, not sent to the terminal
    const esc = join(dir, 'esc.jsonl');
    writeFileSync(esc, 'x\x1b]0;title\x07\n');
    const err = await combineFiles([esc], { output: out, overwrite: true }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(new RegExp(`^${esc.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: invalid JSON \\(.*\\\\u001b\\]0;title\\\\u0007`));
    expect((err as Error).message).not.toMatch(/[\x00-\x1f]/);
  });

  it('a line over 64 MiB is a bad line: named with the flag that drops it, or dropped with skipBadLines', async () => {
    const long = join(dir, 'long.jsonl');
    writeFileSync(long, `${row(1)}\n{"query": "${'x'.repeat(64 * 1024 * 1024)}", "pos": ["p"], "neg": []}\n${row(2)}\n`);
    const out = join(dir, 'long-out.jsonl');
    await expect(combineFiles([long], { output: out })).rejects.toThrow(`${long}:2: line longer than 67108864 bytes (use skipBadLines to drop such lines)`);
    const res = await combineFiles([long], { output: out, skipBadLines: true });
    expect(res.files[0]).toEqual({ file: long, rows: 2, badLines: 1, firstBadLines: [2] });
    expect(readOut(out)).toEqual([row(1), row(2)]);
    rmSync(long);
  }, 60_000);

  it('an output that appears while combining is kept and the rows go to <output>.new; with overwrite it is replaced', async () => {
    const out = join(dir, 'raced.jsonl');
    const appear = (done: number, total: number): void => {
      if (done === total) writeFileSync(out, 'theirs\n'); // after the check, before the publish
    };
    await expect(combineFiles([a], { output: out, onProgress: appear })).rejects.toThrow(
      `could not write ${out}: a file of that name appeared while this ran and was kept; the output is in ${out}.new`,
    );
    expect(readFileSync(out, 'utf8')).toBe('theirs\n');
    expect(readOut(`${out}.new`)).toEqual(Array.from({ length: 300 }, (_, i) => row(i)));
    await combineFiles([a], { output: out, overwrite: true, onProgress: appear });
    expect(readOut(out)).toEqual(Array.from({ length: 300 }, (_, i) => row(i)));
  });

  // the scratch of a shuffle to stdout went into the current folder: one the user could not write
  // in failed as "could not write -: EACCES", though stdout was fine
  it('a shuffle to stdout keeps its scratch files in the temporary folder (TMPDIR), and a failure there names it', async () => {
    const big = makeFile('big-stdout.jsonl', 0, 6000); // over a third of 1 MiB: bucket files
    const saved = process.env['TMPDIR'];
    const missing = join(dir, 'no-such-tmp');
    process.env['TMPDIR'] = missing;
    try {
      await expect(combineFiles([big], { output: '-', shuffle: true, memoryMb: 1 })).rejects.toThrow(
        new Error(`could not make the shuffle's scratch folder in the temporary folder ${missing} (TMPDIR): the folder ${missing} does not exist`),
      );
    } finally {
      if (saved === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = saved;
    }
  });

  it('options of the wrong type are refused naming them, as the CLI refuses its flags', async () => {
    const output = join(dir, 'opts.jsonl');
    const bad: [Record<string, unknown>, Error][] = [
      [{ shuffle: true, memoryMb: 'lots' }, new TypeError('combine: memoryMb must be a number of MiB, at least 1, got the string "lots"')],
      [{ shuffle: true, memoryMb: -5 }, new TypeError('combine: memoryMb must be a number of MiB, at least 1, got -5')],
      [{ shuffle: true, seed: 1.5 }, new TypeError('combine: seed must be an integer from 0 to 4294967295, got 1.5')],
      [{ shuffle: true, seed: 'abc' }, new TypeError('combine: seed must be an integer from 0 to 4294967295, got the string "abc"')],
      [{ seed: 3 }, new Error('combine: seed orders the shuffle; without shuffle: true it would do nothing')],
      [{ shuffle: 'yes' }, new TypeError('combine: shuffle must be true or false, got the string "yes"')],
    ];
    for (const [opts, error] of bad) await expect(combineFiles([a], { output, ...opts } as Parameters<typeof combineFiles>[1])).rejects.toThrow(error);
    expect(existsSync(output)).toBe(false);
  });

  it('refuses to overwrite an input and reports a missing file, also one named as the output', async () => {
    await expect(combineFiles([a], { output: a })).rejects.toThrow(/also an input/);
    await expect(combineFiles([join(dir, 'nope.jsonl')], { output: join(dir, 'x.jsonl') })).rejects.toThrow(/no such file/);
    const nope = join(dir, 'nope.jsonl');
    await expect(combineFiles([nope], { output: nope })).rejects.toThrow(new Error(`${nope}: no such file`));
  });

  it('buckets stay small enough to be read back as one string, whatever the budget', () => {
    const MiB = 1024 * 1024;
    expect(shuffleBuckets(10 * MiB, 256 * MiB)).toBe(1); // fits: in memory
    expect(shuffleBuckets(100 * MiB, 256 * MiB)).toBe(2); // by memory: 300 MiB of strings in 256
    // 1.3 GB with 2000 MiB: 2 buckets of 650 MB by memory, past V8's 512 Mi-character strings; 128 MiB each
    expect(shuffleBuckets(1.3e9, 2000 * MiB)).toBe(10);
  });

  it('a bucket that cannot be read back fails the combine, naming it (it was skipped: rows lost, exit 0)', async () => {
    const big = makeFile('big-lost.jsonl', 0, 6000);
    const tmp = mkdtempSync(join(dir, 'tmp-lost-'));
    const out = join(dir, 'lost.jsonl');
    const onProgress = (done: number, total: number): void => {
      if (done !== total) return;
      // all lines read: the buckets are written; one of them goes, as another process might remove it
      const [scratch] = readdirSync(tmp);
      rmSync(join(tmp, scratch!, 'bucket-0.jsonl'));
    };
    await expect(combineFiles([big], { output: out, shuffle: true, memoryMb: 1, tmpDir: tmp, onProgress })).rejects.toThrow(
      /^could not read back the shuffle's bucket file .*bucket-0\.jsonl in .*: it holds \d+ bytes of the \d+ written \(was the scratch folder removed meanwhile\?\)$/,
    );
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("a killed run's scratch folder is removed: at once when its pid is of this host and namespace, else once untouched for 10 minutes", async () => {
    const tmp = mkdtempSync(join(dir, 'tmp-stale-'));
    const dead = spawnSync('true').pid!;
    const other = PID_SPACE === '00000000' ? '00000001' : '00000000'; // a container's: its pids unseen here
    const names = {
      ours: `.l2e-combine-${dead}-${PID_SPACE}-a`, // killed here: removed although fresh
      oldElsewhere: `.l2e-combine-${dead}-${other}-b`, // untouched for 11 minutes: removed
      liveElsewhere: `.l2e-combine-${dead}-${other}-c`, // touched: a live run there, kept
      oldFormat: `.l2e-combine-${dead}-d`, // an older version's: as from elsewhere
    };
    for (const f of Object.values(names)) {
      mkdirSync(join(tmp, f));
      writeFileSync(join(tmp, f, 'bucket-0.jsonl'), row(1) + '\n');
    }
    const past = new Date(Date.now() - 11 * 60_000);
    utimesSync(join(tmp, names.oldElsewhere), past, past);
    await combineFiles([makeFile('big-stale.jsonl', 0, 6000)], { output: join(dir, 'stale.jsonl'), shuffle: true, memoryMb: 1, tmpDir: tmp });
    expect(readdirSync(tmp).sort()).toEqual([names.liveElsewhere, names.oldFormat].sort());
  });

  it('a pipe as input is copied before a shuffle, so the memory budget bounds it too; a device output keeps its scratch in TMPDIR', async () => {
    const src = makeFile('piped-src.jsonl', 0, 6000);
    const fifo = join(dir, 'in.fifo');
    spawnSync('mkfifo', [fifo]);
    const writer = spawn('bash', ['-c', `cat '${src}' > '${fifo}'`]);
    const written = new Promise((resolve) => writer.on('close', resolve));
    const out = join(dir, 'piped.jsonl');
    const r = await combineFiles([fifo], { output: out, shuffle: true, memoryMb: 1, tmpDir: mkdtempSync(join(dir, 'tmp-pipe-')) });
    await written;
    expect(r.buckets).toBeGreaterThan(1);
    expect(readOut(out).sort()).toEqual(readOut(src).sort());

    const saved = process.env['TMPDIR'];
    const tmp = mkdtempSync(join(dir, 'tmp-dev-'));
    process.env['TMPDIR'] = tmp;
    let seen: string[] = [];
    try {
      const onProgress = (): void => {
        seen = readdirSync(tmp);
      };
      const d = await combineFiles([src], { output: '/dev/null', overwrite: true, shuffle: true, memoryMb: 1, onProgress });
      expect(d.buckets).toBeGreaterThan(1);
    } finally {
      if (saved === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = saved;
    }
    expect(seen).toHaveLength(1); // the buckets were in TMPDIR, not in /dev
    expect(seen[0]).toMatch(/^\.l2e-combine-\d+-/);
  });
});
