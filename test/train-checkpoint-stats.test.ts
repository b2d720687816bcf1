// A checkpoint's data statistics are those of its own position: the rows its steps consumed, not the
// batch read ahead while its last step ran. A run resumed from it reports, at its end, the statistics of
// the same run done without interruption (skipped malformed lines, rows without "pos" or "neg").
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listRunCheckpoints, readTrainerState } from '../src/train/checkpoint.js';
import type { TrainerOptions } from '../src/train/trainer.js';
import type { DataStats } from '../src/data/pairs.js';
import { fitOnce, type Fitted } from './helpers/fit.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

type Kind = 'row' | 'bad' | 'noPos' | 'noNeg';

// 40 usable rows (10 steps of 4 an epoch) with 8 malformed lines (more than firstBadLines keeps), 3 rows
// without positives and 3 without negatives among them, one malformed line last
const SPECIAL: Record<number, Kind[]> = {
  2: ['bad'], 5: ['noPos'], 7: ['noNeg'], 9: ['bad'], 13: ['bad', 'noPos'], 18: ['noNeg'], 21: ['bad'],
  25: ['bad', 'bad'], 30: ['noPos'], 33: ['noNeg'], 39: ['bad'], 40: ['bad'],
};

interface State {
  globalStep: number;
  data: { position: { epoch: number; groups: number }; stats: DataStats };
}

