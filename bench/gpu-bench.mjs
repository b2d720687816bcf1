// GPU benchmark driver (run by scripts/gpu/run.sh on the GPU machine; loads the addon directly, no build):
//   node bench/gpu-bench.mjs --out ours.json            measure our CUDA backend (JSON with per-op times);
//                                                       --out adds the figures to the file (created when
//                                                       absent), as every mode here does, so that a run in
//                                                       several processes (scripts/gpu/run.sh) builds one file
//   node bench/gpu-bench.mjs --profile [--smoke]        where a recipe step's time goes (host time per call,
//                                                       device time per op)
//   node bench/gpu-bench.mjs --smoke [--out f.json]     the same code path on tiny shapes: a check that the
//                                                       script runs end to end (the emulation build too)
//   node bench/gpu-bench.mjs --attention [--out f.json]  the attention rows alone (GPU_BENCH_KERNELS: which
//                                                       kernels get rows, 'auto' the default's; see byName)
//   node bench/gpu-bench.mjs --models [--resume f.json] [--out g.json]  the model rows alone (encode, recipe,
//       long training, peaks); --resume: only the models whose recipe rows f.json lacks (run.sh's retry
//       after a fault)
//   node bench/gpu-bench.mjs --sweep [--kinds LIST] [--smoke] [--out ours.json]
//       the attention kernels' tile variants (cudaAttentionVariants()), causal d128, 32 heads, at
//       S = 2048 (8 sequences) and 8192 (2): each sm80 forward variant (fwd TFLOP/s), each sm80 backward
//       variant (fwd + bwd TFLOP/s, the forward the default one), each variant of the two-warpgroup
//       sm_90a forward as sm90wg2 and as sm90pp, and the wgmma backward against the default backward
//       under the sm90wg2 forward (bwd90; where they run), a table and the best of each; --out
//       adds the figures to the JSON file (created when absent) as
//       attn.sweep.{fwd,bwd,wg2,pp,bwd90}.<variant>.S<S>_tflops and attn.sweep.{fwd,bwd,wg2,pp,bwd90}.best.S<S> (a
//       variant name). --kinds: a comma-separated subset of fwd,bwd,wg2,pp,bwd90 (default all; run.sh
//       runs each in a process of its own, as a kernel fault ends the CUDA context for the rest of its
//       process). --smoke: tiny shapes (the emulation build). Each figure is saved as soon as it is
//       measured. --plan: print each kind's number of measurements ("<kind> <n>" lines) and exit,
//       measuring nothing (run.sh shares the sweep's time by them)
//   node bench/gpu-bench.mjs --table ours.json anchor.json [anchor-compiled.json] [--save DIR]
//       print each row of issue 13's targets next to reference_stack.py's figure from the same run (best
//       of eager / torch.compile when both are given; a row whose target is to that better one and
//       that has no torch.compile figure is marked "eager only", its target not judged), the ratio and
//       the target; either file may be missing (its figures are "—"); --save DIR writes
//       them all as DIR/<date>-<device>.json (bench/results/ keeps the runs); --markdown prints the rows
//       as a Markdown table too
// Workloads mirror shared/bench/reference_stack.py: the 600M and 1B shapes with random weights (the
// library's, tiled: the values do not change the speed); token
// lengths of the pool texts estimated as min(512, 1 + round(chars / 3.5)); encode batches of 64;
// the recipe step (8 queries x group 3, in-batch negatives, temperature 0.02, clip 0.5, AdamW);
// long-sequence training; causal attention d128 at S = 512 / 2048 / 8192 (fwd and fwd+bwd).
// The training step is the trainer's: embeddings and their gradients stay on the device and the
// optimizer step's result is the one read-back. Per-op times come from CUDA events around every
// backend op (the test addon's setOpTiming), printed per model after its training runs.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testingAddon } from '../test/helpers/testing-addon.mjs';
import { BENCH_MODEL, createRandomModel, makeRng, pack, randomSequences, recipeHyper, recipeTrainStep } from './lib/workloads.mjs';
import { checkFlags } from './lib/usage.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const smoke = args.includes('--smoke');

// the test addon (the shipped addon's functions plus cudaBenchAttention)
function loadAddon() {
  return testingAddon();
}

