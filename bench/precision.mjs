// CPU encode at each weight precision (fp32, bf16, int8) on the 600M shape (hidden 4096, 32 heads,
// MLP 11008, 2 layers, vocab 32000, dense 1536, random weights), the pools' real length mix, next to
// llama.cpp (through node-llama-cpp, an optional dev dependency) on the same model in F32, F16, BF16 and
// Q8_0 GGUF files (bench/lib/gguf.mjs, bench/lib/llama-gguf.mjs), and ONNX Runtime (onnxruntime-node, a
// dev dependency) on the same model as FP32, INT8 and INT8B32 ONNX graphs (bench/lib/onnx.mjs,
// bench/lib/llama-onnx.mjs).
// Every (engine, pass) runs in its own child process, so each has its own peak RSS; passes are
// interleaved (fp32, bf16, int8, llama.cpp F32, ..., fp32, ...) and medians reported, so load on a shared
// machine hits every engine alike. Prints tokens/s, the weights' bytes, peak RSS, load time, the latency
// of one 20-token text, the cosine of each text's embedding to our fp32's, and (fp32) the share of
// encode time in each op of the op table. Also our GEMM's own GFLOP/s (a 2048^3 sgemm in a child, once
// per pass) and each engine's encode GFLOP/s as a share of it (the FLOPs of the linear layers and causal
// attention of the workload), and with --baseline, "before" rows of another build of the test addon,
// run interleaved with ours: a before/after comparison under the same load.
//
// Before any timing, each peer's format embeds a few of the texts and must agree with ours (cosine
// >= 0.9997 on every one; ONNX Runtime's INT8 formats, whose activations are quantised per tensor or
// in blocks, >= 0.998); a format that does not is reported and not timed. llama.cpp stops at the
// mean-pooled final hidden states (it has no place for our dense layer): our dense layer and the L2 norm
// are applied to its output in JS for the comparison, outside its timing. It embeds one sequence at a
// time (node-llama-cpp has no batched embedding call); we encode batches of 64 packed texts; ONNX
// Runtime batches of consecutive texts (sorted by length) right-padded to their longest: at most 64
// texts and 4096 padded tokens a batch (its attention holds [batch, heads, S, S] scores), and at most
// a quarter of a batch's tokens padding (a long text is not padded into by a batch of short ones).
// Every text starts with BOS (so that llama.cpp, which prepends it when missing, sees the same tokens).
//
// usage: node bench/precision.mjs --help   (or: npm run bench -- precision --help)
// The random weights are written once as safetensors under the OS temp folder (2.2 GB for 600M) and
// loaded like a checkpoint, through NativeModel.loadTensors; the GGUF and ONNX files are written once
// beside them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { buildLlamaTokenizerJson, LLAMA_TOKENIZER_CONFIG } from '../dist/demo/llama-tokenizer.js';
import { readTensorF32 } from '../dist/model/safetensors.js';
import { cpuIsa } from '../dist/native.js';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testingAddon } from '../test/helpers/testing-addon.mjs';
import { readF32 } from './lib/f32-file.mjs';
import { writeGguf } from './lib/gguf.mjs';
import { llamaMetadata, llamaTensors, llamaTokenizerMetadata, projectPooled } from './lib/llama-gguf.mjs';
import { loadLlamaCpp, openEmbedder } from './lib/llama-peer.mjs';
import { llamaOnnxGraph, ONNX_FORMATS } from './lib/llama-onnx.mjs';
import { loadOrt, openOrtEmbedder, ortU8S8Saturates, paddedBatches } from './lib/ort-peer.mjs';
import { median, printTable } from './lib/stats.mjs';
import { machine } from './lib/machine.mjs';
import { checkJsonOut, valueAfter, writeJsonOut } from './lib/usage.mjs';
import { BENCH_MODEL, drawLengths, loadLengthMix, makeRng, pack, poolsFolder, randomSequences, SHAPE_600M, writeRandomWeights } from './lib/workloads.mjs';

