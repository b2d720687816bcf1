// EmbeddingModel.encodeParts yields the embeddings a part at a time, in input order, each part once its
// batches ran (so encode's CLI writes it and drops it); every text is tokenised before the first batch.
// EmbeddingsWriter writes such parts into one .npy or JSONL, the same bytes as from one whole matrix.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingModel, type BatchInfo } from '../src/model/embedding-model.js';
import { Embeddings } from '../src/model/embeddings.js';
import { EmbeddingsWriter, writeEmbeddings } from '../src/cli/io.js';
import { openOutput } from '../src/util/output.js';
import { parseNpy } from '../src/util/npy.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

let dir: string;
let modelDir: string;
let model: EmbeddingModel;

const TEXTS = Array.from({ length: 10 }, (_, i) => `text ${i} ${'ab '.repeat(i % 4)}`);

beforeAll(async () => {
  dir = makeTempDir();
  modelDir = join(dir, 'model');
  writeTinyModel(modelDir, { hidden: 32, layers: 1, dense: 16, seed: 5 });
  model = await EmbeddingModel.load(modelDir);
});
afterAll(() => model?.dispose());

/** Row i of `a` within 1e-5 of row i of `b` (batches of other texts round differently). */
function expectClose(a: Float32Array, b: Float32Array): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst).toBeLessThan(1e-5);
}

describe('EmbeddingModel.encodeParts', () => {
  it('yields parts of partSize in input order, each before the next part runs, with progress over all texts', async () => {
    const whole = await model.encode(TEXTS, { batchSize: 3 });
    const events: string[] = [];
    const batches: BatchInfo[] = [];
    const got: { start: number; rows: number }[] = [];
    const data: number[] = [];
    const parts = model.encodeParts(TEXTS, {
      batchSize: 3,
      partSize: 4,
      onBatch: (b) => {
        batches.push(b);
        events.push(`batch ${b.index}`);
      },
      onProgress: (done, total) => events.push(`done ${done}/${total}`),
    });
    for await (const p of parts) {
      events.push(`part ${p.start}`);
      got.push({ start: p.start, rows: p.embeddings.rows });
      data.push(...p.embeddings.data);
    }
    expect(got).toEqual([{ start: 0, rows: 4 }, { start: 4, rows: 4 }, { start: 8, rows: 2 }]);
    expectClose(Float32Array.from(data), whole.data);
    // parts of 4 in batches of 3: 2 + 2 + 1 batches, counted over all parts
    expect(batches.map((b) => [b.index, b.batches, b.texts, b.done, b.total])).toEqual([
      [0, 5, 3, 0, 10], [1, 5, 1, 3, 10], [2, 5, 3, 4, 10], [3, 5, 1, 7, 10], [4, 5, 2, 8, 10],
    ]);
    expect(events).toEqual([
      'batch 0', 'done 3/10', 'batch 1', 'done 4/10', 'part 0',
      'batch 2', 'done 7/10', 'batch 3', 'done 8/10', 'part 4',
      'batch 4', 'done 10/10', 'part 8',
    ]);
  });

  it('tokenises every text before the first batch: a text the tokenizer refuses in the last part fails with no work done', async () => {
    const texts = [...TEXTS, '-'.repeat((1 << 16) + 1)];
    const batches: number[] = [];
    const parts = model.encodeParts(texts, { partSize: 2, onBatch: (b) => batches.push(b.index) });
    await expect(parts.next()).rejects.toThrow(
      'tokenizer: texts[10]: more than 65536 characters in a row from character 0 on ("------------------------"...) have no point between them',
    );
    expect(batches).toEqual([]);
  });

  it('no texts: no parts; options are checked under its own name', async () => {
    const none: unknown[] = [];
    for await (const p of model.encodeParts([])) none.push(p);
    expect(none).toEqual([]);
    await expect(model.encodeParts(TEXTS, { partSize: 0 }).next()).rejects.toThrow(new RangeError('partSize must be a positive integer, got 0'));
    await expect(model.encodeParts(TEXTS, { partsize: 2 } as never).next()).rejects.toThrow(
      new TypeError('encodeParts: unknown option partsize (did you mean partSize?)'),
    );
    // encode takes no part size
    await expect(model.encode(TEXTS, { partSize: 2 } as never)).rejects.toThrow(/^encode: unknown option partSize/);
  });

  it('a break out of the loop ends the hold: dispose frees the model', async () => {
    const m = await EmbeddingModel.load(modelDir);
    for await (const p of m.encodeParts(TEXTS, { partSize: 2 })) {
      expect(p.start).toBe(0);
      break;
    }
    m.dispose();
    await expect(m.encode(['x'])).rejects.toThrow('this EmbeddingModel has been disposed');
  });
});