// ---- the length mix (as reference_stack.py draws it) ----
function poolLengths() {
  const dir = process.env.POOLS_DIR ?? [join(root, '.gpu/shared/data/pools'), join(root, '../shared/data/pools')].find((d) => existsSync(d));
  if (!dir) throw new Error('no text pools: set POOLS_DIR to the folder of reference_stack.py\'s pool .json files');
  const out = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')))
    for (const t of Object.keys(JSON.parse(readFileSync(join(dir, f), 'utf8')))) if (t.trim()) out.push(t.length);
  return out;
}
const tokLen = (c) => Math.min(smoke ? 24 : 512, 1 + Math.max(1, Math.round(c / 3.5)));
const rand = makeRng(12345);
const pick = (a) => a[Math.floor(rand() * a.length)];

/** Random ids (BOS first) for sequences of lengths `lens`, packed by the library. */
function packed(lens, vocab) {
  const seqs = randomSequences(lens, vocab, rand);
  for (const s of seqs) s[0] = 1;
  const { tokens: ids, cuSeqlens: cu } = pack(seqs);
  return { ids, cu, tokens: ids.length };
}

// --smoke: every loop runs, on shapes the emulation build gets through in a minute or two
const SIZES = smoke
  ? { model: { hidden: 64, intermediate: 96, heads: 2, kvHeads: 2, headDim: 32, vocab: 512 }, layers: [['600m', 1]], batch: 4, batches: 3, warm: 1,
      draws: 3, long: [[64, 2], [128, 1]], longReps: 1, attn: [[64, 2]], attnHeads: 2, reps: 1 }
  : { model: { hidden: 4096, intermediate: 11008, heads: 32, kvHeads: 32, headDim: 128, vocab: 32000 }, layers: [['600m', 2], ['1b', 4]], batch: 64, batches: 16,
      warm: 3, draws: 13, long: [[2048, 2], [8192, 1]], longReps: 5, attn: [[512, 32], [2048, 8], [8192, 2]], attnHeads: 32, reps: 10 };