const HELP = `usage: node bench/precision.mjs [options]     (or: npm run bench -- precision [options])

Encodes the pools' length mix on the 600M shape (random weights) with our CPU backend at fp32, bf16 and
int8, with llama.cpp (node-llama-cpp) on the same model as F32, F16, BF16 and Q8_0 GGUF files and with
ONNX Runtime (onnxruntime-node) on it as FP32, INT8 (DynamicQuantizeMatMul) and INT8B32 (MatMulNBits)
ONNX graphs, each engine in its own process; prints tokens/s, single-text latency, weights and peak
RSS, and the cosine of every embedding to our fp32's. A missing node-llama-cpp or onnxruntime-node is
a skipped row, with the reason.

options:
  --quick              the hidden-512 benchmark model instead of the 600M shape (a smoke run)
  --passes N           timed passes of every engine, interleaved; medians reported (default 3)
  --texts N            texts of the workload (default 128)
  --threads N          CPU threads of every engine (default 2)
  --precisions LIST    ours: comma-separated PRECISION[@ISA], PRECISION one of fp32,bf16,int8 (default
                       all; "none" for no rows of ours); @ISA runs that one with L2E_CPU_ISA=ISA (one of
                       scalar,avx2,avx512,amx), e.g. bf16@avx512: bf16 without the AMX tiles, next to bf16
                       at the best level, in the same interleaved run
  --baseline ADDON     another build of the test addon (l2e_testing.node): its rows, "before PRECISION",
                       run interleaved with ours (L2E_TESTING_ADDON=ADDON in their children)
  --llama LIST         llama.cpp formats: comma-separated of F32,F16,BF16,Q8_0 (default all; "none" to skip)
  --ort LIST           ONNX Runtime formats: comma-separated of FP32,INT8,INT8B32 (default all; "none" to skip)
  --json FILE          write the rows (and the check results, the skipped engines) to FILE
  --pools DIR          text pools whose length mix is the workload (default $L2E_POOLS, else
                       ../shared/data/pools; without pools the run is skipped)
  -h, --help           this help

The random weights, and the GGUF and ONNX files made from them, are kept in the OS temp folder for the
next run (2.2 GB of weights at the 600M shape, about 11 GB with every format); the run's last line names
them, to remove when no longer wanted. Job and embedding files are removed however the run ends.
`;

const LLAMA_FORMATS = ['F32', 'F16', 'BF16', 'Q8_0'];
/** Every peer embedding must be this close to ours (cosine) before that format is timed. */
const CHECK_MIN_COS = 0.9997;
/**
 * ONNX Runtime INT8 (DynamicQuantizeMatMul) and INT8B32 (MatMulNBits): their activations are quantised
 * per tensor or in blocks, where ours are per row, so their error is larger than ours (INT8's min
 * cosine to our fp32 on the 600M shape: 0.99890, ours int8 0.99916); a graph with a wrong layout is
 * far below (0.92 with the rotary halves swapped on the test's model).
 */
const CHECK_MIN_COS_ORT_INT8 = 0.998;
/** ONNX Runtime's batches: at most this many padded tokens (batch x longest) and texts. */
const ORT_BATCH_TOKENS = 4096;
const ORT_BATCH_TEXTS = 64;
/** ... and at most this many padded tokens for each real one. */
const ORT_PADDING = 1.25;
/** Texts embedded by the check (spread over the length mix). */
const CHECK_TEXTS = 8;

const ISAS = ['scalar', 'avx2', 'avx512', 'amx'];

/** 'bf16@avx512' -> { precision: 'bf16', isa: 'avx512' }; throws naming the flag for anything else. */
function parseVariant(v) {
  const [precision, isa, ...rest] = v.split('@');
  if (!['fp32', 'bf16', 'int8'].includes(precision)) throw new Error(`--precisions: unknown precision ${precision} in '${v}'`);
  if (rest.length || (isa !== undefined && !ISAS.includes(isa)))
    throw new Error(`--precisions: '${v}' is not PRECISION[@ISA] with ISA one of ${ISAS.join(', ')}`);
  return { precision, isa: isa ?? null };
}

/** The list, refused naming the flag when a value is in it twice (its rows were merged into one). */
function onceEach(flag, xs) {
  const twice = xs.find((x, i) => xs.indexOf(x) !== i);
  if (twice !== undefined) throw new Error(`${flag}: ${twice} is given twice`);
  return xs;
}

