// Pruning old checkpoints never leaves a half-removed checkpoint-N folder that a later run (or a
// reader) would take for a checkpoint: a kill in the middle of the removal is simulated by an rmSync
// that deletes one file of the folder and then fails. The folder is renamed out of the checkpoint
// names first (.checkpoint-N.del-PID); the next run in the folder removes such leftovers of a dead run.
import { describe, expect, it, vi } from 'vitest';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointFolders, pruneCheckpoints, removeStaleCheckpointTemps, STATE_FORMAT } from '../src/train/checkpoint.js';
import { makeTempDir } from './helpers/tinyModel.js';

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return { ...fs, rmSync: vi.fn(fs.rmSync) };
});


/** A checkpoint folder of run `runId` (our format), or of another tool (runId null: a state without ours). */
function fakeCheckpoint(out: string, step: number, runId: string | null): string {
  const dir = join(out, `checkpoint-${step}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{}\n');
  writeFileSync(join(dir, 'model.safetensors'), 'x');
  const state = runId === null ? { global_step: step, log_history: [] } : { format: STATE_FORMAT, step, run: { id: runId } };
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify(state) + '\n');
  return dir;
}

describe('pruneCheckpoints under a kill', () => {
  it('a removal cut short leaves no checkpoint-N folder without its files', async () => {
    const out = makeTempDir('l2e-prune-');
    for (const step of [1, 2, 3, 4]) fakeCheckpoint(out, step, 'run-a');
    const real = (await vi.importActual<typeof import('node:fs')>('node:fs')).rmSync;
    // the "kill": the first removal of a folder deletes its config.json, then stops
    vi.mocked(rmSync).mockImplementation((path, opts) => {
      const p = String(path);
      if (existsSync(join(p, 'config.json'))) {
        real(join(p, 'config.json'));
        throw new Error('killed');
      }
      real(path, opts);
    });
    try {
      expect(() => pruneCheckpoints(out, 'run-a', 3, false)).toThrow('killed');
    } finally {
      vi.mocked(rmSync).mockReset();
      vi.mocked(rmSync).mockImplementation(real);
    }
    for (const name of checkpointFolders(out)) expect(existsSync(join(out, name, 'config.json')), `${name} is whole`).toBe(true);
    expect(checkpointFolders(out)).toEqual(['checkpoint-2', 'checkpoint-3', 'checkpoint-4']);
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([`.checkpoint-1.del-${process.pid}`]);
  });

  it("the leftovers of a dead run's removal are removed by the next run in the folder", () => {
    const out = makeTempDir('l2e-prune-');
    fakeCheckpoint(out, 5, 'run-b');
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process
    mkdirSync(join(out, `.checkpoint-1.del-${dead}`));
    writeFileSync(join(out, `.checkpoint-1.del-${dead}`, 'model.safetensors'), 'x');
    removeStaleCheckpointTemps(out);
    expect(readdirSync(out).sort()).toEqual(['checkpoint-5']);
  });

  it("a replacing run removes our other runs' checkpoints, never another tool's checkpoint-<step>", () => {
    const out = makeTempDir('l2e-prune-');
    fakeCheckpoint(out, 10, 'run-old');
    fakeCheckpoint(out, 20, null); // e.g. a Hugging Face Trainer's
    fakeCheckpoint(out, 1, 'run-new');
    const r = pruneCheckpoints(out, 'run-new', 3, true);
    expect(r.otherRuns).toEqual([join(out, 'checkpoint-10')]);
    expect(checkpointFolders(out)).toEqual(['checkpoint-1', 'checkpoint-20']);
  });
});
