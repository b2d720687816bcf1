// The per-step log (TrainerOptions.logFile, `--log`): refused before training when it is a folder or the
// training data itself (links followed), and on resume the lines of steps after the checkpoint that a
// killed run logged are dropped, so the log holds each step once.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { Trainer, type StepInfo, type TrainerOptions } from '../src/train/trainer.js';
import { l2e } from './helpers/cli.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const base: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16, maxGradNorm: 1, saveTotalLimit: 0 };

describe('the training log', () => {
  let modelDir: string;
  let data: string;
  let dataText: string;

  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    data = join(root, 'data.jsonl');
    dataText = topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
    writeFileSync(data, dataText);
  });

  async function fit(options: TrainerOptions, abortAt?: number): Promise<{ steps: StepInfo[]; notices: string[] }> {
    const model = await EmbeddingModel.load(modelDir);
    const steps: StepInfo[] = [];
    const notices: string[] = [];
    const ac = new AbortController();
    try {
      await new Trainer(model, { ...base, ...options }).fit(data, {
        signal: ac.signal,
        onNotice: (m) => notices.push(m),
        onStep: (s) => {
          steps.push(s);
          if (s.step === abortAt) ac.abort();
        },
      });
      return { steps, notices };
    } finally {
      model.dispose();
    }
  }

  it('the data file as the log (or a link to it) is refused before training, the data untouched', async () => {
    const link = join(makeTempDir(), 'link.jsonl');
    symlinkSync(data, link);
    for (const log of [data, link]) {
      await expect(fit({ maxSteps: 2, logFile: log })).rejects.toThrow(
        new Error(`logFile ${log} is the training data (${data}): the per-step lines would be appended to it; give another file`),
      );
    }
    expect(readFileSync(data, 'utf8')).toBe(dataText);
  });

  it('a log the run would replace or remove in its output folder is refused before training (it was lost without a word)', async () => {
    const root = makeTempDir();
    const out = join(root, 'out');
    const runs = `the run writes in outputDir ${out}`;
    const cases: [string, string][] = [
      [join(out, 'config.json'), `logFile ${join(out, 'config.json')} is the config.json ${runs}: give a file the run does not write`],
      [join(out, 'training_run.json'), `logFile ${join(out, 'training_run.json')} is the training_run.json ${runs}: give a file the run does not write`],
      [
        join(out, 'checkpoint-2', 'train.log'),
        `logFile ${join(out, 'checkpoint-2', 'train.log')} is in checkpoint-2, a checkpoint folder ${runs} (replaced when saved again, removed by the limit): give a file outside it`,
      ],
    ];
    // a link to the output folder is the output folder
    mkdirSync(out);
    symlinkSync(out, join(root, 'via'));
    cases.push([join(root, 'via', 'model.safetensors'), `logFile ${join(root, 'via', 'model.safetensors')} is the model.safetensors ${runs}: give a file the run does not write`]);
    for (const [log, said] of cases) await expect(fit({ maxSteps: 2, saveSteps: 2, outputDir: out, logFile: log })).rejects.toThrow(new Error(said));
    expect(readdirSync(out)).toEqual([]);
    // beside the run's files it is fine
    const ok = await fit({ maxSteps: 2, saveSteps: 2, outputDir: out, logFile: join(out, 'train.log') });
    expect(ok.steps).toHaveLength(2);
    expect(readFileSync(join(out, 'train.log'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('a stop before step 1 leaves no empty log and no empty output folder that the run made', async () => {
    const root = makeTempDir();
    const out = join(root, 'out');
    for (const log of [join(out, 'train.log'), join(root, 'train.log')]) {
      const model = await EmbeddingModel.load(modelDir);
      const ac = new AbortController();
      try {
        const r = await new Trainer(model, { ...base, maxSteps: 3, outputDir: out, logFile: log }).fit(data, { signal: ac.signal, onNotice: () => {}, onStart: () => ac.abort() });
        expect(r).toMatchObject({ stoppedBy: 'aborted', step: 0 });
      } finally {
        model.dispose();
      }
      expect(readdirSync(root)).toEqual([]);
    }
    // a log that was there stays, empty or not
    writeFileSync(join(root, 'kept.log'), '');
    const model = await EmbeddingModel.load(modelDir);
    const ac = new AbortController();
    try {
      await new Trainer(model, { ...base, maxSteps: 3, outputDir: out, logFile: join(root, 'kept.log') }).fit(data, { signal: ac.signal, onNotice: () => {}, onStart: () => ac.abort() });
    } finally {
      model.dispose();
    }
    expect(readdirSync(root)).toEqual(['kept.log']);
  });

  it('`l2e train` names --log', async () => {
    const out = join(makeTempDir(), 'out');
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--max-steps', '2', '--log', data);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`l2e train: error: --log ${data} is the training data (${data}): the per-step lines would be appended to it; give another file\n`);
    expect(readFileSync(data, 'utf8')).toBe(dataText);
  });

  // the log was opened at each step: a named pipe's reader saw the end of its input after the first
  // line, and the next step's open waited, deaf to Ctrl-C, for a reader that would never come
  it.skipIf(process.platform === 'win32')('a named pipe as the log gets every step, read by one reader; one with no reader is waited for, and a stop ends the wait', async () => {
    const dir = makeTempDir();
    const fifo = join(dir, 'steps');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const reader = spawn('timeout', ['60', 'cat', fifo]);
    let got = '';
    reader.stdout.on('data', (d: Buffer) => (got += d.toString()));
    const closed = new Promise((resolve) => reader.on('close', resolve));
    const { steps } = await fit({ maxSteps: 3, logFile: fifo });
    await closed; // the run closed the pipe: its reader saw the end once, after the last step
    expect(got.trim().split('\n').map((line) => (JSON.parse(line) as StepInfo).step)).toEqual(steps.map((s) => s.step));
    expect(steps).toHaveLength(3);

    // no reader: the run waits for one, without holding the event loop; a stop ends the wait, before any step
    const model = await EmbeddingModel.load(modelDir);
    const ac = new AbortController();
    const notices: string[] = [];
    try {
      const run = new Trainer(model, { ...base, maxSteps: 3, logFile: fifo }).fit(data, { signal: ac.signal, onNotice: (m) => notices.push(m) });
      await new Promise((r) => setTimeout(r, 500));
      expect(notices).toContain(`logFile ${fifo} is a named pipe that no process reads yet: waiting for its reader`);
      ac.abort();
      const result = await run;
      expect([result.stoppedBy, result.step]).toEqual(['aborted', 0]);
    } finally {
      model.dispose();
    }
  });

  it('a folder as the log is refused before training', async () => {
    const dir = makeTempDir();
    const out = join(makeTempDir(), 'out');
    await expect(fit({ maxSteps: 2, logFile: dir, outputDir: out })).rejects.toThrow(
      new Error(`logFile ${dir} is a folder: give a file to append the per-step lines to`),
    );
  });

  it("on resume, a killed run's lines after the checkpoint go (other runs' lines before it stay)", async () => {
    const out = join(makeTempDir(), 'out');
    const log = join(makeTempDir(), 'log.jsonl');
    const earlier = Array.from({ length: 6 }, (_, i) => JSON.stringify({ step: i + 1, loss: 9 }) + '\n').join('');
    writeFileSync(log, earlier); // an earlier run's lines in the same log
    await fit({ maxSteps: 8, outputDir: out, logFile: log, saveSteps: 0 }, 4); // stopped: checkpoint-4
    // what a run killed at step 6 after that checkpoint would have left: steps 5, 6 and a torn line
    appendFileSync(log, '{"step":5,"loss":1}\n{"step":6,"loss":1}\n{"step":7,"lo');
    const { steps, notices } = await fit({ maxSteps: 8, outputDir: out, logFile: log, saveSteps: 0, resume: true });
    expect(steps.map((s) => s.step)).toEqual([5, 6, 7, 8]);
    expect(notices).toContain(`${log}: dropped 3 lines of steps after 4, the checkpoint's: the resumed run logs them again`);
    const logged = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(logged).toEqual([1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("a log shared with another run keeps that run's lines on resume, though its steps pass the checkpoint's", async () => {
    const out = join(makeTempDir(), 'out');
    const other = join(makeTempDir(), 'other');
    const log = join(makeTempDir(), 'log.jsonl');
    await fit({ maxSteps: 8, outputDir: out, logFile: log, saveSteps: 0 }, 4); // stopped: checkpoint-4
    await fit({ maxSteps: 6, outputDir: other, logFile: log, saveSteps: 0 }); // another run, steps 1-6, meanwhile
    const before = readFileSync(log, 'utf8');
    const { notices } = await fit({ maxSteps: 8, outputDir: out, logFile: log, saveSteps: 0, resume: true });
    expect(notices.some((m) => m.includes('dropped'))).toBe(false);
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { step: number; run: string });
    expect(readFileSync(log, 'utf8').startsWith(before)).toBe(true);
    const runs = [...new Set(lines.map((l) => l.run))];
    expect(runs).toHaveLength(2);
    expect(lines.map((l) => [runs.indexOf(l.run), l.step])).toEqual([
      ...[1, 2, 3, 4].map((st) => [0, st]),
      ...[1, 2, 3, 4, 5, 6].map((st) => [1, st]),
      ...[5, 6, 7, 8].map((st) => [0, st]),
    ]);
  });

  it("a checkpoint continued into another folder (a fork) is refused a log holding its run's later steps, which stay", async () => {
    const out = join(makeTempDir(), 'out');
    const log = join(makeTempDir(), 'log.jsonl');
    await fit({ maxSteps: 6, outputDir: out, logFile: log, saveSteps: 2 }); // steps 1-6, checkpoints 2, 4, 6
    const before = readFileSync(log, 'utf8');
    const fork = join(makeTempDir(), 'fork');
    const from = join(out, 'checkpoint-4');
    const runId = (JSON.parse(before.split('\n')[0]!) as { run: string }).run;
    await expect(fit({ maxSteps: 5, outputDir: fork, logFile: log, resume: from, saveSteps: 0 })).rejects.toThrow(
      `logFile ${log} holds 2 lines of run ${runId}'s steps after 4, logged where it went on past ${from}: ` +
        `continuing into another folder (${fork}) would drop them from it; give this run a log of its own`,
    );
    expect(readFileSync(log, 'utf8')).toBe(before);
    expect(existsSync(fork)).toBe(false);
    const own = join(makeTempDir(), 'fork.jsonl');
    const { steps } = await fit({ maxSteps: 5, outputDir: fork, logFile: own, resume: from, saveSteps: 0 });
    expect(steps.map((st) => st.step)).toEqual([5]);
  });

  it('a log without a line of the checkpoint step is left as it is', async () => {
    const out = join(makeTempDir(), 'out');
    const dir = makeTempDir();
    mkdirSync(join(dir, 'sub'));
    const log = join(dir, 'sub', 'log.jsonl');
    await fit({ maxSteps: 4, outputDir: out, saveSteps: 0 }, 2); // no log in the first run
    writeFileSync(log, '{"step":9}\n');
    const { notices } = await fit({ maxSteps: 4, outputDir: out, logFile: log, saveSteps: 0, resume: true });
    expect(notices.some((m) => m.includes('dropped'))).toBe(false);
    expect(readFileSync(log, 'utf8').split('\n')[0]).toBe('{"step":9}');
  });
});
