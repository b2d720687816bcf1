// Deciding a resume, before anything is loaded or written: which checkpoint (the newest of the run that
// owns the output folder, or one named), whether the current options and data match it (differences
// are refused, naming them, unless allowChangedConfig), where in the data it stands, and whether
// anything is left to do.
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { listCheckpoints, listRunCheckpoints, readTrainerState, STATE_FORMAT } from './checkpoint.js';
import type { OptionNamer, ResolvedOptions } from './options.js';
import {
  configChanges,
  describeChanges,
  findResumeCheckpoint,
  foreignContents,
  heldRun,
  readRunRecord,
  RUN_FILE,
  type ConfigChange,
  type DataIdentity,
  type ResumePoint,
  type RunIdentity,
} from './run.js';
import { counted } from '../util/plural.js';
import { learningRate, type ScheduleSpec } from './schedule.js';
import { emptyStats, type DataStats } from '../data/pairs.js';
import { configToJson, readConfig, type LlamaConfig } from '../model/config.js';


/** Where training stands: enough to continue bit for bit. */
export interface Position {
  step: number;
  epoch: number;
  /** Groups consumed in `epoch`. */
  groups: number;
  rngState: number[];
  /**
   * The epoch's data counts up to here: as counted when the last batch consumed was read (rows waiting
   * in the shuffle buffer included; the whole epoch's once all its rows are consumed), never a batch
   * read ahead.
   */
  stats: DataStats;
}

export interface Resume {
  point: ResumePoint;
  position: Position;
  /** The checkpoint's run (null: written before runs were recorded; the resume becomes a new run). */
  run: Pick<RunIdentity, 'id' | 'startedAt'> | null;
  /** Differences from the checkpoint's settings that allowChangedConfig let through. */
  changes: ConfigChange[];
  /** The lr schedule the checkpoint's run followed, and the epochs / maxSteps that sized it (null: not recorded). */
  planned: { schedule: ScheduleSpec; epochs: unknown; maxSteps: unknown } | null;
}

/** What decides the order and sampling of groups: changing it means the saved sampling state cannot be replayed. */
const SAMPLING = new Set(['seed', 'groupSize', 'shuffleBuffer', 'data']);

/** The checkpoint options.resume names, checked against the options and `data`; notices say what was decided. */
export function planResume(o: ResolvedOptions, optionName: OptionNamer, data: DataIdentity, notice: (m: string) => void): Resume {
  const n = optionName;
  if (typeof o.resume === 'string') checkResumeFolder(o.resume, n);
  const point: ResumePoint =
    typeof o.resume === 'string' ? { dir: o.resume, runId: null, otherRuns: [] } : findResumeCheckpoint(o.outputDir!, n);
  const state = readTrainerState(point.dir);
  if (state['format'] !== STATE_FORMAT) throw new Error(`${point.dir}/trainer_state.json: not a llama2-embedding trainer state`);
  const saved = state['run'] as Partial<RunIdentity> | undefined;
  const run = typeof saved?.id === 'string' ? { id: saved.id, startedAt: typeof saved.startedAt === 'string' ? saved.startedAt : '' } : null;
  const position = positionOf(state, point.dir);
  if (typeof o.resume === 'string' && o.outputDir) refuseOtherOutput(o.outputDir, point.dir, run?.id ?? null, position.step, n);
  const changes = configChanges(state, o, data);
  if (changes.length > 0) {
    const list = describeChanges(changes, n);
    if (!o.allowChangedConfig) {
      throw new Error(
        `cannot resume from ${point.dir}: it was trained with other settings: ${list}; ` +
          `resume with the same values, or use ${n('allowChangedConfig')} to continue with the new ones`,
      );
    }
    notice(`continuing with changed settings: ${list}`);
  }
  if (point.otherRuns.length > 0) {
    const k = point.otherRuns.length;
    notice(`ignoring ${counted(k, 'checkpoint')} of other runs in ${o.outputDir} (${point.otherRuns.map((c) => basename(c.dir)).join(', ')})`);
  }
  if (changes.some((c) => SAMPLING.has(c.option))) position.rngState = [];
  const dataChanged = changes.some((c) => c.option === 'data');
  if (dataChanged) position.stats = emptyStats(); // the old data's counts, whatever the position
  if (dataChanged && position.groups > 0) {
    // the old position means nothing in other data: past its end, or skipping its first groups unread
    notice(
      `the data changed: epoch ${position.epoch + 1} reads it from its beginning (the checkpoint was ${position.groups} groups ` +
        `into the old data); step ${position.step} and the optimizer state carry on`,
    );
    position.groups = 0;
  }
  const sched = state['schedule'] as Partial<ScheduleSpec> | undefined;
  const options = (state['options'] ?? {}) as Record<string, unknown>;
  const planned =
    sched && typeof sched.totalSteps === 'number' && typeof sched.warmupSteps === 'number' && typeof sched.baseLr === 'number' && typeof sched.name === 'string'
      ? { schedule: sched as ScheduleSpec, epochs: options['epochs'], maxSteps: options['maxSteps'] }
      : null;
  return { point, position, run, changes, planned };
}

