// The foundation's ground truth: transformers (float64) on ../shared/fixtures/tiny-mha. Our fp32 CPU
// forward must match the final hidden states on real tokens and both embeddings within 1e-4 relative
// error (the fixture README: fp32 code lands near 1e-6), and token ids exactly.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { EmbeddingModel, packBatch } from '../src/model/embedding-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../src/model/safetensors.js';
import { hasTinyMha, readCase, relError, skipNote, tinyMha, type FixtureCase } from './helpers/fixture.js';
import { join } from 'node:path';

function expected(name: string): { data: Float32Array; shape: number[] } {
  const h = readSafetensorsHeader(join(tinyMha, 'expected.safetensors'));
  const t = h.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`expected.safetensors has no ${name}`);
  return { data: readTensorF32(t), shape: t.shape };
}

describe.skipIf(!hasTinyMha)(`golden forward on tiny-mha ${hasTinyMha ? '' : skipNote('fixtures/tiny-mha')}`, () => {
  let model: EmbeddingModel;
  let fx: FixtureCase;
  beforeAll(async () => {
    model = await EmbeddingModel.load(tinyMha);
    fx = readCase(tinyMha);
  });
  afterAll(() => model?.dispose());

  it('tokenises queries and passages exactly as the reference', () => {
    expect(model.tokenize(fx.queries, fx.max_len).map((a) => Array.from(a))).toEqual(fx.q_ids);
    expect(model.tokenize(fx.passages, fx.max_len).map((a) => Array.from(a))).toEqual(fx.p_ids);
  });

  for (const side of ['q', 'p'] as const) {
    it(`matches ${side}_hidden on real tokens and ${side}_emb`, async () => {
      const ids = (side === 'q' ? fx.q_ids : fx.p_ids).map((r) => Int32Array.from(r));
      const { tokens, cuSeqlens } = packBatch(ids);
      const out = await model.native.encode(tokens, cuSeqlens, true);
      const hid = expected(`${side}_hidden`); // [B, L, H], right-padded
      const [B, L, H] = hid.shape as [number, number, number];
      expect(B).toBe(ids.length);
      const ref = new Float32Array(tokens.length * H);
      ids.forEach((row, b) => {
        for (let t = 0; t < row.length; t++) ref.set(hid.data.subarray((b * L + t) * H, (b * L + t + 1) * H), (cuSeqlens[b]! + t) * H);
      });
      const eh = relError(out.hidden!, ref);
      expect(eh).toBeLessThan(1e-4);
      const emb = expected(`${side}_emb`);
      const ee = relError(out.embeddings, emb.data);
      expect(ee).toBeLessThan(1e-4);
      // every row is unit length (normalized: true)
      for (let b = 0; b < B; b++) {
        let s = 0;
        for (let i = 0; i < model.dim; i++) s += out.embeddings[b * model.dim + i]! ** 2;
        expect(Math.abs(Math.sqrt(s) - 1)).toBeLessThan(1e-5);
      }
    });
  }

  it('encode() of the texts gives the reference embeddings in input order', async () => {
    const emb = await model.encode(fx.passages, { maxLength: fx.max_len, batchSize: 4 });
    expect(relError(emb.data, expected('p_emb').data)).toBeLessThan(1e-4);
  });
});
