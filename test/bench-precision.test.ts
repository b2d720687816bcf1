// bench/precision.mjs through `npm run bench -- precision`: the small model end to end with our fp32,
// two llama.cpp formats and ONNX Runtime's two (each checked against ours before it is timed), and its
// argument errors. Timings themselves are never asserted (shared machines are noisy). Without
// node-llama-cpp or onnxruntime-node their rows must be a skip that says why.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { readF32 } from '../bench/lib/f32-file.mjs';
import { loadLlamaCpp } from '../bench/lib/llama-peer.mjs';
import { loadOrt } from '../bench/lib/ort-peer.mjs';
import { hasPools, skipNote } from './helpers/fixture.js';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '..');
const runner = join(repoRoot, 'bench', 'run.mjs');
const dir = mkdtempSync(join(tmpdir(), 'l2e-bench-precision-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Row {
  engine: string;
  tokensPerSecond: number;
  gflops: number;
  latency20: number;
  weightBytes: number;
  peakRss: number;
  minCos: number | null;
}
interface PrecisionFile {
  meta: { threads: number; nodeLlamaCpp: string | null; onnxruntimeNode: string | null; baseline: string | null };
  tokens: number;
  gemmGflops: number;
  gemmSamples: number[];
  encodeGflop: number;
  rows: Row[];
  checks: { engine: string; texts: number; minCos: number }[];
  skipped: string[];
}

describe('npm run bench -- precision', () => {
  it('reads the embeddings its processes write back as they were, whatever buffer readFileSync returns', () => {
    // 3 x 5 values, 60 bytes: a file this small comes back as a view into a shared pool buffer
    const want = Float32Array.from({ length: 15 }, (_, i) => (i - 7) / 3);
    const file = join(dir, 'f32-small.bin');
    writeFileSync(file, Buffer.from(want.buffer));
    const got = readF32(file);
    expect(got).toEqual(want);
    expect(got.byteOffset).toBe(0);
    expect(got.buffer.byteLength).toBe(60);
    writeFileSync(file, Buffer.alloc(62));
    expect(() => readF32(file)).toThrow(`${file}: 62 bytes, not a whole number of float32 values`);
    rmSync(file);
  });

  it('rejects an unknown llama.cpp format, naming the flag', async () => {
    const err = await run(process.execPath, [runner, 'precision', '--llama', 'Q4_0'], { cwd: repoRoot }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr.trim()).toBe('--llama: unknown value Q4_0 (one of F32, F16, BF16, Q8_0, or none)');
  });

  it('rejects an unknown ONNX Runtime format, naming the flag', async () => {
    const err = await run(process.execPath, [runner, 'precision', '--ort', 'FP32,BF16'], { cwd: repoRoot }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr.trim()).toBe('--ort: unknown value BF16 (one of FP32, INT8, INT8B32, or none)');
  });

  it('refuses a --baseline addon that does not exist, naming the flag and the file', async () => {
    const missing = join(dir, 'no-such-build', 'l2e_testing.node');
    const err = await run(process.execPath, [runner, 'precision', '--baseline', missing], { cwd: repoRoot }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr.trim()).toBe(`--baseline: ${missing} does not exist`);
  });

  it.skipIf(!hasPools)(`runs ours, llama.cpp and ONNX Runtime on the small model, each peer checked before timing ${hasPools ? '' : skipNote('data/pools')}`, async () => {
    const out = join(dir, 'precision.json');
    // --baseline: our own build again, as the "before" rows of a before/after run
    const baseline = join(repoRoot, 'build', 'Release', 'testing', 'l2e_testing.node');
    const args = ['precision', '--quick', '--texts', '3', '--passes', '1', '--threads', '1', '--precisions', 'fp32', '--llama', 'F32,Q8_0', '--ort', 'FP32,INT8', '--baseline', baseline, '--json', out];
    // TMPDIR: the bench keeps its random weights, GGUF and ONNX files in the temp folder for the next run;
    // the test's own folder, removed after it, so the suite leaves nothing behind
    const { stdout } = await run(process.execPath, [runner, ...args], { cwd: repoRoot, maxBuffer: 16 << 20, env: { ...process.env, TMPDIR: dir } });
    const r = JSON.parse(readFileSync(out, 'utf8')) as PrecisionFile;
    // what stays in the temp folder is only what the last line names (no job, embedding or ONNX Runtime
    // telemetry files)
    const kept = stdout.slice(stdout.indexOf('kept for the next run (')).trim().split('\n').slice(1).map((l) => l.trim());
    expect(kept.map((f) => dirname(f))).toEqual(kept.map(() => dir));
    expect(readdirSync(dir).sort()).toEqual(['precision.json', ...kept.map((f) => basename(f))].sort());
    expect(r.meta.threads).toBe(1);
    expect(r.meta.baseline).toBe(baseline);
    expect(r.gemmSamples).toHaveLength(1);
    expect(r.gemmGflops).toBeGreaterThan(0); // NaN fails
    expect(r.encodeGflop).toBeGreaterThan(0);
    const peer = await loadLlamaCpp();
    const ort = await loadOrt();
    const engines = ['ours fp32', 'before fp32', ...('skip' in peer ? [] : ['llama.cpp F32', 'llama.cpp Q8_0']), ...('skip' in ort ? [] : ['onnxruntime FP32', 'onnxruntime INT8'])];
    expect(r.rows.map((x) => x.engine)).toEqual(engines);
    for (const row of r.rows) {
      expect(row.tokensPerSecond).toBeGreaterThan(0);
      expect(row.gflops).toBeCloseTo((r.encodeGflop * row.tokensPerSecond) / r.tokens, 6);
      expect(row.latency20).toBeGreaterThan(0);
      expect(row.weightBytes).toBeGreaterThan(0);
      expect(row.peakRss).toBeGreaterThan(row.weightBytes / 2); // a GGUF is mapped, not always all resident
      // ONNX Runtime INT8 quantises activations per tensor: the check's looser bound
      expect(row.minCos).toBeGreaterThanOrEqual(row.engine === 'onnxruntime INT8' ? 0.998 : 0.9997); // NaN fails
    }
    const skipped = [...('skip' in peer ? [`llama.cpp F32/Q8_0: ${peer.skip}`] : []), ...('skip' in ort ? [`onnxruntime FP32/INT8: ${ort.skip}`] : [])];
    expect(r.skipped).toEqual(skipped);
    for (const s of skipped) expect(stdout).toContain(`skipped: ${s}`);
    const checked = [...('skip' in peer ? [] : ['llama.cpp F32', 'llama.cpp Q8_0']), ...('skip' in ort ? [] : ['onnxruntime FP32', 'onnxruntime INT8'])];
    expect(r.checks.map((c) => [c.engine, c.texts])).toEqual(checked.map((e) => [e, 3]));
    for (const c of r.checks) expect(c.minCos).toBeGreaterThanOrEqual(c.engine === 'onnxruntime INT8' ? 0.998 : 0.9997);
    if (!('skip' in peer)) {
      expect(r.meta.nodeLlamaCpp).toBe(peer.version);
      expect(stdout).toMatch(/against llama\.cpp \(node-llama-cpp [\d.]+\) fastest format llama\.cpp (F32|Q8_0)/);
    }
    if (!('skip' in ort)) {
      expect(r.meta.onnxruntimeNode).toBe(ort.version);
      expect(stdout).toMatch(/against ONNX Runtime \(onnxruntime-node [\d.]+\) fastest format onnxruntime (FP32|INT8)/);
    }
  });

  it.skipIf(!hasPools)(`a run that fails leaves no job or embedding file in the temp folder ${hasPools ? '' : skipNote('data/pools')}`, async () => {
    const tmp = mkdtempSync(join(dir, 'failed-'));
    const notAnAddon = join(tmp, 'l2e_testing.node');
    writeFileSync(notAnAddon, 'not an addon');
    const args = ['precision', '--quick', '--texts', '2', '--passes', '1', '--threads', '1', '--precisions', 'fp32', '--llama', 'none', '--ort', 'none', '--baseline', notAnAddon];
    const err = await run(process.execPath, [runner, ...args], { cwd: repoRoot, env: { ...process.env, TMPDIR: tmp } }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toContain('before fp32 run failed');
    expect(readdirSync(tmp).filter((f) => !f.endsWith('.safetensors')).sort()).toEqual(['l2e_testing.node']);
  });
});
