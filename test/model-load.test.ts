// Loading every checkpoint layout and model shape, checked against the float64 reference forward
// (test/helpers/reference-forward.ts): GQA, cls pooling, explicit head_dim, 5.x configs, sharded
// and prefixed (causal-LM) checkpoints, F16/BF16 weights, and a missing dense layer.
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { makeTempDir, writeTinyModel, type TinyModelOptions } from './helpers/tinyModel.js';
import { referenceEmbedding } from './helpers/reference-forward.js';
import { relError } from './helpers/fixture.js';

const texts = ['Saya suka makan nasi lemak.', 'x', '', 'The quick brown fox jumps over the lazy dog, kata orang.'];

async function checkAgainstReference(o: TinyModelOptions, tol: number): Promise<void> {
  const tiny = writeTinyModel(makeTempDir(), o);
  const model = await EmbeddingModel.load(tiny.dir);
  try {
    const emb = await model.encode(texts, { batchSize: 3 });
    const ids = model.tokenize(texts);
    ids.forEach((row, i) => {
      const ref = referenceEmbedding(model.config, tiny.weights, Array.from(row), model.dim);
      const err = relError(emb.row(i), ref);
      expect(err, `text ${i}`).toBeLessThan(tol);
    });
  } finally {
    model.dispose();
  }
}

describe('model shapes and layouts', () => {
  it('MHA, mean pooling, 4.x config', () => checkAgainstReference({ seed: 1 }, 1e-5));
  it('GQA (8 heads over 2 kv heads)', () => checkAgainstReference({ heads: 8, kvHeads: 2, hidden: 32, seed: 2 }, 1e-5));
  it('MQA with explicit head_dim and the 5.x config layout', () =>
    checkAgainstReference({ heads: 4, kvHeads: 1, headDim: 16, layout: '5.x', seed: 3 }, 1e-5));
  it('cls pooling without normalisation', () =>
    checkAgainstReference({ seed: 4, configExtra: { sentence_pooling_method: 'cls', normalized: false } }, 1e-5));
  it('sharded checkpoint with model. prefix and lm_head', () => checkAgainstReference({ seed: 5, sharded: 3, prefix: true }, 1e-5));

  it('F16 and BF16 weights load to the same model as their float32 rounding', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const a = writeTinyModel(makeTempDir(), { seed: 6, dtype });
      const model = await EmbeddingModel.load(a.dir);
      const emb = await model.encode(texts);
      // weights were rounded to 8 (BF16) or 11 (F16) significant bits: embeddings move by about that much
      const ref = referenceEmbedding(model.config, a.weights, Array.from(model.tokenize([texts[0]!])[0]!), model.dim);
      expect(relError(emb.row(0), ref)).toBeLessThan(dtype === 'BF16' ? 0.05 : 0.005);
      model.dispose();
    }
  });

  it('a checkpoint without dense_layer gets a new one (nn.Linear init, width 1536 unless told) and says so', async () => {
    const tiny = writeTinyModel(makeTempDir(), { seed: 7, withDense: false, dense: null });
    const notices: string[] = [];
    const m1 = await EmbeddingModel.load(tiny.dir, { onNotice: (m) => notices.push(m), seed: 3 });
    expect(m1.dim).toBe(1536);
    expect(notices.join('\n')).toMatch(/no dense_layer/);
    const w = m1.native.getTensor('dense_layer.weight');
    const bound = 1 / Math.sqrt(m1.config.hiddenSize);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(bound * 0.9);
    const m2 = await EmbeddingModel.load(tiny.dir, { onNotice: () => {}, seed: 3, denseSize: 24 });
    expect(m2.dim).toBe(24);
    const e = await m2.encode(['abc']);
    expect(e.dim).toBe(24);
    expect(Number.isFinite(e.data[0])).toBe(true);
    // asked for, it wins over config.json's embedding_size (which only says what to make when not asked)
    const sized = writeTinyModel(makeTempDir(), { seed: 7, withDense: false, dense: 40 });
    const m3 = await EmbeddingModel.load(sized.dir, { onNotice: () => {}, denseSize: 24 });
    const m4 = await EmbeddingModel.load(sized.dir, { onNotice: () => {} });
    expect([m3.dim, m3.config.denseSize, m4.dim]).toEqual([24, 24, 40]);
    m1.dispose();
    m2.dispose();
    m3.dispose();
    m4.dispose();
  });

  it("an embedding model's config (LlamaModelEmbedding) with no dense_layer in its weights is refused as incomplete", async () => {
    // (it was encoded through a random dense layer, exit 0)
    const tiny = writeTinyModel(makeTempDir(), { seed: 7, withDense: false, dense: 40 });
    const config = JSON.parse(readFileSync(join(tiny.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(tiny.dir, 'config.json'), JSON.stringify({ ...config, architectures: ['LlamaModelEmbedding'] }));
    await expect(EmbeddingModel.load(tiny.dir, { onNotice: () => {} })).rejects.toThrow(
      new Error(
        `${tiny.dir}: config.json names the architecture LlamaModelEmbedding (an embedding model, whose weights hold its dense layer), ` +
          'but model.safetensors holds no dense_layer.weight or dense_layer.bias: the weights are incomplete ' +
          '(a base causal-LM checkpoint, e.g. LlamaForCausalLM, gets a new dense layer)',
      ),
    );
  });
});
