// GPU benchmark driver (run by scripts/gpu/run.sh on the GPU machine; loads the addon directly, no build):
//   node bench/gpu-bench.mjs --out ours.json            measure our CUDA backend
//   node bench/gpu-bench.mjs --table ours.json anchor.json   print the ratio table vs reference_stack.py
// Workloads mirror shared/bench/reference_stack.py: the 600M and 1B shapes with random weights; token
// lengths of the pool texts estimated as min(512, 1 + round(chars / 3.5)); encode batches of 64;
// the recipe step (8 queries x group 3, in-batch negatives, temperature 0.02, clip 0.5, AdamW);
// long-sequence training; causal attention d128 at S = 512 / 2048 / 8192 (fwd and fwd+bwd).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testingAddon } from '../test/helpers/testing-addon.mjs';
import { BENCH_MODEL, createRandomModel, makeRng, pack, randomSequences } from './lib/workloads.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

// the test addon (the shipped addon's functions plus cudaBenchAttention)
function loadAddon() {
  return testingAddon();
}

// ---- the length mix (as reference_stack.py draws it) ----
function poolLengths() {
  const dir = process.env.POOLS_DIR ?? join(root, '.gpu/shared/data/pools');
  const out = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')))
    for (const t of Object.keys(JSON.parse(readFileSync(join(dir, f), 'utf8')))) if (t.trim()) out.push(t.length);
  return out;
}
const tokLen = (c) => Math.min(512, 1 + Math.max(1, Math.round(c / 3.5)));
const rand = makeRng(12345);
const pick = (a) => a[Math.floor(rand() * a.length)];

/** Random ids (BOS first) for sequences of lengths `lens`, packed by the library. */
function packed(lens, vocab = 32000) {
  const seqs = randomSequences(lens, vocab, rand);
  for (const s of seqs) s[0] = 1;
  const { tokens: ids, cuSeqlens: cu } = pack(seqs);
  return { ids, cu, tokens: ids.length };
}

function createModel(a, layers) {
  const cfg = { ...BENCH_MODEL, hidden: 4096, intermediate: 11008, layers, heads: 32, kvHeads: 32, headDim: 128 };
  return createRandomModel(a, cfg, 12345, 'cuda').model;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const usedBytes = (a) => {
  const i = a.cudaStatus();
  return i.totalBytes - i.freeBytes;
};

async function encodeBench(a, m, lengths) {
  const batches = Array.from({ length: 16 }, () => packed(Array.from({ length: 64 }, () => tokLen(pick(lengths)))));
  for (const b of batches.slice(0, 3)) await m.encode(b.ids, b.cu);
  const t0 = now();
  for (const b of batches) await m.encode(b.ids, b.cu);
  const dt = now() - t0;
  const tokens = batches.reduce((s, b) => s + b.tokens, 0);
  return { texts_per_s: (64 * 16) / dt, real_tokens_per_s: tokens / dt };
}

async function trainStep(a, m, qb, pb, B, G, step) {
  const qe = await a.trainForward(m, 0, qb.ids, qb.cu, true);
  const pe = await a.trainForward(m, 1, pb.ids, pb.cu, true);
  const l = a.trainLoss(m, qe, pe, B, G, 0.02, true);
  await a.trainBackward(m, 0, qb.ids, qb.cu, l.dq);
  await a.trainBackward(m, 1, pb.ids, pb.cu, l.dp);
  await a.trainStep(m, { lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0.5, step });
}

async function trainBench(a, m, lengths, base) {
  a.trainInit(m);
  const B = 8, G = 3;
  const draws = Array.from({ length: 13 }, () => [
    packed(Array.from({ length: B }, () => tokLen(pick(lengths)))),
    packed(Array.from({ length: B * G }, () => tokLen(pick(lengths)))),
  ]);
  let step = 1, peak = 0;
  for (const [q, p] of draws.slice(0, 3)) await trainStep(a, m, q, p, B, G, step++);
  const t0 = now();
  let real = 0;
  for (const [q, p] of draws.slice(3)) {
    await trainStep(a, m, q, p, B, G, step++);
    real += q.tokens + p.tokens;
    peak = Math.max(peak, usedBytes(a) - base);
  }
  const dt = now() - t0;
  const out = { steps_per_s: 10 / dt, real_tokens_per_s: real / dt, peak_GiB: peak / 2 ** 30 };
  for (const [S, Bl] of [[2048, 2], [8192, 1]]) {
    const q = packed(Array(Bl).fill(S)), p = packed(Array(Bl).fill(S));
    for (let i = 0; i < 2; i++) await trainStep(a, m, q, p, Bl, 1, step++);
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = now();
      await trainStep(a, m, q, p, Bl, 1, step++);
      times.push(now() - t);
      peak = Math.max(peak, usedBytes(a) - base);
    }
    times.sort((x, y) => x - y);
    out[`long.S${S}.tokens_per_s`] = (2 * Bl * S) / times[2];
  }
  out.peak_GiB_incl_long = peak / 2 ** 30;
  a.trainRelease(m);
  return out;
}

