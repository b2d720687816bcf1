// What the attention kernels claim of their work, counted by the CUDA emulation build's census
// (native/cuda/emulation/census.h): every ldmatrix read of a swizzled tile is free of shared-memory
// bank conflicts, and the tensor cores do no more matrix products than a causal flash attention needs,
// the forward 2 per (query, key) pair (S = Q K^T, O = P V) and the backward 5 (S, dP = dO V^T,
// dV, dK, dQ: FlashAttention-2's, where recomputing S and dP in a second kernel would make 7).
// Encode's GEMMs do the least work too: the texts of a batch are packed end to end, no padding.
// First the census's bank model against hand-computed layouts. Emulation build only; on a GPU the
// same facts would need a profiler, and the suite says why it skips.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../../src/model/embedding-model.js';
import { nativeAddon } from '../../src/native.js';
import { Rng } from '../../src/util/random.js';
import { makeTempDir, writeTinyModel } from '../helpers/tinyModel.js';
import { addon, attentionKernels, bf16Array, emulated, linearWeights, randBf16, runOp, type OpArgs } from './gpu-helpers.js';
import { attnInputs, variantsOf } from './op-compare.js';

interface KernelCensus {
  launches: number;
  mmaFlops: number;
  ldmatrixMatrices: number;
  ldmatrixWavefronts: number;
}
interface CensusAddon {
  cudaEmulationCensus(): Record<string, KernelCensus>;
  cudaEmulationLdmatrixBanks(pattern: string): { matrices: number; wavefronts: number };
}
const census = (): CensusAddon => addon() as unknown as CensusAddon;

