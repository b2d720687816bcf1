// A training run's identity and the output folder it owns.
//
// Every run gets an id. Its checkpoints record it (trainer_state.json `run`: id, start time, the data's
// path, size and fingerprint) with the options, and OUTPUT/training_run.json names the run that owns the
// folder (and the step of the final model written there, if any). So a new run never silently mixes
// with an old one: a folder holding a model or checkpoints, or other files and no run, is refused unless
// the caller resumes or overwrites; resuming takes the newest checkpoint of the owning run, not a higher
// step of another; and a resume whose hyper-parameters or data differ from the checkpoint's is refused with the
// differences named (unless allowed).
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RowSource } from '../data/pairs.js';
import { writeFileAtomic } from '../util/atomic.js';
import { readFailure, statOrNull } from '../util/fs-error.js';
import { TRAIN_LOCK } from './output-lock.js';
import { checkpointFolders, listRunCheckpoints, type RunCheckpoint } from './checkpoint.js';
import { RUN_DEFINING_OPTIONS, type OptionNamer, type ResolvedOptions } from './options.js';
import { parseJson } from '../util/json.js';
import { readRegularFileText } from '../util/regular-file.js';

export const RUN_FILE = 'training_run.json';
const RUN_FORMAT = 'llama2-embedding-training-run';

/** OUTPUT/training_run.json: the run that owns the folder. */
export interface RunRecord {
  runId: string;
  /** ISO time the run started. */
  startedAt: string;
  /** Step of the final model written to the folder by this run (null: none yet). */
  finalModelStep: number | null;
  /** The epoch of that step's position (the epochs done, when the run ended by its epochs; absent in older records). */
  finalModelEpochs?: number | null;
}

/** What a run trains on: a file's resolved path, size and fingerprint; an array's length and hash. */
export interface DataIdentity {
  source: string;
  bytes: number | null;
  /** sha256 of a file up to 1 MiB (else of 16 evenly spaced 64 KiB blocks), or of an array's rows as JSON lines. */
  sha256: string | null;
}

const BLOCK = 64 * 1024;
const BLOCKS = 16;

/**
 * A file's fingerprint: the sha256 of its content up to BLOCKS × BLOCK bytes; beyond that, of BLOCKS
 * blocks spread evenly from the first byte to the last (with the size also recorded, an edit that keeps
 * the size and misses every block goes unnoticed; hashing a many-GB file at each start would cost minutes).
 */
