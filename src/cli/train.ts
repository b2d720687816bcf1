// `l2e train`: contrastive fine-tuning (the recipe of DESIGN.md §1) with checkpoints, resume and a JSONL log.
import { lockedBy } from '../train/output-lock.js';
import { EmbeddingModel } from '../model/embedding-model.js';
import { RECIPE_DEFAULTS, TrainerOptionError, type OptionNamer, type TrainerOptions } from '../train/options.js';
import { parseSchedule } from '../train/schedule.js';
import { describeSkipped, type DataStats } from '../data/pairs.js';
import { checkResumeFolder, damagedCheckpoint } from '../train/resume.js';
import { findResumeCheckpoint } from '../train/run.js';
import { Trainer, type FitResult } from '../train/trainer.js';
import { opt, SEED_RANGE, UsageError, type ParsedArgs } from './args.js';
import type { Command } from './command.js';
import { formatSeconds, ProgressBar } from './progress.js';
import { deviceOf, positiveInt } from './source-options.js';
import { STDIO } from '../util/output.js';
import { counted } from '../util/plural.js';
import { signalStatus, stopGracefully } from './signals.js';

const d = RECIPE_DEFAULTS;

export const command: Command = {
  name: 'train',
  ownsSignals: true,
  summary: 'fine-tune a model contrastively on {query, pos, neg} JSONL rows',
  usage: `Usage: l2e train --model DIR --data FILE.jsonl --output DIR [options]

Trains with in-batch negatives and InfoNCE (FlagEmbedding's bi-encoder recipe): each step takes
--batch-size queries, each with a group of --group-size passages (1 random positive + random
negatives, the negative list repeated when too short). Rows with an empty "pos", or an empty
"neg" when the group needs negatives, are skipped and counted. Defaults are the recipe's on one
device (its 4 GPUs x 8 queries per step: --batch-size 8 --gradient-accumulation-steps 4), and each
epoch reads the rows in a new uniform random order (--shuffle-buffer).

Checkpoints go to OUTPUT/checkpoint-<step>/ every --save-steps steps, at the end, and when
stopped (Ctrl-C, SIGTERM or SIGHUP finishes the current step, saves, and exits 130, 143 or 129),
and before a run fails on anything but its own numbers (the data file changed during training,
the --log disk full), so no step is lost;
each holds the weights and the AdamW moments (about 3 × the model) and its size is printed.
--save-total-limit N keeps the newest N checkpoints of the run plus its best one: the checkpoint
with the lowest mean training loss over the steps since the checkpoint before it. Training stops
before it starts when the disk cannot hold a checkpoint and the final model.

OUTPUT belongs to one run (its id is in OUTPUT/training_run.json and in every checkpoint, with
the data file and the settings), and to one process while it trains (OUTPUT/.l2e-train.lock: a
second run into it, even with --resume or --overwrite, is refused until the first ends). A run's folder that holds a model or checkpoints is refused unless
--resume or --overwrite is given; any other non-empty folder (a model, sharded weights, your files)
unless --overwrite. --resume continues the run from its newest checkpoint (weights, AdamW moments,
schedule, data position; --resume DIR: from that checkpoint folder, into an OUTPUT that is new or
empty, or its run's with no later checkpoint) up to the given --max-steps / --epochs, and says which checkpoint; without
--model it loads the model from it. Resuming with other settings (batch size, lr, group size,
seed, ...) or other data is refused, naming the differences, unless --allow-changed-config (other
data is then read from its beginning, the step count and optimizer state carrying on); so is a
--max-steps / --epochs that gives a linear or cosine schedule another length than the run's. When
the checkpoint is already past --max-steps (or at it, with its final model written; or the run's
final model, written after it as with --save-steps 0, reached them) there is nothing to do and
nothing is written. --overwrite starts a new run there: training_run.json names
it from its first checkpoint (until then, if it fails or is stopped, the earlier run can still be
resumed); the earlier runs' checkpoint-<step> folders are removed as the new run saves its own
(another tool's are never replaced: a folder holding one is refused); model.safetensors,
config.json and the tokenizer files are replaced when its model is written; other files are left
as they are. The final model is written to OUTPUT in the Hugging Face layout.

--log appends one JSON object per optimizer step:
{step, loss, lr, gradNorm, tokensPerSecond, tokens, epoch, totalSteps, run} (run: the run's
id, as in training_run.json; an existing file must be such a log, and a resume drops only its own
run's lines of the steps it trains again; a --resume DIR into another folder is refused a log
holding the steps its run went on to from there).
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
    'save-steps': { kind: 'integer', help: 'checkpoint every N steps and at the end (0 = only when stopped by Ctrl-C or a signal)', default: d.saveSteps },
    'save-total-limit': {
      kind: 'integer',
      help: 'keep the newest N checkpoints of the run plus its best (lowest mean loss since the checkpoint before; 0 = keep all)',
      default: d.saveTotalLimit,
    },
    resume: {
      kind: 'string',
      help: "continue the run in --output from its newest checkpoint (or from checkpoint folder DIR)",
      metavar: 'DIR',
      optionalValue: true,
    },
    overwrite: { kind: 'boolean', help: 'start a new run in a used --output (replacing the files a run writes, keeping others)' },
    'allow-changed-config': { kind: 'boolean', help: 'let --resume continue with settings or data other than the checkpoint\'s' },
    seed: { kind: 'integer', help: 'seed of shuffling and group sampling', default: d.seed, range: SEED_RANGE },
    log: { kind: 'string', help: 'append per-step JSON objects to this file', metavar: 'FILE' },
    'in-batch-negatives': { kind: 'boolean', help: 'score queries against every passage of the batch (--no-in-batch-negatives: own group only)', default: true },
    'skip-bad-lines': { kind: 'boolean', help: 'count and skip malformed lines instead of failing' },
    shuffle: { kind: 'boolean', help: 'shuffle the rows each epoch (--no-shuffle: file order, for pre-shuffled data)', default: true },
    'shuffle-buffer': {
      kind: 'string',
      metavar: 'N|all',
      help: "all (default, the recipe's): a uniform permutation of every row each epoch (a file is indexed by its usable lines' offsets, 12 bytes a row, and read by them); N: a buffer of N rows (bounded memory, but the order stays near the file's)",
    },
    'num-layers': { kind: 'integer', help: 'use only the first N decoder layers of --model (e.g. 2 of Llama2-7B)' },
    'dense-size': { kind: 'integer', help: 'dense layer width when --model has none (a base causal LM; default its config or 1536)' },
    device: { kind: 'string', help: 'cpu or cuda', default: 'cpu' },
  },
  run,
};

/** Rows the last epoch read skipped, with the first malformed lines' numbers (at the end of every run). */
function reportSkipped(s: DataStats, data: string): void {
  if (s.badLines + s.noPositive + s.noNegative === 0) return;
  process.stderr.write(`l2e train: skipped ${describeSkipped(s, data)} (in the last epoch read)\n`);
}

/** The flag of each Trainer option: options are read from these flags and messages name them. */
const FLAGS = {
  batchSize: 'batch-size',
  groupSize: 'group-size',
  temperature: 'temperature',
  inBatchNegatives: 'in-batch-negatives',
  lr: 'lr',
  warmupSteps: 'warmup-steps',
  warmupRatio: 'warmup-ratio',
  beta1: 'adam-beta1',
  beta2: 'adam-beta2',
  eps: 'adam-epsilon',
  weightDecay: 'weight-decay',
  maxGradNorm: 'max-grad-norm',
  queryMaxLen: 'query-max-len',
  passageMaxLen: 'passage-max-len',
  chunkTokens: 'chunk-tokens',
  gradientAccumulationSteps: 'gradient-accumulation-steps',
  epochs: 'epochs',
  maxSteps: 'max-steps',
  seed: 'seed',
  shuffleBuffer: 'shuffle-buffer',
  skipBadLines: 'skip-bad-lines',
  outputDir: 'output',
  saveSteps: 'save-steps',
  saveTotalLimit: 'save-total-limit',
  overwrite: 'overwrite',
  allowChangedConfig: 'allow-changed-config',
  logFile: 'log',
} as const satisfies Partial<Record<keyof TrainerOptions, string>>;

const OTHER_FLAGS: Record<string, string> = { schedule: 'schedule', resume: 'resume', data: 'data' };

export const flagOf: OptionNamer = (option) => `--${(FLAGS as Record<string, string>)[option] ?? OTHER_FLAGS[option] ?? option}`;

async function run(args: ParsedArgs): Promise<number> {
  const device = deviceOf(args);
  let schedule;
  try {
    schedule = parseSchedule(opt.str(args, 'schedule')!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const output = opt.str(args, 'output')!;
  const resumeArg = opt.str(args, 'resume');
  const resume = resumeArg === undefined ? false : resumeArg === '' ? true : resumeArg;
  // flags that would do nothing, or something else than elsewhere
  for (const flag of ['output', 'log'] as const) {
    if (opt.str(args, flag) === STDIO) throw new UsageError(`--${flag} -: training writes ${flag === 'output' ? 'a folder' : 'a file'}, not to stdout; give a name`);
  }
  if (opt.bool(args, 'allow-changed-config') && !resume) throw new UsageError('--allow-changed-config is for --resume; without it, it would do nothing');
  if (!opt.bool(args, 'shuffle') && opt.str(args, 'shuffle-buffer') !== undefined) {
    throw new UsageError('--shuffle-buffer sizes the shuffle; with --no-shuffle it would do nothing');
  }
  const numLayers = positiveInt(args, 'num-layers');
  const denseSize = positiveInt(args, 'dense-size');
  // a --resume path is a local checkpoint folder: say what is wrong with it before anything loads (without
  // --model a missing one would be tried as a hub id)
  if (typeof resume === 'string') checkResumeFolder(resume, flagOf);
  // a folder another run trains into is refused before its checkpoints are looked at (the trainer checks
  // again): they change under a live run, and one pruned while it loaded was said as a missing file
  const locked = resume ? lockedBy(output) : null;
  if (locked) throw new Error(locked);
  let modelDir = opt.str(args, 'model');
  if (!modelDir) {
    if (!resume) throw new UsageError('--model is required');
    modelDir = typeof resume === 'string' ? resume : findResumeCheckpoint(output, flagOf).dir;
  }
  const options: TrainerOptions = { schedule, resume };
  for (const [key, flag] of Object.entries(FLAGS)) (options as Record<string, unknown>)[key] = args.options[flag];
  const buffer = opt.str(args, 'shuffle-buffer');
  if (buffer !== undefined) {
    if (buffer !== 'all' && !/^\d+$/.test(buffer)) throw new UsageError(`--shuffle-buffer must be all or a whole number of rows, got ${buffer}`);
    options.shuffleBuffer = buffer === 'all' ? 'all' : Number(buffer);
  }
  if (!opt.bool(args, 'shuffle')) options.shuffleBuffer = 0;
  let model: EmbeddingModel;
  try {
    model = await EmbeddingModel.load(modelDir, { device, numLayers, denseSize, seed: opt.num(args, 'seed') });
  } catch (err) {
    const msg = (err as Error).message;
    if (msg.startsWith('numLayers ')) throw new UsageError(`--num-layers${msg.slice('numLayers'.length)}`);
    // the model is the checkpoint's: a damaged one is said as the trainer says it
    throw modelDir === opt.str(args, 'model') ? err : damagedCheckpoint(err, modelDir, { resume, outputDir: output }, flagOf);
  }
  if (denseSize !== undefined && model.dim !== denseSize) {
    process.stderr.write(`l2e train: --dense-size ${denseSize} is not used: ${modelDir} has a dense layer of width ${model.dim}, which is kept\n`);
  }
  const controller = new AbortController();
  // Ctrl-C, SIGTERM (timeout, docker, Slurm) and SIGHUP all finish the step and save a checkpoint (once
  // the steps have begun: before, nothing is saved)
  let stepping = false;
  const doing = (): string => (stepping ? 'finishing the current step and saving a checkpoint' : 'stopping before the first step (nothing to save)');
  const stopping = stopGracefully('train', doing, 'exiting without a checkpoint', () => controller.abort());
  try {
    let trainer: Trainer;
    try {
      // a model resumed from a checkpoint folder carries the tokenizer files itself
      trainer = new Trainer(model, { ...options, tokenizerDir: model.dir ?? undefined }, { optionName: flagOf });
    } catch (err) {
      if (err instanceof TrainerOptionError) throw new UsageError(err.message);
      throw err;
    }
    let bar: ProgressBar | null = null;
    const started = Date.now();
    const result = await trainer.fit(opt.str(args, 'data')!, {
      signal: controller.signal,
      onNotice: (m) => process.stderr.write(`${(bar as ProgressBar | null)?.drawing ? '\n' : ''}l2e train: ${m}\n`),
      onStart: (s) => {
        stepping = true;
        bar = new ProgressBar({ label: 'train', total: s.totalSteps ?? 0, initial: s.step, plainLines: true });
      },
      onStep: (s) => {
        bar?.update(s.step, `loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${Math.round(s.tokensPerSecond)} tok/s`);
      },
    });
    (bar as ProgressBar | null)?.finish();
    const took = formatSeconds((Date.now() - started) / 1000);
    if (result.stoppedBy === 'alreadyDone') return 0; // the trainer said why; nothing was written
    if (result.stoppedBy === 'aborted') {
      process.stderr.write(
        `l2e train: stopped at step ${result.step} (${took})` +
          (result.checkpoint ? `; checkpoint ${result.checkpoint} — continue with --resume\n` : '\n'),
      );
      return signalStatus(stopping.signal() ?? 'SIGINT');
    }
    process.stderr.write(`l2e train: ${summary(result, took)}; model saved to ${result.modelDir}\n`);
    reportSkipped(result.stats, opt.str(args, 'data')!);
    return 0;
  } finally {
    stopping.off();
    model.dispose();
  }
}

/**
 * "4 steps in 12s (0.35 steps/s), last loss 0.4213", and after a resume
 * "2 steps in 5s (0.41 steps/s: steps 5–6, resumed from step 4), last loss 0.4102": only this run's steps
 * are counted as this run's, and its speed is over the time spent in them.
 */
export function summary(r: Pick<FitResult, 'step' | 'startStep' | 'seconds' | 'lastLoss'>, took: string): string {
  const steps = r.step - r.startStep;
  const perSecond = r.seconds > 0 ? steps / r.seconds : 0;
  const rate = perSecond > 0 ? `${perSecond.toFixed(perSecond >= 100 ? 0 : perSecond >= 10 ? 1 : 2)} steps/s` : '';
  const resumed =
    r.startStep === 0
      ? ''
      : steps > 1
        ? `steps ${r.startStep + 1}–${r.step}, resumed from step ${r.startStep}`
        : steps === 1
          ? `step ${r.step}, resumed from step ${r.startStep}`
          : `the run was already at step ${r.step}`;
  const detail = [rate, resumed].filter((x) => x !== '').join(': ');
  const loss = steps > 0 ? `, last loss ${r.lastLoss.toFixed(4)}` : '';
  return `${counted(steps, 'step')} in ${took}${detail ? ` (${detail})` : ''}${loss}`;
}