/**
 * A resume whose --epochs / --max-steps give a linear or cosine schedule another length than the
 * checkpoint's run had: the lr from the next step on follows another curve (a forgotten --epochs 2 ended
 * the run at half its steps on a steeper decay, without a word). Refused unless allowChangedConfig,
 * said then; null when the schedule is the run's.
 */
export function scheduleChange(resumed: Resume, now: ScheduleSpec, nextStep: number, o: ResolvedOptions, n: OptionNamer): string | null {
  const was = resumed.planned?.schedule;
  if (!was || now.name === 'constant' || was.name !== now.name) return null; // (another schedule is a run-defining change)
  if (was.totalSteps === now.totalSteps && was.warmupSteps === now.warmupSteps) return null;
  const sized = (epochs: unknown, maxSteps: unknown): string =>
    typeof maxSteps === 'number' && maxSteps > 0 ? `${n('maxSteps')} ${maxSteps}` : `${n('epochs')} ${String(epochs)}`;
  const lr = (spec: ScheduleSpec): string => {
    const x = learningRate(spec, nextStep);
    return x === 0 ? '0' : x.toPrecision(3);
  };
  const what =
    `the ${now.name} schedule of ${resumed.point.dir}'s run spans ${was.totalSteps} steps (${sized(resumed.planned!.epochs, resumed.planned!.maxSteps)}), ` +
    `and ${sized(o.epochs, o.maxSteps)} now makes it ${now.totalSteps}` +
    (was.warmupSteps !== now.warmupSteps ? ` with ${now.warmupSteps} warm-up steps (was ${was.warmupSteps})` : '') +
    `: step ${nextStep}'s lr would be ${lr(now)}, not ${lr(was)}`;
  if (!o.allowChangedConfig) {
    throw new Error(`cannot resume: ${what}; resume with the run's ${sized(resumed.planned!.epochs, resumed.planned!.maxSteps)}, or use ${n('allowChangedConfig')} to continue on the new schedule`);
  }
  return `continuing on a changed schedule: ${what}`;
}

/**
 * Continuing from a named checkpoint (of run `runId`, at `step`) into `outputDir`: the folder must be that
 * run's, or new or empty (a fork), never another run's with a model or checkpoints, nor a folder of other
 * files (a model copied there would be replaced). Nor may that run have checkpoints past `step` there:
 * they would be taken for the continued run's (the limit pruned the new ones as older, and a resume
 * went on from the old branch).
 */
