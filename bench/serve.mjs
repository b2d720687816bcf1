// Load test of `l2e serve` on loopback: autocannon POSTs OpenAI-style requests of 1–32 texts (the real
// length mix of the text pools when present, else a synthetic mix of the same shape) at 1, 8 and 64
// concurrent clients, against the server with and without dynamic batching, and encode() in one process
// on the same requests' texts as the ceiling. Prints a table, and with --json writes the numbers.
//
// usage: node bench/serve.mjs [--shape demo|bench] [--model DIR] [--device cpu|cuda] [--duration S]
//                             [--clients 1,8,64] [--max-wait-ms MS] [--max-batch-tokens N]
//                             [--max-queue-tokens N] [--pools DIR] [--json FILE]
//   --shape     a random model of the demo's shape (2 layers, hidden 128, dense 256, Llama 2
//               tokenizer; default) or the bench shape (4 layers, hidden 512, dense 1536)
//   --model     serve this model folder instead
//   --device    the server's device (default cpu)
//   --duration  seconds of load per cell (default 5): every loop here is bounded
//   --clients   concurrent clients of each cell, comma-separated (default 1,8,64)
//   --max-wait-ms, --max-batch-tokens, --max-queue-tokens
//               passed to `l2e serve` (its --help says what they do; --max-wait-ms default 5 here)
//   --pools     text pools (JSON objects keyed by text) whose texts the requests draw (default
//               $L2E_POOLS, else ../shared/data/pools; without them, the synthetic mix)
//   --json      write the results to FILE
//   -h, --help  this help
// Needs dist/ (npm run build:ts). The server runs in a child process, so that autocannon's clients
// and the server do not share one event loop.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { loadPoolTexts, makeRng, poolsFolder } from './lib/workloads.mjs';
import { printTable } from './lib/stats.mjs';
import { machine, machineLine } from './lib/machine.mjs';
import { checkFlags, checkJsonOut, valueAfter, writeJsonOut } from './lib/usage.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  checkFlags(import.meta.url, argv, ['--shape', '--model', '--device', '--duration', '--clients', '--max-wait-ms', '--max-batch-tokens', '--max-queue-tokens', '--pools', '--json']);
  const o = { shape: 'demo', model: null, device: 'cpu', duration: 5, clients: [1, 8, 64], maxWaitMs: 5, maxBatchTokens: null, maxQueueTokens: null, pools: null, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => valueAfter(argv, i++);
    if (a === '--shape') o.shape = value();
    else if (a === '--model') o.model = value();
    else if (a === '--device') o.device = value();
    else if (a === '--duration') o.duration = Number(value());
    else if (a === '--clients') o.clients = value().split(',').map(Number);
    else if (a === '--max-wait-ms') o.maxWaitMs = Number(value());
    else if (a === '--max-batch-tokens') o.maxBatchTokens = value();
    else if (a === '--max-queue-tokens') o.maxQueueTokens = value();
    else if (a === '--pools') o.pools = value();
    else if (a === '--json') o.json = value();
    else throw new Error(`unexpected argument ${a} (--help lists the options)`);
  }
  if (!['demo', 'bench'].includes(o.shape)) throw new Error(`--shape must be demo or bench, got ${o.shape}`);
  if (!(o.duration > 0 && o.duration <= 600)) throw new Error(`--duration must be in (0, 600] seconds, got ${o.duration}`);
  if (o.clients.some((c) => !Number.isInteger(c) || c < 1 || c > 1024)) throw new Error(`--clients must be integers in [1, 1024]`);
  o.pools = poolsFolder(o.pools);
  if (o.json !== null) checkJsonOut('--json', o.json);
  return o;
}

const WORDS = (
  'saya kamu dia kami mereka makan minum pergi datang rumah sekolah kereta jalan hari ini esok semalam ' +
  'sangat baik buruk besar kecil harga naik turun kerajaan rakyat negeri bandar kampung hujan panas ' +
  'the and is to of in it you that was for on are with as I his they be at one have this from lol ' +
  'tak nak boleh dah lah kan je ke ni tu camne best gila weh bro https://t.co/x #malaysia 😂 2024'
).split(' ');

/** A synthetic mix shaped like the pools: characters log-normal, median ~90, p99 ~800. */
function syntheticTexts(n, rng) {
  const texts = [];
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
    const chars = Math.min(2000, Math.max(5, Math.round(Math.exp(Math.log(90) + 0.94 * g))));
    let t = '';
    while (t.length < chars) t += (t ? ' ' : '') + WORDS[Math.floor(rng() * WORDS.length)];
    texts.push(t);
  }
  return texts;
}

