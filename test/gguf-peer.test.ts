// The bench's GGUF of our model read back by the peer, llama.cpp through node-llama-cpp (an optional
// dev dependency: without it, or without its prebuilt binary, these tests are skipped with the reason).
// A small random model (GQA: 4 heads, 2 kv heads) in F32, F16, BF16 and Q8_0: llama.cpp's mean-pooled
// hidden states, projected by our dense layer in JS (bench/lib/llama-gguf.mjs), must equal our
// embeddings of the same texts, tokenised by llama.cpp from the file's tokenizer metadata; and its
// tokenizer must give our ids.
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { writeGguf, type GgmlTypeName } from '../bench/lib/gguf.mjs';
import { llamaMetadata, llamaTensors, llamaTokenizerMetadata, projectPooled, type LlamaShape } from '../bench/lib/llama-gguf.mjs';
import { loadLlamaCpp, openEmbedder } from '../bench/lib/llama-peer.mjs';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { writeSafetensors } from '../src/model/safetensors.js';
import { parameterNames } from '../src/model/weights.js';
import { makeTempDir, sharedTokenizer, writeTinyModel } from './helpers/tinyModel.js';
import { tinyTokenizerVocab } from './helpers/tinyTokenizer.js';


const peer = await loadLlamaCpp({ threads: 2 });
const skipReason = 'skip' in peer ? peer.skip : null;
if (skipReason) console.warn(`gguf-peer tests skipped: ${skipReason}`);

const TEXTS = [
  'saya tak boleh makan nasi lemak kat KL lah',
  'The government said that the state would act.',
  'a',
  'kerajaan negeri Selangor menyatakan bahawa 2024 sedap gila!!!',
];

/**
 * 1 − cos allowed against our fp32 embeddings (1 − cos ≈ ε²/2 for a relative error ε). F32 weights:
 * rounding of the arithmetic only (observed ~1e-7): 1e-6. F16: weights and (in ggml's F16 dot
 * products) activations rounded to 11 significant bits (ε ~ 2^-12 per value): 1e-5 (observed ~1e-7 on
 * a Xeon with AMX, 1.2e-6 on an AMD EPYC with AVX-512). BF16: weights and activations
 * rounded to 8 significant bits (ε ~ 2^-9 per value, a few 1e-3 after two layers): 1e-4 (observed
 * ~1e-5). Q8_0: weights and activations in 8-bit blocks of 32 (ε ~ 1/254 per value for this model's
 * uniform weights, a few % after two layers): 1e-3 (observed ~2e-4). A wrong layout gives 1e-1 or worse.
 */
const BOUND: Record<GgmlTypeName, number> = { F32: 1e-6, F16: 1e-5, BF16: 1e-4, Q8_0: 1e-3 };

describe.skipIf(skipReason !== null)(`llama.cpp reads the bench's GGUF${skipReason ? ` (skipped: ${skipReason})` : ''}`, async () => {
  const dir = makeTempDir('l2e-gguf-peer-');
  // llama.cpp requires the embedding table to have the tokenizer's vocabulary: the shared tokenizer's
  // (the helper's default), or the generated one's in a clone without ../shared
  const vocab = existsSync(sharedTokenizer) ? undefined : tinyTokenizerVocab;
  const tiny = writeTinyModel(join(dir, 'model'), { hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, layers: 2, dense: 24, seed: 5, vocab });
  // q and k 5x larger than the helper's: attention far from uniform, so that the rotary layout (the q/k
  // permutation) shows in the embeddings (unpermuted, 1 − cos is ~1e-1 here, ~1e-3 without the scaling)
  const shapes = new Map(parameterNames(tiny.config, 24).map((p) => [p.name, p.shape]));
  for (const [name, w] of tiny.weights) if (/\.(q|k)_proj\./.test(name)) w.forEach((v, i) => (w[i] = 5 * v));
  writeSafetensors(join(tiny.dir, 'model.safetensors'), [...tiny.weights].map(([name, data]) => ({ name, dtype: 'F32', shape: shapes.get(name)!, data })));
  const shape: LlamaShape = {
    vocab: tiny.config.vocabSize, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 16,
    rmsEps: tiny.config.rmsNormEps, ropeTheta: tiny.config.ropeTheta,
  };
  const tokenizerJson: unknown = JSON.parse(readFileSync(join(tiny.dir, 'tokenizer.json'), 'utf8'));
  const ours = await EmbeddingModel.load(tiny.dir);
  const ourIds = ours.tokenize(TEXTS);
  const ourEmb = await ours.encode(TEXTS);
  ours.dispose();
  const tensor = (name: string) => tiny.weights.get(name)!;

  for (const type of ['F32', 'F16', 'BF16', 'Q8_0'] as const) {
    it(`${type}: same embeddings as ours (1 - cos <= ${BOUND[type]}), same token ids`, async () => {
      if ('skip' in peer) throw new Error(peer.skip);
      const file = join(dir, `model-${type}.gguf`);
      writeGguf(file, {
        metadata: llamaMetadata(shape, type, llamaTokenizerMetadata(tokenizerJson, { add_bos_token: true })),
        tensors: llamaTensors(shape, type, tensor),
      });
      const e = await openEmbedder(peer.llama, file, { threads: 2, maxTokens: 128 });
      try {
        for (const [i, text] of TEXTS.entries()) {
          expect([1, ...e.model.tokenize(text)]).toEqual(Array.from(ourIds[i]!));
          const pooled = await e.embed(ourIds[i]!);
          expect(pooled.length).toBe(64);
          const emb = projectPooled(pooled, tensor('dense_layer.weight'), tensor('dense_layer.bias'));
          const ref = ourEmb.row(i);
          let dot = 0;
          for (let j = 0; j < ref.length; j++) dot += emb[j]! * ref[j]!;
          expect(1 - dot).toBeLessThanOrEqual(BOUND[type]); // NaN fails
          expect(1 - dot).toBeGreaterThanOrEqual(-1e-6);
        }
      } finally {
        await e.dispose();
      }
    });
  }
});
