// `l2e demo`: the whole product on the built-in default, offline, on the CPU.
import { resolve } from 'node:path';
import { demoLearned, DemoInterruptedError, runDemo, DEMO_DEFAULTS, type DemoResult } from '../demo/run.js';
import { TrainerOptionError } from '../train/options.js';
import { TrainingDivergedError } from '../train/trainer.js';
import { opt, SEED_RANGE, UsageError } from './args.js';
import type { Command } from './command.js';
import { ProgressBar } from './progress.js';
import type { Metrics } from '../eval/metrics.js';
import { counted } from '../util/plural.js';
import { signalStatus, stopGracefully } from './signals.js';

const KEYS = ['positive score', 'negative score', 'top1', 'top3', 'top5', 'top10'] as const;

function table(before: Metrics, after: Metrics): string {
  const fmt = (v: number | null): string => (v === null ? '—' : v.toFixed(4));
  const rows = KEYS.map((k) => [k, fmt(before[k]), fmt(after[k])]);
  const w = [16, 10, 10];
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(['metric', 'before', 'after']), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);

/** "first 50 steps 5.196 → last 50 steps 1.234": at most half the steps each, so the two never overlap. */
export function lossTrend(losses: number[]): string {
  if (losses.length < 2) return `${losses[0]?.toFixed(3) ?? '—'}`;
  const n = Math.min(50, Math.floor(losses.length / 2));
  const steps = n === 1 ? 'step' : `${n} steps`;
  return `first ${steps} ${mean(losses.slice(0, n)).toFixed(3)} → last ${steps} ${mean(losses.slice(-n)).toFixed(3)}`;
}

/** What the demo prints on stdout at the end: the before/after table, or why there is none. */
export function demoReport(r: DemoResult, output: string): string {
  const f = (v: number | null): string => (v === null ? '—' : v.toFixed(4));
  const loss = `loss: ${lossTrend(r.losses)}; ${counted(r.losses.length, 'step')} in ${r.seconds.toFixed(0)} s\n`;
  const wrote = `wrote ${output}/{${r.written.join(',')}}\n`;
  if (!demoLearned(r.before, r.after)) {
    return (
      // (the model before training: random, or the --model given)
      `\nNot learned yet: after ${counted(r.losses.length, 'step')} the model does not beat itself before training on both top1 and ` +
      `top10 of the held-out translations (top1 ${f(r.after.top1)} vs ${f(r.before.top1)} before, top10 ${f(r.after.top10)} vs ${f(r.before.top10)} before).\n` +
      `This is not a result: run more steps (the default --steps ${DEMO_DEFAULTS.steps} takes about a minute on 2 cores).\n\n` +
      loss +
      wrote
    );
  }
  return `\nRetrieval on ${r.testRows} held-out rows (concepts never seen in training):\n\n${table(r.before, r.after)}\n\n` + loss + wrote;
}

export const command: Command = {
  name: 'demo',
  ownsSignals: true,
  summary: 'train, evaluate and save a small Malay–English model on built-in data, offline',
  usage: `Usage: l2e demo [--output DIR] [--overwrite] [--steps N] [--model DIR] [--seed N] [--lr X] [--batch-size N]

Builds English ↔ Malay pairs from Unicode CLDR data (emoji names and keywords; territory, language
and script names — from the npm packages cldr-annotations-full and cldr-localenames-full), a small
Llama2 embedding model (2 layers, hidden 128, 8 heads, dense 256, random init) with the real
Llama 2 tokenizer, evaluates it on held-out concepts with the published metrics, trains it with the
recipe's objective (InfoNCE with in-batch and hard negatives, temperature 0.02, group size 3,
AdamW), evaluates again and prints a before/after table. Written to DIR: first l2e-demo.json
(which marks DIR as a demo's), then train.jsonl, test.jsonl, tokenizer/, model/ (Hugging Face
layout), metrics.json, loss.svg, metrics.svg, losses.json. DIR must be new, empty or an earlier
demo's (whose files are replaced); any other folder is refused before any work unless --overwrite,
which replaces those files in it and leaves the rest. A run too short to learn (the model not
better than before on both top-1 and top-10) says so instead of printing the table. Ctrl-C (or
SIGTERM, SIGHUP) stops after the current step and exits (130, 143, 129) without evaluating or
saving the partly trained model (during the last step, or once training is done, the demo finishes). The data and tokenizer packages are development dependencies;
when missing, the demo prints the one npm command that installs them.`,
  options: {
    output: { kind: 'string', help: 'output folder', metavar: 'DIR', default: 'l2e-demo' },
    overwrite: { kind: 'boolean', help: 'write into a DIR that is not an earlier demo\'s, replacing the demo\'s files there (train.jsonl, model/, metrics.json, ...)' },
    steps: { kind: 'integer', help: 'optimizer steps', default: DEMO_DEFAULTS.steps },
    model: { kind: 'string', help: 'start from this model folder instead of a new random model', metavar: 'DIR' },
    seed: { kind: 'integer', help: 'seed of the data split, the model and the sampling', default: DEMO_DEFAULTS.seed, range: SEED_RANGE },
    lr: { kind: 'number', help: 'peak learning rate (cosine schedule after a 50-step warm-up)', metavar: 'X', default: DEMO_DEFAULTS.lr },
    'batch-size': { kind: 'integer', help: 'queries per step', default: DEMO_DEFAULTS.batchSize },
  },
  async run(args) {
    const output = resolve(opt.str(args, 'output')!);
    const steps = opt.num(args, 'steps')!;
    if (steps < 1) throw new UsageError('--steps must be at least 1');
    const bar = new ProgressBar({ label: 'train', total: steps, plainLines: true });
    const ac = new AbortController();
    const stopping = stopGracefully('demo', 'stopping after the current step', 'exiting now', () => ac.abort());
    try {
      const r = await runDemo({
        output,
        overwrite: opt.bool(args, 'overwrite'),
        steps,
        model: opt.str(args, 'model'),
        seed: opt.num(args, 'seed'),
        lr: opt.num(args, 'lr'),
        batchSize: opt.num(args, 'batch-size'),
        signal: ac.signal,
        onStep: (s) => bar.update(s.step, `loss ${s.loss.toFixed(3)} lr ${s.lr.toExponential(1)} ${Math.round(s.tokensPerSecond)} tok/s`),
        onNotice: (m) => process.stderr.write(`${m}\n`),
      });
      bar.finish();
      process.stdout.write(demoReport(r, output));
      return 0;
    } catch (err) {
      if (err instanceof TrainerOptionError) throw new UsageError(err.message);
      if (err instanceof TrainingDivergedError) {
        // the demo has no checkpoint or max grad norm to speak of: its one knob is the learning rate
        throw new Error(`training diverged at step ${err.step}: ${err.what}; nothing was saved. Try a lower --lr (it was ${opt.num(args, 'lr') ?? DEMO_DEFAULTS.lr})`);
      }
      if (!(err instanceof DemoInterruptedError)) throw err;
      process.stderr.write(`l2e demo: ${err.message}\n`);
      return signalStatus(stopping.signal() ?? 'SIGINT'); // as \`l2e train\` on a stop signal
    } finally {
      stopping.off();
    }
  },
};
