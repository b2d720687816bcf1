// `l2e serve` as a process (the built CLI, bin/l2e.js over dist/): it listens, answers, and on SIGTERM
// stops accepting, finishes the request in flight and exits 0. Also its --help and usage errors.
import { describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaStatus, packageRoot } from '../src/native.js';
import { cudaMissingMessage, EmbeddingModel } from '../src/model/embedding-model.js';
import { hasTokenizer, postJson } from './helpers/server.js';
import { makeTempDir, repoRoot, writeTinyModel } from './helpers/tinyModel.js';
import { skipNote } from './helpers/fixture.js';
import { l2e } from './helpers/cli.js';
import { npyBytes } from '../src/util/npy.js';

const hasDist = existsSync(join(repoRoot, 'dist', 'cli', 'main.js'));


/** Resolves with the first stderr match of `re` (rejects when the process exits first). */
function waitFor(child: ChildProcess, stderr: { text: string }, re: RegExp, ms = 60000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = re.exec(stderr.text);
      if (m) {
        cleanup();
        resolve(m);
      }
      return !!m;
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`l2e serve exited (${code}) before ${re}: ${stderr.text}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${re} within ${ms} ms: ${stderr.text}`));
    }, ms);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stderr!.off('data', check);
      child.off('exit', onExit);
    };
    child.stderr!.on('data', check);
    child.on('exit', onExit);
    check();
  });
}


/** `l2e serve ...args` as a process (the built CLI): its stderr as it comes, and its exit code once it exits. */
function startServe(args: string[]): { child: ChildProcess; stderr: { text: string }; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'l2e.js'), 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = { text: '' };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr.text += s));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr, exited };
}

