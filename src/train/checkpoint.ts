// Saved models and training checkpoints.
//
// A saved model is a Hugging Face folder that EmbeddingModel.load (and the original Python stack)
// reads: config.json (Llama fields + sentence_pooling_method, normalized, temperature, embedding_size),
// model.safetensors (F32, LlamaModel names at top level plus dense_layer.*), tokenizer files.
//
// A checkpoint is OUTPUT/checkpoint-<step>/: a saved model plus optimizer.safetensors (AdamW moments
// exp_avg / exp_avg_sq as flat F32 tensors laid out like the native parameter offsets) and
// trainer_state.json (step, schedule, data position, RNG state, options, the run's identity and the mean
// loss since the checkpoint before). It is built in a temp folder and renamed into place, so a failed
// write never damages the previous checkpoint. Pruning keeps a run's newest checkpoints plus its best:
// the one with the lowest mean training loss since the checkpoint before it.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { EmbeddingModel, NativeModel } from '../model/embedding-model.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import { cacheSnapshotRefusal } from '../hub/cache.js';
import { configToJson, FLOAT32_RANGE, isPositiveFloat32 } from '../model/config.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../model/safetensors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { makeFolder } from '../util/folder.js';
import { readRegularFileText } from '../util/regular-file.js';
import { folderBytes } from '../util/disk.js';
import { processAlive } from '../util/process.js';
import { parseJson } from '../util/json.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, checkPathArg, optionKeys, wrongOption } from '../util/options.js';

/** Tokenizer files copied with a model when they exist (tokenizer.json is required). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model'];

/** Tokenizer files read into memory (name → bytes), tokenizer.json first. */
export type TokenizerFiles = [name: string, data: Buffer][];

/**
 * Reads the tokenizer files of `dir` (tokenizer.json required). A trainer reads them once, at its start:
 * the folder may be a checkpoint that its own pruning later removes.
 */
export function readTokenizerFiles(dir: string): TokenizerFiles {
  if (!existsSync(join(dir, 'tokenizer.json'))) {
    throw new Error(`saveModel: ${join(dir, 'tokenizer.json')} is missing (the tokenizer to save with the model)`);
  }
  const files: TokenizerFiles = [];
  for (const name of TOKENIZER_FILES) {
    const from = join(dir, name);
    if (!existsSync(from)) continue;
    try {
      files.push([name, readFileSync(from)]);
    } catch (err) {
      throw new Error(`saveModel: could not read ${from}: ${(err as Error).message}`);
    }
  }
  return files;
}

export interface SaveModelOptions {
  /** Folder holding the tokenizer files; default the model's own folder (required for in-memory models). */
  tokenizerDir?: string | null;
  /** The tokenizer files themselves (readTokenizerFiles), in place of tokenizerDir. */
  tokenizerFiles?: TokenizerFiles;
  /** Written as config.json's `temperature` (default the model config's value). */
  temperature?: number | null;
  /** Refuse (NonFiniteWeightsError) to write weights holding NaN or ±Inf. */
  requireFinite?: boolean;
  /** The native model to read: a caller that holds the model (EmbeddingModel.hold) passes the one it holds. */
  native?: NativeModel;
  /** Replace the model a folder holds already (its config.json or model.safetensors); default false: refused. */
  overwrite?: boolean;
}

/** A model about to be saved holds NaN/Inf weights (training diverged). */
export class NonFiniteWeightsError extends Error {
  override name = 'NonFiniteWeightsError';
  constructor(readonly tensor: string) {
    super(`the weights of "${tensor}" contain NaN or Inf`);
  }
}

function allFinite(data: Float32Array): boolean {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return false;
  return true;
}

/** Writes `model` to `dir` in the Hugging Face layout (each file atomically); an fp32 model only. */
const SAVE_MODEL_OPTIONS = optionKeys<SaveModelOptions>({ tokenizerDir: true, tokenizerFiles: true, temperature: true, requireFinite: true, native: true, overwrite: true });

