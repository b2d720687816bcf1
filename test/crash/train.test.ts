// `l2e train` with a checkpoint every step, SIGKILLed at random moments (fixed seed): whatever the
// kill interrupted (a step, or a checkpoint half-written), every checkpoint-N folder that exists
// loads whole (weights, AdamW moments, trainer state), `--resume` continues from the newest, and the
// run ends with exactly the weights of a run never interrupted. Temp folders of killed checkpoint
// writes are gone after the next run.
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { listCheckpoints, loadCheckpointMoments, readTrainerState } from '../../src/train/checkpoint.js';
import { topicData } from '../helpers/trainData.js';
import { makeTempDir, sharedTokenizer, writeTinyModel } from '../helpers/tinyModel.js';
import { killTimes, runL2e, trialCount } from './harness.js';

const hasTokenizer = existsSync(sharedTokenizer);
const STEPS = 16;

describe.skipIf(!hasTokenizer)(`l2e train under kill -9 ${hasTokenizer ? '' : '(skipped: ../shared tokenizer not found)'}`, () => {
  let modelDir = '';
  let data = '';
  let reference: Buffer;
  let runMs = 0;
  const common = () => ['--data', data, '--batch-size', '4', '--lr', '1e-3', '--save-steps', '1', '--max-steps', String(STEPS)];

  beforeAll(async () => {
    const root = makeTempDir('l2e-crash-train-');
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    data = join(root, 'data.jsonl');
    writeFileSync(data, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(root, 'reference');
    const t0 = Date.now();
    const r = await runL2e(['train', '--model', modelDir, '--output', out, ...common()]);
    runMs = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    reference = readFileSync(join(out, 'model.safetensors'));
  }, 300_000);

  /** Every checkpoint folder loads whole. */
  async function checkCheckpoints(out: string): Promise<number[]> {
    const steps: number[] = [];
    for (const c of listCheckpoints(out)) {
      const model = await EmbeddingModel.load(c.dir);
      try {
        const n = model.native.params().reduce((a, p) => a + p.numel, 0);
        const { m, v } = loadCheckpointMoments(c.dir, n);
        expect(m.length).toBe(n);
        expect(v.length).toBe(n);
        expect(readTrainerState(c.dir)['step'] ?? readTrainerState(c.dir)['globalStep'] ?? c.step).toBe(c.step);
      } finally {
        model.dispose();
      }
      steps.push(c.step);
    }
    return steps;
  }

  it('every checkpoint left by a kill loads, and resuming ends bit-exactly where an uninterrupted run does', async () => {
    const trials = trialCount(6);
    // past Node's start-up, up to the end of a run: kills land in steps and in checkpoint writes
    const times = killTimes(9, trials, Math.round(runMs * 0.4), runMs);
    const outcomes: string[] = [];
    for (const [i, t] of times.entries()) {
      const out = join(makeTempDir('l2e-crash-train-'), `run-${i}`);
      const r = await runL2e(['train', '--model', modelDir, '--output', out, ...common()], { killAfterMs: t });
      const temps = existsSync(out) ? readdirSync(out).filter((n) => n.startsWith('.')) : [];
      const kept = await checkCheckpoints(out);
      let resumed = 'finished before the kill';
      if (r.killed) {
        // resume from the newest checkpoint, or start again when the kill came before the first
        const again = kept.length
          ? await runL2e(['train', '--output', out, '--resume', ...common()])
          : await runL2e(['train', '--model', modelDir, '--output', out, ...common()]);
        expect(again.code, again.stderr + again.stdout).toBe(0);
        resumed = kept.length ? `resumed from step ${kept.at(-1)}` : 'started again (no checkpoint yet)';
      } else {
        expect(r.code, r.stderr).toBe(0);
      }
      expect(readFileSync(join(out, 'model.safetensors')).equals(reference), 'final weights equal the uninterrupted run').toBe(true);
      // a killed checkpoint write leaves a temp folder; the next run removes it
      expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);
      outcomes.push(`kill at ${t} ms: checkpoints [${kept.join(', ')}]${temps.length ? `, temp ${temps.join(' ')}` : ''}; ${resumed}`);
    }
    console.log(`train kill trials (run ${runMs} ms):\n  ${outcomes.join('\n  ')}`);
  }, 900_000);
});
