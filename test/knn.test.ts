// Native exact k-NN against a direct JS computation: both metrics, tile edges (pool > one 2048
// block, odd dim), exact tie order on integer data, clamping and bad input.
import { describe, expect, it } from 'vitest';
import { Embeddings } from '../src/model/embeddings.js';
import { knn, similarity } from '../src/eval/knn.js';
import { Rng } from '../src/util/random.js';

function randomMatrix(rows: number, dim: number, rng: Rng, gen: () => number = () => rng.next() * 2 - 1): Embeddings {
  const e = new Embeddings(rows, dim);
  for (let i = 0; i < e.data.length; i++) e.data[i] = gen();
  return e;
}

function score(a: Float32Array, b: Float32Array, metric: 'cosine' | 'euclidean'): number {
  let dot = 0, na = 0, nb = 0, d2 = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
    d2 += (a[i]! - b[i]!) ** 2;
  }
  if (metric === 'euclidean') return Math.sqrt(d2);
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** Brute force: all pool rows ordered best first, ties to the lower index. */
function bruteForce(q: Float32Array, pool: Embeddings, metric: 'cosine' | 'euclidean'): { idx: number; s: number }[] {
  const all = Array.from({ length: pool.rows }, (_, j) => ({ idx: j, s: score(q, pool.row(j), metric) }));
  const sign = metric === 'cosine' ? -1 : 1;
  return all.sort((a, b) => sign * (a.s - b.s) || a.idx - b.idx);
}

