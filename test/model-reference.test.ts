// Model-level forward and backward on in-repo random models, without ../shared: the native fp32
// model against the float64 references (test/helpers/reference-forward.ts, reference-backward.ts),
// the backward reference itself against finite differences. The transformers-made golden fixtures
// (golden.test.ts, golden-grad.test.ts) stay as the extra check where ../shared exists.
//
// Bounds: fp32 kernels vs float64 land near 1e-6 relative on embeddings and 1e-5 on gradients of
// these sizes; a wrong term gives 1e-2 or more. Finite differences (h = 1e-5, float64) of a correct
// backward agree to ~1e-8 relative (truncation h² ~ 1e-10, round-off 1e-16/h ~ 1e-11, scaled).
import { describe, expect, it } from 'vitest';
import { EmbeddingModel, packBatch } from '../src/model/embedding-model.js';
import { gradStep } from '../src/train/grad-step.js';
import { trainNatives } from '../src/train/native-train.js';
import { relError } from './helpers/fixture.js';
import { referenceEmbedding, type RefWeights } from './helpers/reference-forward.js';
import { referenceLoss, referenceLossAndGrads, type ContrastiveBatch } from './helpers/reference-backward.js';
import { makeTempDir, seededRandom, writeTinyModel, type TinyModelOptions } from './helpers/tinyModel.js';


/**
 * `n` random id sequences with lengths in [1, maxLen], ids in [3, vocab). No BOS first: with cls
 * pooling under causal attention every sequence starting with BOS has the same embedding.
 */
function randomIds(n: number, maxLen: number, vocab: number, seed: number): number[][] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Array.from({ length: 1 + Math.floor(r() * maxLen) }, () => 3 + Math.floor(r() * (vocab - 3))));
}

function batchOf(B: number, G: number, maxLen: number, vocab: number, seed: number, tau: number, inBatch: boolean): ContrastiveBatch {
  return {
    queries: randomIds(B, maxLen, vocab, seed),
    passages: randomIds(B * G, maxLen, vocab, seed + 1),
    groupSize: G,
    temperature: tau,
    inBatchNegatives: inBatch,
  };
}

const CASES: { name: string; o: TinyModelOptions; inBatch: boolean }[] = [
  { name: 'MHA, mean pooling, normalised, in-batch negatives', o: { seed: 11 }, inBatch: true },
  {
    name: 'GQA with explicit head_dim, cls pooling, not normalised, own-group negatives',
    o: { seed: 12, heads: 4, kvHeads: 2, headDim: 12, configExtra: { sentence_pooling_method: 'cls', normalized: false } },
    inBatch: false,
  },
];

/**
 * Gradients that are zero by construction: with cls pooling the embedding is the first token's,
 * which attends only to itself (softmax of one score = 1), so q_proj and k_proj get none.
 */
function structurallyZero(c: (typeof CASES)[number], name: string): boolean {
  return c.o.configExtra?.['sentence_pooling_method'] === 'cls' && /\.(q|k)_proj\./.test(name);
}

// Pure JavaScript: skipped in the per-instruction-set reruns of cpu-isa.test.ts (L2E_CPU_ISA set).
describe.skipIf(!!process.env['L2E_CPU_ISA'])('float64 reference backward', () => {
  it.each(CASES.map((c) => [c.name, c]))('matches finite differences on a tiny model (%s)', (_name, c) => {
    const tiny = writeTinyModel(makeTempDir(), {
      ...c.o, vocab: 12, hidden: 8, intermediate: 12, layers: 2, dense: 6, tokenizer: false,
      ...(c.o.headDim ? { headDim: 4 } : {}),
    });
    const w: RefWeights = new Map([...tiny.weights].map(([k, v]) => [k, Float64Array.from(v)]));
    const batch = batchOf(2, 2, 5, 12, 5, 0.1, c.inBatch);
    const { loss, grads } = referenceLossAndGrads(tiny.config, w, batch, 6);
    expect(loss).toBeCloseTo(referenceLoss(tiny.config, w, batch, 6), 12);
    const r = seededRandom(9);
    const h = 1e-5;
    for (const [name, g] of grads) {
      const x = w.get(name)!;
      // every entry of the small tensors, a sample of the embedding table (with unused rows: gradient 0)
      const picks = x.length <= 200 ? [...x.keys()] : Array.from({ length: 40 }, () => Math.floor(r() * x.length));
      const fd: number[] = [];
      const an: number[] = [];
      for (const i of picks) {
        const x0 = x[i]!;
        x[i] = x0 + h;
        const up = referenceLoss(tiny.config, w, batch, 6);
        x[i] = x0 - h;
        const down = referenceLoss(tiny.config, w, batch, 6);
        x[i] = x0;
        fd.push((up - down) / (2 * h));
        an.push(g[i]!);
      }
      if (structurallyZero(c, name)) {
        expect(Math.max(...an.map(Math.abs), ...fd.map(Math.abs)), name).toBeLessThan(1e-9);
        continue;
      }
      expect(Math.max(...an.map(Math.abs)), `${name} has a non-zero gradient`).toBeGreaterThan(1e-6);
      expect(relError(an, fd), name).toBeLessThan(1e-6);
    }
  }, 120_000);
});

