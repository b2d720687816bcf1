// The demo's rough edges: one npm command installs all three of its packages (asked for before any
// work), a run too short to learn says so instead of printing a table that reads like a result, and
// its usage line names every option.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadCommands } from '../src/cli/commands.js';
import { demoReport, lossTrend } from '../src/cli/demo.js';
import { ProgressBar } from '../src/cli/progress.js';
import { checkDemoPackages, DEMO_PACKAGES, demoInstallCommand, missingDemoPackages } from '../src/demo/packages.js';
import { DemoInterruptedError, demoLearned, type DemoResult } from '../src/demo/run.js';
import type { Metrics } from '../src/eval/metrics.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir, repoRoot } from './helpers/tinyModel.js';

// Under `npm run test:sanitize` the end-to-end run below is the demo's one run: the folder and signal
// cases make the same native calls again, 8-20 s each under ASan, to test JavaScript and process behaviour.
const underSanitizer = process.env['L2E_SANITIZER_RUN'] === '1';
const beyondSanitizer = it.skipIf(underSanitizer);
/** A refusal came before any work: in 1.5 s (not timed under the sanitizer run, files side by side). */
const quick = (started: number): void => {
  if (!underSanitizer) expect(Date.now() - started).toBeLessThan(1500);
};

const metrics = (top1: number, top10: number): Metrics => ({
  'positive score': 0.6,
  'negative score': 0.45,
  top1,
  top3: top1,
  top5: top10,
  top10,
});

const result = (before: Metrics, after: Metrics, steps: number): DemoResult => ({
  before,
  after,
  losses: Array.from({ length: steps }, (_, i) => 3 - i / steps),
  trainRows: 4000,
  testRows: 460,
  seconds: 2,
  modelDir: '/x/model',
  written: ['l2e-demo.json', 'train.jsonl', 'model/'],
});

describe('demo packages', () => {
  it('one command installs all three, at the versions package.json names, and the README shows it', () => {
    const cmd = demoInstallCommand();
    expect(cmd).toBe('npm install --no-save cldr-annotations-full@48 cldr-localenames-full@48 llama-tokenizer-js@1');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    for (const p of DEMO_PACKAGES) expect(Object.keys(pkg.devDependencies)).toContain(p);
    expect(readFileSync(join(repoRoot, 'README.md'), 'utf8')).toContain(`\`${cmd}\``);
  });

  it('missing packages are all named before any work, with the one command', () => {
    expect(missingDemoPackages()).toEqual([]); // installed here as development dependencies
    const without = (gone: string[]) => (name: string): void => {
      if (gone.includes(name)) throw new Error(`Cannot find module '${name}'`);
    };
    expect(() => checkDemoPackages(without(['cldr-annotations-full', 'llama-tokenizer-js']))).toThrow(
      'the demo needs packages that are not installed (cldr-annotations-full, llama-tokenizer-js): its data comes from ' +
        'Unicode CLDR and its tokenizer from llama-tokenizer-js. Install all three with: ' +
        'npm install --no-save cldr-annotations-full@48 cldr-localenames-full@48 llama-tokenizer-js@1',
    );
    expect(() => checkDemoPackages(without([]))).not.toThrow();
  });
});

