// The parameter list is written twice, in src/model/weights.ts (which tensors a model file must hold)
// and in native/core/model.cpp (the native layout training and checkpoints use): the two must agree,
// name for name and shape for shape, in the same order, for every kind of config.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { parameterNames } from '../src/model/weights.js';
import { makeTempDir, writeTinyModel, type TinyModelOptions } from './helpers/tinyModel.js';


describe('parameter list: weights.ts = model.cpp', () => {
  const configs: [string, TinyModelOptions][] = [
    ['multi-head, one layer', { hidden: 32, layers: 1, heads: 4, kvHeads: 4, dense: 16 }],
    ['grouped-query, three layers, head_dim × heads ≠ hidden', { hidden: 32, layers: 3, heads: 4, kvHeads: 2, headDim: 4, intermediate: 48, dense: 8 }],
    ['no dense layer in the file', { hidden: 16, layers: 2, heads: 2, kvHeads: 1, dense: null }],
  ];
  for (const [what, o] of configs) {
    it(what, async () => {
      const dir = join(makeTempDir(), 'm');
      const m = writeTinyModel(dir, { ...o, seed: 1 });
      const model = await EmbeddingModel.load(dir);
      try {
        const native = model.native.params().map((p) => ({ name: p.name, shape: p.shape }));
        expect(native).toEqual(parameterNames(m.config, model.dim));
        expect(native.length).toBe(2 + 9 * m.config.numLayers + 2);
      } finally {
        model.dispose();
      }
    });
  }
});
