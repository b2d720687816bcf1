import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configToJson, DENSE_SIZE_KEY, parseConfig, readConfig, type LlamaConfig } from '../src/model/config.js';
import { skipNote } from './helpers/fixture.js';
import { makeTempDir, tinyConfigJson, tinyMhaDir } from './helpers/tinyModel.js';

const haveShared = existsSync(join(tinyMhaDir, 'config.json'));

describe.skipIf(!haveShared)(`config: shared tiny-mha fixture ${haveShared ? '' : skipNote('the tiny-mha fixture')}`, () => {
  it('reads the 4.x-layout fixture', () => {
    const c = readConfig(tinyMhaDir);
    expect(c).toMatchObject({
      vocabSize: 2000,
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 4,
      headDim: 16,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      maxPositionEmbeddings: 4096,
      denseSize: null,
      pooling: 'mean',
      normalized: true,
      temperature: 0.02,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: 0,
    });
    expect(c.raw['transformers_version']).toBe('4.34.0');
  });
});

describe('config: layouts and defaults', () => {
  it('reads the 5.x layout (rope_parameters, head_dim) like the 4.x one', () => {
    const v4 = parseConfig(tinyConfigJson({ layout: '4.x' }), 'v4.json');
    const v5json = tinyConfigJson({ layout: '5.x' });
    (v5json['rope_parameters'] as Record<string, unknown>)['rope_theta'] = 500000;
    const v5 = parseConfig(v5json, 'v5.json');
    expect(v5.ropeTheta).toBe(500000);
    expect({ ...v5, raw: null, ropeTheta: 0 }).toEqual({ ...v4, raw: null, ropeTheta: 0 });
  });

  it('head_dim from the config wins over hidden/heads', () => {
    const c = parseConfig(tinyConfigJson({ hidden: 30, heads: 3, headDim: 8, layout: '5.x' }), 'c.json');
    expect(c.headDim).toBe(8);
  });

  it('fills defaults for optional fields', () => {
    const c = parseConfig(
      { vocab_size: 10, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2 },
      'min.json',
    );
    expect(c).toMatchObject({
      numKvHeads: 2,
      headDim: 4,
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      maxPositionEmbeddings: 2048,
      denseSize: null,
      pooling: 'mean',
      normalized: true,
      temperature: null,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: null, // as transformers' LlamaConfig: no padding_idx
    });
  });

  it('reads GQA, cls pooling, normalized false, dense size, eos list', () => {
    const c = parseConfig(
      tinyConfigJson({
        heads: 8,
        kvHeads: 2,
        dense: 24,
        configExtra: { sentence_pooling_method: 'cls', normalized: false, eos_token_id: [2, 7], rope_scaling: { rope_type: 'default' } },
      }),
      'c.json',
    );
    expect(c).toMatchObject({ numHeads: 8, numKvHeads: 2, headDim: 4, denseSize: 24, pooling: 'cls', normalized: false, eosTokenId: 2 });
    // written back as the list it was (it was written as 2 alone); a config changed since is written as it is now
    expect(configToJson(c)['eos_token_id']).toEqual([2, 7]);
    expect(configToJson({ ...c, eosTokenId: 3 })['eos_token_id']).toBe(3);
    expect(parseConfig(tinyConfigJson({ dense: null, configExtra: { dense_size: 12 } }), 'd.json').denseSize).toBe(12);
  });

  it('readConfig reads dir/config.json and parses JSON text', () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfigJson({ hidden: 48, heads: 6 })));
    expect(readConfig(dir).headDim).toBe(8);
  });
});

