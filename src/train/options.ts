// Trainer options: the recipe's values as defaults (DESIGN.md §1), and their validation.
import { FLOAT32_RANGE, isPositiveFloat32 } from '../model/config.js';
import { DEFAULT_MAX_LENGTH } from '../model/embedding-model.js';
import { parseSchedule, type ScheduleName } from './schedule.js';
import { describeValue } from '../util/describe.js';
import { closest } from '../util/closest.js';
import { optionItself, type OptionNamer } from '../util/options.js';

export interface TrainerOptions {
  /** Queries per optimizer micro-batch (recipe: 8). */
  batchSize?: number;
  /** Passages per query: 1 positive + G−1 negatives (recipe: 3). */
  groupSize?: number;
  /** InfoNCE temperature (recipe: 0.02). */
  temperature?: number;
  /** Score each query against every passage of the batch (recipe: true). */
  inBatchNegatives?: boolean;
  /** Peak learning rate (recipe: 2e-5). */
  lr?: number;
  schedule?: ScheduleName;
  /** Warm-up optimizer steps (wins over warmupRatio when > 0). */
  warmupSteps?: number;
  /** Warm-up as a fraction of the total optimizer steps (HF: ceil(ratio · total)). */
  warmupRatio?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** AdamW decoupled weight decay (recipe: 0); never applied to biases and norm weights. */
  weightDecay?: number;
  /** Global gradient-norm clipping (recipe: 0.5); 0 disables. */
  maxGradNorm?: number;
  /** Truncation of queries / passages in tokens, BOS included (recipe: 8192 each). */
  queryMaxLen?: number;
  passageMaxLen?: number;
  /** GradCache token budget of one forward/backward chunk; a step larger than this recomputes. */
  chunkTokens?: number;
  /** Micro-batches per optimizer step (gradients scaled by 1/N). */
  gradientAccumulationSteps?: number;
  /** Passes over the data (ignored when maxSteps > 0, which trains until that step, like HF). */
  epochs?: number;
  /** Stop after this optimizer step (0 = run the epochs). */
  maxSteps?: number;
  /** Seed of shuffling and group sampling. */
  seed?: number;
  /**
   * 'all' (default, the recipe's: the Hugging Face Trainer's sampler): each epoch a uniform permutation
   * of all the rows of a file or an array (an iterable's through a buffer of 10000 rows); N: a buffer of
   * N rows, which keeps the order near the file's; 0 keeps file order (pre-shuffled data).
   */
  shuffleBuffer?: number | 'all';
  skipBadLines?: boolean;
  /** Folder for checkpoints and the final model; without it nothing is written. */
  outputDir?: string;
  /** Checkpoint every N optimizer steps and at the end (0 = only when interrupted). */
  saveSteps?: number;
  /**
   * Keep the newest N checkpoints of this run plus its best one (default 3; 0 = all). The best checkpoint
   * is the one with the lowest mean training loss over the steps since the checkpoint before it.
   */
  saveTotalLimit?: number;
  /**
   * Continue from the newest checkpoint of the run that owns outputDir (true), or from the given
   * checkpoint folder. Without it (or `overwrite`), an outputDir holding a model or checkpoints is refused.
   */
  resume?: boolean | string;
  /** Start a new run in an outputDir that holds another run: its checkpoints go as this run saves its own. */
  overwrite?: boolean;
  /** Resume even when hyper-parameters or data differ from the checkpoint's (the new values are used). */
  allowChangedConfig?: boolean;
  /** Append one JSON object per optimizer step to this file. */
  logFile?: string;
  /** Tokenizer files to save with the model (default the model's own folder). */
  tokenizerDir?: string;
}

/** Options that say where and how a run is kept, not what it computes. */
type RunControl = 'outputDir' | 'logFile' | 'tokenizerDir' | 'resume' | 'overwrite' | 'allowChangedConfig';

export type ResolvedOptions = Required<Omit<TrainerOptions, RunControl>> & Pick<TrainerOptions, RunControl>;

/**
 * Options that define what a run computes: resuming with any of them changed is refused unless
 * allowChangedConfig (epochs / maxSteps may change: that is what resuming is for; chunkTokens only
 * bounds memory).
 */
