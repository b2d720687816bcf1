// Our sgemm (native/cpu/gemm*.cpp) against a float64 reference, for every micro-kernel this CPU
// runs, all four transpose combinations, odd sizes, alpha/beta, padded strides, and shapes that
// cross the cache blocks (k > kc, rows > mc) and the two-thread split.
import { describe, expect, it, afterAll } from 'vitest';

import { testingAddon } from './helpers/testing-addon.mjs';
import { seededRandom } from './helpers/tinyModel.js';

interface GemmNatives {
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
  ): void;
  gemmKernel(): string;
  setGemmKernel(name: string): void;
  packWeights(W: Float32Array, N: number, K: number, pack: boolean): void;
  sgemmPackedWeights(
    M: number, N: number, K: number, A: Float32Array, lda: number, Wp: Float32Array, beta: number, C: Float32Array, ldc: number,
  ): void;
}

const addon = testingAddon<GemmNatives>();
const KERNELS = ['avx512', 'avx2', 'scalar'] as const; // best first
const defaultKernel = addon.gemmKernel();
// Every kernel at or below the automatic choice runs on this CPU.
const supported = KERNELS.slice(KERNELS.indexOf(defaultKernel as (typeof KERNELS)[number]));

afterAll(() => addon.setGemmKernel(defaultKernel));

/** Deterministic uniform numbers in [-1, 1) (the test helpers' mulberry32). */
function rng(seed: number): () => number {
  const u = seededRandom(seed);
  return () => u() * 2 - 1;
}

/** A rows x cols matrix with row stride ld; the padding holds `pad` (NaN for inputs: must never be used). */
function matrix(rows: number, cols: number, ld: number, rand: () => number, pad: number): Float32Array {
  const m = new Float32Array(Math.max(1, rows * ld)).fill(pad);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[r * ld + c] = rand();
  return m;
}

interface Case {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  pad: number; // extra elements per row in A, B and C
}

/**
 * Runs one case and checks every element of C (and that C's padding is untouched).
 * Tolerance: the float32 result is a sum of K products with at most K roundings in the dot
 * product, plus a couple per cache block of k (alpha scaling, adding onto C) and the beta term,
 * so |c - exact| <= gamma_n * (|alpha| sum_k |a_ik b_kj| + |beta c_ij|), gamma_n = n u / (1 - n u),
 * u = 2^-24, with n = 2K + 8 a safe over-count. This is a rigorous bound, not a fudge factor, yet
 * dropping or doubling a single product (the usual edge/packing bug) exceeds it by orders of magnitude.
 */
type Run = (A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array, ldc: number) => void;

function checkCase(c: Case, seed: number, run?: Run): void {
  const { transA, transB, M, N, K, alpha, beta, pad } = c;
  const rand = rng(seed);
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  const lda = aCols + pad, ldb = bCols + pad, ldc = N + pad;
  const A = matrix(aRows, aCols, lda, rand, NaN);
  const B = matrix(bRows, bCols, ldb, rand, NaN);
  const SENTINEL = 12345;
  // beta == 0: C's old contents must be ignored, so make them NaN.
  const C = matrix(M, N, ldc, beta === 0 ? () => NaN : rand, SENTINEL);
  const C0 = C.slice();
  if (run) run(A, lda, B, ldb, C, ldc);
  else addon.sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);

  const a = (i: number, k: number) => (transA ? A[k * lda + i] : A[i * lda + k]);
  const b = (k: number, j: number) => (transB ? B[j * ldb + k] : B[k * ldb + j]);
  const u = 2 ** -24, n = 2 * K + 8, gamma = (n * u) / (1 - n * u);
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let exact = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        const p = a(i, k) * b(k, j);
        exact += p;
        mag += Math.abs(p);
      }
      const old = beta === 0 ? 0 : C0[i * ldc + j];
      exact = alpha * exact + beta * old;
      const bound = gamma * (Math.abs(alpha) * mag + Math.abs(beta * old)) + 1e-30;
      const got = C[i * ldc + j];
      const err = Math.abs(got - exact);
      if (!(err <= bound)) {
        throw new Error(
          `C[${i},${j}] = ${got}, expected ${exact} (err ${err} > bound ${bound}) for ${JSON.stringify(c)}`,
        );
      }
      worst = Math.max(worst, err / bound);
    }
    for (let j = N; j < ldc; j++) if (C[i * ldc + j] !== SENTINEL) throw new Error(`C padding written at [${i},${j}]`);
  }
  expect(worst).toBeLessThanOrEqual(1);
}

