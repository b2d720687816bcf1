// The bf16 / int8 GEMM kernels (native/cpu/gemm_bf16.cpp, gemm_int8.cpp, driver gemm_lowp.cpp) on
// every micro-kernel this CPU runs, against references written here from the math in the files'
// headers: int8 must match bit for bit (exact int32 sums, the same two fp32 roundings), bf16 must lie
// within the fp32 inner-product bound of the exact sum over the bf16 weights (and, for the
// vdpbf16ps kernel, the bf16-rounded x; the others keep x fp32). Shapes are odd,
// cross the 32-column slivers, the k blocks (512 k for bf16, 1024 for int8), the 224-row bands and
// the two-thread split; the output starts NaN-poisoned, so every element must be written.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { packageRoot } from '../src/native.js';
import { testingAddon, testingAddonPath } from './helpers/testing-addon.mjs';
import { seededRandom } from './helpers/tinyModel.js';

type P = 'bf16' | 'int8';
interface LowpNatives {
  lowpLinear(p: P, kernel: string | null, x: Float32Array, T: number, W: Float32Array, N: number, K: number, y?: Float32Array): Float32Array;
  lowpKernels(): { bf16: string[]; int8: string[]; picked: { bf16: string; int8: string } };
}
// lowpLinear / lowpKernels are test hooks (native/testing/lowp_binding.cpp)
const addon = testingAddon<LowpNatives>();
const kernels = addon.lowpKernels();

/** Deterministic uniform numbers in [-1, 1) (the test helpers' mulberry32). */
function rng(seed: number): () => number {
  const u = seededRandom(seed);
  return () => u() * 2 - 1;
}
function randomMatrix(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
}

const f = Math.fround;
/** Round half to even, as C's nearbyint in the default rounding mode. */
function rne(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);
/** float -> bf16 -> float, round to nearest even (NaN kept). */
function bf16(v: number): number {
  f32[0] = v;
  if (Number.isNaN(v)) return v;
  const u = u32[0]!;
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

/** Symmetric int8 of a row as core/lowp.h and gemm_int8.cpp define it: [scale, q values]. */
function quantize(row: Float32Array): [number, Int32Array] {
  let amax = 0;
  for (const v of row) amax = Math.max(amax, Math.abs(v));
  const q = new Int32Array(row.length);
  if (amax === 0) return [0, q];
  const inv = f(127 / amax);
  for (let k = 0; k < row.length; k++) q[k] = Math.min(127, Math.max(-127, rne(f(row[k]! * inv))));
  return [f(amax / 127), q];
}

/** y = x W^T through int8: exact int sums, then float(acc - 128 colsum) * (sa * sw), as the header says. */
function int8Reference(x: Float32Array, T: number, W: Float32Array, N: number, K: number): Float32Array {
  const wq = Array.from({ length: N }, (_, n) => quantize(W.subarray(n * K, (n + 1) * K)));
  const y = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    const [sa, p] = quantize(x.subarray(t * K, (t + 1) * K));
    for (let n = 0; n < N; n++) {
      const [sw, q] = wq[n]!;
      let acc = 0; // sum of (p + 128) q minus 128 sum q = sum p q, exactly
      for (let k = 0; k < K; k++) acc += p[k]! * q[k]!;
      y[t * N + n] = f(f(acc) * f(sa * sw));
    }
  }
  return y;
}

/** The kernels that multiply bf16-rounded x (vdpbf16ps, AMX tdpbf16ps); the others widen W and keep x fp32. */
const ROUNDS_X = new Set(['avx512bf16', 'amx']);

/** Exact sum over the bf16 weights (and x rounded when roundX) and the fp32 inner-product bound gamma_K sum |a b|. */
function bf16Reference(
  x: Float32Array, T: number, W: Float32Array, N: number, K: number, roundX: boolean,
): { ref: Float64Array; bound: Float64Array } {
  const u = 2 ** -24;
  const gamma = (K * u) / (1 - K * u);
  const xb = roundX ? x.map(bf16) : x, wb = W.map(bf16);
  const ref = new Float64Array(T * N), bound = new Float64Array(T * N);
  for (let t = 0; t < T; t++)
    for (let n = 0; n < N; n++) {
      let s = 0, a = 0;
      for (let k = 0; k < K; k++) {
        const p = xb[t * K + k]! * wb[n * K + k]!;
        s += p;
        a += Math.abs(p);
      }
      ref[t * N + n] = s;
      bound[t * N + n] = gamma * a;
    }
  return { ref, bound };
}

