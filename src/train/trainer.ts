// Contrastive fine-tuning on the native model (DESIGN.md §1 recipe, §2 GradCache step):
//   per micro-batch: B groups → tokenise → accumulateGradients (forward, InfoNCE, backward; gradients accumulate
//   natively, scaled 1/N); every N micro-batches (and at an epoch's end) one optimizer step: global-norm
//   clipping + AdamW at the schedule's lr. Checkpoints every saveSteps, on interruption and at the end;
//   the final model goes to outputDir in the Hugging Face layout. Resuming restores weights, moments,
//   step, schedule and data position, so an interrupted run continues bit for bit.
// The output folder belongs to one run at a time (run.ts): a used folder is refused unless resuming or
// overwriting, a resume must match the checkpoint's settings, and nothing is written when there is
// nothing left to do. Disk space is checked before anything is written (a checkpoint holds the weights
// and two AdamW moments: about 3 × the model).
import { existsSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { EmbeddingModel, NativeModel } from '../model/embedding-model.js';
import { copyStats, describeSkipped, emptyStats, PairData, type DataStats, type RowSource, type TrainGroup } from '../data/pairs.js';
import { accumulateGradients } from './grad-step.js';
import { trainNatives, type TrainNatives } from './native-train.js';
import { optionItself, resolveOptions, TrainerOptionError, type OptionNamer, type ResolvedOptions, type TrainerOptions } from './options.js';
import { learningRate, warmupSteps, type ScheduleSpec } from './schedule.js';
import {
  checkpointNamedNonFolders,
  foreignCheckpoints,
  loadCheckpointMoments,
  NonFiniteWeightsError,
  loadCheckpointWeights,
  pruneCheckpoints,
  readTokenizerFiles,
  removeStaleCheckpointTemps,
  type TokenizerFiles,
  saveCheckpoint,
  plannedBytes,
  saveModel,
  STATE_FORMAT,
} from './checkpoint.js';
import { freeBytes } from '../util/disk.js';
import { formatBytes } from '../util/format-bytes.js';
import { dataIdentity, heldRun, newRunId, readRunRecord, refuseInputAsOutput, refuseUsedOutput, writeRunRecord, type DataIdentity, type RunIdentity } from './run.js';
import { damagedCheckpoint, nothingToDo, planResume, refuseOtherShape, scheduleChange, type Position, type Resume } from './resume.js';
import { counted } from '../util/plural.js';
import { notAFolder, statOrNull } from '../util/fs-error.js';
import { lockedBy, lockOutput, TRAIN_LOCK } from './output-lock.js';
import { endTornLine, linesAfter, refuseLogFile, StepLog, trimLog } from './step-log.js';
import { makeFolder } from '../util/folder.js';
import { describeValue } from '../util/describe.js';
import { ABORTED, untilAborted } from '../util/abortable.js';
import { cacheSnapshotRefusal } from '../hub/cache.js';
import { checkOptions, NAMING_CONTEXT, optionKeys, type NamingContext } from '../util/options.js';

export type { TrainerOptions, OptionNamer } from './options.js';
export { TrainerOptionError } from './options.js';

/** What the per-step callback (and the JSONL log) receives, once per optimizer step. */
export interface StepInfo {
  /** 1-based optimizer step. */
  step: number;
  /** Mean InfoNCE loss of the step's micro-batches. */
  loss: number;
  /** Learning rate used by this step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Real tokens (queries + passages) per second over this step. */
  tokensPerSecond: number;
  tokens: number;
  /** Epochs done, fractional when the rows per epoch are known (1.5 = half-way through the second). */
  epoch: number;
  /** Planned total optimizer steps (from the usable rows, counted before the first step; null when unknown). */
  totalSteps: number | null;
}

export interface FitOptions {
  /** After each optimizer step. A promise it returns (an async callback) is awaited before the next step; its rejection fails fit, as a thrown error does. */
  onStep?: (info: StepInfo) => unknown;
  /**
   * Aborting stops training after the current optimizer step (and saves a checkpoint when outputDir is
   * set, except in an overwrite run that has saved none yet: the folder keeps the run it was to replace).
   * While fit waits on the data for the next batch, it stops at once, dropping the micro-batches read
   * since the last step; an async source that never yields again is left waiting (its return() would
   * queue behind that wait).
   */
  signal?: AbortSignal;
  /**
   * One-line notices (resume, checkpoints saved, skipped rows); default stderr. A promise it returns is
   * not waited for, but its rejection fails fit after the current step (or as fit ends).
   */
  onNotice?: (message: string) => unknown;
  /**
   * Called once, just before this run's first step: the step it starts after (0, or the resumed one).
   * A promise it returns is awaited; its rejection fails fit, as a thrown error does.
   */
  onStart?: (info: { step: number; totalSteps: number | null; runId: string }) => unknown;
}

/** How messages name the options (default the TrainerOptions key; the CLI passes its flags). */
export type TrainerContext = NamingContext;

export interface FitResult {
  /** Optimizer steps done in all (including those before a resume). */
  step: number;
  /** The step this run started after: 0, or the resumed checkpoint's (steps of this run = step − startStep). */
  startStep: number;
  /** 'alreadyDone': a resume found nothing left to train and wrote nothing. */
  stoppedBy: 'epochs' | 'maxSteps' | 'aborted' | 'alreadyDone';
  /** Seconds spent in this run's steps (first step's start to last step's end; 0 when none ran). */
  seconds: number;
  /** The run's id (recorded in its checkpoints and in OUTPUT/training_run.json). */
  runId: string;
  /** Loss of the last step (NaN when no step ran). */
  lastLoss: number;
  /**
   * Counts of the last epoch read, up to where the run stopped: as counted when its last batch was read
   * (rows waiting in the shuffle buffer included), never a batch read ahead.
   */
  stats: DataStats;
  /** Newest checkpoint written by this run, if any. */
  checkpoint: string | null;
  /** Where the final model was written (null when aborted or without outputDir). */
  modelDir: string | null;
}

const FIT_OPTIONS = optionKeys<FitOptions>({ onStep: true, signal: true, onNotice: true, onStart: true });

/** The models a fit is training (see fit). */
const fitting = new WeakSet<NativeModel>();

/**
 * Training hit a non-finite loss or gradient; nothing was written after the last good checkpoint. The
 * model object keeps the weights the run diverged with: a retry needs the model loaded again (a retry
 * on it, with a lower lr as advised, diverged again at its first step).
 */
export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
  /** `optionName`: how the options are named (the CLI's flags); the last sentence is a library caller's. */
  constructor(
    readonly step: number,
    readonly what: string,
    readonly lastCheckpoint: string | null,
    optionName: OptionNamer = optionItself,
  ) {
    const n = optionName;
    super(
      `training diverged at step ${step}: ${what}; stopped (try a lower ${n('lr')} or a smaller ${n('maxGradNorm')}). ` +
        (lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint}.` : 'No checkpoint was saved.') +
        (n === optionItself ? ' The model trained holds the weights it diverged with: load it again (or that checkpoint) to train or encode with it.' : ''),
    );
  }
}


/** The data file (or rows) read by an epoch is not what was checked before step 1. */
export class DataChangedError extends Error {
  override name = 'DataChangedError';
}

/**
 * Takes `dir`'s lock (output-lock.ts) and removes a killed run's half-written or half-removed
 * checkpoint folders, once, as a run starts (a resume at the last step writes no checkpoint, only the
 * final model); returns the lock's release.
 */
function lockAndTidyOutput(dir: string): () => void {
  const unlock = lockOutput(dir);
  try {
    removeStaleCheckpointTemps(dir);
  } catch (err) {
    unlock();
    throw err;
  }
  return unlock;
}

export class Trainer {
  readonly options: ResolvedOptions;
  private readonly nat: TrainNatives;
  private readonly optionName: OptionNamer;
  private lastCheckpoint: string | null = null;
  /** The --log file, open while a fit runs. */
  private stepLog: StepLog | null = null;
  /** The rejection of a promise an onNotice returned, thrown at the next step (or as fit ends). */
  private noticeFailure: { err: unknown } | null = null;
  /** What this fit made that a failure or an early stop leaves empty, removed as it ends: the output folder, the log. */
  private made: { outputDir: string | null; logFile: string | null } = { outputDir: null, logFile: null };
  private run: RunIdentity = { id: '', startedAt: '', data: { source: '', bytes: null, sha256: null } };
  /** Started with overwrite: checkpoints of the run it replaces go as this one saves its own. */
  private replacing = false;
  /** The model's native side, held for the run (fit): a dispose() meanwhile waits for the run's end. */
  private held!: NativeModel;
  /** This run's training_run.json is in the output folder (claimFolder). */
  private claimed = false;
  /** Releases the output folder's lock (output-lock.ts) when the run ends. */
  private unlock: () => void = () => {};
  /** The tokenizer files saved with every checkpoint and the final model (read when fit starts). */
  private tokenizerFiles: TokenizerFiles | undefined;
  /** Loss sum and steps since the last checkpoint (its mean loss decides the best checkpoint). */
  private window = { loss: 0, steps: 0 };

  constructor(
    readonly model: EmbeddingModel,
    options: TrainerOptions = {},
    context: TrainerContext = {},
  ) {
    const m = model as Partial<EmbeddingModel> | null | undefined;
    if (typeof m !== 'object' || m === null || typeof m.hold !== 'function' || typeof m.encode !== 'function') {
      throw new TypeError(`Trainer: model must be an EmbeddingModel, got ${describeValue(model)}`);
    }
    checkOptions('Trainer', context, NAMING_CONTEXT);
    this.optionName = context.optionName ?? optionItself;
    this.options = resolveOptions(options, this.optionName);
    this.nat = trainNatives();
  }

  /**
   * Trains on `data` (a JSONL file, an array of rows, or an iterable or a function giving one). The
   * model is held meanwhile: a dispose() during the run frees it once the run has ended, as for encode.
   */
  async fit(data: RowSource, fit: FitOptions = {}): Promise<FitResult> {
    const iterable = (v: unknown): boolean =>
      typeof v === 'object' && v !== null && (Symbol.iterator in v || Symbol.asyncIterator in v);
    if (typeof data !== 'string' && typeof data !== 'function' && !iterable(data)) {
      throw new TypeError(`fit: data must be a JSONL file, an array or iterable of rows, or a function giving one, got ${describeValue(data)}`);
    }
    checkOptions('fit', fit, FIT_OPTIONS);
    for (const key of ['onStep', 'onNotice', 'onStart'] as const) {
      if (fit[key] !== undefined && typeof fit[key] !== 'function') throw new TypeError(`fit: ${key} must be a function, got ${describeValue(fit[key])}`);
    }
    if (fit.signal !== undefined && !(fit.signal instanceof AbortSignal)) throw new TypeError(`fit: signal must be an AbortSignal, got ${describeValue(fit.signal)}`);
    return this.model.hold(async (native) => {
      // one fit at a time per model: two would share its one training state (gradients, moments, the
      // pending loss), each stepping on the other's
      if (fitting.has(native)) throw new Error('fit: this model is already being trained by another fit; one fit at a time per model (await the first)');
      fitting.add(native);
      try {
        this.held = native;
        this.noticeFailure = null;
        const result = await this.fitHeld(data, fit);
        this.throwNoticeFailure();
        return result;
      } finally {
        this.stepLog?.close();
        this.stepLog = null;
        this.releaseLock();
        this.removeMadeIfEmpty();
        fitting.delete(native);
      }
    });
  }

  private async fitHeld(data: RowSource, fit: FitOptions): Promise<FitResult> {
    const o = this.options;
    const n = this.optionName;
    const notice = (m: string): void => {
      if (!fit.onNotice) {
        process.stderr.write(`llama2-embedding: ${m}\n`);
        return;
      }
      // an async onNotice that rejects was an unhandled rejection (the process ended); it fails fit
      const r = fit.onNotice(m) as { then?: unknown } | undefined;
      if (r && typeof r.then === 'function') (r as Promise<unknown>).then(undefined, (err: unknown) => (this.noticeFailure ??= { err }));
    };
    const native = this.held;
    let warnedUtf8 = false; // once, when the data is checked before step 1, not again every epoch
    const onInvalidUtf8 = (m: string): void => {
      if (!warnedUtf8) notice(m);
      warnedUtf8 = true;
    };
    const pairs = new PairData(data, { groupSize: o.groupSize, seed: o.seed, shuffleBuffer: o.shuffleBuffer, skipBadLines: o.skipBadLines, onInvalidUtf8 });

    // whose folder this is, and where this run starts: refusals come before anything is written
    const identity: DataIdentity = o.outputDir || o.resume ? await dataIdentity(data) : { source: pairs.name, bytes: null, sha256: null };
    this.run = { id: newRunId(), startedAt: new Date().toISOString(), data: identity };
    this.replacing = false;
    this.claimed = false;
    this.window = { loss: 0, steps: 0 };
    this.lastCheckpoint = null;
    // an output folder or log that cannot be made (a file in the way) fails now, not after the data check
    const blocked = (o.outputDir ? notAFolder(n('outputDir'), o.outputDir) : null) ?? (o.logFile ? notAFolder(n('logFile'), dirname(o.logFile), o.logFile) : null);
    if (blocked) throw new Error(blocked);
    // another live run training into the folder: refused before its checkpoints are even read
    const locked = o.outputDir ? lockedBy(o.outputDir) : null;
    if (locked) throw new Error(locked);
    if (o.outputDir) refuseInputAsOutput(o.outputDir, this.model.dir, n);
    let resumed: Resume | null = null;
    if (o.resume) {
      resumed = planResume(o, n, identity, notice);
      if (resumed.run) this.run = { ...resumed.run, data: identity };
    } else if (o.outputDir) {
      if (!o.overwrite) refuseUsedOutput(o.outputDir, n);
      this.replacing = Boolean(o.overwrite);
    }
    if (o.logFile) refuseLogFile(o.logFile, data, o.outputDir, n);
    if (o.outputDir) refuseForeignCheckpoints(o.outputDir, n);
    const cached = o.outputDir ? cacheSnapshotRefusal(o.outputDir, `${n('outputDir')} ${o.outputDir}`, 'a run', 'train into another folder') : null;
    if (cached) throw new Error(cached);

    // read once now: the folder may be a checkpoint of this run that its pruning removes later
    const tokenizerDir = o.tokenizerDir ?? this.model.dir;
    if (o.outputDir && !tokenizerDir) {
      // (found at the first save: every step before it lost)
      throw new TrainerOptionError(
        'tokenizerDir',
        `${n('outputDir')} needs the tokenizer files to save with the model, and this model was created in memory: pass ${n('tokenizerDir')} (a folder with tokenizer.json)`,
      );
    }
    this.tokenizerFiles = o.outputDir && tokenizerDir ? readTokenizerFiles(tokenizerDir) : undefined;

    this.nat.trainInit(native);
    const numel = this.nat.trainGetBuffer(native, 'grads').length;
    const zeros = new Float32Array(numel);
    for (const b of ['grads', 'm', 'v'] as const) this.nat.trainSetBuffer(native, b, zeros);
    this.nat.trainTakeLoss(native); // a loss an earlier fit left pending (it failed between micro-batches) is not this run's

    let pos: Position = { step: 0, epoch: 0, groups: 0, rngState: [], stats: emptyStats() };
    if (resumed) {
      pos = await this.restore(resumed);
      notice(`resuming run ${this.run.id} from ${resumed.point.dir}: step ${pos.step}, epoch ${pos.epoch + 1}, ${pos.groups} groups into it`);
      const done = nothingToDo(o, n, pos, resumed.point.dir, this.run.id);
      if (done) {
        notice(done);
        // a run killed after writing its final model left its lock (and maybe a checkpoint's temp
        // folder): removed under the lock, as a run starting there would; none, and nothing is touched
        if (o.outputDir && existsSync(join(o.outputDir, TRAIN_LOCK))) lockAndTidyOutput(o.outputDir)();
        return {
          step: pos.step,
          startStep: pos.step,
          stoppedBy: 'alreadyDone',
          seconds: 0,
          runId: this.run.id,
          lastLoss: NaN,
          stats: pos.stats,
          checkpoint: resumed.point.dir,
          modelDir: null,
        };
      }
    }
    const startStep = pos.step;
    // every line checked and the usable rows counted before anything is written or trained: bad data
    // fails now, not when an epoch reaches it, and the schedule and progress count only usable rows
    const size = typeof data === 'string' ? fileSize(data) : null;
    if (size !== null && size > SCAN_NOTICE_BYTES) notice(`checking every line of ${data} (${formatBytes(size)}) before training: about 5 s a GB`);
    const scanned = await pairs.scan();
    if (scanned) reportScan(scanned, pairs.name, o.skipBadLines, notice);
    const rowsPerEpoch = scanned ? scanned.rows : null;
    const totalSteps = this.totalSteps(rowsPerEpoch);
    if (o.schedule !== 'constant' && totalSteps === null) {
      throw new Error(`the ${o.schedule} schedule needs the total steps: set ${n('maxSteps')} (the data's length is unknown)`);
    }
    const schedule: ScheduleSpec = {
      name: o.schedule,
      baseLr: o.lr,
      warmupSteps: warmupSteps(o.warmupSteps, o.warmupRatio, totalSteps ?? 0),
      totalSteps: totalSteps ?? 0,
    };
    if (resumed) {
      const changed = scheduleChange(resumed, schedule, pos.step + 1, o, n);
      if (changed) notice(changed); // (refused before the output folder is touched)
      // a checkpoint continued into another folder (a fork) leaves its run's own branch where it was:
      // that branch's later steps in a shared log are not the fork's to drop (a resume trims them)
      const own = dirname(resolve(resumed.point.dir));
      const fork = o.outputDir === undefined || resolve(o.outputDir) !== own;
      const later = o.logFile && fork ? await linesAfter(o.logFile, pos.step, this.run.id) : null;
      if (later) {
        throw new TrainerOptionError(
          'logFile',
          `${n('logFile')} ${o.logFile} holds ${counted(later.lines, 'line')} of run ${this.run.id}'s steps after ${pos.step}, logged where it went on past ` +
            `${resumed.point.dir}: continuing into ${o.outputDir ? `another folder (${o.outputDir})` : 'no folder'} would drop them from it; give this run a log of its own`,
        );
      }
    }
    // the file as it was checked: each epoch reads it again, and must find it so (a file changed since
    // would train on rows never checked, and leave checkpoints naming the old content)
    const checkedFile = typeof data === 'string' ? statOrNull(data) : null;
    const dataChanged = (): boolean => {
      if (typeof data !== 'string' || checkedFile === null) return false;
      const now = statOrNull(data);
      return now === null || now.ino !== checkedFile.ino || now.size !== checkedFile.size || now.mtimeMs !== checkedFile.mtimeMs;
    };
    const changedError = (what: string, cause?: unknown): DataChangedError =>
      new DataChangedError(`${typeof data === 'string' ? `${n('data')} ${data}` : 'the data'} changed during training (it was checked whole before step 1): ${what}`, { cause });
    const doneAt = (step: number): boolean => o.maxSteps > 0 && step >= o.maxSteps;
    const stepsDone = (): boolean => doneAt(pos.step);
    // steps left to train: up to maxSteps, else through the epochs
    const stepsLeft = (): boolean => !stepsDone() && (o.maxSteps > 0 || pos.epoch < o.epochs);
    this.made = { outputDir: null, logFile: null };
    if (o.outputDir) {
      // made first, so that a folder that cannot be made says so (not "0 B free"); its training_run.json
      // comes with the first write (claimFolder); a new folder still empty as the fit ends goes again
      if (!existsSync(o.outputDir)) this.made.outputDir = o.outputDir;
      makeOutputFolder(o.outputDir, `${n('outputDir')} ${o.outputDir}`);
      // a resume with no step left writes the final model only (a checkpoint's room was asked for too,
      // and a disk freed for the model alone refused the one write left)
      this.checkDisk(numel, !stepsLeft());
      // the folder is this run's alone until it ends (output-lock.ts): taken before anything in it changes
      this.unlock = lockAndTidyOutput(o.outputDir);
    }

    const N = o.gradientAccumulationSteps;
    let lastLoss = NaN;
    let stoppedBy: FitResult['stoppedBy'] = o.maxSteps > 0 ? 'maxSteps' : 'epochs';
    if (o.logFile) makeOutputFolder(dirname(o.logFile), `${n('logFile')} ${o.logFile}`);
    // (not when stopped before the first step: the lines past the checkpoint were the only record of
    // steps a final model may hold)
    if (resumed && o.logFile && !fit.signal?.aborted) await trimLog(o.logFile, pos.step, this.run.id, notice);
    if (o.logFile) endTornLine(o.logFile);
    if (o.logFile && !existsSync(o.logFile)) this.made.logFile = o.logFile;
    if (o.logFile) this.stepLog = await StepLog.open(o.logFile, n, notice, fit.signal);
    let firstStarted: number | null = null;
    let lastEnded: number | null = null;
    if (stepsLeft()) await fit.onStart?.({ step: pos.step, totalSteps, runId: this.run.id });

    training: for (; stepsLeft(); pos = { ...pos, epoch: pos.epoch + 1, groups: 0, rngState: [] }) {
      if (fit.signal?.aborted) {
        stoppedBy = 'aborted';
        break;
      }
      const it = pairs.groups(pos.epoch, pos.groups, pos.rngState)[Symbol.asyncIterator]();
      let epochEnded = false;
      // a micro-batch read and tokenised: the next step's first is prepared while the device runs this
      // step (its one read-back is the only wait), so reading and tokenising leave the critical path
      const prepare = async (): Promise<Prepared> => {
        const batch = await nextBatch(it, o.batchSize);
        return {
          batch,
          // counted now: by the time the batch is trained on, the next one may have been read
          stats: copyStats(pairs.stats),
          queries: this.model.tokenize(batch.map((g) => g.query), o.queryMaxLen),
          passages: this.model.tokenize(batch.flatMap((g) => g.passages), o.passageMaxLen),
        };
      };
      let ahead: Promise<Prepared> | null = null;
      let completed: Position = { ...pos }; // after the last step done: what a checkpoint saves on an error
      let inNative = false; // a native call that failed may have left the weights half updated: never saved
      let saving: number | null = null; // the step whose checkpoint is being saved
      let stalled = false; // stopped while the reader waited on the source: its next() never settled
      // steps done since the run's start (or resume) that no checkpoint holds yet
      const unsaved = (): boolean => !!o.outputDir && completed.step > startStep && !this.checkpointedAt(completed.step);
      try {
        if (dataChanged()) throw changedError(`epoch ${pos.epoch + 1} would read what was not checked`);
        while (!epochEnded && !stepsDone()) {
          // one optimizer step: up to N micro-batches (fewer at the epoch's end)
          const started = performance.now();
          firstStarted ??= started;
          let micro = 0;
          let tokens = 0;
          while (micro < N) {
            const next = ahead ?? prepare();
            ahead = null;
            // a data source that stalls (an async iterable that never yields again) cannot hold up a stop
            const prepared = await untilAborted(next, fit.signal);
            if (prepared === ABORTED) {
              stoppedBy = 'aborted';
              stalled = true;
              // the micro-batches accumulated since then are dropped: the checkpoint is of the last step
              if (unsaved()) this.checkpointOnStop(completed, pairs, schedule, notice, rowsPerEpoch);
              break training;
            }
            const { batch, queries, passages, stats } = prepared;
            if (batch.length < o.batchSize) epochEnded = true;
            const groups = pos.groups + batch.length;
            if (rowsPerEpoch !== null && (groups > rowsPerEpoch || (epochEnded && groups < rowsPerEpoch))) {
              throw changedError(`${counted(rowsPerEpoch, 'usable row')} then, ${groups > rowsPerEpoch ? 'more' : `${groups}`} in epoch ${pos.epoch + 1}`);
            }
            if (batch.length === 0) {
              pos.stats = stats; // the epoch's end: lines skipped after its last row
              break;
            }
            inNative = true;
            const r = await accumulateGradients(native, queries, passages, {
              groupSize: o.groupSize, temperature: o.temperature, inBatchNegatives: o.inBatchNegatives, chunkTokens: o.chunkTokens, gradScale: 1 / N,
            });
            inNative = false;
            pos.groups = groups;
            // every row used: the whole epoch's counts (the lines after its last row are not read yet)
            pos.stats = scanned !== null && groups >= scanned.rows ? scanned : stats;
            micro++;
            tokens += r.tokens;
            if (epochEnded) break;
          }
          if (micro === 0) break;
          const step = pos.step + 1;
          const lr = learningRate(schedule, step);
          inNative = true;
          const stepping = this.nat.trainStep(native, {
            lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weightDecay: o.weightDecay,
            maxGradNorm: o.maxGradNorm,
            step,
          });
          // the data position after this step's batches, before the next one is drawn
          const rngState = pairs.rngState();
          if (!epochEnded && !doneAt(step)) {
            ahead = prepare();
            ahead.catch(() => {}); // its error, if any, is thrown where the batch is used
          }
          const res = await stepping;
          inNative = false;
          // the step's one read-back: its loss (left pending by the micro-batches) with the norm; a
          // non-finite one skipped the update on the device and zeroed the gradients
          lastLoss = res.loss / micro;
          if (!Number.isFinite(lastLoss)) throw new TrainingDivergedError(step, `the loss is ${lastLoss}`, this.lastCheckpoint, this.optionName);
          if (res.skipped) throw new TrainingDivergedError(step, `the gradient norm is ${res.gradNorm}`, this.lastCheckpoint, this.optionName);
          pos.step = step;
          pos.rngState = rngState;
          completed = { ...pos };
          this.window.loss += lastLoss;
          this.window.steps++;
          lastEnded = performance.now();
          const seconds = (lastEnded - started) / 1000;
          const info: StepInfo = {
            step,
            loss: lastLoss,
            lr,
            gradNorm: res.gradNorm,
            tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
            tokens,
            epoch: rowsPerEpoch ? pos.epoch + Math.min(1, pos.groups / rowsPerEpoch) : pos.epoch,
            totalSteps,
          };
          this.stepLog?.append(info, this.run.id);
          await fit.onStep?.(info);
          this.throwNoticeFailure();
          if (fit.signal?.aborted) {
            stoppedBy = 'aborted';
            if (o.outputDir) this.checkpointOnStop(pos, pairs, schedule, notice, rowsPerEpoch);
            break training; // the finally above closes the reader
          }
          if (o.outputDir && o.saveSteps > 0 && step % o.saveSteps === 0) {
            saving = step;
            this.checkpoint(pos, pairs, schedule, notice, rowsPerEpoch);
            saving = null;
          }
        }
      } catch (err) {
        // a failure outside the native calls (reading the data, the log, a callback) keeps the steps
        // done since the last checkpoint, as a stop does; a changed file is said as such
        const said = err instanceof Error && !(err instanceof DataChangedError) && !(err instanceof TrainingDivergedError);
        const thrown = said && !inNative && dataChanged() ? changedError((err as Error).message, err) : err;
        // (not when the failure is that very checkpoint's save: the same error would be said twice)
        const retry = saving !== completed.step;
        if (retry && !inNative && !(err instanceof TrainingDivergedError) && unsaved()) {
          try {
            this.checkpointOnStop(completed, pairs, schedule, notice, rowsPerEpoch);
          } catch (saving) {
            notice(`could not save the checkpoint of step ${completed.step}: ${(saving as Error).message}`);
          }
        }
        throw thrown;
      } finally {
        // leaving an epoch early (maxSteps, abort, error) must still close the file; a reader still
        // waiting on the source would queue return() behind that wait, so it is asked, not awaited
        if (stalled) it.return?.(undefined).catch(() => {});
        else if (!epochEnded) await it.return?.(undefined);
      }
      if (pos.stats.badLines + pos.stats.noPositive + pos.stats.noNegative > 0 && epochEnded) {
        const s = pos.stats;
        notice(
          `epoch ${pos.epoch + 1}: ${counted(s.rows, 'row')} used; skipped ${s.badLines} malformed, ${s.noPositive} with empty "pos", ` +
            `${s.noNegative} with empty "neg"`,
        );
      }
      if (!epochEnded) break; // maxSteps reached inside the epoch: keep the position for the checkpoint
    }

    let modelDir: string | null = null;
    if (o.outputDir && stoppedBy !== 'aborted') {
      if (o.saveSteps > 0 && pos.step > 0 && !this.checkpointedAt(pos.step)) {
        this.checkpoint(pos, pairs, schedule, notice, rowsPerEpoch);
      }
      this.ensureSpace(this.sizes(numel).model, `could not write the final model to ${o.outputDir}`);
      this.claimFolder();
      try {
        // the run's own folder (claimFolder refused another's): its final model replaces any earlier one
        saveModel(this.model, o.outputDir, { tokenizerDir: o.tokenizerDir, tokenizerFiles: this.tokenizerFiles, temperature: o.temperature, requireFinite: true, native: this.held, overwrite: true });
      } catch (err) {
        if (err instanceof NonFiniteWeightsError) throw new TrainingDivergedError(pos.step, err.message, this.lastCheckpoint, this.optionName);
        throw err;
      }
      writeRunRecord(o.outputDir, { runId: this.run.id, startedAt: this.run.startedAt, finalModelStep: pos.step, finalModelEpochs: pos.epoch });
      if (this.replacing) this.prune(notice);
      modelDir = o.outputDir;
    }
    const seconds = firstStarted !== null && lastEnded !== null ? (lastEnded - firstStarted) / 1000 : 0;
    return {
      step: pos.step,
      startStep,
      stoppedBy,
      seconds,
      runId: this.run.id,
      lastLoss,
      stats: pos.stats,
      checkpoint: this.lastCheckpoint,
      modelDir,
    };
  }

  /** Whether the newest checkpoint written or resumed from is of `step`. */
  private checkpointedAt(step: number): boolean {
    return this.lastCheckpoint !== null && basename(this.lastCheckpoint) === `checkpoint-${step}`;
  }

  private sizes(numel: number): { checkpoint: number; model: number } {
    return plannedBytes(numel, this.options.tokenizerDir ?? this.model.dir);
  }

  /** Refuses, before anything is written, an output disk that cannot hold a checkpoint and the final model. */
  private checkDisk(numel: number, modelOnly: boolean): void {
    const o = this.options;
    const free = freeBytes(o.outputDir!);
    const { checkpoint, model } = this.sizes(numel);
    if (free === null || free >= (modelOnly ? 0 : checkpoint) + model) return;
    const needs = modelOnly
      ? `the final model, all that is left to write, takes about ${formatBytes(model)}`
      : `a checkpoint takes about ${formatBytes(checkpoint)} (weights and AdamW moments) and the final model ${formatBytes(model)}`;
    throw new Error(
      `not enough disk space for ${o.outputDir}: ${needs}, but only ${formatBytes(free)} is free there; ` +
        `free some space or use another ${this.optionName('outputDir')}`,
    );
  }

  /** Throws `what: not enough disk space…` when the output disk has less than `bytes` free. */
  private ensureSpace(bytes: number, what: string): void {
    const free = freeBytes(this.options.outputDir!);
    if (free === null || free >= bytes) return;
    const kept = this.lastCheckpoint ? `; the previous checkpoint ${this.lastCheckpoint} is intact` : '';
    throw new Error(`${what}: not enough disk space (it takes about ${formatBytes(bytes)}, ${formatBytes(free)} is free)${kept}`);
  }

  private throwNoticeFailure(): void {
    const failure = this.noticeFailure;
    if (failure) throw failure.err;
  }

  /** Removes the log and then the output folder this fit made when they are still empty (a failure or a stop before step 1). */
  private removeMadeIfEmpty(): void {
    const { outputDir, logFile } = this.made;
    this.made = { outputDir: null, logFile: null };
    try {
      if (logFile !== null && statSync(logFile).isFile() && statSync(logFile).size === 0) unlinkSync(logFile);
    } catch {
      // gone already, or not ours to judge
    }
    try {
      if (outputDir !== null && readdirSync(outputDir).length === 0) rmdirSync(outputDir);
    } catch {
      // gone already, or not empty after all
    }
  }

  /** Applies saveTotalLimit to this run's checkpoints (and removes a replaced run's). */
  private prune(notice: (m: string) => void): void {
    const o = this.options;
    const { otherRuns } = pruneCheckpoints(o.outputDir!, this.run.id, o.saveTotalLimit, this.replacing);
    if (otherRuns.length > 0) {
      notice(`removed ${counted(otherRuns.length, 'checkpoint')} of the replaced run (${otherRuns.map((d) => basename(d)).join(', ')})`);
    }
  }

  /** Planned optimizer steps: maxSteps, or epochs × ceil(ceil(rows / B) / N); null when rows are unknown. */
  private totalSteps(rows: number | null): number | null {
    const o = this.options;
    if (o.maxSteps > 0) return o.maxSteps;
    if (rows === null) return null;
    const microBatches = Math.ceil(rows / o.batchSize);
    return o.epochs * Math.max(1, Math.ceil(microBatches / o.gradientAccumulationSteps));
  }

  /**
   * Makes the output folder this run's (its training_run.json), just before the run's first write
   * there: until then a run given --overwrite that fails or is stopped leaves the folder to the run it
   * would have replaced, which can still be resumed.
   */
  private claimFolder(): void {
    const dir = this.options.outputDir!;
    if (this.claimed) return;
    if (readRunRecord(dir)?.runId !== this.run.id) writeRunRecord(dir, { runId: this.run.id, startedAt: this.run.startedAt, finalModelStep: null });
    this.claimed = true;
  }

  /** Releases the output folder's lock (once: a second call does nothing). */
  private releaseLock(): void {
    this.unlock();
    this.unlock = () => {};
  }

  /**
   * On a stop or a failure: the steps since the last checkpoint saved, except in a run replacing another
   * (overwrite, over a folder that holds a model or checkpoints) that has saved nothing yet: the folder
   * then keeps the earlier run, which can still be resumed, as the overwrite option promises until the
   * new run's first checkpoint.
   */
  private checkpointOnStop(pos: Position, pairs: PairData, schedule: ScheduleSpec, notice: (m: string) => void, rowsPerEpoch: number | null): void {
    // (a new or empty folder, or one with no model or checkpoint, holds no run to keep: its steps were lost)
    const dir = this.options.outputDir!;
    if (this.replacing && !this.claimed && heldRun(dir, readRunRecord(dir)?.runId) !== null) {
      notice(
        `step ${pos.step}: no checkpoint saved: ${this.options.outputDir} still holds the run this one was to replace ` +
          `(replaced at this run's first checkpoint), which can still be resumed`,
      );
      return;
    }
    this.checkpoint(pos, pairs, schedule, notice, rowsPerEpoch);
  }

  private checkpoint(pos: Position, pairs: PairData, schedule: ScheduleSpec, notice: (m: string) => void, rowsPerEpoch: number | null): void {
    const o = this.options;
    const native = this.held;
    const numel = this.nat.trainGetBuffer(native, 'grads').length;
    this.ensureSpace(this.sizes(numel).checkpoint, `could not save the checkpoint of step ${pos.step} to ${join(o.outputDir!, `checkpoint-${pos.step}`)}`);
    const state = {
      format: STATE_FORMAT,
      version: 1,
      globalStep: pos.step,
      run: this.run,
      /** Mean training loss over the steps since the previous checkpoint (decides the best checkpoint). */
      meanLoss: this.window.steps > 0 ? this.window.loss / this.window.steps : null,
      lossSteps: this.window.steps,
      data: {
        source: pairs.name,
        // an epoch whose every row was used is said as the next one's start: a resume then knows the
        // epochs are done without reading the data again to find nothing left in it
        position:
          rowsPerEpoch !== null && pos.groups >= rowsPerEpoch
            ? { epoch: pos.epoch + 1, groups: 0, rngState: [] }
            : { epoch: pos.epoch, groups: pos.groups, rngState: pos.rngState },
        // as of the position: the batch read ahead is not yet trained on
        stats: pos.stats,
      },
      schedule,
      options: { ...o, resume: undefined, overwrite: undefined, allowChangedConfig: undefined },
    };
    let saved: { dir: string; bytes: number };
    this.claimFolder();
    try {
      saved = saveCheckpoint(o.outputDir!, pos.step, {
        model: this.model,
        native: this.held,
        moments: { m: this.nat.trainGetBuffer(native, 'm'), v: this.nat.trainGetBuffer(native, 'v') },
        state,
        temperature: o.temperature,
        tokenizerFiles: this.tokenizerFiles,
        tokenizerDir: o.tokenizerDir ?? null,
      });
    } catch (err) {
      // the step's update produced NaN/Inf weights: never checkpoint them
      if (err instanceof NonFiniteWeightsError) throw new TrainingDivergedError(pos.step, err.message, this.lastCheckpoint, this.optionName);
      throw err;
    }
    this.lastCheckpoint = saved.dir;
    this.window = { loss: 0, steps: 0 };
    notice(`step ${pos.step}: checkpoint saved to ${saved.dir} (${formatBytes(saved.bytes)})`);
    this.prune(notice);
  }

  /** Loads the resume checkpoint's weights and AdamW moments; returns its position. */
  private async restore(resume: Resume): Promise<Position> {
    const dir = resume.point.dir;
    const native = this.held;
    const numel = this.nat.trainGetBuffer(native, 'grads').length;
    let moments: { m: Float32Array; v: Float32Array };
    refuseOtherShape(dir, this.model.config);
    try {
      await loadCheckpointWeights(native, dir);
      moments = loadCheckpointMoments(dir, numel);
    } catch (err) {
      throw damagedCheckpoint(err, dir, this.options, this.optionName);
    }
    const { m, v } = moments;
    this.nat.trainSetBuffer(native, 'm', m);
    this.nat.trainSetBuffer(native, 'v', v);
    this.lastCheckpoint = dir;
    return { ...resume.position };
  }
}

/** A micro-batch of groups and its token ids (queries, then the groups' passages in order). */
interface Prepared {
  batch: TrainGroup[];
  /** The epoch's counts once the batch was read. */
  stats: DataStats;
  queries: Int32Array[];
  passages: Int32Array[];
}

/** The next `size` groups (fewer at the end of the epoch). */
async function nextBatch(it: AsyncIterator<TrainGroup>, size: number): Promise<TrainGroup[]> {
  const out: TrainGroup[] = [];
  while (out.length < size) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** mkdir -p `dir`, a failure said as `what` (the option and its value) could not be made and why. */
function makeOutputFolder(dir: string, what: string): void {
  try {
    makeFolder(dir);
  } catch (err) {
    throw new Error(`${what}: could not create the folder ${dir}: ${(err as Error).message}`);
  }
}

/** Another tool's checkpoint-<step> folders are kept, so a run that could save under their names is refused. */
function refuseForeignCheckpoints(outputDir: string, n: OptionNamer): void {
  const entries = checkpointNamedNonFolders(outputDir);
  if (entries.length > 0) {
    const names = entries.length <= 3 ? entries.join(', ') : `${entries.slice(0, 3).join(', ')}, …`;
    throw new Error(
      `${outputDir} holds ${entries.length === 1 ? 'a file' : `${entries.length} files`} named as a checkpoint (${names}): ` +
        `a run there saves its checkpoints under such names, and a file of yours is never replaced; ` +
        `move ${entries.length === 1 ? 'it' : 'them'} away or use another ${n('outputDir')}`,
    );
  }
  const foreign = foreignCheckpoints(outputDir);
  if (foreign.length === 0) return;
  const names = foreign.length <= 3 ? foreign.join(', ') : `${foreign.slice(0, 3).join(', ')}, …`;
  throw new Error(
    `${outputDir} holds ${counted(foreign.length, 'checkpoint folder')} that this trainer did not write (${names}): ` +
      `a run there saves its checkpoints under such names, and another tool's are never replaced; ` +
      `move ${foreign.length === 1 ? 'it' : 'them'} away or use another ${n('outputDir')}`,
  );
}

/** Files larger than this get a notice before they are checked (measured: about 1 s per 200 MB). */
const SCAN_NOTICE_BYTES = 1 << 30;

function fileSize(file: string): number | null {
  try {
    return statSync(file).size;
  } catch {
    return null; // the reader says why
  }
}

/** Before training: the rows a file or array has that an epoch will skip, and the usable rows left. */
function reportScan(s: DataStats, name: string, skipBadLines: boolean, notice: (m: string) => void): void {
  if (s.badLines + s.noPositive + s.noNegative === 0) return;
  notice(`${name}: ${counted(s.rows, 'usable row')}; every epoch skips ${describeSkipped(s, name, skipBadLines)}`);
}