export const RUN_DEFINING_OPTIONS = [
  'batchSize',
  'groupSize',
  'temperature',
  'inBatchNegatives',
  'lr',
  'schedule',
  'warmupSteps',
  'warmupRatio',
  'beta1',
  'beta2',
  'eps',
  'weightDecay',
  'maxGradNorm',
  'queryMaxLen',
  'passageMaxLen',
  'gradientAccumulationSteps',
  'seed',
  'shuffleBuffer',
] as const satisfies readonly (keyof TrainerOptions)[];

export { optionItself, type OptionNamer };

/** An option value is invalid; `option` is the TrainerOptions key, the message names it as the caller knows it. */
export class TrainerOptionError extends Error {
  override name = 'TrainerOptionError';
  constructor(
    readonly option: keyof TrainerOptions,
    message: string,
  ) {
    super(message);
  }
}

export const RECIPE_DEFAULTS = {
  batchSize: 8,
  groupSize: 3,
  temperature: 0.02,
  inBatchNegatives: true,
  lr: 2e-5,
  schedule: 'constant',
  warmupSteps: 0,
  warmupRatio: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maxGradNorm: 0.5,
  queryMaxLen: DEFAULT_MAX_LENGTH,
  passageMaxLen: DEFAULT_MAX_LENGTH,
  chunkTokens: 16384,
  gradientAccumulationSteps: 1,
  epochs: 1,
  maxSteps: 0,
  seed: 42,
  shuffleBuffer: 'all',
  skipBadLines: false,
  saveSteps: 500,
  saveTotalLimit: 3,
} as const satisfies Partial<TrainerOptions>;

/** Every option's kind: TypeScript checks that the list is whole, and a plain-JS caller's typo is named. */
const OPTION_KINDS: Record<keyof TrainerOptions, 'number' | 'boolean' | 'string' | 'other'> = {
  batchSize: 'number', groupSize: 'number', temperature: 'number', inBatchNegatives: 'boolean', lr: 'number',
  schedule: 'other', warmupSteps: 'number', warmupRatio: 'number', beta1: 'number', beta2: 'number', eps: 'number',
  weightDecay: 'number', maxGradNorm: 'number', queryMaxLen: 'number', passageMaxLen: 'number', chunkTokens: 'number',
  gradientAccumulationSteps: 'number', epochs: 'number', maxSteps: 'number', seed: 'number', shuffleBuffer: 'other',
  skipBadLines: 'boolean', outputDir: 'string', saveSteps: 'number', saveTotalLimit: 'number', resume: 'other',
  overwrite: 'boolean', allowChangedConfig: 'boolean', logFile: 'string', tokenizerDir: 'string',
};

/** Largest batch size and group size. */
const MAX_BATCH_OR_GROUP = 65536;
/** Most entries of a step's score matrix (batch size × batch size × group size): int32 indices. */
const MAX_SCORES = 2 ** 31 - 1;

