// The CPU SwiGLU forward and backward (the op table's swiglu and swiglu_backward, fp32): at the avx512
// level they compute e^-g themselves (native/cpu/swiglu_avx512.cpp), below it through std::exp. The
// forward is held to the float64 formula within 3 units in the last place of the float result; the
// backward's dgate within 8 float epsilons of its terms' magnitude (|dout u| s (1 + |g|): its factor
// 1 + g (1 - s) cancels near g = -1.28, where no float formula keeps a relative error) and dup within
// 4 ulp. On random values, the special values (NaN, infinities, signed zeros, denormals, the edges of
// e^x's float range) and lengths that leave a tail of a 16-float vector and split across threads. Runs
// at every level (test/cpu-isa.test.ts).
import { describe, expect, it } from 'vitest';

import { seededRandom } from './helpers/tinyModel.js';
import { testingAddon } from './helpers/testing-addon.mjs';

interface OpNatives {
  backendOp(device: 'cpu', op: 'swiglu', args: { gate: Float32Array; up: Float32Array; n: number }): { out: Float32Array };
  backendOp(device: 'cpu', op: 'swiglu_backward', args: { gate: Float32Array; up: Float32Array; dout: Float32Array; n: number }): { dgate: Float32Array; dup: Float32Array };
  cpuIsa(): { isa: string };
}
const addon = testingAddon<OpNatives>();

/** The spacing of floats at |x| (2^-149 in the subnormal range). */
function ulp(x: number): number {
  const a = Math.abs(Math.fround(x));
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** The op's output and the float64 reference silu(g) u, element by element. */
function run(gate: Float32Array, up: Float32Array): { out: Float32Array; ref: Float64Array } {
  const { out } = addon.backendOp('cpu', 'swiglu', { gate, up, n: gate.length });
  const ref = Float64Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
  return { out, ref };
}

/** The largest error in ulp of the reference; results that are NaN must be NaN in both. */
function worstUlp(gate: Float32Array, out: Float32Array, ref: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < out.length; i++) {
    if (Number.isNaN(ref[i]!) || Number.isNaN(out[i]!)) {
      if (Number.isNaN(ref[i]!) !== Number.isNaN(out[i]!)) throw new Error(`gate ${gate[i]}: ${out[i]} against ${ref[i]}`);
      continue;
    }
    if (!Number.isFinite(ref[i]!)) {
      if (out[i] !== ref[i]) throw new Error(`gate ${gate[i]}: ${out[i]} against ${ref[i]}`);
      continue;
    }
    // g in [-89, -88.7]: e^-g overflows float, so any float formula gives -0 for a result of ~1e-37
    const err = Math.abs(out[i]! - ref[i]!);
    if (err <= 1e-36) continue;
    worst = Math.max(worst, err / ulp(ref[i]!));
  }
  return worst;
}

describe(`swiglu forward, fp32 (level ${addon.cpuIsa().isa})`, () => {
  it('is within 3 ulp of float64 on random values, with a vector tail and a split across threads', () => {
    const rand = seededRandom(11);
    for (const n of [1, 15, 16, 17, 40_007]) {
      const gate = Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 20);
      const up = Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 3);
      const { out, ref } = run(gate, up);
      expect(worstUlp(gate, out, ref), `n = ${n}`).toBeLessThanOrEqual(3);
    }
  });

  it('follows the formula on special values', () => {
    const specials = [0, -0, 1e-30, -1e-30, 1e-40, -1e-40, 0.5, -0.5, 88, 88.7, 89, 100, 1e30, -88, -88.7, -89, -100, -1e30,
      NaN, Infinity, -Infinity];
    const gate = Float32Array.from(specials), up = new Float32Array(specials.length).fill(1);
    const { out, ref } = run(gate, up);
    expect(worstUlp(gate, out, ref)).toBeLessThanOrEqual(3);
    const at = (g: number) => out[specials.findIndex((s) => Object.is(s, g))]!;
    expect(at(NaN)).toBeNaN();
    expect(at(-Infinity)).toBeNaN(); // -inf / (1 + e^inf)
    expect(at(Infinity)).toBe(Infinity);
    expect(at(1e30)).toBe(Math.fround(1e30));
    expect(Object.is(at(-100), -0)).toBe(true);
    expect(Object.is(at(0), 0)).toBe(true);
    expect(Object.is(at(-0), -0)).toBe(true);
  });

  it('passes NaN of up through', () => {
    const { out } = run(Float32Array.from([1, 2, 3]), Float32Array.from([NaN, 1, NaN]));
    expect(Number.isNaN(out[0]!) && Number.isNaN(out[2]!)).toBe(true);
    expect(out[1]).toBeCloseTo(2 / (1 + Math.exp(-2)), 6);
  });
});

