// bench/gpu-bench.mjs --table: issue 13's targets, each row our figure next to the reference's from
// the same run. The arithmetic of a row (which reference, the ratio, the target met or not) on made-up
// figures; the measuring half needs a GPU (or --smoke on the emulation build).
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs bench script without type declarations
import { markdownTable, sweepRows, tableRows } from '../bench/gpu-bench.mjs';

interface Row {
  workload: string;
  ours?: number;
  reference?: number;
  ratio?: number;
  target: string;
  met?: boolean;
}
const rowsOf = tableRows as (ours: object, eager: object, compiled?: object) => Row[];
const markdownOf = markdownTable as (rows: Row[]) => string;

describe('gpu-bench --table', () => {
  const ours = {
    '600m.train.steps_per_s': 150,
    '600m.encode_bf16.texts_per_s': 8000,
    '600m.train.peak_GiB': 9,
    '600m.train.pool_live_peak_GiB': 7.5,
    'attn.sm80.causal.S2048.fwd_tflops': 300,
    'attn.sm90.causal.S2048.fwd_tflops': 300,
  };
  const eager = {
    '600m.train_recipe_step.steps_per_s': 28.9,
    '600m.encode_bf16.texts_per_s': 4201,
    '600m.train_recipe_step.peak_GiB': 10.8,
    'attn.sdpa_flash.causal.S2048.fwd_tflops': 277,
    'attn.sdpa_cudnn.causal.S2048.fwd_tflops': 'cuDNN attention unavailable',
  };
  const compiled = { '600m.train_recipe_step.steps_per_s': 39.4, '600m.encode_bf16.texts_per_s': 5000, '600m.train_recipe_step.peak_GiB': 8 };
  const rows = new Map(rowsOf(ours, eager, compiled).map((r) => [r.workload, r]));

  it('has every row of the targets table', () => {
    expect([...rows.keys()]).toEqual([
      'attn fwd sm80 d128 causal S=2048 vs SDPA-flash', 'attn fwd sm80 d128 causal S=8192 vs SDPA-flash',
      'attn fwd sm90 d128 causal S=2048 vs cuDNN', 'attn fwd sm90 d128 causal S=8192 vs cuDNN',
      'attn fwd sm90wg2 d128 causal S=2048 vs cuDNN', 'attn fwd sm90wg2 d128 causal S=8192 vs cuDNN',
      'attn fwd sm90pp d128 causal S=2048 vs cuDNN', 'attn fwd sm90pp d128 causal S=8192 vs cuDNN',
      'attn fwd+bwd d128 causal S=2048', 'attn fwd+bwd d128 causal S=8192',
      '600M recipe steps/s', '1B recipe steps/s', '600M train 2x2048 tok/s', '600M train 1x8192 tok/s',
      '600M encode texts/s', '1B encode texts/s', '600M recipe peak GiB (lower is better)',
      '600M recipe peak live GiB (lower is better)',
    ]);
  });

  it('the recipe step against eager (5x), encode against the better reference (2x), memory lower is better (0.8x)', () => {
    expect(rows.get('600M recipe steps/s')).toMatchObject({ reference: 28.9, target: '>= 5x', met: true });
    expect(rows.get('600M recipe steps/s')!.ratio).toBeCloseTo(150 / 28.9, 12);
    expect(rows.get('600M encode texts/s')).toMatchObject({ reference: 5000, ratio: 1.6, target: '>= 2x', met: false });
    expect(rows.get('600M recipe peak GiB (lower is better)')).toMatchObject({ reference: 8, ratio: 9 / 8, target: '<= 0.8x', met: false });
    // the live peak (torch.cuda.max_memory_allocated's measure) against the same reference figure
    expect(rows.get('600M recipe peak live GiB (lower is better)')).toMatchObject({ ours: 7.5, reference: 8, ratio: 7.5 / 8, target: '<= 0.8x', met: false });
  });

  it('--markdown: the same rows as a Markdown table', () => {
    const lines = markdownOf(rowsOf(ours, eager, compiled)).split('\n');
    expect(lines.slice(0, 2)).toEqual(['| workload | ours | eager | compiled | ratio | target | met |', '|---|---|---|---|---|---|---|']);
    expect(lines).toContain('| 600M recipe steps/s | 150 | 28.90 | 39.40 | 5.19× (eager) | >= 5x | yes |');
    expect(lines).toContain('| attn fwd sm90 d128 causal S=2048 vs cuDNN | 300 | — | — | — | >= 1x | — |');
    expect(lines).toHaveLength(2 + rowsOf(ours, eager, compiled).length);
  });

  it('a missing figure or a reference that is an error message gives no ratio', () => {
    expect(rows.get('attn fwd sm80 d128 causal S=2048 vs SDPA-flash')).toMatchObject({ reference: 277, met: true });
    expect(rows.get('attn fwd sm90 d128 causal S=2048 vs cuDNN')).toMatchObject({ ours: 300, reference: undefined, ratio: undefined, met: undefined });
    expect(rows.get('1B recipe steps/s')).toMatchObject({ ours: undefined, ratio: undefined, met: undefined });
  });
});