function fileFingerprint(file: string, size: number): string {
  const hash = createHash('sha256');
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw readFailure(file, err); // (a bare "EACCES: permission denied, open ...")
  }
  try {
    const whole = size <= BLOCK * BLOCKS;
    const buf = Buffer.alloc(whole ? size : BLOCK);
    const offsets = whole ? [0] : Array.from({ length: BLOCKS }, (_, i) => Math.floor((i * (size - BLOCK)) / (BLOCKS - 1)));
    for (const at of offsets) {
      let done = 0;
      while (done < buf.length) {
        const n = readSync(fd, buf, done, buf.length - done, at + done);
        if (n === 0) break;
        done += n;
      }
      hash.update(buf.subarray(0, done));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Stored in each checkpoint's trainer_state.json as `run`. */
export interface RunIdentity {
  id: string;
  startedAt: string;
  data: DataIdentity;
}

/** 20261130-153800-7f3a9c: sortable by start time, unique by the random tail. */
export function newRunId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${t}-${randomBytes(3).toString('hex')}`;
}

export function readRunRecord(outputDir: string): RunRecord | null {
  const file = join(outputDir, RUN_FILE);
  if (!existsSync(file)) return null;
  try {
    const v = parseJson(readRegularFileText(file)) as Record<string, unknown>;
    if (v['format'] !== RUN_FORMAT || typeof v['runId'] !== 'string') throw new Error(`not a ${RUN_FORMAT} record`);
    const step = v['finalModelStep'];
    const epochs = v['finalModelEpochs'];
    return {
      runId: v['runId'],
      startedAt: typeof v['startedAt'] === 'string' ? v['startedAt'] : '',
      finalModelStep: typeof step === 'number' ? step : null,
      finalModelEpochs: typeof epochs === 'number' ? epochs : null,
    };
  } catch (err) {
    throw new Error(`${file}: cannot read the training run record (${(err as Error).message}); remove it to start over`);
  }
}

export function writeRunRecord(outputDir: string, record: RunRecord): void {
  mkdirSync(outputDir, { recursive: true });
  writeFileAtomic(join(outputDir, RUN_FILE), JSON.stringify({ format: RUN_FORMAT, version: 1, ...record }, null, 2) + '\n');
}

/**
 * What training reads of an in-memory row, as text: its query, pos and neg. Its other fields are not the
 * data (a BigInt or circular one failed the fingerprint with a bare JSON error, only with outputDir),
 * and a row that cannot be written as JSON is left for the reader to refuse by its place.
 */
function rowContent(row: unknown): string {
  try {
    if (typeof row !== 'object' || row === null) return JSON.stringify(row) ?? String(row);
    const r = row as Record<string, unknown>;
    return JSON.stringify([r['query'], r['pos'], r['neg']]);
  } catch {
    return '(not JSON)';
  }
}

export async function dataIdentity(data: RowSource): Promise<DataIdentity> {
  if (typeof data === 'string') {
    const st = statOrNull(data);
    if (!st?.isFile()) return { source: resolve(data), bytes: null, sha256: null }; // missing, a folder...: reading it will say so
    const size = st.size;
    return { source: resolve(data), bytes: size, sha256: fileFingerprint(data, size) };
  }
  if (Array.isArray(data)) {
    const hash = createHash('sha256');
    for (const row of data as unknown[]) hash.update(rowContent(row) + '\n');
    return { source: `${data.length} rows in memory`, bytes: null, sha256: hash.digest('hex') };
  }
  return { source: 'an iterable of rows', bytes: null, sha256: null };
}

/** One difference between a checkpoint's run and the resuming one. */
export interface ConfigChange {
  /** A TrainerOptions key, or 'data'. */
  option: string;
  was: string;
  now: string;
}

/** A run-defining option's value as a change names it (a shuffle buffer of 0 is --no-shuffle's: said so). */
function shown(key: string, value: unknown): string {
  return key === 'shuffleBuffer' && value === 0 ? '0, no shuffle' : String(value);
}

/** Differences in the run-defining options (and the data's content) between a saved state and now. */
export function configChanges(state: Record<string, unknown>, now: ResolvedOptions, data: DataIdentity): ConfigChange[] {
  const changes: ConfigChange[] = [];
  const saved = (state['options'] ?? {}) as Record<string, unknown>;
  for (const key of RUN_DEFINING_OPTIONS) {
    if (!(key in saved)) continue;
    if (saved[key] !== now[key]) changes.push({ option: key, was: shown(key, saved[key]), now: shown(key, now[key]) });
  }
  const before = (state['run'] as { data?: DataIdentity } | undefined)?.data;
  const differ = before?.sha256 && data.sha256 && (before.sha256 !== data.sha256 || before.bytes !== data.bytes);
  if (before && differ) {
    const was = before.source === data.source ? `${before.source} as it was` : before.source;
    changes.push({ option: 'data', was, now: before.source === data.source ? 'its content changed' : `${data.source}, other content` });
  }
  return changes;
}

/** "--batch-size 4 (now 8), --lr 0.001 (now 0.002)" */
export function describeChanges(changes: readonly ConfigChange[], optionName: OptionNamer): string {
  return changes.map((c) => `${optionName(c.option)} ${c.was} (now ${c.now})`).join(', ');
}

/** The checkpoint a resume continues from, and the checkpoints of other runs it passed over. */
export interface ResumePoint {
  dir: string;
  /** The run it belongs to (null: written before runs were recorded). */
  runId: string | null;
  otherRuns: RunCheckpoint[];
}

const names = (cs: readonly { dir: string }[]): string => cs.map((c) => c.dir.split(/[\\/]/).at(-1)).join(', ');

/** The newest checkpoint of the run that owns `outputDir` (training_run.json; else its only run). */
export function findResumeCheckpoint(outputDir: string, optionName: OptionNamer): ResumePoint {
  const all = listRunCheckpoints(outputDir);
  if (all.length === 0) throw new Error(`${optionName('resume')}: no checkpoint-<step> folder with trainer_state.json in ${outputDir}`);
  // a checkpoint is written whole (temp folder, then rename): one whose state cannot be read was damaged
  // since, and which run it belongs to is unknown; resuming past it would replace or remove it
  const damaged = all.filter((c) => c.unreadable !== null);
  if (damaged.length > 0) {
    throw new Error(
      `${optionName('resume')}: ${damaged[0]!.unreadable}: the checkpoint is damaged; move ${names(damaged)} out of ${outputDir} ` +
        `to resume from the newest of the others`,
    );
  }
  const record = readRunRecord(outputDir);
  let runId: string | null;
  if (record) {
    runId = record.runId;
  } else {
    const ids = [...new Set(all.map((c) => c.runId))];
    if (ids.length > 1) {
      throw new Error(
        `${optionName('resume')}: ${outputDir} holds checkpoints of ${ids.length} runs and no ${RUN_FILE} says which is current: ` +
          `name the checkpoint folder to continue from (${names(all)})`,
      );
    }
    runId = ids[0]!;
  }
  const mine = all.filter((c) => c.runId === runId);
  const otherRuns = all.filter((c) => c.runId !== runId);
  const newest = mine.at(-1);
  if (!newest) {
    throw new Error(
      `${optionName('resume')}: ${outputDir} holds no checkpoint of its run ${runId} (it saved none); ` +
        `the checkpoints there (${names(otherRuns)}) belong to other runs: name one to continue from it`,
    );
  }
  return { dir: newest.dir, runId, otherRuns };
}

/** The names in `dir`, sorted ([] when it does not exist or is not a folder). */
function entriesOf(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir).sort();
}

/** "a, b, c" or "a, b, c and 4 more". */
function fewNames(found: readonly string[]): string {
  const shown = found.slice(0, 3).join(', ');
  return found.length > 3 ? `${shown} and ${found.length - 3} more` : shown;
}

/**
 * What `outputDir`, holding no training run (no training_run.json), holds besides `ours` (names a
 * run may take as its own): null when nothing, so that a run may start or continue there.
 */
export function foreignContents(outputDir: string, ours: readonly string[] = []): string | null {
  // a run killed while writing its record leaves only the record's temp file
  // (and a killed run's lock, output-lock.ts)
  const found = entriesOf(outputDir).filter((name) => !ours.includes(name) && !name.startsWith(`.${RUN_FILE}.tmp-`) && !name.startsWith(TRAIN_LOCK));
  return found.length === 0 ? null : `it is not empty and holds no training run (${fewNames(found)})`;
}

/**
 * Refuses to start a new run in a folder other than a new or empty one or one of our runs
 * (training_run.json) that holds no model or checkpoints: the caller must resume, overwrite or
 * choose another folder. A folder of other files (a model the user copied there, sharded weights,
 * notes) is never taken over silently: the run would replace its config.json and tokenizer files
 * and write model.safetensors beside its weights.
 */
/**
 * An outputDir that is one of the run's inputs, refused even with overwrite or resume: the folder the
 * model was loaded from (its weights and config replaced by the run's), or a checkpoint folder (its
 * model replaced while its trainer_state.json and AdamW moments stayed, and a resume later paired the
 * two).
 */
export function refuseInputAsOutput(outputDir: string, modelDir: string | null, optionName: OptionNamer): void {
  const out = resolve(outputDir);
  const flag = `${optionName('outputDir')} ${outputDir}`;
  if (modelDir !== null && resolve(modelDir) === out) {
    throw new Error(`${flag} is the folder the model was loaded from: the run would replace the model it reads; give another folder`);
  }
  if (existsSync(join(out, 'trainer_state.json'))) {
    throw new Error(`${flag} is a checkpoint (it holds trainer_state.json): a run writes a run's folder, which holds its checkpoints; give another folder`);
  }
}

