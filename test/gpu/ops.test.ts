// Every CUDA op against the CPU op on the same fresh random inputs (ggml test-backend-ops style).
// Inputs are rounded to bf16 first, so both backends see identical values and only the arithmetic
// differs. Outputs are poisoned with NaN before each call (native/testing/backend_ops_binding.cpp), and
// relErr is NaN when any element is, which fails every bound. Attention here takes whichever kernel
// 'auto' picks on this device.
//
// Bounds: op-compare.ts. The attention kernels and tile variants named explicitly are in
// attention-*.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/random.js';
import { addon, bf16, bf16TiesAway, cudaDevice, cuSeqlens, gpu, gpuNote, randBf16, randInt, randomWeights, relErr, runOp, type OpArgs } from './gpu-helpers.js';
import { attnBackward, attnCases, attnForward, attnInputs, compare, compared, DOUBLE_ROUNDED, EXACT_BF16, F32, record, writeMeasuredErrors } from './op-compare.js';

afterAll(writeMeasuredErrors);

describe.skipIf(!gpu.usable)(`CUDA ops vs CPU ops ${gpuNote}`, () => {
  const rng = new Rng(20240611, 1);

  it('embedding (bf16 gather: exact)', () => {
    const T = 40, H = 96, V = 50;
    compare('embedding', { ids: randInt(rng, T, V), table: randBf16(rng, V * H), T, H }, { out: 0 });
  });

  it.each([64, 172, 4096])('rmsnorm H=%i', (H) => {
    const T = 33;
    compare('rmsnorm', { x: randBf16(rng, T * H, 2), w: randBf16(rng, H, 0.2, 1), T, H, eps: 1e-5 }, { y: DOUBLE_ROUNDED, rstd: F32 });
  });

  // The residual stream's add fused into the norm: on CUDA bit for bit the add_inplace op followed by
  // the plain norm; against the CPU (fp32 sums) the sum carries bf16's rounding (EXACT_BF16), y the
  // norm's two roundings of it, as the unfused ops did, and rstd that rounding of the sum: each square
  // moves by at most 2 * 2^-9 relatively, so their mean too, and r = mean^-1/2 by at most 2^-9
  it.each([64, 4096])('rmsnorm H=%i with a residual: x += residual, then the norm of the sum', (H) => {
    const T = 33;
    const x = randBf16(rng, T * H, 2), residual = randBf16(rng, T * H, 2), w = randBf16(rng, H, 0.2, 1);
    const fused = compare('rmsnorm', { x, residual, w, T, H, eps: 1e-5 }, { x: EXACT_BF16, y: DOUBLE_ROUNDED, rstd: 2 ** -9 }).cuda;
    const sum = runOp('cuda', 'add_inplace', { x, y: residual }).x!;
    const apart = runOp('cuda', 'rmsnorm', { x: sum, w, T, H, eps: 1e-5 });
    expect(fused['x'], 'x: the add_inplace op').toEqual(sum);
    expect(fused['y'], 'y: the norm of that sum').toEqual(apart['y']);
    expect(fused['rstd'], 'rstd').toEqual(apart['rstd']);
  });

  it.each([
    [37, 256, 172, false],
    [5, 4096, 1536, true],
    [64, 172, 64, true],
    [1, 11008, 256, false],
  ])('linear T=%i K=%i N=%i bias=%s', (T, K, N, bias) => {
    const args: OpArgs = { x: randBf16(rng, T * K), W: randBf16(rng, N * K, 1 / Math.sqrt(K)), T, K, N };
    if (bias) args['bias'] = randBf16(rng, N, 0.5);
    compare('linear', args, { y: bias ? DOUBLE_ROUNDED : EXACT_BF16 });
  });

  it.each([[64, 1], [128, 1], [128, -1], [16, 1]])('rope hd=%i sign=%i (positions up to 8191)', (hd, sign) => {
    const T = 64, heads = 3;
    const positions = randInt(rng, T, 8192);
    positions[0] = 0;
    compare('rope', { x: randBf16(rng, T * heads * hd), positions, T, heads, hd, theta: 10000, sign }, { x: EXACT_BF16 });
  });

  it.each(attnCases)('attention forward: %s', (_name, hd, nh, nkv, lens) => {
    attnForward(rng, hd, nh, nkv, lens);
  });

  it.skipIf(cudaDevice === 'cpu')('an attention kernel that cannot take the head dim, or an unknown one, is a clear error', () => {
    const args = { ...attnInputs(rng, 16, 2, 1, [5]), attentionKernel: 'sm80' };
    expect(() => runOp('cuda', 'attention', args)).toThrow(
      "attention kernel 'sm80' has no head_dim 16 path (64 or 128; 'simple' or 'auto' take any head_dim)",
    );
    expect(() => runOp('cuda', 'attention', { ...args, attentionKernel: 'sm100' })).toThrow(
      "attention kernel: unknown attention kernel 'sm100' (auto, simple, sm80, sm90, sm90wg2 or sm90pp)",
    );
  });

  it.skipIf(cudaDevice === 'cpu')('L2E_CUDA_ATTENTION naming no kernel is an error that names the variable', () => {
    const config = { vocab: 8, hidden: 16, intermediate: 16, layers: 1, heads: 2, kvHeads: 2, headDim: 8, dense: 4, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean' as const, normalized: true };
    process.env['L2E_CUDA_ATTENTION'] = 'fast';
    try {
      expect(() => new (addon().NativeModel)(config, 'cuda')).toThrow("L2E_CUDA_ATTENTION: unknown attention kernel 'fast' (auto, simple, sm80, sm90, sm90wg2 or sm90pp)");
    } finally {
      delete process.env['L2E_CUDA_ATTENTION'];
    }
  });

  it.skipIf(cudaDevice === 'cpu')('L2E_CUDA_POOL: nosplit is the pool without splitting (encodes as the CPU does), any other value an error naming the variable', async () => {
    const config = { vocab: 64, hidden: 32, intermediate: 48, layers: 2, heads: 2, kvHeads: 2, headDim: 16, dense: 8, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean' as const, normalized: true };
    const { NativeModel: Native } = addon();
    try {
      process.env['L2E_CUDA_POOL'] = 'nosplit';
      const cuda = new Native(config, 'cuda'), cpu = new Native(config, 'cpu');
      try {
        randomWeights([cpu, cuda], 13);
        const ids = new Int32Array([1, 5, 9, 1, 7, 3, 2, 60]), cu = new Int32Array([0, 3, 8]);
        const [a, b] = [await cpu.encode(ids, cu), await cuda.encode(ids, cu)];
        // the whole model's bf16 bound (gpu/model.test.ts EMB_REL): this checks the pool, not the arithmetic
        expect(relErr(b.embeddings, a.embeddings)).toBeLessThan(3e-2);
      } finally {
        cuda.dispose();
        cpu.dispose();
      }
      process.env['L2E_CUDA_POOL'] = 'split';
      expect(() => new Native(config, 'cuda')).toThrow('L2E_CUDA_POOL=split: expected nosplit (each block its own cudaMalloc) or unset');
    } finally {
      delete process.env['L2E_CUDA_POOL'];
    }
  });

  it('swiglu and residual add', () => {
    const n = 10007;
    compare('swiglu', { gate: randBf16(rng, n, 4), up: randBf16(rng, n, 2), n }, { out: DOUBLE_ROUNDED });
    compare('add_inplace', { x: randBf16(rng, n), y: randBf16(rng, n) }, { x: EXACT_BF16 });
  });

  it.each([0, 1])('pool mode %i (1-token, empty and long sequences)', (mode) => {
    // empty ones (the model refuses them; the op pools them to zeros) in the middle and last: the CLS
    // read took the next sequence's first row, or read past the end; the mean was 0/0
    const P = 96, cu = cuSeqlens([1, 0, 5, 300, 2, 0]);
    compare('pool', { x: randBf16(rng, cu[6]! * P), cu, P, mode }, { out: F32 });
  });

  it.each([true, false])('l2norm normalize=%s', (normalize) => {
    const B = 6, P = 1536;
    compare('l2norm', { x: randBf16(rng, B * P), B, P, normalize }, { y: F32, norm: F32 });
  });

  // ---- backward ----
  it('embedding_backward (repeated ids)', () => {
    const T = 300, H = 64, V = 20;
    compare('embedding_backward', { ids: randInt(rng, T, V), dout: randBf16(rng, T * H), dtable: randBf16(rng, V * H), T, H }, { dtable: F32 });
  });

  // accumulateDw false: dw written, never read (it holds NaN before)
  it.each([[64, false, true], [4096, true, true], [172, false, false]])('rmsnorm_backward H=%i accumulate=%s accumulateDw=%s', (H, accumulate, accumulateDw) => {
    const T = 29;
    const x = randBf16(rng, T * H, 2);
    const w = randBf16(rng, H, 0.2, 1);
    const { rstd } = runOp('cpu', 'rmsnorm', { x, w, T, H, eps: 1e-5 });
    const dw = accumulateDw ? randBf16(rng, H) : new Float32Array(H).fill(NaN);
    const args: OpArgs = { x, w, rstd: rstd!, dy: randBf16(rng, T * H), dw, T, H, accumulate, accumulateDw };
    if (accumulate) args['dx'] = randBf16(rng, T * H);
    compare('rmsnorm_backward', args, { dx: DOUBLE_ROUNDED, dw: 1e-4 });
  });

  // accumulateDw false: dW and dbias written, never read (they hold NaN before); T = 0 writes zeros
  it.each([
    [37, 256, 172, true, false, true],
    [300, 64, 1536, true, true, true],
    [3, 4096, 512, false, false, true],
    [37, 256, 172, true, false, false],
    [0, 64, 48, true, false, false],
  ])('linear_backward T=%i K=%i N=%i bias=%s accumulate=%s accumulateDw=%s', (T, K, N, bias, accumulate, accumulateDw) => {
    const before = (n: number) => (accumulateDw ? randBf16(rng, n) : new Float32Array(n).fill(NaN));
    const args: OpArgs = {
      x: randBf16(rng, T * K), W: randBf16(rng, N * K, 1 / Math.sqrt(K)), dy: randBf16(rng, T * N),
      dW: before(N * K), T, K, N, accumulate, accumulateDw,
    };
    if (bias) args['dbias'] = before(N);
    if (accumulate) args['dx'] = randBf16(rng, T * K);
    const bounds: Record<string, number> = { dx: accumulate ? DOUBLE_ROUNDED : EXACT_BF16, dW: 1e-4 };
    if (bias) bounds['dbias'] = 1e-4;
    if (T > 0) {
      compare('linear_backward', args, bounds);
      return;
    }
    for (const device of ['cpu', 'cuda'] as const) {
      const r = runOp(device, 'linear_backward', args);
      expect([...r['dW']!, ...r['dbias']!].every((v) => Object.is(v, 0)), `${device}: dW and dbias zeros`).toBe(true);
    }
  });

  it.each(attnCases)('attention backward: %s', (_name, hd, nh, nkv, lens) => {
    attnBackward(rng, hd, nh, nkv, lens);
  });

  it('swiglu_backward', () => {
    const n = 5003;
    compare('swiglu_backward', { gate: randBf16(rng, n, 4), up: randBf16(rng, n, 2), dout: randBf16(rng, n), n }, { dgate: EXACT_BF16, dup: EXACT_BF16 });
  });

  it.each([0, 1])('pool_backward mode %i', (mode) => {
    const P = 64, cu = cuSeqlens([1, 7, 129]);
    compare('pool_backward', { dout: randBf16(rng, 3 * P), cu, P, mode }, { dx: EXACT_BF16 });
  });

  it.each([true, false])('l2norm_backward normalize=%s', (normalize) => {
    const B = 5, P = 1536;
    const { y, norm } = runOp('cpu', 'l2norm', { x: randBf16(rng, B * P), B, P, normalize });
    compare('l2norm_backward', { y: y!, norm: norm!, dy: randBf16(rng, B * P), B, P, normalize }, { dx: F32 });
  });

  // ---- loss and optimizer ----
  it.each([true, false])('infonce inBatch=%s', (inBatch) => {
    const B = 8, G = 3, P = 1536;
    const unit = (n: number) => runOp('cpu', 'l2norm', { x: randBf16(rng, n * P), B: n, P, normalize: true })['y']!;
    const args: OpArgs = { q: unit(B), p: unit(B * G), B, G, P, temperature: 0.02, inBatch };
    const cpu = runOp('cpu', 'infonce', args);
    const cuda = runOp('cuda', 'infonce', args);
    record('infonce', 'loss', 'relative', Math.abs(cuda.value! - cpu.value!) / Math.abs(cpu.value!), 1e-6);
    expect(Math.abs(cuda.value! - cpu.value!) / Math.abs(cpu.value!)).toBeLessThan(1e-6);
    for (const k of ['dq', 'dp']) expect(relErr(cuda[k]!, cpu[k]!)).toBeLessThan(F32);
    const finite = (a: Float32Array) => a.filter(Number.isFinite);
    expect(relErr(finite(cuda['scores']!), finite(cpu['scores']!))).toBeLessThan(1e-6);
    expect(cuda['scores']!.filter((s) => s === -Infinity).length).toBe(cpu['scores']!.filter((s) => s === -Infinity).length);
  });

  it('sumsq and scale', () => {
    const x = randBf16(rng, 1_000_003, 3);
    const a = runOp('cpu', 'sumsq', { x }).value!;
    const b = runOp('cuda', 'sumsq', { x }).value!;
    record('sumsq', 'value', 'relative', Math.abs(a - b) / a, 1e-12);
    expect(Math.abs(a - b) / a).toBeLessThan(1e-12);
    compare('scale', { x, s: 0.37 }, { x: 0 });
  });

  it('fused AdamW is bit-identical to the CPU step and writes the bf16 half of the master', () => {
    const n = 100_003;
    const args: OpArgs = {
      w: randBf16(rng, n), g: randBf16(rng, n, 1e-2), m: randBf16(rng, n, 1e-3), v: randBf16(rng, n, 1e-5, 1e-5),
      lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3, withShadow: true,
    };
    const cpu = runOp('cpu', 'adamw', args);
    const cuda = runOp('cuda', 'adamw', args);
    for (const k of ['w', 'm', 'v']) record('adamw', k, 'normwise', relErr(cuda[k]!, cpu[k]!), 0);
    for (const k of ['w', 'm', 'v']) expect(relErr(cuda[k]!, cpu[k]!), k).toBe(0);
    if (cudaDevice === 'cuda') expect(cuda['shadow']!).toEqual(cuda['w']!.map(bf16TiesAway)); // cpu: no shadow
  });

  // The master held as halves (native/core/master_halves.h) comes back bit for bit however it rounds:
  // ties (low half 0x8000, where ties to even would round the other way half the time), values that
  // round up into the next binade or past the largest bf16 to infinity, subnormals, signed zeros. With
  // no decay, a zero gradient and +0 moments leave w as it is; the other elements are stepped.
  it.skipIf(cudaDevice !== 'cuda')('AdamW on the master as halves: every value back bit for bit, the bf16 half its rounding', () => {
    const bits = [
      0x3f808000, 0x3f818000, 0xbf808000, 0xbf818000, 0x3f80ffff, 0x3fffffff, 0x3f7fffff, 0x3f7f8000, 0x7f7fffff,
      0x7f7f8000, 0x7f7f7fff, 0xff7fffff, 0x00008000, 0x0000ffff, 0x007fffff, 0x80000000, 0x00000000, 0x00000001,
    ];
    const n = 4 * 1024 + 3;  // the four-wide body of the one-launch step and a scalar tail
    const w = randBf16(rng, n).map((x, i) => x + (i % 7) * 1e-5);  // full fp32 values, not bf16 ones
    const special = new Float32Array(new Uint32Array(bits).buffer);
    const at = (k: number): number => 37 * k + 5;
    special.forEach((x, k) => (w[at(k)] = x));
    const g = randBf16(rng, n, 1e-2), m = randBf16(rng, n, 1e-3), v = randBf16(rng, n, 1e-5, 1e-5);
    for (let k = 0; k < special.length; k++) g[at(k)] = m[at(k)] = v[at(k)] = 0;
    const args: OpArgs = { w, g, m, v, lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 2, withShadow: true };
    const cpu = runOp('cpu', 'adamw', args);
    const cuda = runOp('cuda', 'adamw', args);
    const asBits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
    expect(asBits(cuda['w']!)).toEqual(asBits(cpu['w']!));
    for (let k = 0; k < special.length; k++) expect(asBits(cuda['w']!)[at(k)], `0x${bits[k]!.toString(16)}`).toBe(bits[k]);
    expect(cuda['shadow']!).toEqual(cuda['w']!.map(bf16TiesAway));
    // the test can fail: ties to even rounds some of these the other way
    expect(special.filter((x) => bf16(x) !== bf16TiesAway(x)).length).toBeGreaterThan(0);
    expect(cpu['w']!.filter((x, i) => x !== w[i]).length).toBeGreaterThan(n / 2);
  });

  // bf16 / int8 weights are an inference format of the CPU backend (core/lowp.h): on CUDA both ops
  // refuse, in these words, rather than compute something unchecked. The CPU side runs them.
  it('linear_lowp and embedding_lowp: CPU-only, refused by the CUDA backend by name', () => {
    const rng = new Rng(41);
    const T = 5, K = 32, N = 24, V = 40;
    for (const precision of ['bf16', 'int8']) {
      const linear: OpArgs = { T, K, N, precision, x: randBf16(rng, T * K), W: randBf16(rng, N * K) };
      const embedding: OpArgs = { T, H: K, V, precision, ids: Int32Array.from({ length: T }, (_, i) => (i * 7) % V), table: randBf16(rng, V * K) };
      expect(runOp('cpu', 'linear_lowp', linear)['y']!.every(Number.isFinite)).toBe(true);
      expect(runOp('cpu', 'embedding_lowp', embedding)['out']!.every(Number.isFinite)).toBe(true);
      if (cudaDevice === 'cuda') {
        const refusal = "cuda backend: bf16 / int8 weights are CPU-only (load with precision 'fp32')";
        expect(() => runOp('cuda', 'linear_lowp', linear)).toThrow(refusal);
        expect(() => runOp('cuda', 'embedding_lowp', embedding)).toThrow(refusal);
      }
    }
    compared.add('linear_lowp');
    compared.add('embedding_lowp');
  });

  it('every op of backendOps() was compared', () => {
    expect([...compared].sort()).toEqual([...addon().backendOps!()].sort());
  });
});
