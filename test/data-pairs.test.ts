// Training rows → groups: validation with file:line errors, skipped rows counted, FlagEmbedding's
// group rule (1 positive + G−1 negatives, the list repeated when short), bounded-buffer shuffling,
// determinism for a seed, and exact replay for resume.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PairData, sampleGroup, type TrainGroup, type TrainRow } from '../src/data/pairs.js';
import { Rng } from '../src/util/random.js';
import { makeTempDir } from './helpers/tinyModel.js';


function rows(n: number, negs = 3): TrainRow[] {
  return Array.from({ length: n }, (_, i) => ({
    query: `q${i}`,
    pos: [`p${i}a`, `p${i}b`],
    neg: Array.from({ length: negs }, (_, j) => `n${i}.${j}`),
  }));
}

function writeJsonl(lines: (string | object)[]): string {
  const file = join(makeTempDir(), 'data.jsonl');
  writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

async function collect(data: PairData, epoch = 0, skip = 0): Promise<TrainGroup[]> {
  const out: TrainGroup[] = [];
  for await (const g of data.groups(epoch, skip)) out.push(g);
  return out;
}

describe('sampleGroup (FlagEmbedding rule)', () => {
  it('takes one positive first and G−1 distinct negatives when there are enough', () => {
    const rng = new Rng(1);
    const row: TrainRow = { query: 'q', pos: ['a', 'b'], neg: ['n0', 'n1', 'n2', 'n3', 'n4'] };
    for (let t = 0; t < 50; t++) {
      const g = sampleGroup(row, 4, rng);
      expect(g.query).toBe('q');
      expect(g.passages).toHaveLength(4);
      expect(row.pos).toContain(g.passages[0]);
      const negs = g.passages.slice(1);
      expect(new Set(negs).size).toBe(3);
      for (const n of negs) expect(row.neg).toContain(n);
    }
  });

  it('repeats a short negative list before sampling: each negative at most ceil((G−1)/len) times', () => {
    const rng = new Rng(2);
    const one = sampleGroup({ query: 'q', pos: ['p'], neg: ['only'] }, 4, rng);
    expect(one.passages).toEqual(['p', 'only', 'only', 'only']);
    const seen = new Set<string>();
    for (let t = 0; t < 100; t++) {
      const g = sampleGroup({ query: 'q', pos: ['p'], neg: ['x', 'y'] }, 4, rng);
      const negs = g.passages.slice(1);
      expect(negs).toHaveLength(3);
      // pool = [x, y, x, y]: 3 distinct draws hold each name once or twice
      for (const n of ['x', 'y']) {
        const c = negs.filter((s) => s === n).length;
        expect(c).toBeGreaterThanOrEqual(1);
        expect(c).toBeLessThanOrEqual(2);
      }
      seen.add(negs.join());
    }
    expect(seen.size).toBeGreaterThan(1);
  });

  it('group size 1 needs no negatives', () => {
    expect(sampleGroup({ query: 'q', pos: ['p'], neg: [] }, 1, new Rng(3)).passages).toEqual(['p']);
  });
});

describe('Rng state (for checkpoints)', () => {
  it('getState / setState resume the exact sequence; bad states are refused', () => {
    const a = new Rng(9, 4);
    for (let i = 0; i < 5; i++) a.nextU32();
    const state = a.getState();
    const expected = Array.from({ length: 8 }, () => a.nextU32());
    const b = new Rng(0);
    b.setState(state);
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(expected);
    expect(() => b.setState([0, 0, 0, 0])).toThrow(/all-zero/);
    expect(() => b.setState([1, 2, 3])).toThrow(/four uint32/);
  });
});

describe('PairData', () => {
  it('yields every row exactly once per epoch through the shuffle buffer, deterministically per seed', async () => {
    const data = rows(57);
    const a = await collect(new PairData(data, { groupSize: 3, seed: 7, shuffleBuffer: 10 }));
    const b = await collect(new PairData(data, { groupSize: 3, seed: 7, shuffleBuffer: 10 }));
    const c = await collect(new PairData(data, { groupSize: 3, seed: 8, shuffleBuffer: 10 }));
    expect(a.map((g) => g.query).sort()).toEqual(data.map((r) => r.query).sort());
    expect(b).toEqual(a);
    expect(c.map((g) => g.query)).not.toEqual(a.map((g) => g.query));
    expect(a.map((g) => g.query)).not.toEqual(data.map((r) => r.query)); // shuffled
    // each group is built from its own row
    for (const g of a) {
      const i = g.query.slice(1);
      expect(g.passages[0]).toMatch(new RegExp(`^p${i}[ab]$`));
      for (const n of g.passages.slice(1)) expect(n.startsWith(`n${i}.`)).toBe(true);
    }
  });

  // The recipe's shuffle (the Hugging Face Trainer's sampler) is a uniform permutation of all the rows
  // each epoch; a buffer of 10000 rows kept the order near the file's (batches of a file made of
  // sources one after another came from one source: 81% of them, 400,000 rows in 4)
  it("shuffleBuffer 'all' (the default): each epoch a uniform permutation of the file's usable rows, read back by offset", async () => {
    const n = 2000;
    const lines: (string | object)[] = rows(n).map((r) => r as object);
    // what the scan skips (a bad line with skipBadLines, rows without pos), a blank and a CRLF line,
    // a BOM at the start and a last line without its '\n': the rows read back by offset are the same
    lines.splice(500, 0, '{"query": 5}', { query: 'nopos', pos: [], neg: ['x'] }, '   ');
    const file = join(makeTempDir(), 'data.jsonl');
    const text = '\uFEFF' + lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n').replace('"q7"}', '"q7"}\r');
    writeFileSync(file, text); // no '\n' after the last line
    const d = new PairData(file, { groupSize: 2, seed: 3, skipBadLines: true });
    expect(d.shuffleBuffer).toBe('all');
    expect((await d.scan())?.rows).toBe(n);
    const order = async (epoch: number): Promise<number[]> => (await collect(d, epoch)).map((g) => Number(g.query.slice(1)));
    const first = await order(0);
    expect([...first].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i)); // each row once
    expect(d.stats).toMatchObject({ rows: n, badLines: 1, noPositive: 1, firstBadLines: [501] });
    expect(await order(0)).toEqual(first); // the same for the same (seed, epoch)
    expect(await order(1)).not.toEqual(first);
    // uniform, not near the file's order: the file's first 200 rows spread over the whole epoch
    const where = new Map(first.map((q, i) => [q, i]));
    const early = Array.from({ length: 200 }, (_, q) => where.get(q)!);
    expect(early.filter((i) => i >= n / 2).length).toBeGreaterThan(70);
    expect(Math.max(...early)).toBeGreaterThan(0.9 * n);
    // the same rows from an array, and without a scan first
    const fromArray = await collect(new PairData(rows(n), { groupSize: 2, seed: 3 }));
    expect([...fromArray.map((g) => Number(g.query.slice(1)))].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    // a file changed under the index is said, not read as other rows
    writeFileSync(file, text.replace('"q1999"', '"q1999", "pos": 7'));
    await expect(collect(d, 2)).rejects.toThrow(/^.*data\.jsonl: a row read before training \(at byte \d+\) is not one now: the data changed during training$/);
  });

  it('keeps file order with no shuffle buffer; a new epoch draws new groups', async () => {
    const data = rows(20);
    const d = new PairData(data, { groupSize: 2, seed: 1, shuffleBuffer: 0 });
    const e0 = await collect(d, 0);
    const e1 = await collect(d, 1);
    expect(e0.map((g) => g.query)).toEqual(data.map((r) => r.query));
    expect(e1.map((g) => g.query)).toEqual(data.map((r) => r.query));
    expect(e1.map((g) => g.passages.join())).not.toEqual(e0.map((g) => g.passages.join()));
  });

  it('replaying with skip continues exactly where an uninterrupted read is, and checks the RNG state', async () => {
    const file = writeJsonl(rows(40));
    const full = await collect(new PairData(file, { groupSize: 3, seed: 5, shuffleBuffer: 8 }), 1);
    const d = new PairData(file, { groupSize: 3, seed: 5, shuffleBuffer: 8 });
    const it = d.groups(1)[Symbol.asyncIterator]();
    for (let i = 0; i < 13; i++) await it.next();
    const state = d.rngState();
    const resumed: TrainGroup[] = [];
    const d2 = new PairData(file, { groupSize: 3, seed: 5, shuffleBuffer: 8 });
    for await (const g of d2.groups(1, 13, state)) resumed.push(g);
    expect(resumed).toEqual(full.slice(13));
    // a different seed cannot reproduce the saved state
    const other = new PairData(file, { groupSize: 3, seed: 6, shuffleBuffer: 8 });
    await expect(collectFrom(other.groups(1, 13, state))).rejects.toThrow(/replaying the data does not reproduce/);
  });

  it('skips and counts rows with an empty pos, or an empty neg when G > 1', async () => {
    const file = writeJsonl([
      { query: 'a', pos: ['pa'], neg: ['na'] },
      { query: 'b', pos: [], neg: ['nb'] },
      { query: 'c', pos: ['pc'], neg: [] },
      '',
      { query: 'd', pos: ['pd'], neg: ['nd'], extra: 1 },
    ]);
    const d = new PairData(file, { groupSize: 2, seed: 1, shuffleBuffer: 0 });
    const got = await collect(d);
    expect(got.map((g) => g.query)).toEqual(['a', 'd']);
    expect(d.stats).toEqual({ rows: 2, badLines: 0, firstBadLines: [], noPositive: 1, noNegative: 1 });
    const g1 = new PairData(file, { groupSize: 1, seed: 1, shuffleBuffer: 0 });
    expect((await collect(g1)).map((g) => g.query)).toEqual(['a', 'c', 'd']);
  });

  it('names file:line for non-JSON lines and bad fields, or counts them with skipBadLines', async () => {
    const cases: [object | string, RegExp][] = [
      ['{"query": "x", "pos": [', /data\.jsonl:2: invalid JSON/],
      [{ pos: ['p'], neg: [] }, /data\.jsonl:2: missing "query"/],
      [{ query: 1, pos: ['p'], neg: [] }, /data\.jsonl:2: "query" must be a string/],
      [{ query: 'x', neg: [] }, /data\.jsonl:2: missing "pos"/],
      [{ query: 'x', pos: 'p', neg: [] }, /data\.jsonl:2: "pos" must be an array of strings/],
      [{ query: 'x', pos: ['p', 3], neg: [] }, /data\.jsonl:2: "pos"\[1\] must be a string/],
      [{ query: 'x', pos: ['p'] }, /data\.jsonl:2: missing "neg"/],
      [[1, 2], /data\.jsonl:2: expected a JSON object/],
    ];
    for (const [bad, re] of cases) {
      const file = writeJsonl([{ query: 'a', pos: ['p'], neg: ['n'] }, bad, { query: 'b', pos: ['p'], neg: ['n'] }]);
      await expect(collect(new PairData(file, { groupSize: 2, seed: 1 }))).rejects.toThrow(re);
      const lenient = new PairData(file, { groupSize: 2, seed: 1, skipBadLines: true });
      expect((await collect(lenient)).length).toBe(2);
      expect(lenient.stats.badLines).toBe(1);
      expect(lenient.stats.firstBadLines).toEqual([2]);
    }
  });

  it("the JSON parser's quote of a bad line has control and invisible characters escaped (an ESC cleared the terminal; a BOM inside a file was invisible)", async () => {
    for (const [bad, quoted] of [['\u001b[2J\u001b[31mHELLO\u0007', '\\u001b[2J\\u001b[31mHELLO\\u0007'], ['\ufeff{"query": "b"}', '\\ufeff{"query": "b"}']]) {
      const file = writeJsonl([{ query: 'a', pos: ['p'], neg: ['n'] }, bad]);
      const err = (await collect(new PairData(file, { groupSize: 2, seed: 1 })).catch((e: unknown) => e)) as Error;
      expect(err.message).toContain(quoted);
      expect(err.message).not.toMatch(/[\u0000-\u001f\ufeff]/);
    }
  });

  it('a line over the length bound is a bad line like the others: named, or counted with skipBadLines', async () => {
    const file = writeJsonl([{ query: 'a', pos: ['p'], neg: ['n'] }, { query: 'x'.repeat(3000), pos: ['p'], neg: ['n'] }, { query: 'b', pos: ['p'], neg: ['n'] }]);
    await expect(collect(new PairData(file, { groupSize: 2, seed: 1, maxLineBytes: 1000 }))).rejects.toThrow(`${file}:2: line longer than 1000 bytes`);
    const lenient = new PairData(file, { groupSize: 2, seed: 1, maxLineBytes: 1000, skipBadLines: true });
    expect((await collect(lenient)).length).toBe(2);
    expect([lenient.stats.badLines, lenient.stats.firstBadLines]).toEqual([1, [2]]);
  });

  it('an empty file, or one without usable rows, is a clear error', async () => {
    const file = join(makeTempDir(), 'empty.jsonl');
    writeFileSync(file, '\n\n');
    await expect(collect(new PairData(file, { groupSize: 3, seed: 1 }))).rejects.toThrow(/empty\.jsonl: no training rows \(the data is empty\)/);
    const none = writeJsonl([{ query: 'a', pos: [], neg: ['n'] }]);
    await expect(collect(new PairData(none, { groupSize: 3, seed: 1 }))).rejects.toThrow(/no usable training rows: 0 malformed, 1 with an empty "pos"/);
    await expect(collect(new PairData(join(makeTempDir(), 'missing.jsonl'), { groupSize: 3, seed: 1 }))).rejects.toThrow(/no such file/);
  });

  it('a one-shot iterable cannot feed a second epoch: the error says what to pass', async () => {
    async function* once(): AsyncGenerator<TrainRow> {
      yield* rows(3);
    }
    const d = new PairData(once(), { groupSize: 2, seed: 1 });
    expect(await collect(d, 0)).toHaveLength(3);
    await expect(collect(d, 1)).rejects.toThrow(/one-shot iterable cannot be re-read/);
    const f = new PairData(() => once(), { groupSize: 2, seed: 1 });
    expect(await collect(f, 1)).toHaveLength(3);
  });
});

async function collectFrom(gen: AsyncGenerator<TrainGroup>): Promise<TrainGroup[]> {
  const out: TrainGroup[] = [];
  for await (const g of gen) out.push(g);
  return out;
}
