// The library's entry points check a plain-JS caller's options before using them (src/util/options.ts):
// an unknown key is a TypeError naming it and the option it most likely meant, never ignored (a
// misspelt apiKey left the server open; a misspelt precision loaded fp32), and values of the wrong
// kind are refused up front, not failed deep inside.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel, packBatch, planBatches } from '../src/model/embedding-model.js';
import { configToJson, readConfig } from '../src/model/config.js';
import { openWeights, parameterNames } from '../src/model/weights.js';
import { readSafetensorsHeader, writeSafetensors } from '../src/model/safetensors.js';
import { Rng } from '../src/util/random.js';
import { Embeddings } from '../src/model/embeddings.js';
import { serve } from '../src/server/server.js';
import { knn } from '../src/eval/knn.js';
import { minePairs } from '../src/mine/mine.js';
import { combineFiles } from '../src/data/combine.js';
import { saveModel } from '../src/train/checkpoint.js';
import { Trainer } from '../src/train/trainer.js';
import { readCorpus } from '../src/mine/corpus.js';
import { buildTestSet, computeMetrics, readTestSet } from '../src/eval/metrics.js';
import { resolveModel } from '../src/hub/resolve.js';
import { snapshotDownload } from '../src/hub/download.js';
import { PairData, sampleGroup } from '../src/data/pairs.js';
import { readJsonl, readPairRows } from '../src/data/jsonl.js';
import { TextTokenizer } from '../src/model/tokenizer.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

/** Calls `f` as plain JavaScript would (no type checks), so that wrong options reach the checks. */
const loose = <T>(f: T): ((...args: unknown[]) => unknown) => f as unknown as (...args: unknown[]) => unknown;

