// CPU encode at each weight precision (fp32, bf16, int8) on the 600M shape (hidden 4096, 32 heads,
// MLP 11008, 2 layers, vocab 32000, dense 1536, random weights), the pools' real length mix.
// Every (precision, pass) runs in its own child process, so each has its own peak RSS; passes are
// interleaved (fp32, bf16, int8, fp32, ...) and medians reported, so load on a shared machine hits
// every precision alike. Prints tokens/s, the weights' resident bytes, peak RSS, load time, the
// latency of one 20-token text, the cosine of each text's embedding to fp32's, and (each run's first
// pass) the share of encode time in each op of the op table.
//
// usage: node bench/precision.mjs [--quick] [--passes N] [--texts N] [--precisions fp32,bf16,int8] [--json FILE]
//   --quick  the hidden-512 benchmark model (bench/lib/workloads.mjs) instead of the 600M shape
//   --precisions  entries PRECISION[@ISA]: @ISA runs that one with L2E_CPU_ISA=ISA (e.g. bf16@avx512:
//            bf16 without the AMX tiles, next to bf16 at the best level), in the same interleaved run
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

const USAGE =
  'usage: node bench/precision.mjs [--quick] [--passes N] [--texts N] [--precisions fp32,bf16,int8[,bf16@avx512,...]] [--json FILE]';
const ISAS = ['scalar', 'avx2', 'avx512', 'amx'];

/** 'bf16@avx512' -> { precision: 'bf16', isa: 'avx512' }; throws naming the flag for anything else. */
function parseVariant(v) {
  const [precision, isa, ...rest] = v.split('@');
  if (!['fp32', 'bf16', 'int8'].includes(precision)) throw new Error(`--precisions: unknown precision ${precision} in '${v}'`);
  if (rest.length || (isa !== undefined && !ISAS.includes(isa)))
    throw new Error(`--precisions: '${v}' is not PRECISION[@ISA] with ISA one of ${ISAS.join(', ')}`);
  return { precision, isa: isa ?? null };
}

const SHAPE_600M = {
  vocab: 32000, hidden: 4096, intermediate: 11008, layers: 2, heads: 32, kvHeads: 32, headDim: 128, dense: 1536,
  rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true,
};

function parseArgs(argv) {
  const o = { quick: false, passes: 3, texts: 128, precisions: ['fp32', 'bf16', 'int8'], json: null, child: null };
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
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  for (const k of ['passes', 'texts']) if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`--${k} must be a positive integer`);
  for (const p of o.precisions) parseVariant(p);
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
    isa: addon.cpuIsa().isa,
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
  const runs = Object.fromEntries(o.precisions.map((p) => [p, []]));
  const embFiles = {};
  for (let pass = 0; pass < o.passes; pass++) {
    for (const precision of o.precisions) {
      const jobFile = join(os.tmpdir(), `l2e-bench-precision-job-${process.pid}.json`);
      embFiles[precision] = join(os.tmpdir(), `l2e-bench-precision-${process.pid}-${precision.replace('@', '-')}.f32`);
      const { precision: weights, isa } = parseVariant(precision);
      writeFileSync(jobFile, JSON.stringify({
        config, precision: weights, sources, batches, single, embeddingsFile: embFiles[precision], opTiming: pass === 0,
      }));
      const env = isa ? { ...process.env, L2E_CPU_ISA: isa } : process.env;
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', jobFile], { encoding: 'utf8', maxBuffer: 16 << 20, env });
      if (r.status !== 0) throw new Error(`${precision} run failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      const res = JSON.parse(r.stdout);
      runs[precision].push(res);
      console.error(`pass ${pass + 1} ${precision}: ${res.tokensPerSecond.toFixed(1)} tok/s, encode ${res.encodeSeconds.toFixed(2)} s`);
    }
  }
  const ref = embFiles.fp32 ? new Float32Array(readFileSync(embFiles.fp32).buffer.slice(0)) : null;
  const rows = o.precisions.map((p) => {
    const rs = runs[p];
    const emb = new Float32Array(readFileSync(embFiles[p]).buffer.slice(0));
    const cos = ref ? cosines(emb, ref, config.dense) : null;
    const tps = median(rs.map((r) => r.tokensPerSecond));
    return {
      engine: `ours ${p}`,
      isa: rs[0].isa,
      tokensPerSecond: tps,
      encodeSeconds: median(rs.map((r) => r.encodeSeconds)),
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
  console.log(`\nencode, medians of ${o.passes} interleaved passes (load average now ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`);
  printTable(rows, [
    { title: 'engine', get: (r) => r.engine },
    { title: 'ISA', get: (r) => r.isa },
    { title: 'tok/s', get: (r) => r.tokensPerSecond.toFixed(1), right: true },
    { title: 'vs fp32', get: (r) => (fp32 ? (r.tokensPerSecond / fp32.tokensPerSecond).toFixed(2) + 'x' : '-'), right: true },
    { title: 'encode s', get: (r) => r.encodeSeconds.toFixed(2), right: true },
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
  // seconds per op in pass 1 of each variant, one column each (ops by fp32's time, else the first's)
  const timed = o.precisions.filter((p) => runs[p][0].ops);
  if (timed.length) {
    const secs = (p, op) => runs[p][0].ops.find((x) => x.op === op)?.seconds ?? 0;
    const ops = [...new Set(timed.flatMap((p) => runs[p][0].ops.filter((x) => x.seconds > 0).map((x) => x.op)))];
    ops.sort((a, b) => secs(timed[0], b) - secs(timed[0], a));
    const outside = '(outside the op table)';
    const rowsOps = [...ops, outside].map((op) => ({ op }));
    const cell = (p, op) => {
      const wall = runs[p][0].encodeSeconds;
      const s = op === outside ? wall - runs[p][0].ops.reduce((t, x) => t + x.seconds, 0) : secs(p, op);
      return `${s.toFixed(3)} ${((100 * s) / wall).toFixed(1).padStart(4)}%`;
    };
    console.log(`\nencode, seconds (share) per op, pass 1:`);
    printTable(rowsOps, [
      { title: 'op', get: (r) => r.op },
      ...timed.map((p) => ({ title: `${p} (${runs[p][0].encodeSeconds.toFixed(2)} s)`, get: (r) => cell(p, r.op), right: true })),
    ]);
  }
  if (o.json) writeFileSync(o.json, JSON.stringify({ config, texts: o.texts, tokens, passes: o.passes, rows, ops: Object.fromEntries(timed.map((p) => [p, runs[p][0].ops])) }, null, 2));
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
