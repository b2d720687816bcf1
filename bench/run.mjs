// Microbenchmark runner (npm run bench): single CPU kernels of the op table, our GEMM next to numpy,
// attention at long lengths, whole-model encode next to an eager NumPy baseline, and the CPU training
// step with the share of time spent in each op.
//
// Options and environment: see HELP below (node bench/run.mjs --help).
// The addon is the test addon (test/helpers/testing-addon.mjs: the shipped addon's functions plus the
// bench hooks, so the per-op timer sees the models it creates). Encode and training need text pools for the real length mix (--pools DIR, else $L2E_POOLS,
// else ../shared/data/pools); they are skipped, with a message, when there are none.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testingAddon } from '../test/helpers/testing-addon.mjs';
import { allCases } from './lib/cases.mjs';
import { formatRate, printComparison, printResults, printTable, summarize } from './lib/stats.mjs';
import { loadLengthMix, poolsFolder } from './lib/workloads.mjs';
import { machine } from './lib/machine.mjs';
import { checkJsonOut, valueAfter, writeJsonOut } from './lib/usage.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

const HELP = `usage: npm run bench -- [options]      (or: node bench/run.mjs [options])
       npm run bench -- precision [options]   whole-model encode at fp32/bf16/int8 next to llama.cpp
                                              F32/F16/BF16/Q8_0 (bench/precision.mjs; its --help)

Times single CPU kernels of the op table (op/...), our GEMM next to NumPy/OpenBLAS (gemm/...),
attention at long lengths, whole-model encode next to an eager NumPy implementation (encode/...) and
the CPU training step with the time share of every op (train/...). Prints a table of median times
(and throughputs), then a summary.

options:
  --filter REGEX      run only the cases whose name matches (e.g. 'op/linear', '^encode/', 'train')
  --list              list the case names (after --filter) and exit
  --quick             a short run: 3 samples, shorter samples, smaller workloads (a smoke test)
  --samples N         samples per case (default 7, --quick 3) of the kernel and GEMM cases; the
                      encode cases time 3 runs (2 with --quick; NumPy's encode one fewer) and the
                      train step 10 steps (2), whatever --samples says
  --json FILE         write the results (statistics in seconds, throughputs, extras, metadata) to FILE
  --compare OLD.json  print speedups against an earlier --json file
  --pools DIR         text pools (JSON objects keyed by text) whose length mix the encode and training
                      cases use; default $L2E_POOLS, else ../shared/data/pools; without pools those
                      cases are skipped
  -h, --help          this help

environment:
  L2E_POOLS           the pools folder when --pools is not given
  L2E_TESTING_ADDON   load this test addon file instead of the build in the repository
  L2E_NUM_THREADS     CPU threads of the native backend (default: all cores)
  L2E_CPU_SPIN_US     microseconds its threads spin between ops before sleeping (default 50)
  L2E_CPU_POOL        off: training maps each tensor on its own instead of reusing freed ones
  L2E_CPU_STEP        ops: the training step goes over every row of the embedding table (default
                      rows: only the rows its batches named)
  L2E_CPU_ISA         force an instruction set (scalar, avx2, avx512, amx) to compare against the best one
The NumPy baselines need python3 with numpy; without it they are skipped.
`;

