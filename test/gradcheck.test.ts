// Backward kernels, InfoNCE and AdamW of the CPU backend (native/cpu/ops_backward.cpp,
// attention_backward.cpp, loss.cpp, adamw.cpp) through the test hooks of
// native/testing/gradcheck_binding.cpp (in the test addon).
//
// gradcheck(op): in double precision, analytic gradients of L = sum(R * f(inputs)) vs float64 central
// differences with h = 1e-6. The truncation error is O(h^2) ~ 1e-12 and the round-off
// ~ 1e-16 |L| / h ~ 1e-10 relative, so correct kernels land at 1e-8..1e-10 (measured: <= 3e-8);
// a wrong term gives O(1e-2) or more. The bound 1e-5 sits far from both.
import { describe, expect, it } from 'vitest';

import { testingAddon } from './helpers/testing-addon.mjs';

interface TensorReport {
  name: string;
  relError: number;
  absError: number;
  maxAbs: number;
  numel: number;
  hasNaN: boolean;
}
interface GradcheckReport {
  maxRelError: number;
  maxAbsError: number;
  auxError: number;
  hasNaN: boolean;
  inputs: TensorReport[];
}
interface InfonceResult<A extends Float32Array | Float64Array> {
  loss: number;
  scores: A;
  dq: A;
  dp: A;
}
interface GradcheckNatives {
  gradcheckOps(): string[];
  gradcheck(op: string, seed: number): GradcheckReport;
  gradcheckFloat(op: string, seed: number): GradcheckReport;
  gradcheckInfonce<A extends Float32Array | Float64Array>(
    q: A, p: A, B: number, G: number, P: number, temperature: number, inBatch: boolean,
  ): InfonceResult<A>;
  gradcheckAdamw(
    w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
  ): void;
}

const addon = testingAddon<GradcheckNatives>();

const OPS = [
  'embedding', 'rmsnorm', 'linear', 'linear_large', 'rope', 'attention', 'attention_mha',
  'attention_long', 'swiglu', 'pool_mean', 'pool_cls', 'l2norm', 'l2norm_off', 'infonce',
  'infonce_group',
] as const;
// large enough to cross many 64 x 64 attention tiles: checked float-vs-double only (finite differences
// over its ~9k inputs would take seconds)
const FLOAT_ONLY = ['attention_tiles'] as const;
const SEEDS = [1, 2, 3];
const DOUBLE_BOUND = 1e-5;
// float kernels vs double kernels: float32 rounding of O(10..100)-term sums gives ~1e-7 relative
// (measured <= 4e-7); 1e-5 still flags any real difference between the two paths.
const FLOAT_BOUND = 1e-5;

describe('coverage of the op table (core/ops.def, through backendOps)', () => {
  // checked here against PyTorch's formula rather than by a gradient check
  const OWN_TEST: Record<string, string> = { adamw: 'gradcheckAdamw, below' };
  // no backward kernel to check: the gradient clipping pass (sumsq, scale) and the residual adds,
  // whose gradient is the identity
  const NO_BACKWARD = ['add_inplace', 'sumsq', 'scale'];
  // inference only (a bf16 / int8 model refuses training): no gradient exists to check; each kernel
  // is checked against its scalar reference and fp32 in test/precision-kernels.test.ts
  const INFERENCE_ONLY = ['linear_lowp', 'embedding_lowp'];

  it('every op and its backward have a gradient check (a case named after the forward op)', () => {
    const ops = testingAddon<{ backendOps(): string[] }>().backendOps();
    expect(ops.length).toBeGreaterThanOrEqual(20);
    const cases = addon.gradcheckOps();
    const forwardOf = (op: string): string => (op.endsWith('_backward') ? op.slice(0, -'_backward'.length) : op);
    const checked = (op: string): boolean => cases.some((c) => c === forwardOf(op) || c.startsWith(`${forwardOf(op)}_`));
    const exempt = [...NO_BACKWARD, ...INFERENCE_ONLY];
    const missing = ops.filter((op) => !checked(op) && !(op in OWN_TEST) && !exempt.includes(op));
    expect(missing).toEqual([]);
    for (const op of [...Object.keys(OWN_TEST), ...exempt]) expect(ops).toContain(op);
  });
});

