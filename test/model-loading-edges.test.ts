// Loading and batching details a model-level test would not notice: cutting a checkpoint to its first
// N layers (how the 600M / 1B models come from Llama2-7B), exact F16 / BF16 decoding of every bit
// pattern (native and JS readers), and batch planning on large and adversarial length mixes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddingModel, planBatches } from '../src/model/embedding-model.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type TensorToWrite } from '../src/model/safetensors.js';
import { openWeights } from '../src/model/weights.js';
import { relError } from './helpers/fixture.js';
import { referenceEmbedding } from './helpers/reference-forward.js';
import { makeTempDir, seededRandom, writeTinyModel } from './helpers/tinyModel.js';


describe('EmbeddingModel.load({ numLayers })', () => {
  it('keeps the first N layers: the reference forward over those layers, the later ones unread', async () => {
    const full = writeTinyModel(makeTempDir(), { seed: 51, layers: 4 });
    const cut = await EmbeddingModel.load(full.dir, { numLayers: 2 });
    const whole = await EmbeddingModel.load(full.dir);
    try {
      expect(cut.config.numLayers).toBe(2);
      const layerOf = (name: string): number => Number(name.split('.')[1]);
      expect([...new Set(cut.native.params().filter((p) => p.name.startsWith('layers.')).map((p) => layerOf(p.name)))]).toEqual([0, 1]);
      const texts = ['a b c d', 'x'];
      const cutEmb = await cut.encode(texts);
      const wholeEmb = await whole.encode(texts);
      cut.tokenize(texts).forEach((row, i) => {
        const ref = referenceEmbedding(cut.config, full.weights, Array.from(row), cut.dim);
        expect(relError(cutEmb.row(i), ref), `text ${i}`).toBeLessThan(1e-5);
        expect(relError(wholeEmb.row(i), cutEmb.row(i))).toBeGreaterThan(1e-3); // the later layers did matter
      });
      expect(Array.from(cut.native.getTensor('layers.1.mlp.up_proj.weight'))).toEqual(Array.from(full.weights.get('layers.1.mlp.up_proj.weight')!));
    } finally {
      cut.dispose();
      whole.dispose();
    }
  });

  it('refuses a count outside [1, layers], naming the folder', async () => {
    const full = writeTinyModel(makeTempDir(), { seed: 52, layers: 2 });
    for (const n of [0, 3, 1.5, -1])
      await expect(EmbeddingModel.load(full.dir, { numLayers: n })).rejects.toThrow(`numLayers must be an integer in [1, 2] for ${full.dir}, got ${n}`);
    await expect(EmbeddingModel.load(full.dir, { numLayers: '1' as unknown as number })).rejects.toThrow(
      `numLayers must be an integer in [1, 2] for ${full.dir}, got the string "1"`,
    );
  });

  // a config.json saying 1e9 layers built the list of 9e9 expected tensors before finding the first one
  // missing: a minute, then V8's heap-out-of-memory abort
  it("a config.json with more layers than its weights file: the first missing tensor, at once, saying what the file holds", async () => {
    const full = writeTinyModel(makeTempDir(), { seed: 54, layers: 2 });
    const file = join(full.dir, 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const [layers, held] of [[1e9, 'layers 0 to 1'], [3, 'layers 0 to 1']] as const) {
      writeFileSync(file, JSON.stringify({ ...config, num_hidden_layers: layers }));
      const t0 = performance.now();
      await expect(EmbeddingModel.load(full.dir)).rejects.toThrow(
        new Error(`${join(full.dir, 'model.safetensors')}: tensor "layers.2.input_layernorm.weight" is missing (expected shape [32]) (it holds ${held}, but config.json's num_hidden_layers is ${layers})`),
      );
      expect(performance.now() - t0).toBeLessThan(5000);
    }
  });

  // a plain-JS caller's device: 1 loaded on the CPU and left model.device 1 (a server then found no batch size for it)
  it('refuses a device other than cpu or cuda, naming its type', async () => {
    const full = writeTinyModel(makeTempDir(), { seed: 53, layers: 1 });
    for (const [device, said] of [[1, '1'], [true, 'a boolean'], ['gpu', 'the string "gpu"']] as const)
      await expect(EmbeddingModel.load(full.dir, { device: device as unknown as 'cpu' })).rejects.toThrow(`device must be 'cpu' or 'cuda', got ${said}`);
  });
});

