// The CUDA training step without waste (issue 13, "a lean training step"):
//  - the host waits for the device once per optimizer step: the read-back of the step's loss with
//    its gradient norm. Counted by the emulated runtime (every device-to-host copy and every stream /
//    device / event synchronisation or cudaFree, and every upload from pageable memory, which a
//    runtime may make synchronous: a step's come from pinned buffers), so emulation builds only;
//    steady-state steps of a Trainer run, with the whole batch in one chunk, with GradCache chunks
//    recomputed, and with gradient accumulation; in the same steps the optimizer is 3 launches (the emulator's census):
//    sum of squares, the step's decision, one AdamW over every parameter; and the step's GEMMs do
//    exactly the FLOPs a training step needs (6 per linear weight and token, 8 with GradCache's
//    recomputed forward);
//  - the one-launch AdamW over every parameter with clipping and weight decay decided on the device
//    steps the fp32 master exactly as the CPU steps its weights (bitwise), the gradient norm too;
//  - a non-finite gradient skips the update on the device: weights and moments unchanged,
//    gradients zeroed.
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeModel, NativeModelConfig } from '../../src/model/embedding-model.js';
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { nativeAddon } from '../../src/native.js';
import { accumulateGradients } from '../../src/train/grad-step.js';
import { trainNatives, type OptimizerHyper } from '../../src/train/native-train.js';
import { Trainer, type TrainerOptions } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/random.js';
import { checkSpentGradients } from '../helpers/spentGradients.js';
import { topicData } from '../helpers/trainData.js';
import { makeTempDir, sharedTokenizer, writeTinyModel } from '../helpers/tinyModel.js';
import { bf16TiesAway, cudaDevice, emulated, gpu, gpuNote, type GpuAddon, linearWeights, randomWeights } from './gpu-helpers.js';

interface HostSyncs {
  deviceToHost: number;
  synchronize: number;
  uploads: number;
  pageableUploads: number;
}
const hostSyncs = (): HostSyncs => nativeAddon<{ cudaEmulationHostSyncs: () => HostSyncs }>().cudaEmulationHostSyncs();

/** The emulator's census since the last call (native/cuda/emulation/census.h): launches and FLOPs by kernel. */
type Census = Record<string, { launches: number; mmaFlops: number }>;
const census = (): Census => nativeAddon<{ cudaEmulationCensus: () => Census }>().cudaEmulationCensus();

const hasTokenizer = existsSync(sharedTokenizer);

