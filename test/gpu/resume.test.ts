// Resuming training on CUDA continues from the checkpoint, not from the base model: 3 steps, a
// checkpoint, a fresh process state (the base model loaded again, then --resume), 3 more steps must
// equal 6 straight steps bit for bit, losses and weights. Deterministic mode (L2E_DETERMINISTIC=1)
// takes the atomics out of the embedding backward; the attention backward still sums dQ with atomics
// over key blocks of 64, so the step is reproducible only while every text fits one block, as these
// (about 10 tokens) do.
//
// What it guards: the fp32 master weights have one owner. trainInit seeds them from the loaded
// weights; writing a parameter afterwards (setTensor, loadTensors: the checkpoint's weights) must
// write the master too, or the first AdamW step writes the stale master (the base model) back.
// The checkpoint stores the master (getTensor reads it while training), not its bf16 rounding.
// The model has head dim 64 and GQA 2/1, so the tensor-core attention kernels run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../../src/model/safetensors.js';
import { trainNatives } from '../../src/train/native-train.js';
import { Trainer, type StepInfo, type TrainerOptions } from '../../src/train/trainer.js';
import { topicData } from '../helpers/trainData.js';
import { makeTempDir, removeTempDirs, sharedTokenizer, writeTinyModel } from '../helpers/tinyModel.js';
import { bf16Array, cudaDevice, gpu, gpuNote } from './gpu-helpers.js';

const hasTokenizer = existsSync(sharedTokenizer);

describe.skipIf(!gpu.usable || !hasTokenizer)(`CUDA training resume ${gpuNote}${hasTokenizer ? '' : ' (skipped: ../shared tokenizer not found)'}`, () => {
  let modelDir: string;
  let dataFile: string;
  const base: TrainerOptions = { batchSize: 4, groupSize: 2, lr: 1e-3, seed: 1, shuffleBuffer: 16, maxGradNorm: 1 };
  const saved = process.env['L2E_DETERMINISTIC'];

  beforeAll(() => {
    process.env['L2E_DETERMINISTIC'] = '1';
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 128, heads: 2, kvHeads: 1, intermediate: 96, layers: 2, dense: 32, seed: 4 });
    dataFile = join(root, 'data.jsonl');
    writeFileSync(dataFile, topicData(8, 24, 3).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
  afterAll(() => {
    if (saved === undefined) delete process.env['L2E_DETERMINISTIC'];
    else process.env['L2E_DETERMINISTIC'] = saved;
    removeTempDirs();
  });

  async function run(options: TrainerOptions): Promise<{ model: EmbeddingModel; steps: StepInfo[] }> {
    const model = await EmbeddingModel.load(modelDir, { device: cudaDevice });
    const steps: StepInfo[] = [];
    await new Trainer(model, { ...base, ...options }).fit(dataFile, { onNotice: () => {}, onStep: (s) => steps.push(s) });
    return { model, steps };
  }

  it('3 steps, checkpoint, resume from the freshly loaded base model, 3 more = 6 straight steps (bitwise)', async () => {
    const straight = await run({ maxSteps: 6 });
    const out = makeTempDir();
    const a = await run({ maxSteps: 3, outputDir: out, saveSteps: 3 });
    a.model.dispose();
    const b = await run({ maxSteps: 6, outputDir: out, resume: true });
    try {
      expect(b.steps[0]!.step).toBe(4);
      const losses = [...a.steps, ...b.steps].map((s) => s.loss);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses).toEqual(straight.steps.map((s) => s.loss));
      for (const p of straight.model.native.params()) {
        expect(b.model.native.getTensor(p.name), p.name).toEqual(straight.model.native.getTensor(p.name));
      }
    } finally {
      straight.model.dispose();
      b.model.dispose();
    }
  }, 600_000);

  it('the fp32 master starts from the F32 file values (not their bf16 rounding); the bf16 copy is their rounding', async () => {
    const model = await EmbeddingModel.load(modelDir, { device: cudaDevice });
    try {
      const file = new Map(readSafetensorsHeader(join(modelDir, 'model.safetensors')).tensors.map((t) => [t.name, readTensorF32(t)]));
      for (const p of model.native.params()) expect(model.native.getTensor(p.name), p.name).toEqual(bf16Array(file.get(p.name)!));
      trainNatives().trainInit(model.native);
      let differs = 0;
      for (const p of model.native.params()) {
        const values = file.get(p.name)!;
        expect(model.native.getTensor(p.name), p.name).toEqual(values); // getTensor reads the master while training
        if (bf16Array(values).some((v, i) => v !== values[i])) differs++;
      }
      expect(differs).toBeGreaterThan(0); // the file's values are not bf16 already: the test can fail
    } finally {
      model.dispose();
    }
  });
});
