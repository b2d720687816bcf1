// CPU encode at each weight precision (fp32, bf16, int8) on the 600M shape (hidden 4096, 32 heads,
// MLP 11008, 2 layers, vocab 32000, dense 1536, random weights), the pools' real length mix.
// Every (precision, pass) runs in its own child process, so each has its own peak RSS; passes are
// interleaved (fp32, bf16, int8, fp32, ...) and medians reported, so load on a shared machine hits
// every precision alike. Prints tokens/s, the weights' resident bytes, peak RSS, load time, the
// latency of one 20-token text, the cosine of each text's embedding to fp32's, and (fp32) the share
// of encode time in each op of the op table.
//
// Also: our GEMM's own GFLOP/s (a 2048^3 sgemm in a child, once per pass) and each engine's encode
// GFLOP/s as a share of it (the FLOPs of the linear layers and causal attention of the workload).
//
// usage: node bench/precision.mjs [--quick] [--passes N] [--texts N] [--precisions fp32,bf16,int8] [--json FILE]
//                                 [--baseline ADDON]
//   --quick     the hidden-512 benchmark model (bench/lib/workloads.mjs) instead of the 600M shape
//   --baseline  another build of the test addon (l2e_testing.node), run interleaved with ours as
//               "before" rows: a before/after comparison under the same load
// The random weights are written once as safetensors under the OS temp folder (2.2 GB for 600M) and
// loaded like a checkpoint, through NativeModel.loadTensors. Peers (llama.cpp through
// node-llama-cpp) are not run yet: their row says why.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readSafetensorsHeader, writeSafetensors } from '../dist/model/safetensors.js';
import { parameterNames } from '../dist/model/weights.js';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testingAddon } from '../test/helpers/testing-addon.mjs';
import { printTable } from './lib/stats.mjs';
import { BENCH_MODEL, drawLengths, loadLengthMix, makeRng, pack, randomSequences } from './lib/workloads.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..');

const SHAPE_600M = {
  vocab: 32000, hidden: 4096, intermediate: 11008, layers: 2, heads: 32, kvHeads: 32, headDim: 128, dense: 1536,
  rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true,
};

