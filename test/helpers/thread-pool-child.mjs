// Child process of test/cpu-thread-pool.test.ts: the CPU thread pool reads L2E_NUM_THREADS and
// L2E_CPU_SPIN_US once per process, so each setting runs here. Trains a small model for a few steps
// (batches of several lengths: ops split into regions of every part count) and prints (JSON) the
// losses and a SHA-256 of the weights and AdamW moments, or the error creating the model raised.
import { createHash } from 'node:crypto';
import { testingAddon } from './testing-addon.mjs';
import { oneChunkStep } from '../../bench/lib/train-step.mjs';

const a = testingAddon();
const cfg = { vocab: 256, hidden: 128, intermediate: 352, layers: 2, heads: 4, kvHeads: 2, headDim: 32, dense: 64, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true };
let m;
try {
  m = new a.NativeModel(cfg, 'cpu');
} catch (e) {
  process.stdout.write(JSON.stringify({ error: e.message }));
  process.exit(0);
}
let s = 12345;
const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
for (const p of m.params()) {
  const norm = p.name.endsWith('layernorm.weight') || p.name === 'norm.weight';
  m.setTensor(p.name, Float32Array.from({ length: p.numel }, () => (norm ? 1 : (next() * 2 - 1) * 0.03)));
}
a.trainInit(m);
const losses = [];
for (const [n, len] of [[1, 3], [2, 40], [3, 9], [4, 120], [5, 1]]) {
  const lens = Array.from({ length: 8 }, (_, i) => len + (i % 3));
  const cu = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((x, y) => x + y))]);
  const ids = Int32Array.from({ length: cu[8] }, () => Math.floor(next() * cfg.vocab));
  const r = await oneChunkStep(a, m, ids, cu, 4, 1, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1, step: n }, 0.05);
  losses.push(r.loss);
}
const h = createHash('sha256');
for (const t of [...m.params().map((p) => m.getTensor(p.name)), a.trainGetBuffer(m, 'm'), a.trainGetBuffer(m, 'v')])
  h.update(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
m.dispose();
process.stdout.write(JSON.stringify({ losses, state: h.digest('hex') }));
