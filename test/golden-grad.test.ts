// Golden loss and gradients: transformers (float64) on ../shared/fixtures/tiny-mha computed the
// InfoNCE loss of case.json's batch (in-batch negatives, target i·G) and the gradient of every
// parameter. Ours (fp32) must match within 1e-4 relative per tensor (the loss within 1e-5).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../src/model/safetensors.js';
import { gradStep } from '../src/train/grad-step.js';
import { trainNatives } from '../src/train/native-train.js';
import { hasTinyMha, readCase, relError, skipNote, tinyMha } from './helpers/fixture.js';

describe.skipIf(!hasTinyMha)(`golden gradients on tiny-mha ${hasTinyMha ? '' : skipNote('fixtures/tiny-mha')}`, () => {
  let model: EmbeddingModel;
  const expected = new Map<string, Float32Array>();
  beforeAll(async () => {
    model = await EmbeddingModel.load(tinyMha);
    const h = readSafetensorsHeader(join(tinyMha, 'expected.safetensors'));
    for (const t of h.tensors) expected.set(t.name, readTensorF32(t));
  });
  afterAll(() => model?.dispose());

  async function gradients(chunkTokens: number): Promise<{ loss: number; grads: Map<string, Float32Array>; recomputed: number }> {
    const fx = readCase(tinyMha);
    const nat = trainNatives();
    nat.trainInit(model.native);
    nat.trainSetBuffer(model.native, 'grads', new Float32Array(nat.trainGetBuffer(model.native, 'grads').length));
    const r = await gradStep(model.native, model.tokenize(fx.queries, fx.max_len), model.tokenize(fx.passages, fx.max_len), {
      groupSize: fx.group_size,
      temperature: fx.temperature,
      inBatchNegatives: true,
      chunkTokens,
    });
    const all = nat.trainGetBuffer(model.native, 'grads');
    const grads = new Map<string, Float32Array>();
    for (const p of model.native.params()) grads.set(p.name, all.slice(p.offset, p.offset + p.numel));
    return { loss: r.loss, grads, recomputed: r.recomputed };
  }

  it('loss within 1e-5 and every parameter gradient within 1e-4 relative', async () => {
    const { loss, grads, recomputed } = await gradients(Infinity);
    expect(recomputed).toBe(0);
    const refLoss = expected.get('loss')![0]!;
    expect(Math.abs(loss - refLoss) / Math.abs(refLoss)).toBeLessThan(1e-5);
    let checked = 0;
    for (const [name, ref] of expected) {
      if (!name.startsWith('grad.')) continue;
      const ours = grads.get(name.slice(5));
      expect(ours, name).toBeDefined();
      expect(relError(ours!, ref), name).toBeLessThan(1e-4);
      checked++;
    }
    expect(checked).toBe(model.native.params().length);
  });

  it('GradCache: chunked steps (recomputing each chunk) give the unchunked gradients within 1e-5', async () => {
    const whole = await gradients(Infinity);
    const chunked = await gradients(100);
    expect(chunked.recomputed).toBeGreaterThan(2);
    expect(Math.abs(chunked.loss - whole.loss)).toBeLessThan(1e-6 * Math.abs(whole.loss) + 1e-7);
    for (const [name, g] of whole.grads) expect(relError(chunked.grads.get(name)!, g), name).toBeLessThan(1e-5);
  });
});
