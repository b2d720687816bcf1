// Golden loss and gradients: transformers (float64) on ../shared/fixtures/tiny-mha computed the
// InfoNCE loss of case.json's batch (in-batch negatives, target i·G) and the gradient of every
// parameter. Ours (fp32) must match within 1e-4 relative per tensor (the loss within 1e-5).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../src/model/safetensors.js';
import { chunkByTokens, gradStep } from '../src/train/grad-step.js';
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

  async function gradients(chunkTokens: number): Promise<{ loss: number; grads: Map<string, Float32Array>; chunks: number; recomputed: number }> {
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
    return { loss: r.loss, grads, chunks: r.chunks, recomputed: r.recomputed };
  }

  it('loss within 1e-5 and every parameter gradient within 1e-4 relative', async () => {
    const { loss, grads, chunks, recomputed } = await gradients(Infinity);
    expect([chunks, recomputed]).toEqual([1, 0]);  // queries and passages in one forward and one backward
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

  it('GradCache: a chunk holding the last queries and the first passages gives the same gradients', async () => {
    const fx = readCase(tinyMha);
    const q = model.tokenize(fx.queries, fx.max_len), p = model.tokenize(fx.passages, fx.max_len);
    // the smallest budget whose chunks (cut in order over queries, then passages) put row B - 1 (the
    // last query) and row B (the first passage) in one chunk, smaller than the whole batch
    const straddles = (budget: number): boolean =>
      chunkByTokens([...q, ...p], budget).some((c) => c.rows.includes(q.length - 1) && c.rows.includes(q.length));
    const budget = Array.from({ length: 400 }, (_, i) => i + 8).find(straddles);
    expect(budget, 'a budget with a mixed chunk').toBeDefined();
    const whole = await gradients(Infinity);
    const mixed = await gradients(budget!);
    expect(mixed.chunks).toBeGreaterThan(1);
    expect(Math.abs(mixed.loss - whole.loss)).toBeLessThan(1e-6 * Math.abs(whole.loss) + 1e-7);
    for (const [name, g] of whole.grads) expect(relError(mixed.grads.get(name)!, g), name).toBeLessThan(1e-5);
  });
});
