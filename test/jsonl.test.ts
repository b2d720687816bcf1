// The streaming line / JSONL reader: chunk boundaries inside multi-byte characters, CRLF, BOM, a
// last line without '\n', the line-length bound, and errors naming file:line.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { LineError, readJsonl, readLines, readPairRows } from '../src/data/jsonl.js';
import { makeTempDir } from './helpers/tinyModel.js';

const dir = makeTempDir('l2e-jsonl-');
async function collect<T>(gen: AsyncGenerator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

describe('readLines', () => {
  it('counts lines with bytes that are not UTF-8 and warns once at the end, with the first (U+FFFD itself is fine)', async () => {
    const f = join(dir, 'latin1.txt');
    const bad = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1
    writeFileSync(f, Buffer.concat([Buffer.from('ok \ufffd fine\n'), bad, Buffer.from('\nok\n'), bad, Buffer.from('\n'), bad]));
    const warnings: string[] = [];
    const seen: string[] = [];
    for await (const l of readLines(f, { onInvalidUtf8: (m) => warnings.push(m) })) {
      seen.push(l.text);
      expect(warnings).toEqual([]); // at the end, not per line
    }
    expect(seen).toEqual(['ok \ufffd fine', 'caf\ufffd', 'ok', 'caf\ufffd', 'caf\ufffd']);
    expect(warnings).toEqual([`${f}: 3 lines have bytes that are not UTF-8, read as U+FFFD (the first: ${f}:2)`]);

    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await collect(readLines(f));
      expect(err.mock.calls.map((c) => String(c[0]))).toEqual([
        `llama2-embedding: ${f}: 3 lines have bytes that are not UTF-8, read as U+FFFD (the first: ${f}:2)\n`,
      ]);
    } finally {
      err.mockRestore();
    }
    const clean = join(dir, 'clean.txt');
    writeFileSync(clean, 'a \ufffd b\n');
    const none: string[] = [];
    await collect(readLines(clean, { onInvalidUtf8: (m) => none.push(m) }));
    expect(none).toEqual([]);
  });

  it('splits on newlines at the byte level, whatever the chunk size', async () => {
    const f = join(dir, 'multi.txt');
    const lines = ['\ufeffsaya suka 😀 makan', 'épée — 中文', '', 'windows\r', 'last without newline'];
    writeFileSync(f, lines.join('\n'));
    for (const chunkBytes of [1, 2, 3, 7, 1 << 20]) {
      const got = await collect(readLines(f, { chunkBytes }));
      expect(got.map((l) => l.text)).toEqual(['saya suka 😀 makan', 'épée — 中文', '', 'windows', 'last without newline']);
      expect(got.map((l) => l.line)).toEqual([1, 2, 3, 4, 5]);
      expect(got.reduce((s, l) => s + l.bytes, 0)).toBe(Buffer.byteLength(lines.join('\n')));
    }
  });

  it('a file of a BOM alone holds no line, as an empty file; a BOM and a newline hold one empty line', async () => {
    for (const [bytes, lines] of [[[0xef, 0xbb, 0xbf], []], [[], []], [[0xef, 0xbb, 0xbf, 0x0a], ['']], [[0xef, 0xbb, 0xbf, 0x20], [' ']]] as const) {
      const f = join(dir, 'bom-only.txt');
      writeFileSync(f, Buffer.from(bytes));
      for (const chunkBytes of [1, 2, 1 << 20]) expect((await collect(readLines(f, { chunkBytes }))).map((l) => l.text)).toEqual(lines);
    }
  });

  it('bounds the line length and names the line', async () => {
    const f = join(dir, 'long.txt');
    writeFileSync(f, 'short\n' + 'x'.repeat(5000) + '\nafter\n');
    await expect(collect(readLines(f, { maxLineBytes: 1000, chunkBytes: 256 }))).rejects.toThrow(`${f}:2: line longer than 1000 bytes`);
  });

  it('with yieldTooLong, a line over the bound is passed over (said as tooLong, its bytes not kept) and the rest read', async () => {
    const f = join(dir, 'long-skip.txt');
    const text = 'short\n' + 'x'.repeat(5000) + '\nafter\n' + 'y'.repeat(1001) + '\n' + 'z'.repeat(3000);
    writeFileSync(f, text);
    for (const chunkBytes of [7, 256, 4096, 1 << 20]) {
      const got = await collect(readLines(f, { maxLineBytes: 1000, chunkBytes, yieldTooLong: true }));
      expect(got.map((l) => [l.line, l.text, l.tooLong ?? false])).toEqual([
        [1, 'short', false],
        [2, '', true],
        [3, 'after', false],
        [4, '', true],
        [5, '', true],
      ]);
      expect(got.reduce((sum, l) => sum + l.bytes, 0)).toBe(text.length);
    }
  });

  it('reports a missing file', async () => {
    await expect(collect(readLines(join(dir, 'missing.txt')))).rejects.toThrow(/no such file/);
  });

  // a gzipped JSONL failed as "invalid JSON" at line 1, and a gzipped text file was embedded as garbage
  // with a warning about bytes that are not UTF-8
  it('a compressed or UTF-16 file is said as such, with what to do', async () => {
    const text = '{"query": "a", "pos": ["b"], "neg": ["c"]}\n';
    const cases: [string, Buffer, string][] = [
      ['a.jsonl.gz', gzipSync(text), 'gzip-compressed data, not text: decompress it first (e.g. gunzip -k FILE)'],
      ['a.txt.bz2', Buffer.concat([Buffer.from('BZh91AY&SY'), Buffer.alloc(20)]), 'bzip2-compressed data, not text: decompress it first (e.g. bunzip2 -k FILE)'],
      ['a.xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 4]), 'xz-compressed data, not text: decompress it first (e.g. unxz -k FILE)'],
      ['a.zst', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]), 'zstd-compressed data, not text: decompress it first (e.g. unzstd FILE)'],
      ['a.zip', Buffer.from('PK\x03\x04rest', 'latin1'), 'zip-compressed data, not text: decompress it first (e.g. unzip FILE)'],
      ['a16.txt', Buffer.from('\ufeffhello\n', 'utf16le'), 'UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8: convert it first (iconv -f UTF-16 -t UTF-8)'],
    ];
    for (const [name, bytes, why] of cases) {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      await expect(collect(readLines(file))).rejects.toThrow(new LineError(file, 1, why));
    }
    // text that only begins like bzip2's magic is text
    const bz = join(dir, 'bz.txt');
    writeFileSync(bz, 'BZh is a prefix\n');
    expect((await collect(readLines(bz))).map((l) => l.text)).toEqual(['BZh is a prefix']);
  });
});

