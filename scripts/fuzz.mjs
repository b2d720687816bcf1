#!/usr/bin/env node
// npm run fuzz -- [--seconds N] [--target a,b] [--seed S] [--keep] [--sanitize] [--report FILE] [--jobs J]
// Runs each fuzz target of test/fuzz/targets.ts for N seconds (default 30) in a vitest worker
// (test/fuzz/fuzz.run.ts), J vitest processes at once (default: one a core; a target runs on one core),
// each taking every J-th target. --sanitize runs them against the ASan + UBSan addon (build-asan-emu/, built
// if needed), so native loading is checked for out-of-bounds reads too. --keep adds inputs that
// reached new coverage to test/fuzz/corpus/. Findings go to test/fuzz/crashes/<target>/ and fail the
// run; an input that crashed the process (native code) is found in the state folder and kept too.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSanitized, root, sanitizerEnv } from './sanitize-env.mjs';

const usage = 'usage: npm run fuzz -- [--seconds N] [--target NAME[,NAME]] [--seed S] [--keep] [--sanitize] [--report FILE] [--jobs J]';
const opts = { seconds: '30', target: '', seed: '1', keep: false, sanitize: false, report: '', jobs: String(availableParallelism()) };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--keep' || a === '--sanitize') opts[a.slice(2)] = true;
  else if (['--seconds', '--target', '--seed', '--report', '--jobs'].includes(a)) {
    if (i + 1 >= argv.length) {
      console.error(`fuzz: ${a} needs a value\n${usage}`);
      process.exit(2);
    }
    opts[a.slice(2)] = argv[++i];
  } else if (a === '--help' || a === '-h') {
    console.log(usage);
    process.exit(0);
  } else {
    console.error(`fuzz: unknown option ${a}\n${usage}`);
    process.exit(2);
  }
}
if (!/^\d+(\.\d+)?$/.test(opts.seconds) || Number(opts.seconds) <= 0) {
  console.error(`fuzz: --seconds must be a positive number, got "${opts.seconds}"`);
  process.exit(2);
}
if (!/^[1-9]\d*$/.test(opts.jobs)) {
  console.error(`fuzz: --jobs must be a positive integer, got "${opts.jobs}"`);
  process.exit(2);
}
if (!/^\d+$/.test(opts.seed)) {
  console.error(`fuzz: --seed must be a non-negative integer, got "${opts.seed}"`);
  process.exit(2);
}

const state = mkdtempSync(join(tmpdir(), 'l2e-fuzz-state-'));
const base = opts.sanitize ? sanitizerEnv(buildSanitized()) : { ...process.env };
const env = {
  ...base,
  L2E_FUZZ_SECONDS: opts.seconds,
  L2E_FUZZ_TARGET: opts.target,
  L2E_FUZZ_SEED: opts.seed,
  L2E_FUZZ_KEEP: opts.keep ? '1' : '0',
  L2E_FUZZ_STATE: state,
  L2E_FUZZ_SANITIZE: opts.sanitize ? '1' : '0',
};
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
// no more processes than targets named (a process with none has nothing to do)
const jobs = Math.min(Number(opts.jobs), opts.target ? new Set(opts.target.split(',')).size : Infinity);
// each process's report in the state folder, merged into --report's file below
const shardReport = (i) => join(state, `report.${i}.json`);
const statuses = await Promise.all(
  Array.from({ length: jobs }, (_, i) => {
    const child = spawn(process.execPath, [vitest, 'run', '--config', 'test/fuzz/vitest.fuzz.config.ts'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...env, L2E_FUZZ_SHARD: `${i}/${jobs}`, L2E_FUZZ_REPORT: opts.report ? shardReport(i) : '' },
    });
    return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  }),
);
const failed = statuses.find((code) => code !== 0);
if (opts.report) {
  const merged = {};
  for (let i = 0; i < jobs; i++) if (existsSync(shardReport(i))) Object.assign(merged, JSON.parse(readFileSync(shardReport(i), 'utf8')));
  writeFileSync(opts.report, JSON.stringify(merged, null, 2) + '\n');
}
// an input still marked current belongs to a run that never finished: the process died on it
let crashed = 0;
for (const name of existsSync(state) ? readdirSync(state) : []) {
  if (!name.endsWith('.current')) continue;
  const target = name.slice(0, -'.current'.length);
  const data = readFileSync(join(state, name));
  const dir = join(root, 'test', 'fuzz', 'crashes', target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, createHash('sha1').update(data).digest('hex').slice(0, 16));
  copyFileSync(join(state, name), file);
  console.error(`fuzz: ${target}: the process died on an input, kept as ${file}`);
  crashed++;
}
rmSync(state, { recursive: true, force: true });
process.exit(failed === undefined && crashed === 0 ? 0 : failed || 1);