describe('gradcheck: analytic vs central differences (double)', () => {
  it('lists exactly the ops tested here', () => {
    expect([...addon.gradcheckOps()].sort()).toEqual([...OPS, ...FLOAT_ONLY].sort());
  });

  for (const op of OPS) {
    it(op, () => {
      for (const seed of SEEDS) {
        const r = addon.gradcheck(op, seed);
        expect(r.hasNaN, `${op} seed ${seed}: NaN`).toBe(false);
        for (const t of r.inputs) {
          expect(Number.isFinite(t.relError), `${op}/${t.name}`).toBe(true);
          expect(t.relError, `${op} seed ${seed} d${t.name}`).toBeLessThan(DOUBLE_BOUND);
          // the gradient must not be trivially zero (a vacuous check would pass anything)
          expect(t.maxAbs, `${op} seed ${seed} d${t.name} is all zero`).toBeGreaterThan(1e-3);
        }
        expect(r.maxRelError).toBeLessThan(DOUBLE_BOUND);
        // accumulate-vs-overwrite variants and optional outputs agree to rounding
        expect(r.auxError, `${op} seed ${seed} accumulate variants`).toBeLessThan(1e-12);
      }
    });
  }
});

describe('float kernels agree with double kernels', () => {
  for (const op of [...OPS, ...FLOAT_ONLY]) {
    it(op, () => {
      for (const seed of SEEDS) {
        const r = addon.gradcheckFloat(op, seed);
        expect(r.hasNaN, `${op} seed ${seed}: NaN`).toBe(false);
        for (const t of r.inputs) expect(t.relError, `${op} seed ${seed} ${t.name}`).toBeLessThan(FLOAT_BOUND);
      }
    });
  }
});

describe('infonce by hand', () => {
  // B = 2 queries, G = 2 passages each (positive first), P = 2.
  const B = 2, G = 2, P = 2, tau = 0.5;
  const q = [1, 0, 0.6, 0.8];
  const p = [0.8, 0.6, 0, 1, 0.6, 0.8, -1, 0];
  const dot = (i: number, j: number): number => q[i * P]! * p[j * P]! + q[i * P + 1]! * p[j * P + 1]!;

  function expected(inBatch: boolean): { loss: number; scores: number[]; dq: number[] } {
    const scores: number[] = [];
    let loss = 0;
    const dq = [0, 0, 0, 0];
    for (let i = 0; i < B; i++) {
      const cols = [...Array(B * G).keys()].filter((j) => inBatch || Math.floor(j / G) === i);
      const s = (j: number): number => dot(i, j) / tau;
      for (let j = 0; j < B * G; j++) scores.push(cols.includes(j) ? s(j) : -Infinity);
      const z = cols.reduce((acc, j) => acc + Math.exp(s(j)), 0);
      loss += (Math.log(z) - s(i * G)) / B;
      for (const j of cols) {
        const w = (Math.exp(s(j)) / z - (j === i * G ? 1 : 0)) / B / tau;
        dq[i * P] += w * p[j * P]!;
        dq[i * P + 1] += w * p[j * P + 1]!;
      }
    }
    return { loss, scores, dq };
  }

  for (const inBatch of [true, false]) {
    it(`matches a JS computation (${inBatch ? 'in-batch' : 'own group'})`, () => {
      const want = expected(inBatch);
      const d = addon.gradcheckInfonce(new Float64Array(q), new Float64Array(p), B, G, P, tau, inBatch);
      expect(d.loss).toBeCloseTo(want.loss, 12);
      expect(Array.from(d.scores).map((x) => (x === -Infinity ? x : Number(x.toFixed(12))))).toEqual(
        want.scores.map((x) => (x === -Infinity ? x : Number(x.toFixed(12)))),
      );
      Array.from(d.dq).forEach((x, i) => expect(x).toBeCloseTo(want.dq[i]!, 12));
      const f = addon.gradcheckInfonce(new Float32Array(q), new Float32Array(p), B, G, P, tau, inBatch);
      expect(Math.abs(f.loss - want.loss)).toBeLessThan(1e-6);
    });
  }

  it('in-batch negatives raise the loss over own-group scoring', () => {
    const a = addon.gradcheckInfonce(new Float64Array(q), new Float64Array(p), B, G, P, tau, true);
    const b = addon.gradcheckInfonce(new Float64Array(q), new Float64Array(p), B, G, P, tau, false);
    expect(a.loss).toBeGreaterThan(b.loss);
  });

  it('stays finite at temperature 0.02 with unit vectors (logits up to 50)', () => {
    const n = 4, g = 3, dim = 8;
    const unit = (seed: number): number[] => {
      const v = Array.from({ length: dim }, (_, k) => Math.sin(seed * 12.9898 + k * 78.233));
      const s = Math.hypot(...v);
      return v.map((x) => x / s);
    };
    const qs = new Float32Array(Array.from({ length: n }, (_, i) => unit(i + 1)).flat());
    const ps = new Float32Array(Array.from({ length: n * g }, (_, j) => unit(100 + j)).flat());
    const r = addon.gradcheckInfonce(qs, ps, n, g, dim, 0.02, true);
    expect(Number.isFinite(r.loss)).toBe(true);
    for (const x of [...r.dq, ...r.dp]) expect(Number.isFinite(x)).toBe(true);
  });
});

