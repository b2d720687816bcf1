// The benchmark cases. Each has a name (selected with --filter), a shape description, and
// run(ctx) -> {samples: seconds[], rate?: {value, unit}, extra?}: the runner adds the statistics.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readF32 } from './f32-file.mjs';
import { median } from './stats.mjs';
import {
  BENCH_MODEL,
  createRandomModel,
  drawLengths,
  makeRng,
  modelTensors,
  pack,
  randomSequences,
  recipeTrainStep,
  writeSafetensorsF32,
} from './workloads.mjs';

const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Times an async or sync fn: `warmup` untimed calls, then `samples` timed ones. */
async function timeCalls(fn, samples, warmup) {
  for (let i = 0; i < warmup; i++) await fn();
  const out = [];
  for (let i = 0; i < samples; i++) {
    const t0 = now();
    await fn();
    out.push(now() - t0);
  }
  return out;
}

/** The environment for the NumPy children: without the OpenBLAS pins that slow it down. */
function numpyEnv() {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

// ---- single kernels, timed natively (native/testing/bench_binding.cpp) ----

/** Shapes of the kernels at one model width: the tokens of `lens` packed, as the model calls them. */
function opShapes(set, lens, w) {
  const T = sum(lens);
  const flopsAttn = sum(lens.map((L) => (L * (L + 1)) / 2)) * w.nh * w.hd * 4; // QK^T and PV, causal half
  const tok = (s) => ({ value: T / s, unit: 'tok/s' });
  const s = [
    ['embedding_fwd', { T, H: w.H, V: 32000 }, tok],
    ['embedding_bwd', { T, H: w.H, V: 32000 }, tok],
    ['rmsnorm_fwd', { T, H: w.H }, tok],
    ['rmsnorm_bwd', { T, H: w.H }, tok],
    ['linear_fwd', { T, K: w.H, N: w.I }, (t) => ({ value: (2 * T * w.H * w.I) / t / 1e9, unit: 'GFLOP/s' })],
    ['linear_bwd', { T, K: w.H, N: w.I }, (t) => ({ value: (4 * T * w.H * w.I) / t / 1e9, unit: 'GFLOP/s' })],
    ['rope_fwd', { T, heads: w.nh, hd: w.hd, lens }, tok],
    ['rope_bwd', { T, heads: w.nh, hd: w.hd, lens }, tok],
    ['attention_fwd', { lens, nh: w.nh, nkv: w.nh, hd: w.hd }, (t) => ({ value: flopsAttn / t / 1e9, unit: 'GFLOP/s' })],
    ['attention_bwd', { lens, nh: w.nh, nkv: w.nh, hd: w.hd }, (t) => ({ value: (2.5 * flopsAttn) / t / 1e9, unit: 'GFLOP/s' })],
    ['swiglu_fwd', { n: T * w.I }, tok],
    ['swiglu_bwd', { n: T * w.I }, tok],
    ['pool_fwd', { lens, P: w.P }, tok],
    ['pool_bwd', { lens, P: w.P }, tok],
    // reduced-precision inference (bits 16: bf16, 8: int8); the name says which
    ...[16, 8].flatMap((bits) => [
      ['linear_lowp', { T, K: w.H, N: w.I, bits }, (t) => ({ value: (2 * T * w.H * w.I) / t / 1e9, unit: 'GFLOP/s' })],
      ['embedding_lowp', { T, H: w.H, V: 32000, bits }, tok],
    ]),
  ];
  if (w.small) {
    s.push(
      ['l2norm_fwd', { B: lens.length, P: w.P }, null],
      ['l2norm_bwd', { B: lens.length, P: w.P }, null],
      ['infonce', { B: 8, G: 3, P: w.P }, null],
      ['adamw', { n: w.params }, (t) => ({ value: w.params / t / 1e6, unit: 'Mparam/s' })],
      // the gradient clipping pass and the residual adds
      ['sumsq', { n: w.params }, (t) => ({ value: w.params / t / 1e6, unit: 'Mparam/s' })],
      ['scale', { n: w.params }, (t) => ({ value: w.params / t / 1e6, unit: 'Mparam/s' })],
      ['add_inplace', { n: T * w.H }, tok],
    );
  }
  return s.map(([op, dims, rate]) => ({
    name: `op/${op}/${set}${dims.bits ? `-${dims.bits === 16 ? 'bf16' : 'int8'}` : ''}`,
    shape: describeDims(dims),
    run: async (ctx) => {
      const r = await ctx.addon.benchOp(op, dims, ctx.opts.native);
      const samples = Array.from(r.perCall);
      return { samples, rate: rate ? rate(median(samples)) : null, extra: { inner: r.inner } };
    },
  }));
}

function describeDims(d) {
  return Object.entries(d)
    .filter(([k]) => !(k === 'T' && d.lens)) // lens already says T
    .map(([k, v]) => (Array.isArray(v) ? `B=${v.length} T=${sum(v)} maxL=${Math.max(...v)}` : `${k}=${v}`))
    .join(' ');
}

function opCases(ctx) {
  const rng = makeRng(1);
  const mix = ctx.mix ?? [32]; // without the pools: 32-token texts
  const quick = ctx.opts.quick;
  // hidden 512 (the benchmark model): one encode batch of 64 texts
  const lens512 = drawLengths(mix, 64, rng);
  const params = paramCount(BENCH_MODEL);
  const cases = opShapes('h512', lens512, { H: 512, I: 1376, nh: 8, hd: 64, P: 1536, params, small: true });
  // hidden 4096 (Llama2-7B layers, the published models): texts of the mix up to ~512 tokens (256 quick)
  const budget = quick ? 256 : 512;
  const lens4096 = [];
  while (sum(lens4096) < budget) lens4096.push(Math.min(drawLengths(mix, 1, rng)[0], budget - sum(lens4096)));
  cases.push(...opShapes('h4096', lens4096, { H: 4096, I: 11008, nh: 32, hd: 128, P: 1536, params, small: false }));
  return cases;
}

function paramCount(c) {
  const q = c.heads * c.headDim, kv = c.kvHeads * c.headDim;
  const layer = 2 * c.hidden + c.hidden * (2 * q + 2 * kv) + 3 * c.hidden * c.intermediate;
  return c.vocab * c.hidden + c.layers * layer + c.hidden + c.dense * (c.hidden + 1);
}

// ---- attention at long lengths ----

function attentionCases() {
  const shapes = [
    ['4x1024', [1024, 1024, 1024, 1024]],
    ['1x2048', [2048]],
  ];
  const out = [];
  for (const dir of ['fwd', 'bwd']) {
    for (const [tag, lens] of shapes) {
      const dims = { lens, nh: 8, nkv: 8, hd: 64 };
      const flops = sum(lens.map((L) => (L * (L + 1)) / 2)) * 8 * 64 * 4 * (dir === 'bwd' ? 2.5 : 1);
      out.push({
        name: `attention/${dir}/${tag}`,
        shape: `${describeDims(dims)} causal`,
        run: async (ctx) => {
          const r = await ctx.addon.benchOp(`attention_${dir}`, dims, ctx.opts.native);
          const samples = Array.from(r.perCall);
          return { samples, rate: { value: flops / median(samples) / 1e9, unit: 'GFLOP/s' } };
        },
      });
    }
  }
  return out;
}

// ---- GEMM: ours in-process, numpy through bench/numpy_gemm.py (the GEMM engineer's script) ----

function gemmCases(ctx) {
  const sizes = ctx.opts.quick ? [512] : [512, 1024, 2048];
  let numpy; // one child run for all sizes, on first use
  const numpyGflops = (n) => {
    if (numpy === undefined) {
      const r = spawnSync('python3', [join(ctx.repoRoot, 'bench', 'numpy_gemm.py'), '--sizes', sizes.join(','), '--repeats', String(ctx.opts.samples)], {
        env: numpyEnv(),
        encoding: 'utf8',
      });
      numpy = r.status === 0 ? JSON.parse(r.stdout) : null;
      if (!numpy) ctx.skip(`numpy GEMM unavailable: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`);
    }
    return numpy?.gflops[String(n)] ?? null;
  };
  const out = [];
  for (const n of sizes) {
    const flop = 2 * n ** 3;
    out.push({
      name: `gemm/ours/${n}`,
      shape: `${n}x${n}x${n} fp32 kernel=${ctx.addon.gemmKernel()}`,
      run: async () => {
        const rng = makeRng(n);
        const a = Float32Array.from({ length: n * n }, () => rng() - 0.5);
        const b = Float32Array.from({ length: n * n }, () => rng() - 0.5);
        const c = new Float32Array(n * n);
        const samples = await timeCalls(() => ctx.addon.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n), ctx.opts.samples, 2);
        return { samples, rate: { value: flop / median(samples) / 1e9, unit: 'GFLOP/s' } };
      },
    });
    out.push({
      name: `gemm/numpy/${n}`,
      shape: `${n}x${n}x${n} fp32 OpenBLAS (bench/numpy_gemm.py: median only)`,
      run: async () => {
        const g = numpyGflops(n);
        if (g == null) return null;
        // numpy_gemm.py reports {median, best} GFLOP/s (older versions: the median alone)
        const med = typeof g === 'number' ? g : g.median;
        const best = typeof g === 'number' ? med : g.best;
        return { samples: [flop / med / 1e9], rate: { value: med, unit: 'GFLOP/s' }, extra: { bestGflops: best } };
      },
    });
  }
  return out;
}