// Random weights, cheaply: the library's initRandomWeights with `tiled` (one block of draws, tiled and
// scaled per tensor): a draw per element costs about 11 s for a 600M model and 19 s for a 1B one, and a
// run builds eight models (a profile four), all of it device time before any GPU work; the values do
// not change the speed, only their scales.
function createModel(a, layers) {
  const cfg = { ...BENCH_MODEL, ...SIZES.model, layers };
  return createRandomModel(a, cfg, 12345, 'cuda', { tiled: true }).model;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const usedBytes = (a) => {
  const i = a.cudaStatus();
  return i.totalBytes - i.freeBytes;
};

async function encodeBench(a, m, lengths) {
  const { batch, batches: count, warm } = SIZES;
  const batches = Array.from({ length: count }, () => packed(Array.from({ length: batch }, () => tokLen(pick(lengths))), SIZES.model.vocab));
  for (const b of batches.slice(0, warm)) await m.encode(b.ids, b.cu);
  const t0 = now();
  for (const b of batches) await m.encode(b.ids, b.cu);
  const dt = now() - t0;
  const tokens = batches.reduce((s, b) => s + b.tokens, 0);
  return { texts_per_s: (batch * count) / dt, real_tokens_per_s: tokens / dt };
}

const oneChunk = Int32Array.from([0]);

/** A recipe batch of random token ids: B queries, then B*G passages, packed as one chunk. */
const recipeBatch = (lengths, B, G) => packed(Array.from({ length: B * (1 + G) }, () => tokLen(pick(lengths))), SIZES.model.vocab);

const trainStep = (a, m, batch, B, G, step) => recipeTrainStep(a, m, batch.ids, batch.cu, B, G, step);

async function trainBench(a, m, lengths, base) {
  const liveNow = () => (a.cudaPoolPeakLive(true), a.cudaPoolPeakLive(true));
  const live0 = liveNow();
  a.trainInit(m);
  // what training holds beside the weights for the whole run: gradients, moments and the master's low halves
  // (the rows of the embedding table's gradient a step names come with its backward: in the peak, not here)
  const stateBytes = liveNow() - live0;
  const B = 8, G = 3, timed = SIZES.draws - SIZES.warm;
  const draws = Array.from({ length: SIZES.draws }, () => recipeBatch(lengths, B, G));
  let step = 1;
  for (const batch of draws.slice(0, SIZES.warm)) await trainStep(a, m, batch, B, G, step++);
  const mallocs0 = a.cudaPoolMallocs();
  a.cudaPoolPeakReserved(true); // the pools' peaks of reserved and live bytes start again from now
  a.cudaPoolPeakLive(true);
  const t0 = now();
  let real = 0;
  for (const batch of draws.slice(SIZES.warm)) {
    await trainStep(a, m, batch, B, G, step++);
    real += batch.tokens;
  }
  const dt = now() - t0;
  // the pool keeps every block it took (cached when free), so the device memory in use after the
  // steps is their peak; read outside the timed loop (cudaStatus queries the device's properties)
  let peak = usedBytes(a) - base;
  const out = {
    steps_per_s: timed / dt,
    real_tokens_per_s: real / dt,
    peak_GiB: peak / 2 ** 30,
    cuda_mallocs_in_timed_steps: a.cudaPoolMallocs() - mallocs0,
    // the most bytes the pools held in cudaMalloc'd segments during the timed steps (weights included);
    // L2E_CUDA_POOL=nosplit gives the policy before the block arena, for a before/after
    pool_reserved_peak_GiB: a.cudaPoolPeakReserved() / 2 ** 30,
    // the most bytes in blocks handed out at once (weights included): torch.cuda.max_memory_allocated's
    // measure, which the reference reports, where peak_GiB is the device memory in use
    pool_live_peak_GiB: a.cudaPoolPeakLive() / 2 ** 30,
    train_state_GiB: stateBytes / 2 ** 30,
  };
  for (const [S, Bl] of SIZES.long) {
    const batch = packed(Array(2 * Bl).fill(S), SIZES.model.vocab);  // Bl queries, Bl passages
    for (let i = 0; i < 2; i++) await trainStep(a, m, batch, Bl, 1, step++);
    const times = [];
    for (let i = 0; i < SIZES.longReps; i++) {
      const t = now();
      await trainStep(a, m, batch, Bl, 1, step++);
      times.push(now() - t);
    }
    peak = Math.max(peak, usedBytes(a) - base);
    times.sort((x, y) => x - y);
    out[`long.S${S}.tokens_per_s`] = (2 * Bl * S) / times[Math.floor(times.length / 2)];
  }
  out.peak_GiB_incl_long = peak / 2 ** 30;
  a.trainRelease(m);
  return out;
}

/**
 * --profile: where a recipe step's time goes. Host time of each call of the step (launches return before
 * the device finishes; the step's one read-back waits for it), the wall time per step, and the device
 * time per op of the same steps (CUDA events, on a second model created with the timer on).
 */
async function profileStep(a, lengths, name, layers) {
  const B = 8, G = 3, n = smoke ? 2 : 10;
  const draws = Array.from({ length: n + 3 }, () => recipeBatch(lengths, B, G));
  const phases = ['forward', 'loss', 'backward', 'release', 'optimizer step (waits)'];
  for (const timed of [false, true]) {
    a.setOpTiming(timed);
    const m = createModel(a, layers);
    try {
      a.trainInit(m);
      let step = 1;
      for (const batch of draws.slice(0, 3)) await trainStep(a, m, batch, B, G, step++);
      a.resetOpTimings();
      const host = new Array(phases.length).fill(0);
      const t0 = now();
      for (const batch of draws.slice(3)) {
        let t = now();
        const lap = (i) => {
          const u = now();
          host[i] += u - t;
          t = u;
        };
        await a.trainForward(m, 0, batch.ids, batch.cu, true, false); lap(0);
        a.trainLossChunks(m, oneChunk, B, G, 0.02, true, 1); lap(1);
        await a.trainBackward(m, 0, batch.ids, batch.cu); lap(2);
        a.trainRelease(m); lap(3);
        const r = await a.trainStep(m, recipeHyper(step++));
        lap(4);
        if (!Number.isFinite(r.loss)) throw new Error(`profile step: loss ${r.loss}`);
      }
      const wall = (now() - t0) / n;
      if (!timed) {
        console.log(`${name} recipe step profile: ${(wall * 1e3).toFixed(2)} ms a step (${(1 / wall).toFixed(1)} steps/s); host time per call:`);
        phases.forEach((ph, i) => console.log(`  ${ph.padEnd(24)} ${((host[i] / n) * 1e3).toFixed(2).padStart(8)} ms`));
      } else {
        const ops = opTable(a, `${name} recipe steps (${n}), wall ${(wall * 1e3).toFixed(2)} ms a step with the timer on`);
        const dev = Object.values(ops).reduce((t, o) => t + o.seconds, 0) / n;
        console.log(`  device time ${(dev * 1e3).toFixed(2)} ms a step = ${((100 * dev) / wall).toFixed(0)}% of the wall time`);
      }
    } finally {
      m.dispose();
      a.setOpTiming(false);
    }
  }
}

/**
 * Per-op device time of everything since the last reset, largest first, printed and returned; the
 * matrix-product ops with their rate (their FLOPs, core/op_flops.h, over their device time).
 */
function opTable(a, label) {
  const ops = a.opTimings().sort((x, y) => y.seconds - x.seconds);
  const total = ops.reduce((t, o) => t + o.seconds, 0);
  console.log(`${label} per-op device time (CUDA events), ${(total * 1e3).toFixed(1)} ms in all:`);
  for (const o of ops) {
    const rate = o.flops > 0 && o.seconds > 0 ? `${(o.flops / o.seconds / 1e12).toFixed(1).padStart(8)} TFLOP/s` : '';
    console.log(`  ${o.op.padEnd(22)} ${String(o.calls).padStart(7)} calls ${(o.seconds * 1e3).toFixed(2).padStart(11)} ms ${((100 * o.seconds) / (total || 1)).toFixed(1).padStart(5)}%${rate}`);
  }
  return Object.fromEntries(ops.map((o) => [o.op, { calls: o.calls, seconds: o.seconds, flops: o.flops }]));
}

// GPU_BENCH_KERNELS: the kernels whose attention rows a run measures, 'auto' the default rows (forward
// and forward+backward of whichever kernel 'auto' picks), the others the forward by name. run.sh runs
// each in a process of its own (a kernel fault ends the CUDA context for the rest of its process, and a
// hang blocks it), sm90pp (sm90wg2's warpgroups taking turns, not yet run on a GPU) last.
const byName = (process.env.GPU_BENCH_KERNELS ?? 'auto,sm80,sm90,sm90wg2,sm90pp').split(',').filter(Boolean);

/** The models a run measures: all, or with --resume FILE those whose recipe rows FILE lacks. */
function benchModels() {
  const i = args.indexOf('--resume');
  if (i < 0) return SIZES.layers;
  const done = readJson(args[i + 1], 'results to resume');
  const left = SIZES.layers.filter(([name]) => num(done[`${name}.train.steps_per_s`]) === undefined);
  console.log(`--resume ${args[i + 1]}: ${left.length > 0 ? `measuring ${left.map(([name]) => name).join(', ')}` : 'every model measured already'}`);
  return left;
}

/**
 * Our rows, added to `res` (--out's figures so far); `save(res)` after every figure or section, so that
 * a run cut short keeps what it measured. Returns how many attention rows failed (each is logged).
 */
async function measure(res, save) {
  const models = benchModels();
  const a = loadAddon();
  const info = a.cudaStatus();
  if (!info.usable) throw new Error(`no usable GPU: ${info.reason}`);
  Object.assign(res, { device: info.name, emulated: info.emulated === true, smoke });
  console.log(`# ${info.name}${info.emulated ? ' (CPU emulation build: no GPU figure)' : ''}${smoke ? ' --smoke shapes' : ''}`);
  let failed = 0;
  const attention = (S, B, backward, kernel) => {
    const label = `attention S=${S} ${backward ? 'fwd+bwd' : 'fwd'}${kernel === 'auto' ? '' : `, ${kernel} kernel`}`;
    try {
      const r = a.cudaBenchAttention({ lens: Array(B).fill(S), nh: SIZES.attnHeads, nkv: SIZES.attnHeads, hd: 128, reps: SIZES.reps, backward, ...(kernel === 'auto' ? {} : { kernel }) });
      res[`attn.${kernel === 'auto' ? '' : `${kernel}.`}causal.S${S}.${backward ? 'fwdbwd' : 'fwd'}_tflops`] = r.tflops;
      console.log(`${label}: ${r.tflops.toFixed(1)} TFLOP/s`);
      save(res);
    } catch (err) {
      failed++;
      console.log(`${label}: not run (${err instanceof Error ? err.message : err})`);
    }
  };
  if (!args.includes('--models')) {
    // kernel by kernel, so that a fault (which ends the CUDA context) costs the fewest rows
    for (const kernel of byName)
      for (const [S, B] of SIZES.attn) for (const backward of kernel === 'auto' ? [false, true] : [false]) attention(S, B, backward, kernel);
  }
  if (args.includes('--attention') || models.length === 0) return failed; // --attention: those rows alone
  const lengths = poolLengths();
  // A warm-up model first, as reference_stack.py's "warm" entry: the first use of each cuBLAS kernel
  // (a new GEMM shape can pick a new one) loads it, which a long training run pays once. Not reported;
  // left out of --smoke, which runs the same functions below.
  if (!smoke) {
    const t = now();
    const base = usedBytes(a);
    const w = createModel(a, SIZES.layers[0][1]);
    await encodeBench(a, w, lengths);
    w.dispose();
    const wt = createModel(a, SIZES.layers[0][1]);
    try {
      await trainBench(a, wt, lengths, base);
    } finally {
      wt.dispose();
    }
    console.log(`warm-up model (${SIZES.layers[0][1]} layers, not reported): ${(now() - t).toFixed(1)} s`);
  }
  for (const [name, layers] of models) {
    const base = usedBytes(a);
    const m = createModel(a, layers);
    const enc = await encodeBench(a, m, lengths);
    for (const [k, v] of Object.entries(enc)) res[`${name}.encode_bf16.${k}`] = v;
    console.log(`${name} encode: ${enc.texts_per_s.toFixed(0)} texts/s, ${enc.real_tokens_per_s.toFixed(0)} real tok/s`);
    save(res);
    m.dispose();
    // the per-op timer wraps models created while it is on, and costs two events per op: the
    // throughput figures above and below come from models without it, the op table from a rerun
    for (const timed of [false, true]) {
      a.setOpTiming(timed);
      a.resetOpTimings();
      const mt = createModel(a, layers);
      try {
        const tr = await trainBench(a, mt, lengths, base);
        if (!timed) {
          for (const [k, v] of Object.entries(tr)) res[`${name}.train.${k}`] = v;
          console.log(`${name} train: ${JSON.stringify(tr)}`);
        }
      } finally {
        mt.dispose(); // waits for the last events
        a.setOpTiming(false);
      }
      if (timed) res[`${name}.train.ops`] = opTable(a, `${name} training (recipe and long steps)`);
      save(res);
    }
  }
  return failed;
}

// Issue 13's targets table, one row per figure: [label, our key, reference key, target ratio, basis].
// basis 'eager': the ratio is to the eager reference (the recipe step's target); 'best': to the better
// of eager and torch.compile, so without a torch.compile figure the row is "eager only" and its target
// not judged (an eager-only ratio overstates ours: the H200's 600M train 2x2048 went from 1.24x, met, to
// 1.04x, not met, once compiled was there); 'kernel': the reference's attention kernel by itself, which
// torch.compile leaves as it is (run.sh's compiled run skips the kernels), so eager's figure is the
// reference. The memory row is lower-is-better (target: at most 0.8x).
const TARGETS = [
  // the sm_80 kernel against SDPA-flash, the sm_90a kernels against cuDNN (each forced by name)
  ['attn fwd sm80 d128 causal S=2048 vs SDPA-flash', 'attn.sm80.causal.S2048.fwd_tflops', 'attn.sdpa_flash.causal.S2048.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm80 d128 causal S=8192 vs SDPA-flash', 'attn.sm80.causal.S8192.fwd_tflops', 'attn.sdpa_flash.causal.S8192.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm90 d128 causal S=2048 vs cuDNN', 'attn.sm90.causal.S2048.fwd_tflops', 'attn.sdpa_cudnn.causal.S2048.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm90 d128 causal S=8192 vs cuDNN', 'attn.sm90.causal.S8192.fwd_tflops', 'attn.sdpa_cudnn.causal.S8192.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm90wg2 d128 causal S=2048 vs cuDNN', 'attn.sm90wg2.causal.S2048.fwd_tflops', 'attn.sdpa_cudnn.causal.S2048.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm90wg2 d128 causal S=8192 vs cuDNN', 'attn.sm90wg2.causal.S8192.fwd_tflops', 'attn.sdpa_cudnn.causal.S8192.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm90pp d128 causal S=2048 vs cuDNN', 'attn.sm90pp.causal.S2048.fwd_tflops', 'attn.sdpa_cudnn.causal.S2048.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd sm90pp d128 causal S=8192 vs cuDNN', 'attn.sm90pp.causal.S8192.fwd_tflops', 'attn.sdpa_cudnn.causal.S8192.fwd_tflops', 1.0, 'kernel'],
  ['attn fwd+bwd d128 causal S=2048', 'attn.causal.S2048.fwdbwd_tflops', 'attn.sdpa_flash.causal.S2048.fwdbwd_tflops', 1.0, 'kernel'],
  ['attn fwd+bwd d128 causal S=8192', 'attn.causal.S8192.fwdbwd_tflops', 'attn.sdpa_flash.causal.S8192.fwdbwd_tflops', 1.0, 'kernel'],
  ['600M recipe steps/s', '600m.train.steps_per_s', '600m.train_recipe_step.steps_per_s', 5.0, 'eager'],
  ['1B recipe steps/s', '1b.train.steps_per_s', '1b.train_recipe_step.steps_per_s', 5.0, 'eager'],
  ['600M train 2x2048 tok/s', '600m.train.long.S2048.tokens_per_s', '600m.train_long.S2048.tokens_per_s', 1.2, 'best'],
  ['600M train 1x8192 tok/s', '600m.train.long.S8192.tokens_per_s', '600m.train_long.S8192.tokens_per_s', 1.2, 'best'],
  ['600M encode texts/s', '600m.encode_bf16.texts_per_s', '600m.encode_bf16.texts_per_s', 2.0, 'best'],
  ['1B encode texts/s', '1b.encode_bf16.texts_per_s', '1b.encode_bf16.texts_per_s', 2.0, 'best'],
  ['600M recipe peak GiB (lower is better)', '600m.train.peak_GiB', '600m.train_recipe_step.peak_GiB', 0.8, 'best', 'lower'],
  // the same peak measured alike: tensors live at once, as torch.cuda.max_memory_allocated counts them
  ['600M recipe peak live GiB (lower is better)', '600m.train.pool_live_peak_GiB', '600m.train_recipe_step.peak_GiB', 0.8, 'best', 'lower'],
];

const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

/**
 * The sweep's table from its JSON figures (attn.sweep.<kind>.<variant>.S<S>_tflops): per kind and S the
 * variants by TFLOP/s, the best first, and each one's ratio to the default's.
 */
export function sweepRows(res) {
  const groups = new Map();
  for (const [key, value] of Object.entries(res)) {
    const m = /^attn\.sweep\.(fwd|bwd|wg2|pp|bwd90)\.([A-Za-z0-9]+)\.S(\d+)_tflops$/.exec(key);
    if (!m || num(value) === undefined) continue;
    const id = `${m[1]} S=${m[3]}`;
    if (!groups.has(id)) groups.set(id, { kind: m[1], S: Number(m[3]), variants: [] });
    groups.get(id).variants.push({ variant: m[2], tflops: value });
  }
  return [...groups.values()].map((g) => {
    const def = g.variants.find((v) => v.variant === 'default')?.tflops;
    const variants = g.variants.sort((a, b) => b.tflops - a.tflops).map((v) => ({ ...v, vsDefault: def ? v.tflops / def : undefined }));
    return { kind: g.kind, S: g.S, best: variants[0].variant, variants };
  });
}

const tf = (x) => (x < 1 ? x.toPrecision(3) : x.toFixed(1));

// The sweep's kinds: the variant list each takes its names from (cudaAttentionVariants' prefix) and
// which of them, the kernel it runs, whether it times the backward, and its heading. The wgmma backward
// (bwd:sm90*) runs beside the default backward under the sm90wg2 forward, the pair that would ship on
// an H100/H200.
const sm90Bwd = (v) => v.startsWith('sm90');
const SWEEP_KINDS = [
  { kind: 'fwd', list: 'fwd', pick: () => true, kernel: 'sm80', backward: false, heading: 'sm80 forward' },
  { kind: 'bwd', list: 'bwd', pick: (v) => !sm90Bwd(v), kernel: 'sm80', backward: true, heading: 'sm80 backward (fwd+bwd TFLOP/s)' },
  { kind: 'wg2', list: 'wg2', pick: () => true, kernel: 'sm90wg2', backward: false, heading: 'sm90wg2 forward' },
  { kind: 'pp', list: 'wg2', pick: () => true, kernel: 'sm90pp', backward: false, heading: 'sm90pp forward' },
  { kind: 'bwd90', list: 'bwd', pick: (v) => v === 'default' || sm90Bwd(v), kernel: 'sm90wg2', backward: true, heading: 'wgmma backward against the default (fwd+bwd TFLOP/s, sm90wg2 forward)' },
];

/** --kinds LIST: the sweep's kinds to run (null: all); an unknown one is a usage error. */
function sweepKindsArg() {
  const i = args.indexOf('--kinds');
  if (i < 0) return null;
  const known = SWEEP_KINDS.map((k) => k.kind);
  const list = (args[i + 1] ?? '').split(',');
  const bad = list.filter((k) => !known.includes(k));
  if (bad.length > 0) {
    console.error(`gpu-bench: --kinds ${args[i + 1] ?? ''}: expected a comma-separated subset of ${known.join(',')}`);
    process.exit(2);
  }
  return list;
}

/** The sweep's measurements per kind: its variants (of cudaAttentionVariants()) at each length. */
function sweepPlan(a, sizes) {
  const variants = a.cudaAttentionVariants();
  return SWEEP_KINDS.map((k) => ({
    ...k,
    variants: variants.filter((v) => v.startsWith(`${k.list}:`)).map((v) => v.slice(k.list.length + 1)).filter(k.pick),
    sizes,
  }));
}

async function sweep(res, save) {
  const sweepKinds = sweepKindsArg();
  const a = loadAddon();
  const shapes = smoke ? { sizes: [[64, 1], [130, 1]], heads: 2, reps: 1 } : { sizes: [[2048, 8], [8192, 2]], heads: 32, reps: 10 };
  const plan = sweepPlan(a, shapes.sizes).filter((k) => sweepKinds === null || sweepKinds.includes(k.kind));
  if (args.includes('--plan')) {
    for (const k of plan) console.log(`${k.kind} ${k.variants.length * k.sizes.length}`);
    return;
  }
  const info = a.cudaStatus();
  if (!info.usable) throw new Error(`no usable GPU: ${info.reason}`);
  res.device ??= info.name;
  res.emulated ??= info.emulated === true;
  console.log(`# ${info.name}${info.emulated ? ' (CPU emulation build: no GPU figure)' : ''}: attention tile variants${smoke ? ', --smoke shapes' : ''}`);
  const t0 = Date.now();
  // kind by kind (--kinds: some of them; a kernel fault ends the CUDA context for every later row), each
  // figure saved at once: run.sh's time limit may end the process at any measurement
  for (const { kind, variants, sizes, kernel, backward } of plan) {
    for (const [S, B] of sizes) {
      for (const variant of variants) {
        try {
          const r = a.cudaBenchAttention({ lens: Array(B).fill(S), nh: shapes.heads, nkv: shapes.heads, hd: 128, reps: shapes.reps, backward, kernel, variant });
          res[`attn.sweep.${kind}.${variant}.S${S}_tflops`] = r.tflops;
          console.log(`${kind} ${variant} S=${S}: ${tf(r.tflops)} TFLOP/s${backward ? ' (fwd+bwd)' : ''}`);
          save(res);
        } catch (err) {
          console.log(`${kind} ${variant} S=${S}: not run (${err instanceof Error ? err.message : err})`);
        }
      }
    }
  }
  const rows = sweepRows(res);
  for (const g of rows) {
    res[`attn.sweep.${g.kind}.best.S${g.S}`] = g.best;
    console.log(`\n${SWEEP_KINDS.find((k) => k.kind === g.kind).heading} S=${g.S}: best ${g.best}`);
    for (const v of g.variants) console.log(`  ${v.variant.padEnd(16)} ${tf(v.tflops).padStart(8)} TFLOP/s ${v.vsDefault === undefined ? '' : `${v.vsDefault.toFixed(3)}x default`}`);
  }
  console.log(`# sweep took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  save(res);
}

/**
 * The rows of TARGETS for our results and the reference's (eager, and torch.compile when given). A
 * 'best' row without a torch.compile figure has its ratio to eager but `met` undefined and `eagerOnly`.
 */
export function tableRows(ours, eager, compiled = {}) {
  return TARGETS.map(([workload, ko, kr, target, basis, lower]) => {
    const o = num(ours[ko]), e = num(eager[kr]), c = num(compiled[kr]);
    const pickBest = (x, y) => (x === undefined ? y : y === undefined ? x : lower ? Math.min(x, y) : Math.max(x, y));
    const ref = basis === 'best' ? pickBest(e, c) : e;
    const ratio = o !== undefined && ref ? o / ref : undefined;
    const eagerOnly = basis === 'best' && c === undefined && ratio !== undefined;
    const met = ratio === undefined || eagerOnly ? undefined : lower ? ratio <= target : ratio >= target;
    return { workload, ours: o, eager: e, compiled: c, reference: ref, basis, ratio, target: `${lower ? '<=' : '>='} ${target}x`, met, ...(eagerOnly ? { eagerOnly } : {}) };
  });
}

/** A row's "met" cell: yes, no, "—" (no ratio) or "— (eager only)" (see tableRows). */
const metCell = (r) => (r.eagerOnly ? '— (eager only)' : r.met === undefined ? '—' : r.met ? 'yes' : 'no');

const fmt = (x) => (x === undefined ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(2));

/** The same rows as a Markdown table (the README's benchmark section quotes it). */
export function markdownTable(rows) {
  const lines = ['| workload | ours | eager | compiled | ratio | target | met |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const ratio = r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}×${r.basis === 'eager' ? ' (eager)' : ''}`;
    lines.push(`| ${r.workload} | ${fmt(r.ours)} | ${fmt(r.eager)} | ${fmt(r.compiled)} | ${ratio} | ${r.target} | ${metCell(r)} |`);
  }
  return lines.join('\n');
}

function printTable(rows) {
  const f = fmt;
  const head = ['workload'.padEnd(42), 'ours', 'eager', 'compiled', 'ratio', 'target', 'met'];
  console.log(`\n${head[0]} ${head.slice(1, 5).map((h) => h.padStart(9)).join(' ')} ${head[5].padStart(8)} ${head[6].padStart(4)}`);
  for (const r of rows) {
    const ratio = r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}x${r.basis === 'eager' ? 'e' : ''}`;
    console.log(`${r.workload.padEnd(42)} ${[f(r.ours), f(r.eager), f(r.compiled), ratio].map((x) => x.padStart(9)).join(' ')} ${r.target.padStart(8)} ${metCell(r).padStart(4)}`);
  }
  console.log('(ratio: to the better of eager and compiled, the attention rows to the reference\'s kernel; "e": to eager, as the target says;');
  console.log(' "eager only": no torch.compile figure for a row whose target is to the better one, so not judged)');
}

function readJson(path, what) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    console.log(`(no ${what} at ${path}: ${err.code ?? err.message})`);
    return {};
  }
}

/** Writes through a temporary file and a rename: a reader never sees half a file. */
function writeAtomic(path, text) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1]);
if (isMain) checkFlags(import.meta.url, args, ['--out', '--profile', '--smoke', '--attention', '--models', '--resume', '--sweep', '--kinds', '--plan', '--table', '--save', '--markdown']);
if (isMain && args[0] === '--table' && !args[1]) {
  console.error('bench/gpu-bench.mjs: --table needs our JSON and the reference\'s (--help)');
  process.exit(2);
}
if (isMain && args[0] === '--table') {
  const saveIdx = args.indexOf('--save');
  const files = args.slice(1).filter((x, i) => x !== '--save' && x !== '--markdown' && args[i] !== '--save');
  // a missing file leaves its figures "—": the other half of the table is still worth printing and saving
  const ours = readJson(files[0], 'results of ours');
  const eager = readJson(files[1], 'reference results');
  const compiled = files[2] ? readJson(files[2], 'torch.compile reference results') : {};
  const rows = tableRows(ours, eager, compiled);
  printTable(rows);
  if (args.includes('--markdown')) console.log(`\n${markdownTable(rows)}`);
  if (saveIdx >= 0) {
    const dir = args[saveIdx + 1];
    mkdirSync(dir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const device = String(ours.device ?? 'unknown').replace(/[^A-Za-z0-9]+/g, '-');
    const file = join(dir, `${stamp}-${device}.json`);
    writeAtomic(file, JSON.stringify({ device: ours.device, rows, ours, reference: { eager, compiled } }, null, 1) + '\n');
    console.log(`saved ${file}`);
  }
} else if (isMain && args.includes('--plan') && !args.includes('--sweep')) {
  console.error('bench/gpu-bench.mjs: --plan goes with --sweep (the sweep\'s measurements per kind)');
  process.exit(2);
} else if (isMain && args.includes('--profile')) {
  const a = loadAddon();
  console.log(`# ${a.cudaStatus().name}: recipe step profile`);
  for (const [name, layers] of SIZES.layers) await profileStep(a, poolLengths(), name, layers);
  process.exit(0);
} else if (isMain) {
  // --out: the figures are added to the file's (run.sh runs the sections in processes of their own)
  const outIdx = args.indexOf('--out');
  const out = outIdx >= 0 ? args[outIdx + 1] : undefined;
  let res = {};
  if (out !== undefined && existsSync(out)) {
    try {
      res = JSON.parse(readFileSync(out, 'utf8'));
    } catch (err) {
      throw new Error(`--out ${out}: not a JSON file to add our figures to (${err instanceof Error ? err.message : err}); left as it is`);
    }
  }
  const save = (r) => {
    if (out !== undefined) writeAtomic(out, JSON.stringify(r, null, 1) + '\n');
  };
  if (args.includes('--sweep')) {
    await sweep(res, save);
    process.exit(0);
  }
  const failed = await measure(res, save);
  save(res);
  if (smoke) printTable(tableRows(res, {}));
  // an attention row that failed (each is logged): exit 1, so that run.sh's timeline shows it
  process.exit(failed > 0 ? 1 : 0);
}