describe('EmbeddingsWriter', () => {
  const emb = new Embeddings(3, 2, Float32Array.of(0.5, -1, 0.25, 2, -0.125, 3));
  const input = { texts: ['a', 'b', 'c'] };
  const slice = (from: number, to: number): Embeddings => new Embeddings(to - from, 2, emb.data.slice(from * 2, to * 2));

  it('parts make the same .npy and JSONL bytes as the whole matrix', async () => {
    for (const name of ['o.npy', 'o.jsonl']) {
      const whole = join(makeTempDir(), name);
      await writeEmbeddings(openOutput(whole), whole, name.endsWith('.npy') ? 'npy' : 'jsonl', input, emb);
      const parted = join(makeTempDir(), name);
      const w = new EmbeddingsWriter(openOutput(parted), parted, name.endsWith('.npy') ? 'npy' : 'jsonl', input, 2);
      await w.append(0, slice(0, 2));
      await w.append(2, slice(2, 3));
      await w.commit();
      expect(readFileSync(parted)).toEqual(readFileSync(whole));
    }
    const empty = join(makeTempDir(), 'e.npy');
    await new EmbeddingsWriter(openOutput(empty), empty, 'npy', { texts: [] }, 2).commit();
    expect([parseNpy(readFileSync(empty)).rows, parseNpy(readFileSync(empty)).cols]).toEqual([0, 2]);
  });

  it('refuses parts out of order, or too few rows at the end; a non-finite row on stdout says what was written', async () => {
    const out = join(makeTempDir(), 'o.npy');
    const skip = new EmbeddingsWriter(openOutput(out), out, 'npy', input, 2);
    await expect(skip.append(1, slice(1, 3))).rejects.toThrow('embeddings writer: rows 1+2 of width 2 do not follow 0 rows of width 2');
    const short = new EmbeddingsWriter(openOutput(out), out, 'npy', input, 2);
    await short.append(0, slice(0, 2));
    await expect(short.commit()).rejects.toThrow('embeddings writer: 2 of 3 rows written');
    expect(() => readFileSync(out)).toThrow(/ENOENT/);

    const bad = slice(2, 3);
    bad.data[1] = NaN;
    const w = new EmbeddingsWriter(openOutput('-'), '-', 'jsonl', input, 2);
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => written.push(s) > 0) as typeof process.stdout.write;
    try {
      await w.append(0, slice(0, 2));
      await expect(w.append(2, bad)).rejects.toThrow('text 3: its embedding has a non-finite value (NaN at index 1); stdout has the 2 rows before it');
    } finally {
      process.stdout.write = write;
    }
    expect(written.join('').split('\n')).toHaveLength(3); // two rows and the end
  });
});

describe('l2e encode in parts', () => {
  it('an input of more than one part (4096 texts) gives one output of every row, in order', async () => {
    const texts = Array.from({ length: 4100 }, (_, i) => `baris ${i % 97} ${i % 5 === 0 ? 'panjang '.repeat(i % 7) : ''}`);
    const input = join(dir, 'many.txt');
    writeFileSync(input, texts.join('\n') + '\n');
    const out = join(dir, 'many.npy');
    const r = await l2e('encode', '--model', modelDir, '--input', input, '--output', out);
    expect(r.err).toContain(`encoded 4100 texts (16 dims) → ${out}\n`);
    expect(r.code).toBe(0);
    const m = parseNpy(readFileSync(out));
    expect([m.rows, m.cols]).toEqual([4100, 16]);
    expectClose(Float32Array.from(m.data), (await model.encode(texts)).data);
  }, 120_000);
});
