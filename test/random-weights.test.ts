// initRandomWeights: its scales (norms 1, Llama's std 0.02 as a uniform, the dense layer ±1/√hidden like
// nn.Linear), the same for a seed, and `tiled` (the benchmarks' cheap weights): the seed's one block of
// draws repeated, at the same scales.
import { describe, expect, it } from 'vitest';
import { initRandomWeights } from '../src/model/embedding-model.js';

/** A stand-in native model: the parameter list, and what setTensor received. */
function fake(params: { name: string; numel: number }[]): { native: Parameters<typeof initRandomWeights>[0]; got: Map<string, Float32Array> } {
  const got = new Map<string, Float32Array>();
  const native = {
    params: () => params.map((p) => ({ name: p.name, shape: p.name === 'dense_layer.weight' ? [8, p.numel / 8] : [p.numel], numel: p.numel, dtype: 'F32' })),
    setTensor: (name: string, data: Float32Array) => void got.set(name, data.slice()),
  } as unknown as Parameters<typeof initRandomWeights>[0];
  return { native, got };
}

const PARAMS = [
  { name: 'embed_tokens.weight', numel: 2_500_000 }, // past one block of draws (1,000,003)
  { name: 'layers.0.input_layernorm.weight', numel: 16 },
  { name: 'norm.weight', numel: 16 },
  { name: 'dense_layer.weight', numel: 8 * 16 },
  { name: 'dense_layer.bias', numel: 8 },
];
const A = 0.02 * Math.sqrt(3);

describe('initRandomWeights', () => {
  for (const tiled of [false, true]) {
    it(`${tiled ? 'tiled' : 'drawn per element'}: norms 1, the rest uniform within its scale and not constant, the same for a seed`, () => {
      const a = fake(PARAMS);
      const b = fake(PARAMS);
      initRandomWeights(a.native, 16, 3, { tiled });
      initRandomWeights(b.native, 16, 3, { tiled });
      expect(a.got.get('norm.weight')!.every((x) => x === 1)).toBe(true);
      expect(a.got.get('layers.0.input_layernorm.weight')!.every((x) => x === 1)).toBe(true);
      for (const [name, bound] of [['embed_tokens.weight', A], ['dense_layer.weight', 0.25], ['dense_layer.bias', 0.25]] as const) {
        const x = a.got.get(name)!;
        let max = 0;
        for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]!));
        expect(max, name).toBeLessThanOrEqual(Math.fround(bound));
        expect(max, name).toBeGreaterThan(bound * 0.5);
        expect(new Set(x.subarray(0, 100)).size, name).toBe(Math.min(100, x.length));
        expect(Buffer.from(b.got.get(name)!.buffer).equals(Buffer.from(x.buffer)), name).toBe(true);
      }
    });
  }

  it('tiled: the block repeats past its length; drawn per element it does not', () => {
    const drawn = fake(PARAMS);
    const tiled = fake(PARAMS);
    initRandomWeights(drawn.native, 16, 3);
    initRandomWeights(tiled.native, 16, 3, { tiled: true });
    const t = tiled.got.get('embed_tokens.weight')!;
    const d = drawn.got.get('embed_tokens.weight')!;
    expect(t.subarray(1_000_003, 1_000_103)).toEqual(t.subarray(0, 100));
    expect(t.subarray(2_000_006, 2_000_106)).toEqual(t.subarray(0, 100));
    expect(d.subarray(1_000_003, 1_000_103)).not.toEqual(d.subarray(0, 100));
  });
});
