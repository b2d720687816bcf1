// The Trainer's output folder belongs to one run: a used folder is refused unless resuming or
// overwriting; resume takes the newest checkpoint of the owning run and says which; a resume with
// nothing left to do writes nothing; changed settings or data are refused, naming them; checkpoints
// record the run; saveTotalLimit (default 3) keeps the newest plus the best; option errors name the
// option as the caller knows it.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { checkpointsToKeep, listCheckpoints, listRunCheckpoints, readTrainerState } from '../src/train/checkpoint.js';
import { folderBytes } from '../src/util/disk.js';
import { formatBytes } from '../src/util/format-bytes.js';
import { dataIdentity, readRunRecord } from '../src/train/run.js';
import { TRAIN_LOCK } from '../src/train/output-lock.js';
import { Trainer, TrainerOptionError, type FitResult, type StepInfo, type TrainerOptions } from '../src/train/trainer.js';
import { topicData } from './helpers/trainData.js';
import { snapshot } from './helpers/folderSnapshot.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';


const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const quietFit = { onNotice: (): void => {} };

interface Ran {
  result: FitResult;
  steps: StepInfo[];
  notices: string[];
  model: EmbeddingModel;
}

describe('Trainer runs and their output folder', () => {
  let modelDir: string;
  let dataFile: string;
  const base: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16 };

  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    dataFile = join(root, 'data.jsonl');
    writeFileSync(dataFile, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });

  /** One fit on a fresh copy of the tiny model; `abortAt` stops after that step (0: before the first). The model is disposed unless `keep`. */
  async function fitRun(options: TrainerOptions, o: { abortAt?: number; keep?: boolean; data?: string } = {}): Promise<Ran> {
    const model = await EmbeddingModel.load(modelDir);
    const steps: StepInfo[] = [];
    const notices: string[] = [];
    const controller = new AbortController();
    if (o.abortAt === 0) controller.abort();
    try {
      const result = await new Trainer(model, { ...base, ...options }).fit(o.data ?? dataFile, {
        signal: controller.signal,
        onNotice: (m) => notices.push(m),
        onStep: (s) => {
          steps.push(s);
          if (s.step === o.abortAt) controller.abort();
        },
      });
      return { result, steps, notices, model };
    } finally {
      if (!o.keep) model.dispose();
    }
  }

  it('a used outputDir is refused, naming what it holds and whose it is, and is left untouched', async () => {
    const out = makeTempDir();
    const a = await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 2 });
    expect(readRunRecord(out)).toMatchObject({ runId: a.result.runId, finalModelStep: 4 });
    const before = snapshot(out);
    await expect(fitRun({ maxSteps: 3, outputDir: out })).rejects.toThrow(
      `${out} already holds a trained model and 2 checkpoints (checkpoint-2 … checkpoint-4) of run ${a.result.runId}: ` +
        'use resume to continue that run, overwrite to replace it, or another outputDir',
    );
    expect(snapshot(out)).toEqual(before);

    // an interrupted run (one checkpoint, no model) is protected too
    const out2 = makeTempDir();
    const b = await fitRun({ maxSteps: 10, outputDir: out2 }, { abortAt: 2 });
    await expect(fitRun({ maxSteps: 3, outputDir: out2 })).rejects.toThrow(
      `${out2} already holds 1 checkpoint (checkpoint-2) of run ${b.result.runId}: use resume to continue that run, overwrite to replace it, or another outputDir`,
    );
    await expect(fitRun({ maxSteps: 3, outputDir: out2, resume: true, overwrite: true })).rejects.toThrow(
      'overwrite and resume exclude each other: continue the run, or replace it',
    );
  });

  it('an outputDir holding other files and no run is refused, naming a few, and left untouched; overwrite keeps the files a run does not write', async () => {
    const user = makeTempDir();
    for (const f of ['config.json', 'tokenizer.json', 'notes.txt']) writeFileSync(join(user, f), `my ${f}`);
    const before = snapshot(user);
    await expect(fitRun({ maxSteps: 2, outputDir: user })).rejects.toThrow(
      `${user}: it is not empty and holds no training run (config.json, notes.txt, tokenizer.json): ` +
        'use overwrite to train into it anyway (the files a run writes are replaced, the others kept), or a new or empty outputDir',
    );
    expect(snapshot(user)).toEqual(before);
    // sharded or PyTorch weights: a run would write model.safetensors beside them, which the loader prefers
    const sharded = makeTempDir();
    for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'config.json']) {
      writeFileSync(join(sharded, f), '{}');
    }
    await expect(fitRun({ maxSteps: 2, outputDir: sharded })).rejects.toThrow(
      `${sharded}: it is not empty and holds no training run (config.json, model-00001-of-00002.safetensors, model-00002-of-00002.safetensors and 1 more): `,
    );
    const bin = makeTempDir();
    writeFileSync(join(bin, 'pytorch_model.bin'), 'x');
    await expect(fitRun({ maxSteps: 2, outputDir: bin })).rejects.toThrow(`${bin}: it is not empty and holds no training run (pytorch_model.bin): `);
    expect(readdirSync(bin)).toEqual(['pytorch_model.bin']);

    const r = await fitRun({ maxSteps: 2, outputDir: user, overwrite: true });
    expect(r.result.modelDir).toBe(user);
    expect(readFileSync(join(user, 'notes.txt'), 'utf8')).toBe('my notes.txt');
    expect(readFileSync(join(user, 'tokenizer.json'))).toEqual(readFileSync(join(modelDir, 'tokenizer.json')));
    // a run killed while writing its record left only the record's temp file: the folder is still free
    const killed = makeTempDir();
    writeFileSync(join(killed, '.training_run.json.tmp-99999-abc'), '{');
    expect((await fitRun({ maxSteps: 1, outputDir: killed })).result.modelDir).toBe(killed);
  });

  it('overwrite starts a new run: the old run’s checkpoints go as the new one saves its own, its model when the new one is written', async () => {
    const out = makeTempDir();
    const a = await fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2 });
    const b = await fitRun({ maxSteps: 3, outputDir: out, saveSteps: 1, overwrite: true }, { keep: true });
    expect(b.result.runId).not.toBe(a.result.runId);
    expect(b.notices).toContain('removed 3 checkpoints of the replaced run (checkpoint-2, checkpoint-4, checkpoint-6)');
    expect(listRunCheckpoints(out).map((c) => [c.step, c.runId])).toEqual([1, 2, 3].map((s) => [s, b.result.runId]));
    expect(readRunRecord(out)).toMatchObject({ runId: b.result.runId, finalModelStep: 3 });
    const saved = await EmbeddingModel.load(out);
    for (const p of saved.native.params()) expect(saved.native.getTensor(p.name), p.name).toEqual(b.model.native.getTensor(p.name));
    saved.dispose();
    b.model.dispose();
  });

  it('an overwrite run that fails before its first checkpoint leaves the folder to the run it would have replaced, which resumes', async () => {
    const out = makeTempDir();
    const a = await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 2 });
    await expect(fitRun({ maxSteps: 50, outputDir: out, saveSteps: 10, overwrite: true, lr: 1e10 })).rejects.toThrow(/training diverged at step \d+/);
    expect(readRunRecord(out)).toMatchObject({ runId: a.result.runId, finalModelStep: 4 });
    const c = await fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2, resume: true });
    expect(c.result).toMatchObject({ runId: a.result.runId, startStep: 4, step: 6, stoppedBy: 'maxSteps' });
    expect(listRunCheckpoints(out).map((x) => [x.step, x.runId])).toEqual([2, 4, 6].map((st) => [st, a.result.runId]));
  });

  it("another tool's checkpoint-<step> folder is never replaced: a run that could save under its name is refused, overwrite or resume", async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 2, outputDir: out, saveSteps: 2 });
    const theirs = join(out, 'checkpoint-4');
    mkdirSync(theirs);
    writeFileSync(join(theirs, 'trainer_state.json'), '{"global_step": 4}\n');
    writeFileSync(join(theirs, 'pytorch_model.bin'), 'theirs');
    const said =
      `${out} holds 1 checkpoint folder that this trainer did not write (checkpoint-4): a run there saves its checkpoints under ` +
      "such names, and another tool's are never replaced; move it away or use another outputDir";
    for (const more of [{ overwrite: true }, { resume: true }] as const) {
      await expect(fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2, ...more })).rejects.toThrow(said);
    }
    expect(readFileSync(join(theirs, 'pytorch_model.bin'), 'utf8')).toBe('theirs');
    expect(listRunCheckpoints(out).map((c) => c.step)).toEqual([2, 4]);
  });

  // a model of another shape read the checkpoint's moments as damage: "move checkpoint-2 out", which
  // could not help
  it('resuming with a model of another shape is refused before anything is loaded, naming the fields', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 2, outputDir: out, saveSteps: 2 });
    const other = join(makeTempDir(), 'narrow');
    writeTinyModel(other, { hidden: 32, layers: 1, dense: 16, seed: 2 });
    const model = await EmbeddingModel.load(other);
    try {
      await expect(new Trainer(model, { ...base, maxSteps: 4, outputDir: out, saveSteps: 2, resume: true }).fit(dataFile, quietFit)).rejects.toThrow(
        new Error(
          `cannot resume from ${join(out, 'checkpoint-2')}: it is a checkpoint of a model of another shape: num_hidden_layers 2 (the model: 1); ` +
            'resume with the model the run was started from',
        ),
      );
    } finally {
      model.dispose();
    }
  });

  // a plain file of that name was renamed aside and deleted by the save of that step (the check above
  // looked at folders only)
  it('a file of yours named checkpoint-<step> is never replaced: a run there is refused, overwrite or resume', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 2, outputDir: out, saveSteps: 2 });
    writeFileSync(join(out, 'checkpoint-4'), 'my notes\n');
    symlinkSync('/nonexistent', join(out, 'checkpoint-6'));
    const said =
      `${out} holds 2 files named as a checkpoint (checkpoint-4, checkpoint-6): a run there saves its checkpoints under ` +
      'such names, and a file of yours is never replaced; move them away or use another outputDir';
    for (const more of [{ overwrite: true }, { resume: true }] as const) {
      await expect(fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2, ...more })).rejects.toThrow(said);
    }
    expect(readFileSync(join(out, 'checkpoint-4'), 'utf8')).toBe('my notes\n');
    expect(lstatSync(join(out, 'checkpoint-6')).isSymbolicLink()).toBe(true);
  });

  it('dispose() during fit frees the model once the run has ended, as during encode; the run finishes and saves', async () => {
    const out = makeTempDir();
    const model = await EmbeddingModel.load(modelDir);
    const result = await new Trainer(model, { ...base, maxSteps: 4, outputDir: out, saveSteps: 2 }).fit(dataFile, {
      onNotice: () => {},
      onStep: (s) => {
        if (s.step === 2) model.dispose();
      },
    });
    expect(result).toMatchObject({ step: 4, stoppedBy: 'maxSteps', modelDir: out });
    expect(listRunCheckpoints(out).map((c) => c.step)).toEqual([2, 4]);
    expect(model.disposed).toBe(true);
    await expect(model.encode(['a'])).rejects.toThrow('this EmbeddingModel has been disposed');
    expect(() => model.native).toThrow('this EmbeddingModel has been disposed');
    await expect(new Trainer(model, { ...base, maxSteps: 1 }).fit(dataFile)).rejects.toThrow('this EmbeddingModel has been disposed');
  });

  it('resume takes the newest checkpoint of the run that owns the folder, not a higher step of another run, and says which', async () => {
    const straight = await fitRun({ maxSteps: 5 });
    const outA = makeTempDir();
    await fitRun({ maxSteps: 6, outputDir: outA, saveSteps: 2 });
    const outB = makeTempDir();
    const b = await fitRun({ maxSteps: 100, outputDir: outB, saveSteps: 1 }, { abortAt: 3 });
    cpSync(join(outA, 'checkpoint-6'), join(outB, 'checkpoint-6'), { recursive: true }); // another run's, further on
    const c = await fitRun({ maxSteps: 5, outputDir: outB, resume: true, saveSteps: 1 });
    expect(c.notices).toContain(`ignoring 1 checkpoint of other runs in ${outB} (checkpoint-6)`);
    expect(c.notices).toContain(`resuming run ${b.result.runId} from ${join(outB, 'checkpoint-3')}: step 3, epoch 1, 12 groups into it`);
    expect(c.steps.map((s) => s.step)).toEqual([4, 5]);
    expect(c.result).toMatchObject({ runId: b.result.runId, startStep: 3, step: 5, stoppedBy: 'maxSteps' });
    expect([...b.steps, ...c.steps].map((s) => s.loss)).toEqual(straight.steps.map((s) => s.loss));
    // the other run's checkpoint is neither resumed from nor pruned
    expect(existsSync(join(outB, 'checkpoint-6', 'trainer_state.json'))).toBe(true);
  });

  it('a fit aborted before its first step leaves no folder it made; a folder that was there stays', async () => {
    const parent = makeTempDir();
    const model = await EmbeddingModel.load(modelDir);
    try {
      const existing = makeTempDir();
      for (const out of [join(parent, 'new', 'run'), existing]) {
        const r = await new Trainer(model, { ...base, maxSteps: 3, outputDir: out }).fit(dataFile, { ...quietFit, signal: AbortSignal.abort() });
        expect(r).toMatchObject({ stoppedBy: 'aborted', step: 0, modelDir: null });
      }
      expect(readdirSync(parent)).toEqual(['new']); // the run's folder went; the folders above it stay
      expect(readdirSync(join(parent, 'new'))).toEqual([]);
      expect(readdirSync(existing)).toEqual([]); // the user's empty folder stays
    } finally {
      model.dispose();
    }
  });

  it('a fit stopped while its async data source waits forever ends, saving the last step done', async () => {
    const rows = readFileSync(dataFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    const out = join(makeTempDir(), 'run');
    const controller = new AbortController();
    const model = await EmbeddingModel.load(modelDir);
    let returned = false;
    // 13 rows, then a wait that never ends: steps 1–3 (batches of 4) train, step 4's batch never fills
    const source = {
      [Symbol.asyncIterator]: (): AsyncIterator<unknown> => {
        let i = 0;
        return {
          next: () => {
            if (i < 13) return Promise.resolve({ value: rows[i++], done: false });
            setTimeout(() => controller.abort(), 20);
            return new Promise<IteratorResult<unknown>>(() => {});
          },
          return: () => {
            returned = true;
            return Promise.resolve({ value: undefined, done: true });
          },
        };
      },
    };
    try {
      const r = await new Trainer(model, { ...base, shuffleBuffer: 1, maxSteps: 10, outputDir: out, saveSteps: 100 }).fit(source, { ...quietFit, signal: controller.signal });
      expect(r).toMatchObject({ stoppedBy: 'aborted', step: 3, modelDir: null, checkpoint: join(out, 'checkpoint-3') });
      expect(readTrainerState(join(out, 'checkpoint-3'))).toMatchObject({ globalStep: 3 });
      expect(listCheckpoints(out).map((c) => c.step)).toEqual([3]);
      expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
      // the reader's own generator is still waiting on the source, so the source's return() waits behind it
      expect(returned).toBe(false);
    } finally {
      model.dispose();
    }
  });

  it('resume refuses when a checkpoint\'s trainer_state.json cannot be read, naming it, and writes nothing', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2 }, { abortAt: 6 });
    const state = join(out, 'checkpoint-6', 'trainer_state.json');
    const whole = readFileSync(state, 'utf8');
    // damaged since it was written: cut short, or empty (what a crash leaves; it was taken for another
    // tool's checkpoint: "ignoring 1 checkpoint of other runs", then a refusal of it as not ours)
    for (const damaged of [whole.slice(0, 300), '']) {
      writeFileSync(state, damaged);
      const before = snapshot(out);
      const model = await EmbeddingModel.load(modelDir);
      const notices: string[] = [];
      try {
        const err = await new Trainer(model, { ...base, maxSteps: 8, outputDir: out, resume: true })
          .fit(dataFile, { onNotice: (m) => notices.push(m) })
          .then(() => null, (e: unknown) => e as Error);
        expect(err?.message).toMatch(
          new RegExp(`^resume: ${escape(state)}: cannot read trainer state \\(.+\\): the checkpoint is damaged; move checkpoint-6 out of ${escape(out)} to resume from the newest of the others$`),
        );
        expect(notices).toEqual([]);
      } finally {
        model.dispose();
      }
      expect(snapshot(out)).toEqual(before);
    }
  });

  it("a checkpoint's unparsable state is damage when it names our format, else another tool's (Hugging Face's Trainer writes NaN)", () => {
    const out = makeTempDir();
    mkdirSync(join(out, 'checkpoint-2'));
    writeFileSync(join(out, 'checkpoint-2', 'trainer_state.json'), '{"global_step": 2, "log_history": [{"grad_norm": NaN}]}');
    mkdirSync(join(out, 'checkpoint-4'));
    writeFileSync(join(out, 'checkpoint-4', 'trainer_state.json'), '{"format": "llama2-embedding-trainer-state", "version": 1, "globalSt');
    const [hf, ours] = listRunCheckpoints(out);
    expect(hf).toMatchObject({ step: 2, ours: false, unreadable: null });
    expect(ours).toMatchObject({ step: 4, ours: false });
    expect(ours!.unreadable).toMatch(/checkpoint-4\/trainer_state\.json: cannot read trainer state \(/);
  });

  it('resume refuses a trainer_state.json whose step or position is not a whole count, or not its folder\'s step', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 2 }, { abortAt: 4 });
    const file = join(out, 'checkpoint-4', 'trainer_state.json');
    const good = readFileSync(file, 'utf8');
    const cases: [(s: { globalStep: number; data: { position: { epoch: number; groups: number } } }) => void, string][] = [
      [(s) => (s.globalStep = 4.5), 'globalStep must be a whole number ≥ 1, got 4.5'],
      [(s) => (s.globalStep = 6), 'globalStep 6 is not the step its folder is named for (4)'],
      [(s) => (s.data.position.groups = -5), 'data.position.groups must be a whole number ≥ 0, got -5'],
      [(s) => (s.data.position.epoch = -1), 'data.position.epoch must be a whole number ≥ 0, got -1'],
    ];
    for (const [edit, why] of cases) {
      const state = JSON.parse(good);
      edit(state);
      writeFileSync(file, JSON.stringify(state));
      const before = snapshot(out);
      const model = await EmbeddingModel.load(modelDir);
      try {
        await expect(new Trainer(model, { ...base, maxSteps: 8, outputDir: out, resume: true }).fit(dataFile, { onNotice: () => {} })).rejects.toThrow(
          `${join(out, 'checkpoint-4')}/trainer_state.json: ${why}`,
        );
      } finally {
        model.dispose();
      }
      expect(snapshot(out)).toEqual(before);
    }
  });

  it('resume with the checkpoint at or past maxSteps: nothing to do, and nothing is written', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2 });
    const before = snapshot(out);
    const past = await fitRun({ maxSteps: 4, outputDir: out, resume: true });
    expect(past.steps).toEqual([]);
    expect(past.result).toMatchObject({ stoppedBy: 'alreadyDone', step: 6, startStep: 6, modelDir: null, seconds: 0 });
    expect(past.notices.at(-1)).toBe(
      `nothing to do: ${join(out, 'checkpoint-6')} is at step 6, past maxSteps 4; nothing was written (raise maxSteps to train further)`,
    );
    const same = await fitRun({ maxSteps: 6, outputDir: out, resume: true });
    expect(same.result.stoppedBy).toBe('alreadyDone');
    expect(same.notices.at(-1)).toBe(`nothing to do: ${join(out, 'checkpoint-6')} has reached maxSteps 6 and its final model is in ${out}; nothing was written`);
    expect(snapshot(out)).toEqual(before);
  });

  it('a resume of a run done past its newest checkpoint (saveSteps 0) has nothing to do; one stopped before its first step cuts no log line', async () => {
    const out = makeTempDir();
    const log = join(makeTempDir(), 'log.jsonl');
    const opts = { maxSteps: 6, outputDir: out, saveSteps: 0, logFile: log };
    const first = await fitRun(opts, { abortAt: 2 }); // its stop saves checkpoint-2; saveSteps 0 saves no other
    expect((await fitRun({ ...opts, resume: true })).result.step).toBe(6);
    expect(readRunRecord(out)).toMatchObject({ runId: first.result.runId, finalModelStep: 6, finalModelEpochs: 0 });
    const before = snapshot(out);
    const lines = readFileSync(log, 'utf8');
    expect(lines.trim().split('\n')).toHaveLength(6);
    // it trained steps 3-6 again, cutting their log lines first (a stop then left the step-6 model, its lines gone)
    const again = await fitRun({ ...opts, resume: true });
    expect(again.steps).toEqual([]);
    expect(again.result).toMatchObject({ stoppedBy: 'alreadyDone', step: 2 });
    expect(again.notices.at(-1)).toBe(
      `nothing to do: ${out} holds the run's final model, of step 6, which reached maxSteps 6; nothing was written ` +
        `(its newest checkpoint, ${join(out, 'checkpoint-2')}, is older: no checkpoint was saved at the run's end)`,
    );
    // more steps (a constant schedule may take them) train from the checkpoint; stopped before the first, nothing is cut
    const more = await fitRun({ ...opts, maxSteps: 8, resume: true }, { abortAt: 0 });
    expect(more.steps).toEqual([]);
    expect(readFileSync(log, 'utf8')).toBe(lines);
    expect(snapshot(out)).toEqual(before);
  });

  it('resume with nothing to do after a run killed past its final model: its lock and checkpoint temp folder are removed, nothing else', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 2 });
    const before = snapshot(out);
    const dead = spawnSync('true').pid!; // exited: what it left is stale
    writeFileSync(join(out, TRAIN_LOCK), `${dead} ${hostname()}\n`);
    mkdirSync(join(out, `.checkpoint-4.tmp-${dead}`));
    const again = await fitRun({ maxSteps: 4, outputDir: out, resume: true });
    expect(again.result.stoppedBy).toBe('alreadyDone');
    expect(snapshot(out)).toEqual(before);
    // a live run's lock is another matter: refused before anything is looked at
    writeFileSync(join(out, TRAIN_LOCK), `1 ${hostname()}\n`); // process 1 is always alive
    await expect(fitRun({ maxSteps: 4, outputDir: out, resume: true })).rejects.toThrow(/is being trained into by another run \(process 1, /);
    expect(readFileSync(join(out, TRAIN_LOCK), 'utf8')).toBe(`1 ${hostname()}\n`);
  });

  it('resume of a run by epochs whose last step was a checkpoint: nothing to do, nothing read or written; with more epochs it goes on as one run', async () => {
    const out = makeTempDir();
    const first = await fitRun({ epochs: 1, outputDir: out, saveSteps: 5 }); // 40 rows, batches of 4: steps 5 and 10 saved
    expect(first.result.step).toBe(10);
    const before = snapshot(out);
    const again = await fitRun({ epochs: 1, outputDir: out, saveSteps: 5, resume: true });
    expect(again.result).toMatchObject({ stoppedBy: 'alreadyDone', step: 10 });
    expect(again.notices.at(-1)).toBe(`nothing to do: ${join(out, 'checkpoint-10')} has reached epochs 1 and its final model is in ${out}; nothing was written`);
    expect(snapshot(out)).toEqual(before);
    // a second epoch from that checkpoint is the second epoch of a run of two
    const straight = await fitRun({ epochs: 2 });
    const more = await fitRun({ epochs: 2, outputDir: out, saveSteps: 5, resume: true });
    expect(more.notices).toContain(`resuming run ${first.result.runId} from ${join(out, 'checkpoint-10')}: step 10, epoch 2, 0 groups into it`);
    expect([...first.steps, ...more.steps].map((x) => x.loss)).toEqual(straight.steps.map((x) => x.loss));
  });

  it('resume by epochs from a checkpoint in the epoch after the last: nothing to do (it wrote a part-epoch model over the finished one)', async () => {
    const out = makeTempDir();
    await fitRun({ epochs: 1, outputDir: out, saveSteps: 100 }); // 10 steps, the final model at step 10
    await fitRun({ epochs: 2, outputDir: out, saveSteps: 100, resume: true }, { abortAt: 13 }); // checkpoint-13, 3 steps into epoch 2
    const before = snapshot(out);
    const back = await fitRun({ epochs: 1, outputDir: out, saveSteps: 100, resume: true });
    expect(back.result).toMatchObject({ stoppedBy: 'alreadyDone', step: 13 });
    expect(back.notices.at(-1)).toBe(
      `nothing to do: ${join(out, 'checkpoint-13')} is 12 groups into epoch 2, past epochs 1; nothing was written (raise epochs to train further)`,
    );
    expect(snapshot(out)).toEqual(before);
    expect(readRunRecord(out)?.finalModelStep).toBe(10);
  });

  it("resume from an earlier checkpoint into the run's own folder, past which the run went on, is refused (the limit pruned the new checkpoints)", async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 6, outputDir: out, saveSteps: 2, saveTotalLimit: 0 });
    const before = snapshot(out);
    const cannot = `cannot continue from ${join(out, 'checkpoint-2')} into ${out}: the run went on past step 2 there`;
    await expect(fitRun({ maxSteps: 3, outputDir: out, saveSteps: 1, saveTotalLimit: 2, resume: join(out, 'checkpoint-2') })).rejects.toThrow(
      `${cannot} (checkpoint-4, checkpoint-6), and continuing from an earlier step would mix the two: ` +
        `continue into a new or empty outputDir, or move those out of ${out} first`,
    );
    expect(snapshot(out)).toEqual(before);
    // into a new folder it is a fork; the newest checkpoint into its own folder is a plain resume
    const fork = makeTempDir();
    expect((await fitRun({ maxSteps: 3, outputDir: fork, saveSteps: 1, resume: join(out, 'checkpoint-2') })).result.step).toBe(3);
    expect((await fitRun({ maxSteps: 7, outputDir: out, saveSteps: 100, resume: join(out, 'checkpoint-6') })).result.step).toBe(7);
  });

  it('interrupted right at the last step: resume trains nothing and writes the final model from the checkpoint', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 4, outputDir: out }, { abortAt: 4 });
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    const r = await fitRun({ maxSteps: 4, outputDir: out, resume: true });
    expect(r.steps).toEqual([]);
    expect(r.result).toMatchObject({ stoppedBy: 'maxSteps', step: 4, startStep: 4, modelDir: out });
    expect(readFileSync(join(out, 'model.safetensors'))).toEqual(readFileSync(join(out, 'checkpoint-4', 'model.safetensors')));
    expect(readRunRecord(out)?.finalModelStep).toBe(4);
  });

  it("a kill while pruning after the last checkpoint: the resume that writes only the final model removes the dead run's leftovers", async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 1 }, { abortAt: 4 });
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process
    const leftovers = [`.checkpoint-1.del-${dead}`, `.checkpoint-5.tmp-${dead}`];
    for (const name of leftovers) {
      mkdirSync(join(out, name));
      writeFileSync(join(out, name, 'model.safetensors'), 'x');
    }
    const r = await fitRun({ maxSteps: 4, outputDir: out, saveSteps: 1, resume: true });
    expect(r.steps).toEqual([]);
    expect(r.result).toMatchObject({ stoppedBy: 'maxSteps', step: 4, modelDir: out });
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('resuming with other settings or data is refused, naming each difference; allowChangedConfig continues with the new ones', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 2, outputDir: out, saveSteps: 2 });
    const ckpt = join(out, 'checkpoint-2');
    const before = snapshot(out);
    await expect(fitRun({ maxSteps: 4, outputDir: out, resume: true, batchSize: 8, lr: 2e-3, seed: 7 })).rejects.toThrow(
      `cannot resume from ${ckpt}: it was trained with other settings: batchSize 4 (now 8), lr 0.001 (now 0.002), seed 1 (now 7); ` +
        'resume with the same values, or use allowChangedConfig to continue with the new ones',
    );
    const other = join(makeTempDir(), 'other.jsonl');
    writeFileSync(other, readFileSync(dataFile, 'utf8').split('\n').slice(1).join('\n'));
    await expect(fitRun({ maxSteps: 4, outputDir: out, resume: true, groupSize: 2 }, { data: other })).rejects.toThrow(
      `cannot resume from ${ckpt}: it was trained with other settings: groupSize 3 (now 2), data ${resolve(dataFile)} (now ${resolve(other)}, other content); ` +
        'resume with the same values, or use allowChangedConfig to continue with the new ones',
    );
    // a shuffle buffer of 0 (the CLI's --no-shuffle) is said as no shuffle, not as a size nobody typed
    await expect(fitRun({ maxSteps: 4, outputDir: out, resume: true, shuffleBuffer: 0 })).rejects.toThrow(
      `cannot resume from ${ckpt}: it was trained with other settings: shuffleBuffer 16 (now 0, no shuffle); ` +
        'resume with the same values, or use allowChangedConfig to continue with the new ones',
    );
    expect(snapshot(out)).toEqual(before);
    // settings that do not change what is computed (or are what resuming changes) are not differences
    const ok = await fitRun({ maxSteps: 4, outputDir: out, resume: true, lr: 2e-3, allowChangedConfig: true, chunkTokens: 64, saveSteps: 1 });
    expect(ok.notices).toContain('continuing with changed settings: lr 0.001 (now 0.002)');
    expect(ok.steps.map((s) => [s.step, s.lr])).toEqual([
      [3, 2e-3],
      [4, 2e-3],
    ]);
  });

  it('allowChangedConfig with other data reads the new data from its beginning, keeping the step count, and says so', async () => {
    const out = makeTempDir();
    const a = await fitRun({ maxSteps: 2, outputDir: out, saveSteps: 2 });
    const ckpt = join(out, 'checkpoint-2');
    // 5 rows: fewer than the 8 groups the checkpoint had read ("cannot resume at group 8 of epoch 1")
    const short = join(makeTempDir(), 'short.jsonl');
    writeFileSync(short, readFileSync(dataFile, 'utf8').split('\n').slice(0, 5).join('\n') + '\n');
    const r = await fitRun({ maxSteps: 4, outputDir: out, resume: true, allowChangedConfig: true }, { data: short });
    expect(r.notices).toContain(
      'the data changed: epoch 1 reads it from its beginning (the checkpoint was 8 groups into the old data); step 2 and the optimizer state carry on',
    );
    expect(r.notices).toContain(`resuming run ${a.result.runId} from ${ckpt}: step 2, epoch 1, 0 groups into it`);
    expect(r.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(r.result).toMatchObject({ runId: a.result.runId, startStep: 2, step: 4, stoppedBy: 'maxSteps' });
  });

  it('a checkpoint records its run: id, start, the data file (path, size, sha256), the options and its mean loss', async () => {
    const out = makeTempDir();
    const r = await fitRun({ maxSteps: 5, outputDir: out, saveSteps: 3 });
    const state = readTrainerState(join(out, 'checkpoint-3'));
    expect(state['run']).toEqual({
      id: r.result.runId,
      startedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      data: { source: resolve(dataFile), bytes: statSync(dataFile).size, sha256: createHash('sha256').update(readFileSync(dataFile)).digest('hex') },
    });
    expect(r.result.runId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(state['options']).toMatchObject({ batchSize: 4, lr: 1e-3, seed: 1, groupSize: 3 });
    const mean = (a: StepInfo[]): number => a.reduce((x, s) => x + s.loss, 0) / a.length;
    expect(state['meanLoss']).toBe(mean(r.steps.slice(0, 3)));
    expect(state['lossSteps']).toBe(3);
    expect(readTrainerState(join(out, 'checkpoint-5'))['meanLoss']).toBe(mean(r.steps.slice(3, 5)));
  });

  it('saveTotalLimit defaults to 3: the newest 3 checkpoints of the run plus its best are kept, and each one’s size is said', async () => {
    const out = makeTempDir();
    const r = await fitRun({ maxSteps: 8, outputDir: out, saveSteps: 1 });
    // saveSteps 1: each checkpoint's mean loss is its step's loss; the best is the lowest (the newer on a tie)
    let best = r.steps[0]!;
    for (const s of r.steps) if (s.loss <= best.loss) best = s;
    const expected = [...new Set([6, 7, 8, best.step])].sort((x, y) => x - y);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual(expected);
    for (const c of listCheckpoints(out)) {
      expect(r.notices).toContain(`step ${c.step}: checkpoint saved to ${c.dir} (${formatBytes(folderBytes(c.dir))})`);
    }
    expect(new Trainer(r.model, {}).options.saveTotalLimit).toBe(3);
  });

  it('a run resumed from a checkpoint folder keeps saving after pruning removes that folder (its tokenizer is read at the start)', async () => {
    const out = makeTempDir();
    await fitRun({ maxSteps: 3, outputDir: out, saveSteps: 1 });
    // as `l2e train --resume` without --model: the model (and its tokenizer) come from the checkpoint
    const from = listCheckpoints(out).at(-1)!;
    const model = await EmbeddingModel.load(from.dir);
    try {
      const notices: string[] = [];
      const result = await new Trainer(model, { ...base, maxSteps: 9, outputDir: out, saveSteps: 1, resume: true }).fit(dataFile, {
        onNotice: (m) => notices.push(m),
      });
      expect(result.step).toBe(9);
      expect(existsSync(from.dir)).toBe(false); // pruned while the run went on
      for (const c of listCheckpoints(out)) expect(readFileSync(join(c.dir, 'tokenizer.json'))).toEqual(readFileSync(join(modelDir, 'tokenizer.json')));
      expect(readFileSync(join(out, 'tokenizer.json'))).toEqual(readFileSync(join(modelDir, 'tokenizer.json')));
    } finally {
      model.dispose();
    }
  });

  it.skipIf(process.getuid?.() === 0)('an unreadable data file is named with the reason (a bare EACCES before; skipped as root, who reads it)', async () => {
    const file = join(makeTempDir(), 'locked.jsonl');
    writeFileSync(file, '{}\n');
    chmodSync(file, 0);
    await expect(dataIdentity(file)).rejects.toThrow(`${file}: could not read: EACCES: permission denied`);
  });

  it('the data fingerprint: a small file’s sha256; a large file’s sampled blocks and size', async () => {
    const dir = makeTempDir();
    const big = join(dir, 'big.jsonl');
    const bytes = Buffer.alloc(3_000_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = 97 + (i % 26);
    writeFileSync(big, bytes);
    const id = await dataIdentity(big);
    expect(id).toMatchObject({ source: big, bytes: 3_000_000 });
    cpSync(big, join(dir, 'copy.jsonl'));
    expect((await dataIdentity(join(dir, 'copy.jsonl'))).sha256).toBe(id.sha256);
    for (const at of [0, 1_400_000, 2_999_999]) {
      const changed = Buffer.from(bytes);
      changed[at] = 10;
      writeFileSync(big, changed);
      expect((await dataIdentity(big)).sha256, `byte ${at}`).not.toBe(id.sha256);
    }
    expect(await dataIdentity(join(dir, 'missing.jsonl'))).toEqual({ source: join(dir, 'missing.jsonl'), bytes: null, sha256: null });
  });

  it('checkpointsToKeep: the newest N plus the best by mean loss; 0 keeps all; unknown losses are never best', () => {
    const cs = [
      { step: 10, meanLoss: 0.9 },
      { step: 20, meanLoss: 0.2 },
      { step: 30, meanLoss: 0.5 },
      { step: 40, meanLoss: null },
      { step: 50, meanLoss: 0.4 },
    ];
    expect([...checkpointsToKeep(cs, 2)].sort((a, b) => a - b)).toEqual([20, 40, 50]);
    expect([...checkpointsToKeep(cs, 4)].sort((a, b) => a - b)).toEqual([20, 30, 40, 50]);
    expect([...checkpointsToKeep(cs, 0)].sort((a, b) => a - b)).toEqual([10, 20, 30, 40, 50]);
    expect([...checkpointsToKeep([{ step: 1, meanLoss: 0.3 }, { step: 2, meanLoss: 0.3 }, { step: 3, meanLoss: 0.5 }], 1)]).toEqual([3, 2]);
  });

  it('option errors name the option as the caller knows it (the key here, a flag for the CLI)', async () => {
    const model = await EmbeddingModel.load(modelDir);
    try {
      let err: unknown = null;
      try {
        new Trainer(model, { batchSize: 0 });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TrainerOptionError);
      expect((err as TrainerOptionError).option).toBe('batchSize');
      expect((err as Error).message).toBe('batchSize must be an integer ≥ 1, got 0');
      expect(() => new Trainer(model, { lr: -1 }, { optionName: (o) => `<${o}>` })).toThrow('<lr> must be a non-negative number, got -1');
      // plain-JS callers: the type said, a typo named, not ignored
      const plain = (o: object): Trainer => new Trainer(model, o as TrainerOptions);
      expect(() => plain({ lr: '2e-5' })).toThrow('lr must be a non-negative number, got the string "2e-5"');
      expect(() => plain({ maxSteps: '3' })).toThrow('maxSteps must be an integer ≥ 0, got the string "3"');
      expect(() => plain({ outputDir: 5 })).toThrow('outputDir must be a string, got 5');
      expect(() => plain({ overwrite: 'yes' })).toThrow('overwrite must be a boolean, got the string "yes"');
      expect(() => plain({ batchsize: 4 })).toThrow('unknown option batchsize (did you mean batchSize?)');
      expect(() => plain({ resume: 1 })).toThrow('resume must be true, false or a checkpoint folder, got 1');
      expect(() => new Trainer(model, 'fast' as unknown as TrainerOptions)).toThrow(new TypeError('Trainer: options must be an object, got the string "fast"'));
      await expect(new Trainer(model, base).fit(5 as unknown as string)).rejects.toThrow(
        new TypeError('fit: data must be a JSONL file, an array or iterable of rows, or a function giving one, got 5'),
      );
    } finally {
      model.dispose();
    }
  });
});