describe.skipIf(!emulated || !hasTokenizer)(`host synchronisations per CUDA training step (emulation build) ${gpuNote}${hasTokenizer ? '' : ' (skipped: ../shared tokenizer not found)'}`, () => {
  let modelDir: string;
  let dataFile: string;
  const base: TrainerOptions = { batchSize: 4, groupSize: 2, lr: 1e-3, seed: 1, shuffleBuffer: 16, maxGradNorm: 1, maxSteps: 3 };

  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 64, heads: 2, kvHeads: 1, intermediate: 64, layers: 1, dense: 16, seed: 4 });
    dataFile = join(root, 'data.jsonl');
    writeFileSync(dataFile, topicData(8, 24, 3).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });

  /**
   * Counts between the onStep of each step and the next one's (the whole of steps 2 and 3): the host's
   * waits, and the launches of the optimizer's kernels (the emulator's census, native/cuda/emulation).
   */
  async function perStep(options: TrainerOptions): Promise<{ syncs: HostSyncs; optimizer: Record<string, number> }[]> {
    const model = await EmbeddingModel.load(modelDir, { device: cudaDevice });
    const at: HostSyncs[] = [];
    const launches: Record<string, number>[] = [];
    const gemm: number[] = [];
    // a step's forward GEMMs are 2 N tokens FLOPs and its backward's (dX and dW) 4 N tokens
    const N = linearWeights(model.native);
    try {
      await new Trainer(model, { ...base, ...options }).fit(dataFile, {
        onNotice: () => {},
        onStep: (info) => {
          at.push(hostSyncs());
          const c = census();
          launches.push(Object.fromEntries(Object.entries(c).map(([k, e]) => [k, e.launches])));
          gemm.push((c['cublasGemmEx']?.mmaFlops ?? 0) / (N * info.tokens));
        },
      });
    } finally {
      model.dispose();
    }
    expect(at).toHaveLength(3);
    return at.slice(1).map((c, i) => ({
      syncs: {
        deviceToHost: c.deviceToHost - at[i]!.deviceToHost,
        synchronize: c.synchronize - at[i]!.synchronize,
        uploads: Math.min(1, c.uploads - at[i]!.uploads), // some (the batch's ids, offsets, ...)
        pageableUploads: c.pageableUploads - at[i]!.pageableUploads,
      },
      optimizer: Object.fromEntries(Object.entries(launches[i + 1]!).filter(([k]) => /adamw|sumsq|step_decide/.test(k))),
      gemmFlopsPerWeightToken: gemm[i + 1]!,
    }));
  }

  it("the counts can see a pageable upload: a model's weights come from pageable memory", async () => {
    const before = hostSyncs();
    (await EmbeddingModel.load(modelDir, { device: cudaDevice })).dispose();
    expect(hostSyncs().pageableUploads).toBeGreaterThan(before.pageableUploads);
  });

  // The optimizer: the gradient's sum of squares, the step's decision (clip factor, skip), and one AdamW
  // launch over every parameter (not one per tensor: adamw_kernel is the single-tensor one). The GEMMs:
  // 6 FLOPs per linear weight and token, 8 with GradCache (its chunks' forward runs again for the backward)
  it.each([
    ['one chunk (activations kept)', 6, {}],
    ['GradCache chunks, recomputed', 8, { chunkTokens: 24 }],
    ['2 micro-batches per step', 6, { gradientAccumulationSteps: 2 }],
  ])('%s: one read-back, one wait and no pageable upload per step, the optimizer in 3 launches, GEMMs of %i N tokens FLOPs', async (_name, gemm, options: TrainerOptions) => {
    const step = {
      syncs: { deviceToHost: 1, synchronize: 1, uploads: 1, pageableUploads: 0 },
      optimizer: { adamw_multi_kernel: 1, step_decide_kernel: 1, sumsq_kernel: 1 },
      gemmFlopsPerWeightToken: gemm,
    };
    expect(await perStep(options)).toEqual([step, step]);
  }, 600_000);
});

