// Shared by the GPU suites: whether a CUDA GPU is usable (else every suite skips with the reason),
// running one op on both backends, bf16 rounding and seeded random inputs.
import { testingAddon } from '../helpers/testing-addon.mjs';
import type { NativeModel, NativeModelConfig } from '../../src/model/embedding-model.js';
import { Rng } from '../../src/util/random.js';

export type OpArgs = Record<string, number | boolean | string | Float32Array | Int32Array>;
export type OpResult = Record<string, Float32Array> & { value?: number };

export interface GpuAddon {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
  backendOp?: (device: string, op: string, args: OpArgs) => OpResult;
  backendOps?: () => string[];
  cudaAttentionVariants?: () => string[];
  cudaStatus: () => { compiled: boolean; usable: boolean; emulated: boolean; reason: string; freeBytes?: number; totalBytes?: number };
}

/** The test addon: the shipped addon's functions and the backendOp hook. */
export function addon(): GpuAddon {
  return testingAddon<GpuAddon>();
}

/**
 * L2E_GPU_TESTS_ON_CPU=1 runs these suites with 'cpu' standing in for 'cuda' (every comparison is then
 * CPU vs CPU): a self-check of the harness and its op arguments on machines without a GPU.
 */
export const cudaDevice: 'cpu' | 'cuda' = process.env['L2E_GPU_TESTS_ON_CPU'] === '1' ? 'cpu' : 'cuda';

/** Tries to create a tiny model on 'cuda': the one test of "a GPU, its driver and cuBLAS work". */
function probe(): { usable: boolean; reason: string } {
  if (cudaDevice === 'cpu') return { usable: true, reason: '' };
  try {
    const a = addon();
    const m = new a.NativeModel(
      { vocab: 8, hidden: 16, intermediate: 16, layers: 1, heads: 2, kvHeads: 2, headDim: 8, dense: 4, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true },
      'cuda',
    );
    m.dispose();
    if (!a.backendOp) return { usable: false, reason: 'the addon has no backendOp test hook' };
    return { usable: true, reason: '' };
  } catch (err) {
    return { usable: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

export const gpu = probe();

/**
 * The addon is the CUDA emulation build (L2E_CUDA_EMULATE=1, loaded through L2E_ADDON): the kernels
 * run on the CPU, thousands of times slower, so sizes that only make sense on a GPU shrink (never a
 * structural case: tiles, lengths 1, GQA, head dims stay).
 */
export const emulated = cudaDevice === 'cuda' && gpu.usable && addon().cudaStatus().emulated === true;

/** `onGpu` on a real GPU, `underEmulation` in the emulation build. */
export function sized<T>(onGpu: T, underEmulation: T): T {
  return emulated ? underEmulation : onGpu;
}
export const gpuNote = gpu.usable ? '' : `(skipped: no usable CUDA GPU — ${gpu.reason})`;

export function runOp(device: 'cpu' | 'cuda', op: string, args: OpArgs): OpResult {
  return addon().backendOp!(device === 'cuda' ? cudaDevice : 'cpu', op, args);
}

/** An explicit sm_90a attention kernel ('sm90', 'sm90wg2', 'sm90pp') where it cannot run (native/cuda/attention_dispatch.cu). */
export const sm90Unavailable = (kernel: string): string =>
  `attention kernel '${kernel}' needs a compute capability 9.0 GPU (H100/H200) and a build with sm_90a`;

/**
 * The attention kernels (backendOp's attentionKernel) the suites cross-check against the CPU on this
 * device: simple and sm80 everywhere, sm90, sm90wg2 and sm90pp where they run (an H100/H200 with the sm_90a
 * image, and the emulation build, whose device reports compute capability 9.0).
 */
export function attentionKernels(): string[] {
  const kernels = ['simple', 'sm80'];
  // an empty batch: the kernel is checked, nothing launched (a fault of a kernel never run on a GPU
  // would end the CUDA context while the suites are being collected)
  const cu = cuSeqlens([]);
  const none = new Float32Array(0);
  for (const kernel of ['sm90', 'sm90wg2', 'sm90pp']) {
    try {
      runOp('cuda', 'attention', { q: none, k: none, v: none, cu, nh: 1, nkv: 1, hd: 64, attentionKernel: kernel });
      kernels.push(kernel);
    } catch (err) {
      if (!(err instanceof Error) || err.message !== sm90Unavailable(kernel)) throw err;
    }
  }
  return kernels;
}

/** Round to the nearest bfloat16 (ties to even), as the CUDA backend stores activations and weights. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function bf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return x;
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}
export function bf16Array(a: Float32Array): Float32Array {
  return a.map(bf16);
}

/**
 * Round to the nearest bfloat16, ties away from zero (IEEE 754 roundTiesToAway): how the CUDA
 * backend's parameters round the fp32 master while training (native/core/master_halves.h). Chosen by
 * value between the two bf16 neighbours of x, not by the bit rule the native code uses.
 */
export function bf16TiesAway(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) >= 0x7f800000) return x;  // infinities and NaN
  u32[0] = u & 0xffff0000;
  const toward = f32[0]!;  // the neighbour toward zero
  u32[0] = (u & 0xffff0000) + 0x10000;
  const away = f32[0]!;  // the neighbour away from zero: Infinity past the largest finite bf16 ...
  const awayUnbounded = Number.isFinite(away) ? away : Math.sign(x) * 2 ** 128;  // ... rounded to as to 2^128 (overflow)
  return Math.abs(x - toward) < Math.abs(awayUnbounded - x) ? toward : away;
}

/** Uniform in [-scale, scale), rounded to bf16 so both backends see the same values. */
export function randBf16(rng: Rng, n: number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = bf16(offset + (rng.next() * 2 - 1) * scale);
  return a;
}

export function randInt(rng: Rng, n: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rng.next() * hi);
  return a;
}

