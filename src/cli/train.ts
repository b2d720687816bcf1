// `l2e train`: contrastive fine-tuning (the recipe of DESIGN.md §1) with checkpoints, resume and a JSONL log.
import { EmbeddingModel } from '../model/embedding-model.js';
import { RECIPE_DEFAULTS } from '../train/options.js';
import { parseSchedule } from '../train/schedule.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { Trainer } from '../train/trainer.js';
import type { DataStats } from '../data/pairs.js';
import { opt, UsageError, type ParsedArgs } from './args.js';
import type { Command } from './command.js';
import { formatSeconds, ProgressBar } from './progress.js';
import { deviceOf } from './source-options.js';

const d = RECIPE_DEFAULTS;

export const command: Command = {
  name: 'train',
  summary: 'fine-tune a model contrastively on {query, pos, neg} JSONL rows',
  usage: `Usage: l2e train --model DIR --data FILE.jsonl --output DIR [options]

Trains with in-batch negatives and InfoNCE (FlagEmbedding's bi-encoder recipe): each step takes
--batch-size queries, each with a group of --group-size passages (1 random positive + random
negatives, the negative list repeated when too short). Rows with an empty "pos", or an empty
"neg" when the group needs negatives, are skipped and counted. Defaults are the recipe's.

Checkpoints go to OUTPUT/checkpoint-<step>/ every --save-steps steps, at the end, and when
interrupted (Ctrl-C finishes the current step, saves, and exits). --resume continues from the
newest checkpoint in --output (weights, AdamW moments, schedule, data position) up to the
given --max-steps / --epochs; without --model it loads the model from that checkpoint.
The final model is written to OUTPUT in the Hugging Face layout. --log appends one JSON object
per optimizer step: {step, loss, lr, gradNorm, tokensPerSecond, tokens, epoch, totalSteps}.
A NaN/Inf loss stops training with an error; the last good checkpoint is kept.`,
  options: {
    model: { kind: 'string', help: 'model folder or hub id to start from', metavar: 'DIR' },
    data: { kind: 'string', help: 'training rows: JSONL {"query", "pos": [..], "neg": [..]}', metavar: 'FILE', required: true },
    output: { kind: 'string', help: 'folder for checkpoints and the final model', metavar: 'DIR', required: true },
    'batch-size': { kind: 'integer', help: 'queries per micro-batch', default: d.batchSize },
    'group-size': { kind: 'integer', help: 'passages per query (1 positive + negatives)', default: d.groupSize },
    temperature: { kind: 'number', help: 'InfoNCE temperature', default: d.temperature },
    lr: { kind: 'number', help: 'peak learning rate', default: d.lr },
    epochs: { kind: 'integer', help: 'passes over the data', default: d.epochs },
    'max-steps': { kind: 'integer', help: 'stop after this optimizer step (overrides --epochs; 0 = off)', default: d.maxSteps },
    schedule: { kind: 'string', help: 'lr schedule: constant, linear or cosine', default: d.schedule },
    'warmup-steps': { kind: 'integer', help: 'linear warm-up steps', default: d.warmupSteps },
    'warmup-ratio': { kind: 'number', help: 'warm-up as a fraction of all steps (when --warmup-steps is 0)', default: d.warmupRatio },
    'max-grad-norm': { kind: 'number', help: 'global gradient-norm clipping (0 = off)', default: d.maxGradNorm },
    'weight-decay': { kind: 'number', help: 'AdamW weight decay (not on biases / norms)', default: d.weightDecay },
    'adam-beta1': { kind: 'number', help: 'AdamW beta1', default: d.beta1 },
    'adam-beta2': { kind: 'number', help: 'AdamW beta2', default: d.beta2 },
    'adam-epsilon': { kind: 'number', help: 'AdamW epsilon', default: d.eps },
    'query-max-len': { kind: 'integer', help: 'query truncation in tokens (BOS included)', default: d.queryMaxLen },
    'passage-max-len': { kind: 'integer', help: 'passage truncation in tokens (BOS included)', default: d.passageMaxLen },
    'chunk-tokens': { kind: 'integer', help: 'GradCache chunk budget in tokens (bounds activation memory)', default: d.chunkTokens },
    'gradient-accumulation-steps': { kind: 'integer', help: 'micro-batches per optimizer step', default: d.gradientAccumulationSteps },
    'save-steps': { kind: 'integer', help: 'checkpoint every N steps and at the end (0 = only on Ctrl-C)', default: 500 },
    'save-total-limit': { kind: 'integer', help: 'keep only the newest N checkpoints (0 = all)', default: d.saveTotalLimit },
    resume: { kind: 'boolean', help: 'continue from the newest checkpoint in --output' },
    seed: { kind: 'integer', help: 'seed of shuffling and group sampling', default: d.seed },
    log: { kind: 'string', help: 'append per-step JSON objects to this file', metavar: 'FILE' },
    'in-batch-negatives': { kind: 'boolean', help: 'score queries against every passage of the batch (--no-in-batch-negatives: own group only)', default: true },
    'skip-bad-lines': { kind: 'boolean', help: 'count and skip malformed lines instead of failing' },
    shuffle: { kind: 'boolean', help: 'shuffle through a buffer (--no-shuffle: file order, for pre-shuffled data)', default: true },
    'shuffle-buffer': { kind: 'integer', help: 'rows held for shuffling', default: d.shuffleBuffer },
    'num-layers': { kind: 'integer', help: 'use only the first N decoder layers of --model (e.g. 2 of Llama2-7B)' },
    'dense-size': { kind: 'integer', help: 'dense layer width when --model has none (a base causal LM; default its config or 1536)' },
    device: { kind: 'string', help: 'cpu or cuda', default: 'cpu' },
  },
  run,
};