// ---- AdamW against PyTorch's formula, replayed in float32 -------------------------------------

const f32 = Math.fround;
const bits = new Float32Array(1);
const bitsU = new Uint32Array(bits.buffer);

/** The float32 neighbour of a non-zero finite float r, away from or toward zero. */
function neighbour(r: number, awayFromZero: boolean): number {
  bits[0] = r;
  bitsU[0] = bitsU[0]! + (awayFromZero ? 1 : -1);
  return bits[0]!;
}

/**
 * fmaf(a, b, c) for float32 a, b, c, correctly rounded: a*b is exact in double; s = a*b + c is
 * rounded once, and (TwoSum) err is its exact error. fround(s) is then the right answer except when
 * s lands exactly on a float32 midpoint with err != 0, where err decides the direction.
 */
function fmaf(a: number, b: number, c: number): number {
  const prod = a * b;
  const s = prod + c;
  const r = f32(s);
  if (r === s || r === 0) return r;
  const bb = s - prod;
  const err = prod - (s - bb) + (c - bb);
  if (err === 0) return r;
  const other = neighbour(r, Math.abs(r) < Math.abs(s));
  if (r + other !== 2 * s) return r; // not a midpoint: double rounding is harmless
  return err > 0 ? Math.max(r, other) : Math.min(r, other); // the exact value is s + err
}

interface AdamwHp {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
}

/** torch.optim.AdamW single-tensor path on fp32 tensors, op by op (see native/cpu/adamw.cpp). */
function adamwReference(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, h: AdamwHp, step: number): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  const decay = f32(1 - h.lr * h.wd);
  const lerpW = f32(1 - h.beta1);
  const b2 = f32(h.beta2);
  const oneMinusB2 = f32(1 - h.beta2);
  const bc2Sqrt = f32(Math.sqrt(bc2));
  const eps = f32(h.eps);
  const negStep = f32(-(h.lr / bc1));
  for (let i = 0; i < w.length; i++) {
    let wi = w[i]!;
    const gi = g[i]!;
    if (h.wd !== 0) wi = f32(wi * decay);
    const diff = f32(gi - m[i]!);
    // ATen lerp: start + w (end - start) for |w| < 0.5, else end - (1 - w)(end - start), fused
    const mi = Math.abs(lerpW) < 0.5 ? fmaf(lerpW, diff, m[i]!) : fmaf(f32(lerpW - 1), diff, gi);
    const vi = f32(f32(v[i]! * b2) + f32(f32(oneMinusB2 * gi) * gi));
    const denom = f32(f32(f32(Math.sqrt(vi)) / bc2Sqrt) + eps);
    w[i] = f32(wi + f32(f32(negStep * mi) / denom));
    m[i] = mi;
    v[i] = vi;
  }
}

function ulpDistance(a: number, b: number): number {
  const ia = new Int32Array(new Float32Array([a]).buffer)[0]!;
  const ib = new Int32Array(new Float32Array([b]).buffer)[0]!;
  const key = (x: number): number => (x < 0 ? -2147483648 - x : x); // monotone order of float bits
  return Math.abs(key(ia) - key(ib));
}

/** Six steps of our AdamW and of the float32 replay from the same weights and zero moments. */
function sixSteps(w0: Float32Array, grad: (step: number) => Float32Array, h: AdamwHp) {
  const size = w0.length;
  const nat = { w: w0.slice(), m: new Float32Array(size), v: new Float32Array(size) };
  const ref = { w: w0.slice(), m: new Float32Array(size), v: new Float32Array(size) };
  for (let step = 1; step <= 6; step++) {
    const g = grad(step);
    addon.gradcheckAdamw(nat.w, g, nat.m, nat.v, h.lr, h.beta1, h.beta2, h.eps, h.wd, step);
    adamwReference(ref.w, g, ref.m, ref.v, h, step);
  }
  return { nat, ref };
}