describe('library options: unknown keys and wrong kinds are refused', () => {
  it('serve: a misspelt apiKey is refused before listening, and corpus must be texts, not a file name', async () => {
    const model = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    try {
      await expect(loose(serve)(model, { port: 0, apikey: 'secret' })).rejects.toThrow(new TypeError('serve: unknown option apikey (did you mean apiKey?)'));
      await expect(loose(serve)(model, { port: 0, corpus: 'texts.jsonl' })).rejects.toThrow(
        new TypeError("serve: corpus must be an array of strings (the texts; the CLI's --corpus reads them from a file), got the string \"texts.jsonl\""),
      );
      await expect(loose(serve)(model, { port: 0, corpus: ['a', 3] })).rejects.toThrow(/^serve: corpus must be an array of strings/);
    } finally {
      model.dispose();
    }
  });

  it('EmbeddingModel.load and create: a misspelt option is refused, not left at its default', async () => {
    const dir = writeTinyModel(makeTempDir()).dir;
    await expect(loose(EmbeddingModel.load)(dir, { precison: 'int8' })).rejects.toThrow(new TypeError('load: unknown option precison (did you mean precision?)'));
    const m = await EmbeddingModel.load(dir);
    try {
      const create = loose(EmbeddingModel.create.bind(EmbeddingModel));
      expect(() => create(m.config, m.tokenizer, { seeed: 1 })).toThrow(new TypeError('create: unknown option seeed (did you mean seed?)'));
      expect(() => create(m.config, m.tokenizer, { seed: 1.5 })).toThrow(new TypeError('create: seed must be an integer, got 1.5'));
      expect(() => create(m.config, m.tokenizer, 'fp32')).toThrow(new TypeError('create: options must be an object, got the string "fp32"'));
    } finally {
      m.dispose();
    }
  });

  it('the model-file readers and the tokenizer name a wrong argument or option (they failed inside Node or the tokenizer library, or took it)', async () => {
    const dir = writeTinyModel(makeTempDir()).dir;
    const config = readConfig(dir);
    const open = loose(openWeights);
    expect(() => open(null, config)).toThrow(new TypeError('openWeights: dir must be a folder name, got null'));
    expect(() => open(dir, null)).toThrow(new TypeError('openWeights: config must be a LlamaConfig (parseConfig, readConfig), got null'));
    expect(() => open(dir, config, { ignoreExtraLayer: true })).toThrow(new TypeError('openWeights: unknown option ignoreExtraLayer (did you mean ignoreExtraLayers?)'));
    expect(() => open(dir, config, null)).toThrow(new TypeError('openWeights: options must be an object, got null'));
    expect(() => open(dir, config, { ignoreExtraLayers: 'yes' })).toThrow(new TypeError('openWeights: ignoreExtraLayers must be true or false, got the string "yes"'));
    expect(() => loose(readConfig)(null)).toThrow(new TypeError('readConfig: dir must be a folder name, got null'));
    expect(() => loose(readSafetensorsHeader)(5)).toThrow(new TypeError('readSafetensorsHeader: path must be a file name, got 5'));
    const fromDir = loose(TextTokenizer.fromDir.bind(TextTokenizer));
    expect(() => fromDir(null)).toThrow(new TypeError('TextTokenizer.fromDir: dir must be a folder name, got null'));
    expect(() => fromDir(dir, { addBos: 'no' })).toThrow(new TypeError('TextTokenizer.fromDir: addBos must be true or false, got the string "no"'));
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as unknown;
    const NewTokenizer = TextTokenizer as unknown as new (...a: unknown[]) => TextTokenizer;
    expect(() => new NewTokenizer(null)).toThrow(new TypeError('TextTokenizer: tokenizerJson must be a parsed tokenizer.json (an object), got null'));
    expect(() => new NewTokenizer(json, 'x')).toThrow(new TypeError('TextTokenizer: config must be a parsed tokenizer_config.json (an object), got the string "x"'));
    expect(() => new NewTokenizer(json, {}, { addbos: false })).toThrow(new TypeError('TextTokenizer: unknown option addbos (did you mean addBos?)'));
    const tok = TextTokenizer.fromDir(dir);
    await expect(loose(tok.encodeBatchAsync.bind(tok))(['a'], 8, null)).rejects.toThrow(new TypeError('encodeBatchAsync: options must be an object, got null'));
    await expect(loose(tok.encodeBatchAsync.bind(tok))(['a'], 8, { sliceMs: '5' })).rejects.toThrow(
      new TypeError('encodeBatchAsync: sliceMs must be a number of milliseconds >= 0, got the string "5"'),
    );
    expect(() => loose(tok.encodeBatch.bind(tok))(['a', null], 8)).toThrow(new TypeError('encodeBatch: texts[1] must be a string, got null'));
    const decode = loose(tok.decode.bind(tok));
    expect(() => decode([1, 2], { skipSpecial: false })).toThrow(new TypeError('decode: unknown option skipSpecial (did you mean skipSpecialTokens?)'));
    expect(() => decode([99999])).toThrow(new RangeError(`decode: ids[0] is 99999, outside the vocabulary [0, ${tok.vocabSize})`));
    expect(() => decode([3, 1.5])).toThrow(new TypeError('decode: ids[1] must be a token id (an integer), got 1.5'));
    await expect(loose(EmbeddingModel.load)(5)).rejects.toThrow(new TypeError('EmbeddingModel.load: a model folder or hub id is required, got 5'));
  });

  it('knn: exclude_self is refused (it used to match every query with itself)', async () => {
    const e = new Embeddings(2, 2, Float32Array.from([1, 0, 0, 1]));
    await expect(loose(knn)(e, e, 1, { exclude_self: true })).rejects.toThrow(new TypeError('knn: unknown option exclude_self (did you mean excludeSelf?)'));
    expect((await knn(e, e, 1, { excludeSelf: true })).matches()[0]![0]!.index).toBe(1);
  });

  it('minePairs: misspelt and wrongly typed options, and a corpus that is not one', async () => {
    const corpus = { texts: ['aa', 'bb', 'cc', 'dd'], groups: [], rows: 4 };
    const v = new Embeddings(4, 2, Float32Array.from([1, 0, 0.9, 0.1, 0, 1, 0.1, 0.9]));
    const base = { posThreshold: 0.1, negThreshold: 0.5 };
    const mine = loose(minePairs);
    await expect(mine(corpus, v, { ...base, maxpos: 3 }, () => {})).rejects.toThrow(new TypeError('minePairs: unknown option maxpos (did you mean maxPos?)'));
    await expect(mine(corpus, v, { ...base, maxPos: '3' }, () => {})).rejects.toThrow('maxPos must be a positive integer, got the string "3"');
    await expect(mine(corpus, v, { ...base, randomNegatives: 'yes' }, () => {})).rejects.toThrow(new TypeError('randomNegatives must be true or false, got the string "yes"'));
    await expect(mine(corpus.texts, v, base, () => {})).rejects.toThrow(new TypeError('minePairs: corpus must be a Corpus ({ texts, groups, rows }: readCorpus), got an array'));
    // the callbacks before any search: without emit the pairs were mined and dropped, emit: 5 failed once done
    await expect(mine(corpus, v, base)).rejects.toThrow(new TypeError('minePairs: emit must be a function (it is given each pair row), got undefined'));
    await expect(mine(corpus, v, base, 5)).rejects.toThrow(new TypeError('minePairs: emit must be a function (it is given each pair row), got 5'));
    await expect(mine(corpus, v, base, () => {}, 'bar')).rejects.toThrow(new TypeError('minePairs: onProgress must be a function, got the string "bar"'));
    // named as the options they are (the CLI's flags are its own: cli-mine-stats)
    await expect(mine(corpus, v, { posThreshold: 0.9, negThreshold: 0.2 }, () => {})).rejects.toThrow(
      'posThreshold 0.9 is above negThreshold 0.2: positives (distance ≤ pos) and negatives (distance > neg) would overlap; both are Euclidean distances',
    );
  });

  it('combineFiles: no options, a misspelt one, inputs that are not file names', async () => {
    const dir = makeTempDir();
    const input = join(dir, 'a.jsonl');
    writeFileSync(input, '{"query":"q","pos":["p"],"neg":[]}\n');
    const combine = loose(combineFiles);
    await expect(combine([input])).rejects.toThrow(new TypeError('combine: options must be an object, got undefined'));
    await expect(combine([input], { output: join(dir, 'out.jsonl'), shufle: true })).rejects.toThrow(new TypeError('combine: unknown option shufle (did you mean shuffle?)'));
    await expect(combine(input, { output: join(dir, 'out.jsonl') })).rejects.toThrow(/^combine: inputs must be an array of file names, got the string /);
    await expect(combine([input], {})).rejects.toThrow(new TypeError('combine: output must be a file name (or - for stdout), got undefined'));
    await expect(combine([input], { output: join(dir, 'out.jsonl') }, { optionname: String })).rejects.toThrow(new TypeError('combine: context: unknown option optionname (did you mean optionName?)'));
    expect(existsSync(join(dir, 'out.jsonl'))).toBe(false);
    // a bad line names the option that drops it as the library spells it (the CLI: --skip-bad-lines, cli-messages)
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"query": 1}\n');
    await expect(combine([bad], { output: join(dir, 'out.jsonl') })).rejects.toThrow(`${bad}:1: "query" must be a string (use skipBadLines to drop such lines)`);
  });

  it('saveModel: a folder holding a model is not replaced unless overwrite: true; unknown options are refused', async () => {
    const from = writeTinyModel(makeTempDir()).dir;
    const m = await EmbeddingModel.load(from);
    try {
      const other = writeTinyModel(makeTempDir(), { seed: 9 }).dir;
      const before = readFileSync(join(other, 'model.safetensors'));
      expect(() => saveModel(m, other)).toThrow(`saveModel: ${other} holds a model already (config.json); pass overwrite: true to replace it, or save to another folder`);
      expect(() => loose(saveModel)(m, other, { overwrit: true })).toThrow(new TypeError('saveModel: unknown option overwrit (did you mean overwrite?)'));
      expect(readFileSync(join(other, 'model.safetensors')).equals(before)).toBe(true);
      saveModel(m, other, { overwrite: true });
      expect(readFileSync(join(other, 'model.safetensors')).equals(readFileSync(join(from, 'model.safetensors')))).toBe(true);
      const fresh = join(makeTempDir(), 'saved');
      saveModel(m, fresh);
      expect(existsSync(join(fresh, 'config.json'))).toBe(true);
      expect(() => loose(saveModel)(m, 42)).toThrow(new TypeError('saveModel: dir must be a folder name, got 42'));
    } finally {
      m.dispose();
    }
  });

  it('readCorpus, tokenize, computeMetrics, resolveModel, snapshotDownload and PairData refuse arguments of the wrong kind by name', async () => {
    await expect(loose(readCorpus)('c.jsonl', 'query')).rejects.toThrow(new TypeError('readCorpus: fields must be an array of field names, got the string "query"'));
    await expect(loose(readCorpus)('c.jsonl', ['text'], 'csv')).rejects.toThrow(new TypeError('readCorpus: format must be jsonl, text or json, got the string "csv"'));
    await expect(loose(computeMetrics)(42, new Embeddings(1, 2))).rejects.toThrow(new TypeError('computeMetrics: set must be a TestSet (readTestSet, buildTestSet), got 42'));
    await expect(loose(resolveModel)(42)).rejects.toThrow(new TypeError('resolveModel: expected a model folder or a Hub id (org/name), got 42'));
    await expect(loose(snapshotDownload)(42)).rejects.toThrow(new TypeError('snapshotDownload: repoId must be a string (org/name), got 42'));
    const NewPairData = PairData as unknown as new (...a: unknown[]) => unknown;
    expect(() => new NewPairData([], 42)).toThrow(new TypeError('PairData: options must be an object, got 42'));
    expect(() => new NewPairData([], { groupSize: 2, seed: 1, shufleBuffer: 5 })).toThrow(new TypeError('PairData: unknown option shufleBuffer (did you mean shuffleBuffer?)'));
    // a misspelt offline went to the network
    await expect(loose(resolveModel)('org/name', { ofline: true })).rejects.toThrow(new TypeError('resolveModel: unknown option ofline (did you mean offline?)'));
    await expect(loose(snapshotDownload)('org/name', { revison: 'v1' })).rejects.toThrow(new TypeError('snapshotDownload: unknown option revison (did you mean revision?)'));
    const rows = loose(readJsonl)('x.jsonl', { maxLineByte: 10 }) as AsyncGenerator<unknown>;
    await expect(rows.next()).rejects.toThrow(new TypeError('readJsonl: unknown option maxLineByte (did you mean maxLineBytes?)'));
    expect(() => loose(TextTokenizer.fromDir.bind(TextTokenizer))('.', { addbos: false })).toThrow(new TypeError('TextTokenizer.fromDir: unknown option addbos (did you mean addBos?)'));
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    try {
      expect(() => loose(m.tokenize.bind(m))('abc')).toThrow(new TypeError('tokenize: texts must be an array of strings, got the string "abc"'));
      expect(() => loose(m.tokenize.bind(m))(['abc', null])).toThrow(new TypeError('tokenize: texts[1] must be a string, got null'));
      await expect(loose(m.encode.bind(m))(null)).rejects.toThrow(new TypeError('encode: texts must be an array of strings, got null'));
    } finally {
      m.dispose();
    }
  });

  it('Embeddings, Rng and the lower-level helpers name an argument of the wrong kind, never print it value by value or fail inside', async () => {
    const NewEmbeddings = Embeddings as unknown as new (...args: unknown[]) => Embeddings;
    const big = new Float32Array(512);
    expect(() => new NewEmbeddings(big, 8)).toThrow(new TypeError('Embeddings: rows and dim must be numbers (new Embeddings(rows, dim, data?)), got a Float32Array and 8'));
    expect(() => new NewEmbeddings(2, '4')).toThrow(new TypeError('Embeddings: rows and dim must be numbers (new Embeddings(rows, dim, data?)), got 2 and the string "4"'));
    expect(() => new Embeddings(2, 0)).toThrow(new RangeError('Embeddings: invalid shape 2x0: rows must be a whole number >= 0 and dim >= 1'));
    expect(() => new Embeddings(1.5, 4)).toThrow(new RangeError('Embeddings: invalid shape 1.5x4: rows must be a whole number >= 0 and dim >= 1'));
    expect(() => new NewEmbeddings(2, 2, [1, 2, 3, 4])).toThrow(new TypeError('Embeddings: data must be a Float32Array, got an array'));
    const e = new Embeddings(2, 2);
    expect(() => loose(e.row.bind(e))(big)).toThrow(new TypeError('row: i must be a row number, got a Float32Array'));
    const NewRng = Rng as unknown as new (...args: unknown[]) => Rng;
    expect(() => new NewRng(big)).toThrow(new TypeError('Rng: seed must be a number, got a Float32Array'));
    expect(() => new NewRng(1, 'a')).toThrow(new TypeError('Rng: stream must be a number, got the string "a"'));
    expect(() => new Rng(1, Infinity)).toThrow(new RangeError('Rng: stream must be a finite number, got Infinity'));
    expect(() => loose(packBatch)(new Int32Array(3))).toThrow(new TypeError('packBatch: seqs must be an array of Int32Array token ids, got an Int32Array'));
    expect(() => loose(planBatches)([new Int32Array(2), [1, 2]], 4, 100)).toThrow(new TypeError('planBatches: ids[1] must be an Int32Array of token ids, got an array'));
    expect(() => loose(configToJson)({ hidden: 8 })).toThrow(new TypeError('configToJson: config must be a LlamaConfig (parseConfig, readConfig), got an object'));
    const { dir } = writeTinyModel(makeTempDir());
    const config = readConfig(dir);
    expect(() => loose(configToJson)(config, 'bf16')).toThrow(new TypeError('configToJson: extra must be an object of config.json keys, got the string "bf16"'));
    expect(() => loose(parameterNames)(undefined, null)).toThrow(new TypeError('parameterNames: config must be a LlamaConfig (parseConfig, readConfig), got undefined'));
    expect(() => loose(parameterNames)(config, '16')).toThrow(new TypeError('parameterNames: denseSize must be a positive integer or null (no dense layer), got the string "16"'));
    const row = { query: 'q', pos: ['p'], neg: ['n'] };
    expect(() => loose(sampleGroup)('q', 2, new Rng(1))).toThrow(new TypeError('sampleGroup: row must be a pair row {query, pos: [...], neg: [...]}, got the string "q"'));
    expect(() => sampleGroup(row, 2.5, new Rng(1))).toThrow(new RangeError('sampleGroup: groupSize must be a positive integer, got 2.5'));
    expect(() => loose(sampleGroup)(row, 2, 7)).toThrow(new TypeError('sampleGroup: rng must be an Rng, got 7'));
    expect(() => sampleGroup({ ...row, neg: [] }, 3, new Rng(1))).toThrow(new RangeError('sampleGroup: row.neg is empty, and a group of 3 needs negatives'));
    const file = join(makeTempDir(), 'w.safetensors');
    expect(() => loose(writeSafetensors)(file, { a: 1 })).toThrow(new TypeError('writeSafetensors: tensors must be an array of {name, dtype, shape, data}, got an object'));
    expect(() => loose(writeSafetensors)(file, [{ name: 'a', dtype: 'BF16', shape: [2], data: [1, 2] }])).toThrow(new TypeError(`${file}: tensor "a": data must be a Float32Array or a Uint16Array of half bits, got an array`));
    expect(() => loose(writeSafetensors)(file, [], { step: 3 })).toThrow(new TypeError('writeSafetensors: metadata.step must be a string (__metadata__ holds strings only), got 3'));
    expect(existsSync(file)).toBe(false);
    await expect(loose(buildTestSet)('t', 42)).rejects.toThrow(new TypeError('buildTestSet: rows must be an iterable or async iterable of {query, pos, neg} rows, got 42'));
    await expect(loose(readTestSet)('t.jsonl', big)).rejects.toThrow(new TypeError('readTestSet: limit must be a positive integer, got a Float32Array'));
    await expect(loose(readTestSet)('t.jsonl', 0)).rejects.toThrow(new RangeError('readTestSet: limit must be a positive integer, got 0'));
    // the file is checked before name, which defaults to it
    await expect(loose(readTestSet)(null)).rejects.toThrow(new TypeError('readTestSet: file must be a file name, got null'));
    await expect((loose(readPairRows)(null) as AsyncGenerator<unknown>).next()).rejects.toThrow(new TypeError('readPairRows: file must be a file name, got null'));
    await expect((loose(readJsonl)(42) as AsyncGenerator<unknown>).next()).rejects.toThrow(new TypeError('readJsonl: file must be a file name, got 42'));
    const m = await EmbeddingModel.load(dir);
    try {
      expect(() => loose(m.tokenizer.encodeBatch.bind(m.tokenizer))('abc', 8)).toThrow(new TypeError('encodeBatch: texts must be an array of strings, got the string "abc"'));
      expect(() => loose(m.tokenizer.decode.bind(m.tokenizer))(null)).toThrow(new TypeError('decode: ids must be an array of token ids, got null'));
      await expect(loose(m.hold.bind(m))(42)).rejects.toThrow(new TypeError('hold: fn must be a function, got 42'));
      expect(() => loose(EmbeddingModel.create.bind(EmbeddingModel))(config, {})).toThrow(new TypeError('create: tokenizer must be a TextTokenizer (TextTokenizer.fromDir), got an object'));
      expect(() => loose(saveModel)({}, makeTempDir())).toThrow(new TypeError('saveModel: model must be an EmbeddingModel, got an object'));
    } finally {
      m.dispose();
    }
  });

  it('Trainer and fit: a model that is not one, misspelt fit options, callbacks and signals of the wrong kind', async () => {
    const NewTrainer = Trainer as unknown as new (...args: unknown[]) => Trainer;
    expect(() => new NewTrainer(undefined)).toThrow(new TypeError('Trainer: model must be an EmbeddingModel, got undefined'));
    expect(() => new NewTrainer({})).toThrow(new TypeError('Trainer: model must be an EmbeddingModel, got an object'));
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    try {
      expect(() => new NewTrainer(m, {}, { optionname: () => '' })).toThrow(new TypeError('Trainer: unknown option optionname (did you mean optionName?)'));
      const t = new Trainer(m, { maxSteps: 1, batchSize: 1, groupSize: 2 });
      const rows = [{ query: 'a', pos: ['b'], neg: ['c'] }];
      const fit = loose(t.fit.bind(t));
      await expect(fit(rows, { onstep: () => {} })).rejects.toThrow(new TypeError('fit: unknown option onstep (did you mean onStep?)'));
      await expect(fit(rows, { onStep: 'x' })).rejects.toThrow(new TypeError('fit: onStep must be a function, got the string "x"'));
      await expect(fit(rows, { onStart: 5 })).rejects.toThrow(new TypeError('fit: onStart must be a function, got 5'));
      await expect(fit(rows, { signal: 'x' })).rejects.toThrow(new TypeError('fit: signal must be an AbortSignal, got the string "x"'));
    } finally {
      m.dispose();
    }
  });
});
