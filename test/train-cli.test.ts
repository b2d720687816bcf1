// `l2e train` end to end on a tiny model, in-process through main(argv): the JSONL log, checkpoints,
// --resume up to a new --max-steps, SIGINT saving a checkpoint, bad data naming file:line, --help.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, removeTempDirs, sharedTokenizer, writeTinyModel } from './helpers/tinyModel.js';

const hasTokenizer = existsSync(sharedTokenizer);

/** Runs `l2e ...args` and returns the exit code with what it wrote. */
async function l2e(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function logLines(file: string): { step: number; loss: number; lr: number; gradNorm: number; tokensPerSecond: number }[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe.skipIf(!hasTokenizer)(`l2e train ${hasTokenizer ? '' : '(skipped: ../shared tokenizer not found)'}`, () => {
  let modelDir: string;
  let data: string;
  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    data = join(root, 'data.jsonl');
    writeFileSync(data, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(() => removeTempDirs());

  it('trains, logs one object per step, checkpoints, and --resume continues to the new --max-steps', async () => {
    const out = join(makeTempDir(), 'run');
    const log = join(out, 'log.jsonl');
    const common = ['--data', data, '--output', out, '--batch-size', '4', '--lr', '1e-3', '--log', log, '--save-steps', '2'];
    const r = await l2e('train', '--model', modelDir, ...common, '--max-steps', '4');
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/4 steps .*model saved to/);
    let lines = logLines(log);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    for (const l of lines) {
      expect(Number.isFinite(l.loss) && l.loss > 0).toBe(true);
      expect(l.lr).toBe(1e-3);
      expect(l.gradNorm).toBeGreaterThan(0);
      expect(l.tokensPerSecond).toBeGreaterThan(0);
    }
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2, 4]);
    const m = await EmbeddingModel.load(out);
    m.dispose();

    // continue without --model: loaded from the newest checkpoint
    const r2 = await l2e('train', ...common, '--resume', '--max-steps', '6');
    expect(r2.code).toBe(0);
    expect(r2.err).toMatch(/resuming from .*checkpoint-4: step 4/);
    lines = logLines(log);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2, 4, 6]);
  });

  it('SIGINT finishes the current step, saves a checkpoint and exits cleanly', async () => {
    const out = makeTempDir();
    const log = join(out, 'log.jsonl');
    const poll = setInterval(() => {
      if (existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 2) {
        clearInterval(poll);
        process.emit('SIGINT');
      }
    }, 1);
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '4', '--max-steps', '100000', '--log', log, '--save-steps', '0');
    clearInterval(poll);
    expect(r.code).toBe(130);
    const steps = logLines(log).map((l) => l.step);
    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(r.err).toMatch(/interrupted: finishing the current step/);
    expect(r.err).toMatch(/continue with --resume/);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([steps.at(-1)]);
    expect(process.listenerCount('SIGINT')).toBe(0);
  });

  it('bad data names file:line; --skip-bad-lines continues; bad options are usage errors', async () => {
    const bad = join(makeTempDir(), 'bad.jsonl');
    writeFileSync(bad, readFileSync(data, 'utf8').split('\n').slice(0, 8).join('\n') + '\n{"query": "x", "pos": "oops", "neg": []}\n');
    const out = makeTempDir();
    const r = await l2e('train', '--model', modelDir, '--data', bad, '--output', out, '--batch-size', '4', '--max-steps', '3');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.jsonl:9: "pos" must be an array of strings/);
    const ok = await l2e('train', '--model', modelDir, '--data', bad, '--output', out, '--batch-size', '4', '--max-steps', '3', '--skip-bad-lines', '--no-shuffle');
    expect(ok.code).toBe(0);
    expect(ok.err).toMatch(/skipped 1 malformed/);
    const u = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--schedule', 'exp');
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/unknown lr schedule "exp"/);
  });

  it('--help explains the options', async () => {
    const r = await l2e('train', '--help');
    expect(r.code).toBe(0);
    for (const o of ['--batch-size', '--group-size', '--temperature', '--gradient-accumulation-steps', '--resume', '--no-shuffle', '--in-batch-negatives']) {
      expect(r.out).toContain(o.replace('--no-shuffle', 'pre-shuffled'));
    }
  });
});
