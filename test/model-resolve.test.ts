// What a model argument resolves to, and what the errors say: a typo'd relative folder (which looks
// like a Hub id) names both readings, HF_HUB_OFFLINE stops downloads, a folder holding the model in a
// subfolder points there; --max-length beyond the model's positions is warned about; a long batch
// shows a heartbeat; the build command for CUDA fits where the package is.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hubOffline } from '../src/hub/cache.js';
import { resolveModel } from '../src/hub/resolve.js';
import { cudaMissingMessage, EmbeddingModel } from '../src/model/embedding-model.js';
import { Embeddings } from '../src/model/embeddings.js';
import { buildCommand, nativeAddon } from '../src/native.js';
import { encodeWithHeartbeat } from '../src/cli/encode.js';
import { ProgressBar } from '../src/cli/progress.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';
import { hasTinyMha, skipNote } from './helpers/fixture.js';

const cwd = process.cwd();
const offline = process.env['HF_HUB_OFFLINE'];
afterEach(() => {
  process.chdir(cwd);
  if (offline === undefined) delete process.env['HF_HUB_OFFLINE'];
  else process.env['HF_HUB_OFFLINE'] = offline;
});

describe('resolveModel errors', () => {
  let root = '';
  let cache = '';
  beforeAll(() => {
    root = makeTempDir();
    cache = join(root, 'cache');
    mkdirSync(join(root, 'l2e-demo', 'model'), { recursive: true });
    writeTinyModel(join(root, 'l2e-demo', 'model'), { tokenizer: false });
  });

  it('a typo in a relative folder names the folder and the Hub id tried, without network under HF_HUB_OFFLINE=1', async () => {
    process.chdir(root);
    process.env['HF_HUB_OFFLINE'] = '1';
    await expect(resolveModel('l2e-demo/modl', { cacheDir: cache })).rejects.toThrow(
      `model folder not found: ${join(root, 'l2e-demo', 'modl')} (l2e-demo/ is a local folder: is the rest of the name misspelt?); ` +
        `tried "l2e-demo/modl" as a Hugging Face id: model repo l2e-demo/modl is not in the cache ${cache}, and HF_HUB_OFFLINE is set, so it was not downloaded`,
    );
  });

  it('a name written as a path (./, ../, /) that does not exist is a missing folder, never tried on the Hub', async () => {
    process.chdir(root);
    delete process.env['HF_HUB_OFFLINE'];
    const hub = { cacheDir: cache, endpoint: 'http://127.0.0.1:9', retry: { attempts: 1 } }; // nothing listens there
    const names = [['./nope-folder', join(root, 'nope-folder')], ['../nope-folder', join(root, '..', 'nope-folder')], ['/nope/folder', '/nope/folder']];
    for (const [name, folder] of names as [string, string][]) {
      const err = await resolveModel(name, hub).catch((e: Error) => e);
      expect(String(err)).toBe(`Error: model folder not found: ${folder}`);
    }
    const load = await EmbeddingModel.load('./nope-folder', { cacheDir: cache }).catch((e: Error) => e);
    expect(String(load)).toBe(`Error: model folder not found: ${join(root, 'nope-folder')}`);
  });

  it('online, a name that is no folder here says the Hub\'s reason first, then the folder it is not', async () => {
    process.chdir(root);
    delete process.env['HF_HUB_OFFLINE'];
    const err = await resolveModel('nosuch/model', { cacheDir: cache, endpoint: 'http://127.0.0.1:9', retry: { attempts: 1 } }).catch((e: Error) => e);
    expect(String(err)).toBe(
      'Error: model repo nosuch/model (revision main): failed after 1 attempt (could not reach 127.0.0.1:9 (connect ECONNREFUSED 127.0.0.1:9); ' +
        'check the network connection or HF_ENDPOINT); the Hub may be down, try again later ' +
        `(nor is there a model folder ${join(root, 'nosuch', 'model')})`,
    );
  });

  it('offline, a ref that names a snapshot no longer in the cache is said as such', async () => {
    process.chdir(root);
    process.env['HF_HUB_OFFLINE'] = '1';
    const refs = join(cache, 'models--org--gone', 'refs');
    mkdirSync(refs, { recursive: true });
    writeFileSync(join(refs, 'main'), `${'a'.repeat(40)}\n`);
    await expect(resolveModel('org/gone', { cacheDir: cache })).rejects.toThrow(
      `model repo org/gone is not in the cache: ${join(refs, 'main')} names the snapshot ${'a'.repeat(40)}, which is not there, ` +
        `and HF_HUB_OFFLINE is set, so it was not downloaded (nor is there a model folder ${join(root, 'org', 'gone')})`,
    );
    delete process.env['HF_HUB_OFFLINE'];
  });

  it('a folder whose model is in a subfolder points there', async () => {
    process.chdir(root);
    await expect(resolveModel('l2e-demo/')).rejects.toThrow(
      `${join(root, 'l2e-demo')} holds no config.json; the model is in a subfolder: use l2e-demo/model/`,
    );
    expect(await resolveModel('l2e-demo/model/')).toBe(join(root, 'l2e-demo', 'model'));
  });

  it('HF_HUB_OFFLINE is read as huggingface_hub reads it', () => {
    expect(hubOffline({ HF_HUB_OFFLINE: '1' })).toBe(true);
    expect(hubOffline({ HF_HUB_OFFLINE: 'TRUE' })).toBe(true);
    expect(hubOffline({ HF_HUB_OFFLINE: '0' })).toBe(false);
    expect(hubOffline({})).toBe(false);
  });
});

