// The Trainer on a tiny random model: checkpoints and bitwise resume, the saved model reloading to
// identical embeddings, gradient accumulation, divergence and failed writes keeping the last good
// checkpoint, interruption, pruning.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { readSafetensorsHeader, writeSafetensors } from '../src/model/safetensors.js';
import { listCheckpoints, loadCheckpointMoments, loadCheckpointWeights, saveCheckpoint, saveModel } from '../src/train/checkpoint.js';
import { trainNatives } from '../src/train/native-train.js';
import { Trainer, TrainingDivergedError, type StepInfo, type TrainerOptions } from '../src/train/trainer.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const quiet = { onNotice: (): void => {} };

describe('Trainer', () => {
  let modelDir: string;
  let dataFile: string;
  const base: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16, maxGradNorm: 1, saveTotalLimit: 0 };

  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    dataFile = join(root, 'data.jsonl');
    writeFileSync(dataFile, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });

  async function run(options: TrainerOptions, steps: StepInfo[] = [], signalAt?: number): Promise<{ model: EmbeddingModel; steps: StepInfo[] }> {
    const model = await EmbeddingModel.load(modelDir);
    const controller = new AbortController();
    const trainer = new Trainer(model, { ...base, ...options });
    await trainer.fit(dataFile, {
      ...quiet,
      signal: controller.signal,
      onStep: (s) => {
        steps.push(s);
        if (s.step === signalAt) controller.abort();
      },
    });
    return { model, steps };
  }

  it('13 steps straight = 3 steps, interrupted, + resume to 13 (across an epoch): bitwise identical losses and weights', async () => {
    // 40 rows / batch 4 = 10 steps per epoch; max 13 crosses an epoch boundary too
    const straight = await run({ maxSteps: 13 });
    const out = makeTempDir();
    const first = await run({ maxSteps: 13, outputDir: out }, [], 3);
    expect(first.steps).toHaveLength(3);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([3]);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false); // aborted: no final model
    first.model.dispose();
    const second = await run({ maxSteps: 13, outputDir: out, resume: true, saveSteps: 5 });
    const losses = [...first.steps, ...second.steps].map((s) => s.loss);
    expect(second.steps[0]!.step).toBe(4);
    expect(losses).toEqual(straight.steps.map((s) => s.loss));
    expect(losses.every(Number.isFinite)).toBe(true);
    for (const p of straight.model.native.params()) {
      expect(second.model.native.getTensor(p.name), p.name).toEqual(straight.model.native.getTensor(p.name));
    }
    // checkpoints at 3 (interrupt), 5, 10 (saveSteps) and 13 (the end)
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([3, 5, 10, 13]);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-13', 'trainer_state.json'), 'utf8'));
    expect(state.globalStep).toBe(13);
    expect(state.data.position).toMatchObject({ epoch: 1, groups: 12 });
    expect(state.schedule).toMatchObject({ name: 'constant', baseLr: 1e-3 });
    const opt = readSafetensorsHeader(join(out, 'checkpoint-13', 'optimizer.safetensors'));
    expect(opt.tensors.map((t) => t.name)).toEqual(['exp_avg', 'exp_avg_sq']);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(existsSync(join(out, 'checkpoint-13', f)), f).toBe(true);
    straight.model.dispose();
    second.model.dispose();
  });

  it('resume also matches when checkpoints come from saveSteps mid-epoch (fresh process state)', async () => {
    const straight = await run({ maxSteps: 6 });
    const out = makeTempDir();
    const a = await run({ maxSteps: 3, outputDir: out, saveSteps: 3 });
    a.model.dispose();
    const b = await run({ maxSteps: 6, outputDir: out, resume: true });
    expect([...a.steps, ...b.steps].map((s) => s.loss)).toEqual(straight.steps.map((s) => s.loss));
    straight.model.dispose();
    b.model.dispose();
  });

  it('the final model in OUTPUT reloads with EmbeddingModel.load to identical embeddings', async () => {
    const out = makeTempDir();
    const { model } = await run({ maxSteps: 2, outputDir: out, temperature: 0.05 });
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ sentence_pooling_method: 'mean', normalized: true, temperature: 0.05, embedding_size: 16 });
    const names = readSafetensorsHeader(join(out, 'model.safetensors')).tensors.map((t) => t.name);
    expect(names).toContain('embed_tokens.weight');
    expect(names).toContain('dense_layer.bias');
    expect(names.some((n) => n.startsWith('model.'))).toBe(false);
    const texts = ['apa khabar', 'the quick brown fox', 'saya suka makan nasi lemak'];
    const reloaded = await EmbeddingModel.load(out);
    expect((await reloaded.encode(texts)).data).toEqual((await model.encode(texts)).data);
    // saveModel of an in-memory model needs a tokenizer folder; with one it round-trips too
    const mem = EmbeddingModel.create(model.config, model.tokenizer, { seed: 3 });
    expect(() => saveModel(mem, makeTempDir())).toThrow(/created in memory.*tokenizerDir/);
    const memDir = makeTempDir();
    saveModel(mem, memDir, { tokenizerDir: modelDir });
    const memBack = await EmbeddingModel.load(memDir);
    expect((await memBack.encode(texts)).data).toEqual((await mem.encode(texts)).data);
    for (const m of [model, reloaded, mem, memBack]) m.dispose();
  });

  it("saveModel over a model leaves none of its tokenizer files behind, and writes an in-memory tokenizer's framing", async () => {
    const model = await EmbeddingModel.load(modelDir);
    const texts = ['apa khabar', 'the quick brown fox'];
    try {
      expect(existsSync(join(modelDir, 'tokenizer_config.json'))).toBe(false);
      // a folder whose earlier model appended EOS: its tokenizer_config.json would be read with this model
      const out = makeTempDir();
      saveModel(model, out);
      writeFileSync(join(out, 'tokenizer_config.json'), '{"add_eos_token": true}\n');
      expect(() => saveModel(model, out)).toThrow(`saveModel: ${out} holds a model already (config.json); pass overwrite: true to replace it, or save to another folder`);
      const fresh = makeTempDir();
      writeFileSync(join(fresh, 'tokenizer_config.json'), '{"add_eos_token": true}\n');
      expect(() => saveModel(model, fresh)).toThrow(
        `saveModel: ${fresh} holds tokenizer_config.json, which the model's tokenizer has not: it would be read with the saved model ` +
          'and change its tokenizing; pass overwrite: true to remove it, or save to another folder',
      );
      expect(readdirSync(fresh)).toEqual(['tokenizer_config.json']);
      saveModel(model, out, { overwrite: true });
      expect(existsSync(join(out, 'tokenizer_config.json'))).toBe(false);
      const back = await EmbeddingModel.load(out);
      expect(back.tokenize(texts)).toEqual(model.tokenize(texts));
      expect((await back.encode(texts)).data).toEqual((await model.encode(texts)).data);
      back.dispose();

      // a tokenizer made with addEos: its files say otherwise, so tokenizer_config.json says what it does
      const { TextTokenizer } = await import('../src/model/tokenizer.js');
      const mem = EmbeddingModel.create(model.config, TextTokenizer.fromDir(modelDir, { addEos: true }), { seed: 3 });
      const memDir = makeTempDir();
      saveModel(mem, memDir, { tokenizerDir: modelDir });
      expect(JSON.parse(readFileSync(join(memDir, 'tokenizer_config.json'), 'utf8'))).toEqual({ add_bos_token: true, add_eos_token: true });
      const memBack = await EmbeddingModel.load(memDir);
      expect(memBack.tokenize(texts)).toEqual(mem.tokenize(texts));
      expect(memBack.tokenize(texts)[0]!.at(-1)).toBe(mem.tokenizer.eosId);
      expect((await memBack.encode(texts)).data).toEqual((await mem.encode(texts)).data);
      memBack.dispose();
      mem.dispose();
    } finally {
      model.dispose();
    }
  });

  it("the next step's batch is read and tokenised while this step runs (before its result), none after the last", async () => {
    const rows = topicData(10, 40, 4).rows;
    let drawn = 0;
    const source = function* (): Iterable<unknown> {
      for (const r of rows) {
        drawn++;
        yield r;
      }
    };
    const model = await EmbeddingModel.load(modelDir);
    try {
      const atStep: number[] = [];
      await new Trainer(model, { ...base, shuffleBuffer: 1, maxSteps: 3 }).fit(source, { ...quiet, onStep: () => atStep.push(drawn) });
      // rows drawn when step k reports: its own batches and the next step's (4 each), plus whatever the
      // reader holds ahead (r, the same every time); after the last step no batch is drawn
      const r = atStep[2]! - 12;
      expect(r).toBeGreaterThanOrEqual(0);
      expect(atStep).toEqual([8 + r, 12 + r, 12 + r]);
    } finally {
      model.dispose();
    }
  });

  it('gradient accumulation 2 × (B/2) gives the gradients of one step of B (no in-batch negatives)', async () => {
    const nat = trainNatives();
    const moments = async (options: TrainerOptions): Promise<{ m: Float32Array; loss: number }> => {
      const model = await EmbeddingModel.load(modelDir);
      let loss = NaN;
      // maxGradNorm 0: no clipping, so after two AdamW steps m = β1 (1 − β1) g1 + (1 − β1) g2 (the
      // second step's micro-batches also add to the gradients the first step's backward wrote)
      await new Trainer(model, { ...base, maxGradNorm: 0, inBatchNegatives: false, maxSteps: 2, ...options }).fit(dataFile, {
        ...quiet,
        onStep: (s) => (loss = s.loss),
      });
      const m = nat.trainGetBuffer(model.native, 'm');
      model.dispose();
      return { m, loss };
    };
    const whole = await moments({ batchSize: 8 });
    const accumulated = await moments({ batchSize: 4, gradientAccumulationSteps: 2 });
    expect(Math.abs(accumulated.loss - whole.loss)).toBeLessThan(1e-5 * whole.loss);
    let num = 0;
    let den = 0;
    for (let i = 0; i < whole.m.length; i++) {
      num += (accumulated.m[i]! - whole.m[i]!) ** 2;
      den += whole.m[i]! ** 2;
    }
    expect(den).toBeGreaterThan(0);
    expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
  });

  it('GradCache chunking (recomputing each chunk) trains like one chunk, within float tolerance', async () => {
    const whole = await run({ maxSteps: 3 });
    const chunked = await run({ maxSteps: 3, chunkTokens: 24 });
    expect(whole.steps).toHaveLength(3);
    expect(chunked.steps).toHaveLength(3);
    chunked.steps.forEach((s, i) => expect(Math.abs(s.loss - whole.steps[i]!.loss)).toBeLessThan(1e-4 * whole.steps[i]!.loss));
    whole.model.dispose();
    chunked.model.dispose();
  });

  it('a NaN loss stops training with a clear error and keeps the last good checkpoint', async () => {
    const out = makeTempDir();
    const model = await EmbeddingModel.load(modelDir);
    const trainer = new Trainer(model, { ...base, maxSteps: 10, outputDir: out, saveSteps: 2 });
    const poison = (): void => model.native.setTensor('norm.weight', new Float32Array(32).fill(NaN));
    const err = await trainer
      .fit(dataFile, { ...quiet, onStep: (s) => s.step === 3 && poison() })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect((err as Error).message).toMatch(/training diverged at step 4: the loss is NaN.*last good checkpoint is .*checkpoint-2/);
    // (a retry on this model object, with a lower lr as advised, diverged again at its first step)
    expect((err as Error).message).toMatch(/checkpoint-2\. The model trained holds the weights it diverged with: load it again \(or that checkpoint\) to train or encode with it\.$/);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2]);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    // weights turning NaN right at a checkpoint step are never saved
    const out2 = makeTempDir();
    const t2 = new Trainer(model, { ...base, maxSteps: 10, outputDir: out2, saveSteps: 2 });
    model.native.setTensor('norm.weight', new Float32Array(32).fill(1));
    const err2 = await t2.fit(dataFile, { ...quiet, onStep: (s) => s.step === 4 && poison() }).then(() => null, (e: unknown) => e);
    expect((err2 as Error).message).toMatch(/diverged at step 4: the weights of "norm.weight" contain NaN.*checkpoint-2/);
    expect(listCheckpoints(out2).map((c) => c.step)).toEqual([2]);
    model.dispose();
  });

  it('the tokenizer is read when training starts: its source folder vanishing mid-run loses nothing', async () => {
    // (a checkpoint write that fails half-way, e.g. on a full disk, is train-nospace.test.ts's)
    const out = makeTempDir();
    const src = makeTempDir();
    writeTinyModel(src, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    const tokenizer = readFileSync(join(src, 'tokenizer.json'));
    const model = await EmbeddingModel.load(src);
    const trainer = new Trainer(model, { ...base, maxSteps: 6, outputDir: out, saveSteps: 2 });
    const r = await trainer.fit(dataFile, { ...quiet, onStep: (s) => s.step === 3 && rmSync(join(src, 'tokenizer.json')) });
    expect(r.step).toBe(6);
    for (const dir of [join(out, 'checkpoint-4'), join(out, 'checkpoint-6'), out]) {
      expect(readFileSync(join(dir, 'tokenizer.json')).equals(tokenizer), dir).toBe(true);
    }
    const back = await EmbeddingModel.load(join(out, 'checkpoint-4'));
    back.dispose();
    model.dispose();
  });

  it('saveTotalLimit keeps the newest checkpoints; resume without checkpoints is an error', async () => {
    const out = makeTempDir();
    const { model } = await run({ maxSteps: 5, outputDir: out, saveSteps: 1, saveTotalLimit: 2 });
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([4, 5]);
    model.dispose();
    await expect(run({ maxSteps: 2, outputDir: makeTempDir(), resume: true })).rejects.toThrow(/resume: no checkpoint-<step> folder/);
  });

  it('epochs without maxSteps: ceil(rows / B) steps per epoch, reported lr and epoch progress', async () => {
    const { model, steps } = await run({ epochs: 2, batchSize: 6, schedule: 'linear', warmupSteps: 2 });
    // 40 rows / 6 = 6 full batches + 1 of 4 → 7 steps per epoch
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expect(steps[0]!.totalSteps).toBe(14);
    expect(steps[0]!.lr).toBe(0);
    expect(steps[1]!.lr).toBeCloseTo(0.5e-3, 12);
    expect(steps[13]!.lr).toBeCloseTo(1e-3 / 12, 12);
    expect(steps[6]!.epoch).toBe(1);
    expect(steps[13]!.epoch).toBe(2);
    expect(steps.every((s) => s.tokensPerSecond > 0 && s.tokens > 0 && s.gradNorm > 0)).toBe(true);
    model.dispose();
  });

  // one training state per model: a second fit while one runs would share its gradients, moments and
  // pending loss (both resolved, one with a wrong loss, one with 0)
  it('a second fit on a model while one runs is refused; the first trains as it would alone', async () => {
    const alone = await run({ maxSteps: 2 });
    alone.model.dispose();
    const model = await EmbeddingModel.load(modelDir);
    try {
      const first = new Trainer(model, { ...base, maxSteps: 2 }).fit(dataFile, quiet);
      await expect(new Trainer(model, { ...base, maxSteps: 2 }).fit(dataFile, quiet)).rejects.toThrow(
        'fit: this model is already being trained by another fit; one fit at a time per model (await the first)',
      );
      expect((await first).lastLoss).toBe(alone.steps.at(-1)!.loss);
      // and once it has ended, the model trains again
      expect((await new Trainer(model, { ...base, maxSteps: 1 }).fit(dataFile, quiet)).step).toBe(1);
    } finally {
      model.dispose();
    }
  });

  it('an async onStep is awaited before the next step, and its rejection fails fit as a thrown error does', async () => {
    const model = await EmbeddingModel.load(modelDir);
    try {
      const seen: string[] = [];
      await new Trainer(model, { ...base, maxSteps: 3 }).fit(dataFile, {
        ...quiet,
        onStep: async (s) => {
          seen.push(`start ${s.step}`);
          await new Promise((r) => setTimeout(r, 20));
          seen.push(`end ${s.step}`);
        },
      });
      expect(seen).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
      let steps = 0;
      const failing = new Trainer(model, { ...base, maxSteps: 5 }).fit(dataFile, {
        ...quiet,
        onStep: async (s) => {
          steps = s.step;
          if (s.step === 2) throw new Error('the callback failed');
        },
      });
      await expect(failing).rejects.toThrow('the callback failed');
      expect(steps).toBe(2);
    } finally {
      model.dispose();
    }
  });

  it('a fit that failed between micro-batches leaves no pending loss to the next fit', async () => {
    const options: TrainerOptions = { ...base, maxSteps: 1, gradientAccumulationSteps: 2, shuffleBuffer: 1 };
    const rows = readFileSync(dataFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
    const fresh = await EmbeddingModel.load(modelDir);
    const model = await EmbeddingModel.load(modelDir);
    try {
      const expected = (await new Trainer(fresh, options).fit(rows, quiet)).lastLoss;
      // the source fails after 6 rows, with a micro-batch of the step computed and its loss pending (this
      // test fails without the clearing in fitHeld)
      async function* broken(): AsyncGenerator<(typeof rows)[number]> {
        for (let i = 0; i < 6; i++) yield rows[i]!;
        throw new Error('the source broke');
      }
      await expect(new Trainer(model, options).fit(broken(), quiet)).rejects.toThrow('the source broke');
      expect((await new Trainer(model, options).fit(rows, quiet)).lastLoss).toBe(expected);
    } finally {
      fresh.dispose();
      model.dispose();
    }
  });
});