describe('knn', () => {
  for (const metric of ['cosine', 'euclidean'] as const) {
    it(`matches brute force (${metric}, several pool tiles, odd dim)`, async () => {
      const rng = new Rng(7);
      const queries = randomMatrix(40, 37, rng);
      const pool = randomMatrix(4500, 37, rng);
      const k = 9;
      const res = await knn(queries, pool, k, { metric });
      expect(res.k).toBe(k);
      expect(res.indices.length).toBe(40 * k);
      for (let i = 0; i < queries.rows; i++) {
        const ref = bruteForce(queries.row(i), pool, metric);
        for (let t = 0; t < k; t++) {
          const idx = res.indices[i * k + t]!;
          const s = res.scores[i * k + t]!;
          expect(Number.isFinite(s)).toBe(true);
          // the reported score is the true score of the reported row, and the t-th best score overall
          expect(Math.abs(s - score(queries.row(i), pool.row(idx), metric))).toBeLessThan(2e-4);
          expect(Math.abs(s - ref[t]!.s)).toBeLessThan(2e-4);
        }
        // near-exact ties aside, the neighbour sets agree
        const got = new Set(Array.from(res.indices.subarray(i * k, (i + 1) * k)));
        const overlap = ref.slice(0, k).filter((r) => got.has(r.idx)).length;
        expect(overlap).toBeGreaterThanOrEqual(k - 1);
      }
    });
  }

  // float32 limits: rows scaled by 1e-30 scored cosine 0 (q·p underflowed), by 1e20 inf; euclidean's
  // |q|² + |p|² − 2 q·p at norm 1000 ranked pairs 0.1 apart at random (cancellation)
  it('rows far from unit length: cosine exact at scales 1e-30 and 1e20; euclidean exact at norm 1000', async () => {
    const rng = new Rng(11);
    const base = randomMatrix(60, 24, rng);
    for (const scale of [1e-30, 1e20]) {
      const scaled = new Embeddings(base.rows, base.dim, base.data.map((x) => x * scale));
      const res = await knn(scaled, scaled, 5, { metric: 'cosine' });
      for (let i = 0; i < base.rows; i++) {
        const ref = bruteForce(base.row(i), base, 'cosine');
        expect(Array.from(res.indices.subarray(i * 5, i * 5 + 5)), `scale ${scale}, row ${i}`).toEqual(ref.slice(0, 5).map((r) => r.idx));
        for (let t = 0; t < 5; t++) expect(Math.abs(res.scores[i * 5 + t]! - ref[t]!.s)).toBeLessThan(1e-5);
      }
    }
    // 20 pairs of rows of norm ~1000, each pair 0.05 to 0.15 apart, the pairs far from each other
    const far = new Embeddings(40, 24);
    for (let p = 0; p < 20; p++) {
      const centre = Array.from({ length: 24 }, () => (rng.next() * 2 - 1) * 400);
      for (let d = 0; d < 24; d++) {
        far.data[2 * p * 24 + d] = centre[d]!;
        far.data[(2 * p + 1) * 24 + d] = centre[d]! + (d === p % 24 ? 0.05 + 0.005 * p : 0);
      }
    }
    const res = await knn(far, far, 2, { metric: 'euclidean', excludeSelf: true });
    for (let i = 0; i < far.rows; i++) {
      const ref = bruteForce(far.row(i), far, 'euclidean').filter((r) => r.idx !== i);
      expect(res.indices[i * 2], `row ${i}`).toBe(ref[0]!.idx);
      expect(Math.abs(res.scores[i * 2]! - ref[0]!.s)).toBeLessThan(1e-6 * 1000);
    }
  });

  it('breaks euclidean ties by the lower index (exact integer data)', async () => {
    const rng = new Rng(3);
    const gen = (): number => rng.int(3) - 1; // values in {-1, 0, 1}: many exact ties
    const queries = randomMatrix(30, 6, rng, gen);
    const pool = randomMatrix(2500, 6, rng, gen);
    const k = 12;
    const res = await knn(queries, pool, k, { metric: 'euclidean' });
    for (let i = 0; i < queries.rows; i++) {
      const ref = bruteForce(queries.row(i), pool, 'euclidean').slice(0, k);
      expect(Array.from(res.indices.subarray(i * k, (i + 1) * k))).toEqual(ref.map((r) => r.idx));
    }
  });

  it('orders duplicate vectors by index (cosine) and reports similarity 1 for them', async () => {
    const pool = new Embeddings(8, 3, Float32Array.from([
      0, 1, 0, 1, 0, 0, 3, 4, 0, 0, 0, 1, 0.6, 0.8, 0, 1, 1, 1, 0, 2, 0, 0.3, 0.4, 0,
    ]));
    const queries = new Embeddings(1, 3, Float32Array.from([6, 8, 0]));
    const res = await knn(queries, pool, 4, { metric: 'cosine' });
    // rows 2, 4 and 7 point the same way as the query
    expect(Array.from(res.indices)).toEqual([2, 4, 7, 5]);
    for (let t = 0; t < 3; t++) expect(res.scores[t]).toBeCloseTo(1, 6);
    expect(res.scores[3]).toBeCloseTo(14 / (10 * Math.sqrt(3)), 5);
  });

  it('gives zero vectors similarity 0 and clamps k to the pool size', async () => {
    const pool = new Embeddings(3, 2, Float32Array.from([1, 0, 0, 0, -1, 0]));
    const queries = new Embeddings(2, 2, Float32Array.from([1, 0, 0, 0]));
    const res = await knn(queries, pool, 10, { metric: 'cosine' });
    expect(res.k).toBe(3);
    expect(Array.from(res.indices)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(Array.from(res.scores)).toEqual([1, 0, -1, 0, 0, 0]);
  });

  it('rejects NaN/Inf, dim mismatch and an empty pool', async () => {
    const pool = new Embeddings(3, 2, Float32Array.from([1, 0, NaN, 0, 1, 1]));
    const q = new Embeddings(1, 2, Float32Array.from([1, 0]));
    await expect(knn(q, pool, 1)).rejects.toThrow(/pool row 1 has a non-finite value/);
    const qInf = new Embeddings(1, 2, Float32Array.from([Infinity, 0]));
    await expect(knn(qInf, new Embeddings(1, 2), 1, { metric: 'euclidean' })).rejects.toThrow(/queries row 0/);
    await expect(knn(q, new Embeddings(2, 3), 1)).rejects.toThrow('knn: queries have dim 2, pool has dim 3');
    await expect(knn(q, new Embeddings(0, 2), 1)).rejects.toThrow('knn: the pool is empty');
  });
});

describe('knn reads copies of its inputs', () => {
  // the search runs on a worker thread: read in place, a pool transferred away (its memory freed when
  // the receiver goes) crashed the process, and one changed meanwhile changed the result
  it('changing, transferring or dropping the arrays while the search runs changes nothing', async () => {
    const rng = new Rng(7);
    const q = randomMatrix(400, 64, rng);
    const p = randomMatrix(20000, 64, rng);
    const expected = await knn(q, p, 3, { metric: 'euclidean' });
    for (let round = 0; round < 3; round++) {
      const q2 = new Embeddings(q.rows, q.dim, q.data.slice());
      const p2 = new Embeddings(p.rows, p.dim, p.data.slice());
      const pending = knn(q2, p2, 3, { metric: 'euclidean' });
      p2.data.fill(0);
      q2.data.fill(1);
      const buffer = p2.data.buffer as ArrayBuffer;
      structuredClone(buffer, { transfer: [buffer] }); // detached here, its memory the clone's
      expect(p2.data.length).toBe(0);
      const got = await pending;
      expect(got.indices).toEqual(expected.indices);
      expect(got.scores).toEqual(expected.scores);
    }
    // the same array as queries and pool is copied once and still searched as itself
    const self = await knn(p, p, 2, { excludeSelf: true });
    expect(self.k).toBe(2);
    for (let i = 0; i < p.rows; i++) expect(self.indices[2 * i] !== i && self.indices[2 * i + 1] !== i).toBe(true);
  });
});

describe('knn result shape, excludeSelf and similarity', () => {
  it('neighbors(q) and matches() give {index, score} per query, equal to the flat arrays', async () => {
    const pool = new Embeddings(3, 2, Float32Array.from([1, 0, 0, 1, 1, 1]));
    const queries = new Embeddings(2, 2, Float32Array.from([1, 0, 0, 2]));
    const res = await knn(queries, pool, 2);
    const s = Math.SQRT1_2;
    expect(res.neighbors(0).map((m) => m.index)).toEqual([0, 2]);
    expect(res.neighbors(0)[1]!.score).toBeCloseTo(s, 6);
    expect(res.matches().map((ms) => ms.map((m) => m.index))).toEqual([[0, 2], [1, 2]]);
    expect(res.matches().flat().map((m) => m.score)).toEqual(Array.from(res.scores));
    expect(() => res.neighbors(2)).toThrow('knn: query 2 out of range [0, 2)');
  });

  it('excludeSelf leaves each row out of its own neighbours, also among exact duplicates', async () => {
    const rng = new Rng(3);
    const emb = randomMatrix(50, 8, rng);
    emb.data.set(emb.row(4), 9 * 8); // row 9 duplicates row 4
    const k = 5;
    const res = await knn(emb, emb, k, { excludeSelf: true });
    expect(res.k).toBe(k);
    for (let q = 0; q < emb.rows; q++) {
      const ref = bruteForce(emb.row(q), emb, 'cosine').filter((r) => r.idx !== q).slice(0, k);
      expect(res.neighbors(q).map((m) => m.index)).toEqual(ref.map((r) => r.idx));
    }
    expect(res.neighbors(4)[0]).toEqual({ index: 9, score: expect.closeTo(1, 6) as unknown as number });
    expect(res.neighbors(9)[0]!.index).toBe(4);
    const all = await knn(emb, emb, 100, { excludeSelf: true, metric: 'euclidean' });
    expect(all.k).toBe(49); // clamped to the other rows
    await expect(knn(emb, randomMatrix(10, 8, rng), 2, { excludeSelf: true })).rejects.toThrow(
      "knn: excludeSelf needs the queries to be the pool's rows, got 50 queries for 10 pool rows",
    );
    const one = await knn(new Embeddings(1, 2, Float32Array.of(1, 0)), new Embeddings(1, 2, Float32Array.of(1, 0)), 3, { excludeSelf: true });
    expect(one.k).toBe(0);
    expect(one.matches()).toEqual([[]]); // one (empty) list per query
    expect(one.neighbors(0)).toEqual([]);
    expect(() => one.neighbors(999)).toThrow(new RangeError('knn: query 999 out of range [0, 1)'));
    const none = await knn(new Embeddings(0, 2), new Embeddings(1, 2, Float32Array.of(1, 0)), 3);
    expect(none.matches()).toEqual([]);
    expect(() => none.neighbors(0)).toThrow(new RangeError('knn: query 0 out of range [0, 0)'));
    // a row number of the wrong kind (plain JS) says so: '0' was said to be out of range
    const three = await knn(new Embeddings(3, 2, Float32Array.from([1, 0, 0, 1, 1, 1])), new Embeddings(1, 2, Float32Array.of(1, 0)), 1);
    expect(() => three.neighbors('0' as unknown as number)).toThrow(new TypeError('knn: query must be an integer in [0, 3), got the string "0"'));
    expect(() => three.neighbors(1.5)).toThrow(new RangeError('knn: query must be an integer in [0, 3), got 1.5'));
  });

  it('inputs that are not Embeddings are a TypeError before native code (plain-JS callers)', async () => {
    const ok = new Embeddings(1, 2, Float32Array.of(1, 0));
    const shape = 'must be an Embeddings (rows, dim and data: a Float32Array of rows×dim values)';
    const bad = (v: unknown): Embeddings => v as Embeddings;
    await expect(knn(bad({ rows: 1, dim: 2, data: [1, 0] }), ok, 1)).rejects.toThrow(new TypeError(`knn: queries ${shape}; its data is an array`));
    await expect(knn(ok, bad({ rows: 2, dim: 2, data: Float32Array.of(1, 0) }), 1)).rejects.toThrow(`knn: pool ${shape}; its data has 2 values for 2x2`);
    await expect(knn(ok, bad(null), 1)).rejects.toThrow(`knn: pool ${shape}; got null`);
    await expect(knn(bad({ rows: '1', dim: 2 }), ok, 1)).rejects.toThrow(`knn: queries ${shape}; its rows and dim are 1 and 2`);
    expect(() => new Embeddings(1, 2, [1, 2] as unknown as Float32Array)).toThrow(new TypeError('Embeddings: data must be a Float32Array, got an array'));
    // options and k of the wrong type: named with the type, not ignored or read as a number
    await expect(knn(ok, ok, 1, null as unknown as undefined)).rejects.toThrow(new TypeError('knn: options must be an object, got null'));
    await expect(knn(ok, ok, 1, 'euclidean' as unknown as undefined)).rejects.toThrow('knn: options must be an object, got the string "euclidean"');
    await expect(knn(ok, ok, 1, { excludeSelf: 'yes' as unknown as boolean })).rejects.toThrow('knn: excludeSelf must be true or false, got the string "yes"');
    await expect(knn(ok, ok, '1' as unknown as number)).rejects.toThrow('knn: k must be a positive integer, got the string "1"');
    expect(() => similarity(undefined as unknown as number[], [1])).toThrow(new TypeError('similarity: a must be an array of numbers, got undefined'));
    // strings are not numbers (they were called non-finite values)
    expect(() => similarity(['1', '0'] as unknown as number[], ['1', '0'] as unknown as number[])).toThrow(
      new TypeError('similarity: a must be an array of numbers; a[0] is the string "1"'),
    );
    expect(() => similarity([1, 0], [1, null] as unknown as number[])).toThrow(new TypeError('similarity: b must be an array of numbers; b[1] is null'));
  });

  it('similarity is the cosine of two vectors, 0 with a zero vector', () => {
    expect(similarity([3, 4], [6, 8])).toBeCloseTo(1, 12);
    expect(similarity(Float32Array.of(1, 0), Float32Array.of(0, 2))).toBe(0);
    expect(similarity([1, 1], [-1, 0])).toBeCloseTo(-Math.SQRT1_2, 12);
    expect(similarity([0, 0], [1, 2])).toBe(0);
    expect(() => similarity([1], [1, 2])).toThrow('similarity: vectors of lengths 1 and 2');
    expect(() => similarity([NaN, 1], [1, 2])).toThrow('similarity: a vector has a non-finite value');
  });
});