describe.skipIf(!gpu.usable)(`the one-launch AdamW step vs the CPU ${gpuNote}`, () => {
  const { NativeModel: Native } = nativeAddon<GpuAddon>();
  const cfg: NativeModelConfig = { vocab: 40, hidden: 32, intermediate: 48, layers: 1, heads: 2, kvHeads: 1, headDim: 16, dense: 8, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true };
  const nat = trainNatives();
  /** The CUDA training buffers beyond the Trainer's: 'master' (the fp32 master, joined) and 'params' (its bf16 half). */
  const cudaBuffer = (m: NativeModel, which: 'master' | 'params'): Float32Array =>
    (nat as unknown as { trainGetBuffer(m: NativeModel, w: string): Float32Array }).trainGetBuffer(m, which);

  /** Gradients k / 1024 for small integers k: every square and every partial sum is exact in double, so the norm is the same in any order. */
  function exactGrads(rng: Rng, n: number): Float32Array {
    const g = new Float32Array(n);
    for (let i = 0; i < n; i++) g[i] = (Math.floor(rng.next() * 33) - 16) / 1024;
    return g;
  }

  // Odd sizes: the embedding table (41 x 18 = 738 values) leaves every later tensor 8 bytes off a 16-byte
  // boundary and the norms and the bias end in partial groups of four, so the step's 16-byte path and its
  // one-by-one path for misaligned and leftover values both run.
  const oddCfg: NativeModelConfig = { ...cfg, vocab: 41, hidden: 18, intermediate: 30, heads: 1, kvHeads: 1, headDim: 18, dense: 7 };

  function models(c: NativeModelConfig = cfg): [NativeModel, NativeModel] {
    const cpu = new Native(c, 'cpu');
    const cuda = new Native(c, cudaDevice);
    randomWeights([cpu, cuda], 5);
    return [cpu, cuda];
  }

  // `untouched`: the embedding table's first half of rows has had no gradient yet (gradients 0, moments
  // +0), the state the step may skip without decay (the update leaves such values as they are); its
  // next quarter had gradients before but none now (gradients 0, moments not: they must move).
  it.each([
    ['clipped, with weight decay', { maxGradNorm: 0.05, weightDecay: 0.1 }, cfg, false],
    ['not clipped, no weight decay', { maxGradNorm: 0, weightDecay: 0 }, cfg, false],
    ['odd tensor sizes, clipped, with weight decay', { maxGradNorm: 0.05, weightDecay: 0.1 }, oddCfg, false],
    ['untouched embedding rows, clipped, no weight decay', { maxGradNorm: 0.05, weightDecay: 0 }, cfg, true],
    ['untouched embedding rows, with weight decay', { maxGradNorm: 0, weightDecay: 0.1 }, cfg, true],
    ['untouched embedding rows, odd tensor sizes, no weight decay', { maxGradNorm: 0, weightDecay: 0 }, oddCfg, true],
  ])('%s: master weights, moments and the norm bitwise equal to the CPU step', async (_n, over, c, untouched) => {
    const [cpu, cuda] = models(c);
    const before = cpu.params().map((p) => cpu.getTensor(p.name));
    try {
      const rng = new Rng(9, 1);
      nat.trainInit(cpu);
      const n = nat.trainGetBuffer(cpu, 'grads').length;
      const embedIndex = cpu.params().findIndex((p) => p.name === 'embed_tokens.weight');
      const embed = cpu.params()[embedIndex]!;
      // [offset, end) of the rows never given a gradient: half the table (odd sizes: not on a 16-byte boundary)
      const none = untouched ? [embed.offset, embed.offset + Math.floor(c.vocab / 2) * c.hidden] : [0, 0];
      const inNone = (i: number) => i >= none[0]! && i < none[1]!;
      const m = new Float32Array(n).map((_, i) => (inNone(i) ? 0 : (rng.next() - 0.5) / 100));
      const v = new Float32Array(n).map((_, i) => (inNone(i) ? 0 : rng.next() / 1e4));
      for (const model of [cpu, cuda]) {
        nat.trainInit(model);
        nat.trainSetBuffer(model, 'm', m);
        nat.trainSetBuffer(model, 'v', v);
      }
      const hyper: OptimizerHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3, ...over };
      for (let step = 0; step < 2; step++) {
        const g = exactGrads(rng, n);
        g.fill(0, none[0], untouched ? none[1]! + Math.floor(c.vocab / 4) * c.hidden : 0);
        if (untouched) g[none[0]! + 1] = -0; // a zero of either sign leaves the update a no-op
        nat.trainSetBuffer(cpu, 'grads', g);
        nat.trainSetBuffer(cuda, 'grads', g);
        const a = await nat.trainStep(cpu, { ...hyper, step: hyper.step + step });
        const b = await nat.trainStep(cuda, { ...hyper, step: hyper.step + step });
        expect(a.gradNorm).toBeGreaterThan(0);
        expect(b).toEqual(a);
        if (over.maxGradNorm > 0) expect(a.gradNorm).toBeGreaterThan(over.maxGradNorm); // clipping ran
      }
      for (const which of ['m', 'v'] as const) expect(nat.trainGetBuffer(cuda, which), which).toEqual(nat.trainGetBuffer(cpu, which));
      if (untouched) {
        // the untouched rows kept their weights exactly without decay, and moved with it
        const rows = Math.floor(c.vocab / 2) * c.hidden;
        const now = cpu.getTensor(embed.name), was = before[embedIndex]!;
        expect(now.subarray(0, rows).every((x, j) => Object.is(x, was[j])), 'untouched rows kept').toBe(over.weightDecay === 0);
        const idle = now.subarray(rows, rows + Math.floor(c.vocab / 4) * c.hidden);
        expect(idle.every((x, j) => x !== was[rows + j]), 'rows with moments but no gradient moved').toBe(true);
      }
      // the CUDA model's fp32 weights are its master (L2E_GPU_TESTS_ON_CPU: a CPU model's weights)
      const master = cudaDevice === 'cuda' ? cudaBuffer(cuda, 'master') : null;
      cpu.params().forEach((p, i) => {
        const w = cpu.getTensor(p.name);
        expect(w.every(Number.isFinite) && w.some((x, j) => x !== before[i]![j]), `${p.name} finite and moved`).toBe(true);
        expect(master ? master.subarray(p.offset, p.offset + p.numel) : cuda.getTensor(p.name), p.name).toEqual(w);
      });
      // the bf16 weights the forward reads: the master's other half, its rounding (ties away from zero)
      if (master) expect(cudaBuffer(cuda, 'params')).toEqual(master.map(bf16TiesAway));
      expect(nat.trainGetBuffer(cuda, 'grads').every((x) => x === 0)).toBe(true);
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });

  it('a step spends the gradients: zeros after it, the next backward writes them as a fresh state computes them', async () => {
    const [cpu, cuda] = models();
    try {
      for (const m of [cpu, cuda]) {
        nat.trainInit(m);
        await checkSpentGradients(m, cfg.vocab);
      }
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });

  // The embedding table's rows are flagged by the ids a backward scatters into (native/cuda/table_rows.cu)
  // and the step reads, updates and zeroes the flagged rows only. Its reference is the CPU step, which has
  // no flags: given the CUDA backward's gradients each step, it must land on the same bits. The batches
  // name rows [1, 12) at step 1, [12, 24) at step 2, [6, 18) at step 3 and [1, 24) at step 4, so rows
  // leave the batch with moments (they must keep moving), come back, and [24, 40) never appear. The
  // devices add the squares of these gradients in different orders, so their norms agree to rounding
  // (a row left out of the sum would be off by its share); without clipping the norm does not enter
  // the update. (Clipping with flags from the host: the cases above, whose gradients sum exactly.)
  it.each([
    ['no weight decay', { maxGradNorm: 0, weightDecay: 0 }],
    ['with weight decay', { maxGradNorm: 0, weightDecay: 0.1 }],
  ])('embedding rows of real batches (%s): each step bitwise the CPU step given the same gradients', async (_n, over) => {
    const [cpu, cuda] = models();
    const embed = cpu.params().find((p) => p.name === 'embed_tokens.weight')!;
    const before = cpu.getTensor(embed.name);
    try {
      nat.trainInit(cpu);
      nat.trainInit(cuda);
      const rng = new Rng(17, 1);
      const ranges: [number, number][] = [[1, 12], [12, 24], [6, 18], [1, 24]];
      const moved: boolean[][] = [];
      for (const [step, [lo, hi]] of ranges.entries()) {
        const text = (): Int32Array => Int32Array.from({ length: 2 + Math.floor(rng.next() * 5) }, () => lo + Math.floor(rng.next() * (hi - lo)));
        await accumulateGradients(cuda, [text(), text()], [text(), text(), text(), text()], { groupSize: 2, temperature: 0.05, inBatchNegatives: true, chunkTokens: 1 << 20 });
        const g = nat.trainGetBuffer(cuda, 'grads');
        nat.trainSetBuffer(cpu, 'grads', g);
        const was = cpu.getTensor(embed.name);
        const hyper: OptimizerHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: step + 1, ...over };
        const a = await nat.trainStep(cpu, hyper);
        const b = await nat.trainStep(cuda, hyper);
        expect(b.skipped || a.skipped, `step ${step + 1} skipped`).toBe(false);
        expect(Math.abs(b.gradNorm - a.gradNorm) / a.gradNorm, `step ${step + 1}: the norm, ${b.gradNorm} vs ${a.gradNorm}`).toBeLessThan(1e-12);
        for (const which of ['m', 'v'] as const) expect(nat.trainGetBuffer(cuda, which), `${which} after step ${step + 1}`).toEqual(nat.trainGetBuffer(cpu, which));
        const now = cpu.getTensor(embed.name);
        moved.push(Array.from({ length: cfg.vocab }, (_, r) => now.subarray(r * cfg.hidden, (r + 1) * cfg.hidden).some((x, j) => x !== was[r * cfg.hidden + j])));
      }
      // the CUDA model's fp32 weights are its master (L2E_GPU_TESTS_ON_CPU: a CPU model's weights)
      const master = cudaDevice === 'cuda' ? cudaBuffer(cuda, 'master') : null;
      for (const p of cpu.params()) expect(master ? master.subarray(p.offset, p.offset + p.numel) : cuda.getTensor(p.name), p.name).toEqual(cpu.getTensor(p.name));
      // what the case is about: rows [1, 12) left the batch at step 2 and moved on their moments; rows
      // [24, 40) never had a gradient and kept their weights exactly without decay, moved with it
      expect(moved[1]!.slice(1, 12).every(Boolean), 'rows with moments but no gradient at step 2 moved').toBe(true);
      const never = cpu.getTensor(embed.name).subarray(24 * cfg.hidden).every((x, j) => Object.is(x, before[24 * cfg.hidden + j]));
      expect(never, 'rows never in a batch kept').toBe(over.weightDecay === 0);
    } finally {
      cpu.dispose();
      cuda.dispose();
    }
  });

  it('a non-finite gradient: no update, moments unchanged, gradients zeroed, the norm reported', async () => {
    const [, cuda] = models();
    try {
      nat.trainInit(cuda);
      const n = nat.trainGetBuffer(cuda, 'grads').length;
      const before = cuda.params().map((p) => cuda.getTensor(p.name));
      const g = exactGrads(new Rng(3, 1), n);
      g[n - 1] = Infinity;
      nat.trainSetBuffer(cuda, 'grads', g);
      const r = await nat.trainStep(cuda, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1, step: 1 });
      expect(r).toEqual({ gradNorm: Infinity, skipped: true, loss: 0 });
      cuda.params().forEach((p, i) => expect(cuda.getTensor(p.name), p.name).toEqual(before[i]));
      for (const which of ['m', 'v', 'grads'] as const) expect(nat.trainGetBuffer(cuda, which).every((x) => x === 0), which).toBe(true);
    } finally {
      cuda.dispose();
    }
  });

  // On CUDA the table's gradient is held apart (native/cuda/table_rows.cu): the rows a backward names get
  // slots. A step skipped for a non-finite gradient must spend those slots as a taken step does: here a
  // backward whose d loss / d embeddings are NaN names rows [1, 20), the step is skipped, and the next
  // backward, naming rows [10, 40), must give what it gives on a fresh state (rows [1, 10) zero, no NaN).
  it('a step skipped for a NaN backward spends the table rows it named: the next backward is a fresh state\'s', async () => {
    const [, cuda] = models();
    try {
      const one = (lo: number, hi: number, seed: number) => {
        const rng = new Rng(seed, 1);
        const ids = Int32Array.from({ length: 24 }, () => lo + Math.floor(rng.next() * (hi - lo)));
        return { ids, cu: Int32Array.from([0, 10, 24]), dEmb: Float32Array.from({ length: 2 * cfg.dense }, () => (Math.floor(rng.next() * 33) - 16) / 64) };
      };
      const backward = async (b: ReturnType<typeof one>) => {
        await nat.trainForward(cuda, 0, b.ids, b.cu, true);
        await nat.trainBackward(cuda, 0, b.ids, b.cu, b.dEmb);
      };
      const later = one(10, 40, 8);
      nat.trainInit(cuda);
      await backward(later);
      const fresh = nat.trainGetBuffer(cuda, 'grads');
      expect(fresh.every(Number.isFinite) && fresh.some((x) => x !== 0)).toBe(true);
      nat.trainRelease(cuda);

      nat.trainInit(cuda);
      const poisoned = one(1, 20, 9);
      poisoned.dEmb[3] = NaN;
      await backward(poisoned);
      expect(nat.trainGetBuffer(cuda, 'grads').subarray(0, 20 * cfg.hidden).some(Number.isNaN), 'the NaN reached the table').toBe(true);
      const r = await nat.trainStep(cuda, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1, step: 1 });
      expect(r.skipped).toBe(true);
      await backward(later);
      const again = nat.trainGetBuffer(cuda, 'grads');
      expect(again.subarray(0, 10 * cfg.hidden).every((x) => x === 0), 'rows only the skipped backward named').toBe(true);
      // the same operations on the same weights (the skipped step moved none); room for atomics' order
      let num = 0, den = 0;
      for (let i = 0; i < fresh.length; i++) (num += (again[i]! - fresh[i]!) ** 2), (den += fresh[i]! ** 2);
      expect(Math.sqrt(num / den)).toBeLessThan(1e-6); // NaN fails
    } finally {
      cuda.dispose();
    }
  });
});
