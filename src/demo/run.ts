// The demo: the whole product on the CPU, offline, in about a minute. It builds English ↔ Malay pairs
// from CLDR, a small Llama2 embedding model with the real Llama 2 tokenizer (random init), evaluates
// it with the published metrics, trains it with the recipe's objective (InfoNCE, in-batch + hard
// negatives, temperature 0.02, group 3, AdamW), evaluates again, and writes everything to a folder.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EmbeddingModel } from '../model/embedding-model.js';
import { parseConfig } from '../model/config.js';
import { TextTokenizer } from '../model/tokenizer.js';
import { buildTestSet, computeMetrics, type Metrics } from '../eval/metrics.js';
import { Trainer, type StepInfo, type TrainerOptions } from '../train/trainer.js';
import { resolveOptions, TrainerOptionError, type OptionNamer } from '../train/options.js';
import { saveModel } from '../train/checkpoint.js';
import { writeFileAtomic } from '../util/atomic.js';
import { buildDemoPairs } from './data.js';
import { writeLlamaTokenizer } from './llama-tokenizer.js';
import { checkDemoPackages } from './packages.js';
import { beforeAfterSvg, lossCurveSvg } from './svg.js';
import type { PairRow } from '../data/jsonl.js';
import type { Embeddings } from '../model/embeddings.js';
import { fsReason, notAFolder, statOrNull } from '../util/fs-error.js';
import { makeFolder } from '../util/folder.js';

export interface DemoOptions {
  output: string;
  /**
   * Write into an output folder that holds files other than an earlier demo's (replacing the demo's
   * files there); without it such a folder is refused before any work.
   */
  overwrite?: boolean;
  /** Optimizer steps (default DEMO_DEFAULTS.steps). */
  steps?: number;
  /** Start from this model folder instead of a new random one. */
  model?: string;
  seed?: number;
  lr?: number;
  batchSize?: number;
  /** Architecture of the new model. */
  layers?: number;
  hidden?: number;
  heads?: number;
  onStep?: (info: StepInfo) => void;
  onNotice?: (message: string) => void;
  signal?: AbortSignal;
}

/** The demo's flag for each Trainer option it sets from its own options: messages name them. */
const DEMO_FLAGS: Record<string, string> = { batchSize: '--batch-size', lr: '--lr', maxSteps: '--steps', seed: '--seed' };
const demoFlag: OptionNamer = (option) => DEMO_FLAGS[option] ?? option;

/**
 * The demo was stopped (its signal aborted) before its last step: nothing was evaluated after training
 * and no model, metrics or chart was written — a partly trained model is not the demo's result.
 */
export class DemoInterruptedError extends Error {
  override name = 'DemoInterruptedError';
  constructor(
    readonly step: number,
    readonly steps: number,
    readonly output: string,
    /** Results of an earlier demo in `output` (model/, metrics.json, ...), left as they were. */
    readonly earlier: readonly string[] = [],
  ) {
    super(
      (step === 0
        ? `interrupted before training started: nothing was trained or saved`
        : `interrupted at step ${step} of ${steps}: the model was not evaluated after training and not saved (a partly ` +
          `trained model is not the demo's result)`) +
        `; ${output} holds this run's train.jsonl and test.jsonl` +
        (earlier.length > 0 ? `, beside an earlier run's ${earlier.join(', ')}, which do not belong to this data` : '') +
        '. Run it again to train it fully',
    );
  }
}

export interface DemoResult {
  before: Metrics;
  after: Metrics;
  losses: number[];
  trainRows: number;
  testRows: number;
  seconds: number;
  modelDir: string;
  /** What the run wrote in its folder, in DEMO_FILES' words and order (tokenizer/ only for a new model). */
  written: string[];
}

/** The demo's defaults: sized to finish in about a minute on 2 CPU cores. */
// Measured on the demo data (held-out concepts): 2 layers at hidden 128 learn the word-level
// correspondences fastest; 4 layers or hidden 256 fit the training pairs more slowly and carried over
// less to held-out concepts in the same number of steps; lr 2e-3 and 3e-3 were worse than 1e-3.
export const DEMO_DEFAULTS = {
  steps: 3000,
  seed: 42,
  lr: 1e-3,
  warmupSteps: 50,
  batchSize: 8,
  layers: 2,
  hidden: 128,
  heads: 8,
  dense: 256,
  maxLength: 64,
} as const;

/**
 * Whether the trained model retrieves held-out translations better than the random one did: top-1
 * and top-10 both above "before". Too few steps (warm-up alone is 50) leave the model where it was or
 * worse, and a before/after table would then read like a result.
 */