/** Expected float32 bits of an IEEE half (F16) bit pattern, from its value (NaN: sign, quiet payload widened). */
function f16ExpectedBits(h: number): number {
  const s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  if (e === 31 && m !== 0) return ((s << 31) | 0x7f800000 | (m << 13)) >>> 0;
  f[0] = (s ? -1 : 1) * (e === 31 ? Infinity : e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
  return u[0]!;
}

describe('F16 and BF16 weights decode exactly (every finite pattern; NaN and infinities are refused at load)', () => {
  // every 16-bit pattern, as the embedding table of a model with 2048 rows of 32
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const f16Expected = Uint32Array.from(all, f16ExpectedBits);
  const bf16Expected = Uint32Array.from(all, (h) => (h << 16) >>> 0);

  function firstMismatch(got: Uint32Array, want: Uint32Array): string | null {
    for (let i = 0; i < want.length; i++)
      if (got[i] !== want[i]) return `pattern 0x${i.toString(16)}: got 0x${got[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`;
    return got.length === want.length ? null : `length ${got.length}`;
  }

  it('the expectations themselves: subnormals, ±0, ±inf, NaN', () => {
    const v = (bits: number): number => new Float32Array(Uint32Array.of(bits).buffer)[0]!;
    expect(v(f16Expected[0x0001]!)).toBe(2 ** -24); // smallest subnormal
    expect(v(f16Expected[0x03ff]!)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(v(f16Expected[0x0400]!)).toBe(2 ** -14); // smallest normal
    expect(v(f16Expected[0x7bff]!)).toBe(65504);
    expect(v(f16Expected[0x7c00]!)).toBe(Infinity);
    expect(v(f16Expected[0xfc00]!)).toBe(-Infinity);
    expect(Object.is(v(f16Expected[0x8000]!), -0)).toBe(true);
    expect(v(f16Expected[0x7e00]!)).toBeNaN();
    expect(v(bf16Expected[0x3f80]!)).toBe(1);
    expect(v(bf16Expected[0x0001]!)).toBe(2 ** -133); // bf16 subnormal
  });

  it.each([['F16'], ['BF16']] as const)('%s: the native loader and the JS reader give the exact float32 bits of every pattern', async (dtype) => {
    const tiny = writeTinyModel(makeTempDir(), { seed: 53, vocab: 2048, hidden: 32, heads: 4, layers: 1 });
    const tensors: TensorToWrite[] = [...tiny.weights].map(([name, data]) => {
      const shape = [...readSafetensorsHeader(join(tiny.dir, 'model.safetensors')).tensors.find((t) => t.name === name)!.shape];
      return name === 'embed_tokens.weight' ? { name, dtype, shape, data: all } : { name, dtype: 'F32', shape, data };
    });
    writeSafetensors(join(tiny.dir, 'model.safetensors'), tensors, { format: 'pt' });
    const want = dtype === 'F16' ? f16Expected : bf16Expected;
    const js = readTensorF32(readSafetensorsHeader(join(tiny.dir, 'model.safetensors')).tensors.find((t) => t.name === 'embed_tokens.weight')!);
    // JS numbers may not keep NaN payloads: compare values there (NaN as NaN), bits natively
    const wantValues = new Float32Array(want.buffer);
    let jsBad = 0;
    for (let i = 0; i < 65536; i++) if (!Object.is(js[i], wantValues[i])) jsBad++;
    expect(jsBad).toBe(0);
    // the native loader refuses the first infinity (0x7c00 / 0x7f80); every finite pattern, bit for bit
    const file = join(tiny.dir, 'model.safetensors');
    const inf = dtype === 'F16' ? 0x7c00 : 0x7f80;
    await expect(EmbeddingModel.load(tiny.dir)).rejects.toThrow(`${file}: tensor "embed_tokens.weight" has a non-finite value (Inf at index ${inf})`);
    const finite = (h: number): boolean => (h & inf) !== inf;
    const table = tensors.find((t) => t.name === 'embed_tokens.weight')!;
    writeSafetensors(file, tensors.map((t) => (t === table ? { ...t, data: all.map((h) => (finite(h) ? h : 0)) } : t)), { format: 'pt' });
    const model = await EmbeddingModel.load(tiny.dir);
    try {
      const got = model.native.getTensor('embed_tokens.weight');
      expect(firstMismatch(new Uint32Array(got.buffer, got.byteOffset, got.length), want.map((w, h) => (finite(h) ? w : 0)))).toBeNull();
    } finally {
      model.dispose();
    }
  });
});

describe('planBatches', () => {
  /** Checks the properties: every text once, per-batch limits, longest first, order restorable. */
  function check(lengths: number[], batchSize: number, maxTokens: number): number[][] {
    const ids = lengths.map((n) => new Int32Array(n));
    const batches = planBatches(ids, batchSize, maxTokens);
    const seen = batches.flat();
    expect(seen.length).toBe(lengths.length);
    expect(new Set(seen).size).toBe(lengths.length);
    const problems: string[] = [];
    batches.forEach((b, n) => {
      const tokens = b.reduce((a, i) => a + lengths[i]!, 0);
      if (b.length === 0 || b.length > batchSize) problems.push(`batch ${n} holds ${b.length} texts`);
      // over budget only as a text alone in its batch
      if (tokens > maxTokens && b.length > 1) problems.push(`batch ${n} holds ${tokens} tokens in ${b.length} texts`);
    });
    // longest first over the whole plan (ties in input order): a permutation that encode() undoes
    // by writing row j of a batch to its text's index
    for (let k = 1; k < seen.length; k++) {
      const [a, b] = [lengths[seen[k - 1]!]!, lengths[seen[k]!]!];
      if (b > a || (a === b && seen[k]! < seen[k - 1]!)) problems.push(`texts ${seen[k - 1]} then ${seen[k]} out of order`);
    }
    expect(problems.slice(0, 5)).toEqual([]);
    const restored = new Array<number>(lengths.length);
    seen.forEach((textIndex) => (restored[textIndex] = lengths[textIndex]!));
    expect(restored).toEqual(lengths);
    return batches;
  }

  it('large random mixes: 20,000 texts of 1..8192 tokens', () => {
    const r = seededRandom(61);
    const lengths = Array.from({ length: 20_000 }, () => 1 + Math.floor(r() ** 3 * 8192));
    const batches = check(lengths, 32, 32_768);
    // no batch closes early: each is full, or the next text would not have fit
    const order = batches.flat();
    let k = 0;
    const early: number[] = [];
    batches.slice(0, -1).forEach((b, n) => {
      k += b.length;
      const tokens = b.reduce((a, i) => a + lengths[i]!, 0);
      if (b.length < 32 && tokens + lengths[order[k]!]! <= 32_768) early.push(n);
    });
    expect(early).toEqual([]);
  });

  it('adversarial mixes: one giant among tiny ones, all equal, all over budget, budget exactly met, single text, none', () => {
    expect(check([1, 1, 100_000, 1, 1], 4, 1000)).toEqual([[2], [0, 1, 3, 4]]);
    expect(check(Array(10).fill(7), 3, 1000)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(check([5000, 6000, 7000], 8, 1000)).toEqual([[2], [1], [0]]);
    expect(check([250, 250, 250, 250, 1], 8, 1000)).toEqual([[0, 1, 2, 3], [4]]);
    expect(check([3], 1, 1)).toEqual([[0]]);
    expect(check([], 4, 10)).toEqual([]);
    expect(check(Array.from({ length: 1000 }, (_, i) => (i % 2 ? 1 : 999)), 1000, 1000).length).toBe(500 + 1);
  });

  it('refuses a batch size that is not a positive integer', () => {
    for (const b of [0, -1, 1.5, NaN]) expect(() => planBatches([], b, 10)).toThrow(`batchSize must be a positive integer, got ${b}`);
  });
});

describe('a weight that is NaN or infinite', () => {
  /** Overwrites element `index` of tensor `name` in `file` with the raw bits `bits` (4 bytes for F32, else 2). */
  function poke(file: string, name: string, index: number, bits: number): void {
    const t = readSafetensorsHeader(file).byName.get(name)!;
    const buf = readFileSync(file);
    if (t.dtype === 'F32') buf.writeUInt32LE(bits, t.offset + index * 4);
    else buf.writeUInt16LE(bits, t.offset + index * 2);
    writeFileSync(file, buf);
  }

  it('is refused at load, naming the file, the tensor as the file names it, the value and its index', async () => {
    const f32 = writeTinyModel(makeTempDir(), { seed: 3 });
    const file = join(f32.dir, 'model.safetensors');
    poke(file, 'norm.weight', 3, 0x7fc00000);
    await expect(EmbeddingModel.load(f32.dir)).rejects.toThrow(`${file}: tensor "norm.weight" has a non-finite value (NaN at index 3)`);

    const bf16 = writeTinyModel(makeTempDir(), { seed: 3, dtype: 'BF16', prefix: true });
    const bfile = join(bf16.dir, 'model.safetensors');
    poke(bfile, 'model.layers.0.mlp.up_proj.weight', 70, 0x7f80);
    for (const precision of ['fp32', 'int8'] as const) {
      await expect(EmbeddingModel.load(bf16.dir, { precision })).rejects.toThrow(
        `${bfile}: tensor "model.layers.0.mlp.up_proj.weight" has a non-finite value (Inf at index 70)`,
      );
    }

    const f16 = writeTinyModel(makeTempDir(), { seed: 3, dtype: 'F16' });
    const hfile = join(f16.dir, 'model.safetensors');
    const n = readSafetensorsHeader(hfile).byName.get('embed_tokens.weight')!.byteLength / 2;
    poke(hfile, 'embed_tokens.weight', n - 1, 0xfc00);
    const ok = await EmbeddingModel.load(writeTinyModel(makeTempDir(), { seed: 3 }).dir);
    try {
      // read in pieces of 64 bytes: the index counts from the start of the tensor, not of the piece
      const sources = openWeights(f16.dir, ok.config).tensors.map((t) => ({ name: t.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype, tensor: t.fileName }));
      await expect(ok.native.loadTensors(sources, 64)).rejects.toThrow(`${hfile}: tensor "embed_tokens.weight" has a non-finite value (-Inf at index ${n - 1})`);
    } finally {
      ok.dispose();
    }
  });
});