describe('checkpoint data statistics', () => {
  let modelDir: string;
  let dataFile: string;
  /** Each line's kind, in file order. */
  const kinds: Kind[] = [];
  const base: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, skipBadLines: true, saveTotalLimit: 0 };

  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    const rows = topicData(10, 40, 4).rows;
    const lines: string[] = [];
    for (let i = 0; i <= rows.length; i++) {
      for (const k of SPECIAL[i] ?? []) {
        kinds.push(k);
        const r = rows[i % rows.length]!;
        if (k === 'bad') lines.push(lines.length % 2 ? '{"query": "cut off' : JSON.stringify({ query: 7, pos: r.pos, neg: r.neg }));
        if (k === 'noPos') lines.push(JSON.stringify({ ...r, pos: [] }));
        if (k === 'noNeg') lines.push(JSON.stringify({ ...r, neg: [] }));
      }
      if (i === rows.length) break;
      kinds.push('row');
      lines.push(JSON.stringify(rows[i]));
    }
    dataFile = join(root, 'data.jsonl');
    writeFileSync(dataFile, lines.join('\n') + '\n');
  });

  /** The counts of file order's lines up to the `groups`-th usable row (all lines when past the last). */
  function statsBefore(groups: number): DataStats {
    const s: DataStats = { rows: 0, badLines: 0, firstBadLines: [], noPositive: 0, noNegative: 0 };
    for (const [i, k] of kinds.entries()) {
      if (k === 'row' && s.rows === groups) break;
      if (k === 'row') s.rows++;
      if (k === 'noPos') s.noPositive++;
      if (k === 'noNeg') s.noNegative++;
      if (k === 'bad' && s.badLines++ < 5) s.firstBadLines.push(i + 1);
    }
    return s;
  }

  const fitRun = (options: TrainerOptions, abortAt?: number, data = dataFile): Promise<Fitted> => fitOnce(modelDir, { ...base, ...options }, data, { abortAt });

  const stateOf = (dir: string): State => readTrainerState(dir) as unknown as State;
  const epochNotices = (notices: string[]): string[] => notices.filter((m) => /^epoch \d+: /.test(m));

  it('the data file is as planned', () => {
    expect(statsBefore(Infinity)).toEqual({ rows: 40, badLines: 8, firstBadLines: [3, 13, 18, 29, 34], noPositive: 3, noNegative: 3 });
  });

  it("each checkpoint's stats are those of the rows before its position, in file order (shuffleBuffer 0)", async () => {
    const out = makeTempDir();
    const r = await fitRun({ epochs: 1, shuffleBuffer: 0, outputDir: out, saveSteps: 3 });
    expect(r.result).toMatchObject({ step: 10, stoppedBy: 'epochs' });
    expect(r.result.stats).toEqual(statsBefore(Infinity));
    const states = listRunCheckpoints(out).map((c) => stateOf(c.dir));
    expect(states.map((s) => s.globalStep)).toEqual([3, 6, 9, 10]);
    for (const s of states) {
      const { epoch, groups } = s.data.position;
      // the epoch's end is saved as the next one's start, with the whole epoch's counts
      const expected = epoch === 1 && groups === 0 ? statsBefore(Infinity) : statsBefore(groups);
      expect(s.data.stats, `checkpoint-${s.globalStep}`).toEqual(expected);
    }
  });

  it("a stopped run's checkpoint and result count the rows it trained on, not the batch read ahead", async () => {
    const out = makeTempDir();
    const r = await fitRun({ epochs: 2, shuffleBuffer: 0, outputDir: out, saveSteps: 0 }, 3);
    expect(r.result).toMatchObject({ step: 3, stoppedBy: 'aborted' });
    const s = stateOf(join(out, 'checkpoint-3'));
    expect(s.data.position).toMatchObject({ epoch: 0, groups: 12 });
    expect(s.data.stats).toEqual(statsBefore(12));
    expect(r.result.stats).toEqual(statsBefore(12));
  });

  it("with a shuffle buffer, a checkpoint's stats are those of a run that stopped at its step", async () => {
    const out = makeTempDir();
    await fitRun({ epochs: 1, shuffleBuffer: 8, outputDir: out, saveSteps: 2 });
    for (const step of [2, 4, 6]) {
      const stopped = await fitRun({ maxSteps: step, shuffleBuffer: 8 });
      expect(stateOf(join(out, `checkpoint-${step}`)).data.stats, `checkpoint-${step}`).toEqual(stopped.result.stats);
    }
  });

  for (const shuffleBuffer of [0, 8]) {
    it(`a run resumed from its checkpoints reports the uninterrupted run's stats (shuffleBuffer ${shuffleBuffer})`, async () => {
      const o: TrainerOptions = { epochs: 2, shuffleBuffer, saveSteps: 5 };
      const straight = await fitRun({ ...o, outputDir: makeTempDir() });
      expect(straight.result).toMatchObject({ step: 20, stoppedBy: 'epochs' });
      expect(straight.result.stats).toEqual(statsBefore(Infinity));

      // stopped in epoch 1, again in epoch 2 (3 steps past the checkpoint of step 10), then to the end
      const out = makeTempDir();
      const a = await fitRun({ ...o, outputDir: out }, 3);
      const b = await fitRun({ ...o, outputDir: out, resume: true }, 13);
      const c = await fitRun({ ...o, outputDir: out, resume: true });
      expect([a, b, c].map((x) => [x.result.startStep, x.result.step])).toEqual([[0, 3], [3, 13], [13, 20]]);
      expect(c.result.stats).toEqual(straight.result.stats);
      expect(epochNotices([...a.notices, ...b.notices, ...c.notices])).toEqual(epochNotices(straight.notices));
      expect(epochNotices(straight.notices)).toEqual([
        'epoch 1: 40 rows used; skipped 8 malformed, 3 with empty "pos", 3 with empty "neg"',
        'epoch 2: 40 rows used; skipped 8 malformed, 3 with empty "pos", 3 with empty "neg"',
      ]);
      // the interrupted run's checkpoints hold what the uninterrupted run's hold at the same steps
      for (const step of [3, 5, 10, 13, 15, 20]) {
        const dir = join(out, `checkpoint-${step}`);
        if (step % 5 === 0) expect(stateOf(dir).data, `checkpoint-${step}`).toEqual(stateOf(join(straight.result.checkpoint!, '..', `checkpoint-${step}`)).data);
        if (shuffleBuffer === 0) {
          const { epoch, groups } = stateOf(dir).data.position;
          expect(stateOf(dir).data.stats, `checkpoint-${step}`).toEqual(groups === 0 && epoch > 0 ? statsBefore(Infinity) : statsBefore(groups));
        }
      }
    });
  }

  it("a resume into other data forgets the old data's counts, at an epoch's boundary too", async () => {
    const out = makeTempDir();
    await fitRun({ epochs: 1, shuffleBuffer: 0, saveSteps: 10, outputDir: out });
    expect(stateOf(join(out, 'checkpoint-10')).data).toMatchObject({ position: { epoch: 1, groups: 0 }, stats: statsBefore(Infinity) });
    // the usable rows alone: nothing left to do in epoch 1, and none of the old data's skipped lines
    const clean = join(makeTempDir(), 'clean.jsonl');
    const lines = readFileSync(dataFile, 'utf8').split('\n');
    writeFileSync(clean, kinds.flatMap((k, i) => (k === 'row' ? [lines[i]!] : [])).join('\n') + '\n');
    const r = await fitRun({ epochs: 1, shuffleBuffer: 0, outputDir: out, resume: true, allowChangedConfig: true }, undefined, clean);
    expect(r.result).toMatchObject({ stoppedBy: 'alreadyDone', step: 10 });
    expect(r.result.stats).toEqual({ rows: 0, badLines: 0, firstBadLines: [], noPositive: 0, noNegative: 0 });
  });

  it('a resume that finds nothing left to do reports its checkpoint\'s stats; a checkpoint without stats still resumes', async () => {
    const out = makeTempDir();
    const o: TrainerOptions = { maxSteps: 4, shuffleBuffer: 0, saveSteps: 2, outputDir: out };
    await fitRun(o);
    const done = await fitRun({ ...o, resume: true });
    expect(done.result).toMatchObject({ stoppedBy: 'alreadyDone', step: 4 });
    expect(done.result.stats).toEqual(statsBefore(16));

    // an older or hand-made state: no data.stats
    const file = join(out, 'checkpoint-2', 'trainer_state.json');
    const state = JSON.parse(readFileSync(file, 'utf8')) as { data: Record<string, unknown> };
    delete state.data['stats'];
    writeFileSync(file, JSON.stringify(state));
    const forked = makeTempDir();
    const r = await fitRun({ ...o, outputDir: forked, resume: join(out, 'checkpoint-2') });
    expect(r.result).toMatchObject({ startStep: 2, step: 4, stoppedBy: 'maxSteps' });
    expect(r.result.stats).toEqual(statsBefore(16));
    expect(stateOf(join(forked, 'checkpoint-4')).data.stats).toEqual(statsBefore(16));
  });
});
