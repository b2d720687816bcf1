// Contrastive fine-tuning on the native model (DESIGN.md §1 recipe, §2 GradCache step):
//   per micro-batch: B groups → tokenise → gradStep (forward, InfoNCE, backward; gradients accumulate
//   natively, scaled 1/N); every N micro-batches (and at an epoch's end) one optimizer step: global-norm
//   clipping + AdamW at the schedule's lr. Checkpoints every saveSteps, on interruption and at the end;
//   the final model goes to outputDir in the Hugging Face layout. Resuming restores weights, moments,
//   step, schedule and data position, so an interrupted run continues bit for bit.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { EmbeddingModel } from '../model/embedding-model.js';
import { countLines, PairData, type DataStats, type RowSource, type TrainGroup } from '../data/pairs.js';
import { gradStep } from './grad-step.js';
import { trainNatives, type TrainNatives } from './native-train.js';
import { resolveOptions, type ResolvedOptions, type TrainerOptions } from './options.js';
import { learningRate, warmupSteps, type ScheduleSpec } from './schedule.js';
import {
  latestCheckpoint,
  loadCheckpointMoments,
  NonFiniteWeightsError,
  loadCheckpointWeights,
  readTrainerState,
  saveCheckpoint,
  saveModel,
} from './checkpoint.js';

export type { TrainerOptions } from './options.js';

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
  /** Planned total optimizer steps (an estimate for files: counted lines, bad ones included). */
  totalSteps: number | null;
}

export interface FitOptions {
  onStep?: (info: StepInfo) => void;
  /** Aborting stops training after the current optimizer step (and saves a checkpoint when outputDir is set). */
  signal?: AbortSignal;
  /** One-line notices (resume, skipped rows); default stderr. */
  onNotice?: (message: string) => void;
}

export interface FitResult {
  /** Optimizer steps done in all (including those before a resume). */
  step: number;
  stoppedBy: 'epochs' | 'maxSteps' | 'aborted';
  /** Loss of the last step (NaN when no step ran). */
  lastLoss: number;
  /** Counts of the last epoch read. */
  stats: DataStats;
  /** Newest checkpoint written by this run, if any. */
  checkpoint: string | null;
  /** Where the final model was written (null when aborted or without outputDir). */
  modelDir: string | null;
}