/** The backward's outputs and their float64 references, dgate's error bound and dup's reference. */
function runBackward(gate: Float32Array, up: Float32Array, dout: Float32Array) {
  const { dgate, dup } = addon.backendOp('cpu', 'swiglu_backward', { gate, up, dout, n: gate.length });
  const sig = (g: number): number => 1 / (1 + Math.exp(-g));
  const refG = Float64Array.from(gate, (g, i) => dout[i]! * up[i]! * sig(g) * (1 + g * (1 - sig(g))));
  const boundG = Float64Array.from(gate, (g, i) => 8 * 2 ** -24 * Math.abs(dout[i]! * up[i]!) * sig(g) * (1 + Math.abs(g)) + 1e-36);
  const refU = Float64Array.from(gate, (g, i) => dout[i]! * g * sig(g));
  return { dgate, dup, refG, boundG, refU };
}

/** The largest |ours - ref| / bound; results that are NaN must be NaN in both, infinities equal. */
function worstRatio(gate: Float32Array, out: Float32Array, ref: Float64Array, bound: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < out.length; i++) {
    if (Number.isNaN(ref[i]!) || Number.isNaN(out[i]!) || !Number.isFinite(ref[i]!)) {
      if (!Object.is(out[i], Math.fround(ref[i]!))) throw new Error(`gate ${gate[i]}: ${out[i]} against ${ref[i]}`);
      continue;
    }
    worst = Math.max(worst, Math.abs(out[i]! - ref[i]!) / bound[i]!);
  }
  return worst;
}

describe(`swiglu backward, fp32 (level ${addon.cpuIsa().isa})`, () => {
  it('dgate within its bound and dup within 4 ulp of float64 on random values, with a vector tail and a split across threads', () => {
    const rand = seededRandom(12);
    for (const n of [1, 15, 16, 17, 40_007]) {
      const gate = Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 20);
      const up = Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 3);
      const dout = Float32Array.from({ length: n }, () => rand() * 2 - 1);
      const { dgate, dup, refG, boundG, refU } = runBackward(gate, up, dout);
      expect(worstRatio(gate, dgate, refG, boundG), `dgate, n = ${n}`).toBeLessThanOrEqual(1);
      expect(worstUlp(gate, dup, refU), `dup, n = ${n}`).toBeLessThanOrEqual(4);
    }
  });

  it('follows the formula on special values', () => {
    const specials = [0, -0, 1e-30, -1e-30, 1e-40, -1e-40, 0.5, -0.5, -1.2785, 88, 88.7, 89, 100, 1e30, -88, -88.7, -89, -100,
      -1e30, NaN, Infinity, -Infinity];
    const gate = Float32Array.from(specials), up = new Float32Array(specials.length).fill(1.5);
    const dout = new Float32Array(specials.length).fill(-0.75);
    const { dgate, dup, refG, boundG, refU } = runBackward(gate, up, dout);
    expect(worstRatio(gate, dgate, refG, boundG)).toBeLessThanOrEqual(1);
    expect(worstUlp(gate, dup, refU)).toBeLessThanOrEqual(4);
    const at = (a: Float32Array, g: number) => a[specials.findIndex((s) => Object.is(s, g))]!;
    for (const g of [NaN, Infinity, -Infinity]) expect(at(dgate, g), `dgate at ${g}`).toBeNaN(); // inf (1 - 1), -inf 0
    expect(at(dup, NaN)).toBeNaN();
    expect(at(dup, Infinity)).toBe(-Infinity);
    expect(at(dup, -Infinity)).toBeNaN(); // -inf * 0
    expect(at(dgate, 0)).toBe(Math.fround(-0.75 * 1.5 * 0.5));
  });
});