function parseArgs(argv) {
  const o = { quick: false, passes: 3, texts: 128, threads: 2, precisions: ['fp32', 'bf16', 'int8'], llama: [...LLAMA_FORMATS], ort: [...ONNX_FORMATS], json: null, child: null, gemmChild: false, baseline: null, pools: null };
  const list = (flag, v, allowed) => {
    if (v === 'none') return [];
    const xs = onceEach(flag, v.split(','));
    for (const x of xs) if (!allowed.includes(x)) throw new Error(`${flag}: unknown value ${x} (one of ${allowed.join(', ')}, or none)`);
    return xs;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => valueAfter(argv, i++);
    if (a === '--quick') o.quick = true;
    else if (a === '--passes') o.passes = Number(value());
    else if (a === '--texts') o.texts = Number(value());
    else if (a === '--threads') o.threads = Number(value());
    else if (a === '--precisions') {
      const v = value();
      o.precisions = v === 'none' ? [] : onceEach(a, v.split(','));
      for (const p of o.precisions) parseVariant(p);
    }
    else if (a === '--llama') o.llama = list(a, value(), LLAMA_FORMATS);
    else if (a === '--ort') o.ort = list(a, value(), ONNX_FORMATS);
    else if (a === '--json') o.json = value();
    else if (a === '--pools') o.pools = value();
    else if (a === '--child') o.child = value();
    else if (a === '--gemm-child') o.gemmChild = true;
    else if (a === '--baseline') {
      o.baseline = resolve(value());
      if (!existsSync(o.baseline)) throw new Error(`--baseline: ${o.baseline} does not exist`);
    }
    else if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  for (const k of ['passes', 'texts', 'threads']) if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`--${k} must be a positive integer`);
  if (!o.child && !o.gemmChild) {
    o.pools = poolsFolder(o.pools);
    // an ISA above this CPU's failed in its first timed child, after the model and the peers' checks
    const best = cpuIsa().best;
    for (const p of o.precisions) {
      const { isa } = parseVariant(p);
      if (isa && ISAS.indexOf(isa) > ISAS.indexOf(best)) throw new Error(`--precisions: ${p} needs ${isa}; this CPU's best is ${best}`);
    }
  }
  if (o.json !== null) checkJsonOut('--json', o.json, [['--baseline', o.baseline]]);
  return o;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Child: run one engine (job.engine 'ours', 'llama' or 'ort'), write its embeddings, print its report. */
async function child(jobFile) {
  const job = JSON.parse(readFileSync(jobFile, 'utf8'));
  if (process.env.L2E_BENCH_FAILING) throw new Error('failed as L2E_BENCH_FAIL_CHILD asked');
  const out = job.engine === 'llama' ? await childLlama(job) : job.engine === 'ort' ? await childOrt(job) : await childOurs(job);
  process.stdout.write(JSON.stringify(out));
}

/** 5 timed single-text encodes after a warm-up one (thread pool, buffers): the median, in seconds. */
async function latency(encodeOne) {
  await encodeOne();
  const xs = [];
  for (let i = 0; i < 5; i++) {
    const s = now();
    await encodeOne();
    xs.push(now() - s);
  }
  return median(xs);
}

/** Ours: load one precision, encode the batches once (after the latency runs), report. */
async function childOurs(job) {
  // the test addon: the shipped addon's NativeModel plus the op timer (L2E_TESTING_ADDON names another build)
  const addon = testingAddon();
  if (job.opTiming) addon.setOpTiming(true);
  const t0 = now();
  const model = new addon.NativeModel(job.config, 'cpu', job.precision);
  await model.loadTensors(job.sources);
  const loadSeconds = now() - t0;
  const peakRssLoad = process.resourceUsage().maxRSS * 1024;
  const batches = job.batches.map((b) => ({ tokens: Int32Array.from(b.tokens), cuSeqlens: Int32Array.from(b.cuSeqlens) }));
  const single = job.single && { tokens: Int32Array.from(job.single), cuSeqlens: Int32Array.from([0, job.single.length]) };
  const latency20 = single ? await latency(() => model.encode(single.tokens, single.cuSeqlens)) : null;
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
    loadSeconds,
    encodeSeconds,
    tokens,
    tokensPerSecond: tokens / encodeSeconds,
    latency20,
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
  return out;
}

/** llama.cpp: load one GGUF, embed the texts one at a time (after the latency runs), report. */
async function childLlama(job) {
  const peer = await loadLlamaCpp({ threads: job.threads });
  if ('skip' in peer) throw new Error(peer.skip);
  const t0 = now();
  const e = await openEmbedder(peer.llama, job.gguf, { threads: job.threads, maxTokens: job.maxTokens });
  const loadSeconds = now() - t0;
  const peakRssLoad = process.resourceUsage().maxRSS * 1024;
  const latency20 = job.single ? await latency(() => e.embed(job.single)) : null;
  const pooled = new Float32Array(job.seqs.length * job.hidden);
  let tokens = 0;
  const s = now();
  for (const [i, seq] of job.seqs.entries()) {
    pooled.set(await e.embed(seq), i * job.hidden);
    tokens += seq.length;
  }
  const report = peerReport({ loadSeconds, encodeSeconds: now() - s, tokens, latency20, weightBytes: statSync(job.gguf).size, peakRssLoad, version: peer.version });
  await e.dispose();
  writeFileSync(job.embeddingsFile, Buffer.from(pooled.buffer));
  return report;
}

/** A peer's report, its peak RSS read now (before its runtime is released). */
function peerReport({ loadSeconds, encodeSeconds, tokens, latency20, weightBytes, peakRssLoad, version }) {
  const peakRss = process.resourceUsage().maxRSS * 1024;
  return { loadSeconds, encodeSeconds, tokens, tokensPerSecond: tokens / encodeSeconds, latency20, weightBytes, peakRss, peakRssLoad, ops: null, version };
}

/** ONNX Runtime: load one ONNX graph, embed the batches once (after the latency runs), report. */
async function childOrt(job) {
  const peer = await loadOrt();
  if ('skip' in peer) throw new Error(peer.skip);
  const t0 = now();
  const e = await openOrtEmbedder(peer.ort, job.onnx, { threads: job.threads, dim: job.dim });
  const loadSeconds = now() - t0;
  const peakRssLoad = process.resourceUsage().maxRSS * 1024;
  const latency20 = job.single ? await latency(() => e.embed([job.single])) : null;
  const out = new Float32Array(job.seqs.length * job.dim);
  let tokens = 0, row = 0;
  const s = now();
  for (const batch of paddedBatches(job.seqs, { texts: ORT_BATCH_TEXTS, tokens: ORT_BATCH_TOKENS, padding: ORT_PADDING })) {
    out.set(await e.embed(batch), row * job.dim);
    row += batch.length;
    tokens += batch.reduce((n, x) => n + x.length, 0);
  }
  const report = peerReport({ loadSeconds, encodeSeconds: now() - s, tokens, latency20, weightBytes: statSync(`${job.onnx}.data`).size, peakRssLoad, version: peer.version });
  await e.dispose();
  writeFileSync(job.embeddingsFile, Buffer.from(out.buffer));
  return report;
}

/** The random weights' float32 tensors by name, read from their safetensors file when asked. */
function tensorReader(sources) {
  const byName = new Map(sources.map((s) => [s.name, s]));
  return (name) => {
    const s = byName.get(name);
    return readTensorF32({ name, file: s.path, dtype: s.dtype, shape: [], offset: s.offset, byteLength: s.length });
  };
}

/**
 * The ONNX graph of the random weights in `format` (and its .data file), written beside the
 * safetensors file and reused while both are newer than that file.
 */
function ortOnnx(config, sources, format, maxPositions) {
  const file = sources[0].path.replace(/\.safetensors$/, `-onnx1-p${maxPositions}-${format}.onnx`);
  const fresh = (f) => existsSync(f) && statSync(f).mtimeMs >= statSync(sources[0].path).mtimeMs;
  if (fresh(file) && fresh(`${file}.data`)) return file;
  console.error(`writing the ${format} ONNX graph to ${file} ...`);
  const tensor = tensorReader(sources);
  llamaOnnxGraph({ ...config, maxPositions }, format, tensor).write(file);
  return file;
}

/**
 * The GGUF of the random weights in `format`, written (atomically) beside the safetensors file and
 * reused while it is newer than that file.
 */
function llamaGguf(config, sources, format, tokenizerMetadata) {
  const file = sources[0].path.replace(/\.safetensors$/, `-gguf1-${format}.gguf`);
  if (existsSync(file) && statSync(file).mtimeMs >= statSync(sources[0].path).mtimeMs) return file;
  console.error(`writing the ${format} GGUF to ${file} ...`);
  const tensor = tensorReader(sources);
  writeGguf(file, { metadata: llamaMetadata(config, format, tokenizerMetadata, 'l2e bench random weights'), tensors: llamaTensors(config, format, tensor) });
  return file;
}

/**
 * Runs a child of this script (args: ['--child', jobFile] or ['--gemm-child']) with `threads` threads,
 * optionally at one ISA level and with another build of the test addon; returns its JSON report.
 */
function runChildProcess(args, label, threads, { isa = null, addon = null, tmp = null } = {}) {
  // L2E_BENCH_FAIL_CHILD=LABEL: that child fails (the test of a peer's failure being a skipped row)
  const failing = process.env.L2E_BENCH_FAIL_CHILD === label ? { L2E_BENCH_FAILING: '1' } : {};
  const env = { ...process.env, ...failing, L2E_NUM_THREADS: String(threads), ...(isa ? { L2E_CPU_ISA: isa } : {}), ...(addon ? { L2E_TESTING_ADDON: addon } : {}), ...(tmp ? { TMPDIR: tmp } : {}) };
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 16 << 20, env });
  if (r.status !== 0) {
    const tail = r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' | ');
    throw Object.assign(new Error(`${label} run failed: ${tail}`), { tail });
  }
  return JSON.parse(r.stdout);
}