describe('native model vs the float64 references (in-repo random models)', () => {
  it.each(CASES.map((c) => [c.name, c]))('forward: embeddings of packed sequences up to 150 tokens (%s)', async (_name, c) => {
    const tiny = writeTinyModel(makeTempDir(), { ...c.o, hidden: 48, intermediate: 64, layers: 2, dense: 16 });
    const model = await EmbeddingModel.load(tiny.dir);
    try {
      const ids = [...randomIds(5, 150, 300, 21), [1], [1, 5, 7]]; // ids below 300 of the 2000
      const { tokens, cuSeqlens } = packBatch(ids.map((r) => Int32Array.from(r)));
      const out = await model.native.encode(tokens, cuSeqlens, false);
      ids.forEach((row, i) => {
        const ref = referenceEmbedding(model.config, tiny.weights, row, model.dim);
        expect(relError(out.embeddings.subarray(i * model.dim, (i + 1) * model.dim), ref), `sequence ${i}`).toBeLessThan(1e-5);
      });
    } finally {
      model.dispose();
    }
  });

  it.each(CASES.map((c) => [c.name, c]))('backward: the loss and every parameter gradient (%s)', async (_name, c) => {
    await checkBackward(c, batchOf(3, 2, 80, 300, 31, 0.05, c.inBatch));
  }, 120_000);

  // transformers' LlamaModel builds nn.Embedding(vocab, hidden, padding_idx = pad_token_id): tokens of
  // that id (a text's "<unk>" where pad = unk = 0) add nothing to its row; with pad_token_id null they do
  it.each([
    ['pad_token_id 0: the row of id 0 gets no gradient', 0],
    ['pad_token_id null: the row of id 0 gets its gradient', null],
  ] as const)('backward with the pad id in the texts (%s)', async (_name, pad) => {
    const c = { ...CASES[0]!, o: { ...CASES[0]!.o, configExtra: { pad_token_id: pad } } };
    const batch = batchOf(3, 2, 40, 300, 41, 0.05, true);
    // id 0 inside two texts, twice running, and as a text's last token
    batch.queries[0]!.splice(3, 0, 0, 0);
    batch.passages[2]!.push(0);
    const row0 = await checkBackward(c, batch);
    if (pad === 0) expect(row0.every((x) => x === 0)).toBe(true);
    else expect(Math.max(...row0.map(Math.abs))).toBeGreaterThan(1e-6);
  }, 120_000);
});

/** The native loss and every gradient of one step on `batch` against the float64 reference; returns the embedding table's row 0. */
async function checkBackward(c: (typeof CASES)[number], batch: ContrastiveBatch): Promise<number[]> {
  const tiny = writeTinyModel(makeTempDir(), { ...c.o, hidden: 32, intermediate: 48, layers: 2, dense: 16 });
  const model = await EmbeddingModel.load(tiny.dir);
  try {
    const ref = referenceLossAndGrads(model.config, tiny.weights, batch, model.dim);
    const nat = trainNatives();
    nat.trainInit(model.native);
    nat.trainSetBuffer(model.native, 'grads', new Float32Array(nat.trainGetBuffer(model.native, 'grads').length));
    const toIds = (rows: number[][]): Int32Array[] => rows.map((r) => Int32Array.from(r));
    const r = await gradStep(model.native, toIds(batch.queries), toIds(batch.passages), {
      groupSize: batch.groupSize,
      temperature: batch.temperature,
      inBatchNegatives: batch.inBatchNegatives,
      chunkTokens: Infinity,
    });
    expect(Math.abs(r.loss - ref.loss) / Math.abs(ref.loss)).toBeLessThan(1e-5);
    const all = nat.trainGetBuffer(model.native, 'grads');
    const params = model.native.params();
    expect(params.map((p) => p.name).sort()).toEqual([...ref.grads.keys()].sort());
    const largest = all.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    for (const p of params) {
      const ours = all.subarray(p.offset, p.offset + p.numel);
      // float32 round-off only: far below the gradients elsewhere
      if (structurallyZero(c, p.name)) expect(Math.max(...ours.map(Math.abs)), p.name).toBeLessThan(1e-6 * largest);
      else expect(relError(ours, ref.grads.get(p.name)!), p.name).toBeLessThan(1e-4);
    }
    const table = params.find((p) => p.name === 'embed_tokens.weight')!;
    return [...all.subarray(table.offset, table.offset + model.config.hiddenSize)];
  } finally {
    model.dispose();
  }
}
