// Bad input at the model level: each a clear error naming what is wrong, never a crash.
// (Malformed safetensors and configs are covered in safetensors.test.ts and config.test.ts.)
import { describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel, type EncodeOptions } from '../src/model/embedding-model.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';
import { TextError } from '../src/model/text-error.js';
import { TextTokenizer } from '../src/model/tokenizer.js';

describe('bad input to EmbeddingModel', () => {
  it('missing folder, config, weights, tokenizer', async () => {
    await expect(EmbeddingModel.load('/nonexistent/model-dir')).rejects.toThrow(/model folder not found: \/nonexistent\/model-dir/);
    const noConfig = writeTinyModel(makeTempDir()).dir;
    rmSync(join(noConfig, 'config.json'));
    await expect(EmbeddingModel.load(noConfig)).rejects.toThrow(/config\.json/);
    const noWeights = writeTinyModel(makeTempDir()).dir;
    rmSync(join(noWeights, 'model.safetensors'));
    await expect(EmbeddingModel.load(noWeights)).rejects.toThrow(/no weights found/);
    const noTok = writeTinyModel(makeTempDir(), { tokenizer: false }).dir;
    await expect(EmbeddingModel.load(noTok)).rejects.toThrow(/tokenizer\.json/);
  });

  it('weights whose shapes disagree with the config name the tensor', async () => {
    const dir = writeTinyModel(makeTempDir(), { intermediate: 48 }).dir;
    const cfg = JSON.parse(JSON.stringify(await import(join(dir, 'config.json'), { with: { type: 'json' } }))).default;
    cfg.intermediate_size = 40;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    await expect(EmbeddingModel.load(dir)).rejects.toThrow(/gate_proj/);
  });

  it('token ids outside the vocabulary are rejected by native code with a message', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    await expect(m.native.encode(Int32Array.from([1, 5, 99999]), Int32Array.from([0, 3]))).rejects.toThrow(
      /token id 99999 .* outside the vocabulary/,
    );
    await expect(m.native.encode(Int32Array.from([1, -1]), Int32Array.from([0, 2]))).rejects.toThrow(/outside the vocabulary/);
    await expect(m.native.encode(Int32Array.from([1, 2]), Int32Array.from([0, 3]))).rejects.toThrow(/cu_seqlens/);
    await expect(m.native.encode(Int32Array.from([1, 2]), Int32Array.from([0, 0, 2]))).rejects.toThrow('sequence 0 of the batch is empty (every text has at least BOS)');
    m.dispose();
  });

  it('empty, whitespace, lone-surrogate and 1 MB texts encode to finite unit vectors (long ones truncated)', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    const huge = 'kata '.repeat(210_000); // ~1 MB
    const texts = ['', '   \t\n ', 'a\ud800b', '\udc00', huge];
    const ids = m.tokenize(texts, 128);
    expect(ids[0]).toEqual(Int32Array.from([1]));
    expect(ids[4]!.length).toBe(128);
    const emb = await m.encode(texts, { maxLength: 128 });
    for (let i = 0; i < texts.length; i++) {
      const row = emb.row(i);
      expect(row.every(Number.isFinite)).toBe(true);
      expect(Math.hypot(...row)).toBeCloseTo(1, 5);
    }
    m.dispose();
  });

  it('an embedding that overflowed (finite weights of 1e38) is an error naming the text, never returned', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    const dense = m.native.params().find((p) => p.name === 'dense_layer.weight')!;
    m.native.setTensor(dense.name, new Float32Array(dense.numel).fill(1e38));
    const reason = "its embedding has a non-finite value (NaN at index 0): the model's activations overflowed on it (are its weights sound?)";
    await expect(m.encode(['apa khabar'])).rejects.toThrow(new TextError('encode', reason, 0));
    await expect(m.encode(['apa khabar'])).rejects.toThrow(`encode: texts[0]: ${reason}`);
    await expect(m.encode(['a', 'b', 'c'], { batchSize: 1 })).rejects.toMatchObject({ stage: 'encode', index: expect.any(Number), reason });
    m.dispose();
  });

  it('an empty text with no BOS (add_bos_token false) is an error naming it, not a native one naming a batch slot', async () => {
    const dir = writeTinyModel(makeTempDir()).dir;
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false }));
    const m = await EmbeddingModel.load(dir);
    const reason = `the text is empty and the tokenizer adds no BOS (add_bos_token is false in the tokenizer_config.json beside ${join(dir, 'tokenizer.json')}): a model has nothing to embed`;
    await expect(m.encode(['hello', '', 'a longer line of text'])).rejects.toThrow(`tokenizer: texts[1]: ${reason}`);
    expect(() => m.tokenize(['x', ''])).toThrow(`tokenizer: texts[1]: ${reason}`);
    expect((await m.encode(['hello'])).rows).toBe(1);
    m.dispose();
    // made so by the option, it names that (the file's setting was not the cause)
    const made = TextTokenizer.fromDir(writeTinyModel(makeTempDir()).dir, { addBos: false });
    expect(() => made.encode('', 8)).toThrow('tokenizer: the text is empty and the tokenizer adds no BOS (it was made with addBos: false): a model has nothing to embed');
  });

  it('create refuses a tokenizer with ids past the config\'s vocabulary, as load does (it failed at the first encode)', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    expect(() => EmbeddingModel.create({ ...m.config, vocabSize: 10 }, m.tokenizer)).toThrow(
      `tokenizer: vocabulary has ${m.tokenizer.vocabSize} ids but the model embeds only 10`,
    );
    m.dispose();
  });

  it('encode after dispose is an error, not a crash', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    m.dispose();
    await expect(m.encode(['a'])).rejects.toThrow(/disposed/);
    expect(() => m.native).toThrow(/disposed/);
  });

  it('encode and load options of the wrong type or value are errors naming the option (plain-JS callers)', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    for (const v of [0, -1, 1.5]) {
      await expect(m.encode(['a'], { maxBatchTokens: v })).rejects.toThrow(`maxBatchTokens must be a positive integer, got ${v}`);
    }
    await expect(m.encode(['a'], { maxBatchTokens: 'x' as unknown as number })).rejects.toThrow(
      'maxBatchTokens must be a positive integer, got the string "x"',
    );
    await expect(m.encode(['a'], { batchSize: '8' as unknown as number })).rejects.toThrow('batchSize must be a positive integer, got the string "8"');
    await expect(m.encode(['a'], null as unknown as undefined)).rejects.toThrow(new TypeError('encode: options must be an object, got null'));
    await expect(m.encode(['a'], 'fast' as unknown as undefined)).rejects.toThrow('encode: options must be an object, got the string "fast"');
    // a misspelt or unsupported option is not ignored
    await expect(m.encode(['a'], { batchsize: 8 } as unknown as EncodeOptions)).rejects.toThrow(new TypeError('encode: unknown option batchsize (did you mean batchSize?)'));
    await expect(m.encode(['a'], { signal: AbortSignal.abort() } as unknown as EncodeOptions)).rejects.toThrow(new TypeError('encode: unknown option signal'));
    m.dispose();
    await expect(EmbeddingModel.load(writeTinyModel(makeTempDir()).dir, null as unknown as undefined)).rejects.toThrow(
      new TypeError('load: options must be an object, got null'),
    );
  });

  it('encode reads the texts as they were at the call: the caller may change its array meanwhile', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    try {
      // enough text that the tokenising takes several turns of the event loop (10 ms each; its first
      // turn runs within the call), so that the changes below come while it goes on
      const texts = Array.from({ length: 1500 }, (_, i) => `teks nombor ${i} `.repeat(20));
      const last = texts[1499]!;
      const pending = m.encode(texts, { batchSize: 256 });
      texts.push(42 as unknown as string, 'one more');
      texts[1499] = 'changed';
      const e = await pending;
      expect(e.rows).toBe(1500);
      // a text's embedding depends on its batch by rounding only (test/encode-memory.test.ts); 'changed'
      // would differ in the first digit
      const alone = await m.encode([last]);
      expect(Math.max(...e.row(1499).map((x, j) => Math.abs(x - alone.row(0)[j]!)))).toBeLessThan(1e-5);
    } finally {
      m.dispose();
    }
  });

  it('non-string texts are a TypeError naming the index', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    await expect(m.encode(['a', 3 as unknown as string])).rejects.toThrow(new TypeError('encode: texts[1] must be a string, got 3'));
    // a sparse array's holes are texts too (forEach passed over them to the tokenizer)
    await expect(m.encode(new Array<string>(3))).rejects.toThrow(new TypeError('encode: texts[0] must be a string, got undefined'));
    m.dispose();
  });

  it('more plain-JS mistakes are named before any work: maxLength with no texts, callbacks and load options of the wrong type', async () => {
    const dir = writeTinyModel(makeTempDir()).dir;
    const m = await EmbeddingModel.load(dir);
    const notices: string[] = [];
    const quiet = await EmbeddingModel.load(dir, { onNotice: (x) => notices.push(x) });
    // with no texts, the bad value reached only the "above max_position_embeddings" notice
    await expect(quiet.encode([], { maxLength: 'abc' as unknown as number })).rejects.toThrow(
      new TypeError('tokenizer: maxLength must be an integer >= 1 or Infinity, got the string "abc"'),
    );
    await expect(m.encode(['a'], { maxLength: '8' as unknown as number })).rejects.toThrow('got the string "8"');
    expect(notices).toEqual([]);
    await expect(m.encode(['a'], { onProgress: 5 as unknown as () => void })).rejects.toThrow(new TypeError('encode: onProgress must be a function, got 5'));
    m.dispose();
    quiet.dispose();
    const bad: [object, string][] = [
      [{ onNotice: 'x' }, 'load: onNotice must be a function, got the string "x"'],
      [{ cacheDir: 5 }, 'load: cacheDir must be a string, got 5'],
      [{ denseSize: '64' }, 'load: denseSize must be a positive integer, got the string "64"'],
      [{ seed: 1.5 }, 'load: seed must be an integer, got 1.5'],
    ];
    for (const [options, said] of bad) await expect(EmbeddingModel.load(dir, options as object)).rejects.toThrow(new TypeError(said));
  });
});