interface SweepGroup {
  kind: string;
  S: number;
  best: string;
  variants: { variant: string; tflops: number; vsDefault?: number }[];
}
const sweepOf = sweepRows as (res: object) => SweepGroup[];

describe('gpu-bench --sweep', () => {
  it('groups the variants per kind and length, best first, each against the default', () => {
    const groups = sweepOf({
      device: 'x',
      'attn.causal.S2048.fwd_tflops': 500,
      'attn.sweep.fwd.default.S2048_tflops': 200,
      'attn.sweep.fwd.q128w8k64s2.S2048_tflops': 250,
      'attn.sweep.fwd.q64w4k64s3.S2048_tflops': 190,
      'attn.sweep.bwd.default.S8192_tflops': 150,
      'attn.sweep.bwd.k128q32w8s2.S8192_tflops': 120,
      'attn.sweep.bwd.k64q32w4s3.S8192_tflops': Number.NaN,
      'attn.sweep.fwd.best.S2048': 'q128w8k64s2',
      'attn.sweep.wg2.default.S2048_tflops': 300,
      'attn.sweep.wg2.wg2k128s2.S2048_tflops': 330,
      'attn.sweep.pp.wg2k128s2.S2048_tflops': 360,
      'attn.sweep.bwd90.default.S2048_tflops': 160,
      'attn.sweep.bwd90.sm90k128q64s2.S2048_tflops': 200,
      'attn.sweep.xyz.default.S2048_tflops': 1,
    });
    expect(groups.map((g) => [g.kind, g.S, g.best])).toEqual([['fwd', 2048, 'q128w8k64s2'], ['bwd', 8192, 'default'], ['wg2', 2048, 'wg2k128s2'], ['pp', 2048, 'wg2k128s2'], ['bwd90', 2048, 'sm90k128q64s2']]);
    expect(groups[2]!.variants.map((v) => [v.variant, v.vsDefault])).toEqual([['wg2k128s2', 1.1], ['default', 1]]);
    expect(groups[3]!.variants.map((v) => [v.variant, v.vsDefault])).toEqual([['wg2k128s2', undefined]]);
    expect(groups[0]!.variants.map((v) => [v.variant, v.vsDefault])).toEqual([['q128w8k64s2', 1.25], ['default', 1], ['q64w4k64s3', 0.95]]);
    expect(groups[1]!.variants.map((v) => v.variant)).toEqual(['default', 'k128q32w8s2']);
    expect(groups[4]!.variants.map((v) => [v.variant, v.vsDefault])).toEqual([['sm90k128q64s2', 1.25], ['default', 1]]);
  });
});
