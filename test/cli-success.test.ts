// The CLI's success paths, end to end through main(argv) on a tiny random model with the real Llama 2
// tokenizer (rebuilt from the llama-tokenizer-js development dependency, so no ../shared needed):
// encode (.npy and .jsonl: one row per input line, in order; CRLF line ends and blank lines), eval
// --json, mine (from the model, and from encode's output, identically), tokenize, pull from a local
// Hub, and combine. Plain progress lines for encode when stderr is not a terminal.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeLlamaTokenizer } from '../src/demo/llama-tokenizer.js';
import { evaluateFile } from '../src/eval/evaluate.js';
import { parseNpy } from '../src/util/npy.js';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

let dir: string;
let modelDir: string;
let model: EmbeddingModel;

const TEXTS = ['selamat pagi', '', 'apa khabar', 'terima kasih banyak', 'good morning', 'thank you very much', 'how are you'];

beforeAll(async () => {
  dir = makeTempDir();
  modelDir = join(dir, 'model');
  writeTinyModel(modelDir, { vocab: 32000, hidden: 32, layers: 1, heads: 4, dense: 16, tokenizer: false, seed: 5 });
  await writeLlamaTokenizer(modelDir);
  model = await EmbeddingModel.load(modelDir);
}, 120_000);
afterAll(() => {
  model?.dispose();
  removeTempDirs();
});

/** Each text encoded alone by the library: what row i of a CLI output must be. */
async function alone(texts: string[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of texts) out.push((await model.encode([t])).row(0).slice());
  return out;
}

function expectRowsClose(got: ArrayLike<number>[], want: Float32Array[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((row, i) => {
    expect(row.length).toBe(want[i]!.length);
    for (let j = 0; j < row.length; j++) expect(Math.abs(row[j]! - want[i]![j]!), `row ${i} col ${j}`).toBeLessThan(1e-5);
  });
}

describe('l2e encode', () => {
  it('.txt with CRLF line ends and a blank line → .jsonl and .npy: one row per line, in input order', async () => {
    const input = join(dir, 'texts.txt');
    writeFileSync(input, TEXTS.join('\r\n') + '\r\n');
    const jsonl = join(dir, 'out.jsonl');
    const npy = join(dir, 'out.npy');
    const a = await l2e('encode', '--model', modelDir, '--input', input, '--output', jsonl, '--batch-size', '3');
    expect(a.err).not.toMatch(/error/);
    expect(a.code).toBe(0);
    expect(a.err).toContain(`encoded ${TEXTS.length} texts (16 dims) → ${jsonl}\n`);
    const rows = readFileSync(jsonl, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { text: string; embedding: number[] });
    expect(rows.map((r) => r.text)).toEqual(TEXTS); // no "\r", the blank line kept as an empty text
    const want = await alone(TEXTS);
    expectRowsClose(rows.map((r) => r.embedding), want);

    const b = await l2e('encode', '--model', modelDir, '--input', input, '--output', npy);
    expect(b.code).toBe(0);
    const m = parseNpy(readFileSync(npy));
    expect([m.rows, m.cols]).toEqual([TEXTS.length, 16]);
    expectRowsClose(Array.from({ length: m.rows }, (_, i) => m.data.subarray(i * 16, (i + 1) * 16)), want);
  });

  it('.jsonl input takes the "text" field (or --field) of every line, in order', async () => {
    const input = join(dir, 'texts.jsonl');
    writeFileSync(input, TEXTS.filter((t) => t).map((t, i) => JSON.stringify({ id: i, body: t, text: `${t}!` })).join('\n') + '\n');
    const out = join(dir, 'field.jsonl');
    const r = await l2e('encode', '--model', modelDir, '--input', input, '--output', out, '--field', 'body');
    expect(r.code).toBe(0);
    const rows = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { id: number; body: string; text: string; embedding: number[] });
    const texts = TEXTS.filter((t) => t);
    expect(rows.map((x) => x.body)).toEqual(texts); // the input row's fields are carried through
    expect(rows.map((x) => x.id)).toEqual(texts.map((_, i) => i));
    expect(rows.map((x) => x.text)).toEqual(texts.map((t) => `${t}!`));
    expectRowsClose(rows.map((x) => x.embedding), await alone(texts));
  });

  it('prints plain progress lines when stderr is not a terminal', async () => {
    const input = join(dir, 'many.txt');
    writeFileSync(input, Array.from({ length: 40 }, (_, i) => `teks nombor ${i}`).join('\n') + '\n');
    const tty = process.stderr.isTTY;
    process.stderr.isTTY = false;
    try {
      const r = await l2e('encode', '--model', modelDir, '--input', input, '--output', join(dir, 'many.npy'), '--batch-size', '4');
      expect(r.code).toBe(0);
      expect(r.err).toMatch(/^encode 40\/40 /m);
      expect(r.err.split('\n').filter((l) => l.startsWith('encode ')).length).toBeGreaterThanOrEqual(2);
    } finally {
      process.stderr.isTTY = tty;
    }
  });
});