describe('l2e serve options', () => {
  it('--help explains the endpoints and the limits', async () => {
    const r = await l2e('serve', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: l2e serve --model DIR|org/name');
    expect(r.out).toContain('POST /v1/embeddings');
    expect(r.out).toContain('--max-queue-tokens');
    expect(r.out).toContain('--no-batching');
  });

  it('bad option values are usage errors naming the flag', async () => {
    const port = await l2e('serve', '--model', 'x', '--port', '70000');
    expect(port.code).toBe(2);
    expect(port.err.split('\n')[0]).toBe('l2e serve: --port must be in [0, 65535], got 70000');
    const queue = await l2e('serve', '--model', 'x', '--max-queue-tokens', '100', '--max-length', '512');
    expect(queue.code).toBe(2);
    expect(queue.err.split('\n')[0]).toBe('l2e serve: --max-queue-tokens (100) must be at least --max-length (512)');
    const missing = await l2e('serve', '--model', '/nonexistent/model', '--port', '0');
    expect(missing.code).toBe(1);
    expect(missing.err.split('\n').at(-2)).toBe('l2e serve: error: model folder not found: /nonexistent/model');
    expect(missing.err).not.toContain('listening'); // said before it listens
    expect(process.listenerCount('SIGTERM')).toBe(0);
    for (const flag of ['--request-timeout-ms', '--max-wait-ms']) {
      const timer = await l2e('serve', '--model', 'x', flag, '3000000000');
      expect(timer.code).toBe(2);
      expect(timer.err.split('\n')[0]).toBe(`l2e serve: ${flag} must be at most 2147483647 (about 24.8 days, the longest timer Node keeps), got 3000000000`);
    }
    const dev = await l2e('serve', '--model', 'x', '--device', 'tpu');
    expect(dev.err.split('\n')[0]).toBe('l2e serve: --device must be cpu or cuda, got tpu');
    const name = await l2e('serve', '--model', 'x', '--model-name', ' ');
    expect([name.code, name.err.split('\n')[0]]).toEqual([2, 'l2e serve: --model-name must not be empty']);
    // a key no Authorization header can carry locked every client out with 401s; an empty variable served all
    const spaced = 'the key starts or ends with whitespace (a line end read with it?), which no Authorization header carries: remove it';
    const flagKey = await l2e('serve', '--model', 'x', '--api-key', 's3cret ');
    expect([flagKey.code, flagKey.err.split('\n')[0]]).toEqual([2, `l2e serve: --api-key: ${spaced}`]);
    try {
      vi.stubEnv('L2E_API_KEY', 's3cret\n');
      const envKey = await l2e('serve', '--model', 'x');
      expect([envKey.code, envKey.err.split('\n')[0]]).toEqual([2, `l2e serve: L2E_API_KEY: ${spaced}`]);
      vi.stubEnv('L2E_API_KEY', 'a\u0007b');
      const bell = await l2e('serve', '--model', 'x');
      expect(bell.err.split('\n')[0]).toBe('l2e serve: L2E_API_KEY: the key holds a control character, which no Authorization header carries');
      vi.stubEnv('L2E_API_KEY', '');
      const empty = await l2e('serve', '--model', 'x');
      expect([empty.code, empty.err.split('\n')[0]]).toEqual([2, 'l2e serve: L2E_API_KEY is set but empty: set a key, or unset it to serve without one']);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('the corpus flags: each needs --corpus; --corpus-format forces the format, and the hints name it', async () => {
    for (const [flag, value] of [['--corpus-vectors', 'v.npy'], ['--corpus-field', 'query'], ['--corpus-format', 'text']] as const) {
      const r = await l2e('serve', '--model', 'x', flag, value);
      expect([r.code, r.err.split('\n')[0]]).toEqual([2, `l2e serve: ${flag} is for the search corpus: give --corpus FILE too`]);
    }
    const dir = makeTempDir();
    const dat = join(dir, 'corpus.dat');
    writeFileSync(dat, 'satu\ndua\n');
    const unnamed = await l2e('serve', '--model', 'x', '--corpus', dat);
    expect(unnamed.err.split('\n').at(-2)).toBe(`l2e serve: error: cannot tell the format of ${dat} from its name: use .jsonl, .txt or .json, or give --corpus-format text|jsonl|json`);
    const lines = join(dir, 'lines.jsonl');
    writeFileSync(lines, 'satu\ndua\n');
    const notJson = await l2e('serve', '--model', 'x', '--corpus', lines);
    expect(notJson.err).toContain('for plain texts use a .txt name or --corpus-format text');
    const bad = await l2e('serve', '--model', 'x', '--corpus', dat, '--corpus-format', 'csv');
    expect([bad.code, bad.err.split('\n')[0]]).toEqual([2, 'l2e serve: --corpus-format must be text, jsonl or json, got csv']);
    // forced to text, the corpus is read: the run goes on to the model, which is not there
    const forced = await l2e('serve', '--model', '/nonexistent/model', '--port', '0', '--corpus', dat, '--corpus-format', 'text');
    expect(forced.err).toContain(`corpus: 2 texts from ${dat}\n`);
    expect(forced.err.split('\n').at(-2)).toBe('l2e serve: error: model folder not found: /nonexistent/model');
  });
});

describe.skipIf(!hasTokenizer || !hasDist)(
  `l2e serve process ${!hasTokenizer ? skipNote('the shared tokenizer') : hasDist ? '' : '(skipped: dist/ not built; npm run build:ts)'}`,
  () => {
    it.skipIf(cudaStatus().usable)('--device cuda with no usable GPU fails before it listens, with the reason', async () => {
      const dir = makeTempDir('l2e-serve-cli-');
      writeTinyModel(dir, { seed: 5 });
      const r = await l2e('serve', '--model', dir, '--port', '0', '--device', 'cuda');
      expect(r.code).toBe(1);
      expect(r.err).not.toContain('listening on');
      // a build with the CUDA backend says why no GPU is usable; a CPU-only build, how to build it
      const status = cudaStatus();
      expect(r.err).toContain(`l2e serve: error: ${status.compiled ? `device 'cuda' requested but ${status.reason}` : cudaMissingMessage(packageRoot)}\n`);
    });

    it("a queue smaller than the model's input length: a usage error naming the flags, before listening (a model folder)", async () => {
      const dir = makeTempDir('l2e-serve-cli-');
      writeTinyModel(dir, { seed: 5 });
      const r = await l2e('serve', '--model', dir, '--port', '0', '--max-queue-tokens', '100');
      expect(r.code).toBe(2);
      expect(r.err).not.toContain('listening on'); // it listened, then exited, before
      expect(r.err).toContain(
        "l2e serve: --max-queue-tokens (100) must be at least the model's input length (512, its max_position_embeddings): raise it, or give a smaller --max-length\n",
      );
    });

    // a bad --corpus exits 1 before listening; a corpus vectors file that is not this corpus's used to
    // leave the server up without its search corpus, saying so once on stderr, and then to stop it after
    // "ready". (One that cannot be this corpus's at all is refused before listening: see
    // 'l2e serve --corpus-vectors' below.)
    it('a --corpus-vectors file that cannot serve the corpus stops the server with exit 1 before "ready", naming it', async () => {
      const dir = makeTempDir('l2e-serve-cli-');
      writeTinyModel(dir, { seed: 5 });
      writeFileSync(join(dir, 'corpus.txt'), 'satu\ndua\ntiga\n');
      // the corpus's shape, but not its vectors: found out by the rows embedded again, once the model is loaded
      writeFileSync(join(dir, 'zeros.npy'), Buffer.concat(npyBytes(new Float32Array(3 * 16), 3, 16)));
      const { child, stderr, exited } = startServe(['--model', dir, '--port', '0', '--corpus', join(dir, 'corpus.txt'), '--corpus-vectors', join(dir, 'zeros.npy')]);
      try {
        expect(await exited).toBe(1);
        expect(stderr.text).toMatch(new RegExp(`l2e serve: error: --corpus-vectors ${join(dir, 'zeros.npy').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not hold this model's vectors`));
        expect(stderr.text).not.toMatch(/^ready:/m);
        expect(stderr.text).not.toContain('corpus: ready');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });

    // closing cancels the corpus embedding: that is the stop asked for, not a corpus failure (exit 1)
    it('SIGTERM while the corpus is being embedded exits 0', async () => {
      const dir = makeTempDir('l2e-serve-cli-');
      writeTinyModel(dir, { seed: 5 });
      writeFileSync(join(dir, 'corpus.txt'), Array.from({ length: 20000 }, (_, i) => `ayat nombor ${i}`).join('\n') + '\n');
      const { child, stderr, exited } = startServe(['--model', dir, '--port', '0', '--corpus', join(dir, 'corpus.txt')]);
      try {
        await waitFor(child, stderr, /corpus: embedded \d+\/20000 texts/);
        child.kill('SIGTERM');
        expect(await exited, stderr.text).toBe(0);
        expect(stderr.text).toContain('stopped\n');
        expect(stderr.text).not.toContain('error');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });

    it('SIGTERM: stops accepting, finishes the request in flight, exits 0', async () => {
      const dir = makeTempDir('l2e-serve-cli-');
      writeTinyModel(dir, { seed: 5 });
      const { child, stderr, exited } = startServe(['--model', dir, '--port', '0', '--max-wait-ms', '1500']);
      try {
        const [, url] = await waitFor(child, stderr, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await waitFor(child, stderr, /ready: 16-dim embeddings on cpu/);
        // the batch waits 1.5 s for company: SIGTERM arrives while the request is queued
        const inFlight = postJson<{ data: unknown[] }>(`${url}/v1/embeddings`, { input: ['satu', 'dua', 'tiga'] });
        await new Promise((r) => setTimeout(r, 300));
        const killedAt = performance.now();
        child.kill('SIGTERM');
        await waitFor(child, stderr, /l2e serve: SIGTERM received: finishing requests in flight, then exiting \(SIGTERM again to quit now\)/);
        const reply = await inFlight;
        expect(reply.status).toBe(200);
        expect(reply.body.data).toHaveLength(3);
        expect(await exited).toBe(0);
        // the client's keep-alive connection must not hold the exit back (fastify's 72 s keepAliveTimeout)
        expect(performance.now() - killedAt).toBeLessThan(15000);
        expect(stderr.text).toContain('stopped\n');
        await expect(fetch(`${url}/health`)).rejects.toThrow('fetch failed');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });

    // serve ended on SIGTERM and SIGINT only: a closed terminal (SIGHUP) killed it with requests in
    // flight, and a second signal killed it without a word
    it('SIGHUP stops it as SIGTERM does; a second signal exits at once, saying so', async () => {
      const dir = makeTempDir('l2e-serve-cli-');
      writeTinyModel(dir, { seed: 5 });
      const { child, stderr, exited } = startServe(['--model', dir, '--port', '0', '--max-wait-ms', '3000', '--model-name', 'kata']);
      try {
        const [, url] = await waitFor(child, stderr, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await waitFor(child, stderr, /ready: 16-dim embeddings on cpu/);
        expect(((await (await fetch(`${url}/info`)).json()) as { model: string }).model).toBe('kata');
        const inFlight = postJson(`${url}/v1/embeddings`, { input: ['satu'] }).catch((err: unknown) => err);
        await new Promise((r) => setTimeout(r, 300));
        child.kill('SIGHUP');
        await waitFor(child, stderr, /l2e serve: SIGHUP received: finishing requests in flight, then exiting \(SIGHUP again to quit now\)/);
        child.kill('SIGTERM');
        expect(await exited).toBe(143);
        expect(stderr.text).toContain('\nl2e serve: SIGTERM received again, dropping the requests in flight\n');
        expect(await inFlight).toBeInstanceOf(Error); // its connection closed with the process
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  },
);

// A --corpus-vectors file that could not be the corpus's used to be found out after "listening" and
// "ready" were printed, the process dying under a health check that had seen it ready. What needs no
// model is checked before it listens; the width, once the model is loaded and before "ready".
describe.skipIf(!hasTokenizer)(`l2e serve --corpus-vectors ${hasTokenizer ? '' : skipNote('the shared tokenizer')}`, () => {
  /** A tiny model (16-dim embeddings) and a corpus of 3 texts in a fresh folder. */
  const setup = (): { dir: string; args: string[] } => {
    const dir = makeTempDir('l2e-serve-cli-');
    writeTinyModel(dir, { seed: 5 });
    writeFileSync(join(dir, 'corpus.txt'), 'satu\ndua\ntiga\n');
    return { dir, args: ['serve', '--model', dir, '--port', '0', '--corpus', join(dir, 'corpus.txt'), '--corpus-vectors'] };
  };
  const readyLine = /^ready:/m;

  it('a file that cannot be read, is not a .npy or has not one row per text fails before listening, naming the flag and the file', async () => {
    const { dir, args } = setup();
    const rows = join(dir, 'rows.npy');
    writeFileSync(rows, Buffer.concat(npyBytes(new Float32Array(2 * 16), 2, 16)));
    const junk = join(dir, 'junk.npy');
    writeFileSync(junk, 'not a matrix');
    const folder = join(dir, 'folder.npy');
    mkdirSync(folder);
    for (const [file, why] of [
      [rows, `${rows} holds 2x16 vectors but the corpus has 3 texts: expected 3 rows, one per text`],
      [junk, `${junk}: not a .npy file`],
      [folder, `${folder} cannot be read: EISDIR: illegal operation on a directory, read`],
    ] as const) {
      const r = await l2e(...args, file);
      expect(r.code, r.err).toBe(1);
      expect(r.err).not.toMatch(readyLine);
      expect(r.err).not.toContain('listening');
      expect(r.err.split('\n').at(-2)).toBe(`l2e serve: error: --corpus-vectors ${why}`);
    }
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  // a stop asked for while the model loaded used to be followed by "ready", and by a failure of the check
  // it interrupted
  it.each(['SIGTERM', 'SIGINT'] as const)('%s while the model loads stops the command: exit 0, "stopped", no "ready"', async (signal) => {
    const { dir, args } = setup();
    const narrow = join(dir, 'narrow.npy');
    writeFileSync(narrow, Buffer.concat(npyBytes(new Float32Array(3 * 8), 3, 8))); // would fail the check
    const load = EmbeddingModel.load.bind(EmbeddingModel);
    const spy = vi.spyOn(EmbeddingModel, 'load').mockImplementation(async (...a) => {
      process.emit(signal, signal); // as the signal itself calls the listeners
      return load(...a);
    });
    try {
      const r = await l2e(...args, narrow);
      expect(r.code, r.err).toBe(0);
      const again = signal === 'SIGINT' ? 'interrupted: finishing requests in flight, then exiting (Ctrl-C again to quit now)' : 'SIGTERM received: finishing requests in flight, then exiting (SIGTERM again to quit now)';
      expect(r.err).toContain(`\nl2e serve: ${again}\n`);
      expect(r.err).not.toMatch(readyLine);
      expect(r.err.endsWith('stopped\n')).toBe(true);
    } finally {
      spy.mockRestore();
    }
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it("a file of another width than the model's fails once the model is loaded, before \"ready\"", async () => {
    const { dir, args } = setup();
    const narrow = join(dir, 'narrow.npy');
    writeFileSync(narrow, Buffer.concat(npyBytes(new Float32Array(3 * 8), 3, 8)));
    const r = await l2e(...args, narrow);
    expect(r.code, r.err).toBe(1);
    expect(r.err).not.toMatch(readyLine);
    expect(r.err).toContain('listening on http://127.0.0.1:');
    expect(r.err.split('\n').at(-2)).toBe(`l2e serve: error: --corpus-vectors ${narrow} holds 3x8 vectors but the model's embeddings have 16 dims: expected 3x16`);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });
});
