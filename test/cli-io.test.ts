// CLI inputs and outputs: formats by file name (--format to force), JSONL fields carried through,
// unknown output extensions refused, float32 text, and `-` for stdin / stdout with nothing but the
// data on stdout.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../src/cli/main.js';
import { embeddingLine, embeddingOutputFormat, inputFormat, readTexts, writeEmbeddings } from '../src/cli/io.js';
import { openOutput } from '../src/util/output.js';
import { Embeddings } from '../src/model/embeddings.js';
import { readTextsFile } from '../src/eval/vectors.js';
import { float32ArrayJson, float32Text } from '../src/util/float32-text.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';
import { hasTinyMha, skipNote } from './helpers/fixture.js';

/** Runs `l2e args` in process with `stdin` as standard input; stdout and stderr captured. */
async function l2e(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const capture = (append: (s: string) => void) => (s: string | Uint8Array, ...rest: unknown[]): boolean => {
    append(typeof s === 'string' ? s : Buffer.from(s).toString('utf8'));
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    cb?.();
    return true;
  };
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(capture((s) => (out += s)) as typeof process.stdout.write);
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(capture((s) => (err += s)) as typeof process.stderr.write);
  const i = stdin === undefined ? undefined : vi.spyOn(process, 'stdin', 'get').mockReturnValue(Readable.from([Buffer.from(stdin)]) as typeof process.stdin);
  try {
    return { code: await main(args), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
    i?.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('float32 text', () => {
  it('is the shortest decimal that reads back as the same float32', () => {
    expect(float32Text(0.1)).toBe('0.1'); // float64 text of fround(0.1) is 0.10000000149011612
    expect(String(Math.fround(0.1))).toBe('0.10000000149011612');
    expect(float32Text(-0)).toBe('0');
    expect(float32Text(1e-45)).toBe('1e-45'); // the smallest subnormal
    expect(float32Text(3.4028234663852886e38)).toBe('3.4028235e+38');
    expect(() => float32Text(NaN)).toThrow('float32Text: NaN is not a finite number');
    // random values: round trip exact, and one digit fewer never does
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 2 ** ((seed % 160) - 80); // both the fast and the exact path
    for (let n = 0; n < 20000; n++) {
      const v = Math.fround(rand());
      const s = float32Text(v);
      expect(Math.fround(Number(s))).toBe(v);
      const digits = Number(s).toExponential().split('e')[0]!.replace(/[-.]/g, '').length;
      if (digits > 1) expect(Math.fround(Number(v.toPrecision(digits - 1)))).not.toBe(v);
    }
  });

  it('a JSONL embedding line is at most half the size of float64 text', () => {
    const row = new Float32Array(64).map((_, i) => Math.fround(Math.sin(i + 1) / 8));
    const f32 = float32ArrayJson(row);
    const f64 = JSON.stringify(Array.from(row));
    expect(JSON.parse(f32).map(Math.fround)).toEqual(Array.from(row));
    expect(f32.length).toBeLessThan(f64.length / 1.5);
  });
});

describe('input and output formats', () => {
  it('input format comes from the name, --format forces it, and other names are refused', () => {
    expect(inputFormat('a.txt')).toBe('text');
    expect(inputFormat('a.JSONL')).toBe('jsonl');
    expect(inputFormat('a.txt', 'jsonl')).toBe('jsonl');
    expect(() => inputFormat('a.csv')).toThrow(
      'cannot tell the format of a.csv from its name: use .txt (one text per line) or .jsonl, or give --format text|jsonl',
    );
    expect(() => inputFormat('-')).toThrow('reading texts from stdin (-): give --format text or --format jsonl');
    expect(() => inputFormat('a.txt', 'csv')).toThrow('--format must be text or jsonl, got csv');
  });

  it('a .txt file whose lines start with { is read as text; JSONL keeps its rows', async () => {
    const dir = makeTempDir();
    const txt = join(dir, 'notes.txt');
    writeFileSync(txt, '{not json} but a text\nkedua\n\n');
    // every line of a .txt is a text, a blank one too (row i = line i)
    expect(await readTexts(txt, { format: 'text' })).toEqual({ texts: ['{not json} but a text', 'kedua', ''], rows: undefined, source: txt, lines: [1, 2, 3] });
    const jl = join(dir, 'rows.jsonl');
    writeFileSync(jl, '{"id": 7, "text": "satu"}\n{"id": "b", "text": "dua", "lang": "ms"}\n');
    expect(await readTexts(jl, { format: 'jsonl' })).toEqual({
      texts: ['satu', 'dua'],
      rows: ['{"id": 7, "text": "satu"}', '{"id": "b", "text": "dua", "lang": "ms"}'],
      source: jl,
      lines: [1, 2],
    });
    const why = ((): string => {
      try {
        JSON.parse('{not json} but a text');
      } catch (e) {
        return (e as Error).message; // its wording differs between Node versions
      }
      return '';
    })();
    // the name already says text: what to change is the forced format
    await expect(readTexts(txt, { format: 'jsonl' })).rejects.toThrow(
      `${txt}:1: not valid JSON (${why}); for plain texts drop --format jsonl (the name says plain text) or use --format text`,
    );
    const dat = join(dir, 'notes.dat');
    writeFileSync(dat, '{not json} but a text\n');
    await expect(readTexts(dat, { format: 'jsonl' })).rejects.toThrow(`${dat}:1: not valid JSON (${why}); for plain texts use a .txt name or --format text`);
  });

  it('eval --texts: a .txt file whose first line starts with [ is lines, a .json file an array', () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 't.txt'), '[catatan] satu\ndua\n');
    expect(readTextsFile(join(dir, 't.txt'))).toEqual(['[catatan] satu', 'dua']);
    writeFileSync(join(dir, 't.json'), '["a", "b"]');
    expect(readTextsFile(join(dir, 't.json'))).toEqual(['a', 'b']);
  });

  it('output extensions other than .jsonl / .npy / - are refused', () => {
    expect(embeddingOutputFormat('v.npy')).toBe('npy');
    expect(embeddingOutputFormat('-')).toBe('jsonl');
    expect(() => embeddingOutputFormat('x.csv')).toThrow(
      '--output x.csv: unknown extension .csv; use .jsonl (one {"text", "embedding"} per line), .npy (float32 matrix) or - (JSONL on stdout)',
    );
    expect(() => embeddingOutputFormat('vectors')).toThrow('--output vectors: unknown extension; use .jsonl');
  });

  it('an embedding line carries the input fields, replacing an old "embedding"', () => {
    const v = Float32Array.of(0.1, -0.25);
    expect(embeddingLine('satu', '{"id": 7, "text": "satu", "embedding": [9]}', v)).toBe('{"id":7,"text":"satu","embedding":[0.1,-0.25]}\n');
    expect(embeddingLine('satu', undefined, v)).toBe('{"text":"satu","embedding":[0.1,-0.25]}\n');
    expect(embeddingLine('dua', '{"id":"x","body":"dua"}', v)).toBe('{"id":"x","body":"dua","text":"dua","embedding":[0.1,-0.25]}\n');
  });

  it('an embedding line carries the input fields exactly as written: big ints, 1.0, 1e400, escapes, nested objects', () => {
    const v = Float32Array.of(0.5);
    const row = '  {"id": 12345678901234567891, "text": "h\\u00e9llo \\"q\\" ,}", "score": 1.0, "x": 1e400, "n": {"embedding": [1, 2.50], "s": "a b"}, "e": [ ] }  ';
    expect(embeddingLine('hello', row, v)).toBe(
      '{"id":12345678901234567891,"text":"h\\u00e9llo \\"q\\" ,}","score":1.0,"x":1e400,"n":{"embedding":[1,2.50],"s":"a b"},"e":[],"embedding":[0.5]}\n',
    );
    // every top-level "embedding" goes (a repeated key too, however its name is escaped); a nested one stays
    expect(embeddingLine('a', '{"embedding": 1, "text": "a", "embe\\u0064ding": {"x": 1}}', v)).toBe('{"text":"a","embedding":[0.5]}\n');
    expect(embeddingLine('a', '{}', v)).toBe('{"text":"a","embedding":[0.5]}\n');
  });

  it('an embedding with NaN or infinity is refused before anything is written, naming its input line', async () => {
    const dir = makeTempDir();
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, '{"text": "a"}\n\n{"text": "b"}\n');
    const texts = await readTexts(input, { format: 'jsonl' });
    const emb = new Embeddings(2, 3, Float32Array.of(0.5, 1, 2, 0.5, -Infinity, NaN));
    for (const out of [join(dir, 'o.npy'), join(dir, 'o.jsonl')]) {
      await expect(writeEmbeddings(openOutput(out, { replace: false }), out, embeddingOutputFormat(out), texts, emb)).rejects.toThrow(
        `${input}:3: its embedding has a non-finite value (-Inf at index 1); nothing was written to ${out}`,
      );
      expect(existsSync(out)).toBe(false);
    }
    emb.data[4] = 1;
    await expect(writeEmbeddings(openOutput('-'), '-', 'jsonl', { texts: ['x', 'y'] }, emb)).rejects.toThrow(
      'text 2: its embedding has a non-finite value (NaN at index 2); nothing was written to stdout',
    );
  });

  it("encode's writer keeps a file that appeared at --output after the check (the output goes to .new) unless overwrite", async () => {
    const dir = makeTempDir();
    const emb = new Embeddings(2, 1, Float32Array.of(0.5, -1));
    for (const name of ['o.npy', 'o.jsonl']) {
      const out = join(dir, name);
      writeFileSync(out, 'theirs\n');
      await expect(writeEmbeddings(openOutput(out, { replace: false }), out, embeddingOutputFormat(out), { texts: ['a', 'b'] }, emb)).rejects.toThrow(
        `could not write ${out}: a file of that name appeared while this ran and was kept; the output is in ${out}.new`,
      );
      expect(readFileSync(out, 'utf8')).toBe('theirs\n');
      const ours = readFileSync(`${out}.new`);
      await writeEmbeddings(openOutput(out, { replace: true }), out, embeddingOutputFormat(out), { texts: ['a', 'b'] }, emb);
      expect(readFileSync(out)).toEqual(ours);
    }
  });

  // /sys takes no new file, not even from root (who may write into a chmod 555 folder): the writer's
  // open fails there, and it must fail before the model (here a hub id that is never fetched) loads
  it.skipIf(process.platform !== 'linux')('an output folder that cannot take the file fails before the model loads (encode, mine, eval --json)', async () => {
    const dir = makeTempDir();
    const texts = join(dir, 'in.txt');
    writeFileSync(texts, 'a\nb\n');
    const test = join(dir, 't.jsonl');
    writeFileSync(test, '{"query": "a", "pos": ["b"], "neg": ["c"]}\n');
    const model = ['--model', 'no-org/no-such-model'];
    const runs: [string[], string][] = [
      [['encode', ...model, '--input', texts, '--output', '/sys/l2e-x.jsonl'], '/sys/l2e-x.jsonl'],
      [['encode', ...model, '--input', texts, '--output', '/sys/l2e-x.npy'], '/sys/l2e-x.npy'],
      [['mine', ...model, '--input', texts, '--output', '/sys/l2e-x.jsonl', '--pos-threshold', '0.1', '--neg-threshold', '0.5'], '/sys/l2e-x.jsonl'],
      [['eval', ...model, '--test', test, '--json', '/sys/l2e-x.json'], '/sys/l2e-x.json'],
    ];
    for (const [args, out] of runs) {
      const r = await l2e(args);
      expect(r.err).toContain(`error: could not write ${out}: EACCES: permission denied\n`);
      expect(r.err).not.toContain('no-such-model');
      expect(r.code).toBe(1);
    }
  });

  it('encode --field on an input read as text is a usage error (it would name nothing), before the model loads', async () => {
    const dir = makeTempDir();
    const txt = join(dir, 'in.txt');
    writeFileSync(txt, '{"body": "a"}\n');
    const r = await l2e(['encode', '--model', 'no-such-model', '--input', txt, '--field', 'body', '--output', join(dir, 'o.jsonl')]);
    expect([r.code, r.err.split('\n')[0]]).toEqual([2, `l2e encode: --field names a JSONL field, but ${txt} is read as text (--format jsonl reads it as JSONL)`]);
    const piped = await l2e(['encode', '--model', 'no-such-model', '--input', '-', '--format', 'text', '--field', 'body', '--output', '-'], 'a\n');
    expect(piped.err.split('\n')[0]).toBe('l2e encode: --field names a JSONL field, but stdin is read as text (--format jsonl reads it as JSONL)');
    expect(existsSync(join(dir, 'o.jsonl'))).toBe(false);
  });

  // stdin's size is unknown until read: held in memory it grew with the input whatever --memory-mb said
  it('combine --shuffle of stdin keeps to --memory-mb (buckets on disk) and gives the order of the same rows from a file', async () => {
    const dir = makeTempDir();
    const rows = Array.from({ length: 20000 }, (_, i) => JSON.stringify({ query: `pertanyaan ${i} `.repeat(3), pos: [`p${i}`], neg: [`n${i}`] }));
    const file = join(dir, 'rows.jsonl');
    writeFileSync(file, rows.join('\n') + '\n');
    const fromFile = await l2e(['combine', file, '--shuffle', '--memory-mb', '1', '--output', join(dir, 'a.jsonl')]);
    const fromStdin = await l2e(['combine', '-', '--shuffle', '--memory-mb', '1', '--output', join(dir, 'b.jsonl')], rows.join('\n') + '\n');
    expect([fromFile.code, fromStdin.code]).toEqual([0, 0]);
    const buckets = / \(shuffled through (\d+) buckets\)/;
    expect(fromStdin.out).toMatch(buckets);
    expect(fromStdin.out.match(buckets)![1]).toBe(fromFile.out.match(buckets)![1]);
    expect(readFileSync(join(dir, 'b.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'a.jsonl'), 'utf8'));
    expect(readdirSync(dir).sort()).toEqual(['a.jsonl', 'b.jsonl', 'rows.jsonl']); // stdin's copy and the buckets removed
  });

  it('encode refuses --output x.csv before loading the model', async () => {
    const r = await l2e(['encode', '--model', 'no-such-model', '--input', 'in.txt', '--output', 'x.csv']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--output x.csv: unknown extension .csv; use .jsonl');
    expect(existsSync('x.csv')).toBe(false);
  });
});

describe.skipIf(!hasTinyMha)(`encode with a model ${hasTinyMha ? '' : skipNote('the shared tokenizer')}`, () => {
  const dir = makeTempDir();
  const model = writeTinyModel(join(dir, 'model')).dir;

  it('JSONL input: fields carried through; vectors as float32 text', async () => {
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, '{"id": 1, "text": "Selamat pagi"}\n{"id": 2, "text": "apa khabar", "src": "x"}\n');
    const out = join(dir, 'out.jsonl');
    const r = await l2e(['encode', '--model', model, '--input', input, '--output', out]);
    expect(r.err).toContain(`encoded 2 texts (16 dims) → ${out}`);
    expect(r.code).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((x) => [x['id'], x['text'], x['src']])).toEqual([[1, 'Selamat pagi', undefined], [2, 'apa khabar', 'x']]);
    const npy = join(dir, 'out.npy');
    await l2e(['encode', '--model', model, '--input', input, '--output', npy]);
    const m = readFileSync(npy);
    const data = new Float32Array(m.buffer.slice(m.byteOffset + 128, m.byteOffset + m.length));
    expect((rows[1]!['embedding'] as number[]).map(Math.fround)).toEqual(Array.from(data.subarray(16, 32))); // exactly the float32 values
    expect(readFileSync(out, 'utf8')).not.toMatch(/\d{10}/); // no float64 tails
  });

  it('JSONL input: the rows come out as written, plus "embedding"', async () => {
    const r = await l2e(
      ['encode', '--model', model, '--input', '-', '--format', 'jsonl', '--output', '-'],
      '{"id": 12345678901234567891, "text": "hello", "score": 1.0, "x": 1e400}\n\n{"text": "\\u0068i", "meta": {"a": [1, 2]}, "embedding": null}\n',
    );
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^\{"id":12345678901234567891,"text":"hello","score":1\.0,"x":1e400,"embedding":\[[^\]]+\]\}$/);
    expect(lines[1]).toMatch(/^\{"text":"\\u0068i","meta":\{"a":\[1,2\]\},"embedding":\[[^\]]+\]\}$/);
    expect(lines.slice(2)).toEqual(['']);
  });

  it('encode --input - --output -: stdin to stdout, and nothing else on stdout', async () => {
    const r = await l2e(['encode', '--model', model, '--input', '-', '--format', 'text', '--output', '-'], '{"a": 1}\nSelamat pagi\n');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as { text: string; embedding: number[] });
    expect(lines.map((l) => l.text)).toEqual(['{"a": 1}', 'Selamat pagi']);
    expect(lines[1]!.embedding).toHaveLength(16);
    expect(r.err).toContain('encoded 2 texts (16 dims) → stdout');
    const noFormat = await l2e(['encode', '--model', model, '--input', '-', '--output', '-'], 'x\n');
    expect(noFormat.code).toBe(2);
    expect(noFormat.err).toContain('reading texts from stdin (-): give --format text or --format jsonl');
  });

  it('encode and tokenize name the line of a text holding a run too long to tokenise', async () => {
    const input = join(dir, 'run.txt');
    writeFileSync(input, 'satu\n\n' + '-'.repeat((1 << 16) + 1) + '\n');
    const reason = 'more than 65536 characters in a row from character 0 on ("------------------------"...) have no point between them';
    const r = await l2e(['encode', '--model', model, '--input', input, '--output', join(dir, 'run.npy')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`l2e encode: error: ${input}:3: ${reason}`);
    expect(existsSync(join(dir, 'run.npy'))).toBe(false);
    const t = await l2e(['tokenize', '--model', model], readFileSync(input, 'utf8'));
    expect(t.code).toBe(1);
    expect(t.err).toContain(`l2e tokenize: error: stdin:3: ${reason}`);
    expect(t.out.split('\n').slice(1)).toEqual(['[1]', '']); // the lines before it were written
  });

  it('mine and eval name the line of a text holding a run too long to tokenise (not its place in the pool)', async () => {
    const reason = 'more than 65536 characters in a row from character 0 on ("------------------------"...) have no point between them';
    const corpus = join(dir, 'run-corpus.txt');
    writeFileSync(corpus, 'satu\n\ndua\nsatu\ntiga\n' + '-'.repeat((1 << 16) + 1) + '\n');
    const m = await l2e(['mine', '--model', model, '--input', corpus, '--output', '-', '--pos-threshold', '0.1', '--neg-threshold', '0.5']);
    expect(m.code).toBe(1);
    expect(m.err).toContain(`l2e mine: error: ${corpus}:6: ${reason}`);
    const test = join(dir, 'run-test.jsonl');
    const row = (query: string, pos: string): string => JSON.stringify({ query, pos: [pos], neg: ['tiga'] }) + '\n';
    writeFileSync(test, row('satu', 'dua') + '\n' + row('dua', 'satu') + row('empat', '-'.repeat((1 << 16) + 1)));
    const e = await l2e(['eval', '--model', model, '--test', test]);
    expect(e.code).toBe(1);
    expect(e.err).toContain(`l2e eval: error: ${test}:4: ${reason}`);
  });

  it('eval --json - prints only the JSON on stdout', async () => {
    const test = join(dir, 'test.jsonl');
    writeFileSync(test, '{"query": "satu", "pos": ["dua"], "neg": ["tiga"]}\n{"query": "empat", "pos": ["lima"], "neg": ["enam"]}\n');
    const r = await l2e(['eval', '--model', model, '--test', test, '--json', '-']);
    expect(r.code).toBe(0);
    expect(Object.keys(JSON.parse(r.out) as object)).toEqual(['test']);
    expect(r.err).toContain('top1');
  });

  it('mine and combine write to stdout with "-" and put their summaries on stderr', async () => {
    const corpus = join(dir, 'corpus.txt');
    writeFileSync(corpus, 'satu\ndua\ntiga\nempat\nlima\n');
    const m = await l2e(['mine', '--model', model, '--input', corpus, '--output', '-', '--metric', 'cosine', '--pos-threshold', '2', '--neg-threshold', '2']);
    expect(m.code).toBe(0);
    expect(m.out).toBe('');
    expect(m.err).toContain('5 input rows, 5 distinct texts → 0 rows written to stdout');
    const pairs = join(dir, 'p.jsonl');
    writeFileSync(pairs, '{"query": "q", "pos": ["p"], "neg": ["n"]}\n');
    const c = await l2e(['combine', pairs, '-', '--output', '-'], '{"query": "q2", "pos": ["p2"], "neg": []}\n');
    expect(c.code).toBe(0);
    expect(c.out).toBe('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q2", "pos": ["p2"], "neg": []}\n');
    expect(c.err).toMatch(/total +2 rows → stdout/);
  });

  it('mine reads a .txt corpus whose lines start with { as texts, and stdin with --format', async () => {
    const corpus = join(dir, 'braces.txt');
    writeFileSync(corpus, '{satu}\ndua\n');
    const out = join(dir, 'mined.jsonl');
    const r = await l2e(['mine', '--model', model, '--input', corpus, '--output', out, '--pos-threshold', '100', '--neg-threshold', '100']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('2 input rows, 2 distinct texts');
    const again = await l2e(['mine', '--model', model, '--input', '-', '--format', 'text', '--output', out, '--pos-threshold', '100', '--neg-threshold', '100'], 'a\n');
    expect(again.err.split('\n')[0]).toBe(`l2e mine: error: --output ${out} already exists (pass --overwrite to replace it)`);
    const s = await l2e(['mine', '--model', model, '--input', '-', '--format', 'text', '--output', out, '--overwrite', '--pos-threshold', '100', '--neg-threshold', '100'], 'a\nb\nc\n');
    expect(s.out).toContain('3 input rows, 3 distinct texts');
  });

  it('mine reads a JSON corpus from stdin or any name with --format json; a name it cannot tell offers .json', async () => {
    const out = join(dir, 'mined-json.jsonl');
    const r = await l2e(['mine', '--model', model, '--input', '-', '--format', 'json', '--output', out, '--pos-threshold', '100', '--neg-threshold', '100'], '["satu", "dua", "tiga"]');
    expect(r.code).toBe(0);
    expect(r.out).toContain('3 input rows, 3 distinct texts');
    const named = join(dir, 'corpus.data');
    writeFileSync(named, '{"satu": 1, "dua": 2}');
    const s = await l2e(['mine', '--model', model, '--input', named, '--format', 'json', '--stats']);
    expect(s.code).toBe(0);
    const unnamed = await l2e(['mine', '--model', model, '--input', named, '--stats']);
    expect(unnamed.code).toBe(2);
    expect(unnamed.err.split('\n')[0]).toBe(
      `l2e mine: cannot tell the format of ${named} from its name: use .txt (one text per line), .jsonl or .json, or give --format text|jsonl|json`,
    );
    const stdin = await l2e(['mine', '--model', model, '--input', '-', '--stats'], '[]');
    expect(stdin.err.split('\n')[0]).toBe('l2e mine: reading the corpus from stdin (-): give --format text, jsonl or json');
    const bad = await l2e(['mine', '--model', model, '--input', '-', '--format', 'csv', '--stats'], '[]');
    expect(bad.err.split('\n')[0]).toBe('l2e mine: --format must be text, jsonl or json, got csv');
    const broken = await l2e(['mine', '--model', model, '--input', '-', '--format', 'json', '--stats'], '["satu",');
    expect(broken.err).toMatch(/^l2e mine: error: stdin: /);
  });
});