export function resolveOptions(o: TrainerOptions, optionName: OptionNamer = optionItself): ResolvedOptions {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TypeError(`Trainer: options must be an object, got ${describeValue(o)}`);
  for (const [key, v] of Object.entries(o)) {
    const kind = OPTION_KINDS[key as keyof TrainerOptions] as string | undefined;
    if (kind === undefined) {
      const near = closest(key, Object.keys(OPTION_KINDS));
      throw new TrainerOptionError(key as keyof TrainerOptions, `unknown option ${key}${near ? ` (did you mean ${near}?)` : ''}`);
    }
    if (v === undefined || kind === 'other' || kind === 'number') continue; // numbers: checked below, with their ranges
    if (typeof v !== kind) throw new TrainerOptionError(key as keyof TrainerOptions, `${optionName(key as keyof TrainerOptions)} must be a ${kind}, got ${describeValue(v)}`);
  }
  if (o.resume !== undefined && typeof o.resume !== 'boolean' && typeof o.resume !== 'string') {
    throw new TrainerOptionError('resume', `${optionName('resume')} must be true, false or a checkpoint folder, got ${describeValue(o.resume)}`);
  }
  const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as TrainerOptions;
  const r = { ...RECIPE_DEFAULTS, ...defined } as ResolvedOptions;
  const fail = (name: keyof TrainerOptions, rest: string): never => {
    throw new TrainerOptionError(name, `${optionName(name)} ${rest}`);
  };
  const positiveInt = (name: keyof TrainerOptions, min: number): void => {
    const v = r[name as keyof ResolvedOptions];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(name, `must be an integer ≥ ${min}, got ${describeValue(v)}`);
  };
  const positive = (name: keyof TrainerOptions, allowZero: boolean): void => {
    const v = r[name as keyof ResolvedOptions];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
      fail(name, `must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${describeValue(v)}`);
    }
  };
  positiveInt('batchSize', 1);
  positiveInt('groupSize', 1);
  // bounds of the step's arrays: a group is built as one array (a group size of 3e9 ran Node out of
  // memory, an abort), the loss's score matrix is B × B·G (int indices in native code)
  for (const name of ['batchSize', 'groupSize'] as const) if (r[name] > MAX_BATCH_OR_GROUP) fail(name, `must be at most ${MAX_BATCH_OR_GROUP}, got ${r[name]}`);
  if (r.batchSize * r.batchSize * r.groupSize > MAX_SCORES) {
    fail(
      'groupSize',
      `${r.groupSize} with ${optionName('batchSize')} ${r.batchSize} makes a score matrix of ${r.batchSize} × ${r.batchSize * r.groupSize}, ` +
        `more than the ${MAX_SCORES} entries a step can hold`,
    );
  }
  positiveInt('gradientAccumulationSteps', 1);
  positiveInt('epochs', 1);
  positiveInt('maxSteps', 0);
  positiveInt('warmupSteps', 0);
  if (r.shuffleBuffer !== 'all' && !(typeof r.shuffleBuffer === 'number' && Number.isInteger(r.shuffleBuffer) && r.shuffleBuffer >= 0)) {
    fail('shuffleBuffer', `must be 'all' or an integer ≥ 0, got ${describeValue(r.shuffleBuffer)}`);
  }
  positiveInt('saveSteps', 0);
  positiveInt('saveTotalLimit', 0);
  positiveInt('queryMaxLen', 1);
  positiveInt('passageMaxLen', 1);
  positiveInt('seed', -0x80000000);
  // one passage per query and no other group's to score against: the loss is 0 at every step
  if (r.groupSize === 1 && r.inBatchNegatives === false) {
    fail('groupSize', `1 with ${optionName('inBatchNegatives')} off leaves each query only its positive to score: the loss is always 0 and nothing is learned; use a larger ${optionName('groupSize')} or in-batch negatives`);
  }
  positive('temperature', false);
  if (!isPositiveFloat32(r.temperature)) fail('temperature', `must be ${FLOAT32_RANGE}, got ${r.temperature}`);
  // the scores are divided by it in float32: below 1 / 3.4e38 every score was infinite, said as divergence
  if (Math.fround(1 / Math.fround(r.temperature)) === Infinity) {
    fail('temperature', `must be at least 2.94e-39 (the scores are divided by it in float32, and 1 / ${r.temperature} is past its range), got ${r.temperature}`);
  }
  positive('lr', true);
  positive('eps', false);
  positive('weightDecay', true);
  positive('maxGradNorm', true);
  // the optimizer runs in float32: 1e39 is infinity there (an lr of 1e39 made every weight NaN), 1e-50 zero
  for (const name of ['lr', 'eps', 'weightDecay', 'maxGradNorm'] as const) {
    const v = r[name];
    if (!Number.isFinite(Math.fround(v)) || (v > 0 && Math.fround(v) === 0)) fail(name, `must be a number that a float32 holds (1.4e-45 to 3.4e38, or 0 where allowed), got ${v}`);
  }
  positive('warmupRatio', true);
  positive('chunkTokens', false);
  if (r.warmupRatio > 1) fail('warmupRatio', `must be in [0, 1], got ${r.warmupRatio}`);
  for (const b of ['beta1', 'beta2'] as const) {
    if (typeof r[b] !== 'number' || !(r[b] >= 0 && r[b] < 1)) fail(b, `must be in [0, 1), got ${describeValue(r[b])}`);
  }
  try {
    parseSchedule(r.schedule);
  } catch (err) {
    throw new TrainerOptionError('schedule', `${optionName('schedule')}: ${(err as Error).message}`);
  }
  // an empty name was taken as none: a run given outputDir '' saved nothing, without a word
  for (const name of ['outputDir', 'logFile', 'tokenizerDir', 'resume'] as const) if (r[name] === '') fail(name, 'must not be empty (leave it out for none)');
  if (r.resume && !r.outputDir && typeof r.resume !== 'string') {
    fail('resume', `needs ${optionName('outputDir')} (where the checkpoints are)`);
  }
  if (r.resume && r.overwrite) fail('overwrite', `and ${optionName('resume')} exclude each other: continue the run, or replace it`);
  return r;
}
