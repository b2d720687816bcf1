// A run loses no work to what goes wrong around it: a second run into its output folder is refused while
// it trains (output-lock.ts); a failure outside the native calls (the data changed during training, the
// log could not be written) saves the last completed step's checkpoint before the error; an overwrite
// run stopped before its first checkpoint leaves the folder to the run it was to replace; a --log that
// is not a step log is refused before it is appended to.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { listRunCheckpoints } from '../src/train/checkpoint.js';
import { readRunRecord } from '../src/train/run.js';
import { TRAIN_LOCK } from '../src/train/output-lock.js';
import type { StepInfo, TrainerOptions } from '../src/train/trainer.js';
import type { RowSource, TrainRow } from '../src/data/pairs.js';
import { fitOnce, noticesOf, type Fitted } from './helpers/fit.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';
import { repoRoot } from './helpers/fixture.js';

const escape = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const base: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16, saveTotalLimit: 0 };

describe('a run keeps its work', () => {
  let modelDir: string;
  let rows: TrainRow[];
  let dataText: string;

  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    rows = topicData(10, 40, 4).rows;
    dataText = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  });

  const dataFile = (): string => {
    const f = join(makeTempDir(), 'data.jsonl');
    writeFileSync(f, dataText);
    return f;
  };

  const fitRun = (options: TrainerOptions, data: RowSource, onStep?: (s: StepInfo) => void | Promise<void>, abortAt?: number): Promise<Fitted> =>
    fitOnce(modelDir, { ...base, ...options }, data, { onStep, abortAt });

  /** The rejection of `p`, with the notices the run gave before it. */
  async function failure(p: Promise<unknown>): Promise<{ message: string; notices: string[] }> {
    try {
      await p;
    } catch (err) {
      return { message: (err as Error).message, notices: noticesOf(err as Error) };
    }
    throw new Error('the run did not fail');
  }

  it('an output folder locked by another live process is refused before anything is read or written; a dead process\'s lock is taken over and removed at the end', async () => {
    const out = makeTempDir();
    writeFileSync(join(out, TRAIN_LOCK), `1 ${hostname()}\n`); // process 1 is always alive
    await expect(fitRun({ maxSteps: 2, outputDir: out }, dataFile())).rejects.toThrow(
      new Error(
        `${out} is being trained into by another run (process 1, ${join(out, TRAIN_LOCK)}): wait for it to end, or train into another ` +
          `folder (if no run is using it, remove ${join(out, TRAIN_LOCK)})`,
      ),
    );
    await expect(fitRun({ maxSteps: 2, outputDir: out, overwrite: true }, dataFile())).rejects.toThrow(/is being trained into by another run \(process 1, /);
    expect(listRunCheckpoints(out)).toEqual([]);
    const dead = spawnSync('true').pid!; // exited: its lock is stale
    writeFileSync(join(out, TRAIN_LOCK), `${dead} ${hostname()}\n`);
    const r = await fitRun({ maxSteps: 2, outputDir: out }, dataFile());
    expect(r.result).toMatchObject({ step: 2, modelDir: out });
    expect(existsSync(join(out, TRAIN_LOCK))).toBe(false);
  });

  it('a stale lock seen by several processes at once is taken over by one of them at a time', async () => {
    const lockModule = join(repoRoot, 'dist', 'train', 'output-lock.js');
    // each child takes the lock, marks itself holder, checks it is the only one, and releases
    const child = `
      import { lockOutput } from ${JSON.stringify(lockModule)};
      import { readdirSync, rmSync, writeFileSync } from 'node:fs';
      import { join } from 'node:path';
      const [dir, start] = process.argv.slice(1);
      while (Date.now() < Number(start)) {}
      let release;
      try { release = lockOutput(dir); } catch { console.log('refused'); process.exit(0); }
      writeFileSync(join(dir, 'holder-' + process.pid), '');
      const t = Date.now(); while (Date.now() - t < 150) {}
      console.log(readdirSync(dir).filter((f) => f.startsWith('holder-')).length);
      rmSync(join(dir, 'holder-' + process.pid));
      release();`;
    for (let round = 0; round < 4; round++) {
      const out = makeTempDir();
      writeFileSync(join(out, TRAIN_LOCK), `${spawnSync('true').pid!} ${hostname()}\n`); // a dead process's
      const start = Date.now() + 600;
      const children = Array.from({ length: 4 }, () =>
        spawn(process.execPath, ['--input-type=module', '-e', child, out, String(start)], { stdio: ['ignore', 'pipe', 'inherit'] }),
      );
      const said = children.map(
        (c) => new Promise<string>((done) => {
          let text = '';
          c.stdout.on('data', (d: Buffer) => (text += d.toString()));
          c.on('close', () => done(text.trim()));
        }),
      );
      const lines = await Promise.all(said);
      // every holder was alone; the others were refused (the holder alive) or came after it
      expect(lines.every((l) => l === 'refused' || l === '1'), lines.join(',')).toBe(true);
      expect(lines.filter((l) => l === '1').length, lines.join(',')).toBeGreaterThanOrEqual(1);
      expect(existsSync(join(out, TRAIN_LOCK))).toBe(false);
    }
  }, 60_000);

  it("another host's lock is refused, saying how to remove it", async () => {
    const out = makeTempDir();
    const lock = join(out, TRAIN_LOCK);
    writeFileSync(lock, '4242 elsewhere\n');
    await expect(fitRun({ maxSteps: 2, outputDir: out }, dataFile())).rejects.toThrow(
      new Error(`${out} is locked by a training run on host elsewhere (process 4242, ${lock}): wait for it to end, or remove ${lock} if no run there is using the folder`),
    );
  });

  it('two fits of one process into one folder: the second is refused while the first trains', async () => {
    const out = makeTempDir();
    let refused: unknown = null;
    await fitRun({ maxSteps: 3, outputDir: out }, dataFile(), async (s) => {
      if (s.step !== 1) return;
      const second = fitRun({ maxSteps: 2, outputDir: out, overwrite: true }, dataFile());
      refused = await second.then(() => null, (err: unknown) => err); // settled while the first still trains
    });
    expect(refused).toEqual(new Error(`${out} is being trained into by another fit of this process: train into another folder`));
    expect(readRunRecord(out)).toMatchObject({ finalModelStep: 3 });
  });

  it('a data file changed during training fails the run at the next epoch, after saving the last completed step', async () => {
    const out = makeTempDir();
    const data = dataFile();
    // the same bytes rewritten (an editor's save): the size matches, the time does not
    const f = await failure(
      fitRun({ epochs: 2, outputDir: out, saveSteps: 100 }, data, (s) => {
        if (s.step === 1) utimesSync(data, new Date(2001, 0, 1), new Date(2001, 0, 1));
      }),
    );
    expect(f.message).toBe(`data ${data} changed during training (it was checked whole before step 1): epoch 2 would read what was not checked`);
    expect(f.notices.filter((m) => m.startsWith(`step 10: checkpoint saved to ${join(out, 'checkpoint-10')} (`))).toHaveLength(1);
    expect(listRunCheckpoints(out).map((c) => c.step)).toEqual([10]);
  });

  it('rows that an epoch finds fewer than were checked fail the run, the completed steps saved', async () => {
    const out = makeTempDir();
    const source = rows.slice();
    const f = await failure(
      fitRun({ epochs: 1, outputDir: out, saveSteps: 100 }, source, (s) => {
        if (s.step === 1) source.pop(); // 39 rows: the epoch ends with a batch of 3
      }),
    );
    expect(f.message).toBe('the data changed during training (it was checked whole before step 1): 40 usable rows then, 39 in epoch 1');
    expect(listRunCheckpoints(out).map((c) => c.step)).toEqual([9]);
  });

  // (the log is open for the whole run: a pipe whose reader has gone is what fails it mid-run)
  it.skipIf(process.platform === 'win32')('a log that cannot be appended to names the step and the log; the steps before it are saved', async () => {
    const out = makeTempDir();
    const log = join(makeTempDir(), 'log.pipe');
    expect(spawnSync('mkfifo', [log]).status).toBe(0);
    const reader = spawn('head', ['-n', '3', log], { stdio: ['ignore', 'ignore', 'ignore'] }); // gone after 3 lines
    const gone = new Promise((resolve) => reader.on('close', resolve));
    const f = await failure(
      fitRun({ maxSteps: 10, outputDir: out, saveSteps: 100, logFile: log }, dataFile(), async (s) => {
        if (s.step === 3) await gone;
      }),
    );
    expect(f.message).toBe(`could not append step 4 to logFile ${log}: EPIPE: broken pipe, write`);
    // step 4 was trained before its line failed: it is the one saved
    expect(listRunCheckpoints(out).map((c) => c.step)).toEqual([4]);
  });

  it('an overwrite run stopped before its first checkpoint saves nothing: the folder keeps the run it was to replace', async () => {
    const out = makeTempDir();
    const a = await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 2 }, dataFile());
    const b = await fitRun({ maxSteps: 50, outputDir: out, saveSteps: 10, overwrite: true }, dataFile(), undefined, 3);
    expect(b.result).toMatchObject({ stoppedBy: 'aborted', step: 3, checkpoint: null });
    expect(b.notices).toContain(
      `step 3: no checkpoint saved: ${out} still holds the run this one was to replace (replaced at this run's first checkpoint), which can still be resumed`,
    );
    expect(readRunRecord(out)).toMatchObject({ runId: a.result.runId, finalModelStep: 4 });
    expect(listRunCheckpoints(out).map((c) => [c.step, c.runId])).toEqual([2, 4].map((s) => [s, a.result.runId]));
  });

  it('an overwrite run into a folder with no run to keep (new, empty, or with only other files) saves its checkpoint when stopped', async () => {
    const parent = makeTempDir();
    const others = makeTempDir();
    writeFileSync(join(others, 'notes.txt'), 'mine\n');
    for (const out of [join(parent, 'new'), makeTempDir(), others]) {
      const b = await fitRun({ maxSteps: 50, outputDir: out, saveSteps: 10, overwrite: true }, dataFile(), undefined, 3);
      expect(b.result).toMatchObject({ stoppedBy: 'aborted', step: 3, checkpoint: join(out, 'checkpoint-3') });
      expect(listRunCheckpoints(out).map((c) => [c.step, c.runId])).toEqual([[3, b.result.runId]]);
    }
    expect(readFileSync(join(others, 'notes.txt'), 'utf8')).toBe('mine\n');
  });

  it("a damaged newest checkpoint's weights: the resume says how to continue from the one before, which works", async () => {
    const out = makeTempDir();
    const data = dataFile();
    await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 2, saveTotalLimit: 2 }, data);
    const weights = join(out, 'checkpoint-4', 'model.safetensors');
    truncateSync(weights, 4000);
    const f = await failure(fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2, saveTotalLimit: 2, resume: true }, data));
    expect(f.message).toMatch(new RegExp(`^${escape(weights)}: .+; to resume from the checkpoint before it, move checkpoint-4 out of ${escape(out)}$`));
    renameSync(join(out, 'checkpoint-4'), join(makeTempDir(), 'checkpoint-4'));
    const r = await fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2, saveTotalLimit: 2, resume: true }, data);
    expect(r.result).toMatchObject({ startStep: 2, step: 6 });
  });

  it('a --log that is not a step log is refused before anything is appended to it', async () => {
    const log = join(makeTempDir(), 'config.json');
    const text = '{\n  "hidden_size": 32\n}\n';
    writeFileSync(log, text);
    await expect(fitRun({ maxSteps: 2, logFile: log }, dataFile())).rejects.toThrow(
      new Error(`logFile ${log} is not a step log (its first line is not a step's JSON object): the per-step lines would be appended to it; give a new file or an earlier run's log`),
    );
    expect(readFileSync(log, 'utf8')).toBe(text);
    // an earlier run's log is appended to
    const earlier = join(makeTempDir(), 'log.jsonl');
    writeFileSync(earlier, '{"step":1,"loss":2}\n');
    await fitRun({ maxSteps: 2, logFile: earlier }, dataFile());
    expect(readFileSync(earlier, 'utf8').trim().split('\n')).toHaveLength(3);
    // so is one whose only line a kill tore as it was written (ended first, the torn line kept)
    const torn = join(makeTempDir(), 'log.jsonl');
    writeFileSync(torn, '{"step":1,"loss":2.3,"lr":0.00');
    await fitRun({ maxSteps: 2, logFile: torn }, dataFile());
    expect(readFileSync(torn, 'utf8').startsWith('{"step":1,"loss":2.3,"lr":0.00\n{"step":1,')).toBe(true);
  });
});