export function saveModel(model: EmbeddingModel, dir: string, options: SaveModelOptions = {}): void {
  const m = model as Partial<EmbeddingModel> | null | undefined;
  if (typeof m !== 'object' || m === null || typeof m.encode !== 'function' || typeof m.config !== 'object')
    throw new TypeError(`saveModel: model must be an EmbeddingModel, got ${describeValue(model)}`);
  checkOptions('saveModel', options, SAVE_MODEL_OPTIONS);
  checkPathArg('saveModel', 'dir', dir, 'folder');
  const native = options.native ?? model.native;
  if (native.precision !== 'fp32') {
    const p = native.precision;
    throw new Error(
      `saveModel: this model holds its weights in ${p} (loaded with precision '${p}'), and saving would write those ` +
        "rounded values as if they were the fp32 weights: save a model loaded with precision 'fp32'",
    );
  }
  const cached = cacheSnapshotRefusal(dir, `saveModel: ${dir}`, 'saving', 'save to another folder');
  if (cached) throw new Error(cached);
  const tokenizerDir = options.tokenizerDir ?? model.dir;
  if (!options.tokenizerFiles && !tokenizerDir) {
    throw new Error('saveModel: this model was created in memory and has no tokenizer files: pass tokenizerDir (a folder with tokenizer.json)');
  }
  const temperature = options.temperature === undefined ? model.config.temperature : options.temperature;
  // (written as config.json's temperature: -1 or "hot" was written, and the model could not be loaded)
  if (temperature !== null && !isPositiveFloat32(temperature)) throw wrongOption('saveModel', 'temperature', `null or ${FLOAT32_RANGE}`, temperature);
  const held = ['config.json', 'model.safetensors'].find((name) => existsSync(join(dir, name)));
  if (held && options.overwrite !== true) {
    throw new Error(`saveModel: ${dir} holds a model already (${held}); pass overwrite: true to replace it, or save to another folder`);
  }
  // read before anything is written: a missing tokenizer left a model without one, which then refused a retry
  const sameFolder = !options.tokenizerFiles && resolve(tokenizerDir!) === resolve(dir);
  const tokenizerFiles = framedAs(model.tokenizer, options.tokenizerFiles ?? (sameFolder ? [] : readTokenizerFiles(tokenizerDir!)));
  // a tokenizer file of the folder's earlier model that this tokenizer lacks would be read with the
  // new model (an old tokenizer_config.json's add_eos_token appended EOS to every text)
  const saved = new Set(tokenizerFiles.map(([name]) => name));
  const stray = sameFolder ? [] : TOKENIZER_FILES.filter((name) => !saved.has(name) && existsSync(join(dir, name)));
  if (stray.length > 0 && options.overwrite !== true) {
    throw new Error(
      `saveModel: ${dir} holds ${stray.join(', ')}, which the model's tokenizer has not: it would be read with the saved model ` +
        'and change its tokenizing; pass overwrite: true to remove it, or save to another folder',
    );
  }
  try {
    makeFolder(dir);
  } catch (err) {
    throw new Error(`saveModel: could not create the folder ${dir}: ${(err as Error).message}`);
  }
  const tensors = native.params().map((p) => {
    const data = native.getTensor(p.name);
    if (options.requireFinite && !allFinite(data)) throw new NonFiniteWeightsError(p.name);
    return { name: p.name, dtype: 'F32' as const, shape: p.shape, data };
  });
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const config = configToJson({ ...model.config, denseSize: model.dim }, { temperature, torch_dtype: 'float32' });
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  for (const [name, data] of tokenizerFiles) writeFileAtomic(join(dir, name), data);
  for (const name of stray) rmSync(join(dir, name), { force: true });
}

/**
 * `files` with the tokenizer's framing written into tokenizer_config.json when the tokenizer was made
 * with addBos / addEos other than its files say: the saved model then tokenises as this one does.
 */
function framedAs(tokenizer: TextTokenizer, files: TokenizerFiles): TokenizerFiles {
  const at = files.findIndex(([name]) => name === 'tokenizer_config.json');
  let config: Record<string, unknown> = {};
  if (at >= 0) {
    try {
      const v = JSON.parse(files[at]![1].toString('utf8')) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return files; // not ours to rewrite: the loader refuses it
      config = v as Record<string, unknown>;
    } catch {
      return files;
    }
  }
  // the defaults TextTokenizer reads them with
  const bos = typeof config['add_bos_token'] === 'boolean' ? config['add_bos_token'] : true;
  const eos = typeof config['add_eos_token'] === 'boolean' ? config['add_eos_token'] : false;
  if (bos === tokenizer.addBos && eos === tokenizer.addEos) return files;
  const text = JSON.stringify({ ...config, add_bos_token: tokenizer.addBos, add_eos_token: tokenizer.addEos }, null, 2) + '\n';
  const out = files.filter(([name]) => name !== 'tokenizer_config.json');
  out.push(['tokenizer_config.json', Buffer.from(text)]);
  return out;
}

/**
 * Bytes a checkpoint (weights + the two AdamW moments, F32, + tokenizer files) and a saved model (weights
 * + tokenizer files) of `numel` parameters take, with 64 KiB for headers, config and trainer state.
 */