describe('build commands for the native addon', () => {
  it('a checkout gets the npm scripts; an installed package gets commands that work without dev tools', () => {
    expect(buildCommand('/home/u/llama2-embedding', true)).toBe('`L2E_CUDA=1 npm run build:native` (needs nvcc and cmake)');
    expect(buildCommand('/app/node_modules/llama2-embedding', true)).toBe(
      '`cd /app/node_modules/llama2-embedding && L2E_CUDA=1 npx --yes cmake-js compile --out build` (needs nvcc and cmake)',
    );
    expect(buildCommand('/app/node_modules/llama2-embedding', false)).toBe(
      '`npm rebuild llama2-embedding` in your project (with npm 12, after `npm install-scripts approve llama2-embedding`)',
    );
    expect(cudaMissingMessage('/app/node_modules/llama2-embedding')).not.toContain('npm run build:native');
  });

  const cuda = (nativeAddon<{ cudaStatus(): { compiled: boolean } }>()).cudaStatus();
  it.skipIf(cuda.compiled || !hasTinyMha)('device cuda with an addon built without CUDA says how to build it here', async () => {
    const dir = writeTinyModel(makeTempDir()).dir;
    await expect(EmbeddingModel.load(dir, { device: 'cuda' })).rejects.toThrow(
      "device 'cuda' is not available: this build of llama2-embedding has no CUDA backend; build it with `L2E_CUDA=1 npm run build:native` (needs nvcc and cmake)",
    );
  });
});

describe.skipIf(!hasTinyMha)(`max length and long texts ${hasTinyMha ? '' : skipNote('the shared tokenizer')}`, () => {
  it('warns once when maxLength or a text goes beyond max_position_embeddings', async () => {
    const notices: string[] = [];
    const dir = writeTinyModel(makeTempDir(), { configExtra: { max_position_embeddings: 16 } }).dir;
    const m = await EmbeddingModel.load(dir, { onNotice: (s) => notices.push(s) });
    await m.encode(['pendek'], { maxLength: 16 });
    expect(notices).toEqual([]);
    await m.encode(['pendek'], { maxLength: 64 });
    expect(notices).toEqual([
      "max length 64 is above the model's max_position_embeddings 16; positions beyond 16 were not trained and " +
        'embeddings of longer texts may be poor (truncate with --max-length 16 / maxLength: 16)',
    ]);
    const m2 = await EmbeddingModel.load(dir, { onNotice: (s) => notices.push(s) });
    await m2.encode(['kata '.repeat(40), 'pendek']);
    expect(notices[1]).toBe(
      '1 of 2 texts are longer than 16 tokens; positions beyond 16 were not trained and embeddings of longer texts may be poor (truncate with --max-length 16 / maxLength: 16)',
    );
    await m2.encode(['kata '.repeat(40)]);
    expect(notices).toHaveLength(2); // once per model
    m.dispose();
    m2.dispose();
  });

  it('a batch that runs long is reported while it runs, with its size', async () => {
    const lines: string[] = [];
    const slow = {
      encodeParts: async function* (texts: string[], o: { onBatch?: (b: import('../src/model/embedding-model.js').BatchInfo) => void; onProgress?: (d: number, t: number) => void }) {
        o.onBatch?.({ index: 0, batches: 1, texts: 1, tokens: 8192, done: 0, total: 1 });
        await new Promise((r) => setTimeout(r, 120));
        o.onProgress?.(1, 1);
        yield { start: 0, embeddings: new Embeddings(texts.length, 2) };
      },
    };
    const bar = new ProgressBar({ label: 'encode', total: 1, stream: { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream });
    await encodeWithHeartbeat(slow, ['x'], {}, bar, async () => {}, { intervalMs: 25, drawn: false, write: (l) => lines.push(l) });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatch(/^encode: 0\/1 texts done, batch 1\/1 \(1 text, 8192 tokens\) running \d+s\n$/);
    const after = lines.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(lines).toHaveLength(after); // the timer stops with the encode
  });
});