describe('saveCheckpoint errors', () => {
  it('name the checkpoint folder, never its temp folder', async () => {
    const src = makeTempDir();
    writeTinyModel(src, { hidden: 32, layers: 1, dense: 16, seed: 4 });
    const model = await EmbeddingModel.load(src);
    const out = makeTempDir();
    const n = model.native.params().reduce((a, p) => a + p.numel, 0);
    let err: unknown;
    try {
      saveCheckpoint(out, 7, {
        model,
        moments: { m: new Float32Array(n), v: new Float32Array(n) },
        state: {},
        temperature: null,
        // a file that cannot be written inside the checkpoint's temp folder
        tokenizerFiles: [['no/such/tokenizer.json', Buffer.from('{}')]],
      });
    } catch (e) {
      err = e;
    }
    const final = join(out, 'checkpoint-7');
    expect((err as Error).message).toBe(
      `could not save the checkpoint of step 7 to ${final}: could not write ${join(final, 'no/such/tokenizer.json')}: ` +
        `the folder ${join(final, 'no/such')} does not exist`,
    );
    expect(readdirSync(out)).toEqual([]);
    model.dispose();
  });
});

describe('loadCheckpointWeights', () => {
  it('loads through the native safetensors loader, bit for bit, and refuses a non-F32 tensor', async () => {
    const a = makeTempDir();
    writeTinyModel(a, { hidden: 32, layers: 2, dense: 16, seed: 5 });
    const b = makeTempDir();
    writeTinyModel(b, { hidden: 32, layers: 2, dense: 16, seed: 6 });
    const from = await EmbeddingModel.load(a);
    const into = await EmbeddingModel.load(b);
    const ckpt = makeTempDir();
    saveModel(from, ckpt);
    const set = vi.spyOn(into.native, 'setTensor');
    const load = vi.spyOn(into.native, 'loadTensors');
    await loadCheckpointWeights(into.native, ckpt);
    expect(set).not.toHaveBeenCalled();
    expect(load).toHaveBeenCalledTimes(1);
    expect(load.mock.calls[0]![0].map((s) => s.name)).toEqual(into.native.params().map((p) => p.name));
    for (const p of from.native.params()) {
      const x = from.native.getTensor(p.name);
      const y = into.native.getTensor(p.name);
      expect(Buffer.from(y.buffer, y.byteOffset, y.byteLength).equals(Buffer.from(x.buffer, x.byteOffset, x.byteLength)), p.name).toBe(true);
    }
    const half = makeTempDir();
    writeTinyModel(half, { hidden: 32, layers: 2, dense: 16, seed: 5, dtype: 'F16' });
    await expect(loadCheckpointWeights(into.native, half)).rejects.toThrow(
      `${join(half, 'model.safetensors')}: tensor "embed_tokens.weight" is F16, expected F32`,
    );
    from.dispose();
    into.dispose();
  });
});

