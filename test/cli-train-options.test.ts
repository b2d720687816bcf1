// Every `l2e train` option reaches the trainer (or the model loader): a table of flag → option, each
// given a value unlike its default and checked where it lands; the table must name every option.
// The trainer and the loader are replaced by recorders, so no model is built and nothing is trained.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { command as trainCommand } from '../src/cli/train.js';
import { parseSchedule } from '../src/train/schedule.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir } from './helpers/tinyModel.js';

const seen = vi.hoisted(() => ({
  trainer: [] as Record<string, unknown>[],
  fit: [] as string[],
  load: [] as { dir: string; opts: Record<string, unknown> }[],
}));

vi.mock('../src/train/trainer.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/train/trainer.js')>()),
  Trainer: class {
    constructor(_model: unknown, options: Record<string, unknown>) {
      seen.trainer.push(options);
    }
    async fit(file: string) {
      seen.fit.push(file);
      return { step: 1, startStep: 0, seconds: 1, runId: 'r', stoppedBy: 'maxSteps', lastLoss: 0.5, stats: { rows: 1, badLines: 0, firstBadLines: [], noPositive: 0, noNegative: 0 }, checkpoint: null, modelDir: 'out' };
    }
  },
}));

vi.mock('../src/model/embedding-model.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/model/embedding-model.js')>()),
  EmbeddingModel: {
    load: async (dir: string, opts: Record<string, unknown>) => {
      seen.load.push({ dir, opts });
      return { dir, dispose: () => {} };
    },
  },
}));


// a --resume folder is checked to be a checkpoint (trainer_state.json) before anything loads
const ckptDir = join(makeTempDir(), 'checkpoint-3');
mkdirSync(ckptDir);
writeFileSync(join(ckptDir, 'trainer_state.json'), '{}');

type Where = 'trainer' | 'load' | 'fit';
/** flag arguments, where the value lands, under which key, and the value expected there. */
const TABLE: [string[], Where, string, unknown][] = [
  [['--model', 'other-model'], 'load', 'dir', 'other-model'],
  [['--data', 'other.jsonl'], 'fit', 'file', 'other.jsonl'],
  [['--output', 'other-out'], 'trainer', 'outputDir', 'other-out'],
  [['--batch-size', '5'], 'trainer', 'batchSize', 5],
  [['--group-size', '4'], 'trainer', 'groupSize', 4],
  [['--temperature', '0.05'], 'trainer', 'temperature', 0.05],
  [['--lr', '3e-4'], 'trainer', 'lr', 3e-4],
  [['--epochs', '3'], 'trainer', 'epochs', 3],
  [['--max-steps', '7'], 'trainer', 'maxSteps', 7],
  [['--schedule', 'linear'], 'trainer', 'schedule', parseSchedule('linear')],
  [['--warmup-steps', '9'], 'trainer', 'warmupSteps', 9],
  [['--warmup-ratio', '0.2'], 'trainer', 'warmupRatio', 0.2],
  [['--max-grad-norm', '0.7'], 'trainer', 'maxGradNorm', 0.7],
  [['--weight-decay', '0.03'], 'trainer', 'weightDecay', 0.03],
  [['--adam-beta1', '0.85'], 'trainer', 'beta1', 0.85],
  [['--adam-beta2', '0.98'], 'trainer', 'beta2', 0.98],
  [['--adam-epsilon', '1e-7'], 'trainer', 'eps', 1e-7],
  [['--query-max-len', '33'], 'trainer', 'queryMaxLen', 33],
  [['--passage-max-len', '44'], 'trainer', 'passageMaxLen', 44],
  [['--chunk-tokens', '555'], 'trainer', 'chunkTokens', 555],
  [['--gradient-accumulation-steps', '2'], 'trainer', 'gradientAccumulationSteps', 2],
  [['--save-steps', '11'], 'trainer', 'saveSteps', 11],
  [['--save-total-limit', '2'], 'trainer', 'saveTotalLimit', 2],
  [['--resume'], 'trainer', 'resume', true],
  [['--resume', ckptDir, '--model', 'm'], 'trainer', 'resume', ckptDir],
  [['--overwrite'], 'trainer', 'overwrite', true],
  [['--allow-changed-config', '--resume'], 'trainer', 'allowChangedConfig', true],
  [['--seed', '13'], 'trainer', 'seed', 13],
  [['--seed', '13'], 'load', 'seed', 13],
  [['--log', 'steps.jsonl'], 'trainer', 'logFile', 'steps.jsonl'],
  [['--no-in-batch-negatives'], 'trainer', 'inBatchNegatives', false],
  [['--skip-bad-lines'], 'trainer', 'skipBadLines', true],
  [['--no-shuffle'], 'trainer', 'shuffleBuffer', 0],
  [['--shuffle-buffer', '77'], 'trainer', 'shuffleBuffer', 77],
  [['--shuffle-buffer', 'all'], 'trainer', 'shuffleBuffer', 'all'],
  [['--num-layers', '1'], 'load', 'numLayers', 1],
  [['--dense-size', '8'], 'load', 'denseSize', 8],
  [['--device', 'cuda'], 'load', 'device', 'cuda'],
];

describe('l2e train option mapping', () => {
  let out: string;
  beforeEach(() => {
    seen.trainer.length = 0;
    seen.fit.length = 0;
    seen.load.length = 0;
    out = join(makeTempDir(), 'run');
  });

  /** Runs train with the base arguments overridden by `extra`; returns where each value landed. */
  async function landed(extra: string[]): Promise<Record<Where, Record<string, unknown>>> {
    seen.trainer.length = seen.fit.length = seen.load.length = 0;
    const base: Record<string, string> = { '--model': 'base-model', '--data': 'base.jsonl', '--output': out };
    const args = ['train'];
    for (const [flag, value] of Object.entries(base)) if (!extra.includes(flag)) args.push(flag, value);
    const r = await l2e(...args, ...extra);
    expect(r.err).not.toMatch(/error|usage/i);
    expect(r.code).toBe(0);
    expect(seen.trainer).toHaveLength(1);
    return { trainer: seen.trainer[0]!, load: { dir: seen.load[0]!.dir, ...seen.load[0]!.opts }, fit: { file: seen.fit[0]! } };
  }

  it('names every option of l2e train', () => {
    const flags = new Set(TABLE.flatMap(([args]) => args.filter((a) => a.startsWith('--')).map((a) => a.replace(/^--(no-)?/, ''))));
    expect([...Object.keys(trainCommand.options)].filter((name) => !flags.has(name))).toEqual([]);
  });

  it.each(TABLE)('%j reaches %s as %s', async (extra, where, key, expected) => {
    const without = await landed([]);
    expect(without[where][key], 'the test value must differ from the default').not.toEqual(expected);
    const withFlag = await landed(extra);
    expect(withFlag[where][key]).toEqual(expected);
  });
});
