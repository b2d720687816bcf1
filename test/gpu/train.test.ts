// A training step on CUDA vs the CPU backend: embeddings of the kept forward, parameter gradients
// from the same d loss / d embeddings (so the comparison is not blurred by the loss's 1/temperature
// = 50 amplification), the whole GradCache step's loss on the tiny-mha fixture, and AdamW over fp32
// master weights writing the bf16 copy. CPU weights are the GPU's bf16 values.
//
// Bounds: gradients flow back through the same bf16 activations as the forward plus bf16 rounding of
// every backward activation (dx, dq, dk, dv, ...), and weight gradients are fp32 sums of bf16
// products: GRAD_REL = 5e-2 normwise per tensor (embedding rows: only rows that were used).
// The global gradient norm differs by at most the whole gradient's normwise error (|‖a‖-‖b‖| <=
// ‖a-b‖, and ‖a-b‖² sums the tensors' squared errors), so GRAD_REL bounds it too (measured 4.4e-4
// in the emulation build). The kept forward's embeddings: EMB_REL = 1e-2 normwise, the per-layer
// bf16 roundings of gpu/model.test.ts over two layers (measured 2.0e-3 and 2.2e-3). The GradCache
// step's loss averages rows whose errors partly cancel: LOSS_REL = 1e-2 relative, as in
// gpu/fixture.test.ts (measured 1.4e-3). A wrong temperature scale or a missing term moves each by
// far more.
import { describe, expect, it } from 'vitest';
import type { NativeModel, NativeModelConfig } from '../../src/model/embedding-model.js';
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { gradStep } from '../../src/train/grad-step.js';
import { trainNatives } from '../../src/train/native-train.js';
import { Rng } from '../../src/util/random.js';
import { nativeAddon } from '../../src/native.js';
import { hasTinyMha, readCase, skipNote, tinyMha } from '../helpers/fixture.js';
import { bf16TiesAway, cudaDevice, type GpuAddon, cuSeqlens, gpu, gpuNote, randBf16, randInt, randomWeights, relErr, roundWeightsToBf16, sized } from './gpu-helpers.js';

const GRAD_REL = 5e-2;
const EMB_REL = 1e-2;
const LOSS_REL = 1e-2;
const TRAJ_LOSS = 2e-2;
const MIN_DROP = 0.5;
const TRAJ_WEIGHTS = 0.15;
const MIN_MOVE = [2 ** -9, 1e-4]; // [matrices and biases, norm weights]

interface MasterBuffers {
  trainGetBuffer(model: NativeModel, which: string): Float32Array;
}

async function gradsFor(m: NativeModel, ids: Int32Array, cu: Int32Array, dEmb: Float32Array): Promise<{ emb: Float32Array; grads: Float32Array }> {
  const nat = trainNatives();
  nat.trainInit(m);
  nat.trainSetBuffer(m, 'grads', new Float32Array(nat.trainGetBuffer(m, 'grads').length));
  const emb = await nat.trainForward(m, 0, ids, cu, true);
  await nat.trainBackward(m, 0, ids, cu, dEmb);
  return { emb, grads: nat.trainGetBuffer(m, 'grads') };
}

function compareGrads(m: NativeModel, a: Float32Array, b: Float32Array): void {
  for (const p of m.params()) {
    const ga = a.subarray(p.offset, p.offset + p.numel);
    const gb = b.subarray(p.offset, p.offset + p.numel);
    expect(relErr(gb, ga), p.name).toBeLessThan(GRAD_REL);
  }
}

