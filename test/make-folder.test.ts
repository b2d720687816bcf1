// makeFolder (src/util/folder.ts): mkdir -p level by level, so a failure says what is wrong at the level
// at fault (Node's recursive mkdir says ENOENT for a read-only file system or a file in the way), and
// saveModel says so with its folder.
import { existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { saveModel } from '../src/train/checkpoint.js';
import { makeFolder } from '../src/util/folder.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

describe('makeFolder', () => {
  it('makes every missing level, and is content when the folder is there', () => {
    const dir = makeTempDir();
    makeFolder(join(dir, 'a', 'b', 'c'));
    expect(statSync(join(dir, 'a', 'b', 'c')).isDirectory()).toBe(true);
    makeFolder(join(dir, 'a', 'b', 'c'));
    makeFolder(dir);
  });

  it('names a file in the way, or says the target is a file or not a folder', () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'f'), 'x');
    expect(() => makeFolder(join(dir, 'f'))).toThrow(/^it is a file, not a folder$/);
    expect(() => makeFolder(join(dir, 'f', 'sub', 'deeper'))).toThrow(new RegExp(`^${join(dir, 'f')}: it is a file, not a folder$`));
    expect(existsSync(join(dir, 'f', 'sub'))).toBe(false);
    expect(() => makeFolder('/dev/null')).toThrow(/^it is not a folder$/);
  });

  // mkdir on a link to nothing said "EEXIST: file already exists" (train --output dlink)
  it('a link to a folder that does not exist is said as such, at whatever level', () => {
    const dir = makeTempDir();
    symlinkSync('nowhere', join(dir, 'dlink'));
    expect(() => makeFolder(join(dir, 'dlink'))).toThrow(new Error('it is a link to nowhere, which does not exist (make that folder, or give another)'));
    expect(() => makeFolder(join(dir, 'dlink', 'sub'))).toThrow(new Error(`${join(dir, 'dlink')}: it is a link to nowhere, which does not exist (make that folder, or give another)`));
    mkdirSync(join(dir, 'nowhere'));
    makeFolder(join(dir, 'dlink', 'sub'));
    expect(statSync(join(dir, 'nowhere', 'sub')).isDirectory()).toBe(true);
  });

  it('saveModel says which folder it could not make, and why', async () => {
    const src = makeTempDir();
    writeTinyModel(src, { seed: 2 });
    const model = await EmbeddingModel.load(src);
    try {
      const file = join(makeTempDir(), 'notes.txt');
      writeFileSync(file, 'mine');
      expect(() => saveModel(model, join(file, 'model'))).toThrow(`saveModel: could not create the folder ${join(file, 'model')}: ${file}: it is a file, not a folder`);
      expect(() => saveModel(model, '/dev/null')).toThrow('saveModel: could not create the folder /dev/null: it is not a folder');
    } finally {
      model.dispose();
    }
  });
});