describe('adamw', () => {
  const n = 4099; // not a multiple of any vector width or the thread split
  function gradients(step: number): Float32Array {
    // a spread of magnitudes, signs, exact zeros and tiny values
    return Float32Array.from({ length: n }, (_, i) => {
      const x = Math.sin(i * 0.731 + step * 1.37) * 10 ** ((i % 9) - 6);
      return i % 17 === 0 ? 0 : x;
    });
  }

  const configs: [string, AdamwHp][] = [
    ['recipe (lr 2e-5, wd 0)', { lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0 }],
    ['with weight decay', { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-6, wd: 0.1 }],
    ['large lerp weight (beta1 0.3)', { lr: 3e-4, beta1: 0.3, beta2: 0.99, eps: 1e-8, wd: 0.01 }],
  ];

  for (const [label, h] of configs) {
    it(`matches PyTorch's float32 arithmetic bit for bit over 6 steps: ${label}`, () => {
      // Every JS step rounds to float32 after each operation; +, -, *, / and sqrt of two floats done in
      // double and rounded once more are correctly rounded floats (53 >= 2*24 + 2), and the fused
      // lerp uses an exact fmaf. So the replay is exact and no ulp of slack is needed.
      const w0 = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.37));
      const { nat, ref } = sixSteps(w0, gradients, h);
      let maxUlp = 0;
      for (const k of ['w', 'm', 'v'] as const)
        for (let i = 0; i < n; i++) {
          expect(Number.isNaN(nat[k][i])).toBe(false);
          maxUlp = Math.max(maxUlp, ulpDistance(nat[k][i]!, ref[k][i]!));
        }
      expect(maxUlp).toBe(0);
      // and the weights did move
      expect(nat.w.some((x, i) => x !== w0[i])).toBe(true);
    });
  }

  it('zero gradients on zero moments (the untouched rows of an embedding table) end as PyTorch\'s, signed zeros included', () => {
    // rows of 32: of every four, one has a gradient at every step, one at odd steps only (zero
    // gradients on non-zero moments at even steps), two none (some -0), but row 6 from step 4 on;
    // weights hold +0 and -0. With and without decay, every bit of w, m, v is compared.
    const rows = 129, width = 32, size = rows * width;
    const grad = (step: number): Float32Array =>
      Float32Array.from({ length: size }, (_, i) => {
        const r = Math.floor(i / width);
        const has = r % 4 === 0 || (r % 4 === 1 && step % 2 === 1) || (r === 6 && step >= 4);
        return has ? Math.sin(i * 0.53 + step) * 1e-3 : i % 3 === 0 ? -0 : 0;
      });
    for (const wd of [0, 0.1]) {
      const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd };
      const w0 = Float32Array.from({ length: size }, (_, i) => (i % 7 === 0 ? (i % 2 ? -0 : 0) : Math.cos(i * 0.21)));
      const { nat, ref } = sixSteps(w0, grad, h);
      for (const k of ['w', 'm', 'v'] as const)
        for (let i = 0; i < size; i++) if (!Object.is(nat[k][i], ref[k][i])) expect(`${k}[${i}] = ${nat[k][i]}`, `wd ${wd}`).toBe(`${k}[${i}] = ${ref[k][i]}`);
      expect(nat.w.some((x, i) => x !== w0[i])).toBe(true);
    }
  });

  it('first step is the textbook update w(1 - lr wd) - lr g / (|g| + eps)', () => {
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.01 };
    const w = new Float32Array([0.5, -0.25, 1, 0]);
    const g = new Float32Array([0.1, -2, 0, 1e-3]);
    const m = new Float32Array(4), v = new Float32Array(4);
    addon.gradcheckAdamw(w, g, m, v, h.lr, h.beta1, h.beta2, h.eps, h.wd, 1);
    const want = [0.5, -0.25, 1, 0].map((w0, i) => w0 * (1 - h.lr * h.wd) - (h.lr * g[i]!) / (Math.abs(g[i]!) + h.eps));
    want.forEach((x, i) => expect(Math.abs(w[i]! - x)).toBeLessThan(1e-6));
    expect(Array.from(m)).toEqual(Array.from(g).map((x) => f32(f32(0.1) * x)));
  });
});
