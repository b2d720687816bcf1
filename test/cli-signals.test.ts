// Ctrl-C (SIGINT), SIGTERM and SIGHUP during the commands without a stop of their own (encode, mine, eval,
// combine, tokenize): the output's temp file and mine's vector store are removed and the exit code is
// the shell's (130 / 143 / 129). They were left behind: the temp beside the output until a later run to the
// same target, the store in the temp folder for good. And `tokenize | head -1`: a quiet exit, not
// Node's stack trace for EPIPE. The real CLI (bin/l2e.js over dist/) in a child process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { l2eBin, writeTopicCorpus } from './crash/harness.js';
import { hasTokenizer } from './helpers/server.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';
import { skipNote } from './helpers/fixture.js';

const N = 6000;
const DIM = 32;
let root = '';

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'l2e-signals-'));
  writeTopicCorpus(root, N, DIM, 50, 3);
}, 120_000);
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  removeTempDirs();
});

/** Spawns `l2e mine` (vectors given, spilled to a store), signals it once its output's temp file exists. */
async function mineStopped(signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string; out: string[]; tmp: string[] }> {
  const dir = mkdtempSync(join(root, 'run-'));
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  const out = join(dir, 'out');
  mkdirSync(out);
  const args = ['mine', '--embeddings', join(root, 'vectors.npy'), '--texts', join(root, 'texts.txt'), '--input', join(root, 'texts.txt'),
    '--output', join(out, 'pairs.jsonl'), '--pos-threshold', '0.6', '--neg-threshold', '0.9', '--metric', 'cosine', '--memory-mb', '1', '--k', '32'];
  const child = spawn(process.execPath, [l2eBin, ...args], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let sent = false;
  for (let waited = 0; waited < 60_000 && child.exitCode === null; waited += 5) {
    const temp = readdirSync(out).some((n) => n.startsWith('.pairs.jsonl.tmp-'));
    const store = readdirSync(tmp).some((n) => n.startsWith('l2e-mine-store-'));
    if (temp && store) {
      child.kill(signal);
      sent = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const code = await exited;
  expect(sent, `mine finished before its temp file and store were seen: ${stderr}`).toBe(true);
  return { code, stderr, out: readdirSync(out), tmp: readdirSync(tmp) };
}

describe('signals during the commands without a stop of their own', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const)('mine, %s while writing: exit %i, no temp file beside the output, no vector store left', async (signal, exitCode) => {
    const r = await mineStopped(signal);
    expect(r.code, r.stderr).toBe(exitCode);
    expect(r.out).toEqual([]);
    expect(r.tmp).toEqual([]);
  }, 120_000);
});

describe.skipIf(!hasTokenizer)(`tokenize into a closed pipe ${hasTokenizer ? '' : skipNote('the shared tokenizer')}`, () => {
  it('exits quietly with 141 (as encode does), no stack trace', async () => {
    const dir = makeTempDir();
    writeTinyModel(dir, { seed: 2 });
    const child = spawn(process.execPath, [l2eBin, 'tokenize', '--model', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.stdout!.once('data', () => child.stdout!.destroy()); // `| head -c 1`: the reader goes away
    child.stdin!.on('error', () => {}); // the child may exit before it has read all of this
    child.stdin!.end('satu dua tiga\n'.repeat(50_000));
    expect(await exited).toBe(141);
    expect(stderr).toBe('');
    expect(existsSync(dir)).toBe(true);
  }, 60_000);
});
