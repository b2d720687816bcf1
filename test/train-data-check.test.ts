// The training data is checked before the first step: every line read once (streamed), so a malformed
// line fails before any work, whatever its place in the file, and the schedule and progress count only
// the rows an epoch uses (rows with an empty "neg" when the group needs negatives, or malformed lines
// with skipBadLines, are not).
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { Trainer, type StepInfo, type TrainerOptions } from '../src/train/trainer.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const base: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16, maxGradNorm: 1, saveTotalLimit: 0 };
const jsonError = (text: string): string => {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  return '';
};

describe('training data checked before step 1', () => {
  let modelDir: string;
  let root: string;
  let lines: string[];

  beforeAll(() => {
    root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    lines = topicData(10, 40, 4).rows.map((r) => JSON.stringify(r));
  });

  async function fit(data: string, options: TrainerOptions): Promise<{ steps: StepInfo[]; notices: string[]; error: unknown }> {
    const model = await EmbeddingModel.load(modelDir);
    const steps: StepInfo[] = [];
    const notices: string[] = [];
    try {
      await new Trainer(model, { ...base, ...options }).fit(data, { onNotice: (m) => notices.push(m), onStep: (s) => steps.push(s) });
      return { steps, notices, error: null };
    } catch (err) {
      return { steps, notices, error: err };
    } finally {
      model.dispose();
    }
  }

  it('the schedule and progress count the usable rows: 20 of 40 with an empty "neg" are not', async () => {
    const file = join(root, 'half.jsonl');
    const rows = lines.map((l, i) => (i % 2 === 0 ? l : JSON.stringify({ ...(JSON.parse(l) as object), neg: [] })));
    writeFileSync(file, rows.join('\n') + '\n');
    const { steps, notices, error } = await fit(file, { schedule: 'linear' });
    expect(error).toBe(null);
    // 20 usable rows / 4 = 5 steps, the last at 1/5 of the peak (linear: to 0 after the last step)
    expect(steps.map((s) => [s.step, s.totalSteps])).toEqual([1, 2, 3, 4, 5].map((s) => [s, 5]));
    expect(steps.at(-1)!.lr).toBeCloseTo(1e-3 / 5, 12);
    expect(steps.at(-1)!.epoch).toBe(1);
    expect(notices[0]).toBe(`${file}: 20 usable rows; every epoch skips 0 rows with an empty "pos", 20 with an empty "neg"`);
  });

  it('a malformed last line fails before step 1 and before anything is written', async () => {
    const file = join(root, 'late.jsonl');
    writeFileSync(file, [...lines, '{"query": "x", oops'].join('\n') + '\n');
    const out = join(makeTempDir(), 'out');
    const { steps, error } = await fit(file, { shuffleBuffer: 0, saveSteps: 0, outputDir: out });
    expect((error as Error).message).toBe(`${file}:41: invalid JSON (${jsonError('{"query": "x", oops')})`);
    expect(steps).toEqual([]);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  it('with skipBadLines the malformed lines are reported at the start and not counted', async () => {
    const file = join(root, 'skip.jsonl');
    writeFileSync(file, [lines[0], 'not json', ...lines.slice(1, 38), '{"query": 1, "pos": [], "neg": []}', lines[38]].join('\n') + '\n');
    const { steps, notices, error } = await fit(file, { skipBadLines: true });
    expect(error).toBe(null);
    expect(notices[0]).toBe(
      `${file}: 39 usable rows; every epoch skips 2 malformed lines (${file}:2,40), 0 rows with an empty "pos", 0 with an empty "neg"`,
    );
    expect(steps.map((s) => s.totalSteps)).toEqual([10, 10, 10, 10, 10, 10, 10, 10, 10, 10]); // ceil(39 / 4)
  });

  it('no usable row is an error before step 1', async () => {
    const file = join(root, 'none.jsonl');
    writeFileSync(file, lines.map((l) => JSON.stringify({ ...(JSON.parse(l) as object), neg: [] })).join('\n') + '\n');
    const { steps, error } = await fit(file, {});
    expect((error as Error).message).toBe(`${file}: no usable training rows: 0 malformed, 0 with an empty "pos", 40 with an empty "neg" (group size 3 needs negatives)`);
    expect(steps).toEqual([]);
  });

  it('rows without a positive are not blamed on negatives', async () => {
    const file = join(root, 'nopos.jsonl');
    writeFileSync(file, lines.slice(0, 3).map((l) => JSON.stringify({ ...(JSON.parse(l) as object), pos: [] })).join('\n') + '\n');
    const { error } = await fit(file, { groupSize: 1 });
    expect((error as Error).message).toBe(`${file}: no usable training rows: 0 malformed, 3 with an empty "pos", 0 with an empty "neg"`);
  });

  // read once to check it, it would be empty for the epochs: refused before anything is read or written
  it.skipIf(process.platform === 'win32')('stdin and a pipe are refused as data, saying why', async () => {
    const fifo = join(makeTempDir(), 'rows.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const out = join(makeTempDir(), 'out');
    for (const [data, what] of [['-', 'stdin'], [fifo, 'a pipe']] as const) {
      const { steps, error } = await fit(data, { outputDir: out });
      expect((error as Error).message).toBe(
        `${data}: training reads its data more than once (checked whole before the first step, then once an epoch), ` +
          `and ${what} can be read only once: save the rows to a file and give that`,
      );
      expect(steps).toEqual([]);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('lines that are not UTF-8 are warned about once, before step 1, not every epoch', async () => {
    const file = join(root, 'latin1.jsonl');
    const latin1 = Buffer.from('{"query": "caf\u00e9", "pos": ["x"], "neg": ["y"]}\n', 'latin1');
    writeFileSync(file, Buffer.concat([Buffer.from(lines.slice(0, 3).join('\n') + '\n'), latin1, Buffer.from(lines.slice(3).join('\n') + '\n')]));
    const model = await EmbeddingModel.load(modelDir);
    const events: string[] = [];
    try {
      await new Trainer(model, { ...base, epochs: 2 }).fit(file, { onNotice: (m) => events.push(m), onStep: (s) => events.push(`step ${s.step}`) });
    } finally {
      model.dispose();
    }
    expect(events.filter((e) => !e.startsWith('step '))).toEqual([`${file}: 1 line has bytes that are not UTF-8, read as U+FFFD (the first: ${file}:4)`]);
    expect(events[0]).toMatch(/not UTF-8/);
  });
});
