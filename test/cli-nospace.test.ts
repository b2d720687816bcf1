// Writes that cannot fit, said before the work or with the place that filled up (audit F5, F6):
// - encode refuses, before any embedding, an output whose disk cannot hold it (.npy: exactly its size;
//   .jsonl: an upper bound) and an existing output in a sticky folder that it may not replace (rename(2)
//   gives EPERM there); both were found only after all the embedding, and the work was lost.
// - mine's vector temp store and combine --shuffle's bucket files on a full disk name the folder and
//   the way out, not Node's bare "ENOSPC: no space left on device, write".
// Real small disks: a tmpfs, mounted when the test runs as root (skipped otherwise, as hub-nospace).
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { outputBytes } from '../src/cli/encode-output.js';
import { readTexts } from '../src/cli/io.js';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { l2eBin, writeTopicCorpus } from './crash/harness.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

const DIM = 64;
const ROWS = 300;

afterEach(() => vi.restoreAllMocks());
afterAll(() => removeTempDirs());

/** A tiny model whose embeddings are DIM wide, and ROWS short texts. */
function setup(): { root: string; model: string; texts: string } {
  const root = makeTempDir();
  const model = writeTinyModel(join(root, 'model'), { hidden: 32, layers: 1, dense: DIM }).dir;
  const texts = join(root, 'texts.txt');
  writeFileSync(texts, Array.from({ length: ROWS }, (_, i) => `text ${i}`).join('\n') + '\n');
  return { root, model, texts };
}

describe('the size encode checks for', () => {
  it('is exact for .npy and never below the real size for .jsonl', async () => {
    const { root, model, texts } = setup();
    const input = await readTexts(texts, { format: 'text' });
    for (const name of ['e.npy', 'e.jsonl']) {
      const out = join(root, name);
      const r = await l2e('encode', '--model', model, '--input', texts, '--output', out);
      expect(r.err).toContain(`encoded ${ROWS} texts (${DIM} dims)`);
      const size = statSync(out).size;
      const bound = outputBytes(name.endsWith('.npy') ? 'npy' : 'jsonl', input, DIM, true);
      if (name.endsWith('.npy')) expect(bound).toBe(size);
      else {
        expect(bound).toBeGreaterThanOrEqual(size);
        expect(bound).toBeLessThan(2 * size); // an estimate, not a wild one
      }
    }
  });

  it('bounds a JSONL row by its fields, its text and 17 characters a value (22 when not normalized)', () => {
    const input = { texts: ['héllo', 'x'], rows: ['{"id": 7, "text": "héllo", "embedding": [1]}', '{"id":8,"body":"x"}'] };
    const line0 = Buffer.byteLength('{"id":7,"text":"héllo","embedding":[]}\n');
    const line1 = Buffer.byteLength('{"id":8,"body":"x","text":"x","embedding":[]}\n');
    expect(outputBytes('jsonl', input, 3, true)).toBe(line0 + line1 + 2 * (3 * 17 + 2));
    expect(outputBytes('jsonl', input, 3, false)).toBe(line0 + line1 + 2 * (3 * 22 + 2));
  });
});

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