export function demoLearned(before: Metrics, after: Metrics): boolean {
  const better = (k: 'top1' | 'top10'): boolean => (after[k] ?? 0) > (before[k] ?? 0);
  return better('top1') && better('top10');
}

/**
 * The record the demo writes first into its folder: it marks the folder as a demo's, so a later
 * `l2e demo` may replace the files there (and nothing else's).
 */
export const DEMO_MARKER = 'l2e-demo.json';

/** What the demo writes into its folder (tokenizer/ only when it makes a new model). */
export const DEMO_FILES = [
  DEMO_MARKER,
  'train.jsonl',
  'test.jsonl',
  'tokenizer/',
  'model/',
  'metrics.json',
  'loss.svg',
  'metrics.svg',
  'losses.json',
] as const;

function isDemoMarker(file: string): boolean {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && (v as Record<string, unknown>)['written_by'] === 'l2e demo';
  } catch {
    return false;
  }
}

/**
 * Refuses, before any work, an output folder the demo would wrongly overwrite: one that holds anything
 * while not an earlier demo's (no DEMO_MARKER), unless `overwrite`. A new or empty folder, or one an
 * earlier demo marked, is the demo's to write.
 */
export function checkDemoOutput(out: string, overwrite: boolean): void {
  // a file at the name or in the way above it ("afile/sub" was a bare "ENOTDIR: not a directory, stat")
  const blocked = notAFolder('--output', out);
  if (blocked) throw new Error(blocked);
  let names: string[];
  try {
    names = readdirSync(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`--output ${out}: ${fsReason(err)}`, { cause: err });
  }
  // what the demo writes must be able to take its place: a file where it makes a folder (model/), or a
  // folder where it writes a file, failed only after the training, losing it
  for (const entry of DEMO_FILES) {
    const folder = entry.endsWith('/');
    const path = join(out, folder ? entry.slice(0, -1) : entry);
    const st = statOrNull(path);
    if (st === null || st.isDirectory() === folder) continue;
    throw new Error(
      `--output ${out}: ${path} is a ${folder ? 'file' : 'folder'}, where the demo writes ${folder ? 'a folder' : 'a file'}; ` +
        'move it away or use another folder',
    );
  }
  if (names.length === 0 || overwrite || isDemoMarker(join(out, DEMO_MARKER))) return;
  const shown = names.sort().slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
  throw new Error(
    `--output ${out} holds files that are not an earlier demo's (${shown}): the demo would replace its ` +
      `${DEMO_FILES.slice(1).join(', ')} there. Use a new or empty folder, or add --overwrite (also right for a demo ` +
      `folder from before demos marked theirs with ${DEMO_MARKER})`,
  );
}