describe('demo report', () => {
  it('a run that ends no better than before says so instead of printing the table', () => {
    const r = result(metrics(0.078, 0.111), metrics(0.07, 0.12), 20);
    expect(demoLearned(r.before, r.after)).toBe(false);
    const text = demoReport(r, '/x');
    expect(text).not.toMatch(/metric\s+before\s+after/);
    expect(demoReport(result(metrics(0.078, 0.111), metrics(0.07, 0.12), 1), '/x')).toContain('Not learned yet: after 1 step the model'); // not "1 steps"
    expect(text).toContain(
      'Not learned yet: after 20 steps the model does not beat itself before training on both top1 and top10 of the ' +
        'held-out translations (top1 0.0700 vs 0.0780 before, top10 0.1200 vs 0.1110 before).\n' +
        'This is not a result: run more steps (the default --steps 3000 takes about a minute on 2 cores).',
    );
  });

  it('a run that learned prints the before/after table', () => {
    const r = result(metrics(0.078, 0.111), metrics(0.167, 0.411), 3000);
    expect(demoLearned(r.before, r.after)).toBe(true);
    const text = demoReport(r, '/x');
    expect(text).toMatch(/Retrieval on 460 held-out rows/);
    expect(text).toMatch(/\ntop1 +0\.0780 +0\.1670\n/);
    expect(text).not.toMatch(/Not learned/);
  });

  it("the usage line names every demo option", async () => {
    const demo = (await loadCommands()).find((c) => c.name === 'demo')!;
    const r = await l2e('demo', '--help');
    const usage = r.out.split('\n')[0]!;
    for (const name of Object.keys(demo.options)) expect(usage, name).toContain(`--${name}`);
  });

  it('l2e demo --steps 2 runs end to end and says it has not learned', async () => {
    const out = makeTempDir('l2e-demo-short-');
    const r = await l2e('demo', '--output', out, '--steps', '2');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\nNot learned yet: after 2 steps /);
    expect(existsSync(join(out, 'metrics.json'))).toBe(true);
    // the "wrote" line names what is there, every file the demo writes
    const wrote = 'l2e-demo.json,train.jsonl,test.jsonl,tokenizer/,model/,metrics.json,loss.svg,metrics.svg,losses.json';
    expect(r.out).toContain(`wrote ${out}/{${wrote}}\n`);
    expect(readdirSync(out).sort()).toEqual(wrote.split(',').map((f) => f.replace(/\/$/, '')).sort());
  }, 300_000);
});

describe('demo output folder', () => {
  const userFolder = (): string => {
    const dir = makeTempDir('l2e-demo-user-');
    writeFileSync(join(dir, 'train.jsonl'), 'my rows\n');
    writeFileSync(join(dir, 'metrics.json'), 'my metrics\n');
    mkdirSync(join(dir, 'model'));
    writeFileSync(join(dir, 'model', 'config.json'), 'my config\n');
    return dir;
  };

  it("a folder that is not an earlier demo's is refused before any work, and left as it was", async () => {
    const dir = userFolder();
    const started = Date.now();
    const r = await l2e('demo', '--output', dir, '--steps', '5');
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `l2e demo: error: --output ${dir} holds files that are not an earlier demo's (metrics.json, model, train.jsonl): ` +
        'the demo would replace its train.jsonl, test.jsonl, tokenizer/, model/, metrics.json, loss.svg, metrics.svg, ' +
        'losses.json there. Use a new or empty folder, or add --overwrite (also right for a demo folder from before ' +
        'demos marked theirs with l2e-demo.json)\n',
    );
    quick(started); // no data built
    expect(readFileSync(join(dir, 'train.jsonl'), 'utf8')).toBe('my rows\n');
    expect(readFileSync(join(dir, 'metrics.json'), 'utf8')).toBe('my metrics\n');
    expect(readFileSync(join(dir, 'model', 'config.json'), 'utf8')).toBe('my config\n');
    expect(existsSync(join(dir, 'l2e-demo.json'))).toBe(false);
  });

  beyondSanitizer('--overwrite writes there, leaving files the demo does not write; a re-run then needs no --overwrite', async () => {
    const dir = userFolder();
    writeFileSync(join(dir, 'notes.txt'), 'mine\n');
    const r = await l2e('demo', '--output', dir, '--steps', '1', '--overwrite');
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(dir, 'train.jsonl'), 'utf8')).not.toBe('my rows\n');
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine\n');
    expect(JSON.parse(readFileSync(join(dir, 'l2e-demo.json'), 'utf8'))).toMatchObject({ written_by: 'l2e demo' });
    const again = await l2e('demo', '--output', dir, '--steps', '1');
    expect(again.code, again.err).toBe(0);
  }, 300_000);

  it('a file where the demo makes a folder, or a folder where it writes a file, is refused before any work, even with --overwrite', async () => {
    for (const [name, folder] of [['model', false], ['tokenizer', false], ['metrics.json', true], ['train.jsonl', true]] as const) {
      const dir = makeTempDir('l2e-demo-kind-');
      if (folder) mkdirSync(join(dir, name));
      else writeFileSync(join(dir, name), 'notes\n');
      const started = Date.now();
      const r = await l2e('demo', '--output', dir, '--steps', '5', '--overwrite');
      expect([r.code, r.err]).toEqual([
        1,
        `l2e demo: error: --output ${dir}: ${join(dir, name)} is a ${folder ? 'folder' : 'file'}, where the demo writes ` +
          `${folder ? 'a file' : 'a folder'}; move it away or use another folder\n`,
      ]);
      quick(started); // no data built, nothing trained
      expect(readdirSync(dir)).toEqual([name]);
    }
  });

  it('a file as --output, or in its way, is refused', async () => {
    const dir = makeTempDir('l2e-demo-file-');
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    const r = await l2e('demo', '--output', file);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`l2e demo: error: --output ${file} is a file, not a folder\n`);
    const under = await l2e('demo', '--output', join(file, 'sub')); // was a bare "ENOTDIR: not a directory, stat"
    expect(under.err).toBe(`l2e demo: error: --output ${join(file, 'sub')}: ${file} is a file, not a folder\n`);
  });
});