function refuseOtherOutput(outputDir: string, checkpoint: string, runId: string | null, step: number, n: OptionNamer): void {
  const record = readRunRecord(outputDir);
  const cannot = `cannot continue from ${checkpoint} into ${outputDir}`;
  if (runId !== null && (record === null || record.runId === runId)) {
    const later = listRunCheckpoints(outputDir).filter((c) => c.runId === runId && c.step > step).map((c) => basename(c.dir));
    if (later.length > 0) {
      throw new Error(
        `${cannot}: the run went on past step ${step} there (${later.join(', ')}), and continuing from an earlier step would ` +
          `mix the two: continue into a new or empty ${n('outputDir')}, or move those out of ${outputDir} first`,
      );
    }
  }
  if (record?.runId === runId) return;
  if (record) {
    const held = heldRun(outputDir, record.runId);
    if (held === null) return;
    throw new Error(`${cannot}: it already holds ${held}: continue that run with ${n('resume')} alone, or use a new or empty ${n('outputDir')}`);
  }
  // the run's own checkpoints there (its record lost) are not in the way
  const ours = runId === null ? [] : listRunCheckpoints(outputDir).filter((c) => c.runId === runId).map((c) => basename(c.dir));
  const foreign = foreignContents(outputDir, ours);
  if (foreign !== null) throw new Error(`${cannot}: ${foreign}; use a new or empty ${n('outputDir')}`);
}

/**
 * Refuses a resume folder that is not a checkpoint, saying what it is: missing (a resume path is always
 * a local folder, never a hub id), a run's output folder (name one of its checkpoints), or another folder.
 */
export function checkResumeFolder(dir: string, optionName: OptionNamer): void {
  if (existsSync(join(dir, 'trainer_state.json'))) return;
  const flag = `${optionName('resume')} ${dir}`;
  if (!existsSync(dir)) throw new Error(`${flag}: no such checkpoint folder`);
  if (!statSync(dir).isDirectory()) throw new Error(`${flag}: not a checkpoint folder (it is a file)`);
  const inside = listCheckpoints(dir);
  if (inside.length > 0 || existsSync(join(dir, RUN_FILE))) {
    const which = inside.length > 0 ? `name one of its checkpoints (${inside.map((c) => basename(c.dir)).join(', ')}), or ` : '';
    throw new Error(
      `${flag}: this is a run's output folder, not a checkpoint: ${which}continue its run with ${optionName('outputDir')} ${dir} ` +
        `and ${optionName('resume')} alone`,
    );
  }
  throw new Error(`${flag}: not a checkpoint folder (no trainer_state.json)`);
}

