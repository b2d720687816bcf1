// Kill tests: run the real CLI (bin/l2e.js, i.e. dist/) in a child process and SIGKILL it at a random
// moment drawn from a fixed seed, many times; each test then checks what a kill -9 may leave behind.
// L2E_CRASH_TRIALS sets the number of trials per test (default: CI-sized, see each test).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixture.js';
import { npyBytes } from '../../src/util/npy.js';

export const l2eBin = join(repoRoot, 'bin', 'l2e.js');

/**
 * A corpus for `l2e mine --embeddings`: `root`/texts.txt (n lines) and `root`/vectors.npy, [n, dim]
 * float32, `topics` topics: a shared direction per topic plus seeded noise.
 */
export function writeTopicCorpus(root: string, n: number, dim: number, topics: number, seed: number): void {
  const texts: string[] = [];
  const data = new Float32Array(n * dim);
  let s = seed;
  for (let i = 0; i < n; i++) {
    texts.push(`text ${i} of topic ${i % topics}`);
    for (let j = 0; j < dim; j++) {
      s = (s * 1103515245 + 12345) >>> 0;
      data[i * dim + j] = (j === (i % topics) % dim ? 3 : 0) + (s / 2 ** 32 - 0.5);
    }
  }
  writeFileSync(join(root, 'texts.txt'), texts.join('\n') + '\n');
  writeFileSync(join(root, 'vectors.npy'), Buffer.concat(npyBytes(data, n, dim)));
}

export function trialCount(ciDefault: number): number {
  const v = Number(process.env['L2E_CRASH_TRIALS'] ?? ciDefault);
  return Number.isInteger(v) && v > 0 ? v : ciDefault;
}

/** Newest modification time under `dir` (files only), 0 when there is none. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.isFile()) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** The TypeScript compiler (not installed on a GPU machine: scripts/gpu/device-packages.cjs). */
export const tscPath = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

/** The CLI runs the compiled dist/: rebuild it when a source file is newer (a test run after an edit): once before any file, by test/helpers/global-setup.ts. */
export function ensureDist(): void {
  const dist = join(repoRoot, 'dist', 'cli', 'main.js');
  if (existsSync(dist) && newest(join(repoRoot, 'src')) <= newest(join(repoRoot, 'dist'))) return;
  // --noEmitOnError: a source with a type error leaves dist/ as it was (older), so every run says so
  const r = spawnSync(process.execPath, [tscPath, '-p', 'tsconfig.build.json', '--noEmitOnError'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building dist/ (tsc -p tsconfig.build.json) for the tests that run the CLI failed:\n${r.stdout}${r.stderr}`);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Whether we killed it (false: it finished before the kill time). */
  killed: boolean;
}

/** Runs `l2e ...args`; with `killAfterMs`, SIGKILLs it then unless it has finished. */
/**
 * Runs bin/l2e.js. killAfterMs: SIGKILL that many ms after the spawn, or, with killClockStarts, after
 * killClockStarts() first returns true (polled every 2 ms: e.g. once a server has sent the first byte,
 * so that a loaded machine's slow start does not push every kill past the moment aimed at).
 */
export function runL2e(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; killAfterMs?: number; killClockStarts?: () => boolean; onSpawn?: () => void } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [l2eBin, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    const arm = (ms: number) => {
      timer = setTimeout(() => {
        killed = child.kill('SIGKILL');
      }, ms);
    };
    if (opts.killAfterMs !== undefined) {
      const ms = opts.killAfterMs;
      const starts = opts.killClockStarts;
      if (!starts) arm(ms);
      else
        poll = setInterval(() => {
          if (!starts()) return;
          clearInterval(poll);
          poll = undefined;
          arm(ms);
        }, 2);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolve({ code, signal, stdout, stderr, killed: killed && signal === 'SIGKILL' });
    });
    opts.onSpawn?.();
  });
}

/** Deterministic kill times: mulberry32 over [lo, hi) ms. */
export function killTimes(seed: number, n: number, lo: number, hi: number): number[] {
  let a = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out.push(Math.round(lo + r * (hi - lo)));
  }
  return out;
}