describe.skipIf(!emulated)(`CUDA emulation census ${emulated ? '' : '(skipped: not the CUDA emulation build)'}`, () => {
  // One ldmatrix .x4 (4 matrices of 8 rows of 16 bytes) with the row addresses of census_binding.cpp.
  // The banks: 32 of 4 bytes, so a 16-byte row covers the 4 banks of bank group (address / 16) mod 8,
  // and a matrix takes as many passes as the most distinct rows one group holds.
  it.each([
    ['stride128', 32, 'rows 128 bytes apart: all 8 in one group, 8 passes a matrix'],
    ['pairs', 16, 'each of 4 rows read twice, all in one group: 4 passes a matrix (a repeated row is one read)'],
    ['broadcast', 4, 'every lane the same row: 1 pass a matrix'],
    ['stride144', 4, 'rows 144 bytes apart (16 bytes of padding): groups r mod 8, 1 pass a matrix'],
    ['xor', 4, 'chunk m XOR r of 128-byte rows: 8 distinct groups, 1 pass a matrix'],
  ])('bank model: ldmatrix .x4 with the %s layout takes %i passes (%s)', (pattern, wavefronts) => {
    expect(census().cudaEmulationLdmatrixBanks(pattern)).toEqual({ matrices: 4, wavefronts });
  });

  it('bank model: an unknown layout is an error naming the ones there are', () => {
    expect(() => census().cudaEmulationLdmatrixBanks('stride64')).toThrow(
      "cudaEmulationLdmatrixBanks: unknown pattern 'stride64' (stride128, pairs, broadcast, stride144, xor)",
    );
  });

  // One sequence of L tokens, 2 query heads sharing 1 kv head (GQA: dK, dV sum over both heads, still 5
  // products a pair). The causal pairs (i, j <= i) of a head: L (L + 1) / 2, each product 2 D FLOPs a
  // pair. A kernel computes whole tiles (at most 128 x 128): the triangle, and of each diagonal square of
  // 128 x 128 the 128 * 127 / 2 pairs above it, so at most L (L + 128) / 2 pairs: a ratio of at most
  // (L + 128) / (L + 1) = 1.165 at L = 768 to the least work. A backward of 7 products (or a forward
  // that skipped no tile above the diagonal) would be at 1.4 (about 2) or more. Kernels of 64-row tiles
  // come to (L + 64) / (L + 1) = 1.082, those of 128-row or 128-key tiles to the bound itself: both sides
  // are then one rational, each a quotient of integers exact in doubles, so they are the same double.
  const L = 768, nh = 2, nkv = 1;
  const bound = (L + 128) / (L + 1);
  const rng = new Rng(20261207, 1);

  /** Runs `op` with `choice`, returns its launches' census: the products' FLOPs over the least. */
  function measure(op: 'attention' | 'attention_backward', hd: number, choice: OpArgs) {
    const a = attnInputs(rng, hd, nh, nkv, [L]);
    let args: OpArgs = { ...a, ...choice };
    if (op === 'attention_backward') {
      const fwd = runOp('cpu', 'attention', a);
      args = { ...args, out: bf16Array(fwd['out']!), lse: fwd['lse']!, dout: randBf16(rng, L * nh * hd) };
    }
    census().cudaEmulationCensus();  // clears what earlier launches counted
    runOp('cuda', op, args);
    const kernels = census().cudaEmulationCensus();
    const flops = Object.values(kernels).reduce((s, k) => s + k.mmaFlops, 0);
    const least = (op === 'attention' ? 2 : 5) * 2 * hd * nh * ((L * (L + 1)) / 2);
    return { kernels, ratio: flops / least };
  }

  const sm90 = emulated && attentionKernels().includes('sm90');
  // [op, head dim, kernel, variant]: every forward and backward kernel with tensor cores, every tile
  // variant (hd 128: the only head dim of the non-default ones), the defaults at hd 64 too
  const fwdCases = variantsOf('fwd').flatMap((v) => (v === 'default' ? [64, 128] : [128]).map((hd) => ['attention', hd, 'sm80', v] as const));
  const wg2Cases = variantsOf('wg2').flatMap((v) =>
    (v === 'default' ? [64, 128] : [128]).flatMap((hd) => (['sm90wg2', 'sm90pp'] as const).map((k) => ['attention', hd, k, v] as const)),
  );
  const sm90Cases = ([64, 128] as const).map((hd) => ['attention', hd, 'sm90', 'default'] as const);
  const bwdCases = variantsOf('bwd').flatMap((v) =>
    (v === 'default' ? [64, 128] : [128]).map((hd) => ['attention_backward', hd, v.startsWith('sm90') ? 'auto' : 'sm80', v] as const),
  );
  const cases = [...fwdCases, ...(sm90 ? [...sm90Cases, ...wg2Cases] : []), ...bwdCases];

  it('has a case for every tile variant the addon lists', () => {
    expect(fwdCases.length).toBeGreaterThan(2);
    expect(bwdCases.length).toBeGreaterThan(2);
    expect(sm90 ? wg2Cases.length : 1).toBeGreaterThan(0);
  });

  it.each(cases)('%s hd %i, kernel %s, variant %s: no bank conflict in any ldmatrix, tensor-core work within the bound', (op, hd, kernel, variant) => {
    const { kernels, ratio } = measure(op, hd, { attentionKernel: kernel, attentionVariant: variant });
    for (const [name, k] of Object.entries(kernels))
      expect({ kernel: name, wavefronts: k.ldmatrixWavefronts }).toEqual({ kernel: name, wavefronts: k.ldmatrixMatrices });
    // the sm80 kernels read every operand through ldmatrix (the check above is not empty for them)
    if (kernel === 'sm80') expect(Object.values(kernels).reduce((s, k) => s + k.ldmatrixMatrices, 0)).toBeGreaterThan(0);
    expect(ratio).toBeGreaterThanOrEqual(1);
    expect(ratio).toBeLessThanOrEqual(bound);
  });

  // Every linear layer (the 2-D tensors but the embedding table, N weights in all) is applied to each
  // token once: 2 N FLOPs a token. Padding a batch to its longest text would add to it.
  it('encode: the GEMMs do exactly 2 FLOPs per linear weight and token of the texts (packed, no padding)', async () => {
    const dir = join(makeTempDir(), 'model');
    writeTinyModel(dir, { hidden: 64, heads: 2, kvHeads: 1, intermediate: 96, layers: 2, dense: 16, seed: 5 });
    const model = await EmbeddingModel.load(dir, { device: 'cuda' });
    try {
      const texts = ['a', 'selamat pagi semua', 'x', 'harga rumah di Kuala Lumpur naik lagi tahun ini', 'ok', 'terima kasih banyak'];
      const lengths = model.tokenize(texts).map((t) => t.length);
      expect(new Set(lengths).size).toBeGreaterThan(3);  // lengths that padding would show
      const tokens = lengths.reduce((s, n) => s + n, 0);
      const N = linearWeights(model.native);
      const library = nativeAddon<CensusAddon>();  // the addon EmbeddingModel runs on (not the test addon: a census of its own)
      library.cudaEmulationCensus();
      await model.encode(texts, { batchSize: 4 });
      expect(library.cudaEmulationCensus()['cublasGemmEx']?.mmaFlops).toBe(2 * N * tokens);
    } finally {
      model.dispose();
    }
  });
});