describe.skipIf(!canRun)(`writes on a full disk ${canRun ? '' : '(skipped: needs root to mount a tmpfs)'}`, () => {
  const mounts: string[] = [];
  afterAll(() => {
    for (const m of mounts) spawnSync('umount', [m]);
  });
  /** An empty 64 KiB disk. */
  function smallDisk(root: string): string {
    const dir = join(root, 'disk');
    mkdirSync(dir);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]).status).toBe(0);
    mounts.push(dir);
    return dir;
  }

  it('encode to .npy is refused before any embedding, saying what it takes and what is free; the old file is kept', async () => {
    const { root, model, texts } = setup();
    const disk = smallDisk(root);
    const out = join(disk, 'e.npy');
    writeFileSync(out, 'old');
    const encode = vi.spyOn(EmbeddingModel.prototype, 'encode');
    const r = await l2e('encode', '--model', model, '--input', texts, '--output', out, '--overwrite');
    expect(r.code).toBe(1);
    // 128 header bytes + 300 × 64 × 4; free: 64 KiB less the old file's page, 61,440 bytes
    expect(r.err).toBe(
      `l2e encode: error: not enough disk space for --output ${out}: the output (300 embeddings) takes 76.9 kB, ` +
        'but only 61.4 kB is free there; free some space or give another --output\n',
    );
    expect(encode).not.toHaveBeenCalled();
    expect(readdirSync(disk)).toEqual(['e.npy']);
    expect(readFileSync(out, 'utf8')).toBe('old');
  });

  it('encode to .jsonl is refused before any embedding with an upper bound of its size', async () => {
    const { root, model, texts } = setup();
    const disk = smallDisk(root);
    const out = join(disk, 'e.jsonl');
    const encode = vi.spyOn(EmbeddingModel.prototype, 'encode');
    const r = await l2e('encode', '--model', model, '--input', texts, '--output', out);
    // each line: {"text":"text i","embedding":[]} and a newline (32 bytes + the digits of i), then 64 values of
    // at most 17 characters and 63 commas: 10,390 + 300 × 1,151 = 355,690 bytes
    expect(r.err).toBe(
      `l2e encode: error: not enough disk space for --output ${out}: the output (300 embeddings) takes up to 356 kB, ` +
        'but only 65.5 kB is free there; free some space or give another --output\n',
    );
    expect(encode).not.toHaveBeenCalled();
    expect(readdirSync(disk)).toEqual([]);
  });

  it("mine's vector store on a full disk names TMPDIR and --memory-mb; the store is removed", async () => {
    const root = makeTempDir();
    const disk = smallDisk(root);
    writeTopicCorpus(root, 3000, DIM, 20, 1); // 3000 × 64 × 4 = 768,000 bytes: over half of 1 MiB, spilled to a file
    const before = process.env['TMPDIR'];
    process.env['TMPDIR'] = disk;
    let r: Awaited<ReturnType<typeof l2e>>;
    try {
      r = await l2e('mine', '--embeddings', join(root, 'vectors.npy'), '--texts', join(root, 'texts.txt'), '--input', join(root, 'texts.txt'),
        '--output', join(root, 'pairs.jsonl'), '--pos-threshold', '0.6', '--neg-threshold', '0.9', '--metric', 'cosine', '--memory-mb', '1');
    } finally {
      if (before === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = before;
    }
    expect(r.code).toBe(1);
    expect(r.err.slice(r.err.indexOf('l2e mine: error:'))).toBe(
      `l2e mine: error: could not write the corpus vectors to a temp file in ${disk} (TMPDIR): ENOSPC: no space left on device, write; ` +
        'they take 768 kB (more than half of --memory-mb): set TMPDIR to a folder with room for them, or give --memory-mb 2 or more to keep them in memory\n',
    );
    expect(readdirSync(disk)).toEqual([]);
    expect(readdirSync(root).filter((n) => n.includes('pairs'))).toEqual([]);
  });

  it("combine --shuffle's buckets on a full disk name the folder and --memory-mb; the old output is kept", async () => {
    const root = makeTempDir();
    const disk = smallDisk(root);
    const input = join(root, 'train.jsonl');
    const row = (i: number): string => JSON.stringify({ query: `question ${i} ${'q'.repeat(40)}`, pos: [`answer ${i} ${'p'.repeat(40)}`], neg: [`other ${i}`] });
    writeFileSync(input, Array.from({ length: 5000 }, (_, i) => row(i)).join('\n') + '\n');
    const bytes = statSync(input).size; // 752 kB: over a third of 1 MiB, so shuffled through buckets on disk
    expect(bytes).toBe(751_670);
    const out = join(disk, 'c.jsonl');
    writeFileSync(out, 'old\n');
    const r = await l2e('combine', input, '--output', out, '--shuffle', '--memory-mb', '1', '--overwrite');
    expect(r.code).toBe(1);
    expect(r.err.slice(r.err.indexOf('l2e combine: error:'))).toBe(
      `l2e combine: error: could not write the shuffle's bucket files in ${disk} (beside the output): ENOSPC: no space left on device, write; ` +
        'they take about 752 kB: free some space there, or give --memory-mb 3 or more to shuffle in memory\n',
    );
    expect(readdirSync(disk)).toEqual(['c.jsonl']);
    expect(readFileSync(out, 'utf8')).toBe('old\n');
  });
});

const hasSetpriv = canRun && spawnSync('setpriv', ['--version']).status === 0;

describe.skipIf(!hasSetpriv)(`encode over another user's file in a sticky folder ${hasSetpriv ? '' : '(skipped: needs root and setpriv)'}`, () => {
  /** A sticky folder (mode 1777, as /tmp) of another user, holding a file everyone may write, of a third. */
  function stickyTarget(root: string): string {
    const sticky = join(root, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    chownSync(sticky, 65533, 65533);
    const out = join(sticky, 'out.jsonl');
    writeFileSync(out, 'old\n');
    chmodSync(out, 0o666);
    chownSync(out, 65534, 65534);
    return out;
  }

  it('is refused before any work when the process may not replace it (no CAP_FOWNER)', () => {
    const { root, model, texts } = setup();
    const out = stickyTarget(root);
    // root without CAP_FOWNER: rename(2) over the file gives EPERM, as for an ordinary user
    const r = spawnSync('setpriv', ['--bounding-set=-fowner', process.execPath, l2eBin, 'encode', '--model', model, '--input', texts, '--output', out, '--overwrite'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `l2e encode: error: --output ${out} cannot be replaced: ${join(root, 'sticky')} is a sticky folder (as /tmp is), ` +
        'where only the file\'s owner (uid 65534) or the folder\'s owner (uid 65533) may replace it; give another --output\n',
    );
    expect(readdirSync(join(root, 'sticky'))).toEqual(['out.jsonl']);
    expect(readFileSync(out, 'utf8')).toBe('old\n');
  });

  it('is replaced by a process that may (CAP_FOWNER)', async () => {
    const { root, model, texts } = setup();
    const out = stickyTarget(root);
    const r = await l2e('encode', '--model', model, '--input', texts, '--output', out, '--overwrite');
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8').split('\n')).toHaveLength(ROWS + 1);
  });
});