async function makeModelDir(shape, work) {
  const dist = join(root, 'dist');
  if (!existsSync(join(dist, 'index.js'))) throw new Error('dist/ is missing: run npm run build:ts first');
  const { EmbeddingModel, TextTokenizer, parseConfig, saveModel } = await import(join(dist, 'index.js'));
  const { writeLlamaTokenizer } = await import(join(dist, 'demo', 'llama-tokenizer.js'));
  const tokDir = join(work, 'tokenizer');
  await writeLlamaTokenizer(tokDir);
  const dims = shape === 'demo' ? { hidden: 128, inter: 344, layers: 2, heads: 8, dense: 256 } : { hidden: 512, inter: 1376, layers: 4, heads: 8, dense: 1536 };
  const config = parseConfig(
    {
      model_type: 'llama',
      architectures: ['LlamaModelEmbedding'],
      hidden_act: 'silu',
      vocab_size: 32000,
      hidden_size: dims.hidden,
      intermediate_size: dims.inter,
      num_hidden_layers: dims.layers,
      num_attention_heads: dims.heads,
      rms_norm_eps: 1e-5,
      max_position_embeddings: 4096,
      rope_theta: 10000,
      embedding_size: dims.dense,
      sentence_pooling_method: 'mean',
      normalized: true,
    },
    'bench config',
  );
  const model = EmbeddingModel.create(config, TextTokenizer.fromDir(tokDir), { seed: 1 });
  const dir = join(work, 'model');
  saveModel(model, dir, { tokenizerDir: tokDir });
  model.dispose();
  return { dir, describe: `random ${dims.layers} layers, hidden ${dims.hidden}, ${dims.heads} heads, dense ${dims.dense} (${shape} shape)` };
}

/** Starts `l2e serve` and resolves with its URL once the model is loaded. */
function startServer(modelDir, device, extra) {
  const child = spawn(process.execPath, [join(root, 'bin', 'l2e.js'), 'serve', '--model', modelDir, '--device', device, '--port', '0', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in 120 s: ${err}`)), 120000);
    child.on('exit', (code) => {
      clearTimeout(timer); // else a server that failed kept the bench waiting out the 120 s
      reject(new Error(`server exited (${code}): ${err}`));
    });
    child.stderr.on('data', (s) => {
      err += s;
      const url = /listening on (\S+)/.exec(err)?.[1];
      if (url && /ready:/.test(err)) {
        clearTimeout(timer);
        resolve({ url, child });
      }
    });
  });
}

async function stopServer(child) {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function metric(url, names) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = {};
  for (const n of names) out[n] = Number(new RegExp(`^${n} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return out;
}

const COUNTERS = ['l2e_texts_total', 'l2e_tokens_total', 'l2e_batch_requests_sum', 'l2e_batch_requests_count'];

async function loadCell(url, bodies, connections, duration) {
  let next = 0;
  const before = await metric(url, COUNTERS);
  const r = await autocannon({
    url: `${url}/v1/embeddings`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections,
    duration,
    timeout: 120,
    requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }],
  });
  const after = await metric(url, COUNTERS);
  const d = (n) => after[n] - before[n];
  const seconds = r.duration;
  return {
    requests: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    req_s: r['2xx'] / seconds, // answered with embeddings (503s are in non2xx)
    texts_s: d('l2e_texts_total') / seconds,
    tokens_s: d('l2e_tokens_total') / seconds,
    p50_ms: r.latency.p50,
    p99_ms: r.latency.p99,
    requests_per_batch: d('l2e_batch_requests_sum') / d('l2e_batch_requests_count'),
  };
}