export function cuSeqlens(lens: number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => (cu[i + 1] = cu[i]! + l));
  return cu;
}

export { relError as relErr } from '../helpers/fixture.js';

export function hasNaN(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i]!)) return true;
  return false;
}

/**
 * The largest per-row relative error max_r ‖a_r − b_r‖ / max(‖b_r‖, ρ) over rows of `dim` values (b is
 * the reference), so that an error confined to a few rows (one warp's, one tile's) cannot hide in a
 * norm over the whole tensor. ρ, the RMS row norm of b, keeps rows whose reference is (nearly) zero
 * (dq of a sequence's first token is exactly 0 on the CPU) from dividing by zero. NaN if any is NaN.
 */
export function maxRowRelErr(a: Float32Array, b: Float32Array, dim: number): number {
  const rows = b.length / dim;
  let total = 0;
  for (let i = 0; i < b.length; i++) total += b[i]! * b[i]!;
  const rho = Math.sqrt(total / rows);
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    let d = 0;
    let n = 0;
    for (let c = 0; c < dim; c++) {
      const x = a[r * dim + c]!;
      const y = b[r * dim + c]!;
      d += (x - y) * (x - y);
      n += y * y;
    }
    const e = Math.sqrt(d) / Math.max(Math.sqrt(n), rho);
    if (Number.isNaN(e)) return NaN;
    worst = Math.max(worst, e);
  }
  return worst;
}

/** Row-wise cosine similarity of two [rows, dim] matrices; the smallest. */
export function minRowCosine(a: Float32Array, b: Float32Array, dim: number): number {
  let worst = 1;
  for (let r = 0; r * dim < a.length; r++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let c = 0; c < dim; c++) {
      const x = a[r * dim + c]!;
      const y = b[r * dim + c]!;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    const cos = ab / Math.sqrt(aa * bb);
    worst = Number.isNaN(cos) ? NaN : Math.min(worst, cos);
    if (Number.isNaN(worst)) return NaN;
  }
  return worst;
}

/** Sets every parameter of `models` to the same seeded random bf16 values (norm weights around 1). */
/** The weights of a model's linear layers (every 2-D tensor but the embedding table): each is applied to every token. */
export function linearWeights(m: Pick<NativeModel, 'params'>): number {
  return m.params().filter((p) => p.shape.length === 2 && p.name !== 'embed_tokens.weight').reduce((s, p) => s + p.numel, 0);
}

export function randomWeights(models: NativeModel[], seed: number): void {
  const rng = new Rng(seed, 3);
  for (const p of models[0]!.params()) {
    const isNorm = p.name.endsWith('norm.weight');
    const fanIn = p.shape.length === 2 ? p.shape[1]! : 1;
    const scale = isNorm ? 0.1 : p.name.startsWith('embed_tokens') ? 1 : 1 / Math.sqrt(fanIn);
    const data = randBf16(rng, p.numel, scale, isNorm ? 1 : 0);
    for (const m of models) m.setTensor(p.name, data);
  }
}

/** Makes a CPU model's weights exactly the bf16 values the CUDA model holds. */
export function roundWeightsToBf16(m: NativeModel): void {
  for (const p of m.params()) m.setTensor(p.name, bf16Array(m.getTensor(p.name)));
}