/** The first index where y differs from want (bitwise for floats, NaN equal to NaN), or -1. */
function firstMismatch(y: Float32Array, want: Float32Array): number {
  for (let i = 0; i < y.length; i++) if (!Object.is(y[i], want[i])) return i;
  return -1;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [15, 33, 9],
  [29, 65, 515], // what would be two bf16 k blocks, swept whole (a short x)
  [230, 40, 1030], // rows past one 224-row band, two threads (k blocked for the bf16 kernels on fp32 x)
  [300, 40, 2100], // x past gemm_lowp.cpp's kWholeBytes in every kernel: k blocked (bf16 5, int8 3 blocks)
  [1, 300, 1100], // one token across many slivers (column split)
  [5, 40, 300], // a short x on narrower AVX-512 int8 tiles (gemm_int8.cpp): 6 rows; 24: two of 12
  [24, 40, 300],
  [33, 47, 130], // AMX: one row past a 32-row block, 16-column tile halves, k past whole tiles (bf16 32, int8 64 k)
  [64, 96, 2100], // AMX: full 32 x 32 blocks kept in C between k blocks (bf16 5, int8 3)
  [20, 96, 2100], // one tile of rows: slivers swept whole over what would be 5 / 3 k blocks (streaming)
];

/** Every row count up to 48: past three of the widest AVX-512 tiles (14 rows) and one AMX block (32),
 * so each way a kernel splits rows into its narrower tiles (14/12/10/8/6/4: gemm_int8.cpp, gemm_bf16.cpp)
 * and a tail; 37 columns (two 16-column slivers and a partial one); K 70 (past a 64-wide int8 AMX tile,
 * x always swept whole) and 2100 (from 32 rows x passes gemm_lowp.cpp's kWholeBytes: k blocked). */
const ROW_SWEEP = { rows: Array.from({ length: 48 }, (_, i) => i + 1), N: 37, Ks: [70, 2100] };