describe('readJsonl', () => {
  it('yields parsed values with line numbers, skipping blank lines', async () => {
    const f = join(dir, 'ok.jsonl');
    writeFileSync(f, '{"a":1}\n\n  \n{"a":2}\r\n[3]');
    const got = await collect(readJsonl(f, { chunkBytes: 3 }));
    expect(got.map((r) => [r.line, r.value])).toEqual([[1, { a: 1 }], [4, { a: 2 }], [5, [3]]]);
  });

  it('throws a LineError naming file:line for invalid JSON', async () => {
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, '{"a":1}\n{"a":\n');
    const err = await collect(readJsonl(f)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LineError);
    expect((err as LineError).line).toBe(2);
    expect((err as LineError).message).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: invalid JSON`));
  });

  it("the parser's quote of a bad line has its control characters escaped (an ESC reached the terminal raw)", async () => {
    const f = join(dir, 'esc.jsonl');
    writeFileSync(f, '\u001b[31mred\u0007\n');
    const err = (await collect(readJsonl(f)).catch((e: unknown) => e)) as LineError;
    expect(err.message).toContain('"\\u001b[31mred\\u0007" is not valid JSON');
    expect(err.message).not.toMatch(/[\u0000-\u001f]/);
  });

  it('readPairRows validates the row shape', async () => {
    const f = join(dir, 'pairs.jsonl');
    writeFileSync(f, '{"query":"q","pos":["p"],"neg":[],"extra":1}\n{"query":1,"pos":[],"neg":[]}\n');
    await expect(collect(readPairRows(f))).rejects.toThrow(`${f}:2: "query" must be a string`);
    writeFileSync(f, '{"query":"q","pos":["p"]}\n');
    await expect(collect(readPairRows(f))).rejects.toThrow(`${f}:1: missing "neg"`);
    writeFileSync(f, '"just a string"\n');
    await expect(collect(readPairRows(f))).rejects.toThrow(`${f}:1: expected a JSON object`);
  });
});