function positionOf(state: Record<string, unknown>, dir: string): Position {
  const data = state['data'] as { position?: { epoch?: unknown; groups?: unknown; rngState?: unknown }; stats?: unknown } | undefined;
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
  // a hand-edited or damaged state: a step that is not a whole number (checkpoint-6.5) would be saved
  // where no later resume looks, a negative count would replay another order of the data
  const bad = (what: string, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${dir}/trainer_state.json: ${what} must be a whole number ≥ ${min}, got ${v}`);
  };
  bad('globalStep', step, 1);
  bad('data.position.epoch', p.epoch, 0);
  bad('data.position.groups', p.groups, 0);
  const named = /^checkpoint-(\d+)$/.exec(basename(dir))?.[1];
  if (named !== undefined && Number(named) !== step) {
    throw new Error(`${dir}/trainer_state.json: globalStep ${step} is not the step its folder is named for (${named})`);
  }
  return { step, epoch: p.epoch, groups: p.groups, rngState: p.rngState as number[], stats: statsOf(data?.stats) };
}

/**
 * A checkpoint's saved data counts; none when missing or malformed (they are for reports only: a resume
 * counts again as it replays the epoch). Those of older versions ran ahead by the batch read ahead.
 */
function statsOf(v: unknown): DataStats {
  const s = v as Partial<Record<keyof DataStats, unknown>> | null | undefined;
  const count = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (typeof s !== 'object' || s === null || !Array.isArray(s.firstBadLines) || !s.firstBadLines.every(count)) return emptyStats();
  const { rows, badLines, noPositive, noNegative } = s;
  if (!count(rows) || !count(badLines) || !count(noPositive) || !count(noNegative)) return emptyStats();
  return { rows, badLines, firstBadLines: [...(s.firstBadLines as number[])], noPositive, noNegative };
}

/**
 * Why a resumed run has nothing left to do (null: it has). Reaching the target exactly with no final
 * model of that step written yet still has one thing to do: write it.
 */
export function nothingToDo(o: ResolvedOptions, optionName: OptionNamer, pos: Position, dir: string, runId: string): string | null {
  const n = optionName;
  const byStep = o.maxSteps > 0;
  const reached = byStep ? pos.step >= o.maxSteps : pos.epoch >= o.epochs;
  const target = byStep ? `${n('maxSteps')} ${o.maxSteps}` : `${n('epochs')} ${o.epochs}`;
  const record = o.outputDir ? readRunRecord(o.outputDir) : null;
  const hasModel = o.outputDir ? existsSync(join(o.outputDir, 'model.safetensors')) : false;
  if (!reached) {
    // the run went on past this checkpoint and wrote its final model with no checkpoint at its end
    // (saveSteps 0): trained again from here, and its log cut back, by a second resume of a done run
    const final = record?.runId === runId && hasModel ? record : null;
    const done = final && final.finalModelStep !== null && final.finalModelStep > pos.step && (byStep ? final.finalModelStep >= o.maxSteps : (final.finalModelEpochs ?? -1) >= o.epochs);
    if (!done) return null;
    return (
      `nothing to do: ${o.outputDir} holds the run's final model, of step ${final.finalModelStep}, which reached ${target}; ` +
      `nothing was written (its newest checkpoint, ${dir}, is older: no checkpoint was saved at the run's end)`
    );
  }
  // (a checkpoint some groups into the epoch after the last is past it too: its final model would be
  // a part of that epoch's, written over the one of the last epoch's end)
  const past = byStep ? pos.step > o.maxSteps : pos.epoch > o.epochs || pos.groups > 0;
  const untouched = 'nothing was written';
  if (past) {
    const where = byStep
      ? `at step ${pos.step}, past ${n('maxSteps')} ${o.maxSteps}`
      : pos.groups > 0
        ? `${pos.groups} groups into epoch ${pos.epoch + 1}, past ${n('epochs')} ${o.epochs}`
        : `${pos.epoch} epochs in, past ${n('epochs')} ${o.epochs}`;
    return `nothing to do: ${dir} is ${where}; ${untouched} (raise ${n(byStep ? 'maxSteps' : 'epochs')} to train further)`;
  }
  const finalWritten = record?.runId === runId && record.finalModelStep === pos.step && hasModel;
  if (o.outputDir && !finalWritten) return null;
  const model = o.outputDir ? ` and its final model is in ${o.outputDir}` : '';
  return `nothing to do: ${dir} has reached ${target}${model}; ${untouched}`;
}

/**
 * A checkpoint's load failure (`err`), with the way past it: to the checkpoint before a damaged newest
 * one (moved out: naming the earlier one into the same folder is refused while a later one is there),
 * or another.
 */
export function damagedCheckpoint(err: unknown, dir: string, o: Pick<ResolvedOptions, 'resume' | 'outputDir'>, n: OptionNamer): Error {
  const way =
    o.resume === true && o.outputDir
      ? `to resume from the checkpoint before it, move ${basename(dir)} out of ${o.outputDir}`
      : `name another checkpoint's folder with ${n('resume')}`;
  return new Error(`${err instanceof Error ? err.message : String(err)}; ${way}`, { cause: err });
}

/** The config.json keys that make a model's parameters: a checkpoint of other values cannot be resumed by it. */
const SHAPE_KEYS = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim'];

/**
 * A checkpoint of a model of another shape than the one being trained is refused before anything is
 * loaded, saying so: the moments' length told it only as damage ("move it out", which cannot help).
 * A checkpoint whose config.json cannot be read is left to the loading, which names the fault.
 */
export function refuseOtherShape(dir: string, model: LlamaConfig): void {
  let saved: LlamaConfig;
  try {
    saved = readConfig(dir);
  } catch {
    return;
  }
  // compared as config.json writes them (configToJson: one place for the names)
  const [was, is] = [configToJson(saved), configToJson(model)];
  const differ = SHAPE_KEYS.filter((key) => was[key] !== is[key]).map((key) => `${key} ${String(was[key])} (the model: ${String(is[key])})`);
  if (differ.length === 0) return;
  throw new Error(
    `cannot resume from ${dir}: it is a checkpoint of a model of another shape: ${differ.join(', ')}; ` +
      'resume with the model the run was started from',
  );
}