describe.skipIf(!gpu.usable)(`CUDA training vs CPU ${gpuNote}`, () => {
  // the shipped addon's models: trainNatives() (src/train) works on those, not the test addon's
  const { NativeModel: Native } = nativeAddon<GpuAddon>();

  it.each([
    ['hd 64 GQA 4/2', { vocab: 500, hidden: 256, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, headDim: 64, dense: 128 }],
    ['hd 128 MHA', { vocab: 500, hidden: 256, intermediate: 384, layers: 2, heads: 2, kvHeads: 2, headDim: 128, dense: 64 }],
  ])('gradients of every parameter, random %s model', async (_n, shape) => {
    const cfg: NativeModelConfig = { ...shape, rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true };
    const cpu = new Native(cfg, 'cpu');
    const cuda = new Native(cfg, cudaDevice);
    try {
      randomWeights([cpu, cuda], 11);
      const rng = new Rng(12, 1);
      const lens = sized([1, 5, 40, 70, 200], [1, 5, 40, 70, 130]); // emulation: the kernels run on the CPU
      const cu = cuSeqlens(lens);
      const ids = randInt(rng, cu[lens.length]!, cfg.vocab);
      const dEmb = randBf16(rng, lens.length * cfg.dense);
      const a = await gradsFor(cpu, ids, cu, dEmb);
      const b = await gradsFor(cuda, ids, cu, dEmb);
      expect(relErr(b.emb, a.emb)).toBeLessThan(EMB_REL);
      compareGrads(cpu, a.grads, b.grads);
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });

  // A step of several backwards adds their gradients. On CUDA the embedding table's gradient is held
  // apart (native/cuda/table_rows.cu): each backward's ids get rows of a buffer sized from the ids named
  // since the last step, so here it grows twice while holding the earlier chunks' rows (80, 150, then
  // 260 tokens named). The table must come out as the CPU's dense one: the rows named, and zeros
  // elsewhere; and read back, written and read again, bit for bit (a row of -0 included). Tokens of the
  // pad id (padding_idx, core/model_backward.cpp) add nothing: its row stays zero on both.
  it('gradients added over three backwards, the embedding table held apart growing between them', async () => {
    const pad = 7;
    const cfg: NativeModelConfig = { vocab: 500, hidden: 64, intermediate: 64, layers: 1, heads: 2, kvHeads: 1, headDim: 32, dense: 16, rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true, padTokenId: pad };
    const cpu = new Native(cfg, 'cpu');
    const cuda = new Native(cfg, cudaDevice);
    const nat = trainNatives();
    try {
      randomWeights([cpu, cuda], 21);
      const rng = new Rng(22, 1);
      const chunks = [[30, 50], [70], [90, 20]].map((lens) => {
        const cu = cuSeqlens(lens);
        return { cu, ids: randInt(rng, cu[lens.length]!, cfg.vocab), dEmb: randBf16(rng, lens.length * cfg.dense) };
      });
      chunks[0]!.ids.fill(pad, 3, 5); // two running, and a chunk's last token
      chunks[2]!.ids[chunks[2]!.ids.length - 1] = pad;
      const run = async (m: NativeModel): Promise<Float32Array> => {
        nat.trainInit(m);
        for (const [i, c] of chunks.entries()) {
          await nat.trainForward(m, i, c.ids, c.cu, true);
          await nat.trainBackward(m, i, c.ids, c.cu, c.dEmb);
        }
        return nat.trainGetBuffer(m, 'grads');
      };
      const a = await run(cpu);
      const b = await run(cuda);
      compareGrads(cpu, a, b);
      const named = new Set(chunks.flatMap((c) => Array.from(c.ids)).filter((id) => id !== pad));
      const H = cfg.hidden;
      const rowsWith = (g: Float32Array): number[] => Array.from({ length: cfg.vocab }, (_, r) => r).filter((r) => g.subarray(r * H, (r + 1) * H).some((x) => x !== 0));
      expect(rowsWith(a)).toEqual([...named].sort((x, y) => x - y));
      expect(rowsWith(b)).toEqual(rowsWith(a));
      const unnamed = Array.from({ length: cfg.vocab }, (_, r) => r).find((r) => !named.has(r))!;
      b.fill(-0, unnamed * H, (unnamed + 1) * H);
      nat.trainSetBuffer(cuda, 'grads', b);
      const back = nat.trainGetBuffer(cuda, 'grads');
      expect(back.length).toBe(b.length);
      expect(back.every((x, i) => Object.is(x, b[i])), 'read back bit for bit').toBe(true);
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });

  it.skipIf(!hasTinyMha)(`tiny-mha: the GradCache step's loss and gradients, then AdamW on master weights ${hasTinyMha ? '' : skipNote('fixtures/tiny-mha')}`, async () => {
    const fx = readCase(tinyMha);
    const cpu = await EmbeddingModel.load(tinyMha, { device: 'cpu' });
    const cuda = await EmbeddingModel.load(tinyMha, { device: cudaDevice });
    const nat = trainNatives();
    try {
      roundWeightsToBf16(cpu.native);
      const run = async (m: EmbeddingModel) => {
        nat.trainInit(m.native);
        nat.trainSetBuffer(m.native, 'grads', new Float32Array(nat.trainGetBuffer(m.native, 'grads').length));
        const r = await gradStep(m.native, m.tokenize(fx.queries, fx.max_len), m.tokenize(fx.passages, fx.max_len), {
          groupSize: fx.group_size, temperature: fx.temperature, inBatchNegatives: true, chunkTokens: Infinity,
        });
        return { loss: r.loss, grads: nat.trainGetBuffer(m.native, 'grads') };
      };
      const a = await run(cpu);
      const b = await run(cuda);
      expect(Math.abs(b.loss - a.loss) / Math.abs(a.loss)).toBeLessThan(LOSS_REL);
      compareGrads(cpu.native, a.grads, b.grads);

      const hyper = { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0.5, step: 1 };
      const sa = await nat.trainStep(cpu.native, hyper);
      const sb = await nat.trainStep(cuda.native, hyper);
      expect(Math.abs(sb.gradNorm - sa.gradNorm) / sa.gradNorm).toBeLessThan(GRAD_REL);
      if (cudaDevice === 'cuda') {
        // the bf16 weights the forward reads are exactly the fp32 master weights rounded (ties away
        // from zero: native/core/master_halves.h), and the master moved off them
        const master = (nat as unknown as MasterBuffers).trainGetBuffer(cuda.native, 'master');
        const params = (nat as unknown as MasterBuffers).trainGetBuffer(cuda.native, 'params');
        expect(params).toEqual(master.map(bf16TiesAway));
        expect(master.filter((x, i) => x !== params[i]).length).toBeGreaterThan(master.length / 2);
      }
      // both moved the same way: the updated weights agree to bf16 precision
      for (const p of cpu.native.params()) expect(relErr(cuda.native.getTensor(p.name), cpu.native.getTensor(p.name)), p.name).toBeLessThan(1e-2);
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });

  // An optimizer step that did nothing (or wrote stale weights back) would pass a single step at
  // lr 1e-5, below the bf16 resolution of the weights. Here lr 1e-4 moves every matrix and bias by
  // more than 2^-9 normwise (half a bf16 spacing: the bf16 copies change; measured 3.4e-3 to 1.2e-2)
  // in 3 steps on the same batch; norm weights (~1, spacing 2^-7) by more than 1e-4 (measured 2.3e-4)
  // in the fp32 master. At temperature 0.02 the loss falls from ~20 to ~2
  // and amplifies the bf16 differences (the two trajectories' step-3 losses differ by ~10%), so the
  // losses are compared against the starting loss: within TRAJ_LOSS = 2% of it at every step
  // (measured 0.1%, 0.4%, 1.2%), falling by half at least; each tensor stays closer to the CPU's
  // than TRAJ_WEIGHTS = 0.15 times the distance it moved (measured 0.005 to 0.05).
  it.skipIf(!hasTinyMha)(`tiny-mha: 3 AdamW steps at lr 1e-4 follow the CPU trajectory ${hasTinyMha ? '' : skipNote('fixtures/tiny-mha')}`, async () => {
    const fx = readCase(tinyMha);
    const cpu = await EmbeddingModel.load(tinyMha, { device: 'cpu' });
    const cuda = await EmbeddingModel.load(tinyMha, { device: cudaDevice });
    const nat = trainNatives();
    try {
      // both start from the file's fp32 values: the CPU's weights, the CUDA master (its forward: their bf16 rounding)
      nat.trainInit(cuda.native);
      const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0, step: 1 };
      const losses: Record<string, number[]> = { cpu: [], cuda: [] };
      const before = cuda.native.params().map((p) => cuda.native.getTensor(p.name));
      for (let step = 1; step <= 3; step++) {
        for (const [name, m] of [['cpu', cpu], ['cuda', cuda]] as const) {
          nat.trainInit(m.native);
          const r = await gradStep(m.native, m.tokenize(fx.queries, fx.max_len), m.tokenize(fx.passages, fx.max_len), {
            groupSize: fx.group_size, temperature: fx.temperature, inBatchNegatives: true, chunkTokens: Infinity,
          });
          losses[name]!.push(r.loss);
          await nat.trainStep(m.native, { ...hyper, step });
        }
      }
      for (let i = 0; i < 3; i++) expect(Math.abs(losses['cuda']![i]! - losses['cpu']![i]!) / losses['cpu']![0]!, `step ${i + 1}`).toBeLessThan(TRAJ_LOSS);
      expect(losses['cuda']![2]!).toBeLessThan(losses['cuda']![0]! * (1 - MIN_DROP));
      const params = cuda.native.params();
      for (let i = 0; i < params.length; i++) {
        const p = params[i]!;
        const after = cuda.native.getTensor(p.name);
        const moved = relErr(after, before[i]!);
        const apart = relErr(after, cpu.native.getTensor(p.name));
        expect(moved, `${p.name} moved`).toBeGreaterThan(MIN_MOVE[p.name.includes("norm") ? 1 : 0]!);
        expect(apart, `${p.name} vs cpu`).toBeLessThan(TRAJ_WEIGHTS * moved);
      }
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });
});
