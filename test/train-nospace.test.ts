// A checkpoint write that runs out of disk space (a small tmpfs, mounted when the test runs as root)
// fails with a clear error and leaves the previous checkpoint intact, with no temp folder behind.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { Trainer, type TrainerOptions } from '../src/train/trainer.js';
import { topicData } from './helpers/trainData.js';
import { makeTempDir, removeTempDirs, sharedTokenizer, writeTinyModel } from './helpers/tinyModel.js';

function tryMount(dir: string, bytes: number): boolean {
  if (process.getuid?.() !== 0) return false;
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]).status === 0;
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : statSync(p).size;
  }
  return n;
}

const canRun = existsSync(sharedTokenizer) && process.platform === 'linux' && process.getuid?.() === 0;

describe.skipIf(!canRun)(`checkpoint on a full disk ${canRun ? '' : '(skipped: needs root to mount a tmpfs and the shared tokenizer)'}`, () => {
  const mounts: string[] = [];
  afterAll(() => {
    for (const m of mounts) spawnSync('umount', [m]);
    removeTempDirs();
  });

  it('ENOSPC while saving keeps the previous checkpoint and says so', async (ctx) => {
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
    expect(readdirSync(disk)).toEqual(['checkpoint-2']); // no temp folder left behind
    const back = await EmbeddingModel.load(join(disk, 'checkpoint-2'));
    const e = await back.encode(['yang untuk']);
    expect(e.row(0).every(Number.isFinite)).toBe(true);
    back.dispose();
  });
});