export function plannedBytes(numel: number, tokenizerDir: string | null): { checkpoint: number; model: number } {
  let tokenizer = 0;
  for (const name of TOKENIZER_FILES) {
    const file = tokenizerDir ? join(tokenizerDir, name) : null;
    if (file && existsSync(file)) tokenizer += statSync(file).size;
  }
  const small = 64 * 1024;
  return { checkpoint: 12 * numel + tokenizer + small, model: 4 * numel + tokenizer + small };
}

export interface CheckpointInfo {
  step: number;
  dir: string;
}

const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

/** Checkpoints in `outputDir`, oldest first (by step). Folders without trainer_state.json are ignored. */
export function listCheckpoints(outputDir: string): CheckpointInfo[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ name, m: CHECKPOINT_RE.exec(name) }))
    .filter((e) => e.m !== null && existsSync(join(outputDir, e.name, 'trainer_state.json')))
    .map((e) => ({ step: Number(e.m![1]), dir: join(outputDir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outputDir: string): CheckpointInfo | null {
  return listCheckpoints(outputDir).at(-1) ?? null;
}

/** The entries named checkpoint-<step> in `outputDir` that are folders (or, with false, that are not), by step. */
function checkpointEntries(outputDir: string, folders: boolean): string[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() === folders && CHECKPOINT_RE.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => Number(CHECKPOINT_RE.exec(a)![1]) - Number(CHECKPOINT_RE.exec(b)![1]));
}

/** Every checkpoint-<step> folder in `outputDir`, complete or not (what a new run would collide with). */
export function checkpointFolders(outputDir: string): string[] {
  return checkpointEntries(outputDir, true);
}

/** The `format` of our trainer_state.json: a checkpoint-<step> folder without it is another tool's. */
export const STATE_FORMAT = 'llama2-embedding-trainer-state';

export interface RunCheckpoint extends CheckpointInfo {
  /** The run that wrote it (null: written before runs were recorded, or unreadable). */
  runId: string | null;
  /** Mean training loss over the steps since the checkpoint before it (null: unknown). */
  meanLoss: number | null;
  /** Written by our trainer (its trainer_state.json has our format), not by another tool. */
  ours: boolean;
  /** Why its trainer_state.json cannot be read (a damaged checkpoint), else null. */
  unreadable: string | null;
}

/** listCheckpoints with each checkpoint's run id and mean loss from its trainer_state.json. */
export function listRunCheckpoints(outputDir: string): RunCheckpoint[] {
  return listCheckpoints(outputDir).map((c) => {
    let state: Record<string, unknown> = {};
    let unreadable: string | null = null;
    try {
      state = readTrainerState(c.dir);
    } catch (err) {
      // an unreadable state belongs to no run: never resumed from, never pruned by a run's limit. It is
      // a damaged checkpoint of ours when its text names our format, is empty or cannot be read at all; else
      // another tool's (Hugging Face's Trainer writes NaN, which is not JSON)
      let text: string | null = null;
      try {
        text = readRegularFileText(join(c.dir, 'trainer_state.json'));
      } catch {
        // not readable at all: damaged
      }
      // (an empty one is what a crash leaves of ours: no other tool writes an empty state)
      if (text === null || text.trim() === '' || text.includes(`"${STATE_FORMAT}"`)) unreadable = (err as Error).message;
    }
    const run = state['run'] as { id?: unknown } | undefined;
    const loss = state['meanLoss'];
    return {
      ...c,
      runId: typeof run?.id === 'string' ? run.id : null,
      meanLoss: typeof loss === 'number' && Number.isFinite(loss) ? loss : null,
      ours: state['format'] === STATE_FORMAT,
      unreadable,
    };
  });
}

/**
 * The checkpoint-<step> folders in `outputDir` that another tool wrote (no trainer_state.json of ours):
 * a run here could need one of their names (every --save-steps step, or any step when stopped), and
 * must neither replace nor skip them.
 */
export function foreignCheckpoints(outputDir: string): string[] {
  const ours = new Set(listRunCheckpoints(outputDir).filter((c) => c.ours).map((c) => basename(c.dir)));
  return checkpointFolders(outputDir).filter((name) => !ours.has(name));
}

/**
 * Entries named checkpoint-<step> in `outputDir` that are not folders (a user's file, a link): never a
 * checkpoint of ours, and a run saving under that name would put them aside and delete them.
 */
export function checkpointNamedNonFolders(outputDir: string): string[] {
  return checkpointEntries(outputDir, false);
}

/**
 * Steps to keep of one run's checkpoints under `limit` (0 keeps all): the newest `limit`, plus the
 * best (lowest mean loss; the newer one on a tie) when it is older than those.
 */
export function checkpointsToKeep(checkpoints: readonly { step: number; meanLoss: number | null }[], limit: number): Set<number> {
  const byStep = [...checkpoints].sort((a, b) => a.step - b.step);
  if (limit <= 0) return new Set(byStep.map((c) => c.step));
  const keep = new Set(byStep.slice(-limit).map((c) => c.step));
  let best: { step: number; meanLoss: number } | null = null;
  for (const c of byStep) if (c.meanLoss !== null && (best === null || c.meanLoss <= best.meanLoss)) best = { step: c.step, meanLoss: c.meanLoss };
  if (best) keep.add(best.step);
  return keep;
}

/**
 * Removes run `runId`'s checkpoints beyond checkpointsToKeep(limit) and, with `removeOtherRuns`, every
 * other checkpoint folder (complete or not). Returns the folders removed, of this run and of others.
 */
export function pruneCheckpoints(
  outputDir: string,
  runId: string,
  limit: number,
  removeOtherRuns: boolean,
): { pruned: string[]; otherRuns: string[] } {
  const all = listRunCheckpoints(outputDir);
  const mine = all.filter((c) => c.runId === runId);
  const keep = checkpointsToKeep(mine, limit);
  const pruned = mine.filter((c) => !keep.has(c.step)).map((c) => c.dir);
  // the replaced run's: our trainer's checkpoints of other runs; another tool's checkpoint-<step> stays
  const otherRuns = removeOtherRuns ? all.filter((c) => c.ours && c.runId !== runId).map((c) => c.dir) : [];
  for (const dir of [...pruned, ...otherRuns]) removeCheckpointFolder(dir);
  return { pruned, otherRuns };
}

/**
 * Removes a checkpoint folder so that no half-removed one is ever taken for a checkpoint: it is first
 * renamed out of the checkpoint names (`.checkpoint-N.del-PID`, one atomic step), then deleted; a kill
 * in between leaves only the dot-named folder, which the next run in the folder removes
 * (removeStaleCheckpointTemps, called as a run starts).
 */
function removeCheckpointFolder(dir: string): void {
  const m = CHECKPOINT_RE.exec(basename(dir));
  const doomed = join(dirname(dir), `.checkpoint-${m ? m[1] : 'x'}.del-${process.pid}`);
  rmSync(doomed, { recursive: true, force: true });
  renameSync(dir, doomed);
  rmSync(doomed, { recursive: true, force: true });
}

export interface CheckpointContents {
  model: EmbeddingModel;
  /** The native model to read, when the caller holds the model (SaveModelOptions.native). */
  native?: NativeModel;
  /** AdamW first and second moments, flat (native parameter offsets). */
  moments: { m: Float32Array; v: Float32Array };
  /** Serialisable trainer state (trainer_state.json). */
  state: object;
  temperature: number | null;
  /** The tokenizer files (read at the start of the run), else the folder holding them. */
  tokenizerFiles?: TokenizerFiles;
  tokenizerDir?: string | null;
}

/**
 * Writes OUTPUT/checkpoint-<step> atomically (temp folder, then rename) and returns it with its size in
 * bytes. Weights holding NaN/Inf are refused (NonFiniteWeightsError). On failure the temp folder is
 * removed, earlier checkpoints are untouched, and the error names the step and the last checkpoint still intact.
 */
export function saveCheckpoint(outputDir: string, step: number, c: CheckpointContents): { dir: string; bytes: number } {
  const final = join(outputDir, `checkpoint-${step}`);
  let bytes = 0;
  const tmp = join(outputDir, `.checkpoint-${step}.tmp-${process.pid}`);
  try {
    mkdirSync(outputDir, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    saveModel(c.model, tmp, { tokenizerFiles: c.tokenizerFiles, tokenizerDir: c.tokenizerDir, temperature: c.temperature, requireFinite: true, native: c.native });
    const n = c.moments.m.length;
    writeSafetensors(
      join(tmp, 'optimizer.safetensors'),
      [
        { name: 'exp_avg', dtype: 'F32', shape: [n], data: c.moments.m },
        { name: 'exp_avg_sq', dtype: 'F32', shape: [n], data: c.moments.v },
      ],
      { format: 'l2e-adamw' },
    );
    writeFileAtomic(join(tmp, 'trainer_state.json'), JSON.stringify(c.state, null, 2) + '\n');
    bytes = folderBytes(tmp);
    if (existsSync(final)) {
      // a checkpoint of the same step (an earlier run): swap, then drop the old one
      const old = join(outputDir, `.checkpoint-${step}.old-${process.pid}`);
      renameSync(final, old);
      renameSync(tmp, final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, final);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof NonFiniteWeightsError) throw err;
    const previous = listCheckpoints(outputDir).filter((x) => x.step !== step).at(-1);
    const kept = previous ? `; the previous checkpoint ${previous.dir} is intact` : '';
    // the temp folder's name means nothing to the user: name the checkpoint folder it was to become
    const reason = (err as Error).message.replaceAll(tmp, final);
    throw new Error(`could not save the checkpoint of step ${step} to ${final}: ${reason}${kept}`);
  }
  return { dir: final, bytes };
}

/**
 * Folders a killed run left behind (its pid is gone): `.checkpoint-N.tmp-PID`, a checkpoint half
 * written, and `.checkpoint-N.del-PID`, one being removed, are removed; `.checkpoint-N.old-PID`, a whole
 * checkpoint set aside while being replaced, is put back when no checkpoint-N took its place, else removed.
 */
export function removeStaleCheckpointTemps(outputDir: string): void {
  for (const name of readdirSync(outputDir)) {
    const m = /^\.checkpoint-(\d+|x)\.(tmp|old|del)-(\d+)$/.exec(name);
    if (!m || processAlive(Number(m[3]))) continue;
    const final = join(outputDir, `checkpoint-${m[1]}`);
    if (m[2] === 'old' && !existsSync(final)) renameSync(join(outputDir, name), final);
    else rmSync(join(outputDir, name), { recursive: true, force: true });
  }
}

/**
 * Loads a checkpoint's weights into a model's `native` through the native safetensors loader, as EmbeddingModel.load
 * does (names, shapes and dtype F32 checked first, so nothing is half-loaded by a wrong file).
 */
export async function loadCheckpointWeights(native: Pick<NativeModel, 'params' | 'loadTensors'>, dir: string): Promise<void> {
  const header = readSafetensorsHeader(join(dir, 'model.safetensors'));
  const sources = native.params().map((p) => {
    const t = header.byName.get(p.name);
    if (!t) throw new Error(`${header.file}: tensor "${p.name}" is missing`);
    if (t.shape.join(',') !== p.shape.join(',')) {
      throw new Error(`${header.file}: tensor "${p.name}" has shape [${t.shape}] but the model expects [${p.shape}]`);
    }
    if (t.dtype !== 'F32') throw new Error(`${header.file}: tensor "${p.name}" is ${t.dtype}, expected F32`);
    return { name: p.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype };
  });
  await native.loadTensors(sources);
}

/** A checkpoint's AdamW moments; their length must equal the model's parameter count. */
export function loadCheckpointMoments(dir: string, numel: number): { m: Float32Array; v: Float32Array } {
  const header = readSafetensorsHeader(join(dir, 'optimizer.safetensors'));
  const get = (name: string): Float32Array => {
    const t = header.byName.get(name);
    if (!t) throw new Error(`${header.file}: tensor "${name}" is missing`);
    if (t.dtype !== 'F32') throw new Error(`${header.file}: tensor "${name}" is ${t.dtype}, expected F32`);
    if (t.byteLength !== numel * 4) throw new Error(`${header.file}: "${name}" holds ${t.byteLength / 4} values, the model has ${numel} parameters`);
    const x = readTensorF32(t);
    // a damaged file, named here: AdamW would turn it into NaN weights, reported as a diverged run. The
    // second moment may be +Inf (a gradient component past 1.8e19 squares to it without clipping; the
    // step is then 0 there, and the trainer saves it): NaN and negatives only
    const sq = name === 'exp_avg_sq';
    for (let i = 0; i < x.length; i++) {
      const xi = x[i]!;
      if (sq ? xi >= 0 : Number.isFinite(xi)) continue;
      const what = Number.isNaN(xi) ? 'NaN' : xi === Infinity ? 'Inf' : xi === -Infinity ? '-Inf' : String(xi);
      throw new Error(`${header.file}: tensor "${name}" has ${Number.isNaN(xi) || !sq ? 'a non-finite value' : 'a negative value'} (${what} at index ${i}); the checkpoint is damaged`);
    }
    return x;
  };
  return { m: get('exp_avg'), v: get('exp_avg_sq') };
}

export function readTrainerState(dir: string): Record<string, unknown> {
  const file = join(dir, 'trainer_state.json');
  try {
    const v = parseJson(readRegularFileText(file));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: cannot read trainer state (${(err as Error).message})`);
  }
}