/** Training hit a non-finite loss or gradient; nothing was written after the last good checkpoint. */
export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
  constructor(
    readonly step: number,
    readonly what: string,
    readonly lastCheckpoint: string | null,
  ) {
    super(
      `training diverged at step ${step}: ${what}; stopped (try a lower lr or a smaller max grad norm). ` +
        (lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint}.` : 'No checkpoint was saved.'),
    );
  }
}

const STATE_FORMAT = 'llama2-embedding-trainer-state';

interface Position {
  step: number;
  epoch: number;
  /** Groups consumed in `epoch`. */
  groups: number;
  rngState: number[];
}

export class Trainer {
  readonly options: ResolvedOptions;
  private readonly nat: TrainNatives;
  private lastCheckpoint: string | null = null;

  constructor(
    readonly model: EmbeddingModel,
    options: TrainerOptions = {},
  ) {
    this.options = resolveOptions(options);
    this.nat = trainNatives();
  }

  async fit(data: RowSource, fit: FitOptions = {}): Promise<FitResult> {
    const o = this.options;
    const notice = fit.onNotice ?? ((m: string) => process.stderr.write(`llama2-embedding: ${m}\n`));
    const native = this.model.native;
    const pairs = new PairData(data, { groupSize: o.groupSize, seed: o.seed, shuffleBuffer: o.shuffleBuffer, skipBadLines: o.skipBadLines });

    this.nat.trainInit(native);
    const numel = this.nat.trainGetBuffer(native, 'grads').length;
    const zeros = new Float32Array(numel);
    for (const b of ['grads', 'm', 'v'] as const) this.nat.trainSetBuffer(native, b, zeros);

    let pos: Position = { step: 0, epoch: 0, groups: 0, rngState: [] };
    if (o.resume) pos = this.restore(notice);

    const rowsPerEpoch = await estimateRows(data);
    const totalSteps = this.totalSteps(rowsPerEpoch);
    if (o.schedule !== 'constant' && totalSteps === null) {
      throw new Error(`the ${o.schedule} schedule needs the total steps: set maxSteps (the data's length is unknown)`);
    }
    const schedule: ScheduleSpec = {
      name: o.schedule,
      baseLr: o.lr,
      warmupSteps: warmupSteps(o.warmupSteps, o.warmupRatio, totalSteps ?? 0),
      totalSteps: totalSteps ?? 0,
    };
    const stepsDone = (): boolean => o.maxSteps > 0 && pos.step >= o.maxSteps;
    const N = o.gradientAccumulationSteps;
    let lastLoss = NaN;
    let stoppedBy: FitResult['stoppedBy'] = o.maxSteps > 0 ? 'maxSteps' : 'epochs';
    if (o.logFile) mkdirSync(dirname(o.logFile), { recursive: true });

    training: for (; !stepsDone() && (o.maxSteps > 0 || pos.epoch < o.epochs); pos = { ...pos, epoch: pos.epoch + 1, groups: 0, rngState: [] }) {
      if (fit.signal?.aborted) {
        stoppedBy = 'aborted';
        break;
      }
      const it = pairs.groups(pos.epoch, pos.groups, pos.rngState)[Symbol.asyncIterator]();
      let epochEnded = false;
      try {
        while (!epochEnded && !stepsDone()) {
          // one optimizer step: up to N micro-batches (fewer at the epoch's end)
          const started = performance.now();
          let micro = 0;
          let lossSum = 0;
          let tokens = 0;
          while (micro < N) {
            const batch = await nextBatch(it, o.batchSize);
            if (batch.length < o.batchSize) epochEnded = true;
            if (batch.length === 0) break;
            const r = await gradStep(
              native,
              this.model.dim,
              this.model.tokenize(batch.map((g) => g.query), o.queryMaxLen),
              this.model.tokenize(batch.flatMap((g) => g.passages), o.passageMaxLen),
              { groupSize: o.groupSize, temperature: o.temperature, inBatchNegatives: o.inBatchNegatives, chunkTokens: o.chunkTokens, gradScale: 1 / N },
            );
            pos.groups += batch.length;
            if (!Number.isFinite(r.loss)) {
              this.nat.trainSetBuffer(native, 'grads', zeros);
              throw new TrainingDivergedError(pos.step + 1, `the loss is ${r.loss}`, this.lastCheckpoint);
            }
            micro++;
            lossSum += r.loss;
            tokens += r.tokens;
            if (epochEnded) break;
          }
          if (micro === 0) break;
          const step = pos.step + 1;
          const lr = learningRate(schedule, step);
          const res = await this.nat.trainStep(native, {
            lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weightDecay: o.weightDecay,
            maxGradNorm: o.maxGradNorm,
            step,
          });
          if (res.skipped) throw new TrainingDivergedError(step, `the gradient norm is ${res.gradNorm}`, this.lastCheckpoint);
          pos.step = step;
          pos.rngState = pairs.rngState();
          lastLoss = lossSum / micro;
          const seconds = (performance.now() - started) / 1000;
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
          if (o.logFile) appendFileSync(o.logFile, JSON.stringify(info) + '\n');
          fit.onStep?.(info);
          if (fit.signal?.aborted) {
            stoppedBy = 'aborted';
            if (o.outputDir) this.checkpoint(pos, pairs, schedule, notice);
            break training; // the finally above closes the reader
          }
          if (o.outputDir && o.saveSteps > 0 && step % o.saveSteps === 0) this.checkpoint(pos, pairs, schedule, notice);
        }
      } finally {
        // leaving an epoch early (maxSteps, abort, error) must still close the file
        if (!epochEnded) await it.return?.(undefined);
      }
      if (pairs.stats.badLines + pairs.stats.noPositive + pairs.stats.noNegative > 0 && epochEnded) {
        const s = pairs.stats;
        notice(
          `epoch ${pos.epoch + 1}: ${s.rows} rows used; skipped ${s.badLines} malformed, ${s.noPositive} with empty "pos", ` +
            `${s.noNegative} with empty "neg"`,
        );
      }
      if (!epochEnded) break; // maxSteps reached inside the epoch: keep the position for the checkpoint
    }

    let modelDir: string | null = null;
    if (o.outputDir && stoppedBy !== 'aborted') {
      if (o.saveSteps > 0 && pos.step > 0 && !this.lastCheckpoint?.endsWith(`checkpoint-${pos.step}`)) {
        this.checkpoint(pos, pairs, schedule, notice);
      }
      try {
        saveModel(this.model, o.outputDir, { tokenizerDir: o.tokenizerDir, temperature: o.temperature, requireFinite: true });
      } catch (err) {
        if (err instanceof NonFiniteWeightsError) throw new TrainingDivergedError(pos.step, err.message, this.lastCheckpoint);
        throw err;
      }
      modelDir = o.outputDir;
    }
    return { step: pos.step, stoppedBy, lastLoss, stats: pairs.stats, checkpoint: this.lastCheckpoint, modelDir };
  }

  /** Planned optimizer steps: maxSteps, or epochs × ceil(ceil(rows / B) / N); null when rows are unknown. */
  private totalSteps(rows: number | null): number | null {
    const o = this.options;
    if (o.maxSteps > 0) return o.maxSteps;
    if (rows === null) return null;
    const microBatches = Math.ceil(rows / o.batchSize);
    return o.epochs * Math.max(1, Math.ceil(microBatches / o.gradientAccumulationSteps));
  }

  private checkpoint(pos: Position, pairs: PairData, schedule: ScheduleSpec, notice: (m: string) => void): void {
    const o = this.options;
    const native = this.model.native;
    const state = {
      format: STATE_FORMAT,
      version: 1,
      globalStep: pos.step,
      data: {
        source: pairs.name,
        position: { epoch: pos.epoch, groups: pos.groups, rngState: pos.rngState },
        stats: pairs.stats,
      },
      schedule,
      options: { ...o, resume: undefined },
    };
    try {
      this.lastCheckpoint = saveCheckpoint(
        o.outputDir!,
        pos.step,
        {
          model: this.model,
          moments: { m: this.nat.trainGetBuffer(native, 'm'), v: this.nat.trainGetBuffer(native, 'v') },
          state,
          temperature: o.temperature,
          tokenizerDir: o.tokenizerDir ?? null,
        },
        o.saveTotalLimit,
      );
    } catch (err) {
      // the step's update produced NaN/Inf weights: never checkpoint them
      if (err instanceof NonFiniteWeightsError) throw new TrainingDivergedError(pos.step, err.message, this.lastCheckpoint);
      throw err;
    }
    notice(`step ${pos.step}: checkpoint saved to ${this.lastCheckpoint}`);
  }

  /** Loads weights, moments and position from the checkpoint named by options.resume. */
  private restore(notice: (m: string) => void): Position {
    const o = this.options;
    let dir: string;
    if (typeof o.resume === 'string') {
      dir = o.resume;
    } else {
      const latest = latestCheckpoint(o.outputDir!);
      if (!latest) throw new Error(`resume: no checkpoint-<step> folder with trainer_state.json in ${o.outputDir}`);
      dir = latest.dir;
    }
    const state = readTrainerState(dir);
    if (state['format'] !== STATE_FORMAT) throw new Error(`${dir}/trainer_state.json: not a llama2-embedding trainer state`);
    const data = state['data'] as { position?: { epoch?: unknown; groups?: unknown; rngState?: unknown } } | undefined;
    const p = data?.position;
    const step = state['globalStep'];
    if (
      typeof step !== 'number' ||
      !p ||
      typeof p.epoch !== 'number' ||
      typeof p.groups !== 'number' ||
      !Array.isArray(p.rngState) ||
      !p.rngState.every((x) => typeof x === 'number')
    ) {
      throw new Error(`${dir}/trainer_state.json: missing or malformed globalStep / data.position`);
    }
    const native = this.model.native;
    loadCheckpointWeights(this.model, dir);
    const numel = this.nat.trainGetBuffer(native, 'grads').length;
    const { m, v } = loadCheckpointMoments(dir, numel);
    this.nat.trainSetBuffer(native, 'm', m);
    this.nat.trainSetBuffer(native, 'v', v);
    this.lastCheckpoint = dir;
    notice(`resuming from ${dir}: step ${step}, epoch ${p.epoch + 1}, ${p.groups} groups into it`);
    return { step, epoch: p.epoch, groups: p.groups, rngState: p.rngState as number[] };
  }
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

/** Rows per epoch when cheaply known: a file's non-blank lines, an array's length; else null. */
async function estimateRows(data: RowSource): Promise<number | null> {
  if (typeof data === 'string') return countLines(data);
  if (Array.isArray(data)) return data.length;
  return null;
}