describe('loadCheckpointMoments', () => {
  // a damaged optimizer file is named when it is read: AdamW would turn its NaN into NaN weights, which
  // the run reported as divergence ("try a lower lr") and the damaged checkpoint as the last good one
  it('refuses a non-finite first moment, or a NaN or negative second moment, naming the file, tensor and index', () => {
    const dir = makeTempDir();
    const file = join(dir, 'optimizer.safetensors');
    const write = (m: number[], v: number[]): void =>
      writeSafetensors(file, [
        { name: 'exp_avg', dtype: 'F32', shape: [m.length], data: Float32Array.from(m) },
        { name: 'exp_avg_sq', dtype: 'F32', shape: [v.length], data: Float32Array.from(v) },
      ]);
    // +Inf in the second moment is a state the trainer itself saves (a squared gradient past float's range)
    write([0.5, -0.25, 0], [0.25, Infinity, 1e-8]);
    expect(loadCheckpointMoments(dir, 3)).toEqual({ m: Float32Array.of(0.5, -0.25, 0), v: Float32Array.of(0.25, Infinity, 1e-8) });
    const cases: [number[], number[], string][] = [
      [[0, NaN, 0], [0, 0, 0], 'tensor "exp_avg" has a non-finite value (NaN at index 1)'],
      [[0, 0, -Infinity], [0, 0, 0], 'tensor "exp_avg" has a non-finite value (-Inf at index 2)'],
      [[Infinity, 0, 0], [0, 0, 0], 'tensor "exp_avg" has a non-finite value (Inf at index 0)'],
      [[0, 0, 0], [NaN, 0, 0], 'tensor "exp_avg_sq" has a non-finite value (NaN at index 0)'],
      [[0, 0, 0], [0, -1, 0], 'tensor "exp_avg_sq" has a negative value (-1 at index 1)'],
      [[0, 0, 0], [0, 0, -Infinity], 'tensor "exp_avg_sq" has a negative value (-Inf at index 2)'],
    ];
    for (const [m, v, why] of cases) {
      write(m, v);
      expect(() => loadCheckpointMoments(dir, 3)).toThrow(`${file}: ${why}; the checkpoint is damaged`);
    }
  });
});