function writeJsonl(file: string, rows: PairRow[]): void {
  writeFileAtomic(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** The demo's evaluation: the published metrics on held-out rows, pool encoded as the demo encodes. */
export async function evaluateDemo(model: EmbeddingModel, rows: PairRow[]): Promise<Metrics> {
  const set = await buildTestSet('demo-test', rows, 1000);
  return computeMetrics(set, await encodeDemoPool(model, set.pool));
}

/** The demo's encode settings (batches of 64 texts, at most DEMO_DEFAULTS.maxLength tokens). */
export function encodeDemoPool(model: EmbeddingModel, texts: string[]): Promise<Embeddings> {
  return model.encode(texts, { batchSize: 64, maxLength: DEMO_DEFAULTS.maxLength });
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const notice = o.onNotice ?? ((m: string) => process.stderr.write(`${m}\n`));
  checkDemoPackages(); // before any work or any file written
  const seed = o.seed ?? DEMO_DEFAULTS.seed;
  const steps = o.steps ?? DEMO_DEFAULTS.steps;
  const trainerOptions: TrainerOptions = {
    batchSize: o.batchSize ?? DEMO_DEFAULTS.batchSize,
    groupSize: 3,
    temperature: 0.02,
    lr: o.lr ?? DEMO_DEFAULTS.lr,
    schedule: 'cosine',
    warmupSteps: DEMO_DEFAULTS.warmupSteps,
    maxSteps: steps,
    queryMaxLen: DEMO_DEFAULTS.maxLength,
    passageMaxLen: DEMO_DEFAULTS.maxLength,
    seed,
    shuffleBuffer: 10_000,
  };
  if (!Number.isInteger(steps) || steps < 1) throw new TrainerOptionError('maxSteps', `--steps must be at least 1, got ${steps}`);
  resolveOptions(trainerOptions, demoFlag); // bad values fail here, naming the flag, before any work
  const out = resolve(o.output);
  checkDemoOutput(out, o.overwrite ?? false);
  // an earlier run's results, which this run's data replaces before its own results come
  const earlier = DEMO_FILES.slice(DEMO_FILES.indexOf('model/')).filter((f) => existsSync(join(out, f)));
  // a given model loads before anything is written: a name that is wrong fails with the folder untouched
  const given = o.model ? await EmbeddingModel.load(o.model, { onNotice: notice, seed }) : null;
  let data: Awaited<ReturnType<typeof buildDemoPairs>>;
  const trainFile = join(out, 'train.jsonl');
  try {
    try {
      makeFolder(out);
    } catch (err) {
      throw new Error(`could not create the folder ${out}: ${(err as Error).message}`);
    }
    writeFileAtomic(join(out, DEMO_MARKER), JSON.stringify({ written_by: 'l2e demo', started_at: new Date().toISOString() }, null, 2) + '\n');

    // 1. data: English ↔ Malay pairs from CLDR, split by concept
    data = await buildDemoPairs({ seed });
    writeJsonl(trainFile, data.train);
    writeJsonl(join(out, 'test.jsonl'), data.test);
  } catch (err) {
    given?.dispose();
    throw err;
  }
  notice(`data: ${data.concepts} CLDR concepts → ${data.train.length} train rows, ${data.test.length} test rows (${out})`);

  // 2. model: a given folder, or a new random one with the real Llama 2 tokenizer
  let model: EmbeddingModel;
  let tokenizerDir: string;
  if (given) {
    model = given;
    tokenizerDir = model.dir!;
  } else {
    tokenizerDir = join(out, 'tokenizer');
    await writeLlamaTokenizer(tokenizerDir);
    const hidden = o.hidden ?? DEMO_DEFAULTS.hidden;
    const config = parseConfig(
      {
        model_type: 'llama',
        architectures: ['LlamaModelEmbedding'],
        hidden_act: 'silu',
        vocab_size: 32000,
        hidden_size: hidden,
        intermediate_size: Math.round((hidden * 8) / 3 / 8) * 8, // Llama's ≈ 8/3 × hidden
        num_hidden_layers: o.layers ?? DEMO_DEFAULTS.layers,
        num_attention_heads: o.heads ?? DEMO_DEFAULTS.heads,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 4096,
        rope_theta: 10000,
        embedding_size: DEMO_DEFAULTS.dense,
        sentence_pooling_method: 'mean',
        normalized: true,
        temperature: 0.02,
      },
      'demo config',
    );
    model = EmbeddingModel.create(config, TextTokenizer.fromDir(tokenizerDir), { seed });
    notice(
      `model: ${config.numLayers} layers, hidden ${config.hiddenSize}, ${config.numHeads} heads, dense ${model.dim}, ` +
        `random init, Llama 2 tokenizer (32,000 pieces)`,
    );
  }
  try {
    if (o.signal?.aborted) throw new DemoInterruptedError(0, steps, out, earlier); // no need to evaluate first
    // 3. before
    const before = await evaluateDemo(model, data.test);
    // 4. train with the recipe's objective
    const losses: number[] = [];
    const trainer = new Trainer(model, trainerOptions, { optionName: demoFlag });
    const fitted = await trainer.fit(trainFile, {
      onStep: (info) => {
        losses.push(info.loss);
        o.onStep?.(info);
      },
      onNotice: notice,
      signal: o.signal,
    });
    // (a stop asked during the last step came after it: the model is the demo's whole result, kept)
    if (fitted.stoppedBy === 'aborted' && fitted.step < steps) throw new DemoInterruptedError(fitted.step, steps, out, earlier);
    // 5. after, and everything written
    const after = await evaluateDemo(model, data.test);
    const modelDir = join(out, 'model');
    // the output folder is a demo's, or the user asked for --overwrite (checked before anything ran)
    saveModel(model, modelDir, { tokenizerDir, overwrite: true });
    writeFileAtomic(join(out, 'metrics.json'), JSON.stringify({ before, after }, null, 2) + '\n');
    writeFileAtomic(join(out, 'loss.svg'), lossCurveSvg(losses));
    writeFileAtomic(join(out, 'metrics.svg'), beforeAfterSvg({ ...before }, { ...after }));
    writeFileAtomic(join(out, 'losses.json'), JSON.stringify(losses) + '\n');
    return {
      before,
      after,
      losses,
      trainRows: data.train.length,
      testRows: data.test.length,
      seconds: (Date.now() - started) / 1000,
      modelDir,
      written: DEMO_FILES.filter((f) => f !== 'tokenizer/' || !given),
    };
  } finally {
    model.dispose();
  }
}