/** Rows the last epoch read skipped, with the first malformed lines' numbers (at the end of every run). */
function reportSkipped(s: DataStats, data: string): void {
  if (s.badLines + s.noPositive + s.noNegative === 0) return;
  const more = s.badLines > s.firstBadLines.length ? ',…' : '';
  const where = s.badLines ? ` (${data}:${s.firstBadLines.join(',')}${more})` : '';
  process.stderr.write(
    `l2e train: skipped ${s.badLines} malformed lines${where}, ${s.noPositive} rows with an empty "pos", ` +
      `${s.noNegative} with an empty "neg" (in the last epoch read)\n`,
  );
}

async function run(args: ParsedArgs): Promise<number> {
  const device = deviceOf(args);
  let schedule;
  try {
    schedule = parseSchedule(opt.str(args, 'schedule')!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const output = opt.str(args, 'output')!;
  const resume = opt.bool(args, 'resume');
  let modelDir = opt.str(args, 'model');
  if (!modelDir) {
    const latest = resume ? latestCheckpoint(output) : null;
    if (!latest) throw new UsageError(resume ? `--model is required: no checkpoint found in ${output}` : '--model is required');
    modelDir = latest.dir;
  }
  const model = await EmbeddingModel.load(modelDir, {
    device,
    numLayers: opt.num(args, 'num-layers'),
    denseSize: opt.num(args, 'dense-size'),
    seed: opt.num(args, 'seed'),
  });
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write('\nl2e train: interrupted twice, exiting without a checkpoint\n');
      process.exit(130);
    }
    process.stderr.write('\nl2e train: interrupted: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const trainer = new Trainer(model, {
      batchSize: opt.num(args, 'batch-size'),
      groupSize: opt.num(args, 'group-size'),
      temperature: opt.num(args, 'temperature'),
      inBatchNegatives: opt.bool(args, 'in-batch-negatives'),
      lr: opt.num(args, 'lr'),
      schedule,
      warmupSteps: opt.num(args, 'warmup-steps'),
      warmupRatio: opt.num(args, 'warmup-ratio'),
      beta1: opt.num(args, 'adam-beta1'),
      beta2: opt.num(args, 'adam-beta2'),
      eps: opt.num(args, 'adam-epsilon'),
      weightDecay: opt.num(args, 'weight-decay'),
      maxGradNorm: opt.num(args, 'max-grad-norm'),
      queryMaxLen: opt.num(args, 'query-max-len'),
      passageMaxLen: opt.num(args, 'passage-max-len'),
      chunkTokens: opt.num(args, 'chunk-tokens'),
      gradientAccumulationSteps: opt.num(args, 'gradient-accumulation-steps'),
      epochs: opt.num(args, 'epochs'),
      maxSteps: opt.num(args, 'max-steps'),
      seed: opt.num(args, 'seed'),
      shuffleBuffer: opt.bool(args, 'shuffle') ? opt.num(args, 'shuffle-buffer') : 0,
      skipBadLines: opt.bool(args, 'skip-bad-lines'),
      outputDir: output,
      saveSteps: opt.num(args, 'save-steps'),
      saveTotalLimit: opt.num(args, 'save-total-limit'),
      resume,
      logFile: opt.str(args, 'log'),
      // a model resumed from a checkpoint folder carries the tokenizer files itself
      tokenizerDir: model.dir ?? undefined,
    });
    let bar: ProgressBar | null = null;
    const started = Date.now();
    const result = await trainer.fit(opt.str(args, 'data')!, {
      signal: controller.signal,
      onNotice: (m) => process.stderr.write(`${bar ? '\n' : ''}l2e train: ${m}\n`),
      onStep: (s) => {
        bar ??= new ProgressBar({ label: 'train', total: s.totalSteps ?? s.step, plainLines: true });
        bar.update(s.step, `loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${Math.round(s.tokensPerSecond)} tok/s`);
      },
    });
    (bar as ProgressBar | null)?.finish();
    const took = formatSeconds((Date.now() - started) / 1000);
    if (result.stoppedBy === 'aborted') {
      process.stderr.write(
        `l2e train: stopped at step ${result.step} (${took})` +
          (result.checkpoint ? `; checkpoint ${result.checkpoint} — continue with --resume\n` : '\n'),
      );
      return 130;
    }
    process.stderr.write(
      `l2e train: ${result.step} steps (${took}), last loss ${result.lastLoss.toFixed(4)}; model saved to ${result.modelDir}\n`,
    );
    reportSkipped(result.stats, opt.str(args, 'data')!);
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    model.dispose();
  }
}