function parseArgs(argv) {
  const o = { quick: false, passes: 3, texts: 128, precisions: ['fp32', 'bf16', 'int8'], json: null, child: null, baseline: null, gemmChild: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--passes') o.passes = Number(value());
    else if (a === '--texts') o.texts = Number(value());
    else if (a === '--precisions') o.precisions = value().split(',');
    else if (a === '--json') o.json = value();
    else if (a === '--child') o.child = value();
    else if (a === '--gemm-child') o.gemmChild = true;
    else if (a === '--baseline') {
      o.baseline = resolve(value());
      if (!existsSync(o.baseline)) throw new Error(`--baseline: ${o.baseline} does not exist`);
    }
    else if (a === '--help' || a === '-h') {
      console.log('usage: node bench/precision.mjs [--quick] [--passes N] [--texts N] [--precisions fp32,bf16,int8] [--json FILE] [--baseline ADDON]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  for (const k of ['passes', 'texts']) if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`--${k} must be a positive integer`);
  for (const p of o.precisions) if (!['fp32', 'bf16', 'int8'].includes(p)) throw new Error(`--precisions: unknown precision ${p}`);
  return o;
}

/** The model's tensors in the native layout order: the library's parameter list for this shape. */
function tensorSpecs(c) {
  const { hidden, intermediate, layers, heads, kvHeads, headDim, vocab, dense } = c;
  const config = { vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate, numLayers: layers, numHeads: heads, numKvHeads: kvHeads, headDim };
  return parameterNames(config, dense);
}

/**
 * Random weights like bench/lib/workloads.mjs createRandomModel (norms 1, projections uniform with
 * std 0.02, the dense layer like nn.Linear), streamed tensor by tensor into a safetensors file.
 * Returns loadTensors() sources. Reused when the file exists with the expected size.
 */
function writeRandomWeights(c, seed) {
  const specs = tensorSpecs(c);
  const file = join(os.tmpdir(), `l2e-bench-precision-h${c.hidden}-l${c.layers}-v${c.vocab}-s${seed}.safetensors`);
  const bytes = specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1) * 4, 0);
  const sourcesOf = () =>
    readSafetensorsHeader(file).tensors.map((t) => ({ name: t.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype }));
  if (existsSync(file)) {
    try {
      const sources = sourcesOf();
      if (sources.reduce((sum, t) => sum + t.length, 0) === bytes) return sources;
    } catch {
      // an unreadable or other file: written again below
    }
  }
  console.error(`writing random weights (${(bytes / 1e9).toFixed(2)} GB) to ${file} ...`);
  const rng = makeRng(seed);
  const tensors = specs.map((s) => {
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    if (s.name.endsWith('layernorm.weight') || s.name === 'norm.weight') data.fill(1);
    else {
      const a = s.name.startsWith('dense_layer.') ? 1 / Math.sqrt(c.hidden) : 0.02 * Math.sqrt(3);
      for (let i = 0; i < data.length; i++) data[i] = (rng() * 2 - 1) * a;
    }
    return { name: s.name, dtype: 'F32', shape: s.shape, data };
  });
  writeSafetensors(file, tensors); // the library's writer (atomic)
  return sourcesOf();
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Child: load one precision, encode the batches once (after a warm-up), report and write embeddings. */
async function child(jobFile) {
  const job = JSON.parse(readFileSync(jobFile, 'utf8'));
  // the test addon: the shipped addon's NativeModel plus the op timer (L2E_TESTING_ADDON names another build)
  const addon = testingAddon();
  if (job.opTiming) addon.setOpTiming(true);
  const t0 = now();
  const model = new addon.NativeModel(job.config, 'cpu', job.precision);
  await model.loadTensors(job.sources);
  const loadSeconds = now() - t0;
  const peakRssLoad = process.resourceUsage().maxRSS * 1024;
  const batches = job.batches.map((b) => ({ tokens: Int32Array.from(b.tokens), cuSeqlens: Int32Array.from(b.cuSeqlens) }));
  const single = { tokens: Int32Array.from(job.single), cuSeqlens: Int32Array.from([0, job.single.length]) };
  await model.encode(single.tokens, single.cuSeqlens); // warm-up: thread pool, buffers
  const latencies = [];
  for (let i = 0; i < 5; i++) {
    const s = now();
    await model.encode(single.tokens, single.cuSeqlens);
    latencies.push(now() - s);
  }
  if (job.opTiming) addon.resetOpTimings();
  const embeddings = [];
  let tokens = 0;
  const s = now();
  for (const b of batches) {
    embeddings.push((await model.encode(b.tokens, b.cuSeqlens)).embeddings);
    tokens += b.tokens.length;
  }
  const encodeSeconds = now() - s;
  const ops = job.opTiming ? addon.opTimings().sort((a, b) => b.seconds - a.seconds) : null;
  const out = {
    precision: job.precision,
    loadSeconds,
    encodeSeconds,
    tokens,
    tokensPerSecond: tokens / encodeSeconds,
    latency20: median(latencies),
    weightBytes: model.weightBytes,
    peakRss: process.resourceUsage().maxRSS * 1024,
    peakRssLoad,
    ops,
  };
  model.dispose();
  const all = new Float32Array(embeddings.reduce((n, e) => n + e.length, 0));
  let o = 0;
  for (const e of embeddings) (all.set(e, o), (o += e.length));
  writeFileSync(job.embeddingsFile, Buffer.from(all.buffer));
  process.stdout.write(JSON.stringify(out));
}

/** Child: our sgemm on 2048^3 (best of 3 after a warm-up), in GFLOP/s. */
function gemmChild() {
  const addon = testingAddon();
  const n = 2048, a = new Float32Array(n * n).fill(0.5), b = new Float32Array(n * n).fill(0.25), c = new Float32Array(n * n);
  let best = Infinity;
  for (let i = 0; i < 4; i++) {
    const s = now();
    addon.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
    if (i > 0) best = Math.min(best, now() - s);
  }
  process.stdout.write(JSON.stringify({ gflops: (2 * n ** 3) / best / 1e9 }));
}

/** FLOPs of encoding the sequences: the linear layers (2 N K per token) and causal attention. */
function encodeFlops(c, seqs) {
  const qd = c.heads * c.headDim, kvd = c.kvHeads * c.headDim;
  const perToken = 2 * (c.layers * (2 * qd * c.hidden + 2 * kvd * c.hidden + 3 * c.intermediate * c.hidden) + c.dense * c.hidden);
  let flops = 0;
  for (const s of seqs) flops += perToken * s.length + c.layers * 4 * qd * (s.length * (s.length + 1)) / 2;
  return flops;
}

function cosines(a, b, dim) {
  const out = [];
  for (let r = 0; r < a.length / dim; r++) {
    let ab = 0, aa = 0, bb = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) (ab += a[j] * b[j]), (aa += a[j] * a[j]), (bb += b[j] * b[j]);
    out.push(ab / Math.sqrt(aa * bb));
  }
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) return child(o.child);
  if (o.gemmChild) return gemmChild();
  const config = o.quick ? { ...BENCH_MODEL } : SHAPE_600M;
  const mix = loadLengthMix(resolve(repoRoot, '../shared/data/pools'));
  if (!mix) {
    console.log('skipped: no text pools at ../shared/data/pools (their length mix is the workload)');
    return;
  }
  const rng = makeRng(5);
  const seqs = randomSequences(drawLengths(mix, o.texts, rng), config.vocab, rng).sort((a, b) => b.length - a.length);
  const batches = [];
  for (let i = 0; i < seqs.length; i += 64) {
    const p = pack(seqs.slice(i, i + 64));
    batches.push({ tokens: Array.from(p.tokens), cuSeqlens: Array.from(p.cuSeqlens) });
  }
  const single = Array.from(randomSequences([20], config.vocab, rng)[0]);
  const sources = writeRandomWeights(config, 43);
  const tokens = seqs.reduce((n, s) => n + s.length, 0);
  const loadavg = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  console.log(
    `model: hidden ${config.hidden}, ${config.layers} layers, MLP ${config.intermediate}, vocab ${config.vocab}; ` +
      `${o.texts} texts, ${tokens} tokens, batches of 64; ${os.cpus()[0]?.model ?? '?'} x ${os.cpus().length}; ` +
      `load average at start ${loadavg}`,
  );
  // engines: ours at each precision, then (--baseline) the other build at each precision
  const engines = o.precisions.map((p) => ({ key: p, precision: p, addon: null }));
  if (o.baseline) engines.push(...o.precisions.map((p) => ({ key: `before ${p}`, precision: p, addon: o.baseline })));
  const runs = Object.fromEntries(engines.map((e) => [e.key, []]));
  const embFiles = {};
  const gemm = [];
  const flops = encodeFlops(config, seqs);
  const self = fileURLToPath(import.meta.url);
  for (let pass = 0; pass < o.passes; pass++) {
    const g = spawnSync(process.execPath, [self, '--gemm-child'], { encoding: 'utf8' });
    if (g.status !== 0) throw new Error(`sgemm run failed: ${g.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    gemm.push(JSON.parse(g.stdout).gflops);
    console.error(`pass ${pass + 1} sgemm 2048^3: ${gemm[gemm.length - 1].toFixed(1)} GFLOP/s`);
    for (const e of engines) {
      const jobFile = join(os.tmpdir(), `l2e-bench-precision-job-${process.pid}.json`);
      embFiles[e.key] = join(os.tmpdir(), `l2e-bench-precision-${process.pid}-${e.key.replace(' ', '-')}.f32`);
      writeFileSync(jobFile, JSON.stringify({
        config, precision: e.precision, sources, batches, single, embeddingsFile: embFiles[e.key], opTiming: e.key === 'fp32' && pass === 0,
      }));
      const env = e.addon ? { ...process.env, L2E_TESTING_ADDON: e.addon } : process.env;
      const r = spawnSync(process.execPath, [self, '--child', jobFile], { encoding: 'utf8', maxBuffer: 16 << 20, env });
      if (r.status !== 0) throw new Error(`${e.key} run failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      const res = JSON.parse(r.stdout);
      runs[e.key].push(res);
      console.error(`pass ${pass + 1} ${e.key}: ${res.tokensPerSecond.toFixed(1)} tok/s, encode ${res.encodeSeconds.toFixed(2)} s, peak RSS ${(res.peakRss / 1e9).toFixed(2)} GB`);
    }
  }
  const gemmGflops = median(gemm);
  const ref = embFiles.fp32 ? new Float32Array(readFileSync(embFiles.fp32).buffer.slice(0)) : null;
  const rows = engines.map(({ key: p }) => {
    const rs = runs[p];
    const emb = new Float32Array(readFileSync(embFiles[p]).buffer.slice(0));
    const cos = ref ? cosines(emb, ref, config.dense) : null;
    const tps = median(rs.map((r) => r.tokensPerSecond));
    const encodeSeconds = median(rs.map((r) => r.encodeSeconds));
    return {
      engine: p.startsWith('before') ? p : `ours ${p}`,
      gflops: flops / encodeSeconds / 1e9,
      gemmShare: flops / encodeSeconds / 1e9 / gemmGflops,
      tokensPerSecond: tps,
      encodeSeconds,
      latency20: median(rs.map((r) => r.latency20)),
      loadSeconds: median(rs.map((r) => r.loadSeconds)),
      weightBytes: rs[0].weightBytes,
      peakRss: median(rs.map((r) => r.peakRss)),
      peakRssLoad: median(rs.map((r) => r.peakRssLoad)),
      minCos: cos ? Math.min(...cos) : null,
      meanCos: cos ? cos.reduce((a, b) => a + b, 0) / cos.length : null,
      samples: rs.map((r) => r.tokensPerSecond),
    };
  });
  const fp32 = rows.find((r) => r.engine === 'ours fp32');
  const gb = (b) => (b / 1e9).toFixed(2);
  console.log(`\nencode, medians of ${o.passes} interleaved passes (load average now ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}); ` +
    `our sgemm 2048^3: ${gemmGflops.toFixed(1)} GFLOP/s; the workload: ${(flops / 1e9).toFixed(0)} GFLOP`);
  printTable(rows, [
    { title: 'engine', get: (r) => r.engine },
    { title: 'tok/s', get: (r) => r.tokensPerSecond.toFixed(1), right: true },
    { title: 'vs fp32', get: (r) => (fp32 ? (r.tokensPerSecond / fp32.tokensPerSecond).toFixed(2) + 'x' : '-'), right: true },
    { title: 'encode s', get: (r) => r.encodeSeconds.toFixed(2), right: true },
    { title: 'GFLOP/s', get: (r) => r.gflops.toFixed(1), right: true },
    { title: 'of sgemm', get: (r) => `${(100 * r.gemmShare).toFixed(0)}%`, right: true },
    { title: '20-tok ms', get: (r) => (1000 * r.latency20).toFixed(1), right: true },
    { title: 'weights GB', get: (r) => gb(r.weightBytes), right: true },
    { title: 'peak RSS GB', get: (r) => gb(r.peakRss), right: true },
    { title: 'RSS/weights', get: (r) => (r.peakRss / r.weightBytes).toFixed(2), right: true },
    { title: 'peak RSS by load end', get: (r) => gb(r.peakRssLoad), right: true },
    { title: 'load s', get: (r) => r.loadSeconds.toFixed(1), right: true },
    { title: 'cos min / mean', get: (r) => (r.minCos == null ? '-' : `${r.minCos.toFixed(6)} / ${r.meanCos.toFixed(6)}`), right: true },
  ]);
  let peer = 'node-llama-cpp is not installed';
  try {
    await import('node-llama-cpp');
    peer = 'node-llama-cpp is installed, but the GGUF writer (q/k permuted to its rotary layout) is not written yet';
  } catch {}
  console.log(`llama.cpp F32/F16/BF16/Q8_0: skipped (${peer})`);
  const timed = runs.fp32?.[0]?.ops;
  if (timed) {
    const wall = runs.fp32[0].encodeSeconds;
    const total = timed.reduce((s, x) => s + x.seconds, 0);
    console.log(`\nfp32 encode, time per op (pass 1, ${wall.toFixed(2)} s):`);
    printTable([...timed.filter((x) => x.seconds > 0), { op: '(outside the op table)', calls: 0, seconds: wall - total }], [
      { title: 'op', get: (r) => r.op },
      { title: 'calls', get: (r) => r.calls, right: true },
      { title: 'seconds', get: (r) => r.seconds.toFixed(3), right: true },
      { title: 'share', get: (r) => `${((100 * r.seconds) / wall).toFixed(1)}%`, right: true },
    ]);
  }
  if (o.json)
    writeFileSync(o.json, JSON.stringify({
      config, texts: o.texts, tokens, passes: o.passes, machine: `${os.cpus()[0]?.model ?? '?'} x ${os.cpus().length}`,
      loadAverage: os.loadavg(), baseline: o.baseline, gemmGflops, gemmSamples: gemm, encodeGflop: flops / 1e9, rows, fp32Ops: timed ?? null,
    }, null, 2));
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