const TRANSPOSES: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
// [M, N, K]: odd sizes around the 14/6/4-row and 32/16/8-col tiles, degenerate 1s, and big enough
// products to take the two-thread path (> 2 MFLOP).
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 33, 65], [33, 7, 1], [65, 100, 33], [100, 65, 257], [1, 257, 100], [257, 1, 100],
  [15, 31, 17], [29, 47, 3], [257, 257, 7], [130, 200, 120],
];
// Cross every cache block and every way of sharing the work between threads: k > kc (512 at most,
// so later k blocks accumulate onto C) with C cut into row bands; cols > nc (4096, single-threaded
// at this size); a small M cut into column bands; and a shared packed op(B) over 4M floats
// (K x N = 4.4M), split into column blocks.
const BLOCK_SHAPES: [number, number, number][] = [[600, 45, 600], [9, 4200, 20], [20, 3000, 40], [3, 4000, 1100]];

describe.each(supported.map((k) => [k]))('sgemm with the %s kernel', (kernel) => {
  it('selects the kernel', () => {
    addon.setGemmKernel(kernel);
    expect(addon.gemmKernel()).toBe(kernel);
  });

  it.each(TRANSPOSES)('matches float64 on odd shapes (transA=%s, transB=%s)', (transA, transB) => {
    addon.setGemmKernel(kernel);
    SHAPES.forEach(([M, N, K], s) => {
      const alpha = [1, -0.75, 2.5][s % 3];
      const beta = [0, 1, -0.5, 0.25][s % 4];
      checkCase({ transA, transB, M, N, K, alpha, beta, pad: s % 2 === 0 ? 0 : 3 }, 1000 + s);
    });
  });

  it.each(TRANSPOSES)('matches float64 across cache blocks (transA=%s, transB=%s)', (transA, transB) => {
    addon.setGemmKernel(kernel);
    BLOCK_SHAPES.forEach(([M, N, K], s) => {
      checkCase({ transA, transB, M, N, K, alpha: 0.5, beta: s % 2 === 1 ? 1.5 : 0, pad: 5 }, 2000 + s);
    });
  });

  it('treats K = 0 and alpha = 0 as C = beta C, and beta = 0 as write-only', () => {
    addon.setGemmKernel(kernel);
    const A = new Float32Array(6).fill(NaN), B = new Float32Array(6).fill(NaN);
    const C = new Float32Array([1, 2, 3, 4]);
    addon.sgemm(false, false, 2, 2, 0, 1, A, 1, B, 2, 2, C, 2);
    expect(Array.from(C)).toEqual([2, 4, 6, 8]);
    C.fill(NaN);
    addon.sgemm(false, false, 2, 2, 0, 1, A, 1, B, 2, 0, C, 2);
    expect(Array.from(C)).toEqual([0, 0, 0, 0]);
    const A1 = new Float32Array([1, 2]), B1 = new Float32Array([3, 4]);
    C.set([1, 1, 1, 1]);
    addon.sgemm(false, false, 2, 2, 1, 0, A1, 1, B1, 2, 3, C, 2);
    expect(Array.from(C)).toEqual([3, 3, 3, 3]);
  });
});

/** C = A W^T + beta C through the pre-packed weights: W (row stride ldb) copied, packed, multiplied. */
function packedRun(c: Case): Run {
  return (A, lda, B, ldb, C, ldc) => {
    const W = new Float32Array(c.N * c.K);
    for (let n = 0; n < c.N; n++) W.set(B.subarray(n * ldb, n * ldb + c.K), n * c.K);
    addon.packWeights(W, c.N, c.K, true);
    addon.sgemmPackedWeights(c.M, c.N, c.K, A, lda, W, c.beta, C, ldc);
  };
}

