// An output written without overwrite (PublishOptions.replace false) never replaces a file: one that
// appeared at the target after the command checked it (checkOutput, before its work) is kept, and the
// output goes to <target>.new (then .new-2, ...), which the error names. link(2) makes the check and the
// publish one step; where the filesystem makes no hard links (mocked here: link fails with EPERM) a
// check comes just before the rename. Each case runs both ways, for both writers.
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { makeTempDir } from './helpers/tinyModel.js';

const fsMode = vi.hoisted(() => ({ noHardLinks: false }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    linkSync: (...args: Parameters<typeof fs.linkSync>): void => {
      if (fsMode.noHardLinks) throw Object.assign(new Error(`EPERM: operation not permitted, link '${String(args[0])}'`), { code: 'EPERM' });
      fs.linkSync(...args);
    },
  };
});
// the setup file loaded util/atomic.ts with the real node:fs already: load it again, with the mock
vi.resetModules();
const { AtomicWriter, OutputMovedError, writeFileAtomic } = await import('../src/util/atomic.js');
const { openOutput, writeOutput } = await import('../src/util/output.js');

/** Writes `text` to `target` without replacing; `meanwhile` runs after the check a command makes, before the publish. */
type Writer = (target: string, text: string, meanwhile: () => void) => Promise<void>;
const writers: [string, Writer][] = [
  [
    'writeFileAtomic',
    async (target, text, meanwhile) => {
      meanwhile(); // the one-shot write has no earlier step: what appears before it is what it finds
      writeFileAtomic(target, text, { replace: false });
    },
  ],
  [
    'AtomicWriter',
    async (target, text, meanwhile) => {
      const w = new AtomicWriter(target, { replace: false });
      await w.write(text.slice(0, 2));
      meanwhile();
      await w.write(text.slice(2));
      await w.commit();
    },
  ],
];

const cases = writers.flatMap(([name, write]) => [false, true].map((noLinks) => [`${name}${noLinks ? ', no hard links' : ''}`, write, noLinks] as const));

describe.each(cases)('replace: false, %s', (_name, write, noLinks) => {
  const run = async (target: string, text: string, meanwhile: () => void): Promise<unknown> => {
    fsMode.noHardLinks = noLinks;
    try {
      await write(target, text, meanwhile);
      return undefined;
    } catch (err) {
      return err;
    } finally {
      fsMode.noHardLinks = false;
    }
  };

  it('a file that appeared at the target is kept; the output is in <target>.new, which the error names', async () => {
    const dir = makeTempDir();
    const target = join(dir, 'out.jsonl');
    const err = await run(target, 'ours\n', () => writeFileSync(target, 'theirs\n'));
    expect(err).toBeInstanceOf(OutputMovedError);
    expect((err as Error).message).toBe(`could not write ${target}: a file of that name appeared while this ran and was kept; the output is in ${target}.new`);
    expect((err as InstanceType<typeof OutputMovedError>).path).toBe(`${target}.new`);
    expect(readFileSync(target, 'utf8')).toBe('theirs\n');
    expect(readFileSync(`${target}.new`, 'utf8')).toBe('ours\n');
    expect(readdirSync(dir).sort()).toEqual(['out.jsonl', 'out.jsonl.new']); // no temp file left
  });

  it('with <target>.new taken too, the output goes to .new-2 and both are kept', async () => {
    const dir = makeTempDir();
    const target = join(dir, 'out.npy');
    writeFileSync(`${target}.new`, 'an earlier .new\n');
    const err = await run(target, 'ours\n', () => writeFileSync(target, 'theirs\n'));
    expect((err as Error).message).toBe(`could not write ${target}: a file of that name appeared while this ran and was kept; the output is in ${target}.new-2`);
    expect(readFileSync(target, 'utf8')).toBe('theirs\n');
    expect(readFileSync(`${target}.new`, 'utf8')).toBe('an earlier .new\n');
    expect(readFileSync(`${target}.new-2`, 'utf8')).toBe('ours\n');
    expect(readdirSync(dir).sort()).toEqual(['out.npy', 'out.npy.new', 'out.npy.new-2']);
  });

  it('with nothing at the target the output is the target itself', async () => {
    const dir = makeTempDir();
    const target = join(dir, 'out.jsonl');
    expect(await run(target, 'ours\n', () => {})).toBeUndefined();
    expect(readFileSync(target, 'utf8')).toBe('ours\n');
    expect(readdirSync(dir)).toEqual(['out.jsonl']);
  });

  it('a dangling link stays a link: the file it names, appeared meanwhile, is kept, and the output goes beside that file', async () => {
    const dir = makeTempDir();
    const link = join(dir, 'link.jsonl');
    symlinkSync('real.jsonl', link);
    const err = await run(link, 'ours\n', () => writeFileSync(join(dir, 'real.jsonl'), 'theirs\n'));
    expect((err as Error).message).toBe(`could not write ${link}: a file of that name appeared while this ran and was kept; the output is in ${join(dir, 'real.jsonl.new')}`);
    expect(readFileSync(link, 'utf8')).toBe('theirs\n');
    expect(readFileSync(join(dir, 'real.jsonl.new'), 'utf8')).toBe('ours\n');
    expect(readdirSync(dir).sort()).toEqual(['link.jsonl', 'real.jsonl', 'real.jsonl.new']);
  });
});

describe("the commands' output functions pass replace through", () => {
  it.each([
    ['writeOutput', (target: string) => writeOutput(target, 'ours\n', { replace: false })],
    [
      'openOutput',
      async (target: string) => {
        const w = openOutput(target, { replace: false });
        await w.write('ours\n');
        await w.commit();
      },
    ],
  ])('%s', async (_name, write) => {
    const dir = makeTempDir();
    const target = join(dir, 'out.json');
    writeFileSync(target, 'theirs\n');
    await expect(write(target)).rejects.toThrow(`could not write ${target}: a file of that name appeared while this ran and was kept; the output is in ${target}.new`);
    expect(readFileSync(target, 'utf8')).toBe('theirs\n');
    expect(readFileSync(`${target}.new`, 'utf8')).toBe('ours\n');
  });
});

describe('replace (the default) still replaces', () => {
  it.each([false, true])('no hard links: %s', (noLinks) => {
    const dir = makeTempDir();
    const target = join(dir, 'out.txt');
    writeFileSync(target, 'old');
    fsMode.noHardLinks = noLinks;
    try {
      writeFileAtomic(target, 'new');
    } finally {
      fsMode.noHardLinks = false;
    }
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(existsSync(`${target}.new`)).toBe(false);
  });
});
