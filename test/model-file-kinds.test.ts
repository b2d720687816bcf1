// Model files that are not regular files (src/util/regular-file.ts): a FIFO in a model folder used to
// block the load in a synchronous open that Ctrl-C could not end, and a link to /dev/zero was read
// until memory ran out (an abort). Each is refused at once, naming the file and what it is. Each load
// runs in a child (on dist/) with a time limit, so that a regression fails the test instead of hanging it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir, repoRoot, writeTinyModel } from './helpers/tinyModel.js';

const canFifo = process.platform !== 'win32' && spawnSync('mkfifo', ['--version']).status === 0;
const distIndex = join(repoRoot, 'dist', 'index.js');
const hasDist = existsSync(distIndex);

/** EmbeddingModel.load(dir) in a child (20 s at most): the error's message, or 'loaded'. */
function loadInChild(dir: string): { message: string; signal: NodeJS.Signals | null } {
  const script = `import(${JSON.stringify(distIndex)}).then((m) => m.EmbeddingModel.load(process.argv[1])).then(() => console.log('loaded'), (e) => console.log(e.message))`;
  const r = spawnSync(process.execPath, ['--input-type', 'module', '-e', script, dir], { encoding: 'utf8', timeout: 20_000 });
  return { message: r.stdout.trim(), signal: r.signal };
}

describe.skipIf(!canFifo || !hasDist)(`model files that are not regular files ${hasDist ? '' : '(skipped: dist/ not built; npm run build:ts)'}`, () => {
  it.each([
    ['config.json', 'a pipe'],
    ['tokenizer.json', 'a pipe'],
    ['model.safetensors', 'a pipe'],
    ['config.json', 'a character device'],
    ['tokenizer.json', 'a character device'],
    ['model.safetensors', 'a character device'],
  ])('%s as %s is refused at once, named', (name, what) => {
    const dir = makeTempDir();
    writeTinyModel(dir, { seed: 3 });
    const file = join(dir, name);
    rmSync(file);
    if (what === 'a pipe') expect(spawnSync('mkfifo', [file]).status).toBe(0);
    else symlinkSync('/dev/zero', file);
    const r = loadInChild(dir);
    expect(r.signal).toBeNull(); // not killed at the time limit: no hang
    const said = name === 'model.safetensors' ? `${file}: cannot open safetensors file (it is ${what}, not a regular file)` : `${file}: it is ${what}, not a regular file`;
    expect(r.message).toBe(said);
  });

  it('a folder in the place of tokenizer.json is still said to be a folder', () => {
    const dir = makeTempDir();
    writeTinyModel(dir, { seed: 3 });
    rmSync(join(dir, 'tokenizer.json'));
    mkdirSync(join(dir, 'tokenizer.json'));
    expect(loadInChild(dir).message).toBe(`${join(dir, 'tokenizer.json')}: it is a folder, not a file`);
  });
});
