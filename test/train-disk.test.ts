// Disk space is checked before anything is written: a run whose output disk cannot hold a checkpoint
// and the final model is refused at the start; a checkpoint that no longer fits is refused before it
// is written, keeping the previous one. (The free space is simulated here; train-nospace.test.ts uses
// a real small tmpfs where it may mount one.)
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { TOKENIZER_FILES, listCheckpoints } from '../src/train/checkpoint.js';
import { freeBytes } from '../src/util/disk.js';
import { formatBytes } from '../src/util/format-bytes.js';
import { Trainer, type StepInfo, type TrainerOptions } from '../src/train/trainer.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

vi.mock('../src/util/disk.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/util/disk.js')>();
  return { ...actual, freeBytes: vi.fn(actual.freeBytes) };
});


describe('training and disk space', () => {
  let modelDir: string;
  let data: string;
  const opts: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16 };
  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    data = join(root, 'data.jsonl');
    writeFileSync(data, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
  afterEach(async () => {
    const actual = await vi.importActual<typeof import('../src/util/disk.js')>('../src/util/disk.js');
    vi.mocked(freeBytes).mockImplementation(actual.freeBytes);
  });

  /** The sizes the trainer plans with: weights (+ 2 AdamW moments for a checkpoint), tokenizer files, 64 KiB of headers. */
  function planned(model: EmbeddingModel): { checkpoint: number; model: number } {
    const numel = model.native.params().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    let tokenizer = 0;
    for (const f of TOKENIZER_FILES) if (existsSync(join(modelDir, f))) tokenizer += statSync(join(modelDir, f)).size;
    return { checkpoint: 12 * numel + tokenizer + 65536, model: 4 * numel + tokenizer + 65536 };
  }

  it('a disk that cannot hold a checkpoint and the final model is refused before anything is written', async () => {
    const out = join(makeTempDir(), 'run');
    const model = await EmbeddingModel.load(modelDir);
    const size = planned(model);
    vi.mocked(freeBytes).mockReturnValue(size.checkpoint + size.model - 1);
    const steps: StepInfo[] = [];
    await expect(new Trainer(model, { ...opts, maxSteps: 4, outputDir: out }).fit(data, { onNotice: () => {}, onStep: (s) => steps.push(s) })).rejects.toThrow(
      `not enough disk space for ${out}: a checkpoint takes about ${formatBytes(size.checkpoint)} (weights and AdamW moments) ` +
        `and the final model ${formatBytes(size.model)}, but only ${formatBytes(size.checkpoint + size.model - 1)} is free there; ` +
        'free some space or use another outputDir',
    );
    expect(steps).toEqual([]);
    expect(existsSync(out)).toBe(false);
    // exactly enough: it trains
    vi.mocked(freeBytes).mockReturnValue(size.checkpoint + size.model);
    const r = await new Trainer(model, { ...opts, maxSteps: 1, outputDir: out }).fit(data, { onNotice: () => {} });
    expect(r.modelDir).toBe(out);
    model.dispose();
  });

  it('a checkpoint that no longer fits is refused before it is written; the previous one is intact', async () => {
    const out = makeTempDir();
    const model = await EmbeddingModel.load(modelDir);
    const size = planned(model);
    const trainer = new Trainer(model, { ...opts, maxSteps: 6, outputDir: out, saveSteps: 2 });
    const notices: string[] = [];
    const err = await trainer
      .fit(data, { onNotice: (m) => notices.push(m), onStep: (s) => s.step === 3 && vi.mocked(freeBytes).mockReturnValue(1000) })
      .then(() => null, (e: unknown) => e);
    // said once, as the error: the save of that step was not tried again (its notice said it all a second time)
    expect(notices.filter((m) => m.includes('could not save'))).toEqual([]);
    expect((err as Error).message).toBe(
      `could not save the checkpoint of step 4 to ${join(out, 'checkpoint-4')}: not enough disk space ` +
        `(it takes about ${formatBytes(size.checkpoint)}, 1.00 kB is free); the previous checkpoint ${join(out, 'checkpoint-2')} is intact`,
    );
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2]);
    expect(readdirSync(out).sort()).toEqual(['checkpoint-2', 'training_run.json']);
    model.dispose();
  });

  it('formatBytes: decimal units, three significant digits', () => {
    expect([999, 1000, 12_345, 4_000_000, 120_500_000_000, 2e15].map(formatBytes)).toEqual(['999 B', '1.00 kB', '12.3 kB', '4.00 MB', '121 GB', '2.00 PB']);
  });
});