/**
 * Runs one child job; returns its report. ONNX Runtime's children get a temp folder of their own, removed
 * after: its telemetry library leaves a `mat-debug-<pid>.log` and a `.ses` file in the temp folder.
 */
function runChild(job, label, threads, opts = {}) {
  const jobFile = join(os.tmpdir(), `l2e-bench-precision-job-${process.pid}.json`);
  writeFileSync(jobFile, JSON.stringify(job));
  if (job.engine !== 'ort') return runChildProcess(['--child', jobFile], label, threads, opts);
  const tmp = mkdtempSync(join(os.tmpdir(), 'l2e-bench-ort-'));
  try {
    return runChildProcess(['--child', jobFile], label, threads, { ...opts, tmp });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Runs a peer's child; returns null, or what its failure said (a peer that crashes or throws in its own
 * process is a skipped row, as a missing one is: the other engines' figures still stand).
 */
function peerFailure(run) {
  try {
    run();
    return null;
  } catch (err) {
    return `its process failed (${err.tail ?? err.message})`;
  }
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
  for (const s of seqs) flops += perToken * s.length + (c.layers * 4 * qd * (s.length * (s.length + 1))) / 2;
  return flops;
}

/** Our embeddings from llama.cpp's pooled hidden states (rows of `hidden`): our dense layer, L2 norm. */
function projectAll(pooled, hidden, dense) {
  const rows = pooled.length / hidden;
  const out = new Float32Array(rows * dense.bias.length);
  for (let r = 0; r < rows; r++) out.set(projectPooled(pooled.subarray(r * hidden, (r + 1) * hidden), dense.weight, dense.bias), r * dense.bias.length);
  return out;
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
  const mix = loadLengthMix(o.pools);
  if (!mix) {
    console.log(`skipped: no text pools at ${o.pools} (their length mix is the workload; give --pools DIR or set L2E_POOLS)`);
    return;
  }
  const rng = makeRng(5);
  const seqs = randomSequences(drawLengths(mix, o.texts, rng), config.vocab, rng).sort((a, b) => b.length - a.length);
  for (const s of seqs) s[0] = 1; // BOS
  const batches = [];
  for (let i = 0; i < seqs.length; i += 64) {
    const p = pack(seqs.slice(i, i + 64));
    batches.push({ tokens: Array.from(p.tokens), cuSeqlens: Array.from(p.cuSeqlens) });
  }
  const single = Array.from(randomSequences([20], config.vocab, rng)[0]);
  single[0] = 1;
  const sources = writeRandomWeights(config, 43);
  const tokens = seqs.reduce((n, s) => n + s.length, 0);
  const maxTokens = seqs[0].length;
  const loadavg = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  console.log(
    `model: hidden ${config.hidden}, ${config.layers} layers, MLP ${config.intermediate}, vocab ${config.vocab}; ` +
      `${o.texts} texts, ${tokens} tokens (longest ${maxTokens}), batches of 64; ${o.threads} threads; ` +
      `${machine().cpu} x ${machine().cores}; load average at start ${loadavg}`,
  );
  const skipped = [];
  const skip = (msg) => {
    skipped.push(msg);
    console.log(`skipped: ${msg}`);
  };

  // llama.cpp: the runtime, the GGUF files, and the check against ours before any timing
  let formats = o.llama;
  const ggufs = {};
  const checks = [];
  let llamaVersion = null;
  const seqsJson = seqs.map((s) => Array.from(s));
  const tempFiles = new Set([join(os.tmpdir(), `l2e-bench-precision-job-${process.pid}.json`)]);
  process.on('exit', () => {  // also after a failure (main's catch exits)
    for (const f of tempFiles) rmSync(f, { force: true });
  });
  // Ctrl-C or a kill: out through the exit handler above (the children run synchronously, so this runs
  // between them, after each one's own temp folder is gone)
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) process.on(signal, () => process.exit(code));
  const embFile = (name) => {
    const f = join(os.tmpdir(), `l2e-bench-precision-${process.pid}-${name.replace(/[^A-Za-z0-9_]/g, '_')}.f32`);
    tempFiles.add(f);
    return f;
  };
  if (formats.length > 0) {
    const peer = await loadLlamaCpp();
    if ('skip' in peer) {
      skip(`llama.cpp ${formats.join('/')}: ${peer.skip}`);
      formats = [];
    } else llamaVersion = peer.version;
  }
  // the check's texts, spread over the length mix, and our fp32 embeddings of them (computed once, if needed)
  const picked = Array.from({ length: Math.min(CHECK_TEXTS, seqs.length) }, (_, i) => Math.floor((i * seqs.length) / Math.min(CHECK_TEXTS, seqs.length)));
  const checkSeqs = picked.map((i) => seqsJson[i]);
  let checkRef = null;
  const oursOnCheck = () => {
    if (checkRef) return checkRef;
    const p = pack(picked.map((i) => seqs[i]));
    const refFile = embFile('check-ours');
    runChild({ engine: 'ours', config, precision: 'fp32', sources, batches: [{ tokens: Array.from(p.tokens), cuSeqlens: Array.from(p.cuSeqlens) }], single: null, embeddingsFile: refFile }, 'check: ours fp32', o.threads);
    return (checkRef = readF32(refFile));
  };
  let dense = null;
  if (formats.length > 0) {
    const tokenizerMetadata = llamaTokenizerMetadata(await buildLlamaTokenizerJson(), LLAMA_TOKENIZER_CONFIG);
    for (const f of formats) ggufs[f] = llamaGguf(config, sources, f, tokenizerMetadata);
    const tensor = tensorReader(sources);
    dense = { weight: tensor('dense_layer.weight'), bias: tensor('dense_layer.bias') };
    const ref = oursOnCheck();
    const passed = [];
    for (const f of formats) {
      const file = embFile(`check-llama-${f}`);
      const failed = peerFailure(() => runChild({ engine: 'llama', gguf: ggufs[f], threads: o.threads, maxTokens, hidden: config.hidden, seqs: checkSeqs, single: null, embeddingsFile: file }, `check: llama.cpp ${f}`, o.threads));
      if (failed) {
        skip(`llama.cpp ${f}: ${failed}: not timed`);
        continue;
      }
      const cos = cosines(projectAll(readF32(file), config.hidden, dense), ref, config.dense);
      const minCos = Math.min(...cos);
      checks.push({ engine: `llama.cpp ${f}`, texts: cos.length, minCos });
      if (minCos >= CHECK_MIN_COS) passed.push(f); // NaN fails
      else skip(`llama.cpp ${f}: its embeddings differ from ours (min cosine ${minCos.toFixed(6)} < ${CHECK_MIN_COS} on ${cos.length} texts): not timed`);
      console.error(`check llama.cpp ${f}: min cosine to ours ${minCos.toFixed(6)} on ${cos.length} texts`);
    }
    formats = passed;
  }

  // ONNX Runtime: the runtime, the ONNX graphs, and the same check
  let ortFormats = o.ort;
  const onnxFiles = {};
  let ortVersion = null;
  if (ortFormats.length > 0) {
    const peer = await loadOrt();
    if ('skip' in peer) {
      skip(`onnxruntime ${ortFormats.join('/')}: ${peer.skip}`);
      ortFormats = [];
    } else {
      ortVersion = peer.version;
      if (ortU8S8Saturates()) console.error('onnxruntime: this CPU has no VNNI, so its INT8 sessions run u8 x u8 (session.x64quantprecision; bench/lib/ort-peer.mjs)');
    }
  }
  if (ortFormats.length > 0) {
    const ref = oursOnCheck();
    const passed = [];
    for (const f of ortFormats) {
      onnxFiles[f] = ortOnnx(config, sources, f, Math.max(512, maxTokens));
      const file = embFile(`check-ort-${f}`);
      const failed = peerFailure(() => runChild({ engine: 'ort', onnx: onnxFiles[f], threads: o.threads, dim: config.dense, seqs: checkSeqs, single: null, embeddingsFile: file }, `check: onnxruntime ${f}`, o.threads));
      if (failed) {
        skip(`onnxruntime ${f}: ${failed}: not timed`);
        continue;
      }
      const cos = cosines(readF32(file), ref, config.dense);
      const minCos = Math.min(...cos);
      const bound = f === 'FP32' ? CHECK_MIN_COS : CHECK_MIN_COS_ORT_INT8;
      checks.push({ engine: `onnxruntime ${f}`, texts: cos.length, minCos });
      if (minCos >= bound) passed.push(f); // NaN fails
      else skip(`onnxruntime ${f}: its embeddings differ from ours (min cosine ${minCos.toFixed(6)} < ${bound} on ${cos.length} texts): not timed`);
      console.error(`check onnxruntime ${f}: min cosine to ours ${minCos.toFixed(6)} on ${cos.length} texts`);
    }
    ortFormats = passed;
  }

  const oursJob = (p) => ({ engine: 'ours', config, precision: parseVariant(p).precision, sources, batches, single });
  let engines = [
    ...o.precisions.map((p) => ({ name: `ours ${p}`, variant: p, isa: parseVariant(p).isa, job: oursJob(p) })),
    ...(o.baseline ? o.precisions.map((p) => ({ name: `before ${p}`, variant: `before ${p}`, isa: parseVariant(p).isa, addon: o.baseline, job: oursJob(p) })) : []),
    ...formats.map((f) => ({ name: `llama.cpp ${f}`, job: { engine: 'llama', gguf: ggufs[f], threads: o.threads, maxTokens, hidden: config.hidden, seqs: seqsJson, single } })),
    ...ortFormats.map((f) => ({ name: `onnxruntime ${f}`, job: { engine: 'ort', onnx: onnxFiles[f], threads: o.threads, dim: config.dense, seqs: seqsJson, single } })),
  ];
  const runs = Object.fromEntries(engines.map((e) => [e.name, []]));
  const flops = encodeFlops(config, seqs);
  const gemm = [];
  for (let pass = 0; pass < o.passes; pass++) {
    gemm.push(runChildProcess(['--gemm-child'], 'sgemm 2048^3', o.threads).gflops);
    console.error(`pass ${pass + 1} our sgemm 2048^3: ${gemm[pass].toFixed(1)} GFLOP/s`);
    for (const e of engines) {
      const job = { ...e.job, embeddingsFile: embFile(e.name), opTiming: e.job.engine === 'ours' && pass === 0 };
      const run = () => runChild(job, e.name, o.threads, { isa: e.isa ?? null, addon: e.addon ?? null });
      let res;
      if (e.job.engine === 'ours') res = run(); // ours failing fails the bench
      else {
        const failed = peerFailure(() => (res = run()));
        if (failed) {
          skip(`${e.name}: ${failed} in pass ${pass + 1}: not timed`);
          engines = engines.filter((x) => x !== e);
          delete runs[e.name];
          continue;
        }
      }
      runs[e.name].push(res);
      console.error(`pass ${pass + 1} ${e.name}: ${res.tokensPerSecond.toFixed(1)} tok/s, encode ${res.encodeSeconds.toFixed(2)} s`);
    }
  }
  const gemmGflops = median(gemm);
  const embeddingsOf = (e) => (e.job.engine === 'llama' ? projectAll(readF32(embFile(e.name)), config.hidden, dense) : readF32(embFile(e.name)));
  const ref = runs['ours fp32'] ? readF32(embFile('ours fp32')) : null;
  const rows = engines.map((e) => {
    const rs = runs[e.name];
    const cos = ref ? cosines(embeddingsOf(e), ref, config.dense) : null;
    return {
      engine: e.name,
      isa: rs[0].isa ?? null,
      tokensPerSecond: median(rs.map((r) => r.tokensPerSecond)),
      encodeSeconds: median(rs.map((r) => r.encodeSeconds)),
      gflops: flops / median(rs.map((r) => r.encodeSeconds)) / 1e9,
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
  // a NaN cosine (an embedding holding a NaN, or all zeros) fails the run after its report
  const nanRows = rows.filter((r) => r.minCos !== null && Number.isNaN(r.minCos)).map((r) => r.engine);
  const fp32 = rows.find((r) => r.engine === 'ours fp32');
  const gb = (b) => (b / 1e9).toFixed(2);
  console.log(
    `\nencode, medians of ${o.passes} interleaved passes (load average now ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}); ` +
      `our sgemm 2048^3: ${gemmGflops.toFixed(1)} GFLOP/s; the workload: ${(flops / 1e9).toFixed(0)} GFLOP`,
  );
  printTable(rows, [
    { title: 'engine', get: (r) => r.engine },
    { title: 'ISA', get: (r) => r.isa ?? '-' },
    { title: 'tok/s', get: (r) => r.tokensPerSecond.toFixed(1), right: true },
    { title: 'vs fp32', get: (r) => (fp32 ? (r.tokensPerSecond / fp32.tokensPerSecond).toFixed(2) + 'x' : '-'), right: true },
    { title: 'encode s', get: (r) => r.encodeSeconds.toFixed(2), right: true },
    { title: 'GFLOP/s', get: (r) => r.gflops.toFixed(1), right: true },
    { title: 'of sgemm', get: (r) => `${((100 * r.gflops) / gemmGflops).toFixed(0)}%`, right: true },
    { title: '20-tok ms', get: (r) => (1000 * r.latency20).toFixed(1), right: true },
    { title: 'weights GB', get: (r) => gb(r.weightBytes), right: true },
    { title: 'peak RSS GB', get: (r) => gb(r.peakRss), right: true },
    { title: 'RSS/weights', get: (r) => (r.peakRss / r.weightBytes).toFixed(2), right: true },
    { title: 'peak RSS by load end', get: (r) => gb(r.peakRssLoad), right: true },
    { title: 'load s', get: (r) => r.loadSeconds.toFixed(1), right: true },
    { title: 'cos min / mean', get: (r) => (r.minCos == null ? '-' : `${r.minCos.toFixed(6)} / ${r.meanCos.toFixed(6)}`), right: true },
  ]);
  console.log(
    'weights GB: ours, the weights as held at that precision; llama.cpp, the GGUF file; onnxruntime, the ONNX external data file. ' +
      'llama.cpp embeds one text at a time; its cosines are after our dense layer and L2 norm, applied to its mean-pooled output in JS (not timed). ' +
      `onnxruntime runs batches of up to ${ORT_BATCH_TEXTS} texts and ${ORT_BATCH_TOKENS} tokens padded to the longest (at most ${ORT_PADDING}x the real ones); its graph holds the whole model.`,
  );
  /** Our rows against a peer's fastest format and lowest latency, printed; null without its rows. */
  const against = (prefix, label, pairs) => {
    const peers = rows.filter((r) => r.engine.startsWith(prefix));
    if (peers.length === 0) return null;
    const fastest = peers.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
    const quickest = peers.reduce((a, b) => (b.latency20 < a.latency20 ? b : a));
    const vs = rows
      .filter((r) => r.engine.startsWith('ours'))
      .map((r) => ({ engine: r.engine, speedup: r.tokensPerSecond / fastest.tokensPerSecond, latencyRatio: r.latency20 / quickest.latency20 }));
    console.log(`\nagainst ${label.trim()} fastest format ${fastest.engine} (${fastest.tokensPerSecond.toFixed(1)} tok/s), lowest 20-token latency ${quickest.engine} (${(1000 * quickest.latency20).toFixed(1)} ms):`);
    for (const v of vs) console.log(`  ${v.engine}: ${v.speedup.toFixed(2)}x its throughput, ${v.latencyRatio.toFixed(2)}x its latency`);
    for (const [a, b] of pairs) {
      const ra = rows.find((r) => r.engine === a);
      const rb = rows.find((r) => r.engine === b);
      if (ra && rb) console.log(`  peak RSS ${a} / ${b}: ${(ra.peakRss / rb.peakRss).toFixed(2)}`);
    }
    return vs;
  };
  const versus = against('llama.cpp', `llama.cpp ${llamaVersion ? `(node-llama-cpp ${llamaVersion})` : ''}`, [['ours fp32', 'llama.cpp F32'], ['ours bf16', 'llama.cpp BF16'], ['ours int8', 'llama.cpp Q8_0']]);
  const versusOnnxruntime = against('onnxruntime', `ONNX Runtime ${ortVersion ? `(onnxruntime-node ${ortVersion})` : ''}`, [['ours fp32', 'onnxruntime FP32'], ['ours int8', 'onnxruntime INT8'], ['ours int8', 'onnxruntime INT8B32']]);
  if (skipped.length > 0) console.log(`\nskipped: ${skipped.join('; ')}`);
  // seconds per op in pass 1 of each of our variants, one column each (ops by the first's time)
  const timed = engines.filter((e) => runs[e.name][0].ops);
  if (timed.length) {
    const secs = (e, op) => runs[e.name][0].ops.find((x) => x.op === op)?.seconds ?? 0;
    const ops = [...new Set(timed.flatMap((e) => runs[e.name][0].ops.filter((x) => x.seconds > 0).map((x) => x.op)))];
    ops.sort((a, b) => secs(timed[0], b) - secs(timed[0], a));
    const outside = '(outside the op table)';
    const cell = (e, op) => {
      const wall = runs[e.name][0].encodeSeconds;
      const sec = op === outside ? wall - runs[e.name][0].ops.reduce((t, x) => t + x.seconds, 0) : secs(e, op);
      return `${sec.toFixed(3)} ${((100 * sec) / wall).toFixed(1).padStart(4)}%`;
    };
    console.log(`\nencode, seconds (share) per op, pass 1:`);
    printTable([...ops, outside].map((op) => ({ op })), [
      { title: 'op', get: (r) => r.op },
      ...timed.map((e) => ({ title: `${e.variant} (${runs[e.name][0].encodeSeconds.toFixed(2)} s)`, get: (r) => cell(e, r.op), right: true })),
    ]);
  }
  if (o.json) {
    const meta = { date: new Date().toISOString(), cpu: machine().cpu, cores: machine().cores, threads: o.threads, loadavgStart: loadavg, node: process.version, nodeLlamaCpp: llamaVersion, onnxruntimeNode: ortVersion, onnxruntimeU8U8: ortVersion ? ortU8S8Saturates() : null, baseline: o.baseline };
    writeJsonOut(o.json, { meta, config, texts: o.texts, tokens, passes: o.passes, gemmGflops, gemmSamples: gemm, encodeGflop: flops / 1e9, rows, checks, versus, versusOnnxruntime, skipped, ops: Object.fromEntries(timed.map((e) => [e.variant, runs[e.name][0].ops])) });
    console.log(`\nwrote ${o.json}`);
  }
  const kept = [sources[0].path, ...Object.values(ggufs), ...Object.values(onnxFiles).flatMap((f) => [f, `${f}.data`])].filter((f) => existsSync(f));
  const keptBytes = kept.reduce((n, f) => n + statSync(f).size, 0);
  console.log(`\nkept for the next run (${(keptBytes / 1e9).toFixed(2)} GB; remove them when no longer wanted):\n${kept.map((f) => `  ${f}`).join('\n')}`);
  if (nanRows.length) {
    console.error(`a cosine to our fp32 is NaN for ${nanRows.join(', ')}: an embedding holds a NaN or is all zeros`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