describe('config: validation errors name the file and field', () => {
  const bad = (extra: Record<string, unknown>, remove: string[] = []) => {
    const json = tinyConfigJson({ configExtra: extra });
    for (const k of remove) delete json[k];
    return () => parseConfig(json, '/m/config.json');
  };

  it.each([
    ['vocab_size', 'is missing'],
    ['hidden_size', 'is missing'],
    ['intermediate_size', 'is missing'],
    ['num_hidden_layers', 'is missing'],
    ['num_attention_heads', 'is missing'],
  ])('missing %s', (field, msg) => {
    expect(bad({}, [field])).toThrow(`/m/config.json: field "${field}" ${msg}`);
  });

  it('non-integer, non-positive, wrong-typed fields', () => {
    expect(bad({ hidden_size: 32.5 })).toThrow(/config\.json: field "hidden_size" must be an integer, got 32\.5/);
    expect(bad({ num_hidden_layers: '2' })).toThrow(/field "num_hidden_layers" must be an integer/);
    expect(bad({ vocab_size: 0 })).toThrow(/field "vocab_size" must be positive, got 0/);
    expect(bad({ num_key_value_heads: -2 })).toThrow(/field "num_key_value_heads" must be positive/);
    expect(bad({ head_dim: 0 })).toThrow(/field "head_dim" must be positive/);
    expect(bad({ rms_norm_eps: -1 })).toThrow(/field "rms_norm_eps" must be a positive number/);
    expect(bad({ rope_theta: 'big' })).toThrow(/field "rope_theta" must be a positive number/);
    expect(bad({ normalized: 'yes' })).toThrow(/field "normalized" must be true or false/);
    expect(bad({ temperature: 0 })).toThrow(/field "temperature" must be a positive number/);
    expect(bad({ pad_token_id: 'x' })).toThrow('/m/config.json: field "pad_token_id" must be an integer token id, got "x"');
    expect(bad({ eos_token_id: [2.5] })).toThrow('/m/config.json: field "eos_token_id" must be an integer token id, got [2.5]');
    const outside = 'must be in [-vocab_size, vocab_size) = [-2000, 2000): it names a row of the embedding table';
    expect(bad({ pad_token_id: 2000 })).toThrow(`/m/config.json: field "pad_token_id" (2000) ${outside}`);
    expect(bad({ pad_token_id: -2001 })).toThrow(`/m/config.json: field "pad_token_id" (-2001) ${outside}`);
    expect(bad({ embedding_size: 1.5 })).toThrow(/field "embedding_size" must be an integer/);
    // the model computes in float32: 1e-50 would be 0 there, 1e50 infinity (every text the same embedding)
    const float32 = 'must be a positive number that a float32 holds (1.4e-45 to 3.4e38: the model computes in float32)';
    expect(bad({ rope_theta: 1e-50 })).toThrow(`/m/config.json: field "rope_theta" ${float32}, got 1e-50`);
    expect(bad({ rms_norm_eps: 1e50 })).toThrow(`/m/config.json: field "rms_norm_eps" ${float32}, got 1e+50`);
    expect(bad({ rope_parameters: { rope_type: 'default', rope_theta: 4e38 } })).toThrow(`field "rope_theta" ${float32}, got 4e+38`);
    expect(parseConfig(tinyConfigJson({ configExtra: { rms_norm_eps: 1e-40 } }), 'c').rmsNormEps).toBe(1e-40); // a subnormal float32 is still > 0
  });

  // LLaMA-1-era conversions wrote "pad_token_id": -1 (and some configs an empty EOS list): transformers
  // loads them (nn.Embedding counts a negative padding_idx from the end); they were refused
  it('negative and empty token ids read as transformers reads them, and are written back as they were', () => {
    const c = parseConfig(tinyConfigJson({ configExtra: { pad_token_id: -1, bos_token_id: -1, eos_token_id: [] } }), 'c.json');
    expect([c.padTokenId, c.bosTokenId, c.eosTokenId]).toEqual([1999, 1, 2]); // the last row, and the defaults
    const out = configToJson(c);
    expect([out['pad_token_id'], out['bos_token_id'], out['eos_token_id']]).toEqual([-1, -1, []]);
    // changed since it was read: the new value
    expect(configToJson({ ...c, padTokenId: 5, bosTokenId: 3 })).toMatchObject({ pad_token_id: 5, bos_token_id: 3 });
  });

  it('a config given to create / parameterNames / configToJson is checked field by field, by its own names', () => {
    const good = parseConfig(tinyConfigJson(), 'c');
    const cases: [Record<string, unknown>, string][] = [
      [{ hiddenSize: 1.5 }, 'config.hiddenSize must be a positive integer below 2^31, got 1.5'],
      [{ intermediateSize: undefined }, 'config.intermediateSize must be a positive integer below 2^31, got undefined'],
      [{ numKvHeads: 2 ** 31 }, 'config.numKvHeads must be a positive integer below 2^31, got 2147483648'],
      [{ rmsNormEps: 1e50 }, 'config.rmsNormEps must be a positive number that a float32 holds (1.4e-45 to 3.4e38: the model computes in float32), got 1e+50'],
      [{ ropeTheta: NaN }, 'config.ropeTheta must be a positive number that a float32 holds (1.4e-45 to 3.4e38: the model computes in float32), got NaN'],
      [{ denseSize: 0 }, 'config.denseSize must be a positive integer below 2^31 or null, got 0'],
      [{ pooling: 'max' }, 'config.pooling must be "mean" or "cls", got the string "max"'],
      [{ normalized: 'no' }, 'config.normalized must be true or false, got the string "no"'],
      [{ padTokenId: 2000 }, 'config.padTokenId must be null or an id below vocabSize, got 2000'],
      [{ padTokenId: -1 }, 'config.padTokenId must be null or an id below vocabSize, got -1'],
    ];
    for (const [change, message] of cases) {
      expect(() => configToJson({ ...good, ...change } as LlamaConfig)).toThrow(new TypeError(`configToJson: ${message}`));
    }
    expect(() => configToJson({ ...good, denseSize: null })).not.toThrow();
    // written as transformers writes an absent one
    expect(configToJson({ ...good, padTokenId: null })['pad_token_id']).toBeNull();
  });

  it('divisibility of heads', () => {
    expect(bad({ hidden_size: 30 })).toThrow(/field "hidden_size" \(30\) must be divisible by num_attention_heads \(4\)/);
    expect(bad({ num_key_value_heads: 3 })).toThrow(/field "num_key_value_heads" \(3\) must divide num_attention_heads \(4\)/);
    expect(bad({ hidden_size: 30, head_dim: 8 })).not.toThrow();
    expect(bad({ head_dim: 7 })).toThrow(/field "head_dim" \(7\) must be even/);
  });

  it('unsupported rope scaling and rope types say so', () => {
    expect(bad({ rope_scaling: { type: 'linear', factor: 2 } })).toThrow(/field "rope_scaling" .*linear.* is not supported/);
    expect(bad({ rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(/"rope_scaling" .*llama3.* is not supported/);
    const v5 = tinyConfigJson({ layout: '5.x' });
    v5['rope_parameters'] = { rope_theta: 10000, rope_type: 'yarn', factor: 4 };
    expect(() => parseConfig(v5, 'c5.json')).toThrow(/c5\.json: field "rope_parameters\.rope_type" "yarn" is not supported/);
    v5['rope_parameters'] = 3;
    expect(() => parseConfig(v5, 'c5.json')).toThrow(/c5\.json: field "rope_parameters" must be an object/);
  });

  it('unsupported architecture details', () => {
    expect(bad({ hidden_act: 'gelu' })).toThrow('/m/config.json: field "hidden_act" "gelu" is not supported (only "silu", or "swish", the same function)');
    expect(bad({ hidden_act: 'swish' })).not.toThrow(); // transformers' ACT2FN: the same SiLU
    expect(bad({ model_type: 'mistral' })).toThrow(/field "model_type" must be "llama"/);
    expect(bad({ attention_bias: true })).toThrow(/field "attention_bias" true is not supported/);
    expect(bad({ mlp_bias: true })).toThrow(/field "mlp_bias" true is not supported/);
    expect(bad({ sentence_pooling_method: 'last' })).toThrow(/field "sentence_pooling_method" must be "mean" or "cls"/);
  });

  it('a config.json saved with a UTF-8 byte order mark (as some Windows editors do) reads as without it', () => {
    const dir = makeTempDir();
    const json = JSON.stringify(tinyConfigJson());
    writeFileSync(join(dir, 'config.json'), json);
    const plain = readConfig(dir);
    writeFileSync(join(dir, 'config.json'), `\ufeff${json}`);
    expect(readConfig(dir)).toEqual(plain);
  });

  it('bad JSON and missing files', () => {
    expect(() => parseConfig('{"a":', 'x.json')).toThrow(/x\.json: invalid JSON/);
    expect(() => parseConfig('[1,2]', 'x.json')).toThrow(/x\.json: expected a JSON object/);
    const dir = makeTempDir();
    expect(() => readConfig(dir)).toThrow(`${dir} has no config.json (a model folder holds config.json, the weights and tokenizer.json)`);
    mkdirSync(join(dir, 'config.json'));
    expect(() => readConfig(dir)).toThrow(`${join(dir, 'config.json')}: it is a folder, not a file`);
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'config.json'), 'not json');
    expect(() => readConfig(join(dir, 'sub'))).toThrow(/sub\/config\.json: invalid JSON/);
  });
});

describe('config: configToJson', () => {
  it('writes a 4.x config that reads back to the same config', () => {
    const src = parseConfig(tinyConfigJson({ layout: '5.x', heads: 8, kvHeads: 2, dense: 24 }), 'c.json');
    const json = configToJson(src, { torch_dtype: 'bfloat16' });
    expect(json['architectures']).toEqual(['LlamaModelEmbedding']);
    expect(json['model_type']).toBe('llama');
    expect(json['rope_theta']).toBe(10000);
    expect(json['rope_parameters']).toBeUndefined();
    expect(json[DENSE_SIZE_KEY]).toBe(24);
    expect(json['torch_dtype']).toBe('bfloat16');
    const back = parseConfig(JSON.stringify(json), 'out.json');
    expect({ ...back, raw: null }).toEqual({ ...src, raw: null });
  });

  it('omits the dense size when unknown', () => {
    const src = parseConfig(tinyConfigJson({ dense: null }), 'c.json');
    expect(DENSE_SIZE_KEY in configToJson(src)).toBe(false);
  });
});