describe('demo flags and interruption', () => {
  it('bad flags are usage errors naming the flag, before anything is built or written', async () => {
    const base = makeTempDir('l2e-demo-flags-');
    for (const [flag, value, message] of [
      ['--batch-size', '0', '--batch-size must be an integer ≥ 1, got 0'],
      ['--lr', '-1', '--lr must be a non-negative number, got -1'],
    ] as const) {
      const out = join(base, flag.slice(2));
      const r = await l2e('demo', '--output', out, flag, value);
      expect(r.code).toBe(2);
      expect(r.err.split('\n')[0]).toBe(`l2e demo: ${message}`);
      expect(existsSync(out)).toBe(false);
    }
    // a --model that does not load fails before the marker and the data are written
    const out = join(base, 'model');
    const r = await l2e('demo', '--output', out, '--model', join(base, 'no-such-model'));
    expect(r.code).toBe(1);
    expect(r.err).toContain(`model folder not found: ${join(base, 'no-such-model')}`);
    expect(existsSync(out)).toBe(false);
  });

  it('the loss line compares the first and last N steps, N at most half the run', () => {
    expect(lossTrend([5, 4, 3, 2])).toBe('first 2 steps 4.500 → last 2 steps 2.500');
    expect(lossTrend([5, 4, 3])).toBe('first step 5.000 → last step 3.000');
    expect(lossTrend([5])).toBe('5.000');
    expect(lossTrend(Array.from({ length: 200 }, (_, i) => (i < 100 ? 2 : 1)))).toBe('first 50 steps 2.000 → last 50 steps 1.000');
    const r = result(metrics(0.078, 0.111), metrics(0.07, 0.12), 20);
    expect(demoReport(r, '/x')).toContain(`loss: first 10 steps ${(3 - 4.5 / 20).toFixed(3)} → last 10 steps ${(3 - 14.5 / 20).toFixed(3)}; 20 steps in 2 s\n`);
  });

  it('Ctrl-C before training says so (the demo stops before evaluating)', () => {
    expect(new DemoInterruptedError(0, 3000, '/x').message).toBe(
      "interrupted before training started: nothing was trained or saved; /x holds this run's train.jsonl and test.jsonl. Run it again to train it fully",
    );
  });

  beyondSanitizer("a re-run stopped in an earlier demo's folder says that folder's results are the earlier run's", async () => {
    const out = makeTempDir('l2e-demo-rerun-');
    const first = await l2e('demo', '--output', out, '--steps', '2');
    expect(first.code, first.err).toBe(0);
    const update = vi.spyOn(ProgressBar.prototype, 'update').mockImplementation((done: number) => {
      if (done === 2) process.emit('SIGINT');
    });
    try {
      const r = await l2e('demo', '--output', out, '--steps', '3000', '--seed', '7');
      expect(r.code).toBe(130);
      expect(r.err).toContain(
        `${out} holds this run's train.jsonl and test.jsonl, beside an earlier run's model/, metrics.json, loss.svg, metrics.svg, ` +
          'losses.json, which do not belong to this data. Run it again to train it fully\n',
      );
    } finally {
      update.mockRestore();
    }
  }, 120_000);

  beyondSanitizer('a learning rate that diverges is said in the demo\'s terms: its --lr, nothing saved', async () => {
    const out = makeTempDir('l2e-demo-diverge-');
    const r = await l2e('demo', '--output', out, '--steps', '20', '--lr', '1e9');
    expect(r.code).toBe(1);
    // (it spoke of a max grad norm and checkpoints the demo has not, and of loading the model again)
    expect(r.err.trim().split('\n').at(-1)).toMatch(/^l2e demo: error: training diverged at step \d+: the (loss|gradient norm) is \S+; nothing was saved\. Try a lower --lr \(it was 1000000000\)$/);
    expect(existsSync(join(out, 'model'))).toBe(false);
  }, 120_000);

  beyondSanitizer('a stop asked during the last step comes after it: the demo finishes, its trained model kept', async () => {
    const out = makeTempDir('l2e-demo-last-');
    const update = vi.spyOn(ProgressBar.prototype, 'update').mockImplementation((done: number) => {
      if (done === 3) process.emit('SIGINT'); // (the bar's update follows the step)
    });
    try {
      const r = await l2e('demo', '--output', out, '--steps', '3');
      expect(r.code, r.err).toBe(0);
      expect(r.err).not.toContain('interrupted at step');
      for (const f of ['model', 'metrics.json', 'loss.svg', 'metrics.svg', 'losses.json']) expect(existsSync(join(out, f)), f).toBe(true);
      expect(JSON.parse(readFileSync(join(out, 'losses.json'), 'utf8'))).toHaveLength(3);
    } finally {
      update.mockRestore();
    }
  }, 120_000);

  beyondSanitizer.each([
    ['SIGINT', 130, 'interrupted: stopping after the current step (Ctrl-C again to quit now)'],
    ['SIGTERM', 143, 'SIGTERM received: stopping after the current step (SIGTERM again to quit now)'],
  ] as const)('%s stops after the current step: no evaluation, no model or metrics, exit %i', async (signal, status, said) => {
    const out = makeTempDir('l2e-demo-sigint-');
    const update = vi.spyOn(ProgressBar.prototype, 'update').mockImplementation((done: number) => {
      if (done === 3) process.emit(signal);
    });
    try {
      const r = await l2e('demo', '--output', out, '--steps', '3000');
      expect(r.code).toBe(status);
      expect(r.out).toBe('');
      expect(r.err).toContain(`l2e demo: ${said}\n`);
      expect(r.err).not.toContain(`\n\nl2e demo: ${said}`); // not a terminal: no line to break
      expect(r.err).toContain(
        `l2e demo: interrupted at step 3 of 3000: the model was not evaluated after training and not saved (a partly trained ` +
          `model is not the demo's result); ${out} holds this run's train.jsonl and test.jsonl. Run it again to train it fully\n`,
      );
      for (const f of ['model', 'metrics.json', 'loss.svg', 'metrics.svg', 'losses.json']) expect(existsSync(join(out, f)), f).toBe(false);
      expect(existsSync(join(out, 'train.jsonl'))).toBe(true);
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) expect(process.listenerCount(s)).toBe(0);
    } finally {
      update.mockRestore();
    }
  }, 300_000);
});