// ---- whole model: encode (ours vs numpy) and the training step ----

/** The random model and its encode batches, made once and shared by the encode cases. */
function encodeWorkload(ctx) {
  if (!ctx.cache.encode) {
    const rng = makeRng(7);
    const nb = ctx.opts.quick ? 2 : 8; // batches of 64 texts (the eager baseline is slow: keep it bounded)
    const batches = Array.from({ length: nb }, () => randomSequences(drawLengths(ctx.mix, 64, rng), BENCH_MODEL.vocab, rng));
    const { model } = createRandomModel(ctx.addon, BENCH_MODEL, 42);
    const texts = nb * 64;
    const tokens = sum(batches.map((b) => sum(b.map((s) => s.length))));
    ctx.cache.encode = { model, batches, texts, tokens, packed: batches.map(pack) };
  }
  return ctx.cache.encode;
}

const encodeShape = (w) =>
  `${BENCH_MODEL.layers}L h${BENCH_MODEL.hidden} ${BENCH_MODEL.heads}h, ${w.batches.length} batches x 64 texts, ${w.tokens} real tokens`;

function encodeCases(ctx) {
  const reps = ctx.opts.quick ? 2 : 3;
  return [
    {
      name: 'encode/ours/h512',
      needsMix: true,
      shapeOf: () => encodeShape(encodeWorkload(ctx)),
      run: async () => {
        const w = encodeWorkload(ctx);
        const pass = async () => {
          for (const p of w.packed) await w.model.encode(p.tokens, p.cuSeqlens);
        };
        const samples = await timeCalls(pass, reps, 1);
        const t = median(samples);
        const first = await w.model.encode(w.packed[0].tokens, w.packed[0].cuSeqlens);
        ctx.cache.oursFirst = first.embeddings;
        return {
          samples,
          rate: { value: w.texts / t, unit: 'texts/s' },
          extra: { textsPerSecond: w.texts / t, realTokensPerSecond: w.tokens / t, texts: w.texts, realTokens: w.tokens },
        };
      },
    },
    {
      name: 'encode/numpy/h512',
      needsMix: true,
      shapeOf: () => `${encodeShape(encodeWorkload(ctx))}, padded`,
      run: async () => {
        const w = encodeWorkload(ctx);
        const dir = mkdtempSync(join(tmpdir(), 'l2e-bench-'));
        try {
          writeSafetensorsF32(join(dir, 'model.safetensors'), modelTensors(w.model));
          writeFileSync(join(dir, 'config.json'), JSON.stringify(BENCH_MODEL));
          writeFileSync(join(dir, 'batches.json'), JSON.stringify(w.batches.map((b) => b.map((s) => Array.from(s)))));
          const embPath = join(dir, 'first.f32');
          const child = (env, args) =>
            spawnSync('python3', [join(ctx.repoRoot, 'bench', 'numpy_encode.py'), '--model', dir, ...args], {
              env,
              encoding: 'utf8',
              maxBuffer: 1 << 24,
            });
          // OpenBLAS threads busy-wait: on a loaded machine its 2-thread runs of many small GEMMs can be
          // 5-20x slower than one thread. Give numpy its better setting, probed on the first batch.
          const settings = [
            { threads: 'default', env: numpyEnv() },
            { threads: '1', env: { ...numpyEnv(), OPENBLAS_NUM_THREADS: '1' } },
          ];
          let best = null;
          for (const s of settings) {
            const probe = child(s.env, ['--batches', '1', '--repeats', '1']);
            if (probe.status !== 0) {
              ctx.skip(`numpy encode unavailable: ${probe.error?.message ?? probe.stderr.trim().split('\n').pop()}`);
              return null;
            }
            const t = JSON.parse(probe.stdout).times[0];
            if (!best || t < best.t) best = { ...s, t };
          }
          const r = child(best.env, ['--repeats', String(reps - 1), '--out-embeddings', embPath]);
          if (r.status !== 0) {
            ctx.skip(`numpy encode failed: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`);
            return null;
          }
          const res = JSON.parse(r.stdout);
          const extra = {
            textsPerSecond: res.textsPerSecond,
            realTokensPerSecond: res.realTokensPerSecond,
            paddedTokens: res.paddedTokens,
            openblasThreads: best.threads,
          };
          // the same texts through both: a wrong baseline would make the comparison meaningless
          const theirs = readF32(embPath);
          const ours = ctx.cache.oursFirst ?? (await w.model.encode(w.packed[0].tokens, w.packed[0].cuSeqlens)).embeddings;
          let maxDiff = 0;
          for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - theirs[i]));
          extra.maxAbsDiffVsOurs = ours.length === theirs.length ? maxDiff : null;
          return { samples: res.times, rate: { value: res.textsPerSecond, unit: 'texts/s' }, extra };
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    },
  ];
}