function parseArgs(argv) {
  const opts = { filter: null, filterText: null, quick: false, samples: null, json: null, compare: null, list: false, pools: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => valueAfter(argv, i++);
    if (a === '--filter') {
      opts.filterText = value();
      try {
        opts.filter = new RegExp(opts.filterText);
      } catch (err) {
        throw new Error(`--filter ${opts.filterText}: ${err.message}`);
      }
    }
    else if (a === '--quick') opts.quick = true;
    else if (a === '--samples') opts.samples = Number(value());
    else if (a === '--json') opts.json = value();
    else if (a === '--compare') opts.compare = value();
    else if (a === '--list') opts.list = true;
    else if (a === '--pools') opts.pools = value();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  opts.pools = poolsFolder(opts.pools);
  // read and checked before the run (a file that is not there, or not a run's results, failed after it,
  // and took the --json results with it), as is the folder of --json
  if (opts.compare !== null) opts.earlier = readEarlier(opts.compare);
  if (opts.json !== null) checkJsonOut('--json', opts.json, [['--compare', opts.compare]]);
  if (opts.samples !== null && !(Number.isInteger(opts.samples) && opts.samples > 0)) throw new Error('--samples must be a positive integer');
  opts.samples ??= opts.quick ? 3 : 7;
  // native kernels: `samples` samples of >= minSampleSeconds each, after `warmup` calls
  opts.native = { samples: opts.samples, warmup: opts.quick ? 1 : 2, minSampleSeconds: opts.quick ? 0.005 : 0.05 };
  return opts;
}

/** An earlier --json file's results, for --compare; an error naming the flag when it is not one. */
function readEarlier(file) {
  let earlier;
  try {
    earlier = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`--compare ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  if (typeof earlier !== 'object' || earlier === null || !Array.isArray(earlier.results)) {
    throw new Error(`--compare ${file}: not the results of an earlier run (no "results" list; write one with --json)`);
  }
  return earlier;
}

function loadAddon() {
  return testingAddon();
}

function printSummary(results) {
  const byName = new Map(results.map((r) => [r.name, r]));
  const summary = {};

  const gemmRows = results
    .filter((r) => r.name.startsWith('gemm/ours/'))
    .map((r) => {
      const n = r.name.split('/')[2];
      const numpy = byName.get(`gemm/numpy/${n}`);
      return { n, ours: r.rate.value, numpy: numpy?.rate.value ?? null };
    });
  if (gemmRows.length > 0) {
    console.log('\nGEMM (fp32, n x n x n), GFLOP/s');
    printTable(gemmRows, [
      { title: 'n', get: (r) => r.n, right: true },
      { title: 'ours', get: (r) => r.ours.toFixed(1), right: true },
      { title: 'numpy', get: (r) => (r.numpy == null ? '-' : r.numpy.toFixed(1)), right: true },
      { title: 'ours/numpy', get: (r) => (r.numpy == null ? '-' : (r.ours / r.numpy).toFixed(2)), right: true },
    ]);
    summary.gemm = gemmRows.map((r) => ({ ...r, ratio: r.numpy == null ? null : r.ours / r.numpy }));
  }

  const ours = byName.get('encode/ours/h512');
  const numpy = byName.get('encode/numpy/h512');
  if (ours && numpy) {
    const ratio = ours.extra.textsPerSecond / numpy.extra.textsPerSecond;
    console.log(
      `\nencode: ours ${ours.extra.textsPerSecond.toFixed(1)} texts/s (${ours.extra.realTokensPerSecond.toFixed(0)} real tok/s), ` +
        `numpy padded ${numpy.extra.textsPerSecond.toFixed(1)} texts/s -> ours/numpy ${ratio.toFixed(2)}x (target >= 2x); ` +
        `max |ours - numpy| on the first batch = ${numpy.extra.maxAbsDiffVsOurs?.toExponential(2) ?? '-'}`,
    );
    summary.encode = { ours: ours.extra.textsPerSecond, numpy: numpy.extra.textsPerSecond, ratio };
  }

  const train = byName.get('train/step/h512');
  if (train) {
    console.log(
      `\ntrain step: ${train.extra.tokensPerSecond.toFixed(0)} real tok/s, ${train.extra.stepsPerSecond.toFixed(2)} steps/s ` +
        `(${train.extra.steps} steps, ${train.extra.realTokens} tokens); time per op:`,
    );
    printTable(train.extra.opShares, [
      { title: 'op', get: (r) => r.op },
      { title: 'calls', get: (r) => r.calls, right: true },
      { title: 'seconds', get: (r) => r.seconds.toFixed(3), right: true },
      { title: 'share', get: (r) => `${(100 * r.share).toFixed(1)}%`, right: true },
      // the matrix-product ops' rate: their FLOPs (core/op_flops.h) over their time
      { title: 'GFLOP/s', get: (r) => (r.flops > 0 && r.seconds > 0 ? (r.flops / r.seconds / 1e9).toFixed(1) : ''), right: true },
    ]);
    summary.train = { tokensPerSecond: train.extra.tokensPerSecond, opShares: train.extra.opShares };
  }
  return summary;
}

async function main() {
  if (process.argv[2] === 'precision') {
    // the precision and peers bench: its own script, its own options
    const r = spawnSync(process.execPath, [join(repoRoot, 'bench', 'precision.mjs'), ...process.argv.slice(3)], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  const opts = parseArgs(process.argv.slice(2));
  const addon = loadAddon();
  const poolsDir = opts.pools;
  const skipped = [];
  const ctx = {
    addon,
    opts,
    repoRoot,
    mix: loadLengthMix(poolsDir),
    cache: {},
    skip: (msg) => {
      skipped.push(msg);
      console.warn(`skipped: ${msg}`);
    },
  };
  let cases = allCases(ctx);
  if (opts.filter) cases = cases.filter((c) => opts.filter.test(c.name));
  if (opts.list) {
    for (const c of cases) console.log(c.name);
    return;
  }
  if (!ctx.mix && cases.some((c) => c.needsMix)) {
    ctx.skip(`encode and training benchmarks: no text pools at ${poolsDir} (their length mix is the workload; give --pools DIR or set L2E_POOLS)`);
    cases = cases.filter((c) => !c.needsMix);
  }
  if (cases.length === 0) throw new Error(`no benchmark case matches ${opts.filterText ?? 'the selection'} (see --list)`);

  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: machine().cpu,
    cores: machine().cores,
    threads: process.env.L2E_NUM_THREADS ?? null,
    cpuSpinUs: process.env.L2E_CPU_SPIN_US ?? null,
    cpuPool: process.env.L2E_CPU_POOL ?? null,
    cpuStep: process.env.L2E_CPU_STEP ?? null,
    gemmKernel: addon.gemmKernel(),
    quick: opts.quick,
    samples: opts.samples,
    filter: opts.filterText,
    pools: ctx.mix ? { dir: poolsDir, texts: ctx.mix.length } : null,
  };
  console.log(`l2e bench: ${meta.cpu}, ${meta.cores} cores, gemm kernel ${meta.gemmKernel}${opts.quick ? ', quick' : ''}`);

  const results = [];
  for (const c of cases) {
    process.stderr.write(`  ${c.name} ...`);
    const r = await c.run(ctx);
    if (!r) {
      process.stderr.write(' skipped\n');
      continue;
    }
    const row = { name: c.name, shape: c.shape ?? c.shapeOf?.() ?? '', ...summarize(r.samples), rate: r.rate ?? null, extra: r.extra ?? {} };
    process.stderr.write(` ${formatRate(row.rate) || `${(row.median_s * 1e3).toFixed(3)} ms`}\n`);
    results.push(row);
  }

  console.log('');
  printResults(results);
  const summary = printSummary(results);
  let comparison = null;
  if (opts.compare) comparison = printComparison(results, opts.earlier, opts.compare);
  if (skipped.length > 0) console.log(`\nskipped: ${skipped.join('; ')}`);
  if (opts.json) {
    writeJsonOut(opts.json, { meta, results, summary, comparison, skipped });
    console.log(`\nwrote ${opts.json}`);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
