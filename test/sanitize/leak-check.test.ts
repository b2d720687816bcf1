// Runs only under `npm run test:sanitize` (the addon then has sanitizerPlant): each planted bug, in a
// child Node process with the same environment, must be reported and fail that process. This is
// what shows the sanitizer run can fail at all, and that lsan.supp does not hide our own leaks.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { nativeAddon } from '../../src/native.js';

interface SanitizerAddon {
  sanitizerPlant?: (kind: string) => number;
}
const sanitized = (() => {
  try {
    return typeof nativeAddon<SanitizerAddon>().sanitizerPlant === 'function';
  } catch {
    return false;
  }
})();

function plant(kind: string): { status: number | null; stderr: string } {
  const script = `
    const a = require(process.env.L2E_ADDON);
    a.sanitizerPlant(${JSON.stringify(kind)});
    console.error('leak check says ' + a.sanitizerLeakCheck());
    process.exit(a.sanitizerLeakCheck() ? 3 : 0);`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe.runIf(sanitized)('the sanitizer build reports planted bugs', () => {
  it('a leaked native block is found past the suppressions of Node allocations', () => {
    const r = plant('leak');
    expect(r.stderr).toContain('ERROR: LeakSanitizer: detected memory leaks');
    expect(r.stderr).toMatch(/Direct leak of 4096 byte\(s\) in 1 object\(s\) allocated from:\n.*malloc.*\n.*native\/addon\/sanitizer_binding\.cpp:\d+/);
    expect(r.status).toBe(3);
  });

  it('a heap overflow stops the process (halt_on_error)', () => {
    const r = plant('overflow');
    expect(r.stderr).toContain('ERROR: AddressSanitizer: heap-buffer-overflow');
    expect(r.stderr).not.toContain('leak check says');
    expect(r.status).toBe(86);
  });

  it('undefined behaviour stops the process (-fno-sanitize-recover)', () => {
    const r = plant('ub');
    expect(r.stderr).toContain("runtime error: signed integer overflow: 1 + 2147483647 cannot be represented in type 'int'");
    expect(r.stderr).not.toContain('leak check says');
    expect(r.status).not.toBe(0);
  });
});