async function encodeBaseline(modelDir, device, requests, duration) {
  const { EmbeddingModel } = await import(join(root, 'dist', 'index.js'));
  const model = await EmbeddingModel.load(modelDir, { device });
  try {
    await model.encode(requests[0]); // warm-up
    // per request: one encode() call per request, one after another (what one client in-process gets)
    let texts = 0;
    let n = 0;
    const t0 = performance.now();
    const lat = [];
    while (performance.now() - t0 < duration * 1000 && n < 100000) {
      const req = requests[n++ % requests.length];
      const s = performance.now();
      await model.encode(req);
      lat.push(performance.now() - s);
      texts += req.length;
    }
    const perSeconds = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    // all at once: the same texts in one encode() call (its default packing)
    const all = requests.slice(0, Math.max(1, Math.min(requests.length, n))).flat();
    const t1 = performance.now();
    await model.encode(all);
    const allSeconds = (performance.now() - t1) / 1000;
    return {
      perRequest: { req_s: n / perSeconds, texts_s: texts / perSeconds, p50_ms: lat[Math.floor(lat.length * 0.5)], p99_ms: lat[Math.floor(lat.length * 0.99)] },
      allAtOnce: { texts: all.length, texts_s: all.length / allSeconds, req_s: Math.min(n, requests.length) / allSeconds },
    };
  } finally {
    model.dispose();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const work = mkdtempSync(join(tmpdir(), 'l2e-serve-bench-'));
  try {
    const rng = makeRng(42);
    const pool = loadPoolTexts(o.pools);
    const source = pool ? `${pool.length} texts of ${o.pools}` : 'synthetic mix (pools not found): log-normal characters, median 90, p99 ~800';
    const draw = pool ? () => pool[Math.floor(rng() * pool.length)] : (() => {
      const synth = syntheticTexts(5000, rng);
      return () => synth[Math.floor(rng() * synth.length)];
    })();
    const requests = Array.from({ length: 512 }, () => Array.from({ length: 1 + Math.floor(rng() * 32) }, draw));
    const bodies = requests.map((input) => JSON.stringify({ model: 'bench', input, encoding_format: 'base64' }));
    const { dir, describe } = o.model ? { dir: o.model, describe: o.model } : await makeModelDir(o.shape, work);
    console.log(`model: ${describe}; device ${o.device}; texts: ${source}`);
    console.log(`requests: 1–32 texts each (mean ${(requests.flat().length / requests.length).toFixed(1)}); ${o.duration} s per cell; ${machineLine()}`);

    // both servers up at once (an idle one costs nothing), cells alternating between them, so that
    // load from elsewhere on the machine falls on both modes alike
    const rows = [];
    const servers = [];
    try {
      for (const batching of [true, false]) {
        const extra = ['--max-wait-ms', String(o.maxWaitMs), ...(batching ? [] : ['--no-batching'])];
        if (o.maxBatchTokens) extra.push('--max-batch-tokens', o.maxBatchTokens);
        if (o.maxQueueTokens) extra.push('--max-queue-tokens', o.maxQueueTokens);
        servers.push({ mode: batching ? 'serve (batching)' : 'serve (no batching)', ...(await startServer(dir, o.device, extra)) });
      }
      for (const s of servers) await loadCell(s.url, bodies, 4, Math.min(2, o.duration)); // warm-up
      for (const c of o.clients) {
        for (const s of servers) {
          const cell = await loadCell(s.url, bodies, c, o.duration);
          rows.push({ mode: s.mode, clients: c, ...cell });
          console.error(`  ${s.mode} × ${c}: ${cell.req_s.toFixed(1)} req/s, p99 ${cell.p99_ms} ms, ${cell.non2xx} non-2xx`);
        }
      }
    } finally {
      for (const s of servers) await stopServer(s.child);
    }
    rows.sort((a, b) => a.mode.localeCompare(b.mode) || a.clients - b.clients);
    const base = await encodeBaseline(dir, o.device, requests, o.duration);
    rows.push({ mode: 'encode() per request', clients: 1, ...base.perRequest });
    rows.push({ mode: 'encode() all at once', clients: '-', ...base.allAtOnce });

    const f = (v, d = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '-');
    printTable(rows, [
      { title: 'mode', get: (r) => r.mode },
      { title: 'clients', get: (r) => r.clients, right: true },
      { title: 'req/s', get: (r) => f(r.req_s), right: true },
      { title: 'texts/s', get: (r) => f(r.texts_s, 0), right: true },
      { title: 'tokens/s', get: (r) => f(r.tokens_s, 0), right: true },
      { title: 'p50 ms', get: (r) => f(r.p50_ms), right: true },
      { title: 'p99 ms', get: (r) => f(r.p99_ms), right: true },
      { title: 'req/batch', get: (r) => f(r.requests_per_batch, 2), right: true },
      { title: 'non-2xx', get: (r) => r.non2xx ?? '-', right: true },
      { title: 'errors', get: (r) => r.errors ?? '-', right: true },
    ]);
    const best = rows.find((r) => r.mode === 'serve (batching)' && r.clients === Math.max(...o.clients));
    const ceiling = Math.max(base.perRequest.texts_s, base.allAtOnce.texts_s);
    if (best) console.log(`\nserve (batching) at ${best.clients} clients: ${((100 * best.texts_s) / ceiling).toFixed(0)}% of the faster encode()'s texts/s on the same texts`);
    const out = {
      date: new Date().toISOString(),
      machine: machine(),
      model: describe,
      device: o.device,
      texts: source,
      duration_s: o.duration,
      max_wait_ms: o.maxWaitMs,
      max_batch_tokens: o.maxBatchTokens ?? 'default',
      max_queue_tokens: o.maxQueueTokens ?? 'default',
      rows,
    };
    if (o.json) {
      writeJsonOut(o.json, out);
      console.log(`results → ${o.json}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench/serve.mjs: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
