// `l2e train` end to end on a tiny model, in-process through main(argv): the JSONL log, checkpoints,
// --resume up to a new --max-steps, SIGINT / SIGTERM / SIGHUP saving a checkpoint, bad data naming file:line, --help.
import { hostname } from 'node:os';
import { TRAIN_LOCK } from '../src/train/output-lock.js';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { topicData } from './helpers/trainData.js';
import { snapshot } from './helpers/folderSnapshot.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';


/** Runs `l2e ...args` and returns the exit code with what it wrote. */
async function l2e(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function logLines(file: string): { step: number; loss: number; lr: number; gradNorm: number; tokensPerSecond: number; tokens: number }[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('l2e train', () => {
  let modelDir: string;
  let data: string;
  beforeAll(() => {
    const root = makeTempDir();
    modelDir = join(root, 'model');
    writeTinyModel(modelDir, { hidden: 32, layers: 2, dense: 16, seed: 2 });
    data = join(root, 'data.jsonl');
    writeFileSync(data, topicData(10, 40, 4).rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
  afterEach(() => vi.restoreAllMocks());

  it('trains, logs one object per step, checkpoints, and --resume continues to the new --max-steps', async () => {
    const out = join(makeTempDir(), 'run');
    const log = join(out, 'log.jsonl');
    const common = ['--data', data, '--output', out, '--batch-size', '4', '--lr', '1e-3', '--log', log, '--save-steps', '2'];
    const r = await l2e('train', '--model', modelDir, ...common, '--max-steps', '4');
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/4 steps .*model saved to/);
    let lines = logLines(log);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    for (const l of lines) {
      expect(Number.isFinite(l.loss) && l.loss > 0).toBe(true);
      expect(l.lr).toBe(1e-3);
      expect(l.gradNorm).toBeGreaterThan(0);
      expect(l.tokensPerSecond).toBeGreaterThan(0);
    }
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2, 4]);
    const m = await EmbeddingModel.load(out);
    m.dispose();

    // continue without --model: loaded from the newest checkpoint
    const r2 = await l2e('train', ...common, '--resume', '--max-steps', '6');
    expect(r2.code).toBe(0);
    expect(r2.err).toMatch(/resuming run \S+ from .*checkpoint-4: step 4/);
    lines = logLines(log);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2, 4, 6]);
  });

  it.each([
    ['SIGINT', 130, 'interrupted: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)'],
    ['SIGTERM', 143, 'SIGTERM received: finishing the current step and saving a checkpoint (SIGTERM again to quit now)'],
    ['SIGHUP', 129, 'SIGHUP received: finishing the current step and saving a checkpoint (SIGHUP again to quit now)'],
  ] as const)('%s finishes the current step, saves a checkpoint and exits %i', async (signal, status, said) => {
    const stderrListeners = process.stderr.listenerCount('error');
    const out = makeTempDir();
    const log = join(out, 'log.jsonl');
    const poll = setInterval(() => {
      if (existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 2) {
        clearInterval(poll);
        process.emit(signal);
        // a closed terminal takes stderr with it: its write error must not end the run before the checkpoint
        if (signal === 'SIGHUP') process.stderr.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' }));
      }
    }, 1);
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '4', '--max-steps', '100000', '--log', log, '--save-steps', '0');
    clearInterval(poll);
    expect(r.code).toBe(status);
    const steps = logLines(log).map((l) => l.step);
    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(r.err).toContain(`l2e train: ${said}\n`);
    expect(r.err).toMatch(/continue with --resume/);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([steps.at(-1)]);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) expect(process.listenerCount(s)).toBe(0);
    expect(process.stderr.listenerCount('error')).toBe(stderrListeners);
  });

  it('a stop before the steps begin says nothing will be saved (it promised a checkpoint)', async () => {
    const out = makeTempDir();
    const poll = setInterval(() => {
      if (process.listenerCount('SIGINT') === 0) return; // the handler is set once the model is loaded
      clearInterval(poll);
      process.emit('SIGINT');
    }, 1);
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '4', '--max-steps', '100000');
    clearInterval(poll);
    expect(r.code).toBe(130);
    expect(r.err).toContain('l2e train: interrupted: stopping before the first step (nothing to save) (Ctrl-C again to quit now)\n');
    expect(listCheckpoints(out)).toEqual([]);
  });

  it('bad data names file:line; --skip-bad-lines continues; bad options are usage errors', async () => {
    const bad = join(makeTempDir(), 'bad.jsonl');
    writeFileSync(bad, readFileSync(data, 'utf8').split('\n').slice(0, 8).join('\n') + '\n{"query": "x", "pos": "oops", "neg": []}\n');
    const out = makeTempDir();
    const r = await l2e('train', '--model', modelDir, '--data', bad, '--output', out, '--batch-size', '4', '--max-steps', '3');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.jsonl:9: "pos" must be an array of strings/);
    const ok = await l2e('train', '--model', modelDir, '--data', bad, '--output', out, '--batch-size', '4', '--max-steps', '3', '--skip-bad-lines', '--no-shuffle');
    expect(ok.code).toBe(0);
    expect(ok.err).toMatch(/skipped 1 malformed/);
    const u = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--schedule', 'exp');
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/unknown lr schedule "exp"/);
  });

  it('divergence names the flags to change, not the library\'s options, nor a model to load again', async () => {
    const out = join(makeTempDir(), 'run');
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '4', '--lr', '1e10', '--max-steps', '10');
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n').at(-1)).toMatch(
      /^l2e train: error: training diverged at step \d+: the (loss|gradient norm) is \S+; stopped \(try a lower --lr or a smaller --max-grad-norm\)\. No checkpoint was saved\.$/,
    );
  });

  it('a used --output is refused naming the flags; --resume past --max-steps has nothing to do and writes nothing', async () => {
    const out = join(makeTempDir(), 'run');
    const common = ['--data', data, '--output', out, '--batch-size', '4', '--lr', '1e-3', '--save-steps', '2'];
    expect((await l2e('train', '--model', modelDir, ...common, '--max-steps', '4')).code).toBe(0);
    const runId = JSON.parse(readFileSync(join(out, 'training_run.json'), 'utf8')).runId as string;
    const before = snapshot(out);
    const again = await l2e('train', '--model', modelDir, ...common, '--max-steps', '2');
    expect(again.code).toBe(1);
    expect(again.err).toBe(
      `l2e train: error: ${out} already holds a trained model and 2 checkpoints (checkpoint-2 … checkpoint-4) of run ${runId}: ` +
        'use --resume to continue that run, --overwrite to replace it, or another --output\n',
    );
    const past = await l2e('train', ...common, '--resume', '--max-steps', '2');
    expect(past.code).toBe(0);
    expect(past.err).toContain(
      `l2e train: nothing to do: ${join(out, 'checkpoint-4')} is at step 4, past --max-steps 2; nothing was written (raise --max-steps to train further)\n`,
    );
    expect(past.err).not.toMatch(/NaN|model saved/);
    const batch8 = common.map((a, i) => (common[i - 1] === '--batch-size' ? '8' : a)); // an option is given once
    const changed = await l2e('train', ...batch8, '--resume', '--max-steps', '6', '--seed', '3');
    expect(changed.code).toBe(1);
    expect(changed.err).toContain(
      `it was trained with other settings: --batch-size 4 (now 8), --seed 42 (now 3); resume with the same values, or use --allow-changed-config to continue with the new ones\n`,
    );
    expect(snapshot(out)).toEqual(before);
    const allowed = await l2e('train', ...common, '--resume', '--max-steps', '5', '--seed', '3', '--allow-changed-config');
    expect(allowed.code).toBe(0);
    expect(allowed.err).toContain('l2e train: continuing with changed settings: --seed 42 (now 3)\n');
    const over = await l2e('train', '--model', modelDir, ...common, '--max-steps', '2', '--overwrite');
    expect(over.code).toBe(0);
    expect(over.err).toContain('l2e train: removed 2 checkpoints of the replaced run (checkpoint-4, checkpoint-5)\n');
  });

  // the lr schedule was rebuilt from the resume's --epochs / --max-steps without a word: a forgotten
  // --epochs 2 ended the run at half its steps on a steeper decay
  it("a resume that would give a linear schedule another length is refused (or, allowed, said), the folder untouched", async () => {
    const out = join(makeTempDir(), 'run');
    const common = ['--data', data, '--output', out, '--batch-size', '4', '--lr', '1e-3', '--save-steps', '2', '--schedule', 'linear'];
    expect((await l2e('train', '--model', modelDir, ...common, '--max-steps', '4')).code).toBe(0);
    const before = snapshot(out);
    const longer = await l2e('train', ...common, '--resume', '--max-steps', '6');
    expect(longer.code).toBe(1);
    const what = `the linear schedule of ${join(out, 'checkpoint-4')}'s run spans 4 steps (--max-steps 4), and --max-steps 6 now makes it 6: step 5's lr would be 0.000333, not 0`;
    expect(longer.err).toContain(`l2e train: error: cannot resume: ${what}; resume with the run's --max-steps 4, or use --allow-changed-config to continue on the new schedule\n`);
    expect(snapshot(out)).toEqual(before);
    const allowed = await l2e('train', ...common, '--resume', '--max-steps', '6', '--allow-changed-config');
    expect(allowed.code).toBe(0);
    expect(allowed.err).toContain(`l2e train: continuing on a changed schedule: ${what}\n`);
  });

  // --overwrite replaced the model a run reads, or a checkpoint's model beside its old AdamW moments
  it('an --output that is the --model folder or a checkpoint is refused even with --overwrite, and left untouched', async () => {
    const own = join(makeTempDir(), 'own');
    cpSync(modelDir, own, { recursive: true });
    const before = snapshot(own);
    const self = await l2e('train', '--model', own, '--data', data, '--output', own, '--overwrite', '--batch-size', '4', '--max-steps', '2');
    expect(self.code).toBe(1);
    expect(self.err).toContain(`l2e train: error: --output ${own} is the folder the model was loaded from: the run would replace the model it reads; give another folder\n`);
    expect(snapshot(own)).toEqual(before);
    const out = join(makeTempDir(), 'run');
    expect((await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '4', '--save-steps', '2', '--max-steps', '2')).code).toBe(0);
    const ckpt = join(out, 'checkpoint-2');
    const kept = snapshot(out);
    const into = await l2e('train', '--model', modelDir, '--data', data, '--output', ckpt, '--overwrite', '--batch-size', '4', '--max-steps', '2');
    expect(into.code).toBe(1);
    expect(into.err).toContain(`l2e train: error: --output ${ckpt} is a checkpoint (it holds trainer_state.json): a run writes a run's folder, which holds its checkpoints; give another folder\n`);
    expect(snapshot(out)).toEqual(kept);
  });

  it('an --output holding a model that no run made is refused naming the flags, and left untouched', async () => {
    const precious = join(makeTempDir(), 'precious');
    cpSync(modelDir, precious, { recursive: true });
    const before = snapshot(precious);
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', precious, '--batch-size', '4', '--max-steps', '2');
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `l2e train: error: ${precious}: it is not empty and holds no training run (config.json, model.safetensors, tokenizer.json): use --overwrite to train into it anyway (the files a run writes are replaced, the others kept), ` +
        'or a new or empty --output\n',
    );
    expect(snapshot(precious)).toEqual(before);
  });

  it('--resume DIR into an --output that is not that run\'s is refused (a copied model, another run); into a new folder it forks', async () => {
    const root = makeTempDir();
    const other = join(root, 'other');
    const common = ['--data', data, '--batch-size', '4', '--lr', '1e-3', '--save-steps', '2'];
    expect((await l2e('train', '--model', modelDir, ...common, '--output', other, '--max-steps', '4')).code).toBe(0);
    const ckpt = join(other, 'checkpoint-2');
    const precious = join(root, 'precious');
    cpSync(modelDir, precious, { recursive: true });
    const before = snapshot(precious);
    const r = await l2e('train', ...common, '--output', precious, '--resume', ckpt, '--max-steps', '3');
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `l2e train: error: cannot continue from ${ckpt} into ${precious}: it is not empty and holds no training run ` +
        '(config.json, model.safetensors, tokenizer.json); use a new or empty --output\n',
    );
    expect(snapshot(precious)).toEqual(before);
    const third = join(root, 'third');
    expect((await l2e('train', '--model', modelDir, ...common, '--output', third, '--max-steps', '2', '--seed', '5')).code).toBe(0);
    const thirdId = JSON.parse(readFileSync(join(third, 'training_run.json'), 'utf8')).runId as string;
    const t = await l2e('train', ...common, '--output', third, '--resume', ckpt, '--max-steps', '3');
    expect(t.code).toBe(1);
    expect(t.err).toBe(
      `l2e train: error: cannot continue from ${ckpt} into ${third}: it already holds a trained model and 1 checkpoint (checkpoint-2) of run ${thirdId}: ` +
        'continue that run with --resume alone, or use a new or empty --output\n',
    );
    // a fork: a new folder, or an empty one
    for (const fork of [join(root, 'fork'), makeTempDir()]) {
      const f = await l2e('train', ...common, '--output', fork, '--resume', ckpt, '--max-steps', '3');
      expect(f.code).toBe(0);
      expect(existsSync(join(fork, 'model.safetensors'))).toBe(true);
    }
  });

  it('a --resume path that is not a checkpoint says what it is (never tried as a hub id)', async () => {
    const root = makeTempDir();
    const run = join(root, 'run');
    const common = ['--data', data, '--batch-size', '4', '--save-steps', '2', '--max-steps', '4'];
    expect((await l2e('train', '--model', modelDir, ...common, '--output', run)).code).toBe(0);
    const fork = join(root, 'fork');
    const missing = await l2e('train', ...common, '--output', fork, '--resume', 'runs/checkpoint-999');
    expect(missing.code).toBe(1);
    expect(missing.err).toBe('l2e train: error: --resume runs/checkpoint-999: no such checkpoint folder\n');
    const folder = await l2e('train', ...common, '--output', fork, '--resume', run);
    expect(folder.err).toBe(
      `l2e train: error: --resume ${run}: this is a run's output folder, not a checkpoint: name one of its checkpoints ` +
        `(checkpoint-2, checkpoint-4), or continue its run with --output ${run} and --resume alone\n`,
    );
    const other = await l2e('train', '--model', modelDir, ...common, '--output', fork, '--resume', modelDir);
    expect(other.err).toBe(`l2e train: error: --resume ${modelDir}: not a checkpoint folder (no trainer_state.json)\n`);
    const file = await l2e('train', ...common, '--output', fork, '--resume', data); // was a bare ENOTDIR
    expect(file.err).toBe(`l2e train: error: --resume ${data}: not a checkpoint folder (it is a file)\n`);
    expect(existsSync(fork)).toBe(false);
  });

  it('--resume into a folder a live run trains into is refused as such before its checkpoints are looked at (it said "no checkpoint" before the first)', async () => {
    const out = makeTempDir();
    writeFileSync(join(out, TRAIN_LOCK), `1 ${hostname()}\n`); // process 1 is always alive
    const r = await l2e('train', '--data', data, '--output', out, '--max-steps', '4', '--resume');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^l2e train: error: \S+ is being trained into by another run \(process 1, /);
  });

  it('a newest checkpoint without its model.safetensors is said as missing, with the way to the one before (its optimizer.safetensors was read as the model)', async () => {
    const out = join(makeTempDir(), 'run');
    const common = ['--data', data, '--batch-size', '4', '--save-steps', '2', '--output', out];
    expect((await l2e('train', '--model', modelDir, ...common, '--max-steps', '4')).code).toBe(0);
    rmSync(join(out, 'checkpoint-4', 'model.safetensors'));
    const r = await l2e('train', ...common, '--max-steps', '6', '--resume');
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `l2e train: error: ${join(out, 'checkpoint-4')}: no weights found (expected model.safetensors or model.safetensors.index.json); ` +
        `to resume from the checkpoint before it, move checkpoint-4 out of ${out}\n`,
    );
  });

  it('--resume DIR continues from that checkpoint of the run, reproducing the same model (into a new folder: its own holds the later checkpoint)', async () => {
    const out = makeTempDir();
    const common = ['--data', data, '--batch-size', '4', '--lr', '1e-3', '--save-steps', '2', '--max-steps', '4'];
    expect((await l2e('train', '--model', modelDir, ...common, '--output', out)).code).toBe(0);
    const first = readFileSync(join(out, 'model.safetensors'));
    const own = await l2e('train', ...common, '--output', out, '--resume', join(out, 'checkpoint-2'));
    expect([own.code, own.err.split('\n')[0]]).toEqual([
      1,
      `l2e train: error: cannot continue from ${join(out, 'checkpoint-2')} into ${out}: the run went on past step 2 there (checkpoint-4), ` +
        `and continuing from an earlier step would mix the two: continue into a new or empty --output, or move those out of ${out} first`,
    ]);
    const fork = join(makeTempDir(), 'fork');
    const r = await l2e('train', ...common, '--output', fork, '--resume', join(out, 'checkpoint-2'));
    expect(r.code).toBe(0);
    expect(r.err).toMatch(new RegExp(`resuming run \\S+ from ${join(out, 'checkpoint-2')}: step 2,`));
    expect(r.err).toMatch(/2 steps in \S+ \([\d.]+ steps\/s: steps 3–4, resumed from step 2\)/);
    expect(readFileSync(join(fork, 'model.safetensors'))).toEqual(first);
  });

  it('an --output or --log folder that cannot be made is refused naming the flag (a file in the way: before the data is read)', async () => {
    const dir = makeTempDir();
    const file = join(dir, 'afile');
    writeFileSync(file, 'mine\n');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"query": "x", "pos": "oops"}\n'); // the data check would fail: these fail first
    const train = (...more: string[]) => l2e('train', '--model', modelDir, '--data', bad, '--max-steps', '1', ...more);
    const cases: [string[], string][] = [
      [['--output', file], `--output ${file} is a file, not a folder`],
      [['--output', join(file, 'run')], `--output ${join(file, 'run')}: ${file} is a file, not a folder`],
      [['--output', join(dir, 'o1'), '--log', join(file, 'log.jsonl')], `--log ${join(file, 'log.jsonl')}: ${file} is a file, not a folder`],
    ];
    for (const [args, said] of cases) {
      const r = await train(...args);
      expect([r.code, r.err]).toEqual([1, `l2e train: error: ${said}\n`]);
    }
    expect(readFileSync(file, 'utf8')).toBe('mine\n');
    expect(existsSync(join(dir, 'o1'))).toBe(false);
    if (process.platform === 'linux') {
      // /sys takes no new folder, not even from root: said as a failed mkdir, not as a full disk
      const r = await l2e('train', '--model', modelDir, '--data', data, '--max-steps', '1', '--output', '/sys/l2e-run');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^l2e train: error: --output \/sys\/l2e-run: could not create the folder \/sys\/l2e-run: E[A-Z]+: [^\n]+\n$/);
    }
  });

  it('value errors name the flag', async () => {
    const out = makeTempDir();
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '0');
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('l2e train: --batch-size must be an integer ≥ 1, got 0');
    const w = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--adam-beta2', '1');
    expect(w.err.split('\n')[0]).toBe('l2e train: --adam-beta2 must be in [0, 1), got 1');
    // flags a model's loading takes, and flags that would do nothing or not what '-' does elsewhere
    const usage: [string[], string][] = [
      [['--num-layers', '0'], '--num-layers must be at least 1, got 0'],
      [['--num-layers', '9'], `--num-layers must be an integer in [1, 2] for ${modelDir}, got 9`],
      [['--dense-size', '0'], '--dense-size must be at least 1, got 0'],
      [['--allow-changed-config'], '--allow-changed-config is for --resume; without it, it would do nothing'],
      [['--log', '-'], '--log -: training writes a file, not to stdout; give a name'],
      [['--no-shuffle', '--shuffle-buffer', '5'], '--shuffle-buffer sizes the shuffle; with --no-shuffle it would do nothing'],
      [['--shuffle-buffer', 'some'], '--shuffle-buffer must be all or a whole number of rows, got some'],
    ];
    for (const [more, said] of usage) {
      const u = await l2e('train', '--model', modelDir, '--data', data, '--output', out, ...more);
      expect([u.code, u.err.split('\n')[0]]).toEqual([2, `l2e train: ${said}`]);
    }
    const dash = await l2e('train', '--model', modelDir, '--data', data, '--output', '-');
    expect([dash.code, dash.err.split('\n')[0]]).toEqual([2, 'l2e train: --output -: training writes a folder, not to stdout; give a name']);
    expect(readdirSync(out)).toEqual([]);
  });

  it('after --resume, progress rate and ETA count only this run’s steps, and so does the summary', async () => {
    const out = makeTempDir();
    const log = join(out, 'log.jsonl');
    const common = ['--data', data, '--output', out, '--batch-size', '4', '--lr', '1e-3', '--save-steps', '10', '--log', log];
    expect((await l2e('train', '--model', modelDir, ...common, '--max-steps', '10')).code).toBe(0);
    const t0 = performance.now();
    const r = await l2e('train', ...common, '--resume', '--max-steps', '20');
    const wall = (performance.now() - t0) / 1000;
    expect(r.code).toBe(0);
    // seconds spent in each step, from the log: tokens / (tokens per second)
    const stepSeconds = new Map(logLines(log).map((l) => [l.step, l.tokens / l.tokensPerSecond]));
    const lines = [...r.err.matchAll(/^train (\d+)\/20 ([\d.]+)\/s ETA (\S+) /gm)];
    expect(lines.map((m) => Number(m[1]))).toEqual([12, 14, 16, 18, 20]);
    for (const m of lines) {
      const done = Number(m[1]);
      const rate = Number(m[2]);
      let inSteps = 0;
      for (let s = 11; s <= done; s++) inSteps += stepSeconds.get(s)!;
      // the bar runs from just before step 11: at most this run's steps over their own time (less the 1 ms
      // resolution of the bar's clock), at least over the whole call
      expect(rate).toBeLessThanOrEqual((done - 10) / Math.max(inSteps - 0.001, 1e-6) + 0.05);
      expect(rate).toBeGreaterThanOrEqual((done - 10) / wall - 0.05);
    }
    // plain progress lines (no terminal): notices between them without blank lines
    if (!process.stderr.isTTY) expect(r.err).not.toContain('\n\n');
    expect(r.err).toMatch(/^l2e train: 10 steps in \S+ \([\d.]+ steps\/s: steps 11–20, resumed from step 10\), last loss \d\.\d{4}; model saved to /m);
  });

  it('--help explains the options', async () => {
    const r = await l2e('train', '--help');
    expect(r.code).toBe(0);
    for (const o of ['--batch-size', '--group-size', '--temperature', '--gradient-accumulation-steps', '--resume', '--no-shuffle', '--in-batch-negatives']) {
      expect(r.out).toContain(o.replace('--no-shuffle', 'pre-shuffled'));
    }
  });
});