// [M, N, K] for the pre-packed weights: whole 32-row blocks and a row-major tail (N % 32), k > kc,
// rows > mc (several row bands), a small M (columns cut between the threads; at most 3 row tiles:
// the streaming order, slivers swept whole over k blocks, with last tiles of 6 and 12 rows).
const PACKED_SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 33, 65], [65, 100, 33], [33, 70, 600], [300, 64, 40], [3, 200, 20], [257, 257, 7], [20, 96, 1100],
  [40, 70, 1100],
];

describe.each(supported.map((k) => [k]))('sgemm with pre-packed weights, %s kernel', (kernel) => {
  it('matches float64, with and without beta, on whole blocks and tails', () => {
    addon.setGemmKernel(kernel);
    PACKED_SHAPES.forEach(([M, N, K], s) => {
      const c: Case = { transA: false, transB: true, M, N, K, alpha: 1, beta: [0, 1, -0.5][s % 3]!, pad: s % 2 === 0 ? 0 : 3 };
      checkCase(c, 3000 + s, packedRun(c));
    });
  });
});

describe('pre-packed weights', () => {
  it('packs whole 32-row blocks k-major, leaves the tail rows as they are, and unpacks exactly', () => {
    const N = 70, K = 37; // two blocks and a tail of 6 rows
    const rand = rng(7);
    const W = Float32Array.from({ length: N * K }, rand);
    const packed = W.slice();
    addon.packWeights(packed, N, K, true);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const at = n < 64 ? Math.floor(n / 32) * 32 * K + k * 32 + (n % 32) : n * K + k;
        if (packed[at] !== W[n * K + k]) throw new Error(`W[${n},${k}] is not at ${at} after packing`);
      }
    addon.packWeights(packed, N, K, false);
    expect(packed).toEqual(W);
  });

  it('refuses a weight array of the wrong size', () => {
    expect(() => addon.packWeights(new Float32Array(10), 3, 4, true)).toThrow('sgemm: W has 10 elements but a 3x4 matrix with row stride 4 needs 12');
    expect(() => addon.packWeights(new Float32Array(13), 3, 4, true)).toThrow('packWeights: W must hold exactly N x K values');
  });
});

describe('sgemm kernel selection and argument checks', () => {
  it('reports a known kernel and refuses unknown ones or ones above the instruction set in use', () => {
    expect(KERNELS).toContain(defaultKernel);
    expect(() => addon.setGemmKernel('sse9')).toThrow("sgemm: unknown kernel 'sse9' (expected avx512, avx2 or scalar)");
    for (const k of KERNELS.slice(0, KERNELS.indexOf(defaultKernel as (typeof KERNELS)[number])))
      expect(() => addon.setGemmKernel(k)).toThrow(
        `sgemm: the '${k}' kernel is not available (instruction set in use: ${defaultKernel})`,
      );
  });

  it('throws clear errors for arrays too small for their strides', () => {
    const f = (n: number) => new Float32Array(n);
    // A is 3x4 with lda 5: needs 2*5 + 4 = 14 elements.
    expect(() => addon.sgemm(false, false, 3, 2, 4, 1, f(13), 5, f(8), 2, 0, f(6), 2)).toThrow(
      /A has 13 elements but a 3x4 matrix with row stride 5 needs 14/,
    );
    // transB: B is [N=2, K=4] with ldb 4: needs 8.
    expect(() => addon.sgemm(false, true, 3, 2, 4, 1, f(12), 4, f(7), 4, 0, f(6), 2)).toThrow(/B has 7 elements/);
    expect(() => addon.sgemm(false, false, 3, 2, 4, 1, f(12), 4, f(8), 2, 0, f(5), 2)).toThrow(/C has 5 elements/);
    expect(() => addon.sgemm(false, false, 3, 2, 4, 1, f(12), 3, f(8), 2, 0, f(6), 2)).toThrow(/lda = 3 is less than/);
    expect(() => addon.sgemm(false, false, 3, 2, 1.5, 1, f(12), 4, f(8), 2, 0, f(6), 2)).toThrow(/K must be a non-negative integer/);
    const wrongType = new Float64Array(12) as unknown as Float32Array;
    expect(() => addon.sgemm(false, false, 3, 2, 4, 1, wrongType, 4, f(8), 2, 0, f(6), 2)).toThrow(/A must be a Float32Array/);
  });
});
