// The Trainer and its helpers as a program uses them: a callback's failure fails fit (an async one's
// rejection ended the process), values the float32 optimizer cannot hold are refused up front, a run
// that could not save is refused before step 1, and saveModel writes all of a model or nothing.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { readConfig } from '../src/model/config.js';
import { Trainer } from '../src/train/trainer.js';
import { saveModel } from '../src/train/checkpoint.js';
import { PairData, sampleGroup } from '../src/data/pairs.js';
import { Rng } from '../src/util/random.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const rows = topicData(4, 16, 2).rows;
const base = { batchSize: 4, groupSize: 2, seed: 1, shuffleBuffer: 0 };
const loose = <T>(f: T): ((...args: unknown[]) => unknown) => f as unknown as (...args: unknown[]) => unknown;

async function withModel<T>(f: (m: EmbeddingModel, dir: string) => Promise<T>): Promise<T> {
  const dir = writeTinyModel(makeTempDir(), { hidden: 32, layers: 1, dense: 16 }).dir;
  const m = await EmbeddingModel.load(dir);
  try {
    return await f(m, dir);
  } finally {
    m.dispose();
  }
}

describe('Trainer as a library', () => {
  it('an async onStart or onNotice that rejects fails fit (it was an unhandled rejection that ended the process)', async () => {
    await withModel(async (m) => {
      const start = new Trainer(m, { ...base, maxSteps: 2 }).fit(rows, { onStart: async () => Promise.reject(new Error('start failed')) });
      await expect(start).rejects.toThrow('start failed');
      // a bad row with skipBadLines gives a notice
      const noticed = new Trainer(m, { ...base, maxSteps: 2, skipBadLines: true }).fit([...rows, null], {
        onNotice: async () => Promise.reject(new Error('notice failed')),
      });
      await expect(noticed).rejects.toThrow('notice failed');
      // and the model trains on afterwards
      expect((await new Trainer(m, { ...base, maxSteps: 1 }).fit(rows, { onNotice: () => {} })).step).toBe(1);
    });
  });

  it('values the float32 optimizer cannot hold, and empty names, are refused (an lr of 1e39 made every weight NaN)', async () => {
    await withModel(async (m) => {
      const make = (o: object) => () => new Trainer(m, { ...base, ...o });
      expect(make({ lr: 1e39 })).toThrow('lr must be a number that a float32 holds (1.4e-45 to 3.4e38, or 0 where allowed), got 1e+39');
      expect(make({ eps: 1e-50 })).toThrow('eps must be a number that a float32 holds (1.4e-45 to 3.4e38, or 0 where allowed), got 1e-50');
      for (const name of ['outputDir', 'logFile', 'tokenizerDir', 'resume']) expect(make({ [name]: '' })).toThrow(`${name} must not be empty (leave it out for none)`);
    });
  });

  it('a model made in memory, trained into an outputDir without tokenizerDir, is refused before step 1 (the first save failed)', async () => {
    await withModel(async (loaded, dir) => {
      const m = EmbeddingModel.create(readConfig(dir), loaded.tokenizer);
      try {
        const out = join(makeTempDir(), 'out');
        const steps: number[] = [];
        await expect(new Trainer(m, { ...base, maxSteps: 3, outputDir: out }).fit(rows, { onStep: (s) => void steps.push(s.step) })).rejects.toThrow(
          'outputDir needs the tokenizer files to save with the model, and this model was created in memory: pass tokenizerDir (a folder with tokenizer.json)',
        );
        expect([steps, existsSync(out)]).toEqual([[], false]);
        expect((await new Trainer(m, { ...base, maxSteps: 1, outputDir: out, tokenizerDir: dir }).fit(rows, { onNotice: () => {} })).modelDir).toBe(out);
      } finally {
        m.dispose();
      }
    });
  });

  it('in-memory rows with extra fields JSON cannot write (a BigInt) train into an outputDir; a data function must give rows', async () => {
    await withModel(async (m) => {
      const tagged = rows.map((r, i) => ({ ...r, id: BigInt(i) }));
      expect((await new Trainer(m, { ...base, maxSteps: 1, outputDir: join(makeTempDir(), 'o') }).fit(tagged, { onNotice: () => {} })).step).toBe(1);
      await expect(new Trainer(m, { ...base, maxSteps: 1 }).fit(loose(() => ({ rows: [] })) as () => never)).rejects.toThrow(
        'the data function must return an array or (async) iterable of rows, got an object',
      );
    });
  });

  it('saveModel checks temperature and reads the tokenizer before writing anything (a half-written model refused the retry)', async () => {
    await withModel(async (m) => {
      const out = join(makeTempDir(), 'saved');
      expect(() => saveModel(m, out, { tokenizerDir: join(out, 'none') })).toThrow(`saveModel: ${join(out, 'none', 'tokenizer.json')} is missing (the tokenizer to save with the model)`);
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
      expect(() => loose(saveModel)(m, out, { temperature: -1 })).toThrow(
        new TypeError('saveModel: temperature must be null or a positive number that a float32 holds (1.4e-45 to 3.4e38: the model computes in float32), got -1'),
      );
      saveModel(m, out);
      expect(readdirSync(out)).toContain('tokenizer.json');
    });
  });

  it('PairData and sampleGroup name what is wrong with their arguments', () => {
    const NewPairData = PairData as unknown as new (...a: unknown[]) => unknown;
    expect(() => new NewPairData(rows, { groupSize: '2', seed: 1 })).toThrow(new TypeError('PairData: groupSize must be a positive integer, got the string "2"'));
    expect(() => new NewPairData(rows, { groupSize: 2 })).toThrow(new TypeError('PairData: seed must be an integer, got undefined'));
    expect(() => loose(sampleGroup)({ query: 'a', pos: [1], neg: [] }, 1, new Rng(1))).toThrow(
      new TypeError('sampleGroup: row must be a pair row {query, pos: [...], neg: [...]}: "pos"[0] must be a string'),
    );
  });
});
