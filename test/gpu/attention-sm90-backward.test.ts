// The wgmma backward (attention_bwd_sm90.cu, variants sm90[ws]k128q64s2, s3, s2r), where the sm_90a
// kernels run, against the CPU (op-compare.ts has the bounds): hd 64 (dQ's two column halves 64 bytes
// into the swizzled K rows) and 128, on every structural case of the forward (pipeline refills across
// the query heads of a kv group, dQ summed over 5 key blocks, 11 key tiles). A file, so a process, of
// its own: these kernels have not yet run on a GPU, and a fault ends the CUDA context for the rest of
// its process.
import { afterAll, describe, it } from 'vitest';
import { Rng } from '../../src/util/random.js';
import { attentionKernels, gpu, gpuNote } from './gpu-helpers.js';
import { attnBackward, attnCases, structural, variantCases, variantsOf, writeMeasuredErrors } from './op-compare.js';

afterAll(writeMeasuredErrors);

describe.skipIf(!gpu.usable)(`sm_90a attention backward vs CPU ${gpuNote}`, () => {
  const rng = new Rng(20240614, 1);
  const sm90BwdCases = [...attnCases.filter(([, hd]) => hd === 64 || hd === 128), ...variantCases];
  const sm90Bwd = variantsOf('bwd').filter((v) => v.startsWith('sm90'));
  const sm90BwdRuns = ((gpu.usable ? attentionKernels() : []).includes('sm90') ? sm90Bwd : []).flatMap((variant) =>
    sm90BwdCases.filter(([name]) => structural(name)).map(([name, hd, nh, nkv, lens]) => [variant, name, hd, nh, nkv, lens] as const),
  );
  it.each(sm90BwdRuns)('attention backward, variant %s: %s', (variant, _name, hd, nh, nkv, lens) => {
    attnBackward(rng, hd, nh, nkv, lens, { attentionKernel: 'auto', attentionVariant: variant });
  });
});
