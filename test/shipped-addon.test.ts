// The published package carries only what users call: the test and bench hooks live in the test
// addon (native/testing, build/Release/testing/l2e_testing.node), never in the shipped addon, and
// `npm pack` leaves native/testing and the test addon's loader out.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { nativeAddon, nativeAddonPath, packageRoot } from '../src/native.js';
import { testingAddon, testingAddonPath } from './helpers/testing-addon.mjs';

// every export of native/testing/*.cpp
const HOOKS = [
  'arenaReplay', 'backendOp', 'backendOps', 'benchOp', 'benchOps', 'cudaAttentionVariants', 'cudaBenchAttention', 'cudaPoolMallocs',
  'cudaPoolPeakLive', 'cudaPoolPeakReserved', 'gemmKernel', 'gradcheck',
  'gradcheckAdamw', 'gradcheckFloat', 'gradcheckInfonce', 'gradcheckOps', 'hostMapping', 'hostPoolCounts', 'lowpKernels', 'lowpLinear', 'opTimings', 'packWeights',
  'resetOpTimings', 'setGemmKernel', 'setOpTiming', 'sgemm', 'sgemmPackedWeights',
];

describe('the shipped addon and the test addon', () => {
  it('are two files', () => {
    expect(nativeAddonPath()).not.toBe(testingAddonPath());
  });

  it('the shipped addon exports no test or bench hook; the test addon has all of its exports and the hooks', () => {
    const shipped = Object.keys(nativeAddon<Record<string, unknown>>()).sort();
    const testing = Object.keys(testingAddon()).sort();
    expect(shipped.filter((k) => HOOKS.includes(k))).toEqual([]);
    expect(shipped.filter((k) => !testing.includes(k))).toEqual([]);
    expect(testing.filter((k) => !shipped.includes(k))).toEqual([...HOOKS].sort());
    expect(shipped).toContain('NativeModel');
    expect(shipped).toContain('cudaStatus');
  });

  it('src/ never names the test addon', () => {
    const found: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, e.name);
        if (e.isDirectory()) walk(path);
        else if (/l2e_testing|testing-addon|native\/testing/.test(readFileSync(path, 'utf8'))) found.push(path);
      }
    };
    walk(join(packageRoot, 'src'));
    expect(found).toEqual([]);
  });

  it('npm pack leaves native/testing and the test addon loader out, and has the license', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: packageRoot, encoding: 'utf8' });
    expect(r.status).toBe(0);
    // npm 10 and 11 print an array of packages, npm 12 an object keyed by package name
    type Packed = { name: string; files: { path: string }[] };
    const out = JSON.parse(r.stdout) as Packed[] | Record<string, Packed>;
    const packed = Array.isArray(out) ? out : Object.values(out);
    expect(packed.map((p) => p.name)).toEqual(['llama2-embedding']);
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('native/addon/addon.cpp');
    expect(files).toContain('native/core/ops.def');
    expect(files).toContain('LICENSE'); // the MIT notice ships with every copy
    expect(files.filter((f) => f.startsWith('native/testing/') || f.startsWith('test/'))).toEqual([]);
    // src/ is not shipped: the source maps carry their TypeScript (tsconfig.build.json inlineSources)
    expect(files.some((f) => f.startsWith('src/'))).toBe(false);
    const map = JSON.parse(readFileSync(join(packageRoot, 'dist', 'index.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    expect(map.sources).toEqual(['../src/index.ts']);
    expect(map.sourcesContent).toEqual([readFileSync(join(packageRoot, 'src', 'index.ts'), 'utf8')]);
  });
});
