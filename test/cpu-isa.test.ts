// The one CPU instruction-set switch (native/cpu/isa.h): cpuIsa() reports the level in use, the
// L2E_CPU_ISA override moves every kernel (checked in fresh processes, one per level this CPU has),
// bad values fail the load with a clear message, and the op and gradient tests pass at every level
// below the best one (the main run covers the best), so the AVX2 and scalar fallbacks are tested.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { addonLoadError, buildCommand, cpuIsa, nativeAddonPath, packageRoot, type CpuFeatures, type CpuIsa } from '../src/native.js';
import { makeTempDir } from './helpers/tinyModel.js';

const LEVELS = ['scalar', 'avx2', 'avx512', 'amx'] as const;
const here = cpuIsa();
/** The levels this CPU runs, lowest first. */
const runnable = LEVELS.slice(0, LEVELS.indexOf(here.best as (typeof LEVELS)[number]) + 1);

/** Loads the addon in a fresh node with L2E_CPU_ISA = `isa` and returns its report (or the error). */
function childReport(isa: string): { report?: CpuIsa; stderr: string; status: number | null } {
  const script = `process.stdout.write(JSON.stringify(require(${JSON.stringify(nativeAddonPath())}).cpuIsa()))`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: packageRoot,
    env: { ...process.env, L2E_CPU_ISA: isa },
    encoding: 'utf8',
  });
  return { report: r.status === 0 ? (JSON.parse(r.stdout) as CpuIsa) : undefined, stderr: r.stderr, status: r.status };
}

/** What the kernels may use at `level`: the CPU's features with everything above the level cleared. */
function capped(cpu: CpuFeatures, level: string): CpuFeatures {
  const at = LEVELS.indexOf(level as (typeof LEVELS)[number]);
  return {
    avx2: cpu.avx2 && at >= 1,
    avx512: cpu.avx512 && at >= 2,
    avx512Bf16: cpu.avx512Bf16 && at >= 2,
    bf16DotFullRate: cpu.bf16DotFullRate && at >= 2,
    avx512Vnni: cpu.avx512Vnni && at >= 2,
    avxVnni: cpu.avxVnni && at >= 1,
    amxBf16: cpu.amxBf16 && at >= 3,
    amxInt8: cpu.amxInt8 && at >= 3,
  };
}

/** The fp32 GEMM's kernel at `level`: amx is avx512 plus the tiles, which only the bf16 / int8 GEMMs use. */
const gemmAt = (level: string): string => (level === 'amx' ? 'avx512' : level);

describe('CPU instruction set', () => {
  it('reports the level in use: the best this CPU has unless L2E_CPU_ISA says otherwise', () => {
    expect(LEVELS).toContain(here.best);
    expect(here.isa).toBe(process.env['L2E_CPU_ISA'] || here.best);
    expect(here.gemm).toBe(gemmAt(here.isa));
    expect(here.features).toEqual(capped(here.cpu, here.isa));
    // the levels are nested: AVX-512 implies AVX2, the extensions imply their level
    if (here.cpu.avx512) expect(here.cpu.avx2).toBe(true);
    if (here.cpu.avx512Bf16 || here.cpu.avx512Vnni) expect(here.cpu.avx512).toBe(true);
    if (here.cpu.bf16DotFullRate) expect(here.cpu.avx512Bf16).toBe(true);
    if (here.cpu.avxVnni) expect(here.cpu.avx2).toBe(true);
    if (here.cpu.amxBf16 || here.cpu.amxInt8) expect(here.cpu.avx512).toBe(true);
  });

  it.each(LEVELS.map((l) => [l]))('L2E_CPU_ISA=%s moves every kernel in a fresh process', (level) => {
    const r = childReport(level);
    if (!runnable.includes(level)) {
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`L2E_CPU_ISA=${level}: this CPU does not support ${level} (its best is ${here.best})`);
      return;
    }
    expect(r.stderr).toBe('');
    expect(r.report).toEqual({ isa: level, best: here.best, gemm: gemmAt(level), features: capped(here.cpu, level), cpu: here.cpu });
  });

  it('an unknown L2E_CPU_ISA fails the load, and the library says so without suggesting a rebuild', () => {
    const r = childReport('sse9');
    expect(r.status).not.toBe(0);
    const expected = 'L2E_CPU_ISA=sse9: unknown instruction set (expected scalar, avx2, avx512 or amx)';
    expect(r.stderr).toContain(`Error: ${expected}\n`);
    expect(addonLoadError(new Error(expected)).message).toBe(`llama2-embedding: ${expected}`);
    expect(addonLoadError(new Error('libfoo.so: cannot open')).message).toBe(
      `llama2-embedding: the native addon could not be loaded (libfoo.so: cannot open). Rebuild it: ${buildCommand(packageRoot, false)}`,
    );
    expect(addonLoadError(new Error('No native build was found for platform=linux arch=x64\n    loaded from: /app/x\n')).message).toBe(
      `llama2-embedding: the native addon could not be loaded (No native build was found for platform=linux arch=x64; loaded from: /app/x). Rebuild it: ${buildCommand(packageRoot, false)}`,
    );
  });
});

// The op and gradient tests again at each lower level, each in a child vitest (the parent's run
// covers the best level); this file runs there too, and its first test checks the child used the
// level. Skipped inside such a child, and when L2E_CPU_ISA is set for the whole run.
const PER_ISA_TESTS = ['test/cpu-isa.test.ts', 'test/gradcheck.test.ts', 'test/model-reference.test.ts', 'test/precision-kernels.test.ts', 'test/cpu-swiglu.test.ts'];
const lower = process.env['L2E_CPU_ISA'] ? [] : runnable.filter((l) => l !== here.best);
describe.skipIf(lower.length === 0)('op and gradient tests at every lower instruction set', () => {
  it.each(lower.map((l) => [l]))('pass with L2E_CPU_ISA=%s', (level) => {
    const vitest = join(packageRoot, 'node_modules', 'vitest', 'vitest.mjs');
    const report = join(makeTempDir('l2e-isa-'), 'report.json');
    const r = spawnSync(process.execPath, [vitest, 'run', '--reporter=json', `--outputFile=${report}`, ...PER_ISA_TESTS], {
      cwd: packageRoot,
      env: { ...process.env, L2E_CPU_ISA: level },
      encoding: 'utf8',
    });
    const counts = JSON.parse(readFileSync(report, 'utf8')) as {
      numTotalTestSuites: number;
      numPassedTests: number;
      numFailedTests: number;
      testResults: { name: string; status: string }[];
    };
    const failed = counts.testResults.filter((f) => f.status !== 'passed').map((f) => f.name);
    expect(failed, r.stderr).toEqual([]);
    expect(counts.testResults.length).toBe(PER_ISA_TESTS.length);
    expect(counts.numFailedTests).toBe(0);
    expect(counts.numPassedTests).toBeGreaterThan(40); // gradcheck alone has 40
    expect(r.status).toBe(0);
  }, 600_000);
});
