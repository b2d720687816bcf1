// Real small disks (a tmpfs, mounted when the test runs as root): a disk that cannot hold a checkpoint
// and the final model is refused before training; one that fills up refuses the next checkpoint
// before writing it; and when the free space cannot be known, a write that hits ENOSPC still fails
// with a clear error and leaves the previous checkpoint intact, with no temp folder behind.
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { folderBytes, freeBytes } from '../src/util/disk.js';
import { Trainer, type TrainerOptions } from '../src/train/trainer.js';
import { StepLog } from '../src/train/step-log.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

function tryMount(dir: string, bytes: number): boolean {
  if (process.getuid?.() !== 0) return false;
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]).status === 0;
}

vi.mock('../src/util/disk.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/util/disk.js')>();
  return { ...actual, freeBytes: vi.fn(actual.freeBytes) };
});

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

describe.skipIf(!canRun)(`checkpoint on a full disk ${canRun ? '' : '(skipped: needs root to mount a tmpfs)'}`, () => {
  const mounts: string[] = [];
  afterAll(() => {
    for (const m of mounts) spawnSync('umount', [m]);
    removeTempDirs();
  });
  afterEach(async () => {
    const actual = await vi.importActual<typeof import('../src/util/disk.js')>('../src/util/disk.js');
    vi.mocked(freeBytes).mockImplementation(actual.freeBytes);
  });

  /** A tiny model, data, and the size of one checkpoint and one final model measured on a normal disk. */
  async function setup(): Promise<{ modelDir: string; data: string; opts: TrainerOptions; one: number; final: number }> {
    const root = makeTempDir();
    const modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    const data = join(root, 'data.jsonl');
    writeFileSync(data, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const opts: TrainerOptions = { batchSize: 4, groupSize: 3, lr: 1e-3, seed: 1, shuffleBuffer: 16, saveSteps: 2 };

    // size of one checkpoint, measured on a normal disk
    const probe = join(root, 'probe');
    const m0 = await EmbeddingModel.load(modelDir);
    await new Trainer(m0, { ...opts, maxSteps: 2, outputDir: probe }).fit(data, { onNotice: () => {} });
    m0.dispose();
    const one = folderBytes(join(probe, 'checkpoint-2'));
    const final = statSync(join(probe, 'model.safetensors')).size + statSync(join(probe, 'tokenizer.json')).size;
    return { modelDir, data, opts, one, final };
  }

  it('a disk too small for a checkpoint and the final model is refused before training', async (ctx) => {
    const { modelDir, data, opts, one } = await setup();
    const disk = join(makeTempDir(), 'disk');
    if (!tryMount(disk, Math.ceil(one / 4096) * 4096)) ctx.skip(); // mount not permitted here
    mounts.push(disk);
    const model = await EmbeddingModel.load(modelDir);
    const err = await new Trainer(model, { ...opts, maxSteps: 6, outputDir: disk })
      .fit(data, { onNotice: () => {} })
      .then(() => null, (e: unknown) => e);
    model.dispose();
    expect((err as Error).message).toMatch(new RegExp(`^not enough disk space for ${disk}: a checkpoint takes about .* but only .* is free there`));
    expect(readdirSync(disk)).toEqual([]);
  });

  // a run stopped at its last checkpoint before its final model: the resume asked for a checkpoint's room
  // too, and a disk freed for the model alone refused the one write left
  it('a resume with no step left needs room for the final model only', async () => {
    const { modelDir, data, opts, one, final } = await setup();
    const out = join(makeTempDir(), 'out');
    const m1 = await EmbeddingModel.load(modelDir);
    await new Trainer(m1, { ...opts, maxSteps: 2, outputDir: out }).fit(data, { onNotice: () => {} });
    m1.dispose();
    unlinkSync(join(out, 'model.safetensors'));
    vi.mocked(freeBytes).mockImplementation(() => final + 64 * 1024); // < a checkpoint and the model
    expect(final + 64 * 1024).toBeLessThan(one + final);
    const m2 = await EmbeddingModel.load(modelDir);
    try {
      const r = await new Trainer(m2, { ...opts, maxSteps: 2, outputDir: out, resume: true }).fit(data, { onNotice: () => {} });
      expect(r.step).toBe(2);
      expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
      // with a step left, both are asked for
      await expect(new Trainer(m2, { ...opts, maxSteps: 3, outputDir: out, resume: true }).fit(data, { onNotice: () => {} })).rejects.toThrow(
        new RegExp(`^not enough disk space for ${out}: a checkpoint takes about `),
      );
    } finally {
      m2.dispose();
    }
  });

  it('a disk that fills up refuses the next checkpoint before writing it', async (ctx) => {
    const { modelDir, data, opts, one, final } = await setup();
    const disk = join(makeTempDir(), 'disk');
    // room for a checkpoint, the final model and a margin, but not for a second checkpoint
    if (!tryMount(disk, Math.ceil((one + final + 256 * 1024) / 4096) * 4096)) ctx.skip();
    mounts.push(disk);
    const model = await EmbeddingModel.load(modelDir);
    const err = await new Trainer(model, { ...opts, maxSteps: 6, outputDir: disk })
      .fit(data, { onNotice: () => {} })
      .then(() => null, (e: unknown) => e);
    model.dispose();
    expect((err as Error).message).toMatch(
      new RegExp(`^could not save the checkpoint of step 4 to ${disk}/checkpoint-4: not enough disk space \\(it takes about .*, .* is free\\); the previous checkpoint ${disk}/checkpoint-2 is intact$`),
    );
    expect(readdirSync(disk).sort()).toEqual(['checkpoint-2', 'training_run.json']);
  });

  it('ENOSPC while saving (free space unknown) keeps the previous checkpoint and says so', async (ctx) => {
    const { modelDir, data, opts, one } = await setup();
    vi.mocked(freeBytes).mockReturnValue(null);
    const root = makeTempDir();

    // a disk with room for one checkpoint and a half
    const disk = join(root, 'disk');
    if (!tryMount(disk, Math.ceil((one * 1.5) / 4096) * 4096)) ctx.skip(); // mount not permitted here
    mounts.push(disk);
    const model = await EmbeddingModel.load(modelDir);
    const err = await new Trainer(model, { ...opts, maxSteps: 6, outputDir: disk })
      .fit(data, { onNotice: () => {} })
      .then(() => null, (e: unknown) => e);
    model.dispose();
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/could not save the checkpoint of step 4/);
    expect((err as Error).message).toMatch(/ENOSPC|no space/i);
    expect((err as Error).message).toMatch(/checkpoint-2 is intact/);
    expect(listCheckpoints(disk).map((c) => c.step)).toEqual([2]);
    expect(readdirSync(disk).sort()).toEqual(['checkpoint-2', 'training_run.json']); // no temp folder left behind
    const back = await EmbeddingModel.load(join(disk, 'checkpoint-2'));
    const e = await back.encode(['yang untuk']);
    expect(e.row(0).every(Number.isFinite)).toBe(true);
    back.dispose();
  });

  // a full disk mid-line left a torn line that no resume could read back (nor any JSONL reader of the log)
  it('a step line the disk cannot hold is cut back out of the log, which keeps whole lines only', async (ctx) => {
    const disk = join(makeTempDir(), 'disk');
    if (!tryMount(disk, 64 * 1024)) ctx.skip();
    mounts.push(disk);
    const log = join(disk, 'log.jsonl');
    const steps = await StepLog.open(log, (k) => k, () => {});
    let failed: unknown = null;
    try {
      for (let step = 1; step < 100; step++) steps.append({ step, pad: 'x'.repeat(3000) } as { step: number }, 'run-1');
    } catch (err) {
      failed = err;
    } finally {
      steps.close();
    }
    expect((failed as Error).message).toMatch(new RegExp(`^could not append step \\d+ to logFile ${log}: `));
    const text = readFileSync(log, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.split('\n').slice(0, -1);
    expect(lines.length).toBeGreaterThan(10);
    lines.forEach((l, i) => expect((JSON.parse(l) as { step: number }).step).toBe(i + 1));
  });
});