async function measure() {
  const a = loadAddon();
  const info = a.cudaStatus();
  if (!info.usable) throw new Error(`no usable GPU: ${info.reason}`);
  const res = { device: info.name };
  console.log(`# ${info.name}`);
  for (const [S, B] of [[512, 32], [2048, 8], [8192, 2]]) {
    for (const backward of [false, true]) {
      const r = a.cudaBenchAttention({ lens: Array(B).fill(S), nh: 32, nkv: 32, hd: 128, reps: 10, backward });
      res[`attn.causal.S${S}.${backward ? 'fwdbwd' : 'fwd'}_tflops`] = r.tflops;
      console.log(`attention S=${S} ${backward ? 'fwd+bwd' : 'fwd'}: ${r.tflops.toFixed(1)} TFLOP/s`);
    }
    // the forward of each tensor-core kernel by name (the rows above take the one 'auto' picks)
    for (const kernel of ['sm80', 'sm90']) {
      try {
        const r = a.cudaBenchAttention({ lens: Array(B).fill(S), nh: 32, nkv: 32, hd: 128, reps: 10, backward: false, kernel });
        res[`attn.${kernel}.causal.S${S}.fwd_tflops`] = r.tflops;
        console.log(`attention S=${S} fwd, ${kernel} kernel: ${r.tflops.toFixed(1)} TFLOP/s`);
      } catch (err) {
        console.log(`attention S=${S} fwd, ${kernel} kernel: not run (${err instanceof Error ? err.message : err})`);
      }
    }
  }
  const lengths = poolLengths();
  for (const [name, layers] of [['600m', 2], ['1b', 4]]) {
    const base = usedBytes(a);
    const m = createModel(a, layers);
    const enc = await encodeBench(a, m, lengths);
    for (const [k, v] of Object.entries(enc)) res[`${name}.encode_bf16.${k}`] = v;
    console.log(`${name} encode: ${enc.texts_per_s.toFixed(0)} texts/s, ${enc.real_tokens_per_s.toFixed(0)} real tok/s`);
    const tr = await trainBench(a, m, lengths, base);
    for (const [k, v] of Object.entries(tr)) res[`${name}.train.${k}`] = v;
    console.log(`${name} train: ${JSON.stringify(tr)}`);
    m.dispose();
  }
  return res;
}

function table(ours, ref) {
  const rows = [
    ['600M encode texts/s', '600m.encode_bf16.texts_per_s', '600m.encode_bf16.texts_per_s'],
    ['600M encode real tok/s', '600m.encode_bf16.real_tokens_per_s', '600m.encode_bf16.real_tokens_per_s'],
    ['1B encode texts/s', '1b.encode_bf16.texts_per_s', '1b.encode_bf16.texts_per_s'],
    ['600M recipe steps/s', '600m.train.steps_per_s', '600m.train_recipe_step.steps_per_s'],
    ['1B recipe steps/s', '1b.train.steps_per_s', '1b.train_recipe_step.steps_per_s'],
    ['600M train S2048 tok/s', '600m.train.long.S2048.tokens_per_s', '600m.train_long.S2048.tokens_per_s'],
    ['600M train S8192 tok/s', '600m.train.long.S8192.tokens_per_s', '600m.train_long.S8192.tokens_per_s'],
    ['600M recipe peak GiB (lower is better)', '600m.train.peak_GiB', '600m.train_recipe_step.peak_GiB'],
  ];
  for (const S of [512, 2048, 8192]) {
    for (const k of ['fwd', 'fwdbwd']) rows.push([`attn d128 causal S=${S} ${k} TFLOP/s`, `attn.causal.S${S}.${k}_tflops`, `attn.sdpa_flash.causal.S${S}.${k}_tflops`]);
    rows.push([`attn d128 causal S=${S} fwd sm80 vs flash`, `attn.sm80.causal.S${S}.fwd_tflops`, `attn.sdpa_flash.causal.S${S}.fwd_tflops`]);
    rows.push([`attn d128 causal S=${S} fwd sm90 vs cuDNN`, `attn.sm90.causal.S${S}.fwd_tflops`, `attn.sdpa_cudnn.causal.S${S}.fwd_tflops`]);
  }
  console.log(`\n${'workload'.padEnd(40)} ${'ours'.padStart(10)} ${'reference'.padStart(10)} ${'ratio'.padStart(7)}`);
  for (const [label, ko, kr] of rows) {
    const o = ours[ko], r = ref[kr];
    const f = (x) => (typeof x !== 'number' ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(2));
    const ratio = typeof o === 'number' && typeof r === 'number' && r ? (o / r).toFixed(2) + 'x' : '—';
    console.log(`${label.padEnd(40)} ${f(o).padStart(10)} ${f(r).padStart(10)} ${ratio.padStart(7)}`);
  }
}

if (args[0] === '--table') {
  const ours = JSON.parse(readFileSync(args[1], 'utf8'));
  let ref = {};
  try {
    ref = JSON.parse(readFileSync(args[2], 'utf8'));
  } catch {
    console.log(`(no reference results at ${args[2]})`);
  }
  table(ours, ref);
} else {
  const outIdx = args.indexOf('--out');
  const res = await measure();
  if (outIdx >= 0) writeFileSync(args[outIdx + 1], JSON.stringify(res, null, 1));
}