describe('lowp kernels: picked at run time', () => {
  it('lists the scalar reference for both precisions and picks the best kernel this CPU runs', () => {
    expect(kernels.bf16[0]).toBe('scalar');
    expect(kernels.int8[0]).toBe('scalar');
    // bf16: vdpbf16ps only where it runs at the FMA's rate (AMD), else the widening kernel (gemm_bf16.cpp)
    const fullRate = testingAddon<{ cpuIsa(): { features: { bf16DotFullRate: boolean } } }>().cpuIsa().features.bf16DotFullRate;
    const order = fullRate ? ['amx', 'avx512bf16', 'avx512', 'avx2', 'scalar'] : ['amx', 'avx512', 'avx2', 'scalar'];
    expect(kernels.picked.bf16).toBe(order.find((k) => kernels.bf16.includes(k)));
    expect(kernels.picked.int8).toBe(kernels.int8[kernels.int8.length - 1]);
  });

  it('L2E_CPU_ISA caps the choice with every other kernel (child processes, expected from the CPU\'s own features)', () => {
    type Cpu = { avx2: boolean; avx512: boolean; avx512Bf16: boolean; bf16DotFullRate: boolean; avxVnni: boolean; avx512Vnni: boolean; amxBf16: boolean; amxInt8: boolean };
    const cpu = testingAddon<{ cpuIsa(): { cpu: Cpu } }>().cpuIsa().cpu;
    const pick = (isa: string) => {
      const r = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(testingAddonPath())}).lowpKernels().picked))`], {
        cwd: packageRoot,
        env: { ...process.env, L2E_CPU_ISA: isa },
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as { bf16: string; int8: string };
    };
    expect(pick('scalar')).toEqual({ bf16: 'scalar', int8: 'scalar' });
    if (cpu.avx2) expect(pick('avx2')).toEqual({ bf16: 'avx2', int8: cpu.avxVnni ? 'avx2' : 'scalar' });
    if (cpu.avx512) {
      const int8 = cpu.avx512Vnni ? 'avx512' : cpu.avxVnni ? 'avx2' : 'scalar';
      const bf16 = cpu.bf16DotFullRate ? 'avx512bf16' : 'avx512';
      expect(pick('avx512')).toEqual({ bf16, int8 }); // no AMX below the amx level
      if (cpu.amxBf16 || cpu.amxInt8)
        expect(pick('amx')).toEqual({ bf16: cpu.amxBf16 ? 'amx' : bf16, int8: cpu.amxInt8 ? 'amx' : int8 });
    }
  });

  it('a kernel this CPU lacks is a clear error', () => {
    expect(() => addon.lowpLinear('int8', 'sse9', new Float32Array(1), 1, new Float32Array(1), 1, 1)).toThrow(
      "linear: no int8 kernel 'sse9' on this CPU",
    );
  });
});

describe.each(kernels.int8)('int8 kernel %s', (kernel) => {
  it.each(SHAPES)('T=%i N=%i K=%i equals the reference bit for bit', (T, N, K) => {
    const x = randomMatrix(T * K, T * 7 + K);
    const W = randomMatrix(N * K, N * 13 + K, 0.05);
    const y = new Float32Array(T * N).fill(NaN);
    addon.lowpLinear('int8', kernel, x, T, W, N, K, y);
    expect(firstMismatch(y, int8Reference(x, T, W, N, K))).toBe(-1);
  });

  it.each(ROW_SWEEP.Ks)(`every row count from 1 to ${ROW_SWEEP.rows.length} (N=${ROW_SWEEP.N} K=%i) equals the reference bit for bit`, (K) => {
    const { N } = ROW_SWEEP;
    const W = randomMatrix(N * K, 17, 0.05);
    for (const T of ROW_SWEEP.rows) {
      const x = randomMatrix(T * K, 100 + T);
      const y = new Float32Array(T * N).fill(NaN);
      addon.lowpLinear('int8', kernel, x, T, W, N, K, y);
      expect([T, firstMismatch(y, int8Reference(x, T, W, N, K))]).toEqual([T, -1]);
    }
  });

  it('a token with NaN gives a NaN row and leaves the others exact', () => {
    const [T, N, K] = [20, 40, 70];
    const x = randomMatrix(T * K, 5);
    x[3 * K + 11] = NaN;
    const W = randomMatrix(N * K, 6);
    const y = addon.lowpLinear('int8', kernel, x, T, W, N, K);
    const want = int8Reference(x.map((v) => (Number.isNaN(v) ? 0 : v)), T, W, N, K);
    for (let n = 0; n < N; n++) want[3 * N + n] = NaN;
    expect(firstMismatch(y, want)).toBe(-1);
  });
});

describe.each(kernels.bf16)('bf16 kernel %s', (kernel) => {
  it.each(SHAPES)('T=%i N=%i K=%i lies within gamma_K sum|ab| of the exact bf16 product', (T, N, K) => {
    const x = randomMatrix(T * K, T * 3 + K);
    const W = randomMatrix(N * K, N * 5 + K, 0.05);
    const y = new Float32Array(T * N).fill(NaN);
    addon.lowpLinear('bf16', kernel, x, T, W, N, K, y);
    const { ref, bound } = bf16Reference(x, T, W, N, K, ROUNDS_X.has(kernel));
    let worst = 0;
    for (let i = 0; i < y.length; i++) {
      expect(Number.isFinite(y[i])).toBe(true);
      worst = Math.max(worst, Math.abs(y[i]! - ref[i]!) / (bound[i]! || 1e-30));
    }
    expect(worst).toBeLessThanOrEqual(1);
    // and the bound is not vacuous: bf16 rounding of the weights moves the result far more than it
    const plain = new Float64Array(T * N);
    for (let t = 0; t < T; t++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += x[t * K + k]! * W[n * K + k]!;
        plain[t * N + n] = s;
      }
    if (K >= 9) expect(plain.some((v, i) => Math.abs(v - ref[i]!) > bound[i]!)).toBe(true);
  });

  it.each(ROW_SWEEP.Ks)(`every row count from 1 to ${ROW_SWEEP.rows.length} (N=${ROW_SWEEP.N} K=%i) lies within the bound`, (K) => {
    const { N } = ROW_SWEEP;
    const W = randomMatrix(N * K, 19, 0.05);
    for (const T of ROW_SWEEP.rows) {
      const x = randomMatrix(T * K, 200 + T);
      const y = new Float32Array(T * N).fill(NaN);
      addon.lowpLinear('bf16', kernel, x, T, W, N, K, y);
      const { ref, bound } = bf16Reference(x, T, W, N, K, ROUNDS_X.has(kernel));
      const outside = y.findIndex((v, i) => !(Math.abs(v - ref[i]!) <= bound[i]!)); // NaN is outside
      expect([T, outside]).toEqual([T, -1]);
    }
  });

  it('a NaN weight stays NaN (its output column), the other columns stay within the bound', () => {
    const [T, N, K] = [9, 35, 40];
    const x = randomMatrix(T * K, 1);
    const W = randomMatrix(N * K, 2);
    W[33 * K + 5] = NaN;
    const y = addon.lowpLinear('bf16', kernel, x, T, W, N, K);
    const { ref, bound } = bf16Reference(x, T, W, N, K, ROUNDS_X.has(kernel));
    for (let t = 0; t < T; t++)
      for (let n = 0; n < N; n++) {
        const i = t * N + n;
        if (n === 33) expect(y[i]).toBeNaN();
        else expect(Math.abs(y[i]! - ref[i]!)).toBeLessThanOrEqual(bound[i]!);
      }
  });
});

describe('int8 weights', () => {
  it('refuses rows too long for exact int32 sums (K > 66000)', () => {
    const K = 66001;
    expect(() => addon.lowpLinear('int8', null, new Float32Array(K), 1, new Float32Array(K), 1, K)).toThrow(
      'int8: rows of 66001 values are too long for int32 sums (at most 66000)',
    );
    expect(addon.lowpLinear('int8', null, new Float32Array(66000).fill(1), 1, new Float32Array(66000).fill(1), 1, 66000)[0]).toBe(66000);
  });

  it('refuses a weight row with NaN, naming the row', () => {
    const W = new Float32Array(6).fill(0.5);
    W[4] = NaN;
    expect(() => addon.lowpLinear('int8', null, new Float32Array(3), 1, W, 2, 3)).toThrow(
      'row 1 holds NaN or infinity, which int8 cannot represent (load in fp32 or bf16)',
    );
  });
});
