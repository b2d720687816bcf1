// The sm_90a attention forwards (attention_sm90.cu, attention_sm90wg2.cu: wgmma, TMA, mbarriers) named
// explicitly, where they run (an H100/H200, and the emulation build, whose device reports compute
// capability 9.0), against the CPU (op-compare.ts has the bounds). A file, so a process, of its own:
// some of these kernels have not yet run on a GPU, and a fault ends the CUDA context for the rest of
// its process.
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/random.js';
import { attentionKernels, emulated, gpu, gpuNote, sized } from './gpu-helpers.js';
import { attnForward, kernelCases, structural, variantCases, variantsOf, writeMeasuredErrors, type AttnCase } from './op-compare.js';

afterAll(writeMeasuredErrors);

describe.skipIf(!gpu.usable)(`sm_90a attention forwards vs CPU ${gpuNote}`, () => {
  const rng = new Rng(20240613, 1);
  const sm90Kernels = (gpu.usable ? attentionKernels() : []).filter((k) => k.startsWith('sm90'));

  // attentionKernels() leaves out kernels this device cannot run, and the cases built from it vanish
  // without a skip: the emulation (compute capability 9.0, built with sm_90a) must offer them all
  it.skipIf(!emulated)('the emulation runs every attention kernel, the sm_90a ones included', () => {
    expect(attentionKernels()).toEqual(['simple', 'sm80', 'sm90', 'sm90wg2', 'sm90pp']);
  });

  it.each(kernelCases(sm90Kernels))('attention forward, %s kernel: %s', (kernel, _name, hd, nh, nkv, lens) => {
    attnForward(rng, hd, nh, nkv, lens, { attentionKernel: kernel });
  });

  // The two-warpgroup sm_90a forward's tile variants (attention_sm90wg2.cu: 128-key tiles at hd 128 in 2
  // or 3 stages), each with and without ping-pong: the structural cases and one sequence of 6 key
  // tiles, whose ring of stages wraps (twice in 2 stages).
  const wg2Kernels = sm90Kernels.filter((k) => k === 'sm90wg2' || k === 'sm90pp');
  const wg2Cases: AttnCase[] = [...variantCases, [`hd128 one ${sized(2048, 700)}-token sequence`, 128, 2, 1, [sized(2048, 700)]]];
  const wg2Runs = variantsOf('wg2').filter((v) => v !== 'default').flatMap((variant) =>
    wg2Kernels.flatMap((kernel) =>
      wg2Cases.filter(([name]) => structural(name)).map(([name, hd, nh, nkv, lens]) => [kernel, variant, name, hd, nh, nkv, lens] as const),
    ),
  );
  it.each(wg2Runs)('attention forward, %s variant %s: %s', (kernel, variant, _name, hd, nh, nkv, lens) => {
    attnForward(rng, hd, nh, nkv, lens, { attentionKernel: kernel, attentionVariant: variant });
  });
});
