// The attention kernels and tile variants that run everywhere (simple and sm80), named explicitly,
// against the CPU (op-compare.ts has the bounds); ops.test.ts takes whichever kernel 'auto' picks. The
// sm_90a kernels are in attention-sm90.test.ts and attention-sm90-backward.test.ts, each file a process
// of its own.
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/random.js';
import { attentionKernels, bf16Array, cudaDevice, gpu, gpuNote, randBf16, runOp, type OpArgs } from './gpu-helpers.js';
import { attnBackward, attnForward, attnInputs, kernelCases, listedVariants, variantCases, variantsOf, writeMeasuredErrors } from './op-compare.js';

afterAll(writeMeasuredErrors);

describe.skipIf(!gpu.usable)(`attention kernels and sm80 tile variants vs CPU ${gpuNote}`, () => {
  const rng = new Rng(20240612, 1);

  // the kernels that run on every device, explicitly (the default cases take whichever 'auto' picks)
  it.each(kernelCases(['simple', 'sm80']))('attention forward, %s kernel: %s', (kernel, _name, hd, nh, nkv, lens) => {
    attnForward(rng, hd, nh, nkv, lens, { attentionKernel: kernel });
  });

  // The sm80 kernels' tile variants (attention_fwd.cu / attention_bwd.cu: 128-row blocks taking two
  // schedule tiles, 128-key tiles, pipeline depths), each on the structural cases (variantCases). The
  // non-default variants are hd 128 only; the default shapes are the 'sm80' cases above and ops.test.ts's.
  const variantRuns = (kind: 'fwd' | 'bwd') => {
    const names = variantsOf(kind).filter((v) => v !== 'default' && !v.startsWith('sm90'));
    // no CUDA build (L2E_GPU_TESTS_ON_CPU=1): the harness with the default
    return (names.length > 0 ? names : ['default']).flatMap((variant) =>
      variantCases.map(([name, hd, nh, nkv, lens]) => [variant, name, hd, nh, nkv, lens] as const),
    );
  };

  it.each(variantRuns('fwd'))('attention forward, sm80 variant %s: %s', (variant, _name, hd, nh, nkv, lens) => {
    attnForward(rng, hd, nh, nkv, lens, { attentionKernel: 'sm80', attentionVariant: variant });
  });

  it.each(variantRuns('bwd'))('attention backward, sm80 variant %s: %s', (variant, _name, hd, nh, nkv, lens) => {
    attnBackward(rng, hd, nh, nkv, lens, { attentionKernel: 'sm80', attentionVariant: variant });
  });

  it.skipIf(cudaDevice === 'cpu')('the variants are listed defaults first; an unknown, misplaced or missing one is a clear error', () => {
    const listed = listedVariants();
    expect(listed[0]).toBe('fwd:default');
    expect(listed.filter((v) => v.startsWith('fwd:')).length).toBeGreaterThan(1);
    expect(listed.filter((v) => v.startsWith('bwd:'))[0]).toBe('bwd:default');
    expect(listed.filter((v) => v.startsWith('wg2:'))[0]).toBe('wg2:default');
    expect([...new Set(listed.map((v) => v.slice(0, 3)))]).toEqual(['fwd', 'bwd', 'wg2']);
    const fwdName = variantsOf('fwd')[1]!, bwdName = variantsOf('bwd')[1]!;
    const args = { ...attnInputs(rng, 64, 2, 1, [5]), attentionKernel: 'sm80' };
    expect(() => runOp('cuda', 'attention', { ...args, attentionVariant: 'q256' })).toThrow(
      `attention variant: unknown attention variant 'q256' (${listed.map((v) => v.slice(4)).join(', ')})`,
    );
    expect(() => runOp('cuda', 'attention', { ...args, attentionVariant: fwdName })).toThrow(
      `attention variant '${fwdName}' has no head_dim 64 instantiation (the default has)`,
    );
    expect(() => runOp('cuda', 'attention', { ...args, attentionKernel: 'simple', attentionVariant: fwdName })).toThrow(
      `attention variant '${fwdName}' is a tile shape of the sm80 forward, not of 'simple'`,
    );
    const wg2Name = variantsOf('wg2')[1]!;
    expect(() => runOp('cuda', 'attention', { ...args, attentionVariant: wg2Name })).toThrow(
      `attention variant '${wg2Name}' is a tile shape of the sm90wg2 and sm90pp forwards, not of 'sm80'`,
    );
    const kernels = attentionKernels();
    for (const kernel of kernels.filter((k) => k === 'sm90wg2' || k === 'sm90pp'))
      expect(() => runOp('cuda', 'attention', { ...args, attentionKernel: kernel, attentionVariant: wg2Name })).toThrow(
        `attention variant '${wg2Name}' has no head_dim 64 instantiation (the default has)`,
      );
    const a = attnInputs(rng, 16, 2, 1, [5]);
    const fwd = runOp('cpu', 'attention', a);
    const bwdArgs: OpArgs = { ...a, out: bf16Array(fwd['out']!), lse: fwd['lse']!, dout: randBf16(rng, 5 * 2 * 16), attentionKernel: 'auto', attentionVariant: bwdName };
    expect(() => runOp('cuda', 'attention_backward', bwdArgs)).toThrow(
      `attention variant '${bwdName}' is a tile shape of the sm80 backward, not of 'simple'`,
    );
    if (!kernels.includes('sm90')) {  // a GPU without the sm_90a kernels
      const a64 = attnInputs(rng, 64, 2, 1, [5]);
      const f64 = runOp('cpu', 'attention', a64);
      for (const variant of variantsOf('bwd').filter((v) => v.startsWith('sm90')))
        expect(() => runOp('cuda', 'attention_backward', { ...a64, out: bf16Array(f64['out']!), lse: f64['lse']!, dout: randBf16(rng, 5 * 2 * 64), attentionVariant: variant })).toThrow(
          `attention variant '${variant}' needs a compute capability 9.0 GPU (H100/H200) and a build with sm_90a`,
        );
    }
  });
});
