// The optimizer step (native/core/train_state.cpp) against PyTorch's semantics, on an in-repo model:
//   torch.nn.utils.clip_grad_norm_(params, max_norm): total_norm = ‖all gradients as one vector‖₂,
//     clip_coef = max_norm / (total_norm + 1e-6), gradients *= min(clip_coef, 1); max_norm 0: off here;
//   torch.optim.AdamW (decoupled decay): w ← w·(1 − lr·wd), then the Adam update; the Hugging Face
//     Trainer's grouping gives biases and norm weights weight_decay 0;
//   a non-finite total norm skips the step: no weight, m or v changes, and the gradients are zeroed;
//   a step spends the gradients (the next backward writes them: test/helpers/spentGradients.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { trainNatives, type OptimizerHyper } from '../src/train/native-train.js';
import { relError } from './helpers/fixture.js';
import { checkSpentGradients } from './helpers/spentGradients.js';
import { makeTempDir, removeTempDirs, seededRandom, writeTinyModel } from './helpers/tinyModel.js';

const nat = trainNatives();
let model: EmbeddingModel;
let size = 0;

beforeAll(async () => {
  model = await EmbeddingModel.load(writeTinyModel(makeTempDir(), { seed: 41 }).dir);
  nat.trainInit(model.native);
  size = nat.trainGetBuffer(model.native, 'grads').length;
});
afterAll(() => {
  model?.dispose();
  removeTempDirs();
});

const hyper = (o: Partial<OptimizerHyper>): OptimizerHyper => ({
  lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0, step: 1, ...o,
});

/** Fresh optimizer state (m = v = 0) and these gradients. */
function setState(grads: Float32Array): void {
  nat.trainSetBuffer(model.native, 'm', new Float32Array(size));
  nat.trainSetBuffer(model.native, 'v', new Float32Array(size));
  nat.trainSetBuffer(model.native, 'grads', grads);
}

function randomGrads(seed: number, scale: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: size }, () => (r() - 0.5) * scale);
}

function weights(): Map<string, Float32Array> {
  return new Map(model.native.params().map((p) => [p.name, model.native.getTensor(p.name)]));
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const norm = (g: Float32Array): number => Math.sqrt(g.reduce((a, x) => a + x * x, 0));

describe('gradient clipping (clip_grad_norm_ over all gradients)', () => {
  it('scales every gradient by max_norm / (total_norm + 1e-6) when the norm is above max_norm', async () => {
    // a small total norm, so that the + 1e-6 shows (1e-4 relative, far above float32 rounding)
    const g = randomGrads(1, 1e-4);
    const total = norm(g);
    expect(total).toBeGreaterThan(0.005);
    expect(total).toBeLessThan(0.05);
    const maxGradNorm = 0.001;
    setState(g);
    const r = await nat.trainStep(model.native, hyper({ maxGradNorm }));
    expect(r.skipped).toBe(false);
    expect(Math.abs(r.gradNorm - total) / total).toBeLessThan(1e-6);
    // after one step from m = 0: m = (1 − β1) · clipped g, so m shows the scale that was applied
    const coef = maxGradNorm / (total + 1e-6);
    const m = nat.trainGetBuffer(model.native, 'm');
    expect(relError(m, Float64Array.from(g, (x) => 0.1 * x * coef))).toBeLessThan(1e-6);
    // one global coefficient: the clipped gradients' norm is max_norm·total/(total + 1e-6)
    expect(Math.abs(norm(m) / 0.1 / (maxGradNorm * total / (total + 1e-6)) - 1)).toBeLessThan(1e-6);
  });

  it('leaves gradients below max_norm, and all gradients when max_norm is 0, unscaled', async () => {
    for (const [scale, maxGradNorm] of [[1e-3, 0.5], [0.2, 0]] as const) {
      const g = randomGrads(2, scale);
      expect(maxGradNorm === 0 || norm(g) < maxGradNorm).toBe(true);
      setState(g);
      const r = await nat.trainStep(model.native, hyper({ maxGradNorm }));
      expect(Math.abs(r.gradNorm - norm(g)) / norm(g)).toBeLessThan(1e-6);
      const m = nat.trainGetBuffer(model.native, 'm');
      expect(relError(m, Float64Array.from(g, (x) => 0.1 * x))).toBeLessThan(1e-6);
    }
  });
});

describe('AdamW decoupled weight decay and its exemption by name', () => {
  it('with zero gradients only the decay moves the weights: w·(1 − lr·wd), except biases and norm weights', async () => {
    const before = weights();
    setState(new Float32Array(size));
    const lr = 0.01;
    const wd = 0.1;
    await nat.trainStep(model.native, hyper({ lr, weightDecay: wd }));
    const after = weights();
    const exempt: string[] = [];
    const decay = Math.fround(1 - lr * wd);
    for (const [name, w0] of before) {
      const w1 = after.get(name)!;
      if (sameBits(w1, w0)) exempt.push(name);
      else expect(sameBits(w1, Float32Array.from(w0, (x) => x * decay)), name).toBe(true);
    }
    const layers = model.config.numLayers;
    const expected = [
      ...Array.from({ length: layers }, (_, l) => [`layers.${l}.input_layernorm.weight`, `layers.${l}.post_attention_layernorm.weight`]).flat(),
      'norm.weight',
      'dense_layer.bias',
    ];
    expect(exempt.sort()).toEqual(expected.sort());
  });
});

describe('a non-finite gradient skips the step', () => {
  it.each([[NaN], [Infinity]])('a gradient of %s: no weight, m or v changes, the gradients are zeroed, and the next step runs', async (bad) => {
    const g = randomGrads(3, 0.01);
    setState(g);
    await nat.trainStep(model.native, hyper({ weightDecay: 0.1 }));
    const w0 = weights();
    const m0 = nat.trainGetBuffer(model.native, 'm');
    const v0 = nat.trainGetBuffer(model.native, 'v');
    const g2 = randomGrads(4, 0.01);
    g2[17] = bad;
    nat.trainSetBuffer(model.native, 'grads', g2);
    const r = await nat.trainStep(model.native, hyper({ weightDecay: 0.1, step: 2 }));
    expect(r.skipped).toBe(true);
    expect(Number.isFinite(r.gradNorm)).toBe(false);
    for (const [name, w] of weights()) expect(sameBits(w, w0.get(name)!), name).toBe(true);
    expect(sameBits(nat.trainGetBuffer(model.native, 'm'), m0)).toBe(true);
    expect(sameBits(nat.trainGetBuffer(model.native, 'v'), v0)).toBe(true);
    expect(nat.trainGetBuffer(model.native, 'grads').every((x) => x === 0)).toBe(true);
    nat.trainSetBuffer(model.native, 'grads', randomGrads(5, 0.01));
    const next = await nat.trainStep(model.native, hyper({ weightDecay: 0.1, step: 2 }));
    expect(next.skipped).toBe(false);
    expect(Number.isFinite(next.gradNorm)).toBe(true);
    for (const [name, w] of weights()) expect(w.every(Number.isFinite), name).toBe(true); // NaN would also differ from w0
    expect(weights().get('norm.weight')).not.toEqual(w0.get('norm.weight'));
  });
});

describe('a step spends the gradients', () => {
  it('read back as zeros after it; the next backward writes them as a fresh state computes them; a step with none sees zeros', async () => {
    const fresh = await EmbeddingModel.load(writeTinyModel(makeTempDir(), { seed: 43 }).dir);
    try {
      nat.trainInit(fresh.native);
      await checkSpentGradients(fresh.native, 2000);
    } finally {
      fresh.dispose();
    }
  });
});
