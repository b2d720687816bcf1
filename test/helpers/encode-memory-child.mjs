// Child process of test/encode-memory.test.ts: loads a model at one precision, encodes one large
// batch, and prints (JSON) its resident memory before the model exists, once the model is loaded,
// and at its peak while encoding (VmHWM after resetting it through /proc/self/clear_refs).
import { readFileSync, writeFileSync } from 'node:fs';
import { testingAddon } from './testing-addon.mjs';

const status = (field) => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`/proc/self/status has no ${field}`);
  return Number(m[1]) * 1024;
};

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const addon = testingAddon();
const tokens = Int32Array.from(job.tokens), cu = Int32Array.from(job.cuSeqlens);
const base = status('VmRSS');
const model = new addon.NativeModel(job.config, 'cpu', job.precision);
await model.loadTensors(job.sources);
await model.encode(Int32Array.from([5, 6, 7]), Int32Array.from([0, 3])); // warm-up: thread pool, scratch
const loaded = status('VmRSS');
writeFileSync('/proc/self/clear_refs', '5'); // VmHWM := VmRSS
const { embeddings } = await model.encode(tokens, cu);
const peak = status('VmHWM');
process.stdout.write(JSON.stringify({ base, loaded, peak, weightBytes: model.weightBytes, finite: embeddings.every(Number.isFinite), embeddings: Array.from(embeddings.subarray(0, 8)) }));