function trainCases(ctx) {
  const B = 8, G = 3;
  return [
    {
      name: 'train/step/h512',
      needsMix: true,
      shapeOf: () => `${BENCH_MODEL.layers}L h${BENCH_MODEL.hidden} ${BENCH_MODEL.heads}h, ${B} queries x group ${G} in one chunk, real length mix`,
      run: async () => {
        const { addon } = ctx;
        const warm = ctx.opts.quick ? 1 : 3;
        const steps = ctx.opts.quick ? 2 : 10;
        const rng = makeRng(11);
        // the trainer's step (src/train/grad-step.ts): a batch within the chunk budget is one chunk,
        // the B queries then the B*G passages, its loss and gradients left on the backend
        const draws = Array.from({ length: warm + steps }, () =>
          pack(randomSequences([...drawLengths(ctx.mix, B, rng), ...drawLengths(ctx.mix, B * G, rng)], BENCH_MODEL.vocab, rng)),
        );
        // the per-op timer applies to models created while it is on
        addon.setOpTiming(true);
        let model;
        try {
          model = createRandomModel(addon, BENCH_MODEL, 43).model;
        } finally {
          addon.setOpTiming(false);
        }
        try {
          addon.trainInit(model);
          let k = 0;
          const step = (batch) => recipeTrainStep(addon, model, batch.tokens, batch.cuSeqlens, B, G, ++k);
          for (const d of draws.slice(0, warm)) await step(d);
          addon.resetOpTimings();
          const samples = [];
          let tokens = 0;
          for (const d of draws.slice(warm)) {
            const t0 = now();
            await step(d);
            samples.push(now() - t0);
            tokens += d.tokens.length;
          }
          const wall = sum(samples);
          const ops = addon.opTimings().sort((a, b) => b.seconds - a.seconds);
          const opTotal = sum(ops.map((o) => o.seconds));
          const shares = ops.map((o) => ({ op: o.op, calls: o.calls, seconds: o.seconds, share: o.seconds / wall, flops: o.flops }));
          shares.push({ op: '(outside the op table)', calls: 0, seconds: wall - opTotal, share: (wall - opTotal) / wall, flops: 0 });
          return {
            samples,
            rate: { value: tokens / wall, unit: 'tok/s' },
            extra: { tokensPerSecond: tokens / wall, stepsPerSecond: steps / wall, realTokens: tokens, steps, opShares: shares },
          };
        } finally {
          model.dispose();
        }
      },
    },
  ];
}

/** Every case, in run order. */
export function allCases(ctx) {
  return [...opCases(ctx), ...attentionCases(), ...gemmCases(ctx), ...encodeCases(ctx), ...trainCases(ctx)];
}