const TEST_ROWS = [
  { query: 'selamat pagi', pos: ['good morning'], neg: ['thank you very much'] },
  { query: 'terima kasih banyak', pos: ['thank you very much'], neg: ['how are you'] },
  { query: 'apa khabar', pos: ['how are you'], neg: ['good morning'] },
];

describe('l2e eval --json', () => {
  it('writes the metrics the library computes, to a file or (alone) to stdout', async () => {
    const test = join(dir, 'pairs-test.jsonl');
    writeFileSync(test, TEST_ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'metrics.json');
    const r = await l2e('eval', '--model', modelDir, '--test', test, '--json', out);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/pairs-test/);
    // stderr is a pipe here: the embedding's progress comes as plain lines, as encode's and mine's do
    expect(r.err).toMatch(new RegExp(`^embed ${test.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\d+/\\d+ `, 'm'));
    const written = JSON.parse(readFileSync(out, 'utf8')) as Record<string, Record<string, number>>;
    const want = await evaluateFile(test, { embed: (t) => model.encode(t), close: () => {} });
    expect(Object.keys(written)).toEqual(['pairs-test']);
    for (const [k, v] of Object.entries(want.metrics)) {
      expect(Number.isFinite(written['pairs-test']![k]), k).toBe(true);
      expect(written['pairs-test']![k], k).toBeCloseTo(v as number, 5);
    }
    const alone = await l2e('eval', '--model', modelDir, '--test', test, '--json');
    expect(alone.code).toBe(0);
    expect(JSON.parse(alone.out)).toEqual(written);
    expect(alone.err).toMatch(/pairs-test/); // the table goes to stderr
  });
});

describe('l2e mine', () => {
  it('mines from the model, and identically from the vectors encode wrote', async () => {
    const corpus = join(dir, 'corpus.txt');
    const texts = TEXTS.filter((t) => t);
    writeFileSync(corpus, texts.join('\n') + '\n');
    const fromModel = join(dir, 'mined-model.jsonl');
    const common = ['--input', corpus, '--pos-threshold', 'p20', '--neg-threshold', 'p60', '--k', '6'];
    const r = await l2e('mine', '--model', modelDir, ...common, '--output', fromModel);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^6 input rows, 6 distinct texts → \d+ rows written to /);
    const rows = readFileSync(fromModel, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      for (const t of [row.query, ...row.pos, ...row.neg]) expect(texts).toContain(t);
      expect(row.pos).not.toContain(row.query);
      expect(row.pos.some((p) => row.neg.includes(p))).toBe(false);
    }
    const vectors = join(dir, 'corpus-vectors.jsonl');
    expect((await l2e('encode', '--model', modelDir, '--input', corpus, '--output', vectors)).code).toBe(0);
    const fromVectors = join(dir, 'mined-vectors.jsonl');
    const v = await l2e('mine', '--embeddings', vectors, ...common, '--output', fromVectors);
    expect(v.code).toBe(0);
    expect(readFileSync(fromVectors, 'utf8')).toBe(readFileSync(fromModel, 'utf8'));
  });
});