describe('native loadTensors validation', () => {
  it('an offset or length that is not a whole number of bytes is an error (NaN read the file from byte 0)', async () => {
    const tiny = writeTinyModel(makeTempDir());
    const m = await EmbeddingModel.load(tiny.dir);
    const file = join(tiny.dir, 'model.safetensors');
    const src = { name: 'norm.weight', path: file, offset: 0, length: 4 * m.config.hiddenSize, dtype: 'F32' };
    for (const [change, said] of [
      [{ offset: NaN }, 'loadTensors: sources[0].offset must be a whole number of bytes, got NaN'],
      [{ length: -4 }, 'loadTensors: sources[0].length must be a whole number of bytes, got -4'],
      [{ offset: 1.5 }, 'loadTensors: sources[0].offset must be a whole number of bytes, got 1.5'],
      [{ offset: '8' }, 'loadTensors: sources[0].offset must be a whole number of bytes, got 8'],
      [{ path: 5 }, 'loadTensors: sources[0].path must be a string'],
    ] as const) {
      await expect(Promise.resolve().then(() => m.native.loadTensors([{ ...src, ...change } as typeof src]))).rejects.toThrow(new TypeError(said));
    }
    await expect(Promise.resolve().then(() => m.native.loadTensors([5 as unknown as typeof src]))).rejects.toThrow(new TypeError('loadTensors: sources[0] must be an object'));
    m.dispose();
  });
});

describe('native batch validation', () => {
  // Regression: an interior cu_seqlens entry past the token count used to overrun the positions
  // buffer before the (valid) last entry was checked.
  it('an interior cu_seqlens entry past the token count is an error, not a heap overrun', async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    await expect(m.native.encode(Int32Array.from([1, 2, 3, 4, 5]), Int32Array.from([0, 100000, 5]))).rejects.toThrow(
      /past the token count/,
    );
    await expect(m.native.encode(Int32Array.from([1, 2, 3]), Int32Array.from([0, -2147483648, 3]))).rejects.toThrow('sequence 0 of the batch is empty (every text has at least BOS)');
    m.dispose();
  });
});