export function refuseUsedOutput(outputDir: string, optionName: OptionNamer): void {
  const record = readRunRecord(outputDir);
  if (!record) {
    const foreign = foreignContents(outputDir);
    if (foreign === null) return;
    throw new Error(
      `${outputDir}: ${foreign}: use ${optionName('overwrite')} to train into it anyway (the files a run writes are replaced, ` +
        `the others kept), or a new or empty ${optionName('outputDir')}`,
    );
  }
  const held = heldRun(outputDir, record.runId);
  if (held === null) return;
  throw new Error(
    `${outputDir} already holds ${held}: use ${optionName('resume')} to continue that run, ` +
      `${optionName('overwrite')} to replace it, or another ${optionName('outputDir')}`,
  );
}

/** "a trained model and 2 checkpoints (checkpoint-2 … checkpoint-4) of run ID", or null when neither is there. */
export function heldRun(outputDir: string, owner: string | undefined): string | null {
  const model = existsSync(join(outputDir, 'model.safetensors'));
  const folders = checkpointFolders(outputDir);
  if (!model && folders.length === 0) return null;
  const held = [
    model ? 'a trained model' : '',
    folders.length === 0
      ? ''
      : folders.length === 1
        ? `1 checkpoint (${folders[0]})`
        : `${folders.length} checkpoints (${folders[0]} … ${folders.at(-1)})`,
  ]
    .filter((s) => s !== '')
    .join(' and ');
  return `${held}${owner ? ` of run ${owner}` : ''}`;
}