describe('l2e tokenize', () => {
  it('writes the model\'s token ids of each stdin line (BOS first, truncated at --max-length)', async () => {
    const stdin = vi.spyOn(process, 'stdin', 'get').mockReturnValue(Readable.from([Buffer.from('Hello world!\r\nselamat'), Buffer.from(' pagi\n\n')]) as unknown as typeof process.stdin);
    try {
      const r = await l2e('tokenize', '--model', modelDir, '--max-length', '3');
      expect(r.code).toBe(0);
      const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as number[]);
      expect(lines).toEqual([
        [1, 15043, 3186], // "Hello world!" is [1, 15043, 3186, 29991], cut at 3
        Array.from(model.tokenize(['selamat pagi'], 3)[0]!),
        [1],
      ]);
    } finally {
      stdin.mockRestore();
    }
  });
  it('reads stdin as encode reads a .txt (BOM dropped, a lone CR inside a line), takes a Hub id, and refuses --max-length 0', async () => {
    const stdin = vi.spyOn(process, 'stdin', 'get');
    const env = { HF_HUB_CACHE: process.env['HF_HUB_CACHE'], HF_HUB_OFFLINE: process.env['HF_HUB_OFFLINE'] };
    try {
      stdin.mockReturnValue(Readable.from([Buffer.from('\xef\xbb\xbfhello world\na\rb\n', 'latin1')]) as unknown as typeof process.stdin);
      const r = await l2e('tokenize', '--model', modelDir);
      expect(r.code).toBe(0);
      expect(r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as number[])).toEqual(
        model.tokenize(['hello world', 'a\rb']).map((ids) => Array.from(ids)),
      );
      expect(r.out.split('\n')[0]).toBe('[1,22172,3186]');
      // a Hub id, from the cache (no network)
      const cache = join(dir, 'tok-cache');
      const snapshot = join(cache, 'models--org--tok', 'snapshots', 'd'.repeat(40));
      mkdirSync(join(cache, 'models--org--tok', 'refs'), { recursive: true });
      cpSync(modelDir, snapshot, { recursive: true });
      writeFileSync(join(cache, 'models--org--tok', 'refs', 'main'), 'd'.repeat(40));
      process.env['HF_HUB_CACHE'] = cache;
      process.env['HF_HUB_OFFLINE'] = '1';
      stdin.mockReturnValue(Readable.from([Buffer.from('hello world\n')]) as unknown as typeof process.stdin);
      const hub = await l2e('tokenize', '--model', 'org/tok');
      expect(hub.err).toBe('');
      expect(hub.out).toBe('[1,22172,3186]\n');
      const zero = await l2e('tokenize', '--model', modelDir, '--max-length', '0');
      expect(zero.code).toBe(2);
      expect(zero.err).toContain('--max-length must be at least 1, got 0');
    } finally {
      stdin.mockRestore();
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('l2e pull', () => {
  const gitBlobId = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
  const COMMIT = 'c'.repeat(40);
  let server: http.Server;
  let endpoint = '';
  let files: { path: string; body: Buffer }[];

  beforeAll(async () => {
    files = readdirSync(modelDir).map((f) => ({ path: f, body: readFileSync(join(modelDir, f)) }));
    server = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/api/models/org/tiny/revision/main') {
        const siblings = files.map((f) => ({ rfilename: f.path, size: f.body.length, blobId: gitBlobId(f.body) }));
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'org/tiny', sha: COMMIT, siblings }));
      }
      if (url.pathname === '/api/models/org/binonly/revision/main') {
        // weights only as pytorch_model.bin: the default include fetches config.json alone
        const siblings = [{ rfilename: 'config.json', size: 2, blobId: gitBlobId(Buffer.from('{}')) }, { rfilename: 'pytorch_model.bin', size: 1 }];
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'org/binonly', sha: COMMIT, siblings }));
      }
      if (url.pathname === `/org/binonly/resolve/${COMMIT}/config.json`) return void res.writeHead(200, { 'content-length': 2 }).end('{}');
      const m = /^\/org\/tiny\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
      const f = m && files.find((x) => x.path === decodeURIComponent(m[2]!));
      if (!f) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': f.body.length, etag: `"${gitBlobId(f.body)}"` }).end(f.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('downloads into the cache, prints the snapshot folder, and encode then loads the model by its id', async () => {
    const cache = join(dir, 'hub-cache');
    const env = { HF_ENDPOINT: process.env['HF_ENDPOINT'], HF_HUB_CACHE: process.env['HF_HUB_CACHE'] };
    process.env['HF_ENDPOINT'] = endpoint;
    process.env['HF_HUB_CACHE'] = cache;
    try {
      const r = await l2e('pull', 'org/tiny');
      expect(r.code).toBe(0);
      const snapshot = join(cache, 'models--org--tiny', 'snapshots', COMMIT);
      expect(r.out).toBe(`${snapshot}\n`);
      expect(r.err).toContain(`${files.length} files (${files.length} downloaded) at ${COMMIT}\n`);
      for (const f of files) expect(readFileSync(join(snapshot, f.path)).equals(f.body), f.path).toBe(true);

      const input = join(dir, 'hub-texts.txt');
      writeFileSync(input, 'apa khabar\ngood morning\n');
      const out = join(dir, 'hub.jsonl');
      const e = await l2e('encode', '--model', 'org/tiny', '--input', input, '--output', out);
      expect(e.code).toBe(0);
      const rows = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => (JSON.parse(l) as { embedding: number[] }).embedding);
      expectRowsClose(rows, await alone(['apa khabar', 'good morning']));
    } finally {
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('a model repo without .safetensors weights pulls with a warning that it cannot be loaded as it is', async () => {
    const env = { HF_ENDPOINT: process.env['HF_ENDPOINT'], HF_HUB_CACHE: process.env['HF_HUB_CACHE'] };
    process.env['HF_ENDPOINT'] = endpoint;
    process.env['HF_HUB_CACHE'] = join(dir, 'hub-cache-binonly');
    try {
      const r = await l2e('pull', 'org/binonly');
      expect(r.code).toBe(0);
      expect(r.err).toContain(
        `1 file (1 downloaded) at ${COMMIT}\n` +
          "warning: the repo has no .safetensors weights: l2e reads a model's weights only from safetensors files " +
          '(convert them, e.g. with transformers: save_pretrained(dir, safe_serialization=True))\n',
      );
    } finally {
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('with HF_HUB_OFFLINE=1, finds the cached snapshot without the network and says so, and what of the model it lacks', async () => {
    const cache = join(dir, 'hub-cache'); // filled by the test above
    const env = { HF_ENDPOINT: process.env['HF_ENDPOINT'], HF_HUB_CACHE: process.env['HF_HUB_CACHE'], HF_HUB_OFFLINE: process.env['HF_HUB_OFFLINE'] };
    process.env['HF_ENDPOINT'] = 'http://127.0.0.1:9'; // nothing listens there
    process.env['HF_HUB_CACHE'] = cache;
    process.env['HF_HUB_OFFLINE'] = '1';
    try {
      const r = await l2e('pull', 'org/tiny');
      expect(r.code).toBe(0);
      expect(r.out).toBe(`${join(cache, 'models--org--tiny', 'snapshots', COMMIT)}\n`);
      expect(r.err).toBe(`${files.length} files (from the cache; HF_HUB_OFFLINE is set, so the Hub was not asked for newer files) at ${COMMIT}\n`);
      const none = await l2e('pull', 'org/absent');
      expect(none.code).toBe(1);
      expect(none.err).toContain(`model repo org/absent (revision main) is not in the cache ${cache}, and HF_HUB_OFFLINE is set, so it was not downloaded`);
      // a cached snapshot without the weights (pulled with config.json alone): said as the cache's gap, not the repo's
      const partial = join(dir, 'hub-cache-binonly'); // filled by the test before
      const snapshot = join(partial, 'models--org--binonly', 'snapshots', COMMIT);
      const bin = await l2e('pull', 'org/binonly', '--cache-dir', partial);
      expect(bin.code).toBe(0);
      expect(bin.err).toBe(
        `1 file (from the cache; HF_HUB_OFFLINE is set, so the Hub was not asked for newer files) at ${COMMIT}\n` +
          `warning: model repo org/binonly: its snapshot in the cache (${snapshot}) lacks model.safetensors, and HF_HUB_OFFLINE is set, ` +
          'so it was not downloaded: a pull without HF_HUB_OFFLINE fetches what the repo has of them\n',
      );
    } finally {
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('l2e combine', () => {
  it('concatenates, shuffles to a permutation, and prints the per-file table', async () => {
    const a = join(dir, 'ca.jsonl');
    const b = join(dir, 'cb.jsonl');
    const line = (q: string): string => JSON.stringify({ query: q, pos: [`${q}+`], neg: [`${q}-`] });
    writeFileSync(a, ['a1', 'a2', 'a3'].map(line).join('\n') + '\n');
    writeFileSync(b, '\n' + ['b1', 'b2'].map(line).join('\r\n') + '\r\n');
    const out = join(dir, 'combined.jsonl');
    const r = await l2e('combine', a, b, '--output', out);
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(['a1', 'a2', 'a3', 'b1', 'b2'].map(line).join('\n') + '\n');
    expect(r.out).toMatch(new RegExp(`${a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+3 rows\\n`));
    expect(r.out).toMatch(/total\s+5 rows → /);
    const shuffled = join(dir, 'shuffled.jsonl');
    expect((await l2e('combine', a, b, '--output', shuffled, '--shuffle', '--seed', '3')).code).toBe(0);
    const got = readFileSync(shuffled, 'utf8').trimEnd().split('\n');
    expect([...got].sort()).toEqual(['a1', 'a2', 'a3', 'b1', 'b2'].map(line).sort());
  });
});

describe('l2e train', () => {
  it('trains, saves a model that encodes, and reports skipped lines at the end of the run', async () => {
    const data = join(dir, 'train.jsonl');
    const good = TEST_ROWS.map((r) => JSON.stringify(r));
    writeFileSync(data, [good[0], '{"query": 1}', good[1], 'not json', good[2], JSON.stringify({ query: 'q', pos: [], neg: ['n'] })].join('\n') + '\n');
    const out = join(dir, 'trained');
    const r = await l2e('train', '--model', modelDir, '--data', data, '--output', out, '--batch-size', '3', '--max-steps', '2',
      '--skip-bad-lines', '--save-steps', '0', '--query-max-len', '16', '--passage-max-len', '16');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/l2e train: 2 steps .*model saved to /);
    expect(r.err.trimEnd().split('\n').pop()).toBe(
      `l2e train: skipped 2 malformed lines (${data}:2,4), 1 row with an empty "pos", 0 with an empty "neg" (in the last epoch read)`,
    );
    const trained = await EmbeddingModel.load(out);
    try {
      const e = await trained.encode(['apa khabar']);
      expect(Math.hypot(...e.row(0))).toBeCloseTo(1, 5);
    } finally {
      trained.dispose();
    }
  });
});
