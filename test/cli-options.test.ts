// Shared CLI options (encode / eval / mine): bad values are usage errors (exit 2, usage synopsis shown) before
// any work; mine's embedding progress moves within a block; a progress bar finishes once.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProgressBar } from '../src/cli/progress.js';
import { formatBytes } from '../src/util/format-bytes.js';
import { embedToStore } from '../src/mine/run.js';
import { Embeddings } from '../src/model/embeddings.js';
import type { EmbeddingSource } from '../src/eval/source.js';
import { l2e } from './helpers/cli.js';

describe('shared encode options', () => {
  afterEach(() => vi.restoreAllMocks());

  it('encode: an unknown --device is a usage error', async () => {
    const r = await l2e('encode', '--model', 'm', '--input', 'in.txt', '--output', 'o.npy', '--device', 'tpu');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--device must be cpu or cuda, got tpu/);
    expect(r.err).toMatch(/Usage: l2e encode/);
  });

  it('eval and mine: --batch-size 0 and both --model and --embeddings are usage errors', async () => {
    const bad = await l2e('eval', '--model', 'm', '--test', 't.jsonl', '--batch-size', '0');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--batch-size must be at least 1, got 0/);
    const both = await l2e('mine', '--model', 'm', '--embeddings', 'e.jsonl', '--input', 'c.txt', '--output', 'o.jsonl',
      '--pos-threshold', '0.4', '--neg-threshold', '0.8');
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/exactly one of --model DIR or --embeddings FILE/);
  });

  it('eval and mine: how a model encodes is refused with --embeddings, and --texts with --model, naming the flags', async () => {
    const withVectors = await l2e('eval', '--embeddings', 'e.npy', '--texts', 't.txt', '--test', 't.jsonl', '--precision', 'bf16', '--device', 'cuda');
    expect(withVectors.code).toBe(2);
    expect(withVectors.err).toContain('--device, --precision: for --model only; --embeddings e.npy holds the vectors already');
    const fp32 = await l2e('mine', '--embeddings', 'e.jsonl', '--input', 'c.txt', '--output', 'o.jsonl', '--pos-threshold', '0.4', '--neg-threshold', '0.8', '--batch-size', '8');
    expect(fp32.code).toBe(2);
    expect(fp32.err).toContain('--batch-size: for --model only; --embeddings e.jsonl holds the vectors already');
    const texts = await l2e('eval', '--model', 'm', '--texts', 't.txt', '--test', 't.jsonl');
    expect(texts.code).toBe(2);
    expect(texts.err).toContain('--texts: names the rows of an --embeddings .npy file; --model m embeds the texts itself');
    const jsonl = await l2e('eval', '--embeddings', 'e.jsonl', '--texts', 't.txt', '--test', 't.jsonl'); // --texts was ignored
    expect([jsonl.code, jsonl.err.split('\n')[0]]).toEqual([2, 'l2e eval: --texts: names the rows of an --embeddings .npy file; e.jsonl is read as JSONL, whose rows hold their texts']);
  });

  it('encode, eval and mine document the same --batch-size / --max-length / --device', async () => {
    const lines: string[][] = [];
    for (const c of ['encode', 'eval', 'mine']) {
      const { out } = await l2e(c, '--help'); // one at a time: l2e() spies on process.stdout
      lines.push(out.split('\n').filter((l) => /^  --(batch-size|max-length|device) /.test(l)).map((l) => l.trim().replace(/\s+/g, ' ')));
    }
    expect(lines[0]).toHaveLength(3);
    expect(lines[1]).toEqual(lines[0]);
    expect(lines[2]).toEqual(lines[0]);
  });
});

describe('progress', () => {
  it('embedToStore reports progress inside a block', async () => {
    const source: EmbeddingSource = {
      embed: async (texts, onProgress) => {
        const e = new Embeddings(texts.length, 2);
        for (let i = 0; i < texts.length; i++) onProgress?.(i + 1, texts.length);
        return e;
      },
      close: () => {},
    };
    const seen: number[] = [];
    const texts = Array.from({ length: 5 }, (_, i) => `t${i}`);
    const out = await embedToStore(texts, source, 3, 1024, (done, total) => {
      expect(total).toBe(5);
      seen.push(done);
    });
    expect(out.rows).toBe(5);
    out.close();
    expect(seen).toContain(1);
    expect(seen).toContain(2);
    expect(seen[seen.length - 1]).toBe(5);
  });

  it('ProgressBar.finish draws once however often it is called', () => {
    let text = '';
    const stream = { isTTY: true, columns: 80, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    const ci = process.env['CI'];
    delete process.env['CI'];
    try {
      const bar = new ProgressBar({ label: 'x', total: 2, stream });
      bar.update(2);
      bar.finish();
      bar.update(2);
      bar.finish();
      expect(text.split('\n')).toHaveLength(2); // one finished line, then nothing
    } finally {
      if (ci !== undefined) process.env['CI'] = ci;
    }
  });

  it('ProgressBar with a format writes the counts and the rate through it (l2e pull: bytes as kB/MB/GB)', () => {
    let text = '';
    const stream = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    vi.useFakeTimers({ toFake: ['Date'], now: 0 });
    try {
      const bar = new ProgressBar({ label: 'model.safetensors', total: 2_400_000_000, stream, plainLines: true, format: (n) => formatBytes(Math.round(n)) });
      vi.setSystemTime(4000);
      bar.update(1_200_000_000);
      expect(text).toBe('model.safetensors 1.20 GB/2.40 GB 300 MB/s ETA 4s \n');
    } finally {
      vi.useRealTimers();
    }
  });

  it('ProgressBar: no rate or ETA until this bar has seen work take time, then measured ones (l2e mine said 0.0/s, ETA 0s with most of it left)', () => {
    let text = '';
    const stream = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    vi.useFakeTimers({ toFake: ['Date'], now: 1000 });
    try {
      const bar = new ProgressBar({ label: 'mine', total: 1715, stream, plainLines: true });
      bar.update(1024); // the first report, in the bar's first millisecond
      vi.setSystemTime(2000);
      bar.update(1715);
      expect(text).toBe('mine 1024/1715 ?/s ETA ? \nmine 1715/1715 1715.0/s ETA 0s \n');
    } finally {
      vi.useRealTimers();
    }
  });
});
